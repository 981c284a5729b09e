// One-pass string scanner: the enabled rules are alternatives of ONE global regex, so a string is
// walked once whatever the number of rules (the regex engine tries the alternatives at each start
// position; each alternative's failure is bounded by its bounded quantifiers, see rules.ts). Which
// alternation a string gets depends on cheap character features (`features`): rules needing an `@`
// are left out for strings without one.
import type { RuleDef } from './rules.ts';
import { normalizedView } from './normalize.ts';

export interface ScanRule extends RuleDef {
  /** Capture group of the whole alternative, and of its kept prefix (if any), in its variant regex. */
  group: number;
  keepGroup: number | undefined;
}

/** One compiled alternation (all rules whose required characters a string has). */
interface Variant { re: RegExp; rules: ScanRule[]; tails: (Variant | undefined)[] }

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
// `long`: at least 40 characters (a bare AWS secret key is 40); `digit`: numbers-only rules
// (cards, IBANs, national ids, phone numbers) skip the many values without a digit.
export const F = { at: 1, sep: 2, dot: 4, slash: 8, space: 16, digit: 32, long: 64 } as const;
export const ALL_FEATURES = 127;
/**
 * Two more bits, not rule features: the string has a `%` or a non-ASCII character, so it may hide
 * a secret behind percent-encoding, full-width forms or invisible characters (see normalize.ts).
 */
export const NEEDS_VIEW = { pct: 128, unicode: 256 } as const;
const EVERY_BIT = 511;

/** What characters each rule needs (all bits must be present); rules not listed need none. */
const NEEDS: Record<string, number> = {
  private_key: F.space, jwt: F.dot, slack_webhook: F.sep | F.slash | F.dot, google_oauth_token: F.dot, sendgrid_key: F.dot, vault_token: F.dot,
  url_password: F.sep | F.slash | F.at, authorization: F.sep, bearer: F.space, basic_auth: F.space, cookie: F.sep, kv_secret: F.sep, cli_password: F.sep,
  url_signature: F.sep, email: F.at | F.dot, ipv4: F.dot | F.digit, ipv6: F.sep, home_path: F.slash, repo_path: F.slash,
  prose_secret: F.space, card: F.digit, iban: F.digit, us_ssn: F.digit, ca_sin: F.digit, br_cpf: F.digit | F.dot, in_aadhaar: F.digit,
  es_dni: F.digit, uk_nino: F.digit, phone: F.digit, aws_secret_key: F.long,
};
export const needsOf = (ruleId: string): number => NEEDS[ruleId] ?? 0;

