// Head sampling: trace-id ratio per tenant (every span of a kept trace kept), errors never dropped,
// incident mode keeps everything, sampled-out items counted; end to end through a real receiver.
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../../lib/metrics.ts';
import { decodeLogs, decodeTraces, encode, signals, toHex } from '../../lib/otlp/proto.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { prepareExport } from '../../receiver/ingest.ts';
import { HeadSampler, headSampler, parseSamplingConfig, traceIdHash } from '../../receiver/sampling.ts';
import { readRecords } from '../support/kafka.ts';
import { httpExport } from '../support/otlp.ts';
import { startTestReceiver, TOKENS } from '../support/receiver.ts';

const limits = { maxRecordBytes: 1_000_000, maxAttributeValueBytes: 65_536 };

interface SpanSpec { traceId: Buffer; error?: boolean; name?: string }
function traces(spans: SpanSpec[]): Uint8Array {
  return encode('traces', { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'svc' } }] },
    scopeSpans: [{ scope: { name: 's' }, spans: spans.map((s) => ({
      traceId: s.traceId, spanId: randomBytes(8), name: s.name ?? 'op', kind: 2, startTimeUnixNano: 1, endTimeUnixNano: 2,
      attributes: [{ key: 'http.route', value: { stringValue: '/x' } }, { key: 'n', value: { intValue: 7 } }],
      status: s.error ? { code: 2, message: 'boom' } : { code: 1 } })) }] }] });
}

function keptSpans(records: Buffer[]): { traceId: string; error: boolean }[] {
  return records.flatMap((r) => decodeTraces(r).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) =>
    ss.spans.map((s) => ({ traceId: toHex(s.traceId), error: s.status?.code === 2 })))));
}

describe('trace-id ratio sampling (pure)', () => {
  it('keeps ~ratio of traces, all spans of a kept trace, and every error span', () => {
    const sampler = new HeadSampler(parseSamplingConfig({ defaultRatio: 1, tenants: { acme: 0.25 } }));
    const threshold = sampler.thresholdFor('acme');
    expect(threshold).toBe(2 ** 30);
    expect(sampler.thresholdFor('globex')).toBeUndefined(); // ratio 1: no sampling work at all
    const nTraces = 20_000;
    const ids = Array.from({ length: nTraces }, () => randomBytes(16));
    const errorTrace = new Set<number>();
    for (let i = 0; i < nTraces; i += 50) errorTrace.add(i);
    let kept: { traceId: string; error: boolean }[] = [];
    let sampledOut = 0;
    let accepted = 0;
    // 3 spans per trace, split over requests so one trace's spans arrive in different requests.
    for (let part = 0; part < 3; part++) {
      for (let b = 0; b < nTraces; b += 500) {
        const spans = ids.slice(b, b + 500).map((id, k) => ({ traceId: id, error: part === 1 && errorTrace.has(b + k) }));
        const p = prepareExport(signals.traces, traces(spans), 'acme', limits, threshold);
        sampledOut += p.sampledOut;
        accepted += p.accepted;
        kept = kept.concat(keptSpans(p.records));
      }
    }
    expect(accepted + sampledOut).toBe(3 * nTraces);
    expect(kept.length).toBe(accepted);
    const perTrace = new Map<string, number>();
    for (const s of kept) perTrace.set(s.traceId, (perTrace.get(s.traceId) ?? 0) + 1);
    const expectedKept = new Set(ids.filter((id) => traceIdHash(id, 0, 16) < threshold!).map((id) => id.toString('hex')));
    // Ratio within tolerance: binomial sd = sqrt(.25·.75/20000) ≈ 0.003; allow ±0.015.
    expect(expectedKept.size / nTraces).toBeGreaterThan(0.235);
    expect(expectedKept.size / nTraces).toBeLessThan(0.265);
    for (const id of expectedKept) expect(perTrace.get(id)).toBe(3); // every span of a kept trace
    // Sampled-out traces: only their error span survived.
    for (const [id, n] of perTrace) if (!expectedKept.has(id)) expect(n).toBe(1);
    const errorIds = new Set([...errorTrace].map((i) => ids[i]!.toString('hex')));
    expect(kept.filter((s) => s.error).length).toBe(errorIds.size); // no error span dropped
    for (const s of kept) if (!expectedKept.has(s.traceId)) { expect(s.error).toBe(true); expect(errorIds.has(s.traceId)).toBe(true); }
  });

  it('logs follow their trace; error-severity logs and logs without a trace id are always kept', () => {
    const sampler = new HeadSampler({ defaultRatio: 0, tenants: {} }); // drop every droppable item
    const th = sampler.thresholdFor('acme')!;
    const traceId = randomBytes(16);
    const body = encode('logs', { resourceLogs: [{ resource: { attributes: [] }, scopeLogs: [{ scope: { name: 's' }, logRecords: [
      { timeUnixNano: 1, severityNumber: 9, body: { stringValue: 'info in trace' }, traceId },
      { timeUnixNano: 1, severityNumber: 17, body: { stringValue: 'error in trace' }, traceId },
      { timeUnixNano: 1, severityNumber: 21, body: { stringValue: 'fatal in trace' }, traceId },
      { timeUnixNano: 1, severityNumber: 9, body: { stringValue: 'info no trace' } },
      { timeUnixNano: 1, severityNumber: 13, body: { stringValue: 'warn in trace' }, traceId },
    ] }] }] });
    const p = prepareExport(signals.logs, body, 'acme', limits, th);
    expect(p.sampledOut).toBe(2);
    const bodies = p.records.flatMap((r) => decodeLogs(r).resourceLogs.flatMap((rl) => rl.scopeLogs.flatMap((sl) => sl.logRecords.map((l) => l.body?.stringValue))));
    expect(bodies).toEqual(['error in trace', 'fatal in trace', 'info no trace']);
  });

  it('incident mode raises the tenant to 1.0 until its end time, other tenants unaffected', () => {
    let clock = 1_000_000;
    const sampler = new HeadSampler({ defaultRatio: 0.1, tenants: {} }, () => clock);
    expect(sampler.ratioFor('acme')).toBeCloseTo(0.1, 6);
    sampler.setIncident('acme', clock + 60_000);
    expect(sampler.thresholdFor('acme')).toBeUndefined();
    expect(sampler.ratioFor('globex')).toBeCloseTo(0.1, 6);
    const ids = Array.from({ length: 200 }, () => ({ traceId: randomBytes(16) }));
    const p = prepareExport(signals.traces, traces(ids), 'acme', limits, sampler.thresholdFor('acme'));
    expect(p.sampledOut).toBe(0);
    expect(keptSpans(p.records)).toHaveLength(200);
    clock += 60_001; // TTL passed: sampled again even before the runner clears it
    expect(sampler.ratioFor('acme')).toBeCloseTo(0.1, 6);
    sampler.setIncident('acme', clock + 1000);
    sampler.clearIncident('acme');
    expect(sampler.ratioFor('acme')).toBeCloseTo(0.1, 6);
  });

  it('config validation names every problem', () => {
    expect(() => parseSamplingConfig({ defaultRatio: 2, tenants: { acme: -1 }, colour: 1 })).toThrow(
      /sampling\.colour is not a known field[\s\S]*sampling\.defaultRatio must be a number from 0 to 1[\s\S]*sampling\.tenants\.acme/);
    expect(parseSamplingConfig(undefined)).toEqual({ defaultRatio: 1, tenants: {} });
  });
});

