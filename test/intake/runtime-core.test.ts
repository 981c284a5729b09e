// The runtime-facts core (processors/intake/runtime-facts.ts) against hostile NDJSON: every rule
// refused with its reason, field and 1-based line; nothing partial accepted.
import { describe, expect, it } from 'vitest';
import { forEachRuntimeFact, ingestIdFor, normalizeSha256, parseRuntimeIntakeRecord, rfc3339UtcNs, type RuntimeFact } from '../../processors/intake/runtime-facts.ts';

const ok = { symbol_id: 'libc.so.6!malloc', purl: 'pkg:deb/debian/glibc@2.36', timestamp: '2026-12-03T12:00:00.000000001Z', pid: 7, container: 'abc', count: 2 };
const line = (o: unknown) => (typeof o === 'string' ? o : JSON.stringify(o));
const nd = (...ls: unknown[]) => Buffer.from(ls.map(line).join('\n') + '\n');
const limits = { maxLineBytes: 4096 };
const verdict = (b: Buffer) => forEachRuntimeFact(b, limits);

describe('forEachRuntimeFact', () => {
  it('accepts valid lines, with or without a final newline, and reports count and time range', () => {
    const seen: RuntimeFact[] = [];
    const v = forEachRuntimeFact(nd(ok, { ...ok, timestamp: '2026-12-03T11:59:59Z', count: 1 }), limits, (f) => seen.push(f));
    expect(v).toEqual({ ok: true, records: 2, firstTsNs: 1796299199000000000n, lastTsNs: 1796299200000000001n });
    expect(seen.map((f) => f.line)).toEqual([1, 2]);
    expect(verdict(Buffer.from(line(ok))).ok).toBe(true);
    expect(verdict(Buffer.from(JSON.stringify({ ...ok, container: '', symbol_id: 'ünïcødé ✓' }))).ok).toBe(true);
    // NDJSON lets a CR precede the newline.
    expect(verdict(Buffer.from(`${line(ok)}\r\n${line(ok)}\r\n`))).toMatchObject({ ok: true, records: 2 });
  });

  const refusals: [string, Buffer, string, number?, string?][] = [
    ['empty', Buffer.alloc(0), 'EMPTY_BODY'],
    ['blank line', Buffer.from(`${line(ok)}\n\n${line(ok)}\n`), 'RECORD_INVALID', 2],
    ['two final newlines', Buffer.from(`${line(ok)}\n\n`), 'RECORD_INVALID', 2],
    ['not JSON', nd(ok, '{"symbol_id":'), 'LINE_NOT_JSON', 2],
    ['an array', nd([ok]), 'RECORD_INVALID', 1],
    ['null', nd('null'), 'RECORD_INVALID', 1],
    ['unknown field', nd({ ...ok, extra: 1 }), 'RECORD_INVALID', 1],
    ['__proto__ field', nd(`{"__proto__":{},${line(ok).slice(1)}`), 'RECORD_INVALID', 1],
    ['missing pid', nd((({ pid: _p, ...r }) => r)(ok)), 'RECORD_INVALID', 1, 'pid'],
    ['empty symbol', nd({ ...ok, symbol_id: '' }), 'RECORD_INVALID', 1, 'symbol_id'],
    ['control char in symbol', nd({ ...ok, symbol_id: 'a\u0007b' }), 'RECORD_INVALID', 1, 'symbol_id'],
    ['purl without pkg:', nd({ ...ok, purl: 'https://evil/x' }), 'RECORD_INVALID', 1, 'purl'],
    ['purl with space', nd({ ...ok, purl: 'pkg:npm/a b' }), 'RECORD_INVALID', 1, 'purl'],
    ['local time', nd({ ...ok, timestamp: '2026-12-03T12:00:00+01:00' }), 'RECORD_INVALID', 1, 'timestamp'],
    ['Feb 30', nd({ ...ok, timestamp: '2026-02-30T12:00:00Z' }), 'RECORD_INVALID', 1, 'timestamp'],
    ['epoch number', nd({ ...ok, timestamp: 1796299200 }), 'RECORD_INVALID', 1, 'timestamp'],
    ['ten fraction digits', nd({ ...ok, timestamp: '2026-12-03T12:00:00.1234567891Z' }), 'RECORD_INVALID', 1, 'timestamp'],
    ['negative pid', nd({ ...ok, pid: -1 }), 'RECORD_INVALID', 1, 'pid'],
    ['float pid', nd({ ...ok, pid: 1.5 }), 'RECORD_INVALID', 1, 'pid'],
    ['pid as string', nd({ ...ok, pid: '7' }), 'RECORD_INVALID', 1, 'pid'],
    ['container as null', nd({ ...ok, container: null }), 'RECORD_INVALID', 1, 'container'],
    ['count 0', nd({ ...ok, count: 0 }), 'RECORD_INVALID', 1, 'count'],
    ['count past 2^53', nd(line(ok).replace('"count":2', '"count":9007199254740993')), 'RECORD_INVALID', 1, 'count'],
    ['duplicate key', nd(line(ok).replace('"count":2', '"count":2,"count":3')), 'DUPLICATE_KEY', 1],
    ['duplicate key via escape', nd(line(ok).replace('"count":2', '"count":2,"\\u0063ount":3')), 'DUPLICATE_KEY', 1],
    ['line too long', nd({ ...ok, symbol_id: 'x'.repeat(5000) }), 'LINE_TOO_LONG', 1],
    ['invalid UTF-8', Buffer.concat([Buffer.from(line(ok).replace('malloc', 'm')), Buffer.from([0x0a]), Buffer.from('{"symbol_id":"\xff"}', 'latin1')]), 'LINE_NOT_JSON', 2],
  ];
  it.each(refusals)('refuses %s', (_n, body, reason, lineNo, field) => {
    const v = verdict(body);
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.reason).toBe(reason);
    if (lineNo !== undefined) { expect(v.line).toBe(lineNo); expect(v.message).toMatch(new RegExp(`^line ${lineNo}: `)); }
    if (field !== undefined) expect(v.field).toBe(field);
    // A refusal never echoes record values.
    expect(v.message).not.toContain('evil');
  });

  it('a colon inside a string value is not a key', () => {
    expect(verdict(nd({ ...ok, symbol_id: 'a:b":c', container: 'x:y' })).ok).toBe(true);
    expect(verdict(nd({ ...ok, symbol_id: 'back\\slash"quote:' })).ok).toBe(true);
  });
});

