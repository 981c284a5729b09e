// What the receiver accepts is what it keeps: deep nesting, truncated protobuf, invalid ids, coerced
// JSON and conflicting tenant.id claims are refused at intake (real receiver, real Kafka), and what
// is refused never reaches the raw topic while its innocent neighbours do.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import type { StellaConfig } from '../../lib/config.ts';
import { decodeTraces, otlpRoot, types } from '../../lib/otlp/proto.ts';
import { MAX_VALUE_NESTING } from '../../lib/otlp/wire.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { readRecords } from '../support/kafka.ts';
import { decodeStatus, grpcExport, httpExport, spanObject, tracesRequest } from '../support/otlp.ts';
import { startTestReceiver, TOKENS } from '../support/receiver.ts';

let cfg: StellaConfig;
let receiver: RunningReceiver;
beforeAll(async () => { ({ cfg, receiver } = await startTestReceiver()); });
afterAll(async () => { await receiver?.close(); });

const proto = { 'content-type': 'application/x-protobuf', authorization: `Bearer ${TOKENS.acme}` };
const json = { 'content-type': 'application/json', authorization: `Bearer ${TOKENS.acme}` };
const SpanType = otlpRoot.lookupType('opentelemetry.proto.trace.v1.Span');

function frame(field: number, body: Uint8Array): Buffer {
  const len: number[] = [];
  let n = body.length;
  while (n >= 0x80) { len.push((n & 0x7f) | 0x80); n >>>= 7; }
  len.push(n);
  return Buffer.concat([Buffer.from([(field << 3) | 2, ...len]), body]);
}

/** A span named `name` whose attribute `deep` nests `levels` arrayValues, built as prefixes (no recursion). */
function deepSpan(name: string, levels: number): Buffer {
  const leaf = frame(1, Buffer.from('leaf'));
  const prefixes: Buffer[] = [];
  let size = leaf.length;
  for (let i = 0; i < levels; i++) {
    const el = frame(1, Buffer.alloc(0)).subarray(0, 1);
    const elLen = varint(size);
    const inner = Buffer.concat([el, elLen]);
    const p = Buffer.concat([Buffer.from([0x2a]), varint(inner.length + size), inner]);
    prefixes.push(p);
    size += p.length;
  }
  const value = Buffer.concat([...prefixes.reverse(), leaf]);
  const span = Buffer.from(SpanType.encode(SpanType.fromObject(spanObject(name))).finish());
  return Buffer.concat([span, frame(9, Buffer.concat([frame(1, Buffer.from('deep')), frame(2, value)]))]);
}
function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n >>>= 7; }
  out.push(n);
  return Buffer.from(out);
}
const encodedSpan = (name: string, extra: Record<string, unknown> = {}) => Buffer.from(SpanType.encode(SpanType.fromObject(spanObject(name, {}, extra))).finish());
const request = (...spans: Buffer[]) => frame(1, frame(2, Buffer.concat(spans.map((s) => frame(2, s)))));

/** Span names on the raw topic, read again (up to 20 s) until every name in `want` is there. */
async function spanNames(want: string[] = []): Promise<string[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const recs = await readRecords([cfg.kafka.topics.spans], 100_000, 3000);
    const names = recs.flatMap((r) => decodeTraces(r.value).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans.map((x) => x.name))));
    if (want.every((n) => names.includes(n)) || Date.now() > deadline) return names;
  }
}

type PartialSuccess = { partialSuccess?: { rejectedSpans?: number; errorMessage?: string } };
const partial = (b: Buffer) => types.ExportTraceServiceResponse.toObject(types.ExportTraceServiceResponse.decode(b), { longs: Number }) as PartialSuccess;

