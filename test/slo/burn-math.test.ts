// Burn-rate math against hand-computed cases: window edges, late and out-of-order data, idle
// services (minimum-traffic guard), objective edge values — and a randomized cross-check of the
// O(1) running sums against a naive scan.
import { describe, expect, it } from 'vitest';
import { budgetRemaining, burnRate, errorRatio, ratioThreshold } from '../../processors/slo/burn.ts';
import { SloEvaluator, type EvaluationResult } from '../../processors/slo/evaluator.ts';
import { SlotRing } from '../../processors/slo/slot-ring.ts';
import { availabilityConfig, countsByMinute, endOfMinute, HOUR, MIN, referenceBurning, span, trafficByMinute } from './helpers.ts';

const firingSet = (r: EvaluationResult) => r.firing.map((a) => `${a.severity}:${a.windows}`).sort();

/** 100 events in each of minutes [0, n), `bad(m)` of them errors. */
function feed(ev: SloEvaluator, from: number, to: number, bad: (m: number) => number, perMinute = 100): void {
  for (let m = from; m < to; m++) {
    for (let i = 0; i < perMinute; i++) ev.ingestOne(span(m * MIN + i * 100, i < bad(m)));
  }
}

describe('burn-rate formulas', () => {
  it('computes ratio, burn rate, threshold and budget as defined', () => {
    expect(errorRatio(990, 1000)).toBeCloseTo(0.01, 12);
    expect(errorRatio(0, 0)).toBe(0);
    expect(burnRate(0.01, 0.999)).toBeCloseTo(10, 9);
    expect(ratioThreshold(14.4, 0.999)).toBeCloseTo(0.0144, 12);
    expect(budgetRemaining(9995, 10000, 0.999)).toBeCloseTo(0.5, 9); // 5 of 10 allowed errors spent
    expect(budgetRemaining(0, 0, 0.999)).toBe(1);
    expect(budgetRemaining(9980, 10000, 0.999)).toBeCloseTo(-1, 9); // overspent twice
  });
});

