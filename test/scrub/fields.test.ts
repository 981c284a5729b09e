// Every string-bearing place of the three OTLP signals is scrubbed (one test per place), on messages
// that went through the real protobuf encode/decode, with summary attributes where documented. Each
// case runs the production wire path and checks it against the oracle (wire-check.ts).
import Long from 'long';
import { describe, expect, it } from 'vitest';
import { decodeLogs, decodeMetrics, decodeTraces, encode, types, type AnyValue, type KeyValue } from '../../lib/otlp/proto.ts';
import { parseScrubConfig, policyFor } from '../../processors/scrub/config.ts';
import { scrubLogs, scrubMetrics, scrubTraces } from './wire-check.ts';

const policy = policyFor(parseScrubConfig({}), 'acme');
const now = new Date('2026-11-23T12:00:00Z');
const EMAIL = 'alice@example.com';
const P = '[REDACTED:email]';
const kv = (key: string, value: AnyValue): KeyValue => ({ key, value });
const s = (stringValue: string): AnyValue => ({ stringValue });

function traces(span: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const obj = { resourceSpans: [{ resource: { attributes: [] }, ...extra, scopeSpans: [{ scope: { name: 'lib', version: '1' }, spans: [{
    traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 2), name: 'op', kind: 2, startTimeUnixNano: Long.fromString('1700000000000000000', true),
    endTimeUnixNano: Long.fromString('1700000000100000000', true), attributes: [], ...span }] }] }] };
  return decodeTraces(encode('traces', types.ExportTraceServiceRequest.fromObject(obj)));
}
function logs(rec: Record<string, unknown>) {
  const obj = { resourceLogs: [{ resource: { attributes: [] }, scopeLogs: [{ scope: { name: 'lib' }, logRecords: [{ timeUnixNano: Long.fromString('1700000000000000000', true), ...rec }] }] }] };
  return decodeLogs(encode('logs', types.ExportLogsServiceRequest.fromObject(obj)));
}
const attr = (attrs: KeyValue[] | undefined, key: string) => attrs?.find((a) => a.key === key)?.value;
const span0 = (r: ReturnType<typeof traces>) => r.resourceSpans[0]!.scopeSpans[0]!.spans[0]!;