describe('helpers', () => {
  it('normalizeSha256 takes sha256:<hex> or <hex>, any case, and nothing else', () => {
    const h = 'Ab'.repeat(32);
    expect(normalizeSha256(h)).toBe(`sha256:${h.toLowerCase()}`);
    expect(normalizeSha256(`sha256:${h}`)).toBe(`sha256:${h.toLowerCase()}`);
    for (const bad of [null, undefined, '', 'sha256:', `sha512:${h}`, h.slice(1), `${h}0`, `sha256:${h} `]) expect(normalizeSha256(bad)).toBeUndefined();
  });
  it('rfc3339UtcNs keeps nanoseconds and refuses what DateTime64(9) cannot hold', () => {
    expect(rfc3339UtcNs('1970-01-01T00:00:00.000000001Z')).toBe(1n);
    expect(rfc3339UtcNs('1969-12-31T23:59:59Z')).toBeUndefined();
    expect(rfc3339UtcNs('2262-06-01T00:00:00Z')).toBeUndefined();
  });
  it('the ingest id depends on tenant, graph and content', () => {
    const a = ingestIdFor('acme', 'sha256:' + '1'.repeat(64), 'sha256:' + '2'.repeat(64));
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(ingestIdFor('globex', 'sha256:' + '1'.repeat(64), 'sha256:' + '2'.repeat(64))).not.toBe(a);
    expect(ingestIdFor('acme', 'sha256:' + '3'.repeat(64), 'sha256:' + '2'.repeat(64))).not.toBe(a);
  });
  it('the sink refuses intake records that lie about their tenant, CAS location or ingest id', () => {
    const g = 'sha256:' + '1'.repeat(64);
    const c = 'sha256:' + '2'.repeat(64);
    const rec = { v: 1, ingest_id: ingestIdFor('acme', g, c), tenant: 'acme', graph_hash: g, content_sha256: c, cas_uri: `cas://acme/${'2'.repeat(64)}`, size: 10, records: 1,
      first_ts_unix_nano: '1', last_ts_unix_nano: '1', signed_by: '', envelope_cas_uri: '', received_at_unix_nano: '1', via: 'api' };
    const parse = (o: unknown, key = 'acme') => () => parseRuntimeIntakeRecord(Buffer.from(JSON.stringify(o)), key);
    expect(parse(rec)().ingest_id).toBe(rec.ingest_id);
    expect(parse(rec, 'globex')).toThrow(/record key/);
    expect(parse({ ...rec, cas_uri: `cas://globex/${'2'.repeat(64)}` })).toThrow(/cas_uri/);
    expect(parse({ ...rec, cas_uri: `https://x/${'2'.repeat(64)}` })).toThrow(/cas_uri/);
    expect(parse({ ...rec, ingest_id: '0'.repeat(32) })).toThrow(/ingest_id/);
    expect(parse({ ...rec, envelope_cas_uri: `cas://globex/${'3'.repeat(64)}` })).toThrow(/envelope_cas_uri/);
  });
});

