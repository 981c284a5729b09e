// One-pass string scanner: the enabled rules are alternatives of ONE global regex, so a string is
// walked once whatever the number of rules (the regex engine tries the alternatives at each start
// position; each alternative's failure is bounded by its bounded quantifiers, see rules.ts). Which
// alternation a string gets depends on cheap character features (`features`): rules needing an `@`
// are left out for strings without one.
import type { RuleDef } from './rules.ts';

export interface ScanRule extends RuleDef {
  /** Capture group of the whole alternative, and of its kept prefix (if any), in its variant regex. */
  group: number;
  keepGroup: number | undefined;
}

/** One compiled alternation (all rules whose required characters a string has). */
interface Variant { re: RegExp; rules: ScanRule[] }

export interface Scanner {
  /** The enabled rules in priority order. */
  rules: readonly RuleDef[];
  /** Compiled alternations by feature mask (see `features`), built on first use. */
  variants: Map<number, Variant>;
}

/** Renders the replacement of a matched secret; the scrubber decides style (placeholder/pseudonym). */
export type Render = (rule: ScanRule, value: string) => string;

/** The end of a placeholder or pseudonym the scrubber writes (see Scrubber.render). */
const OUTPUT_TAIL = '\\[(?:REDACTED:[a-z0-9_]{1,40}|[a-z0-9_]{1,40}:[0-9a-f]{12})\\]|<[a-z]{1,8}(?::[0-9a-f]{12})?>';

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** A rule that rewrites a configured repository root to `<repo>` (checked before home paths). */
export function repoRootRule(roots: readonly string[]): RuleDef | undefined {
  const clean = [...new Set(roots.map((r) => r.replace(/[\\/]+$/, '')).filter((r) => r.length > 1))]
    .sort((a, b) => b.length - a.length); // longest first: nested roots resolve to the innermost
  if (clean.length === 0) return undefined;
  return { id: 'repo_path', family: 'path', angle: 'repo', value: `(?<![\\w.~-])(?:${clean.map(escapeRe).join('|')})(?=[/\\\\\\s"':]|$)` };
}

// Cheap character features of a string. A rule that needs `@` (e-mail, URL credentials) cannot
// match a string without one, so strings are scanned by the alternation of only the rules whose
// features they have: still one pass per string, with fewer alternatives tried at each position.
export const F = { at: 1, sep: 2, dot: 4, slash: 8, space: 16 } as const;
export const ALL_FEATURES = 31;

/** What characters each rule needs (all bits must be present); rules not listed need none. */
const NEEDS: Record<string, number> = {
  private_key: F.space, jwt: F.dot, slack_webhook: F.sep | F.slash | F.dot, google_oauth_token: F.dot, sendgrid_key: F.dot, vault_token: F.dot,
  url_password: F.sep | F.slash | F.at, authorization: F.sep, bearer: F.space, basic_auth: F.space, cookie: F.sep, kv_secret: F.sep, cli_password: F.sep,
  url_signature: F.sep, email: F.at | F.dot, ipv4: F.dot, ipv6: F.sep, home_path: F.slash, repo_path: F.slash,
};
export const needsOf = (ruleId: string): number => NEEDS[ruleId] ?? 0;

export function features(s: string): number {
  let f = 0;
  for (let i = 0; i < s.length; i++) {
    switch (s.charCodeAt(i)) {
      case 64: f |= F.at; break; // @
      case 58: case 61: f |= F.sep; break; // : =
      case 46: f |= F.dot; break; // .
      case 47: case 92: f |= F.slash; break; // / \
      case 32: case 9: case 10: case 13: f |= F.space; break;
      default: continue;
    }
    if (f === ALL_FEATURES) break;
  }
  return f;
}

/** Joins the given rules (in priority order) into one scanner; variants compile on first use. */
export function compileScanner(rules: readonly RuleDef[]): Scanner {
  const scanner: Scanner = { rules, variants: new Map() };
  variant(scanner, ALL_FEATURES); // compile the full alternation now: fragment errors surface at startup
  return scanner;
}

