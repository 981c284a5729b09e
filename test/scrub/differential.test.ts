// Differential test of the wire-level scrubber (processors/scrub/wire.ts) against the oracle (the
// former object path, oracle.ts): over generated requests of all three signals, built from the
// labeled corpus, generated secrets and every value kind (nested kvlists and arrays, sensitive keys
// with numbers, bytes and booleans, existing redaction.* attributes), under three policies,
// decode(wire(x)) must deep-equal the oracle's scrubbed message and the summaries must agree.
// Then mutated bytes: the wire path either refuses them with a WireError or returns a request that
// still decodes; it never throws anything else.
import Long from 'long';
import { describe, expect, it } from 'vitest';
import { decodeTraces, encode, signals, type SignalName } from '../../lib/otlp/proto.ts';
import { parseScrubConfig, policyFor } from '../../processors/scrub/config.ts';
import { WireError, scrubRequest } from '../../processors/scrub/wire.ts';
import { gen, loadCorpus, prng } from './support.ts';
import { checkAgainstOracle } from './wire-check.ts';

const config = parseScrubConfig({
  defaults: { repoRoots: ['/home/alice/src/repo'] },
  tenants: {
    pseudo: { pseudonymKey: 'hex:000102030405060708090a0b0c0d0e0f', sensitiveKeys: ['ssn'],
      rules: { email: 'pseudonym', token: 'pseudonym', path: 'pseudonym', ip: 'pseudonym', sensitive_key: 'pseudonym', card: 'pseudonym' } },
    quiet: { summaryAttributes: false, ip: false },
  },
});
const now = new Date('2026-11-23T12:00:00Z');
const corpus = loadCorpus().map((e) => e.text);
const KEYS = ['http.route', 'url.full', 'enduser.id', 'db.query.text', 'log.message', 'db.password', 'http.request.header.authorization',
  'apiKey', 'session_id', 'ssn', 'user.name', 'gen_ai.usage.input_tokens', 'redaction.note', 'exception.message', 'peer', ''];

/** A random request generator over one PRNG: values mix corpus lines, secrets and plain text. */
const CLEAN_KEYS = ['http.route', 'db.query.text', 'user.name', 'gen_ai.usage.input_tokens', ''];
const CLEAN_TEXT = ['GET /api/v1/orders/{id}', 'ok', 'checkout', 'SELECT 1', 'x', 'héllo wörld ✓', '', 'pool-3-thread-7'];