describe('timestamps and key counting on the fast paths', () => {
  it('reads every fraction length and refuses malformed times', () => {
    expect(rfc3339UtcNs('2026-12-03T12:00:00Z')).toBe(1796299200000000000n);
    expect(rfc3339UtcNs('2026-12-03T12:00:00.5Z')).toBe(1796299200500000000n);
    expect(rfc3339UtcNs('2026-12-03T12:00:00.123456Z')).toBe(1796299200123456000n);
    expect(rfc3339UtcNs('2026-12-03T12:00:00.123456789Z')).toBe(1796299200123456789n);
    expect(rfc3339UtcNs('2026-12-03T12:59:59.999999999Z')).toBe(1796302799999999999n);
    for (const bad of ['2026-12-03T12:00:00.Z', '2026-12-03T12:00:60Z', '2026-12-03T12:60:00Z', '2026-12-03T24:00:00Z', '2026-13-03T12:00:00Z',
      '2026-12-00T12:00:00Z', '2026-12-03t12:00:00Z', '2026-12-03T12:00:00z', '2026-12-03 12:00:00Z', '2026-12-03T12:00:0aZ', '+026-12-03T12:00:00Z',
      '2026-12-03T12:00:00.-1Z', '2026-12-03T12:00:00.1e3Z', '2026-12-03T12:00Z', '2026-02-29T00:00:00Z']) expect(rfc3339UtcNs(bad), bad).toBeUndefined();
    expect(rfc3339UtcNs('2028-02-29T00:00:00Z')).toBe(BigInt(Date.UTC(2028, 1, 29)) * 1_000_000n);
  });
  it('counts keys as written whether or not values hold colons or escapes', () => {
    const base = { ...ok, symbol_id: 'a::b', purl: 'pkg:npm/x@1?q=a:b', container: 'c:1' };
    expect(verdict(nd(base)).ok).toBe(true);
    expect(verdict(nd(line(base).replace('"count":2', '"count":2,"count":2')))).toMatchObject({ ok: false, reason: 'DUPLICATE_KEY' });
    expect(verdict(nd(line(base).replace('"pid":7', '"pid":7,"pid":7')))).toMatchObject({ ok: false, reason: 'DUPLICATE_KEY' });
    expect(verdict(nd(line(base).replace('"count":2', '"count":2,"x:y":"p:q"')))).toMatchObject({ ok: false, reason: 'RECORD_INVALID' });
    expect(verdict(nd({ ...base, symbol_id: 'quote\\":x' })).ok).toBe(true);
    expect(verdict(nd(line({ ...base, symbol_id: 'q\\"' }).replace('"count":2', '"count":2,"count":3')))).toMatchObject({ ok: false, reason: 'DUPLICATE_KEY' });
    expect(verdict(nd(line(base).replace('"symbol_id"', '"sym\\u0062ol_id"'))).ok).toBe(true);
  });
});
