// Adjusted counts for sampled spans (pure): the OpenTelemetry `th` threshold encoding the receiver
// writes and the SLO processor reads, span weights (receiver ratio × an upstream SDK's tracestate
// threshold; errors kept by the receiver with probability 1), and exact weighted window sums.
import Long from 'long';
import { describe, expect, it } from 'vitest';
import { decodeTraces, types } from '../../lib/otlp/proto.ts';
import { SloEvaluator } from '../../processors/slo/evaluator.ts';
import { quantizeWeight, samplesFromTraces } from '../../processors/slo/samples.ts';
import { SlotRing } from '../../processors/slo/slot-ring.ts';
import { restoreEvaluator, snapshotEvaluator } from '../../processors/slo/snapshot.ts';
import { HeadSampler, otelThresholdHex, probabilityFromThreshold, tracestateProbability } from '../../receiver/sampling.ts';
import { availabilityConfig, endOfMinute, span } from './helpers.ts';

describe('OpenTelemetry th threshold', () => {
  it('encodes the receiver ratio as th and decodes it back exactly', () => {
    const th = (ratio: number) => otelThresholdHex(new HeadSampler({ defaultRatio: ratio, tenants: {} }).thresholdFor('t'));
    // Spec examples: 50% = th:8, 25% = th:c, 100% = th:0 (and nothing to say when nothing is sampled).
    expect(th(0.5)).toBe('8');
    expect(th(0.25)).toBe('c');
    expect(th(1)).toBeUndefined(); // ratio 1: the receiver does not sample, no header
    expect(otelThresholdHex(2 ** 32)).toBe('0');
    expect(th(0)).toBeUndefined(); // nothing but errors kept: no adjusted count exists
    for (const ratio of [0.5, 0.25, 0.1, 0.01, 0.001, 0.9999]) {
      const threshold = new HeadSampler({ defaultRatio: ratio, tenants: {} }).thresholdFor('t')!;
      expect(probabilityFromThreshold(th(ratio)!)).toBe(threshold / 2 ** 32); // the ratio the receiver really applied
    }
    expect(probabilityFromThreshold('0')).toBe(1);
    expect(probabilityFromThreshold('fd70a4')).toBeCloseTo(1 - 0xfd70a4 / 2 ** 24, 15);
    expect(probabilityFromThreshold('fffffffffffffff')).toBeUndefined(); // 15 digits
    expect(probabilityFromThreshold('FF')).toBeUndefined(); // lower-case hex only
    expect(probabilityFromThreshold('')).toBeUndefined();
  });

  it('reads th from the ot member of a W3C tracestate and ignores everything else', () => {
    expect(tracestateProbability('ot=th:8')).toBe(0.5);
    expect(tracestateProbability('vendor=a:b,ot=rv:fe123456789abc;th:c , other=1')).toBe(0.25);
    expect(tracestateProbability('vendor=th:8')).toBeUndefined();
    expect(tracestateProbability('ot=rv:fe123456789abc')).toBeUndefined();
    expect(tracestateProbability('ot=th:zz')).toBeUndefined();
    expect(tracestateProbability('')).toBeUndefined();
  });
});

const T0 = Long.fromString('1763900000000000000');
function traces(spans: { traceState?: string; error?: boolean; http?: number; noTrace?: boolean }[]): Uint8Array {
  return types.ExportTraceServiceRequest.encode(types.ExportTraceServiceRequest.fromObject({
    resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] }, scopeSpans: [{ spans: spans.map((s, i) => ({
      traceId: s.noTrace ? Buffer.alloc(0) : Buffer.alloc(16, i + 1), spanId: Buffer.alloc(8, i + 1), name: 'POST /checkout', kind: 2,
      traceState: s.traceState ?? '', startTimeUnixNano: T0, endTimeUnixNano: T0.add(20_000_000),
      status: { code: s.error ? 2 : 1 },
      attributes: s.http ? [{ key: 'http.response.status_code', value: { intValue: s.http } }] : [],
    })) }] }],
  })).finish();
}

