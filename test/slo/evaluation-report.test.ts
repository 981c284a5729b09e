// What GET /obs/slo reports and what the runner re-sends come from ONE evaluation: burn rates,
// budget and firing alerts of the same minute, never the live head (which may already hold part of
// the next minute) mixed with the previous evaluation's alert flags; and they survive a checkpoint.
import { describe, expect, it } from 'vitest';
import { renderSlo } from '../../api/slo-routes.ts';
import { AlertDispatcher } from '../../processors/slo/alert-dispatcher.ts';
import { SloEvaluator } from '../../processors/slo/evaluator.ts';
import { restoreEvaluator, snapshotEvaluator } from '../../processors/slo/snapshot.ts';
import { availabilityConfig, endOfMinute, MIN, trafficByMinute } from './helpers.ts';

const START = 1_700_000_000_000 - (1_700_000_000_000 % MIN);
// Burst of 50 errors/min from minute 90: the 1h/5m page fires at the end of minute 91.
const traffic = trafficByMinute({ startMs: START, minutes: 130, perMinute: 100, burstFrom: 90, burstTo: 110, errorsPerMinute: 50 });

function runTo(ev: SloEvaluator, lastMinute: number) {
  let last;
  for (let m = 0; m <= lastMinute; m++) { ev.ingest(traffic[m]!); last = ev.evaluate(endOfMinute(START, m)); }
  return last!;
}

describe('one evaluation per report', () => {
  it('a partial next minute changes neither the reported burn rates nor firing, until it is evaluated', () => {
    const ev = new SloEvaluator(availabilityConfig());
    runTo(ev, 88); // clean so far
    const before = ev.summaries()[0]!;
    expect(before.evaluatedAtMs).toBe(endOfMinute(START, 88));
    expect(before.burnRates['5m']).toBe(0);
    // Half of minute 89 arrives (with errors the real traffic does not have), not evaluated yet.
    ev.ingest(traffic[89]!.slice(0, 50).map((s) => ({ ...s, isError: true })));
    const mid = ev.summaries()[0]!;
    expect(mid).toEqual(before); // the head (50 errors in minute 89) is not reported before its evaluation
    // The page fires at the end of minute 91; reported rates equal the firing alert's, at that minute.
    const ev2 = new SloEvaluator(availabilityConfig());
    const at91 = runTo(ev2, 91);
    const page = at91.firing.find((f) => f.windows === '1h/5m')!;
    expect(page).toBeDefined();
    ev2.ingest(traffic[92]!.slice(0, 10)); // early part of the next minute
    const s = ev2.summaries()[0]!;
    expect(s.evaluatedAtMs).toBe(endOfMinute(START, 91));
    expect(s.firing).toContain('page:1h/5m');
    expect(s.burnRates['1h']).toBe(page.burnRateLong);
    expect(s.burnRates['5m']).toBe(page.burnRateShort);
    expect(s.budgetRemaining).toBe(page.budgetRemaining);
    // firingNow (what the runner re-sends) is that same evaluation's alert, not a recomputation at the head.
    expect(ev2.firingNow()).toEqual(at91.firing);
    // The API renders the evaluation's time and minute with them.
    const body = renderSlo(s);
    expect(body.evaluated_at).toBe(new Date(endOfMinute(START, 91)).toISOString());
    expect(body.minute).toBe(new Date(START + 91 * MIN).toISOString());
  });

  it('never evaluated: zero burn, nothing firing, no minute', () => {
    const ev = new SloEvaluator(availabilityConfig());
    ev.ingest(traffic[0]!.map((x) => ({ ...x, isError: true })));
    const s = ev.summaries()[0]!;
    expect(s.evaluatedAtMs).toBeNull();
    expect(Object.values(s.burnRates).every((v) => v === 0)).toBe(true);
    expect(renderSlo(s)).toMatchObject({ evaluated_at: null, minute: null, firing: [] });
  });

  it('the latest evaluation survives a checkpoint: same report and same re-sent alerts after a restore', () => {
    const ev = new SloEvaluator(availabilityConfig());
    const at100 = runTo(ev, 100);
    ev.ingest(traffic[101]!.slice(0, 30)); // in the checkpoint's rings, not yet evaluated
    const restored = new SloEvaluator(availabilityConfig());
    restoreEvaluator(restored, snapshotEvaluator(ev));
    expect(restored.summaries()).toEqual(ev.summaries());
    expect(restored.firingNow()).toEqual(at100.firing);
    expect(restored.firingNow().map((f) => f.windows)).toContain('1h/5m');
    // The snapshot stays deterministic.
    expect(Buffer.from(snapshotEvaluator(restored))).toEqual(Buffer.from(snapshotEvaluator(ev)));
  });

  it('the dispatcher refreshes restored firing alerts at once, then only every resend interval', () => {
    const ev = new SloEvaluator(availabilityConfig());
    runTo(ev, 100);
    let now = 5_000_000;
    const sent: unknown[] = [];
    const d = new AlertDispatcher({ alertmanagers: ['http://127.0.0.1:9'], resendIntervalMs: 60_000, clock: () => now });
    // Count what would be posted (the poster queue), without a network.
    for (const p of d.alertmanagers) p.enqueue = (body: unknown) => { sent.push(body); };
    const firing = ev.firingNow();
    expect(d.refresh(firing)).toBe(firing.length);
    expect(d.refresh(firing)).toBe(0);
    now += 59_999;
    expect(d.refresh(firing)).toBe(0);
    now += 1;
    expect(d.refresh(firing)).toBe(firing.length);
    expect(sent).toHaveLength(2 * firing.length);
    d.close();
  });
});
