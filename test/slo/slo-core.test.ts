// The runner-facing facade on encoded OTLP: a burst yields the page transition, its slo_events
// record, timeline row and incident-mode start, plus per-minute golden signals; a checkpoint taken
// mid-burn, restored and replayed gives exactly the outputs of an uninterrupted run.
import Long from 'long';
import { describe, expect, it } from 'vitest';
import { decodeTraces, types } from '../../lib/otlp/proto.ts';
import { SloCore, type SloTick } from '../../processors/slo/slo-core.ts';
import { availabilityConfig, endOfMinute, MIN } from './helpers.ts';

const MINUTES = 130;
const START_MS = 1_763_900_000_000 - (1_763_900_000_000 % MIN);

/** One encoded export per minute: 100 server spans, 50 of them ERROR in minutes [90, 110). */
const exports: Uint8Array[] = Array.from({ length: MINUTES }, (_, m) => {
  const spans = Array.from({ length: 100 }, (_, i) => {
    const end = Long.fromNumber(START_MS + m * MIN + i * 500).multiply(1_000_000);
    return {
      traceId: Buffer.from((m * 1000 + i + 1).toString(16).padStart(32, '0'), 'hex'), spanId: Buffer.alloc(8, 1),
      name: 'POST /checkout', kind: 2, startTimeUnixNano: end.subtract(Long.fromNumber((i % 10 + 1) * 10_000_000)), endTimeUnixNano: end,
      status: { code: m >= 90 && m < 110 && i < 50 ? 2 : 0 },
    };
  });
  return types.ExportTraceServiceRequest.encode(types.ExportTraceServiceRequest.fromObject({
    resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] }, scopeSpans: [{ spans }] }],
  })).finish();
});

const summary = (t: SloTick) => ({
  transitions: t.evaluation.transitions.map((x) => `${x.status} ${x.windows} ${x.startsAtMs}`),
  sloEvents: t.sloEvents, timelineEvents: t.timelineEvents, goldenSignals: t.goldenSignals, incidentEvents: t.incidentEvents,
});

function run(core: SloCore, from: number, to: number) {
  const out: ReturnType<typeof summary>[] = [];
  for (let m = from; m < to; m++) {
    core.ingestTraces('acme', decodeTraces(exports[m]!));
    out.push(summary(core.tick(endOfMinute(START_MS, m))));
  }
  return out;
}

const uninterrupted = run(new SloCore(availabilityConfig()), 0, MINUTES);

describe('SloCore', () => {
  it('turns an encoded OTLP burst into a page transition, its records, an incident and golden signals', () => {
    const fired = uninterrupted[91]!;
    expect(fired.transitions).toContain(`firing 1h/5m ${endOfMinute(START_MS, 91)}`);
    expect(fired.sloEvents.map((r) => JSON.parse(r.value).kind)).toContain('slo.breach.started');
    expect(fired.timelineEvents.some((e) => e.kind === 'slo.breach.started' && JSON.parse(e.details).windows === '1h/5m')).toBe(true);
    expect(fired.incidentEvents).toEqual([expect.objectContaining({ kind: 'incident.mode.started', tenant: 'acme', reason: 'slo:checkout-availability 1h/5m' })]);
    expect(uninterrupted.flatMap((t) => t.incidentEvents).filter((e) => e.kind === 'incident.mode.started')).toHaveLength(1);
    // Golden signals: one row per closed minute; a tick at the end of minute m emits minutes < m − 2 (2 min lateness).
    const rows = uninterrupted.flatMap((t) => t.goldenSignals);
    expect(rows.map((r) => (r.minuteStartMs - START_MS) / MIN)).toEqual(Array.from({ length: MINUTES - 3 }, (_, i) => i));
    expect(rows[95]).toMatchObject({ tenant: 'acme', service: 'checkout', minuteStartMs: START_MS + 95 * MIN, requests: 100, errors: 50, errorRate: 0.5 });
    expect(rows[10]!.p50Ms).toBeGreaterThan(45);
    expect(rows[10]!.p50Ms).toBeLessThan(55); // durations 10..100 ms, median 50
  });

  for (const checkpointMinute of [60, 95, 111]) {
    it(`checkpoint at minute ${checkpointMinute}, crash, restore, replay: identical outputs`, () => {
      const first = new SloCore(availabilityConfig());
      const before = run(first, 0, checkpointMinute + 1);
      const checkpoint = first.checkpoint();
      run(first, checkpointMinute + 1, checkpointMinute + 4); // progress that the crash loses
      const second = new SloCore(availabilityConfig());
      expect(second.restore(checkpoint).restored).toEqual(['acme/checkout-availability']);
      const after = run(second, checkpointMinute + 1, MINUTES);
      expect([...before, ...after]).toEqual(uninterrupted);
      expect(Buffer.from(second.checkpoint()).equals(Buffer.from(runToEnd()))).toBe(true);
    });
  }

  it('rejects a foreign or truncated checkpoint', () => {
    const cp = new SloCore(availabilityConfig()).checkpoint();
    expect(() => new SloCore(availabilityConfig()).restore(cp.slice(0, cp.length - 1))).toThrow(/truncated/);
    expect(() => new SloCore(availabilityConfig()).restore(Buffer.from('nope'))).toThrow(/bad magic/);
  });
});

let endCheckpoint: Uint8Array | undefined;
function runToEnd(): Uint8Array {
  if (!endCheckpoint) {
    const c = new SloCore(availabilityConfig());
    run(c, 0, MINUTES);
    endCheckpoint = c.checkpoint();
  }
  return endCheckpoint;
}
