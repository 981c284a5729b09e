// Labeled corpus: precision and recall per rule family, through the production wire path (each
// line as a span attribute), checked against the oracle on the way (wire-check.ts).
import { describe, expect, it } from 'vitest';
import { decodeTraces, encode, types, type KeyValue } from '../../lib/otlp/proto.ts';
import { parseScrubConfig, policyFor } from '../../processors/scrub/config.ts';
import { FAMILIES, familyOf } from '../../processors/scrub/rules.ts';
import { loadCorpus, type CorpusEntry } from './support.ts';
import { checkAgainstOracle } from './wire-check.ts';

const policy = policyFor(parseScrubConfig({ defaults: { repoRoots: ['/home/alice/src/repo'] } }), 'corpus');
const now = new Date('2026-11-23T12:00:00Z');

function detect(e: CorpusEntry): { families: Set<string>; out: string } {
  const attributes: KeyValue[] = [{ key: e.key ?? 'log.message', value: { stringValue: e.text } }];
  const req = encode('traces', types.ExportTraceServiceRequest.fromObject({ resourceSpans: [{ scopeSpans: [{ spans: [{ name: 'op', attributes }] }] }] }));
  const { value, summary } = checkAgainstOracle('traces', req, policy, now);
  const out = decodeTraces(value).resourceSpans[0]!.scopeSpans[0]!.spans[0]!.attributes[0]!.value!.stringValue!;
  return { families: new Set(Object.keys(summary.rules).map((id) => familyOf(id)!)), out };
}

const STRUCTURED = ['email', 'token', 'card', 'private_key', 'jwt', 'sensitive_key', 'auth'];

describe('scrub corpus', () => {
  const corpus = loadCorpus();
  const results = corpus.map((e) => ({ e, ...detect(e) }));

  it('holds a few hundred labeled lines covering every family and every negative category', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(300);
    const labeled = new Set(corpus.flatMap((e) => e.expect));
    for (const f of FAMILIES) expect(labeled, f).toContain(f);
    expect(new Set(corpus.map((e) => e.neg).filter(Boolean))).toEqual(
      new Set(['trace_id', 'span_id', 'uuid', 'hex_digest', 'timestamp', 'semconv', 'base64_id', 'luhn']));
  });

  it('reaches recall >= 99% on structured families and reports precision/recall per family', () => {
    const rows: string[] = [];
    const recall: Record<string, number> = {};
    for (const f of FAMILIES) {
      let tp = 0, fp = 0, fn = 0;
      for (const r of results) {
        const want = r.e.expect.includes(f);
        const got = r.families.has(f);
        if (want && got) tp++; else if (got) fp++; else if (want) fn++;
      }
      recall[f] = tp / Math.max(1, tp + fn);
      rows.push(`${f.padEnd(14)} tp=${String(tp).padStart(3)} fp=${String(fp).padStart(2)} fn=${String(fn).padStart(2)}  precision=${(tp / Math.max(1, tp + fp)).toFixed(3)} recall=${recall[f]!.toFixed(3)}`);
    }
    console.log(`scrub corpus (${corpus.length} lines)\n${rows.join('\n')}`);
    const misses = results.filter((r) => r.e.expect.some((f) => !r.families.has(f)))
      .map((r) => `line ${r.e.line}: expected ${r.e.expect.join(',')} got ${[...r.families].join(',') || 'nothing'}: ${r.e.text.slice(0, 100)}`);
    for (const f of STRUCTURED) expect(recall[f], `${f} recall; misses:\n${misses.join('\n')}`).toBeGreaterThanOrEqual(0.99);
    for (const f of FAMILIES) expect(recall[f], `${f} recall; misses:\n${misses.join('\n')}`).toBeGreaterThanOrEqual(0.95);
  });

  it('has zero false positives on ids, digests, timestamps, semantic-convention values and base64 ids', () => {
    const fps = results.filter((r) => r.e.neg && r.families.size > 0).map((r) => `line ${r.e.line} (${r.e.neg}): ${[...r.families]} in ${r.e.text}`);
    expect(fps).toEqual([]);
    for (const r of results.filter((x) => x.e.neg)) expect(r.out).toBe(r.e.text);
  });

  it('flags nothing it was not asked to (no family detected outside the labels)', () => {
    const extra = results.filter((r) => [...r.families].some((f) => !r.e.expect.includes(f)))
      .map((r) => `line ${r.e.line}: labels ${r.e.expect} got ${[...r.families]}: ${r.e.text.slice(0, 120)}`);
    expect(extra).toEqual([]);
  });

  it('removes the secret: every positive line changes, and no redacted output is matched again', () => {
    for (const r of results.filter((x) => x.e.expect.length)) {
      expect(r.out, `line ${r.e.line}`).not.toBe(r.e.text);
      const again = detect({ ...r.e, text: r.out, key: 'log.message' });
      expect([...again.families], `line ${r.e.line}: ${r.out}`).toEqual([]);
    }
  });
});
