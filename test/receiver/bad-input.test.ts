// Every kind of bad input gets the OTLP spec's status with a clear message, is counted in /metrics,
// and costs nothing else: a good request sent alongside still lands in Kafka.
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import type { StellaConfig } from '../../lib/config.ts';
import { registry } from '../../lib/metrics.ts';
import { decodeTraces, types } from '../../lib/otlp/proto.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { readRecords } from '../support/kafka.ts';
import { decodeStatus, grpcExport, httpExport, spanObject, tracesRequest } from '../support/otlp.ts';
import { startTestReceiver, TOKENS } from '../support/receiver.ts';

let cfg: StellaConfig;
let receiver: RunningReceiver;
const MAX_REQUEST = 256 * 1024;
const MAX_RECORD = 20_000;
const MAX_ATTR = 1024;

beforeAll(async () => {
  ({ cfg, receiver } = await startTestReceiver({
    receiver: { maxRequestBytes: MAX_REQUEST, maxAttributeValueBytes: MAX_ATTR },
    kafka: { maxRecordBytes: MAX_RECORD },
  }));
});
afterAll(async () => { await receiver?.close(); });

const good = () => tracesRequest([{ scopes: [{ name: 'ok', spans: [spanObject('good.span', { marker: 'kept' })] }] }]);
const proto = { 'content-type': 'application/x-protobuf', authorization: `Bearer ${TOKENS.acme}` };
const json = { 'content-type': 'application/json', authorization: `Bearer ${TOKENS.acme}` };
const truncated = () => good().subarray(0, 30);
const garbage = () => Buffer.from('this is not protobuf at all \xff\xff\xff\xff\xff', 'latin1');
const wrongTenant = () => tracesRequest([{ attrs: { 'service.name': 'svc', 'tenant.id': 'globex' }, scopes: [{ name: 's', spans: [spanObject('x')] }] }]);

async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return m.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((a, v) => a + v.value, 0);
}