describe('nesting limit at intake', () => {
  it.each([MAX_VALUE_NESTING + 1, 48, 3000, 20_000])('%i levels: only that span is refused (HTTP and gRPC), its neighbour lands', async (levels) => {
    const body = request(deepSpan(`deep-${levels}`, levels), encodedSpan(`innocent-http-${levels}`));
    const res = await httpExport(receiver.httpPort, '/v1/traces', body, proto);
    expect(res.status).toBe(200);
    expect(partial(res.body).partialSuccess).toEqual({ rejectedSpans: 1, errorMessage: `1 spans refused: a value nests arrays or kvlists deeper than ${MAX_VALUE_NESTING} levels` });
    const g = await grpcExport(receiver.grpcPort, 'traces', request(deepSpan(`deep-${levels}`, levels), encodedSpan(`innocent-grpc-${levels}`)), TOKENS.acme);
    expect(g.code).toBe(0);
    expect(partial(g.response!).partialSuccess?.rejectedSpans).toBe(1);
    const names = await spanNames([`innocent-http-${levels}`, `innocent-grpc-${levels}`]);
    expect(names).toContain(`innocent-http-${levels}`);
    expect(names).toContain(`innocent-grpc-${levels}`);
    expect(names).not.toContain(`deep-${levels}`);
  });

  it('a span at the limit is accepted', async () => {
    const res = await httpExport(receiver.httpPort, '/v1/traces', request(deepSpan('at-limit', MAX_VALUE_NESTING)), proto);
    expect(res.status).toBe(200);
    expect(partial(res.body).partialSuccess).toBeUndefined();
  });

  it('JSON nested 3000 levels is refused with 400 (not a stack overflow answered 503)', async () => {
    // (built as text: JSON.stringify itself recurses)
    const value = `${'{"arrayValue":{"values":['.repeat(3000)}{"stringValue":"leaf"}${']}}'.repeat(3000)}`;
    const body = `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"deep-json","attributes":[{"key":"d","value":${value}}]}]}]}]}`;
    const res = await httpExport(receiver.httpPort, '/v1/traces', body, json);
    expect(res.status).toBe(400);
    expect(decodeStatus(res.body, true).message).toMatch(/nests arrays or kvlists deeper than 30 levels/);
  });
});

describe('truncated protobuf', () => {
  const cut = Buffer.from([0xa2, 0x06, 0xe8, 0x07, 0x78]); // field 100, length 1000, one byte present
  it.each([
    ['a truncated unknown field alone', () => cut],
    ['a valid request followed by a truncated unknown field', () => Buffer.concat([request(encodedSpan('trailed-by-garbage')), cut])],
    ['an unknown fixed64 cut to 2 bytes', () => Buffer.concat([request(encodedSpan('trailed-by-fixed64')), Buffer.from([0x99, 0x06, 1, 2])])],
    ['an unknown fixed64 inside a span cut to 2 bytes', () => request(Buffer.concat([encodedSpan('span-with-cut-fixed64'), Buffer.from([0x99, 0x06, 1, 2])]))],
  ])('%s: 400 / INVALID_ARGUMENT, nothing stored', async (_n, body) => {
    const res = await httpExport(receiver.httpPort, '/v1/traces', body(), proto);
    expect(res.status).toBe(400);
    expect(decodeStatus(res.body, false).message).toMatch(/malformed OTLP traces protobuf: truncated/);
    const g = await grpcExport(receiver.grpcPort, 'traces', body(), TOKENS.acme);
    expect(g.code).toBe(status.INVALID_ARGUMENT);
  });

  it('stored none of the spans of refused requests', async () => {
    const names = await spanNames();
    for (const n of ['trailed-by-garbage', 'trailed-by-fixed64', 'span-with-cut-fixed64']) expect(names).not.toContain(n);
  });
});

