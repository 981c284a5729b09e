// A tenant's compiled scrubber: the one-pass scanner for its enabled rules, the redaction styles
// (placeholder or keyed pseudonym) and the sensitive-key test; wire.ts walks the OTLP bytes with it.
// Pure: no I/O, no clock (the caller passes `now` for deep-debug grants).
import { createHmac } from 'node:crypto';
import { relaxedRules, type RedactionStyle, type TenantScrubPolicy } from './config.ts';
import { DEFAULT_RULES, SENSITIVE_KEY, type RuleDef } from './rules.ts';
import { ByteCache } from './bytecache.ts';
import { MIN_SCAN_LENGTH, NEEDS_VIEW, compileScanner, features, redactNormalized, redactString, repoRootRule, type ScanRule, type Scanner } from './scanner.ts';

/** What a scrubbed item (span, log record, resource, ...) had redacted: counts, rule ids, attribute keys. */
export class Tally {
  count = 0;
  readonly rules = new Map<string, number>();
  readonly keys = new Set<string>();
  reset(): void {
    this.count = 0;
    if (this.rules.size) this.rules.clear();
    if (this.keys.size) this.keys.clear();
  }
  hit(ruleId: string, key: string | undefined): void {
    this.count++;
    this.rules.set(ruleId, (this.rules.get(ruleId) ?? 0) + 1);
    if (key !== undefined) this.keys.add(key);
  }
}

/** Outputs of the scrubber itself: never re-redacted (idempotence), never matched by a rule. */
export const REDACTED_VALUE = /^(?:\[(?:REDACTED:[a-z0-9_]+|[a-z0-9_]+:[0-9a-f]{12})\]|<[a-z]+(?::[0-9a-f]{12})?>)$/;
const PSEUDONYM_HEX = 12;
/**
 * Telemetry repeats itself: routes, methods, user agents, queries and service names recur in every
 * span. Values that held nothing to redact are remembered by their bytes (only those: secrets are
 * never kept around), so a repeated clean value costs a hash and a compare instead of a decode and
 * a scan (see wire.ts and bytecache.ts).
 */
const CLEAN_CACHE_LIMIT = 16384;
const CLEAN_CACHE_MAX_BYTES = 512;
/** Attribute keys are few and recur: the decoded key and its verdicts are remembered by bytes. */
const KEY_CACHE_LIMIT = 4096;
const KEY_CACHE_MAX_BYTES = 256;

/** What the walker needs to know about an attribute key. */
export interface KeyInfo { key: string; sensitive: boolean; redaction: boolean }

export class Scrubber {
  readonly scanner: Scanner;
  readonly relaxed: ReadonlySet<string>;
  private readonly styles: ReadonlyMap<string, RedactionStyle>;
  private readonly key: Uint8Array | undefined;
  private readonly sensitiveKeyOn: boolean;
  private readonly extraKeys: RegExp | undefined;
  private readonly keyCache = new Map<string, boolean>();
  /** Clean values by their UTF-8 bytes (undefined: cache off, for the benchmark's comparison). */
  readonly cleanBytes: ByteCache<true> | undefined;
  /** Attribute keys by their UTF-8 bytes. */
  readonly keyBytes = new ByteCache<KeyInfo>(KEY_CACHE_LIMIT, KEY_CACHE_MAX_BYTES);
  /** Scans skipped thanks to the clean-value cache, and scans run (for the benchmark's report). */
  readonly stats = { cached: 0, scanned: 0 };