describe('scrubTraces', () => {
  it('scrubs resource attributes and stamps the resource summary', () => {
    const r = traces({}, { resource: { attributes: [kv('owner', s(EMAIL)), kv('service.name', s('checkout'))] } });
    const { summary } = scrubTraces(r, policy, now);
    const attrs = r.resourceSpans[0]!.resource!.attributes;
    expect(attr(attrs, 'owner')!.stringValue).toBe(P);
    expect(attr(attrs, 'service.name')!.stringValue).toBe('checkout');
    expect(Number(attr(attrs, 'redaction.masked.count')!.intValue)).toBe(1);
    expect(attr(attrs, 'redaction.masked.rules')!.stringValue).toBe('email');
    expect(attr(attrs, 'redaction.masked.keys')!.stringValue).toBe('owner');
    expect(summary).toMatchObject({ total: 1, items: 1, rules: { email: 1 } });
  });

  it('scrubs scope attributes', () => {
    const r = traces();
    r.resourceSpans[0]!.scopeSpans[0]!.scope!.attributes = [kv('maintainer', s(`mail ${EMAIL}`))];
    scrubTraces(r, policy, now);
    expect(attr(r.resourceSpans[0]!.scopeSpans[0]!.scope!.attributes, 'maintainer')!.stringValue).toBe(`mail ${P}`);
  });

  it('scrubs the span name', () => {
    const r = traces({ name: `GET /users/${EMAIL}` });
    scrubTraces(r, policy, now);
    expect(span0(r).name).toBe(`GET /users/${P}`);
    expect(attr(span0(r).attributes, 'redaction.masked.rules')!.stringValue).toBe('email');
    expect(attr(span0(r).attributes, 'redaction.masked.keys')).toBeUndefined(); // a field, not an attribute key
  });

  it('scrubs the status message', () => {
    const r = traces({ status: { code: 2, message: `login failed for ${EMAIL} from 203.0.113.9` } });
    scrubTraces(r, policy, now);
    expect(span0(r).status!.message).toBe(`login failed for ${P} from [REDACTED:ipv4]`);
    expect(span0(r).status!.code).toBe(2);
  });

  it('scrubs span attributes, nested kvlists and arrays, and sensitive keys whatever their value', () => {
    const r = traces({ attributes: [
      kv('http.request.header.authorization', { arrayValue: { values: [s('Bearer abcdef123456')] } }),
      kv('db.password', { intValue: 123456 }),
      kv('payload', { kvlistValue: { values: [kv('user', { kvlistValue: { values: [kv('mail', s(EMAIL)), kv('api_key', s('x'))] } }),
        kv('tags', { arrayValue: { values: [s('ok'), { arrayValue: { values: [s(EMAIL)] } }] } })] } }),
      kv('gen_ai.usage.input_tokens', { intValue: 42 }),
      kv('feature.enabled', { boolValue: true }),
    ] });
    scrubTraces(r, policy, now);
    const a = span0(r).attributes;
    expect(attr(a, 'http.request.header.authorization')!.arrayValue!.values[0]!.stringValue).toBe('[REDACTED:sensitive_key]');
    expect(attr(a, 'db.password')).toEqual(expect.objectContaining({ stringValue: '[REDACTED:sensitive_key]' }));
    expect(Object.prototype.hasOwnProperty.call(attr(a, 'db.password'), 'intValue')).toBe(false);
    const user = attr(a, 'payload')!.kvlistValue!.values[0]!.value!.kvlistValue!.values;
    expect(attr(user, 'mail')!.stringValue).toBe(P);
    expect(attr(user, 'api_key')!.stringValue).toBe('[REDACTED:sensitive_key]');
    expect(attr(a, 'payload')!.kvlistValue!.values[1]!.value!.arrayValue!.values[1]!.arrayValue!.values[0]!.stringValue).toBe(P);
    expect(Number(attr(a, 'gen_ai.usage.input_tokens')!.intValue)).toBe(42);
    expect(attr(a, 'feature.enabled')!.boolValue).toBe(true);
    expect(Number(attr(a, 'redaction.masked.count')!.intValue)).toBe(5);
    expect(attr(a, 'redaction.masked.rules')!.stringValue).toBe('email,sensitive_key');
    expect(attr(a, 'redaction.masked.keys')!.stringValue).toBe('api_key,db.password,http.request.header.authorization,mail,tags'); // nested keys by their own name
    // The re-encoded message decodes to the same scrubbed content.
    const back = decodeTraces(encode('traces', r));
    expect(attr(span0(back).attributes, 'db.password')!.stringValue).toBe('[REDACTED:sensitive_key]');
  });

  it('scrubs event names and event attributes', () => {
    const r = traces({ events: [{ timeUnixNano: Long.fromString('1700000000050000000', true), name: `sent to ${EMAIL}`, attributes: [kv('exception.message', s(`no user ${EMAIL}`))] }] });
    scrubTraces(r, policy, now);
    const ev = span0(r).events[0]!;
    expect(ev.name).toBe(`sent to ${P}`);
    expect(attr(ev.attributes, 'exception.message')!.stringValue).toBe(`no user ${P}`);
    expect(Number(attr(span0(r).attributes, 'redaction.masked.count')!.intValue)).toBe(2);
  });

  it('scrubs link attributes and keeps link ids', () => {
    const r = traces({ links: [{ traceId: Buffer.alloc(16, 3), spanId: Buffer.alloc(8, 4), attributes: [kv('peer', s('10.1.2.3'))] }] });
    scrubTraces(r, policy, now);
    const link = span0(r).links[0]!;
    expect(attr(link.attributes, 'peer')!.stringValue).toBe('[REDACTED:ipv4]');
    expect(Buffer.from(link.traceId).equals(Buffer.alloc(16, 3))).toBe(true);
  });

  it('leaves a clean span untouched: no summary attributes, zero summary', () => {
    const r = traces({ name: 'GET /api/v1/orders/{id}', attributes: [kv('http.route', s('/api/v1/orders/{id}'))] });
    const before = JSON.stringify(types.ExportTraceServiceRequest.toObject(r as never));
    const { summary } = scrubTraces(r, policy, now);
    expect(JSON.stringify(types.ExportTraceServiceRequest.toObject(r as never))).toBe(before);
    expect(summary).toEqual({ rules: {}, total: 0, items: 0, relaxed: [] });
  });
});

