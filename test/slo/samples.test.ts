// OTLP (encoded, then decoded by lib/otlp) → SLI samples; histogram samples classified by an SLO;
// golden signals per minute.
import Long from 'long';
import { describe, expect, it } from 'vitest';
import { decodeMetrics, decodeTraces, types } from '../../lib/otlp/proto.ts';
import { parseSloConfig } from '../../processors/slo/config.ts';
import { SloEvaluator } from '../../processors/slo/evaluator.ts';
import { GoldenSignals, latencyBucket, bucketUpperMs } from '../../processors/slo/golden-signals.ts';
import { CumulativeToDelta, histogramGoodCount, samplesFromMetrics, samplesFromTraces } from '../../processors/slo/samples.ts';
import { SloCore } from '../../processors/slo/slo-core.ts';
import { span } from './helpers.ts';

const T0_NS = Long.fromString('1763900000000000000'); // 2025-11-23T12:13:20Z in ns (beyond 2^53)
const ns = (msAfter: number) => T0_NS.add(Long.fromNumber(msAfter).multiply(1_000_000));
const str = (key: string, v: string) => ({ key, value: { stringValue: v } });
const int = (key: string, v: number) => ({ key, value: { intValue: Long.fromNumber(v) } });

function encodeTraces(): Uint8Array {
  const msg = types.ExportTraceServiceRequest.fromObject({
    resourceSpans: [{
      resource: { attributes: [str('service.name', 'checkout')] },
      scopeSpans: [{
        spans: [
          { traceId: Buffer.alloc(16, 0xab), spanId: Buffer.alloc(8, 1), name: 'POST /checkout', kind: 2, startTimeUnixNano: ns(0), endTimeUnixNano: ns(1500), status: { code: 1 } },
          { traceId: Buffer.alloc(16, 0xcd), spanId: Buffer.alloc(8, 2), name: 'POST /checkout', kind: 2, startTimeUnixNano: ns(10), endTimeUnixNano: ns(30), status: { code: 2 } },
          { traceId: Buffer.alloc(16, 0xef), spanId: Buffer.alloc(8, 3), name: 'POST /checkout', kind: 2, startTimeUnixNano: ns(10), endTimeUnixNano: ns(20), attributes: [int('http.response.status_code', 503)] },
          { traceId: Buffer.alloc(16, 0x01), spanId: Buffer.alloc(8, 4), name: 'SELECT', kind: 3, startTimeUnixNano: ns(10), endTimeUnixNano: ns(11), attributes: [int('http.response.status_code', 404)] },
        ],
      }],
    }, {
      resource: { attributes: [] },
      scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 2), spanId: Buffer.alloc(8, 5), name: 'x', kind: 1, startTimeUnixNano: ns(0), endTimeUnixNano: ns(1) }] }],
    }],
  });
  return types.ExportTraceServiceRequest.encode(msg).finish();
}

describe('samplesFromTraces', () => {
  it('maps decoded OTLP spans with event time = end, duration, error rule and hex trace id', () => {
    const samples = samplesFromTraces('acme', decodeTraces(encodeTraces()));
    expect(samples).toHaveLength(5);
    const t0ms = 1763900000000;
    expect(samples[0]).toEqual({ tenant: 'acme', service: 'checkout', spanName: 'POST /checkout', kind: 2, eventTimeMs: t0ms + 1500, durationMs: 1500, isError: false, traceId: 'ab'.repeat(16), weight: 1 });
    expect(samples.map((s) => s.isError)).toEqual([false, true, true, false, false]); // ERROR status; HTTP 503; 404 is not a server error
    expect(samples[4]!.service).toBe('unknown_service');
  });

  it('feeds an SLO end to end: 2 of 3 server spans bad', () => {
    const ev = new SloEvaluator(parseSloConfig(`
slos:
  - { name: co, tenant: acme, service: checkout, objective: 0.9, minEvents: 1, sli: { type: availability, spans: { name: "POST /checkout" } } }
  - { name: slow, tenant: acme, service: checkout, objective: 0.9, minEvents: 1, sli: { type: latency, threshold: 1s, spans: { kind: any } } }
`));
    expect(ev.ingest(samplesFromTraces('acme', decodeTraces(encodeTraces())))).toBe(4);
    const co = ev.state('acme', 'co')!;
    expect(co.window(5)).toEqual({ good: 1, total: 3 }); // the client span is excluded by the default kind=server
    expect(co.exemplarTraceId).toBe('cd'.repeat(16)); // the latest bad event by event time (+30 ms), though it arrived before +20 ms
    const slow = ev.state('acme', 'slow')!;
    expect(slow.window(5)).toEqual({ good: 3, total: 4 }); // only the 1.5 s span is over 1 s; errors do not count for latency
  });
});