describe('HTTP bad input', () => {
  const cases: [string, () => Promise<{ status: number; body: Buffer; headers: Headers }>, number, RegExp, boolean][] = [
    ['truncated protobuf', () => httpExport(receiver.httpPort, '/v1/traces', truncated(), proto), 400, /malformed OTLP traces protobuf: truncated/, false],
    ['garbage protobuf', () => httpExport(receiver.httpPort, '/v1/traces', garbage(), proto), 400, /malformed OTLP traces protobuf/, false],
    ['invalid JSON', () => httpExport(receiver.httpPort, '/v1/traces', '{"resourceSpans": [', json), 400, /invalid JSON/, true],
    ['JSON of the wrong shape', () => httpExport(receiver.httpPort, '/v1/traces', '{"resourceSpans": {"a": 1}}', json), 400, /not an OTLP traces request/, true],
    ['JSON with a bad hex trace id', () => httpExport(receiver.httpPort, '/v1/traces', JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: 'zz', spanId: '0102030405060708', name: 'n' }] }] }] }), json), 400, /traceId must be 32 hex characters/, true],
    ['wrong content type', () => httpExport(receiver.httpPort, '/v1/traces', good(), { ...proto, 'content-type': 'text/plain' }), 415, /^unsupported Content-Type; use application\/x-protobuf or application\/json$/, true],
    ['bad gzip stream', () => httpExport(receiver.httpPort, '/v1/traces', Buffer.from('not gzip'), { ...proto, 'content-encoding': 'gzip' }), 400, /not a valid gzip stream/, false],
    ['unsupported encoding', () => httpExport(receiver.httpPort, '/v1/traces', good(), { ...proto, 'content-encoding': 'br' }), 415, /^unsupported Content-Encoding; use gzip, deflate or none$/, false],
    ['body over the limit', () => httpExport(receiver.httpPort, '/v1/traces', Buffer.alloc(MAX_REQUEST + 1), proto), 413, /exceeds the limit of 262144 bytes/, false],
    ['gzip that inflates over the limit', () => httpExport(receiver.httpPort, '/v1/traces', gzipSync(Buffer.alloc(MAX_REQUEST * 4)), { ...proto, 'content-encoding': 'gzip' }), 413, /exceeds the limit/, false],
    ['missing token', () => httpExport(receiver.httpPort, '/v1/traces', good(), { 'content-type': 'application/x-protobuf' }), 401, /missing bearer token/, false],
    ['unknown token', () => httpExport(receiver.httpPort, '/v1/traces', good(), { ...proto, authorization: 'Bearer nope' }), 401, /unknown bearer token/, false],
    ['token without otlp:write', () => httpExport(receiver.httpPort, '/v1/traces', good(), { ...proto, authorization: `Bearer ${TOKENS.acmeReadOnly}` }), 403, /lacks scope otlp:write#tenant\/acme/, false],
    ['a resource claiming another tenant', () => httpExport(receiver.httpPort, '/v1/traces', wrongTenant(), proto), 403, /does not match the tenant of the bearer token/, false],
  ];
  it.each(cases)('%s', async (_name, call, code, message, isJson) => {
    const res = await call();
    expect(res.status).toBe(code);
    const st = decodeStatus(res.body, isJson);
    expect(st.message).toMatch(message);
    // No PII or secrets in reasons: neither the token nor the claimed tenant is echoed.
    expect(st.message).not.toContain(TOKENS.acme);
    expect(st.message).not.toContain('globex');
    if (code === 401) expect(res.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('an oversized attribute refuses only its span (partial success), the rest lands', async () => {
    const body = tracesRequest([{ scopes: [{ name: 's', spans: [spanObject('big', { blob: 'x'.repeat(MAX_ATTR + 1) }), spanObject('small', { marker: 'partial-ok' })] }] }]);
    // Protobuf bytes labelled as JSON are refused as invalid JSON, not mis-parsed.
    expect((await httpExport(receiver.httpPort, '/v1/traces', body, json)).status).toBe(400);
    const ok = await httpExport(receiver.httpPort, '/v1/traces', body, proto);
    expect(ok.status).toBe(200);
    const resp = types.ExportTraceServiceResponse.toObject(types.ExportTraceServiceResponse.decode(ok.body), { longs: Number }) as { partialSuccess: { rejectedSpans: number; errorMessage: string } };
    expect(resp.partialSuccess.rejectedSpans).toBe(1);
    expect(resp.partialSuccess.errorMessage).toMatch(/1 spans refused: an attribute value exceeds 1024 bytes/);
    const recs = await readRecords([cfg.kafka.topics.spans], 100, 3000);
    const names = recs.flatMap((r) => decodeTraces(r.value).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans.map((x) => x.name))));
    expect(names).toContain('small');
    expect(names).not.toContain('big');
  });

  it('counts refusals in /metrics by reason', async () => {
    expect(await metricValue('stella_receiver_refused_requests_total', { reason: 'malformed_protobuf' })).toBeGreaterThanOrEqual(2);
    expect(await metricValue('stella_receiver_refused_requests_total', { reason: 'tenant_mismatch' })).toBeGreaterThanOrEqual(1);
    expect(await metricValue('stella_receiver_items_total', { outcome: 'refused', reason: 'attribute_too_large' })).toBeGreaterThanOrEqual(1);
    expect(await metricValue('stella_receiver_requests_total', { protocol: 'http', code: '413' })).toBeGreaterThanOrEqual(2);
  });
});

describe('gRPC bad input', () => {
  const cases: [string, () => Uint8Array, string | undefined, number, RegExp][] = [
    ['truncated protobuf', truncated, TOKENS.acme, status.INVALID_ARGUMENT, /malformed OTLP traces protobuf/],
    ['garbage protobuf', garbage, TOKENS.acme, status.INVALID_ARGUMENT, /malformed OTLP traces protobuf/],
    ['message over the limit', () => Buffer.alloc(MAX_REQUEST + 10), TOKENS.acme, status.RESOURCE_EXHAUSTED, /larger than max|exceeds/i],
    ['missing token', good, undefined, status.UNAUTHENTICATED, /missing bearer token/],
    ['unknown token', good, 'nope', status.UNAUTHENTICATED, /unknown bearer token/],
    ['token without otlp:write', good, TOKENS.acmeReadOnly, status.PERMISSION_DENIED, /lacks scope otlp:write/],
    ['a resource claiming another tenant', wrongTenant, TOKENS.acme, status.PERMISSION_DENIED, /does not match the tenant/],
  ];
  it.each(cases)('%s', async (_name, body, token, code, message) => {
    const ans = await grpcExport(receiver.grpcPort, 'traces', body(), token);
    expect(ans.code).toBe(code);
    expect(ans.details).toMatch(message);
    // RESOURCE_EXHAUSTED without RetryInfo means "do not retry" to OTLP clients.
    if (code === status.RESOURCE_EXHAUSTED) expect(ans.retryDelaySeconds).toBeUndefined();
  });
});