/** Feature bits of `s` (F), plus NEEDS_VIEW bits. */
export function features(s: string): number {
  let f = s.length >= 40 ? F.long : 0;
  for (let i = 0; i < s.length; i++) {
    switch (s.charCodeAt(i)) {
      case 48: case 49: case 50: case 51: case 52: case 53: case 54: case 55: case 56: case 57: f |= F.digit; break;
      case 64: f |= F.at; break; // @
      case 58: case 61: f |= F.sep; break; // : =
      case 46: f |= F.dot; break; // .
      case 47: case 92: f |= F.slash; break; // / \
      case 32: case 9: case 10: case 13: f |= F.space; break;
      case 37: f |= NEEDS_VIEW.pct; break; // %
      default:
        if (s.charCodeAt(i) < 0x80) continue;
        f |= NEEDS_VIEW.unicode;
    }
    if (f === EVERY_BIT) break;
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
  v = alternation(scanner.rules.filter((r) => (needsOf(r.id) & mask) === needsOf(r.id)), 'g');
  scanner.variants.set(mask, v);
  return v;
}

/** The rules (in priority order) as one regex; `tails[i]` (sticky, built on demand) holds rules after i. */
function alternation(rules: readonly RuleDef[], flags: string): Variant {
  let group = 1;
  const scanRules: ScanRule[] = [];
  const parts: string[] = [];
  for (let i = 0; i < rules.length;) {
    // Consecutive rules with the same lead share one test of it: at most positions the lead fails
    // once instead of once per rule (the digit-led ids: `(?=\d\d)` and the look-behind).
    const lead = rules[i]!.lead;
    const members: string[] = [];
    do {
      const r = rules[i++]!;
      const own = group++;
      const keepGroup = r.keep !== undefined ? group++ : undefined;
      members.push(r.keep !== undefined ? `((${r.keep})${r.value})` : `(${r.value})`);
      scanRules.push({ ...r, group: own, keepGroup });
    } while (lead !== undefined && i < rules.length && rules[i]!.lead === lead);
    parts.push(lead === undefined ? members[0]! : `${lead}(?:${members.join('|')})`);
  }
  // Every rule starts where the previous character is not a letter or digit (word start, or after
  // `_`/`-`/punctuation). Checking that once, before the alternation, rejects most positions inside
  // words with one comparison instead of one attempt per rule. The scrubber's own placeholders count
  // as a word too: text glued to a redacted secret (`10.1.2.3/home/x`) was glued to the secret's
  // last character before, and must not start matching on a second pass (idempotence).
  const source = parts.length ? `(?<![A-Za-z0-9])(?<!${OUTPUT_TAIL})(?:${parts.join('|')})` : '(?!)';
  const re = new RegExp(source, flags);
  // Fragments must not add capture groups of their own, or the group numbering above would be wrong.
  const groups = new RegExp(`${source}|`).exec('')!.length - 1;
  if (groups !== group - 1) throw new Error(`scrub rules: a fragment contains a capturing group (${groups} != ${group - 1})`);
  return { re, rules: scanRules, tails: [] };
}

/** The alternation of the rules after rules[i] of `v`, anchored (sticky), or undefined if none. */
function tail(v: Variant, i: number): Variant | undefined {
  if (i + 1 >= v.rules.length) return undefined;
  return (v.tails[i] ??= alternation(v.rules.slice(i + 1), 'y'));
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

function scan(s: string, scanner: Scanner, onFinding: (f: Finding) => void, refining = false, mask = -1): void {
  if (s.length < MIN_SCAN_LENGTH) return;
  const v = variant(scanner, (mask < 0 ? features(s) : mask) & ALL_FEATURES);
  if (v.rules.length === 0) return;
  const re = v.re;
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const at = m.index;
    let rule = whichRule(m, v.rules);
    let keep = rule.keepGroup !== undefined ? m[rule.keepGroup]!.length : 0;
    let length = m[0].length;
    if (length === 0) { re.lastIndex = at + 1; continue; } // never loop on an empty match
    let verdict = rule.validate ? rule.validate(s.slice(at + keep, at + length), s, at + keep) : true;
    // Rejected (Luhn, IP validity, context, ...): the rules after it in priority order still get
    // this position (a number run that is no card may hold an IP address or a phone number); their
    // alternation is tried there in one anchored match, and so on while candidates are rejected.
    for (let t = tail(v, v.rules.indexOf(rule)); verdict === false && t !== undefined;) {
      t.re.lastIndex = at;
      const tm = t.re.exec(s);
      if (tm === null || tm[0].length === 0) break;
      rule = whichRule(tm, t.rules);
      keep = rule.keepGroup !== undefined ? tm[rule.keepGroup]!.length : 0;
      length = tm[0].length;
      verdict = rule.validate ? rule.validate(s.slice(at + keep, at + length), s, at + keep) : true;
      t = tail(t, t.rules.indexOf(rule));
    }
    if (verdict === false) { re.lastIndex = at + 1; continue; } // resume one character later
    const start = at + keep;
    const end = typeof verdict === 'number' ? start + verdict : at + length;
    re.lastIndex = end;
    const value = s.slice(start, end);
    let found: ScanRule = rule;
    if (!refining) {
      const lastIndex = re.lastIndex; // nested scans may reuse this regex object
      // The kept prefix is not trusted either: `https://<token>:x-oauth-basic@host` keeps a token.
      if (keep > 0) scan(s.slice(at, start), scanner, (f) => onFinding({ ...f, start: at + f.start, end: at + f.end }), true);
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
export function redactString(s: string, scanner: Scanner, render: Render, onHit: (ruleId: string) => void, mask = -1): string {
  let out: string | undefined;
  let last = 0;
  scan(s, scanner, (f) => {
    out = (out ?? '') + s.slice(last, f.start) + render(f.rule, f.value);
    last = f.end;
    onHit(f.rule.id);
  }, false, mask);
  return out === undefined ? s : out + s.slice(last);
}

/**
 * Findings in the normalised view of `s` (percent-decoded, NFKC, invisible characters removed),
 * with start/end in `s`: each covers the original characters its view characters came from.
 * Empty when the view equals `s`.
 */
export function findAllNormalized(s: string, scanner: Scanner): Finding[] {
  const view = normalizedView(s);
  if (view === undefined) return [];
  const out: Finding[] = [];
  let last = 0;
  scan(view.text, scanner, (f) => {
    // A view character may stand for several original ones (`%40`) and several view characters
    // for one original (`㎏`): a finding takes whole originals, never overlapping the previous one.
    const start = Math.max(view.start[f.start]!, last);
    const end = view.end[f.end - 1]!;
    if (end <= start) return;
    out.push({ rule: f.rule, start, end, value: f.value });
    last = end;
  });
  return out;
}

/**
 * `redactString` on the normalised view: what percent-encoding, full-width forms or invisible
 * characters hid is replaced in `s` (the original characters it spans); the rest of `s` stays as
 * it is, and `s` itself is returned when the view holds nothing. Pseudonyms are of the normalised
 * value, so `alice＠example.com` correlates with `alice@example.com`.
 */
export function redactNormalized(s: string, scanner: Scanner, render: Render, onHit: (ruleId: string) => void): string {
  const found = findAllNormalized(s, scanner);
  if (found.length === 0) return s;
  let out = '';
  let last = 0;
  for (const f of found) {
    out += s.slice(last, f.start) + render(f.rule, f.value);
    last = f.end;
    onHit(f.rule.id);
  }
  return out + s.slice(last);
}
