// Checkpoint/restore during a burn: the runner stores snapshot bytes with the consumed offsets;
// after a crash it restores and replays from those offsets. That must produce exactly the
// transitions of an uninterrupted run — no second "firing", no forgotten burning window.
import { describe, expect, it } from 'vitest';
import { parseSloConfig } from '../../processors/slo/config.ts';
import { SloEvaluator, type AlertStatus } from '../../processors/slo/evaluator.ts';
import { restoreEvaluator, snapshotEvaluator } from '../../processors/slo/snapshot.ts';
import { availabilityConfig, endOfMinute, trafficByMinute } from './helpers.ts';

const traffic = trafficByMinute({ startMs: 0, minutes: 180, perMinute: 60, burstFrom: 100, burstTo: 120, errorsPerMinute: 30 });
const fmt = (t: AlertStatus) => `${t.status} ${t.severity}:${t.windows} at=${t.atMs} starts=${t.startsAtMs}`;

/** Runs minutes [from, to): ingest a minute, evaluate at its end. Returns transitions. */
function run(ev: SloEvaluator, from: number, to: number): string[] {
  const out: string[] = [];
  for (let m = from; m < to; m++) {
    ev.ingest(traffic[m]!);
    out.push(...ev.evaluate(endOfMinute(0, m)).transitions.map(fmt));
  }
  return out;
}

const uninterrupted = run(new SloEvaluator(availabilityConfig()), 0, 180);

describe('snapshot / restore', () => {
  it('the uninterrupted run pages once and resolves once (baseline for the rest)', () => {
    expect(uninterrupted.filter((t) => t.startsWith('firing page:1h/5m'))).toHaveLength(1);
    expect(uninterrupted.filter((t) => t.startsWith('resolved page:1h/5m'))).toHaveLength(1);
  });

  for (const checkpointMinute of [99, 101, 110, 121, 130]) {
    it(`crash after a checkpoint at minute ${checkpointMinute}, restore, replay: identical transitions`, () => {
      const first = new SloEvaluator(availabilityConfig());
      const before = run(first, 0, checkpointMinute + 1);
      const checkpoint = snapshotEvaluator(first);
      // The process keeps going past the checkpoint (uncommitted work, maybe already-sent alerts), then dies.
      run(first, checkpointMinute + 1, Math.min(180, checkpointMinute + 7));

      const second = new SloEvaluator(availabilityConfig());
      expect(restoreEvaluator(second, checkpoint)).toEqual({ restored: ['acme/checkout-availability'], discarded: [] });
      const after = run(second, checkpointMinute + 1, 180); // replay from the checkpointed offsets
      expect([...before, ...after]).toEqual(uninterrupted);
    });
  }

  it('a restored burning state is still firing (not forgotten) and its windows are intact', () => {
    const ev = new SloEvaluator(availabilityConfig());
    run(ev, 0, 110);
    const restored = new SloEvaluator(availabilityConfig());
    restoreEvaluator(restored, snapshotEvaluator(ev));
    const a = ev.state('acme', 'checkout-availability')!;
    const b = restored.state('acme', 'checkout-availability')!;
    for (const w of [5, 30, 60, 120, 360, 1440, 4320]) expect(b.window(w)).toEqual(a.window(w));
    expect(b.budgetWindow()).toEqual(a.budgetWindow());
    expect(b.alerts).toEqual(a.alerts);
    expect(b.exemplarTraceId).toBe(a.exemplarTraceId);
    // Same evaluation time: nothing new to say.
    const r = restored.evaluate(endOfMinute(0, 109));
    expect(r.transitions).toEqual([]);
    expect(r.firing.map((f) => f.windows)).toContain('1h/5m');
  });

  it('is deterministic: same state, same bytes; snapshot(restore(x)) = x; compact', () => {
    const a = new SloEvaluator(availabilityConfig());
    const b = new SloEvaluator(availabilityConfig());
    run(a, 0, 150);
    run(b, 0, 150);
    const bytes = snapshotEvaluator(a);
    expect(Buffer.from(snapshotEvaluator(b)).equals(Buffer.from(bytes))).toBe(true);
    const c = new SloEvaluator(availabilityConfig());
    restoreEvaluator(c, bytes);
    expect(Buffer.from(snapshotEvaluator(c)).equals(Buffer.from(bytes))).toBe(true);
    expect(bytes.length).toBeLessThan(150 * 24 + 7 * 24 + 512); // only non-empty minutes and hours are written (24 bytes each)
  });

  it('keeps states whose SLI is unchanged, discards ones whose meaning changed or that are gone', () => {
    const yaml = (threshold: string, extra = '') => `
slos:
  - { name: lat, tenant: acme, service: checkout, objective: 0.99, sli: { type: latency, threshold: ${threshold}, spans: {} } }
  - { name: avail, tenant: acme, service: checkout, objective: 0.99, sli: { type: availability, spans: {} } }
${extra}`;
    const ev = new SloEvaluator(parseSloConfig(yaml('1s', '  - { name: old, tenant: acme, service: checkout, objective: 0.9, sli: { type: availability, spans: {} } }')));
    run(ev, 0, 10);
    const next = new SloEvaluator(parseSloConfig(yaml('2s').replace('objective: 0.99, sli: { type: availability', 'objective: 0.95, sli: { type: availability')));
    expect(restoreEvaluator(next, snapshotEvaluator(ev))).toEqual({ restored: ['acme/avail'], discarded: ['acme/lat', 'acme/old'] });
    expect(next.state('acme', 'avail')!.window(60).total).toBe(600);
    expect(next.state('acme', 'lat')!.window(60).total).toBe(0);
  });

  it('rejects corrupt snapshots with a clear error', () => {
    const ev = new SloEvaluator(availabilityConfig());
    run(ev, 0, 5);
    const bytes = snapshotEvaluator(ev);
    expect(() => restoreEvaluator(new SloEvaluator(availabilityConfig()), bytes.slice(0, bytes.length - 3))).toThrow(/truncated/);
    expect(() => restoreEvaluator(new SloEvaluator(availabilityConfig()), Uint8Array.from([1, 2, 3, 4, 5]))).toThrow(/bad magic/);
  });
});