describe('splitting along resource, scope and item boundaries', () => {
  it('a request over the record limit becomes several valid records holding every span once', async () => {
    const topic = cfg.kafka.topics.spans;
    const before = (await readRecords([topic], 10_000, 2000)).length;
    const spans = (scope: string, n: number) => Array.from({ length: n }, (_, i) => spanObject(`${scope}-${i}`, { pad: 'p'.repeat(900) }));
    const body = tracesRequest([
      { attrs: { 'service.name': 'a' }, scopes: [{ name: 'a1', spans: spans('a1', 30) }, { name: 'a2', spans: spans('a2', 30) }] },
      { attrs: { 'service.name': 'b' }, scopes: [{ name: 'b1', spans: spans('b1', 5) }] },
    ]);
    expect(body.length).toBeGreaterThan(MAX_RECORD * 2);
    const ans = await grpcExport(receiver.grpcPort, 'traces', body, TOKENS.acme);
    expect(ans.code).toBe(0);
    const recs = (await readRecords([topic], 10_000, 3000)).slice(before);
    expect(recs.length).toBeGreaterThanOrEqual(3);
    const names: string[] = [];
    for (const r of recs) {
      expect(r.value.length).toBeLessThanOrEqual(MAX_RECORD);
      const req = decodeTraces(r.value);
      for (const rs of req.resourceSpans) {
        expect(rs.resource!.attributes.find((a) => a.key === 'tenant.id')?.value?.stringValue).toBe('acme');
        for (const ss of rs.scopeSpans) for (const s of ss.spans) {
          expect(s.name.startsWith(ss.scope!.name)).toBe(true); // items stay under their own scope
          names.push(s.name);
        }
      }
    }
    expect(names.sort()).toEqual([...spans('a1', 30), ...spans('a2', 30), ...spans('b1', 5)].map((s) => s.name).sort());
  });

  it('an item too large for any record is refused with a reason; its neighbours land', async () => {
    const body = tracesRequest([{ scopes: [{ name: 's', spans: [
      spanObject('huge', Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'v'.repeat(1000)]))),
      spanObject('neighbour'),
    ] }] }]);
    const ans = await grpcExport(receiver.grpcPort, 'traces', body, TOKENS.acme);
    expect(ans.code).toBe(0);
    const resp = types.ExportTraceServiceResponse.toObject(types.ExportTraceServiceResponse.decode(ans.response!), { longs: Number }) as { partialSuccess: { rejectedSpans: number; errorMessage: string } };
    expect(resp.partialSuccess).toEqual({ rejectedSpans: 1, errorMessage: '1 spans refused: larger than the 20000-byte Kafka record limit on their own' });
  });
});

describe('isolation of failures', () => {
  it('a good request sent alongside a burst of bad ones is accepted and lands', async () => {
    const marker = `iso-${Date.now()}`;
    const body = tracesRequest([{ scopes: [{ name: 'ok', spans: [spanObject(marker)] }] }]);
    const bad = Array.from({ length: 30 }, (_, i) => (i % 2 ? httpExport(receiver.httpPort, '/v1/traces', garbage(), proto) : grpcExport(receiver.grpcPort, 'traces', truncated(), TOKENS.acme)));
    const [goodAns] = await Promise.all([grpcExport(receiver.grpcPort, 'traces', body, TOKENS.acme), ...bad]);
    expect(goodAns.code).toBe(0);
    const recs = await readRecords([cfg.kafka.topics.spans], 10_000, 3000);
    expect(recs.some((r) => decodeTraces(r.value).resourceSpans.some((rs) => rs.scopeSpans.some((s) => s.spans.some((x) => x.name === marker))))).toBe(true);
  });
});