/** A random request generator over one PRNG; `clean` draws only values with nothing to redact. */
function generator(seed: number, clean = false) {
  const rand = prng(seed);
  const g = gen(rand);
  const n = (max: number) => Math.floor(rand() * (max + 1));
  const text = (): string => {
    if (clean) return g.pick(CLEAN_TEXT);
    const r = rand();
    if (r < 0.35) return g.pick(corpus);
    if (r < 0.5) return g.slots[g.pick(Object.keys(g.slots))]!();
    if (r < 0.6) return `${g.str('abcdef', 5)}@example.com`;
    if (r < 0.65) return '';
    if (r < 0.7) return g.pick(['[REDACTED:email]', '<user>', '[email:0123456789ab]']);
    if (r < 0.75) return `héllo wörld ${g.pick(corpus)} ✓`;
    return g.pick(['GET /api/v1/orders/{id}', 'ok', 'checkout', 'SELECT 1', '/home/alice/src/repo/a.ts', '10.1.2.3', 'x']);
  };
  const value = (depth: number): Record<string, unknown> => {
    const r = rand();
    if (r < 0.5 || depth > 2) return { stringValue: text() };
    if (r < 0.58) return { intValue: Long.fromNumber(Math.floor((rand() - 0.3) * 1e12)) };
    if (r < 0.64) return { doubleValue: g.pick([0.5, -1, 1e21, 3.14159, 0]) };
    if (r < 0.68) return { boolValue: rand() < 0.5 };
    if (r < 0.72) return { bytesValue: Buffer.from(g.str('abcdef', n(12))) };
    if (r < 0.86) return { arrayValue: { values: Array.from({ length: n(3) }, () => value(depth + 1)) } };
    if (r < 0.98) return { kvlistValue: { values: attrs(depth + 1, 3) } };
    return {}; // an empty AnyValue
  };
  const attrs = (depth: number, max = 6): Record<string, unknown>[] => {
    const out: Record<string, unknown>[] = Array.from({ length: n(max) }, () => (rand() < 0.03 ? { key: g.pick(clean ? CLEAN_KEYS : KEYS) } : { key: g.pick(clean ? CLEAN_KEYS : KEYS), value: value(depth) }));
    // Summary attributes already present (a request scrubbed before, or a client's own).
    if (depth === 0 && rand() < 0.1) out.splice(n(out.length), 0, { key: 'redaction.masked.count', value: { intValue: n(5) } });
    if (depth === 0 && rand() < 0.1) out.splice(n(out.length), 0, { key: 'redaction.masked.rules', value: { stringValue: g.pick(['email', 'ipv4,jwt', '']) } });
    if (depth === 0 && rand() < 0.05) out.splice(n(out.length), 0, { key: 'redaction.masked.keys', value: { stringValue: 'a,zz' } });
    return out;
  };
  const ts = () => Long.fromString(String(1700000000000000000 + n(1e9)), true);
  const resource = () => (rand() < 0.9 ? { resource: { attributes: attrs(0), droppedAttributesCount: n(2) } } : {});
  const scope = () => (rand() < 0.9 ? { scope: { name: 'lib', version: '1.0', attributes: attrs(0, 2) } } : {});
  const span = () => ({
    traceId: Buffer.alloc(16, n(255)), spanId: Buffer.alloc(8, 7), name: text(), kind: n(5), startTimeUnixNano: ts(), endTimeUnixNano: ts(),
    attributes: attrs(0), traceState: rand() < 0.2 && !clean ? 'vendor=alice@example.com' : '',
    events: Array.from({ length: n(2) }, () => ({ timeUnixNano: ts(), name: text(), attributes: attrs(0, 3) })),
    links: Array.from({ length: n(2) }, () => ({ traceId: Buffer.alloc(16, 3), spanId: Buffer.alloc(8, 4), attributes: attrs(0, 3) })),
    ...(rand() < 0.7 ? { status: { code: n(2), message: text() } } : {}),
  });
  const log = () => ({
    timeUnixNano: ts(), severityNumber: n(24), severityText: 'INFO', attributes: attrs(0),
    ...(rand() < 0.9 ? { body: value(0) } : {}), ...(rand() < 0.3 ? { eventName: text() } : {}),
  });
  const exemplars = () => Array.from({ length: n(2) }, () => ({ filteredAttributes: attrs(0, 3), timeUnixNano: ts(), asDouble: 1, spanId: Buffer.alloc(8, 1) }));
  const point = () => ({ attributes: attrs(0), timeUnixNano: ts(), asDouble: rand(), exemplars: exemplars() });
  const metric = () => {
    const base = { name: 'm', unit: 's', description: rand() < 0.5 ? text() : '', metadata: rand() < 0.3 ? attrs(0, 2) : [] };
    switch (n(4)) {
      case 0: return { ...base, gauge: { dataPoints: Array.from({ length: n(3) }, point) } };
      case 1: return { ...base, sum: { dataPoints: Array.from({ length: n(3) }, point), aggregationTemporality: 2, isMonotonic: true } };
      case 2: return { ...base, histogram: { dataPoints: Array.from({ length: n(2) }, () => ({ ...point(), count: 3, bucketCounts: [1, 2], explicitBounds: [0.5] })), aggregationTemporality: 1 } };
      case 3: return { ...base, exponentialHistogram: { dataPoints: Array.from({ length: n(2) }, () => ({ ...point(), scale: 2, positive: { offset: 1, bucketCounts: [1] } })), aggregationTemporality: 1 } };
      default: return { ...base, summary: { dataPoints: Array.from({ length: n(2) }, () => ({ attributes: attrs(0), count: 2, sum: 3, quantileValues: [{ quantile: 0.5, value: 1 }] })) } };
    }
  };
  return (signal: SignalName): Uint8Array => {
    const resources = Array.from({ length: 1 + n(2) }, () => {
      const scopes = Array.from({ length: 1 + n(1) }, () => signal === 'traces' ? { ...scope(), spans: Array.from({ length: n(4) }, span) }
        : signal === 'logs' ? { ...scope(), logRecords: Array.from({ length: n(4) }, log) } : { ...scope(), metrics: Array.from({ length: n(3) }, metric) });
      return signal === 'traces' ? { ...resource(), scopeSpans: scopes } : signal === 'logs' ? { ...resource(), scopeLogs: scopes } : { ...resource(), scopeMetrics: scopes };
    });
    const field = signals[signal].resourceField;
    return encode(signal, signals[signal].request.fromObject({ [field]: resources }));
  };
}

