// The adversarial corpus (test/scrub/corpus/adversarial.jsonl): secrets disguised the way a
// determined leak would (percent-encoding, full-width forms, invisible characters, international
// and quoted e-mail addresses, cards with dots or mixed separators, prose, bare cloud keys, `~user`
// paths) and the kinds without rules before (national ids, phone numbers, IBANs), each placed in
// every field position the scrubber covers; plus known negatives (ids, hashes, digests,
// timestamps, semantic-convention values, statements without literals, k8s names, versions, IPv6,
// durations, near misses of the new rules). Everything goes through the production wire path,
// checked against the oracle on every call. Asserts recall = 100% (the family reported, no
// generated or listed secret left, even in the normalised view of the output) and zero false
// positives (negatives keep their exact bytes), and prints the figures docs/scrub.md reports.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { encode, signals, type KeyValue, type SignalName } from '../../lib/otlp/proto.ts';
import { parseScrubConfig, policyFor } from '../../processors/scrub/config.ts';
import { normalizedView } from '../../processors/scrub/normalize.ts';
import { familyOf } from '../../processors/scrub/rules.ts';
import { expandCase } from './support.ts';
import { checkAgainstOracle } from './wire-check.ts';

interface Positive { family: string; variant: string; text: string; secret: string[]; expect: string[] }
interface Negative { neg: string; text: string; policy?: 'ip_off' }
type Entry = (Positive | Negative) & { line: number };

const file = path.join(path.dirname(fileURLToPath(import.meta.url)), 'corpus', 'adversarial.jsonl');
const entries: Entry[] = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l, i) => ({ ...JSON.parse(l), line: i + 1 }));

const config = parseScrubConfig({ tenants: { ipoff: { ip: false } } });
const policies = { default: policyFor(config, 'corpus'), ip_off: policyFor(config, 'ipoff') };
const now = new Date('2026-11-23T12:00:00Z');

const s = (v: string) => ({ stringValue: v });
const kv = (key: string, v: string): KeyValue => ({ key, value: s(v) });
const span = (over: Record<string, unknown>) => ({ traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 2), name: 'op', ...over });
const traces = (spanOver: Record<string, unknown>, resource: KeyValue[] = [], scope: KeyValue[] = []) =>
  ({ resourceSpans: [{ resource: { attributes: resource }, scopeSpans: [{ scope: { name: 'lib', attributes: scope }, spans: [span(spanOver)] }] }] });
const logs = (rec: Record<string, unknown>) => ({ resourceLogs: [{ scopeLogs: [{ logRecords: [{ timeUnixNano: 1, ...rec }] }] }] });
const metrics = (m: Record<string, unknown>) => ({ resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'm', ...m }] }] }] });

/** Field positions: where a value can sit in a request. Keys are ordinary (never sensitive). */
const POSITIONS: Record<string, (v: string) => [SignalName, unknown]> = {
  'span attribute': (v) => ['traces', traces({ attributes: [kv('app.note', v)] })],
  'span name': (v) => ['traces', traces({ name: v })],
  'status message': (v) => ['traces', traces({ status: { code: 2, message: v } })],
  'event attribute': (v) => ['traces', traces({ events: [{ timeUnixNano: 1, name: 'exception', attributes: [kv('exception.message', v)] }] })],
  'event name': (v) => ['traces', traces({ events: [{ timeUnixNano: 1, name: v }] })],
  'link attribute': (v) => ['traces', traces({ links: [{ traceId: Buffer.alloc(16, 3), spanId: Buffer.alloc(8, 4), attributes: [kv('link.note', v)] }] })],
  'resource attribute': (v) => ['traces', traces({}, [kv('service.instance.note', v)])],
  'scope attribute': (v) => ['traces', traces({}, [], [kv('scope.note', v)])],
  'kvlist nested': (v) => ['traces', traces({ attributes: [{ key: 'app.ctx', value: { kvlistValue: { values: [{ key: 'inner', value: { kvlistValue: { values: [kv('note', v)] } } }] } } }] })],
  'array nested': (v) => ['traces', traces({ attributes: [{ key: 'app.list', value: { arrayValue: { values: [s('x'), { arrayValue: { values: [s(v)] } }] } } }] })],
  'log body': (v) => ['logs', logs({ body: s(v) })],
  'log body kvlist': (v) => ['logs', logs({ body: { kvlistValue: { values: [kv('msg', v)] } } })],
  'log attribute': (v) => ['logs', logs({ attributes: [kv('log.note', v)] })],
  'metric point attribute': (v) => ['metrics', metrics({ gauge: { dataPoints: [{ asInt: 1, attributes: [kv('note', v)] }] } })],
  'metric description': (v) => ['metrics', metrics({ description: v })],
};