describe('ids and the OTLP JSON mapping', () => {
  it('an all-zero trace id or span id refuses that span only', async () => {
    const body = tracesRequest([{ scopes: [{ name: 's', spans: [
      spanObject('zero-trace-id', {}, { traceId: Buffer.alloc(16) }), spanObject('zero-span-id', {}, { spanId: Buffer.alloc(8) }), spanObject('valid-ids'),
    ] }] }]);
    const res = await httpExport(receiver.httpPort, '/v1/traces', body, proto);
    expect(res.status).toBe(200);
    expect(partial(res.body).partialSuccess?.rejectedSpans).toBe(2);
    const g = await grpcExport(receiver.grpcPort, 'traces', body, TOKENS.acme);
    expect(partial(g.response!).partialSuccess?.rejectedSpans).toBe(2);
    const names = await spanNames(['valid-ids']);
    expect(names).toContain('valid-ids');
    expect(names).not.toContain('zero-trace-id');
    expect(names).not.toContain('zero-span-id');
  });

  // As for a span's own ids: the span carrying a bad link is refused (partial success, its neighbours
  // kept); in JSON a link id of the wrong length fails the hex mapping, which refuses the whole request (400).
  const LINK_RULE = "trace ids must be 16 bytes and span ids 8 bytes, a span's or a link's not all zero";
  const link = (extra: Record<string, unknown> = {}) => ({ traceId: randomBytes(16), spanId: randomBytes(8), ...extra });
  it.each(['http', 'grpc'])('protobuf over %s: a link with an all-zero or wrong-length id refuses its span only', async (via) => {
    const body = tracesRequest([{ scopes: [{ name: 's', spans: [
      spanObject(`link-zero-trace-${via}`, {}, { links: [link(), link({ traceId: Buffer.alloc(16) })] }),
      spanObject(`link-zero-span-${via}`, {}, { links: [link({ spanId: Buffer.alloc(8) })] }),
      spanObject(`link-short-span-${via}`, {}, { links: [link({ spanId: randomBytes(7) })] }),
      spanObject(`link-ok-${via}`, {}, { links: [link()] }),
    ] }] }]);
    const answer = via === 'http'
      ? await httpExport(receiver.httpPort, '/v1/traces', body, proto).then((r) => { expect(r.status).toBe(200); return r.body; })
      : await grpcExport(receiver.grpcPort, 'traces', body, TOKENS.acme).then((g) => { expect(g.code).toBe(status.OK); return g.response!; });
    expect(partial(answer).partialSuccess).toEqual({ rejectedSpans: 3, errorMessage: `3 spans refused: ${LINK_RULE}` });
    const names = await spanNames([`link-ok-${via}`]);
    expect(names).toContain(`link-ok-${via}`);
    for (const n of ['link-zero-trace', 'link-zero-span', 'link-short-span']) expect(names).not.toContain(`${n}-${via}`);
  });

  it('JSON: a link with an all-zero id refuses its span only; a link id of the wrong length is refused with 400', async () => {
    const hexLink = (traceId: string, spanId: string) => ({ traceId, spanId });
    const span = (name: string, links: unknown[]) => ({ traceId: randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex'), name, links });
    const ok = hexLink(randomBytes(16).toString('hex'), randomBytes(8).toString('hex'));
    const body = (spans: unknown[]) => JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans }] }] });
    const res = await httpExport(receiver.httpPort, '/v1/traces', body([
      span('json-link-zero-trace', [ok, hexLink('0'.repeat(32), ok.spanId)]), span('json-link-zero-span', [hexLink(ok.traceId, '0'.repeat(16))]), span('json-link-ok', [ok]),
    ]), json);
    expect(res.status).toBe(200);
    const answer = JSON.parse(res.body.toString()) as { partialSuccess?: { rejectedSpans?: string | number; errorMessage?: string } };
    expect(Number(answer.partialSuccess?.rejectedSpans)).toBe(2);
    expect(answer.partialSuccess?.errorMessage).toBe(`2 spans refused: ${LINK_RULE}`);

    const short = await httpExport(receiver.httpPort, '/v1/traces', body([span('json-link-short', [hexLink(ok.traceId, 'ab'.repeat(7))]), span('json-link-short-neighbour', [ok])]), json);
    expect(short.status).toBe(400);
    expect(decodeStatus(short.body, true).message).toMatch(/spanId must be 16 hex characters/);
    const names = await spanNames(['json-link-ok']);
    expect(names).toContain('json-link-ok');
    for (const n of ['json-link-zero-trace', 'json-link-zero-span', 'json-link-short', 'json-link-short-neighbour']) expect(names).not.toContain(n);
  });

  const jsonSpan = (fields: Record<string, unknown>) => JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{
    traceId: '0102030405060708090a0b0c0d0e0f10', spanId: '0102030405060708', name: 'json-span', startTimeUnixNano: '1763900000000000000', ...fields }] }] }] });
  it.each([
    ['"name": 123', { name: 123 }, /spans\[0\]\.name must be a string/],
    ['"startTimeUnixNano": "abc"', { startTimeUnixNano: 'abc' }, /startTimeUnixNano must be an integer/],
    ['"kind": "2x"', { kind: '2x' }, /kind must be an enum number/],
    ['an attribute intValue of 1.5', { attributes: [{ key: 'k', value: { intValue: 1.5 } }] }, /intValue must be an integer/],
    ['a boolValue of "true"', { attributes: [{ key: 'k', value: { boolValue: 'true' } }] }, /boolValue must be true or false/],
    ['attributes as an object', { attributes: { key: 'k' } }, /attributes must be an array/],
    ['a negative uint64', { endTimeUnixNano: '-5' }, /endTimeUnixNano must be an integer/],
  ])('%s is refused (400), not coerced', async (_n, fields, reason) => {
    const res = await httpExport(receiver.httpPort, '/v1/traces', jsonSpan(fields), json);
    expect(res.status).toBe(400);
    expect(decodeStatus(res.body, true).message).toMatch(reason);
  });

  it('valid JSON in the mapping\'s forms (64-bit as strings or numbers, enums as numbers) is accepted', async () => {
    const res = await httpExport(receiver.httpPort, '/v1/traces', jsonSpan({ name: 'json-ok', endTimeUnixNano: 1763900000250000, kind: 2,
      attributes: [{ key: 'i', value: { intValue: '42' } }, { key: 'd', value: { doubleValue: 1.5 } }, { key: 'b', value: { bytesValue: 'AAEC' } }],
      status: { code: 2, message: 'x' }, unknownField: { anything: [1, 'x'] } }), json);
    expect(res.status).toBe(200);
    expect(await spanNames(['json-ok'])).toContain('json-ok');
  });
});

