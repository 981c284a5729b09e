// End to end on the real broker: raw records (encoded with lib/otlp/proto.ts) -> the scrub runner ->
// clean topics. The clean record equals the raw one except for the redactions (compared field by
// field against a hand-built expectation), on the same key and partition, with headers carried;
// a poison record lands in the DLQ with its reason and the next good record still flows.
import Long from 'long';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H } from '../../lib/kafka/topics.ts';
import { registry } from '../../lib/metrics.ts';
import { decodeLogs, decodeTraces, encode, types } from '../../lib/otlp/proto.ts';
import { parseScrubConfig } from '../../processors/scrub/config.ts';
import { sha256Hex } from '../../processors/scrub/record.ts';
import { startScrub, type RunningScrub } from '../../processors/scrub/runner.ts';
import { createTopics, readRecords, testKafka, uniq } from '../support/kafka.ts';

const t = {
  spans: uniq('raw_spans'), metrics: uniq('raw_metrics'), logs: uniq('raw_logs'),
  spansClean: uniq('clean_spans'), metricsClean: uniq('clean_metrics'), logsClean: uniq('clean_logs'),
  dlq: uniq('dlq'), timelineEvents: uniq('timeline'),
};
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const now = new Date('2026-11-23T12:30:00Z');
const config = parseScrubConfig({ tenants: { beta: { deepDebug: [{ id: 'INC-7', rules: ['ip'], startsAt: '2026-11-23T12:00:00Z', expiresAt: '2026-11-23T13:00:00Z', actor: 'ops-1', reason: 'debug routing' }] } } });

const kv = (key: string, v: Record<string, unknown>) => ({ key, value: v });
function spanRequest(name: string, attrs: { key: string; value: Record<string, unknown> }[]) {
  return {
    resourceSpans: [{ resource: { attributes: [kv('service.name', { stringValue: 'checkout' }), kv('tenant.id', { stringValue: 'acme' })] }, schemaUrl: 'https://opentelemetry.io/schemas/1.26.0',
      scopeSpans: [{ scope: { name: 'http', version: '1.0.0' }, spans: [{
        traceId: Buffer.from('4bf92f3577b34da6a3ce929d0e0e4736', 'hex'), spanId: Buffer.from('00f067aa0ba902b7', 'hex'), parentSpanId: Buffer.from('1111111111111111', 'hex'),
        traceState: 'rojo=00f067aa0ba902b7', name, kind: 2, startTimeUnixNano: Long.fromString('1795436000000000000', true), endTimeUnixNano: Long.fromString('1795436000250000000', true),
        attributes: attrs, droppedAttributesCount: 1, status: { code: 1, message: '' } }] }] }],
  };
}
const toPlain = (m: unknown) => types.ExportTraceServiceRequest.toObject(m as never, { longs: String, bytes: String, defaults: false });

const groupId = uniq('scrub');
let scrub: RunningScrub;
beforeAll(async () => {
  await createTopics(Object.values(t), 3);
  scrub = await startScrub({ kafka: testKafka('scrub-test'), config, topics: t, groupId, now: () => now, grantTickMs: 500 });
});
afterAll(async () => { await scrub?.stop(); });