function encodeHistograms(temporality: 1 | 2, counts: number[][]): Uint8Array {
  const msg = types.ExportMetricsServiceRequest.fromObject({
    resourceMetrics: [{
      resource: { attributes: [str('service.name', 'api')] },
      scopeMetrics: [{
        metrics: [{
          name: 'http.server.request.duration', unit: 's',
          histogram: {
            aggregationTemporality: temporality,
            dataPoints: counts.map((c, i) => ({
              attributes: [str('http.route', '/search'), int('http.response.status_code', i === 1 ? 500 : 200)],
              startTimeUnixNano: ns(0), timeUnixNano: ns(60_000),
              count: Long.fromNumber(c.reduce((a, b) => a + b, 0)), explicitBounds: [0.1, 0.5, 1],
              bucketCounts: c.map((n) => Long.fromNumber(n)),
            })),
          },
        }],
      }],
    }],
  });
  return types.ExportMetricsServiceRequest.encode(msg).finish();
}

describe('samplesFromMetrics', () => {
  it('turns delta histogram points into samples with bounds in ms and a 5xx error flag', () => {
    const samples = samplesFromMetrics('globex', decodeMetrics(encodeHistograms(1, [[50, 30, 15, 5], [1, 1, 0, 0]])));
    expect(samples).toHaveLength(2);
    expect(samples[0]).toMatchObject({ service: 'api', metric: 'http.server.request.duration', boundsMs: [100, 500, 1000], bucketCounts: [50, 30, 15, 5], count: 100, isError: false });
    expect(samples[1]!.isError).toBe(true);
    expect(histogramGoodCount(samples[0]!, 500)).toBe(80); // buckets ≤ 500 ms
    expect(histogramGoodCount(samples[0]!, 700)).toBe(80); // between bounds: conservative
    expect(histogramGoodCount(samples[0]!, 1000)).toBe(95);
  });

  it('differences cumulative points (first is a baseline) and classifies them in a latency SLO', () => {
    const tracker = new CumulativeToDelta();
    expect(samplesFromMetrics('globex', decodeMetrics(encodeHistograms(2, [[10, 0, 0, 0]])), tracker)).toEqual([]);
    const second = samplesFromMetrics('globex', decodeMetrics(encodeHistograms(2, [[40, 5, 3, 2]])), tracker);
    expect(second[0]).toMatchObject({ bucketCounts: [30, 5, 3, 2], count: 40 });
    expect(samplesFromMetrics('globex', decodeMetrics(encodeHistograms(2, [[40, 5, 3, 2]])))).toEqual([]); // cumulative without a tracker is skipped
    const ev = new SloEvaluator(parseSloConfig(`
slos:
  - { name: search, tenant: globex, service: api, objective: 0.99, sli: { type: latency, threshold: 500ms, metric: { name: http.server.request.duration, attributes: { http.route: /search } } } }
  - { name: other, tenant: globex, service: api, objective: 0.99, sli: { type: latency, threshold: 500ms, metric: { name: http.server.request.duration, attributes: { http.route: /other } } } }
`));
    ev.ingest(second);
    expect(ev.state('globex', 'search')!.window(5)).toEqual({ good: 35, total: 40 });
    expect(ev.state('globex', 'other')!.window(5)).toEqual({ good: 0, total: 0 });
  });
});