describe('duplicate tenant.id keys', () => {
  const kv = (k: string, v: string) => ({ key: k, value: { stringValue: v } });
  const withResource = (attrs: unknown[], name: string) => Buffer.from(types.ExportTraceServiceRequest.encode(types.ExportTraceServiceRequest.fromObject({
    resourceSpans: [{ resource: { attributes: attrs }, scopeSpans: [{ spans: [spanObject(name)] }] }] })).finish());

  it.each([
    ['globex first', [kv('tenant.id', 'globex'), kv('tenant.id', 'acme')]],
    ['globex last', [kv('tenant.id', 'acme'), kv('tenant.id', 'globex')]],
  ])('[%s] from an acme token: 403 / PERMISSION_DENIED on both protocols, nothing stored', async (label, attrs) => {
    const name = `dup-tenant-${label.replace(' ', '-')}`;
    const res = await httpExport(receiver.httpPort, '/v1/traces', withResource(attrs, name), proto);
    expect(res.status).toBe(403);
    expect(decodeStatus(res.body, false).message).toMatch(/does not match the tenant of the bearer token/);
    const g = await grpcExport(receiver.grpcPort, 'traces', withResource(attrs, name), TOKENS.acme);
    expect(g.code).toBe(status.PERMISSION_DENIED);
    const j = await httpExport(receiver.httpPort, '/v1/traces', JSON.stringify({ resourceSpans: [{ resource: { attributes: attrs },
      scopeSpans: [{ spans: [{ traceId: '0102030405060708090a0b0c0d0e0f10', spanId: '0102030405060708', name }] }] }] }), json);
    expect(j.status).toBe(403);
    expect(await spanNames()).not.toContain(name);
  });

  it('no record on the raw topic names globex anywhere in a resource of an acme request', async () => {
    await httpExport(receiver.httpPort, '/v1/traces', withResource([kv('tenant.id', 'acme'), kv('tenant.id', 'acme')], 'dup-same-tenant'), proto);
    await spanNames(['dup-same-tenant']);
    const recs = await readRecords([cfg.kafka.topics.spans], 100_000, 3000);
    let sawSame = false;
    for (const r of recs) {
      expect(r.key).toBe('acme');
      for (const rs of decodeTraces(r.value).resourceSpans) {
        const claims = rs.resource!.attributes.filter((a) => a.key === 'tenant.id').map((a) => a.value?.stringValue);
        // Whether a consumer takes the first or the last match, it reads the record's tenant.
        expect(claims.length).toBeGreaterThan(0);
        expect(new Set(claims)).toEqual(new Set(['acme']));
        if (rs.scopeSpans.some((s) => s.spans.some((x) => x.name === 'dup-same-tenant'))) sawSame = true;
      }
    }
    expect(sawSame).toBe(true);
  });
});