describe('scrub runner on Kafka', () => {
  it('writes the scrubbed record on the same key and partition, trace context carried (other producer headers dropped), and DLQs poison without stopping', async () => {
    const rawSpans = spanRequest('POST /users/alice@example.com/orders', [
      kv('http.request.method', { stringValue: 'POST' }), kv('client.address', { stringValue: '203.0.113.9' }),
      kv('http.request.header.cookie', { arrayValue: { values: [{ stringValue: 'sid=abc123' }] } }), kv('http.response.status_code', { intValue: 201 })]);
    const rawLogs = { resourceLogs: [{ resource: { attributes: [] }, scopeLogs: [{ scope: { name: 'app' }, logRecords: [{ timeUnixNano: Long.fromString('1795436000000000000', true),
      severityNumber: 13, severityText: 'WARN', body: { stringValue: 'retry from 198.51.100.4 for bob@example.com' } }] }] }] };
    const spansBuf = Buffer.from(encode('traces', types.ExportTraceServiceRequest.fromObject(rawSpans)));
    const logsBuf = Buffer.from(encode('logs', types.ExportLogsServiceRequest.fromObject(rawLogs)));
    const goodAfterPoison = Buffer.from(encode('traces', types.ExportTraceServiceRequest.fromObject(spanRequest('GET /healthz', []))));
    const poison = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
    const headers = (v: Buffer, tenant: string) => ({ [H.tenant]: tenant, [H.contentSha256]: sha256Hex(v), [H.traceparent]: TRACEPARENT, 'x-origin': 'collector-7' });

    const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.sendBatch({ acks: -1, topicMessages: [
      { topic: t.spans, messages: [
        { key: 'acme', value: spansBuf, partition: 2, headers: headers(spansBuf, 'acme') },
        { key: 'acme', value: poison, partition: 2, headers: headers(poison, 'acme') },
        { key: 'acme', value: goodAfterPoison, partition: 2, headers: headers(goodAfterPoison, 'acme') },
      ] },
      { topic: t.logs, messages: [{ key: 'beta', value: logsBuf, partition: 0, headers: headers(logsBuf, 'beta') }] },
    ] });
    await producer.disconnect();

    const [cleanSpans, cleanLogs, dlq, timeline] = await Promise.all([
      readRecords([t.spansClean], 2), readRecords([t.logsClean], 1), readRecords([t.dlq], 1), readRecords([t.timelineEvents], 1)]);

    // --- spans: same key, same partition, order kept, headers carried, digest recomputed
    expect(cleanSpans.map((r) => [r.key, r.partition])).toEqual([['acme', 2], ['acme', 2]]);
    const first = cleanSpans[0]!;
    expect(first.headers).toMatchObject({ [H.tenant]: 'acme', [H.traceparent]: TRACEPARENT, [H.contentSha256]: sha256Hex(first.value) });
    // A producer's own headers are free text nothing scrubs: not carried onto the clean topic.
    expect(first.headers['x-origin']).toBeUndefined();
    expect(JSON.parse(first.headers[H.scrubSummary]!)).toEqual({ v: 1, total: 3, items: 1, rules: { email: 1, ipv4: 1, sensitive_key: 1 } });

    // Clean equals raw except the redactions: build the expectation from the raw message by hand.
    const expected = toPlain(decodeTraces(spansBuf)) as any;
    const span = expected.resourceSpans[0].scopeSpans[0].spans[0];
    span.name = 'POST /users/[REDACTED:email]/orders';
    span.attributes[1].value.stringValue = '[REDACTED:ipv4]';
    span.attributes[2].value.arrayValue.values[0].stringValue = '[REDACTED:sensitive_key]';
    span.attributes.push({ key: 'redaction.masked.count', value: { intValue: '3' } },
      { key: 'redaction.masked.rules', value: { stringValue: 'email,ipv4,sensitive_key' } },
      { key: 'redaction.masked.keys', value: { stringValue: 'client.address,http.request.header.cookie' } });
    expect(toPlain(decodeTraces(first.value))).toEqual(expected);

    // The record after the poison one flows, byte-identical (nothing to redact).
    expect(cleanSpans[1]!.value.equals(goodAfterPoison)).toBe(true);
    expect(JSON.parse(cleanSpans[1]!.headers[H.scrubSummary]!)).toMatchObject({ total: 0 });

    // --- DLQ: the poison record, verbatim, with reason and source coordinates
    expect(dlq).toHaveLength(1);
    // Undecodable, so not scrubbable: only its digest and length are kept (processors/scrub/dlq.ts).
    expect(dlq[0]!.value.length).toBe(0);
    expect(dlq[0]!.headers).toMatchObject({ 'dlq-content': 'digest-only', 'dlq-raw-sha256': sha256Hex(poison), 'dlq-raw-bytes': String(poison.length) });
    expect(dlq[0]!.key).toBe('acme');
    expect(dlq[0]!.headers).toMatchObject({ [H.dlqSourceTopic]: t.spans, [H.dlqSourceOffset]: '1', 'dlq-source-partition': '2', [H.traceparent]: TRACEPARENT });
    expect(dlq[0]!.headers[H.dlqReason]).toMatch(/^scrub: undecodable traces request/);

    // --- logs of tenant beta: IP relaxed by the active deep-debug grant, e-mail still redacted
    expect(cleanLogs.map((r) => [r.key, r.partition])).toEqual([['beta', 0]]);
    expect(decodeLogs(cleanLogs[0]!.value).resourceLogs[0]!.scopeLogs[0]!.logRecords[0]!.body!.stringValue).toBe('retry from 198.51.100.4 for [REDACTED:email]');
    expect(JSON.parse(cleanLogs[0]!.headers[H.scrubSummary]!)).toMatchObject({ rules: { email: 1 }, relaxed: ['ipv4', 'ipv6'] });

    // --- the grant is on beta's timeline
    expect(timeline).toHaveLength(1);
    expect(timeline[0]!.key).toBe('beta');
    expect(JSON.parse(timeline[0]!.value.toString())).toMatchObject({ kind: 'scrub.deep_debug.granted', tenant_id: 'beta', resource_id: 'INC-7', actor: 'ops-1' });

    // Per-tenant, per-rule counters (values never appear in labels).
    const redactions = await registry.getSingleMetric('stella_scrub_redactions_total')!.get();
    const count = (tenant: string, rule: string) => redactions.values.find((v) => v.labels.tenant === tenant && v.labels.rule === rule)?.value ?? 0;
    expect([count('acme', 'email'), count('acme', 'ipv4'), count('acme', 'sensitive_key'), count('beta', 'email'), count('beta', 'ipv4')]).toEqual([1, 1, 1, 1, 0]);
    const records = await registry.getSingleMetric('stella_scrub_records_total')!.get();
    expect(records.values.find((v) => v.labels.signal === 'traces' && v.labels.outcome === 'dlq')?.value).toBe(1);

    // The batch's offsets end up committed (runStage commits after handle() resolved, i.e. after the acks).
    const admin = testKafka().admin();
    await admin.connect();
    const deadline = Date.now() + 10_000;
    let committed = '';
    while (Date.now() < deadline) {
      const offs = await admin.fetchOffsets({ groupId, topics: [t.spans] });
      committed = offs[0]?.partitions.find((p) => p.partition === 2)?.offset ?? '';
      if (committed === '3') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await admin.disconnect();
    expect(committed).toBe('3');
  });
});