describe('scrubLogs', () => {
  it('scrubs a string body', () => {
    const r = logs({ body: s(`password reset for ${EMAIL}`) });
    scrubLogs(r, policy, now);
    expect(r.resourceLogs[0]!.scopeLogs[0]!.logRecords[0]!.body!.stringValue).toBe(`password reset for ${P}`);
  });

  it('scrubs kvlist and array bodies, nested', () => {
    const r = logs({ body: { kvlistValue: { values: [kv('msg', s(EMAIL)), kv('ctx', { arrayValue: { values: [s('x'), { kvlistValue: { values: [kv('ip', s('198.51.100.7'))] } }] } }), kv('token', s('opaque'))] } } });
    scrubLogs(r, policy, now);
    const body = r.resourceLogs[0]!.scopeLogs[0]!.logRecords[0]!.body!.kvlistValue!.values;
    expect(attr(body, 'msg')!.stringValue).toBe(P);
    expect(attr(body, 'ctx')!.arrayValue!.values[1]!.kvlistValue!.values[0]!.value!.stringValue).toBe('[REDACTED:ipv4]');
    expect(attr(body, 'token')!.stringValue).toBe('[REDACTED:sensitive_key]');
  });

  it('scrubs an array body', () => {
    const r = logs({ body: { arrayValue: { values: [s(EMAIL), s('fine')] } } });
    scrubLogs(r, policy, now);
    expect(r.resourceLogs[0]!.scopeLogs[0]!.logRecords[0]!.body!.arrayValue!.values.map((v) => v.stringValue)).toEqual([P, 'fine']);
  });

  it('scrubs log attributes and the event name, and stamps the record summary', () => {
    const r = logs({ body: s('ok'), eventName: `user.login:${EMAIL}`, attributes: [kv('enduser.id', s(EMAIL))] });
    scrubLogs(r, policy, now);
    const rec = r.resourceLogs[0]!.scopeLogs[0]!.logRecords[0]!;
    expect(attr(rec.attributes, 'enduser.id')!.stringValue).toBe(P);
    expect(rec.eventName).toBe(`user.login:${P}`);
    expect(Number(attr(rec.attributes, 'redaction.masked.count')!.intValue)).toBe(2);
  });

  it('scrubs resource attributes of logs', () => {
    const r = logs({ body: s('ok') });
    r.resourceLogs[0]!.resource!.attributes.push(kv('host.ip', s('203.0.113.5')));
    scrubLogs(r, policy, now);
    expect(attr(r.resourceLogs[0]!.resource!.attributes, 'host.ip')!.stringValue).toBe('[REDACTED:ipv4]');
  });
});

describe('scrubMetrics', () => {
  const dp = (attributes: KeyValue[], exemplarAttrs: KeyValue[] = []) => ({ attributes, timeUnixNano: Long.fromString('1700000000000000000', true), asDouble: 1,
    exemplars: [{ filteredAttributes: exemplarAttrs, asDouble: 1, timeUnixNano: Long.fromString('1700000000000000000', true), traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 1) }] });
  const metrics = (metric: Record<string, unknown>) => decodeMetrics(encode('metrics', types.ExportMetricsServiceRequest.fromObject(
    { resourceMetrics: [{ resource: { attributes: [kv('owner', s(EMAIL))] }, scopeMetrics: [{ scope: { name: 'm' }, metrics: [{ name: 'http.server.duration', unit: 's', ...metric }] }] }] })));
  const m0 = (r: ReturnType<typeof metrics>) => r.resourceMetrics[0]!.scopeMetrics[0]!.metrics[0]! as Record<string, any>;

  it('scrubs gauge/sum data point attributes without adding summary attributes (series identity)', () => {
    const r = metrics({ sum: { dataPoints: [dp([kv('client.address', s('203.0.113.5')), kv('route', s('/x'))])], aggregationTemporality: 2, isMonotonic: true } });
    const { summary } = scrubMetrics(r, policy, now);
    const attrs = m0(r).sum.dataPoints[0].attributes as KeyValue[];
    expect(attr(attrs, 'client.address')!.stringValue).toBe('[REDACTED:ipv4]');
    expect(attrs.map((a) => a.key)).toEqual(['client.address', 'route']);
    expect(summary.rules).toEqual({ email: 1, ipv4: 1 });
    expect(attr(r.resourceMetrics[0]!.resource!.attributes, 'owner')!.stringValue).toBe(P);
  });

  it('scrubs exemplar filtered attributes', () => {
    const r = metrics({ gauge: { dataPoints: [dp([], [kv('enduser.id', s(EMAIL))])] } });
    scrubMetrics(r, policy, now);
    expect(attr(m0(r).gauge.dataPoints[0].exemplars[0].filteredAttributes, 'enduser.id')!.stringValue).toBe(P);
  });

  it('scrubs histogram, exponential histogram and summary points, and the metric description', () => {
    const r = metrics({ description: `owned by ${EMAIL}`, histogram: { dataPoints: [{ ...dp([kv('u', s(EMAIL))]), bucketCounts: [1], explicitBounds: [] }], aggregationTemporality: 2 } });
    scrubMetrics(r, policy, now);
    expect(m0(r).description).toBe(`owned by ${P}`);
    expect(attr(m0(r).histogram.dataPoints[0].attributes, 'u')!.stringValue).toBe(P);
    const e = metrics({ exponentialHistogram: { dataPoints: [{ ...dp([kv('u', s(EMAIL))]), scale: 1 }], aggregationTemporality: 2 } });
    scrubMetrics(e, policy, now);
    expect(attr(m0(e).exponentialHistogram.dataPoints[0].attributes, 'u')!.stringValue).toBe(P);
    const q = metrics({ summary: { dataPoints: [{ attributes: [kv('u', s(EMAIL))], count: 1, sum: 1 }] } });
    scrubMetrics(q, policy, now);
    expect(attr(m0(q).summary.dataPoints[0].attributes, 'u')!.stringValue).toBe(P);
  });
});