const SIGNALS: SignalName[] = ['traces', 'logs', 'metrics'];
const TENANTS = ['default', 'pseudo', 'quiet'];

describe.each(SIGNALS)('wire scrub agrees with the oracle (%s)', (signal) => {
  it.each(TENANTS)('over 150 generated requests, tenant %s', (tenant) => {
    const policy = policyFor(config, tenant);
    let changed = 0;
    for (let seed = 1; seed <= 150; seed++) {
      const req = generator(seed * 7 + SIGNALS.indexOf(signal))(signal);
      const { value, summary } = checkAgainstOracle(signal, req, policy, now);
      if (summary.total > 0) changed++;
      // Scrubbing the output again finds nothing and keeps its bytes (summary attributes included).
      const again = scrubRequest(signal, value, policy, now);
      expect(again.summary.total).toBe(0);
      expect(again.value).toBe(value);
    }
    // The generator must exercise redaction, or the comparison says little.
    expect(changed).toBeGreaterThan(50);
  });

  it('keeps the exact bytes of 50 generated requests with nothing to redact', () => {
    const policy = policyFor(config, 'default');
    for (let seed = 1; seed <= 50; seed++) {
      const req = generator(seed, true)(signal);
      const { value, summary } = checkAgainstOracle(signal, req, policy, now);
      expect(summary.total).toBe(0);
      expect(value).toBe(req);
    }
  });
});

