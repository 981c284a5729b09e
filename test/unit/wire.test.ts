// The receiver's wire-level walker against protobufjs as the reference decoder.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { otlpRoot, signals, types, decodeLogs } from '../../lib/otlp/proto.ts';
import { MAX_VALUE_NESTING, parseExportRequest, splitIntoRecords, WireError, TenantMismatchError } from '../../lib/otlp/wire.ts';
import { parseScrubConfig, policyFor } from '../../processors/scrub/config.ts';
import { scrubRequest } from '../../processors/scrub/wire.ts';
import { spanObject, tracesRequest } from '../support/otlp.ts';

const limits = { maxAttributeValueBytes: 4096 };
const SpanType = otlpRoot.lookupType('opentelemetry.proto.trace.v1.Span');
const plain = (b: Uint8Array) => types.ExportTraceServiceRequest.toObject(types.ExportTraceServiceRequest.decode(b), { longs: String, bytes: String, defaults: true });

function randomRequest(seed: number): Uint8Array {
  const n = (k: number) => (seed * 7919 + k * 104729) % 97;
  return tracesRequest(Array.from({ length: 1 + (n(1) % 3) }, (_, r) => ({
    attrs: { 'service.name': `svc-${r}`, 'host.name': 'ünïcødé-host' },
    scopes: Array.from({ length: 1 + (n(2 + r) % 3) }, (_, s) => ({
      name: `scope-${s}`,
      spans: Array.from({ length: n(5 + s) % 6 }, (_, i) => spanObject(`span-${r}-${s}-${i}`, { k: 'v'.repeat(n(i) * 3), num: i }, {
        events: [{ name: 'ev', timeUnixNano: '1', attributes: [{ key: 'e', value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: 3 }] } } }] }],
        links: [{ traceId: randomBytes(16), spanId: randomBytes(8), attributes: [{ key: 'kv', value: { kvlistValue: { values: [{ key: 'x', value: { boolValue: true } }] } } }] }],
        status: { code: 2, message: 'boom' },
      })),
    })),
  })));
}