  constructor(policy: TenantScrubPolicy, relaxed: ReadonlySet<string>, opts: { cleanCache?: boolean } = {}) {
    this.relaxed = relaxed;
    this.cleanBytes = opts.cleanCache ?? true ? new ByteCache<true>(CLEAN_CACHE_LIMIT, CLEAN_CACHE_MAX_BYTES) : undefined;
    const on = (id: string) => policy.styles.has(id) && !relaxed.has(id);
    this.styles = policy.styles;
    this.key = policy.pseudonymKey;
    const rules: RuleDef[] = [];
    const repo = repoRootRule(policy.repoRoots);
    if (repo && on('repo_path')) rules.push(repo);
    for (const r of DEFAULT_RULES) if (on(r.id)) rules.push(r);
    this.scanner = compileScanner(rules);
    this.sensitiveKeyOn = on('sensitive_key');
    this.extraKeys = policy.sensitiveKeys.length
      ? new RegExp(`(?:^|[._\\-\\s/])(?:${policy.sensitiveKeys.map((k) => k.replace(/[.\-]/g, '\\$&')).join('|')})$`, 'i')
      : undefined;
  }

  /** The replacement text for a secret found by `ruleId`. */
  render(ruleId: string, value: string, angle?: string): string {
    if (ruleId === 'repo_path') return '<repo>';
    const style = this.styles.get(ruleId) ?? 'placeholder';
    if (style === 'pseudonym' && this.key) {
      const tag = this.pseudonym(ruleId, value);
      return angle ? `<${angle}:${tag}>` : `[${ruleId}:${tag}]`;
    }
    return angle ? `<${angle}>` : `[REDACTED:${ruleId}]`;
  }

  /** Truncated HMAC-SHA-256 under the tenant key: equal inputs correlate, nothing is readable. */
  // Not cached: a cache would keep the secrets themselves in memory as keys.
  private pseudonym(ruleId: string, value: string): string {
    return createHmac('sha256', this.key!).update(`${ruleId}\u0000${value}`).digest('hex').slice(0, PSEUDONYM_HEX);
  }

  private readonly renderScan = (rule: ScanRule, value: string): string => this.render(rule.id, value, rule.angle);

  /** Scrub one string; returns the same instance when nothing matched. */
  string(s: string, tally: Tally, key?: string): string {
    if (s.length < MIN_SCAN_LENGTH) return s;
    this.stats.scanned++;
    const f = features(s);
    // (callbacks inline: a named closure costs a defineProperty per call under esbuild's keepNames)
    const out = redactString(s, this.scanner, this.renderScan, (id) => tally.hit(id, key), f);
    // Only strings with a `%` or a non-ASCII character can hide a secret from the plain scan; the
    // view is scanned after the plain pass, whose placeholders it leaves alone.
    if ((f & (NEEDS_VIEW.pct | NEEDS_VIEW.unicode)) === 0) return out;
    return redactNormalized(out, this.scanner, this.renderScan, (id) => tally.hit(id, key));
  }

  /** Whether an attribute key names a secret (`db.password`, `http.request.header.authorization`, `apiKey`). */
  isSensitiveKey(key: string): boolean {
    if (!this.sensitiveKeyOn) return false;
    let v = this.keyCache.get(key);
    if (v === undefined) {
      const norm = key.replace(/([a-z0-9])([A-Z])/g, '$1_$2'); // camelCase segments count as segments
      v = SENSITIVE_KEY.test(norm) || (this.extraKeys?.test(norm) ?? false);
      if (this.keyCache.size >= KEY_CACHE_LIMIT) this.keyCache.clear();
      this.keyCache.set(key, v);
    }
    return v;
  }
}

// Compiled scrubbers are cached per policy and per set of relaxed rules (grants change rarely).
const compiled = new WeakMap<TenantScrubPolicy, Map<string, Scrubber>>();

/** The scrubber for a tenant policy at `now` (deep-debug grants active at `now` relax their rules). */
export function scrubberFor(policy: TenantScrubPolicy, now: Date): Scrubber {
  const relaxed = policy.grants.length ? relaxedRules(policy, now) : new Set<string>();
  const k = [...relaxed].sort().join(',');
  let byRelaxed = compiled.get(policy);
  if (!byRelaxed) compiled.set(policy, (byRelaxed = new Map()));
  let s = byRelaxed.get(k);
  if (!s) byRelaxed.set(k, (s = new Scrubber(policy, relaxed)));
  return s;
}