describe('multiwindow evaluation (objective 99.9%, 100 events/min)', () => {
  it('a 20%-error 5-minute burst after a clean hour fires all four rules with hand-computed burn rates', () => {
    const ev = new SloEvaluator(availabilityConfig());
    feed(ev, 0, 60, (m) => (m >= 55 ? 20 : 0));
    const r = ev.evaluate(endOfMinute(0, 59));
    // 1h: 100 bad / 6000 = 1/60 → burn 16.67 > 14.4; 5m: 100/500 = 0.2 → burn 200.
    const page = r.transitions.find((t) => t.windows === '1h/5m')!;
    expect(page.status).toBe('firing');
    expect(page.burnRateLong).toBeCloseTo(1000 / 60, 6);
    expect(page.burnRateShort).toBeCloseTo(200, 6);
    expect(page.eventsLong).toBe(6000);
    // 30-day budget: 100 bad of 6 allowed (0.1% of 6000) → 1 − 100/6 left.
    expect(page.budgetRemaining).toBeCloseTo(1 - 100 / 6, 6);
    expect(page.exemplarTraceId).toMatch(/^[0-9a-f]{32}$/);
    expect(firingSet(r)).toEqual(['page:1h/5m', 'page:6h/30m', 'ticket:1d/2h', 'ticket:3d/6h']);
    // Re-evaluating at the same time is not a new transition.
    expect(ev.evaluate(endOfMinute(0, 59)).transitions).toEqual([]);
  });

  it('below the factor does not fire: 1h ratio 0.0133 < 0.0144 even with a hot 5m window', () => {
    const ev = new SloEvaluator(availabilityConfig());
    feed(ev, 0, 60, (m) => (m >= 56 ? 20 : 0)); // 80 bad / 6000 = 0.01333 → burn 13.3
    const r = ev.evaluate(endOfMinute(0, 59));
    expect(firingSet(r)).not.toContain('page:1h/5m');
    expect(ev.summaries()[0]!.burnRates['1h']).toBeCloseTo(80 / 6, 6);
  });

  it('window edge: one fully bad minute keeps the page alert for exactly 5 minutes of the short window', () => {
    const ev = new SloEvaluator(availabilityConfig());
    feed(ev, 0, 60, (m) => (m === 59 ? 100 : 0)); // 1h 100/6000 > 0.0144
    expect(ev.evaluate(endOfMinute(0, 59)).transitions.map((t) => t.windows)).toContain('1h/5m');
    for (let m = 60; m <= 63; m++) {
      feed(ev, m, m + 1, () => 0);
      const r = ev.evaluate(endOfMinute(0, m));
      expect(firingSet(r), `minute ${m}`).toContain('page:1h/5m'); // minute 59 still inside (m−4..m)
    }
    feed(ev, 64, 65, () => 0);
    // The window is (head−5, head] in minutes: at the first instant of minute 64, minute 59 has left it.
    const r = ev.evaluate(64 * MIN);
    const resolved = r.transitions.find((t) => t.windows === '1h/5m')!;
    expect(resolved.status).toBe('resolved');
    expect(resolved.startsAtMs).toBe(endOfMinute(0, 59));
    expect(resolved.burnRateShort).toBe(0);
  });

  it('an error ratio exactly at the threshold does not fire (strictly greater, like the Prometheus rule)', () => {
    // objective 0.99, factor 1 (3d/6h): threshold 0.01; exactly 1% errors everywhere.
    const ev = new SloEvaluator(availabilityConfig({ objective: 0.99 }));
    feed(ev, 0, 600, () => 1);
    expect(firingSet(ev.evaluate(endOfMinute(0, 599)))).toEqual([]);
    feed(ev, 600, 601, () => 2); // pushes both 3d and 6h ratios just over 1%
    expect(firingSet(ev.evaluate(endOfMinute(0, 600)))).toEqual(['ticket:3d/6h']);
  });

  it('objective edge values: 0.5 can never page on 1h/5m (would need a ratio above 7.2), 0.9999 pages at 0.15%', () => {
    const lax = new SloEvaluator(availabilityConfig({ objective: 0.5 }));
    feed(lax, 0, 60, () => 100); // 100% errors
    const r = lax.evaluate(endOfMinute(0, 59));
    expect(firingSet(r)).toEqual(['ticket:3d/6h']); // factor 1 × 0.5 = 0.5 < 1.0
    expect(r.firing[0]!.burnRateLong).toBeCloseTo(2, 9);

    const strict = new SloEvaluator(availabilityConfig({ objective: 0.9999 }));
    // 200/min: 1h 18 bad / 12000 = 0.0015 > 0.00144; 5m 18 / 1000 = 0.018.
    feed(strict, 0, 60, (m) => (m === 59 ? 18 : 0), 200);
    const s = strict.evaluate(endOfMinute(0, 59));
    expect(s.firing.find((a) => a.windows === '1h/5m')).toBeDefined();
    const strict2 = new SloEvaluator(availabilityConfig({ objective: 0.9999 }));
    feed(strict2, 0, 60, (m) => (m === 59 ? 17 : 0), 200); // 17 / 12000 = 0.001417 < 0.00144
    expect(strict2.evaluate(endOfMinute(0, 59)).firing.find((a) => a.windows === '1h/5m')).toBeUndefined();
  });

  it('minimum-traffic guard: an idle service with a few errors does not page until the long window has minEvents', () => {
    const ev = new SloEvaluator(availabilityConfig({ minEvents: 10 }));
    for (let i = 0; i < 9; i++) ev.ingestOne(span(30 * MIN + i, true)); // 9 events, all errors
    const r = ev.evaluate(endOfMinute(0, 30));
    expect(r.firing).toEqual([]);
    expect(ev.summaries()[0]!.burnRates['1h']).toBeCloseTo(1000, 6); // burning hard, but too few events
    ev.ingestOne(span(30 * MIN + 50, true)); // the 10th
    expect(firingSet(ev.evaluate(endOfMinute(0, 30)))).toEqual(['page:1h/5m', 'page:6h/30m', 'ticket:1d/2h', 'ticket:3d/6h']);
  });

  it('a service with no traffic at all reports burn 0 and a full budget, and its windows keep sliding', () => {
    const ev = new SloEvaluator(availabilityConfig({ minEvents: 0 }));
    const r = ev.evaluate(10 * HOUR);
    expect(r.firing).toEqual([]);
    expect(ev.summaries()[0]).toMatchObject({ budgetRemaining: 1, firing: [] });
    feed(ev, 600, 601, () => 100);
    expect(ev.evaluate(endOfMinute(0, 600)).firing.length).toBe(4);
    // Idle afterwards: evaluation time alone moves the windows and resolves the page alert.
    const later = ev.evaluate(endOfMinute(0, 605));
    expect(later.transitions.filter((t) => t.status === 'resolved').map((t) => t.windows)).toEqual(['1h/5m']);
  });
});