describe('parseExportRequest + splitIntoRecords', () => {
  it('re-encodes valid requests exactly, with tenant.id added to each resource', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const body = randomRequest(seed);
      const parsed = parseExportRequest(signals.traces, body, 'acme', limits);
      const { records } = splitIntoRecords(parsed, 1_000_000);
      const want = plain(body) as { resourceSpans: { resource: { attributes: unknown[] }; scopeSpans: { spans: unknown[] }[] }[] };
      const nonEmpty = want.resourceSpans.filter((r) => r.scopeSpans.length > 0);
      for (const r of nonEmpty) r.resource.attributes.push({ key: 'tenant.id', value: { stringValue: 'acme' } });
      if (nonEmpty.length === 0) { expect(records).toEqual([]); continue; }
      expect(records).toHaveLength(1);
      expect(plain(records[0]!)).toEqual({ resourceSpans: nonEmpty });
      expect(parsed.accepted).toBe(nonEmpty.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)).length);
    }
  });

  it('never throws anything but WireError on truncated or corrupted input', () => {
    const body = randomRequest(3);
    let wireErrors = 0;
    for (let cut = 0; cut < body.length; cut++) {
      try { parseExportRequest(signals.traces, body.subarray(0, cut), 'acme', limits); } catch (e) { expect(e).toBeInstanceOf(WireError); wireErrors++; }
    }
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.from(body);
      const pos = (i * 7919) % b.length;
      b[pos] = b[pos]! ^ (1 << (i % 8));
      try { parseExportRequest(signals.traces, b, 'acme', limits); } catch (e) {
        if (!(e instanceof WireError) && !(e instanceof TenantMismatchError)) throw e;
      }
    }
    expect(wireErrors).toBeGreaterThan(body.length / 2);
  });

  it('refuses invalid UTF-8 in strings, as a strict protobuf decoder does', () => {
    const body = Buffer.from(tracesRequest([{ scopes: [{ name: 's', spans: [spanObject('AAAA')] }] }]));
    const at = body.indexOf(Buffer.from('AAAA'));
    body[at] = 0xff;
    expect(() => parseExportRequest(signals.traces, body, 'acme', limits)).toThrow(/invalid UTF-8/);
  });

  it('keeps a matching tenant.id claim as it is and refuses a foreign one', () => {
    const same = tracesRequest([{ attrs: { 'tenant.id': 'acme' }, scopes: [{ name: 's', spans: [spanObject('x')] }] }]);
    const rec = splitIntoRecords(parseExportRequest(signals.traces, same, 'acme', limits), 1e6).records[0]!;
    const attrs = (plain(rec) as { resourceSpans: { resource: { attributes: { key: string }[] } }[] }).resourceSpans[0]!.resource.attributes;
    expect(attrs.filter((a) => a.key === 'tenant.id')).toHaveLength(1);
    const other = tracesRequest([{ attrs: { 'tenant.id': 'globex' }, scopes: [{ name: 's', spans: [spanObject('x')] }] }]);
    expect(() => parseExportRequest(signals.traces, other, 'acme', limits)).toThrow(TenantMismatchError);
  });

  it('counts log records and keeps event_name and unknown fields', () => {
    const msg = types.ExportLogsServiceRequest.fromObject({ resourceLogs: [{ scopeLogs: [{ logRecords: [{ eventName: 'policy.changed', body: { stringValue: 'b' } }, { severityNumber: 17 }] }] }] });
    const raw = Buffer.from(types.ExportLogsServiceRequest.encode(msg).finish());
    // An unknown top-level field (number 99, varint) is skipped without failing the request
    // (unknown fields inside resources, scopes and items are carried through as raw bytes).
    const withUnknown = Buffer.concat([raw, Buffer.from([0x98, 0x06, 0x2a])]);
    const parsed = parseExportRequest(signals.logs, withUnknown, 'acme', limits);
    expect(parsed.accepted).toBe(2);
    const rec = splitIntoRecords(parsed, 1e6).records[0]!;
    expect(decodeLogs(rec).resourceLogs[0]!.scopeLogs[0]!.logRecords.map((r) => r.eventName)).toEqual(['policy.changed', '']);
  });

  it('refuses truncated fields, even unknown ones, and trailing garbage after a valid request', () => {
    // Field 100, length 1000, one byte present.
    const cut = Buffer.from([0xa2, 0x06, 0xe8, 0x07, 0x78]);
    expect(() => parseExportRequest(signals.traces, cut, 'acme', limits)).toThrow(WireError);
    const valid = Buffer.from(tracesRequest([{ scopes: [{ name: 's', spans: [spanObject('x')] }] }]));
    expect(() => parseExportRequest(signals.traces, Buffer.concat([valid, cut]), 'acme', limits)).toThrow(WireError);
    // Unknown fixed64 (field 99, wire type 1) and fixed32 (wire type 5) cut short, at the top and inside a span.
    expect(() => parseExportRequest(signals.traces, Buffer.concat([valid, Buffer.from([0x99, 0x06, 1, 2])]), 'acme', limits)).toThrow(WireError);
    expect(() => parseExportRequest(signals.traces, Buffer.concat([valid, Buffer.from([0x9d, 0x06, 1, 2])]), 'acme', limits)).toThrow(WireError);
    const span = Buffer.concat([Buffer.from(SpanType.encode(SpanType.fromObject(spanObject('y'))).finish()), Buffer.from([0x99, 0x06, 1, 2])]);
    expect(() => parseExportRequest(signals.traces, request(span), 'acme', limits)).toThrow(WireError);
    // The same unknown fields whole are skipped (top level) or carried (inside a span).
    const whole = Buffer.concat([Buffer.from(SpanType.encode(SpanType.fromObject(spanObject('y'))).finish()), Buffer.from([0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8])]);
    expect(parseExportRequest(signals.traces, request(whole), 'acme', limits).accepted).toBe(1);
    expect(parseExportRequest(signals.traces, Buffer.concat([valid, Buffer.from([0xa2, 0x06, 0x01, 0x78])]), 'acme', limits).accepted).toBe(1);
  });

  it('refuses, per item, values nested deeper than MAX_VALUE_NESTING, without recursing into them', () => {
    const good = Buffer.from(SpanType.encode(SpanType.fromObject(spanObject('innocent'))).finish());
    const deep = (levels: number, kv = false) => withAttribute(Buffer.from(SpanType.encode(SpanType.fromObject(spanObject('deep'))).finish()), nestedValue(levels, kv));
    for (const kv of [false, true]) {
      const ok = parseExportRequest(signals.traces, request(deep(MAX_VALUE_NESTING, kv), good), 'acme', limits);
      expect(ok.accepted).toBe(2);
      for (const levels of [MAX_VALUE_NESTING + 1, 48, 5000]) {
        const parsed = parseExportRequest(signals.traces, request(deep(levels, kv), good), 'acme', limits);
        expect(parsed.accepted).toBe(1);
        expect(parsed.rejected.get('value_too_deep')).toBe(1);
        const rec = splitIntoRecords(parsed, 1e6).records[0]!;
        expect(types.ExportTraceServiceRequest.decode(rec).toJSON().resourceSpans[0].scopeSpans[0].spans.map((x: { name: string }) => x.name)).toEqual(['innocent']);
      }
    }
    // 100,000 levels: far past any stack; still a per-item refusal, not an exception.
    expect(parseExportRequest(signals.traces, request(deep(100_000), good), 'acme', limits).rejected.get('value_too_deep')).toBe(1);
    // On the resource, it refuses every item under it.
    const resource = frame(1, frame(1, Buffer.concat([frame(1, Buffer.from('k')), frame(2, nestedValue(MAX_VALUE_NESTING + 1))])));
    const body = frame(1, Buffer.concat([resource, frame(2, frame(2, good))]));
    const parsed = parseExportRequest(signals.traces, body, 'acme', limits);
    expect(parsed.accepted).toBe(0);
    expect(parsed.rejected.get('value_too_deep')).toBe(1);
  });

  it('accepts nothing the scrubber or protobufjs would refuse: the deepest path at the limit passes both', () => {
    // The deepest place for an attribute: an exemplar's filtered_attributes (field 7) in a gauge
    // (Metric.gauge = 5, Gauge.data_points = 1, NumberDataPoint.exemplars = 5).
    const metrics = (value: Buffer) => frame(1, frame(2, frame(2, frame(5, frame(1, frame(5, frame(7, Buffer.concat([frame(1, Buffer.from('k')), frame(2, value)]))))))));
    const policy = policyFor(parseScrubConfig({}), 'acme');
    for (const kv of [false, true]) {
      const atLimit = metrics(nestedValue(MAX_VALUE_NESTING, kv));
      const parsed = parseExportRequest(signals.metrics, atLimit, 'acme', limits);
      expect(parsed.accepted).toBe(1);
      const rec = splitIntoRecords(parsed, 1e6).records[0]!;
      expect(scrubRequest('metrics', rec, policy, new Date()).summary.dropped).toBeUndefined();
      expect(() => types.ExportMetricsServiceRequest.decode(rec)).not.toThrow();
      expect(parseExportRequest(signals.metrics, metrics(nestedValue(MAX_VALUE_NESTING + 1, kv)), 'acme', limits).rejected.get('value_too_deep')).toBe(1);
    }
  });

  it('refuses spans whose trace id or span id is all zero, only those', () => {
    const zeroTrace = spanObject('zero-trace', {}, { traceId: Buffer.alloc(16) });
    const zeroSpan = spanObject('zero-span', {}, { spanId: Buffer.alloc(8) });
    const rootSpan = spanObject('root', {}, { parentSpanId: Buffer.alloc(0) });
    const parsed = parseExportRequest(signals.traces, tracesRequest([{ scopes: [{ name: 's', spans: [zeroTrace, zeroSpan, rootSpan] }] }]), 'acme', limits);
    expect(parsed.accepted).toBe(1);
    expect(parsed.rejected.get('invalid_id')).toBe(2);
  });

  it('refuses spans with a link whose trace id or span id is all zero or of the wrong length, only those', () => {
    const link = (extra: Record<string, unknown>) => ({ traceId: randomBytes(16), spanId: randomBytes(8), ...extra });
    const spans = [
      spanObject('link-zero-trace', {}, { links: [link({}), link({ traceId: Buffer.alloc(16) })] }),
      spanObject('link-zero-span', {}, { links: [link({ spanId: Buffer.alloc(8) })] }),
      spanObject('link-short-trace', {}, { links: [link({ traceId: randomBytes(15) })] }),
      spanObject('link-long-span', {}, { links: [link({ spanId: randomBytes(9) })] }),
      spanObject('link-ok', {}, { links: [link({}), link({ traceId: Buffer.from('00'.repeat(15) + '01', 'hex'), spanId: Buffer.from('0000000000000001', 'hex') })] }),
    ];
    const parsed = parseExportRequest(signals.traces, tracesRequest([{ scopes: [{ name: 's', spans }] }]), 'acme', limits);
    expect(parsed.accepted).toBe(1);
    expect(parsed.rejected.get('invalid_id')).toBe(4);
    const kept = splitIntoRecords(parsed, 1e6).records.flatMap((r) => types.ExportTraceServiceRequest.decode(r).toJSON().resourceSpans
      .flatMap((rs: { scopeSpans: { spans: { name: string }[] }[] }) => rs.scopeSpans.flatMap((sc) => sc.spans.map((x) => x.name))));
    expect(kept).toEqual(['link-ok']);
  });

  it('refuses a resource whose tenant.id occurrences are not all the token tenant', () => {
    const kv = (k: string, v: string) => ({ key: k, value: { stringValue: v } });
    const withAttrs = (attrs: unknown[]) => Buffer.from(types.ExportTraceServiceRequest.encode(types.ExportTraceServiceRequest.fromObject({
      resourceSpans: [{ resource: { attributes: attrs }, scopeSpans: [{ spans: [spanObject('x')] }] }] })).finish());
    for (const attrs of [[kv('tenant.id', 'globex'), kv('tenant.id', 'acme')], [kv('tenant.id', 'acme'), kv('tenant.id', 'globex')],
      [kv('tenant.id', 'acme'), { key: 'tenant.id', value: { intValue: 1 } }]]) {
      expect(() => parseExportRequest(signals.traces, withAttrs(attrs), 'acme', limits)).toThrow(TenantMismatchError);
    }
    // Repeats of the token's own tenant are consistent: kept as sent, nothing appended.
    const rec = splitIntoRecords(parseExportRequest(signals.traces, withAttrs([kv('tenant.id', 'acme'), kv('tenant.id', 'acme')]), 'acme', limits), 1e6).records[0]!;
    const attrs = (plain(rec) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue: string } }[] } }[] }).resourceSpans[0]!.resource.attributes;
    expect(attrs.filter((a) => a.key === 'tenant.id').map((a) => a.value.stringValue)).toEqual(['acme', 'acme']);
  });
});