/** Every string of a decoded message (what a reader of the scrubbed record could see). */
function strings(x: unknown, out: string[] = []): string[] {
  if (typeof x === 'string') out.push(x);
  else if (Array.isArray(x)) for (const y of x) strings(y, out);
  else if (x && typeof x === 'object') for (const y of Object.values(x)) strings(y, out);
  return out;
}

function run(signal: SignalName, req: unknown, policy: keyof typeof policies) {
  const bytes = encode(signal, signals[signal].request.fromObject(req as Record<string, unknown>));
  const result = checkAgainstOracle(signal, bytes, policies[policy], now);
  const decoded = signals[signal].request.toObject(signals[signal].request.decode(result.value), { bytes: String, longs: String });
  const seen = strings(decoded).flatMap((x) => [x, normalizedView(x)?.text ?? x]);
  return { bytes, result, seen };
}

describe('adversarial scrub corpus', () => {
  const positives = entries.filter((e): e is Positive & { line: number } => 'family' in e);
  const negatives = entries.filter((e): e is Negative & { line: number } => 'neg' in e);

  it('holds several disguised variants per kind and every negative category', () => {
    const perFamily = new Map<string, number>();
    for (const p of positives) perFamily.set(p.family, (perFamily.get(p.family) ?? 0) + 1);
    for (const f of ['email', 'kv_secret', 'card', 'token', 'path', 'national_id', 'phone', 'iban', 'url_secret', 'auth', 'jwt']) {
      expect(perFamily.get(f) ?? 0, f).toBeGreaterThanOrEqual(f === 'jwt' ? 1 : 2);
    }
    expect(new Set(negatives.map((n) => n.neg))).toEqual(new Set(['trace_id', 'span_id', 'uuid', 'sha256', 'sha1', 'base64_digest', 'timestamp',
      'semconv', 'db_statement', 'k8s_name', 'version', 'ipv6', 'duration', 'near_miss']));
  });

  it('recall = 100%: every disguised secret, in every field position, is reported by its family and gone from the output', () => {
    const byFamily = new Map<string, { cases: number; found: number }>();
    const misses: string[] = [];
    for (const p of positives) {
      const { text, values } = expandCase(p.text, 5000 + p.line);
      const secrets = [...p.secret, ...values];
      for (const [where, build] of Object.entries(POSITIONS)) {
        const [signal, req] = build(text);
        const { result, seen } = run(signal, req, 'default');
        const families = new Set<string>(Object.keys(result.summary.rules).map((id) => familyOf(id)!));
        const missing = p.expect.filter((f) => !families.has(f));
        const extra = [...families].filter((f) => !p.expect.includes(f));
        const left = secrets.filter((x) => seen.some((y) => y.includes(x)));
        const row = byFamily.get(p.family) ?? { cases: 0, found: 0 };
        row.cases++;
        if (missing.length === 0 && left.length === 0 && extra.length === 0) row.found++;
        else misses.push(`line ${p.line} ${p.family}/${p.variant} in ${where}: missing [${missing}] extra [${extra}] left ${JSON.stringify(left)} in ${JSON.stringify(text)}`);
        byFamily.set(p.family, row);
      }
    }
    const rows = [...byFamily].sort().map(([f, r]) => `${f.padEnd(12)} variants=${String(positives.filter((p) => p.family === f).length).padStart(3)} cases=${String(r.cases).padStart(4)} found=${String(r.found).padStart(4)} recall=${(r.found / r.cases).toFixed(3)}`);
    const total = [...byFamily.values()].reduce((a, r) => ({ cases: a.cases + r.cases, found: a.found + r.found }), { cases: 0, found: 0 });
    console.log(`adversarial corpus: ${positives.length} positive lines x ${Object.keys(POSITIONS).length} positions = ${total.cases} cases, found ${total.found}\n${rows.join('\n')}`);
    expect(misses).toEqual([]);
  });

  it('zero false positives: every negative keeps its exact bytes in every field position', () => {
    const fps: string[] = [];
    let cases = 0;
    const perCategory = new Map<string, number>();
    for (const n of negatives) {
      perCategory.set(n.neg, (perCategory.get(n.neg) ?? 0) + 1);
      for (const [where, build] of Object.entries(POSITIONS)) {
        const [signal, req] = build(n.text);
        const { bytes, result } = run(signal, req, n.policy ?? 'default');
        cases++;
        if (result.value !== bytes || result.summary.total !== 0) fps.push(`line ${n.line} ${n.neg} in ${where}: ${JSON.stringify(result.summary.rules)} for ${JSON.stringify(n.text)}`);
      }
    }
    console.log(`adversarial corpus negatives: ${negatives.length} lines x ${Object.keys(POSITIONS).length} positions = ${cases} cases, false positives ${fps.length}\n${[...perCategory].map(([c, k]) => `${c}=${k}`).join(' ')}`);
    expect(fps).toEqual([]);
  });
});