describe('cumulative-to-delta state across a restart', () => {
  const config = parseSloConfig(`
slos:
  - { name: search, tenant: globex, service: api, objective: 0.99, sli: { type: latency, threshold: 500ms, metric: { name: http.server.request.duration, attributes: { http.route: /search } } } }
`);

  it('a restored SLO core differences the next cumulative point against the checkpointed one', () => {
    const first = new SloCore(config);
    first.ingestMetrics('globex', decodeMetrics(encodeHistograms(2, [[10, 0, 0, 0]]))); // baseline
    const checkpoint = first.checkpoint();
    const second = new SloCore(config);
    second.restore(checkpoint);
    expect(second.cumulative.size).toBe(1);
    second.ingestMetrics('globex', decodeMetrics(encodeHistograms(2, [[40, 5, 3, 2]])));
    // Without the restored point this interval would be lost (treated as a new baseline).
    expect(second.evaluator.state('globex', 'search')!.window(5)).toEqual({ good: 35, total: 40 });
    expect(Buffer.from(second.checkpoint()).equals(Buffer.from(second.checkpoint()))).toBe(true);
  });

  it('restores a checkpoint written before cumulative state was kept (three parts)', () => {
    const core = new SloCore(config);
    core.ingestMetrics('globex', decodeMetrics(encodeHistograms(2, [[10, 0, 0, 0]])));
    const bytes = Buffer.from(core.checkpoint());
    // Drop the fourth part: what an older build wrote.
    let off = 4;
    for (let i = 0; i < 3; i++) off += 4 + bytes.readUInt32LE(off);
    const restored = new SloCore(config);
    restored.restore(bytes.subarray(0, off));
    expect(restored.cumulative.size).toBe(0);
    expect(() => new SloCore(config).restore(bytes.subarray(0, off + 2))).toThrow(/truncated/);
  });

  it('refuses malformed cumulative state', () => {
    expect(() => new CumulativeToDelta().restore('[["k", "x", []]]')).toThrow(/malformed/);
    expect(() => new CumulativeToDelta().restore('{}')).toThrow(/not a list/);
  });
});

describe('GoldenSignals', () => {
  it('log buckets bound the relative error of reported quantiles', () => {
    for (const ms of [0.01, 0.5, 3, 42, 999, 2000, 60_000]) {
      const upper = bucketUpperMs(latencyBucket(ms));
      expect(upper).toBeGreaterThanOrEqual(ms * 0.9999);
      expect(upper / ms).toBeLessThan(1.091); // one bucket = 2^(1/8)
    }
  });

  it('computes per tenant+service per minute throughput, error rate and P50/P95/P99', () => {
    const g = new GoldenSignals();
    // minute 10: durations 1..100 ms, 5 errors; minute 11: 30 × 2 s. A client span is not a request served.
    for (let i = 1; i <= 100; i++) g.add(span(10 * 60_000 + i, i <= 5, { durationMs: i }));
    for (let i = 0; i < 30; i++) g.add(span(11 * 60_000 + i, false, { durationMs: 2000 }));
    g.add(span(10 * 60_000, true, { kind: 3, durationMs: 9999 }));
    g.add(span(10 * 60_000, false, { service: 'cart', durationMs: 7 }));
    expect(g.flush(11 * 60_000)).toEqual([
      expect.objectContaining({ service: 'cart', minuteStartMs: 600_000, requests: 1, errors: 0 }),
      expect.objectContaining({ service: 'checkout', minuteStartMs: 600_000, requests: 100, errors: 5, errorRate: 0.05 }),
    ]);
    expect(g.openCells).toBe(1);
    const [m11] = g.flush(12 * 60_000);
    expect(m11).toMatchObject({ requests: 30, throughputPerSec: 0.5 });
    expect(m11!.p99Ms / 2000).toBeGreaterThan(0.95);
    expect(m11!.p99Ms / 2000).toBeLessThan(1.05);
    g.add(span(10 * 60_000 + 5, false));
    expect(g.lateDropped).toBe(1); // that minute was already flushed
  });

  it('quantiles are within one log bucket of the exact nearest-rank values', () => {
    const g = new GoldenSignals();
    for (let i = 1; i <= 100; i++) g.add(span(i, false, { durationMs: i }));
    const [row] = g.flush(60_000);
    for (const [got, exact] of [[row!.p50Ms, 50], [row!.p95Ms, 95], [row!.p99Ms, 99]] as const) {
      expect(Math.abs(got / exact - 1), `${got} vs ${exact}`).toBeLessThan(0.05);
    }
  });
});