/** A length-delimited field `field` holding `body`. */
function frame(field: number, body: Uint8Array): Buffer {
  const len: number[] = [];
  let n = body.length;
  while (n >= 0x80) { len.push((n & 0x7f) | 0x80); n >>>= 7; }
  len.push(n);
  return Buffer.concat([Buffer.from([(field << 3) | 2, ...len]), body]);
}

/** An AnyValue nesting `levels` arrayValues (or kvlistValues) around a string, built inside out
 * without recursion: each level only adds a prefix, so the prefixes are joined once at the end. */
function nestedValue(levels: number, kvlist = false): Buffer {
  const leaf = frame(1, Buffer.from('leaf'));
  const prefixes: Buffer[] = [];
  let size = leaf.length;
  const header = (field: number, n: number) => { const h = frame(field, Buffer.alloc(0)); return Buffer.concat([h.subarray(0, 1), varint(n)]); };
  for (let i = 0; i < levels; i++) {
    let p: Buffer;
    if (kvlist) {
      const key = frame(1, Buffer.from('k'));
      const value = header(2, size);
      const kv = Buffer.concat([key, value]);
      const kvField = header(1, kv.length + size);
      const list = Buffer.concat([kvField, kv]);
      p = Buffer.concat([header(6, list.length + size), list]);
    } else {
      const el = header(1, size);
      p = Buffer.concat([header(5, el.length + size), el]);
    }
    prefixes.push(p);
    size += p.length;
  }
  return Buffer.concat([...prefixes.reverse(), leaf]);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n >>>= 7; }
  out.push(n);
  return Buffer.from(out);
}

/** Span bytes with one more attribute (field 9) `k` = `value`. */
function withAttribute(span: Buffer, value: Buffer): Buffer {
  return Buffer.concat([span, frame(9, Buffer.concat([frame(1, Buffer.from('k')), frame(2, value)]))]);
}

/** An ExportTraceServiceRequest of one resource and one scope holding these encoded spans. */
function request(...spans: Buffer[]): Buffer {
  return frame(1, frame(2, Buffer.concat(spans.map((s) => frame(2, s)))));
}