describe('malformed bytes', () => {
  it('refuses mutated requests with a WireError or returns a decodable request, never anything else', () => {
    const policy = policyFor(config, 'default');
    const rand = prng(99);
    let refused = 0;
    for (let seed = 1; seed <= 600; seed++) {
      const signal = SIGNALS[seed % 3]!;
      const good = Buffer.from(generator(seed)(signal));
      if (good.length === 0) continue;
      const bad = Buffer.from(good);
      const r = rand();
      const at = Math.floor(rand() * bad.length);
      let input: Buffer = bad;
      if (r < 0.4) bad[at] = Math.floor(rand() * 256);
      else if (r < 0.7) input = bad.subarray(0, at);
      else if (r < 0.85) bad[at] = 0xff;
      else input = Buffer.concat([bad.subarray(0, at), Buffer.from([0x0a, 0x05, 0xc3, 0x28, 0x61, 0x62, 0x63]), bad.subarray(at)]);
      try {
        const { value } = scrubRequest(signal, input, policy, now);
        expect(() => signals[signal].request.decode(value)).not.toThrow();
      } catch (err) {
        if (!(err instanceof WireError)) throw err;
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(100);
  });

  it('names the problem: truncation, wire types, invalid UTF-8', () => {
    const policy = policyFor(config, 'default');
    const req = Buffer.from(encode('logs', signals.logs.request.fromObject({ resourceLogs: [{ scopeLogs: [{ logRecords: [{ body: { stringValue: 'hello world' } }] }] }] })));
    expect(() => scrubRequest('logs', req.subarray(0, req.length - 2), policy, now)).toThrow(WireError);
    const utf8 = Buffer.from(req);
    utf8[utf8.indexOf('world')] = 0xc3; // a lead byte followed by ASCII
    expect(() => scrubRequest('logs', utf8, policy, now)).toThrow(/invalid UTF-8/);
    expect(() => scrubRequest('logs', Buffer.from([0x08, 0x01]), policy, now)).toThrow(/wrong wire type/);
    expect(() => scrubRequest('logs', Buffer.from([0x0b]), policy, now)).toThrow(/wire type|truncated/);
  });
});

describe('deep nesting', () => {
  /** A traces request whose one span attribute is a kvlist nested `depth` levels around `leaf`. */
  function nested(depth: number, leaf: string): Buffer {
    const ld = (field: number, body: Buffer) => {
      const len: number[] = [];
      let n = body.length;
      while (n >= 0x80) { len.push((n & 0x7f) | 0x80); n >>>= 7; }
      len.push(n);
      return Buffer.concat([Buffer.from([(field << 3) | 2, ...len]), body]);
    };
    let any = ld(1, Buffer.from(leaf)); // AnyValue { string_value }
    for (let i = 0; i < depth; i++) any = ld(6, ld(1, Buffer.concat([ld(1, Buffer.from('k')), ld(2, any)]))); // AnyValue { kvlist { KeyValue } }
    const span = Buffer.concat([ld(5, Buffer.from('op')), ld(9, Buffer.concat([ld(1, Buffer.from('deep')), ld(2, any)]))]);
    return ld(1, ld(2, ld(2, span)));
  }

  it('scrubs a value nested 30 kvlists deep like the oracle', () => {
    const { summary } = checkAgainstOracle('traces', nested(30, 'mail alice@example.com'), policyFor(config, 'default'), now);
    expect(summary.rules).toEqual({ email: 1 });
  });

  it('drops exactly the spans protobufjs cannot decode (more than 100 nested messages), keeping the rest', () => {
    // 3 messages per kvlist level (AnyValue, KeyValueList, KeyValue) + 6 around it: 31 levels = 99 fit, 32 = 102 do not.
    for (const depth of [31, 32, 33]) {
      const bytes = nested(depth, 'x');
      let decoded = true;
      try { signals.traces.request.decode(bytes); } catch { decoded = false; }
      const { value, summary } = scrubRequest('traces', bytes, policyFor(config, 'default'), now);
      expect(summary.dropped ?? 0, `depth ${depth}`).toBe(decoded ? 0 : 1);
      // What is kept always decodes.
      const spans = decodeTraces(value).resourceSpans.flatMap((r) => r.scopeSpans.flatMap((sc) => sc.spans));
      expect(spans.length, `depth ${depth}`).toBe(decoded ? 1 : 0);
    }
    expect(() => signals.traces.request.decode(nested(31, 'x'))).not.toThrow();
    expect(() => signals.traces.request.decode(nested(32, 'x'))).toThrow(/nesting depth/);
  });

  it('drops a span nested 5 000 levels alone (no stack overflow), not the record with its innocent neighbours', () => {
    const deep = nested(5000, 'x');
    // The same request with an innocent span after the deep one in the same scope: the scope's body
    // (inside resource > scope framing) gets one more span field.
    const innocent = Buffer.from(signals.traces.request.encode(signals.traces.request.fromObject({ resourceSpans: [{ scopeSpans: [{ spans: [{ name: 'innocent alice@example.com' }] }] }] })).finish());
    const both = Buffer.concat([deep, innocent]); // two ResourceSpans entries
    const { value, summary } = scrubRequest('traces', both, policyFor(config, 'default'), now);
    expect(summary.dropped).toBe(1);
    expect(summary.rules).toEqual({ email: 1 });
    const names = decodeTraces(value).resourceSpans.flatMap((r) => r.scopeSpans.flatMap((sc) => sc.spans.map((x) => x.name)));
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^innocent /);
    expect(names[0]).not.toContain('alice@example.com');
  });
});