describe('head sampling in the running receiver', () => {
  let receiver: RunningReceiver;
  let spansTopic: string;
  beforeAll(async () => {
    const started = await startTestReceiver();
    receiver = started.receiver;
    spansTopic = started.cfg.kafka.topics.spans;
  });
  afterEach(() => { headSampler.configure({ defaultRatio: 1, tenants: {} }); headSampler.clearIncident('acme'); });
  afterAll(async () => { await receiver?.close(); });

  const sampledOutMetric = async (): Promise<number> => {
    const vals = (await registry.getSingleMetric('stella_receiver_items_total')?.get())?.values ?? [];
    return vals.filter((v) => v.labels.outcome === 'sampled_out' && v.labels.tenant === 'acme').reduce((a, v) => a + v.value, 0);
  };
  const send = (body: Uint8Array) => httpExport(receiver.httpPort, '/v1/traces', body, { 'content-type': 'application/x-protobuf', authorization: `Bearer ${TOKENS.acme}` });

  it('drops sampled-out spans before Kafka, counts them, keeps errors; incident mode keeps everything', async () => {
    headSampler.configure({ defaultRatio: 1, tenants: { acme: 0 } });
    const before = await sampledOutMetric();
    const marker = randomBytes(4).toString('hex');
    const r1 = await send(traces([
      ...Array.from({ length: 40 }, () => ({ traceId: randomBytes(16), name: `ok-${marker}` })),
      { traceId: randomBytes(16), error: true, name: `err-${marker}` },
    ]));
    expect(r1.status).toBe(200); // sampled-out items are not rejections
    expect(await sampledOutMetric()).toBe(before + 40);
    // All sampled out: nothing produced, still 200.
    const r2 = await send(traces([{ traceId: randomBytes(16), name: `ok2-${marker}` }]));
    expect(r2.status).toBe(200);
    expect(await sampledOutMetric()).toBe(before + 41);
    // Incident mode: the same tenant keeps everything.
    headSampler.setIncident('acme', Date.now() + 60_000);
    const r3 = await send(traces(Array.from({ length: 5 }, () => ({ traceId: randomBytes(16), name: `inc-${marker}` }))));
    expect(r3.status).toBe(200);
    expect(await sampledOutMetric()).toBe(before + 41);
    const recs = await readRecords([spansTopic], 2, 15_000);
    const names = recs.flatMap((r) => decodeTraces(r.value).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans.map((s) => s.name))));
    expect(names.filter((n) => n.endsWith(marker)).sort()).toEqual([`err-${marker}`, ...Array(5).fill(`inc-${marker}`)]);
  });
});