function variant(scanner: Scanner, mask: number): Variant {
  let v = scanner.variants.get(mask);
  if (v) return v;
  let group = 1;
  const scanRules: ScanRule[] = [];
  const parts: string[] = [];
  for (const r of scanner.rules) {
    const needs = needsOf(r.id);
    if ((needs & mask) !== needs) continue;
    const own = group++;
    const keepGroup = r.keep !== undefined ? group++ : undefined;
    parts.push(r.keep !== undefined ? `((${r.keep})${r.value})` : `(${r.value})`);
    scanRules.push({ ...r, group: own, keepGroup });
  }
  // Every rule starts where the previous character is not a letter or digit (word start, or after
  // `_`/`-`/punctuation). Checking that once, before the alternation, rejects most positions inside
  // words with one comparison instead of one attempt per rule. The scrubber's own placeholders count
  // as a word too: text glued to a redacted secret (`10.1.2.3/home/x`) was glued to the secret's
  // last character before, and must not start matching on a second pass (idempotence).
  const source = parts.length ? `(?<![A-Za-z0-9])(?<!${OUTPUT_TAIL})(?:${parts.join('|')})` : '(?!)';
  const re = new RegExp(source, 'g');
  // Fragments must not add capture groups of their own, or the group numbering above would be wrong.
  const groups = new RegExp(`${source}|`).exec('')!.length - 1;
  if (groups !== group - 1) throw new Error(`scrub rules: a fragment contains a capturing group (${groups} != ${group - 1})`);
  v = { re, rules: scanRules };
  scanner.variants.set(mask, v);
  return v;
}

/** Shortest string any default rule can match; shorter strings are returned as they are. */
export const MIN_SCAN_LENGTH = 6;

export interface Finding { rule: ScanRule; start: number; end: number; value: string }

/** All accepted findings in `s`, left to right, non-overlapping. */
export function findAll(s: string, scanner: Scanner): Finding[] {
  const out: Finding[] = [];
  scan(s, scanner, (f) => { out.push(f); });
  return out;
}

function scan(s: string, scanner: Scanner, onFinding: (f: Finding) => void, refining = false): void {
  if (s.length < MIN_SCAN_LENGTH) return;
  const v = variant(scanner, features(s));
  if (v.rules.length === 0) return;
  const re = v.re;
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const rule = whichRule(m, v.rules);
    const keep = rule.keepGroup !== undefined ? m[rule.keepGroup]!.length : 0;
    const start = m.index + keep;
    let end = m.index + m[0].length;
    let value = s.slice(start, end);
    if (end === m.index) { re.lastIndex = m.index + 1; continue; } // never loop on an empty match
    if (rule.validate) {
      const verdict = rule.validate(value);
      if (verdict === false) {
        // Rejected (Luhn, IP validity, ...): resume one character later so other rules still get a chance.
        re.lastIndex = m.index + 1;
        continue;
      }
      if (typeof verdict === 'number') {
        end = start + verdict;
        value = value.slice(0, verdict);
        re.lastIndex = end;
      }
    }
    let found: ScanRule = rule;
    if (!refining) {
      const lastIndex = re.lastIndex; // nested scans may reuse this regex object
      // The kept prefix is not trusted either: `https://<token>:x-oauth-basic@host` keeps a token.
      if (keep > 0) scan(s.slice(m.index, start), scanner, (f) => onFinding({ ...f, start: m!.index + f.start, end: m!.index + f.end }), true);
      if (rule.refine) found = refined(rule, value, scanner);
      re.lastIndex = lastIndex;
    }
    onFinding({ rule: found, start, end, value });
  }
}

/** The specific rule that matches all of a keyword rule's value, else the keyword rule itself. */
function refined(rule: ScanRule, value: string, scanner: Scanner): ScanRule {
  let inner: Finding | undefined;
  scan(value, scanner, (f) => { inner ??= f; }, true);
  // Path rules rewrite rather than hide, so a path-shaped cookie is still hidden as a cookie.
  return inner && !inner.rule.angle && inner.start === 0 && inner.end === value.length ? inner.rule : rule;
}

function whichRule(m: RegExpExecArray, rules: ScanRule[]): ScanRule {
  for (const r of rules) if (m[r.group] !== undefined) return r;
  throw new Error('scrub scanner: a match without a rule');
}

/**
 * Returns `s` with every finding replaced by `render(rule, value)`; `onHit` sees each rule id.
 * Returns the same string instance when nothing matched (callers use identity to skip writes).
 */
export function redactString(s: string, scanner: Scanner, render: Render, onHit: (ruleId: string) => void): string {
  let out: string | undefined;
  let last = 0;
  scan(s, scanner, (f) => {
    out = (out ?? '') + s.slice(last, f.start) + render(f.rule, f.value);
    last = f.end;
    onHit(f.rule.id);
  });
  return out === undefined ? s : out + s.slice(last);
}