describe('event time: lateness and out-of-order', () => {
  it('counts samples older than watermark − lateness as dropped-late and applies ones at the bound', () => {
    const ev = new SloEvaluator(availabilityConfig({ lateness: '10m' }));
    ev.ingestOne(span(100 * MIN)); // watermark = minute 100
    ev.ingestOne(span(90 * MIN - 1, true)); // 10 min + 1 ms late
    ev.ingestOne(span(90 * MIN, true)); // exactly at the bound
    const st = ev.state('acme', 'checkout-availability')!;
    expect(st.droppedLate).toBe(1);
    expect(st.window(30)).toEqual({ good: 1, total: 2 });
    expect(st.window(5)).toEqual({ good: 1, total: 1 }); // minute 90 is outside (96..100]
    expect(ev.summaries()[0]!.droppedLate).toBe(1);
  });

  it('the evaluation clock is also a watermark: data later than lateness behind it is dropped', () => {
    const ev = new SloEvaluator(availabilityConfig({ lateness: '2m' }));
    ev.evaluate(50 * MIN);
    expect(ev.ingestOne(span(47 * MIN, true))).toBe(true); // matched, but late
    expect(ev.state('acme', 'checkout-availability')!.droppedLate).toBe(1);
  });

  it('refuses samples more than 1h ahead of the evaluation clock (a skewed client cannot wipe the windows)', () => {
    const ev = new SloEvaluator(availabilityConfig());
    feed(ev, 0, 60, (m) => (m === 59 ? 100 : 0));
    expect(ev.evaluate(endOfMinute(0, 59)).firing.length).toBe(4);
    ev.ingestOne(span(endOfMinute(0, 59) + 3_600_001, false)); // 1 h + 1 ms ahead: refused
    ev.ingestOne(span(endOfMinute(0, 59) + 3_600_000, false)); // exactly 1 h ahead: applied
    const st = ev.state('acme', 'checkout-availability')!;
    expect(st.droppedFuture).toBe(1);
    expect(st.window(4320).total).toBe(6001);
    expect(ev.summaries()[0]).toMatchObject({ droppedFuture: 1, droppedLate: 0 });
  });

  it('shuffled arrival within lateness gives the same windows and alerts as in-order arrival', () => {
    const traffic = trafficByMinute({ startMs: 0, minutes: 90, perMinute: 40, burstFrom: 60, burstTo: 70, errorsPerMinute: 10 });
    const inOrder = new SloEvaluator(availabilityConfig({ lateness: '10m' }));
    const shuffled = new SloEvaluator(availabilityConfig({ lateness: '10m' }));
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const a: string[] = [];
    const b: string[] = [];
    // Deliver in chunks of 5 minutes; shuffle within each chunk (≤ 5 min disorder < 10 min lateness).
    for (let c = 0; c < 90; c += 5) {
      const chunk = traffic.slice(c, c + 5).flat();
      inOrder.ingest(chunk);
      const mixed = [...chunk].sort(() => rand() - 0.5);
      shuffled.ingest(mixed);
      const at = endOfMinute(0, c + 4);
      a.push(...inOrder.evaluate(at).transitions.map((t) => `${t.status}:${t.windows}@${t.atMs}`));
      b.push(...shuffled.evaluate(at).transitions.map((t) => `${t.status}:${t.windows}@${t.atMs}`));
    }
    expect(b).toEqual(a);
    expect(a.length).toBeGreaterThan(0);
    expect(shuffled.state('acme', 'checkout-availability')!.droppedLate).toBe(0);
  });

  it('matches a naive reference evaluator minute by minute through a burst', () => {
    const t = { startMs: 0, minutes: 200, perMinute: 50, burstFrom: 100, burstTo: 115, errorsPerMinute: 5 };
    const traffic = trafficByMinute(t);
    const counts = countsByMinute(traffic);
    const ev = new SloEvaluator(availabilityConfig());
    for (let m = 0; m < t.minutes; m++) {
      ev.ingest(traffic[m]!);
      const got = firingSet(ev.evaluate(endOfMinute(0, m)));
      expect(got, `minute ${m}`).toEqual(referenceBurning(counts, m, 0.999, 10).sort());
    }
  });
});

describe('SlotRing running sums', () => {
  it('stay equal to a full scan under random adds, out-of-order slots and head jumps', () => {
    const windows = [1, 5, 30, 60, 360];
    const ring = new SlotRing(MIN, 360, windows);
    let seed = 42;
    const rand = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
    let head = 1000;
    for (let step = 0; step < 5000; step++) {
      const op = rand(100);
      if (op < 5) head += rand(3) === 0 ? 400 + rand(200) : rand(10); // occasionally jump past the ring
      const slot = head - rand(400); // some slots too old for the ring: must be refused
      const accepted = ring.add(slot, rand(3), 3);
      expect(accepted).toBe(slot > ring.head - 360);
      if (step % 50 === 0) {
        windows.forEach((w, i) => {
          const scan = ring.scanWindow(w);
          expect(ring.windowGood(i)).toBe(scan.good);
          expect(ring.windowTotal(i)).toBe(scan.total);
        });
      }
    }
  });

  it('keep exact 3-day sums after 4320 minutes, in a state under 100 KB', () => {
    const ev = new SloEvaluator(availabilityConfig());
    feed(ev, 0, 4320, () => 0, 2);
    const st = ev.state('acme', 'checkout-availability')!;
    ev.evaluate(endOfMinute(0, 4319));
    expect(st.window(4320)).toEqual({ good: 8640, total: 8640 });
    expect(st.byteSize()).toBeLessThanOrEqual(100 * 1024);
  });
});