describe('span weights', () => {
  it('1/p for spans the receiver sampled, 1 for errors it always keeps, times 1/p of an upstream th', () => {
    const req = decodeTraces(traces([
      {}, // sampled by the receiver at 0.1
      { error: true }, // status ERROR: always kept by the receiver
      { http: 503 }, // an SLO error, but status UNSET: the receiver sampled it like any other span
      { traceState: 'ot=th:8' }, // sampled upstream at 0.5, then by the receiver
      { traceState: 'ot=th:8', error: true }, // upstream 0.5 only
      { noTrace: true }, // no trace id: the receiver keeps it (nothing to key a decision on)
    ]));
    const p = 0.1;
    const w = samplesFromTraces('acme', req, p).map((s) => s.weight);
    expect(w).toEqual([quantizeWeight(10), 1, quantizeWeight(10), quantizeWeight(20), 2, 1]);
    expect(quantizeWeight(1 / 0.1)).toBe(10);
    // Not sampled by the receiver: only upstream thresholds count.
    expect(samplesFromTraces('acme', req).map((s) => s.weight)).toEqual([1, 1, 1, 2, 2, 1]);
  });

  it('weighted window sums stay exact as minutes enter and leave the windows', () => {
    const ring = new SlotRing(60_000, 4320, [5, 60]);
    const weight = quantizeWeight(1 / 0.1000000001); // not a round number: 10 minus a little
    expect(weight * 1024).toBe(Math.round(weight * 1024));
    let scanGood = 0;
    for (let m = 0; m < 500; m++) {
      for (let i = 0; i < 37; i++) ring.add(m, weight, weight);
      ring.add(m, 0, 1);
      if (m >= 440) scanGood += 37 * weight;
    }
    // Running sums (added and subtracted 500 times) equal a fresh scan, bit for bit.
    expect(ring.windowGood(1)).toBe(ring.scanWindow(60).good);
    expect(ring.windowGood(1)).toBe(scanGood);
    expect(ring.windowTotal(0)).toBe(ring.scanWindow(5).total);
  });

  it('the evaluator counts weights, and weighted states survive a checkpoint', () => {
    const ev = new SloEvaluator(availabilityConfig({ objective: 0.99 }));
    // 1 error (weight 1) and 9.9 successes' worth of kept spans (one of weight 9.9 ≈ 1/0.101): ratio 1/10.9.
    const w = quantizeWeight(9.9);
    ev.ingest([span(1000, true), { ...span(2000, false), weight: w }]);
    ev.evaluate(endOfMinute(0, 0));
    const s = ev.state('acme', 'checkout-availability')!;
    expect(s.window(5)).toEqual({ good: w, total: 1 + w });
    expect(ev.summaries()[0]!.burnRates['5m']).toBeCloseTo((1 / (1 + w)) / 0.01, 12);
    const restored = new SloEvaluator(availabilityConfig({ objective: 0.99 }));
    restoreEvaluator(restored, snapshotEvaluator(ev));
    expect(restored.state('acme', 'checkout-availability')!.window(5)).toEqual({ good: w, total: 1 + w });
    expect(restored.summaries()).toEqual(ev.summaries());
  });
});

describe('older checkpoints', () => {
  it('a v1 snapshot (u32 counts, no latest evaluation) still restores: windows, alerts and a report', () => {
    const ev = new SloEvaluator(availabilityConfig());
    for (let m = 0; m < 95; m++) {
      for (let i = 0; i < 100; i++) ev.ingestOne(span(m * 60_000 + i * 500, m >= 90 && i < 50));
      ev.evaluate(endOfMinute(0, m));
    }
    const s = ev.state('acme', 'checkout-availability')!;
    // The v1 layout, written by hand: "SLOS" 1 nStates, key, fingerprint, watermark, droppedLate,
    // exemplar, exemplarTime, alerts, rings of { f64 slot, u32 good, u32 total }.
    const parts: Buffer[] = [Buffer.from('SLOS'), Buffer.of(1)];
    const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
    const f64 = (v: number) => { const b = Buffer.alloc(8); b.writeDoubleLE(v); parts.push(b); };
    const str = (v: string) => { u32(Buffer.byteLength(v)); parts.push(Buffer.from(v)); };
    u32(1); str(s.key); str(s.fingerprint); f64(s.watermarkMs); f64(s.droppedLate); str(s.exemplarTraceId); f64(s.exemplarTimeMs);
    parts.push(Buffer.of(s.alerts.length));
    for (const a of s.alerts) { parts.push(Buffer.of(a.firing ? 1 : 0)); f64(a.startsAtMs); }
    for (const ring of [s.minutes, s.hours]) {
      const slots: number[][] = [];
      ring.forEachNonEmpty((slot, good, total) => slots.push([slot, good, total]));
      f64(ring.head); u32(slots.length);
      for (const [slot, good, total] of slots) { f64(slot!); u32(good!); u32(total!); }
    }
    const restored = new SloEvaluator(availabilityConfig());
    expect(restoreEvaluator(restored, Buffer.concat(parts)).restored).toEqual(['acme/checkout-availability']);
    const r = restored.state('acme', 'checkout-availability')!;
    for (const w of [5, 30, 60, 120, 360, 1440, 4320]) expect(r.window(w)).toEqual(s.window(w));
    expect(r.alerts).toEqual(s.alerts);
    // Its latest evaluation is rebuilt from the rings (here identical: nothing arrived after it).
    expect(restored.summaries()).toEqual(ev.summaries());
    expect(restored.firingNow().map((a) => a.windows)).toEqual(ev.firingNow().map((a) => a.windows));
  });
});
