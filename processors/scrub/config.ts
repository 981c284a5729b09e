// Per-tenant scrub configuration: which rules run, in which style, repository roots, extra
// sensitive keys, the pseudonym key, and deep-debug grants. `parseScrubConfig` validates the raw
// (YAML/JSON-parsed) object and names the offending path in every error.
import { DEFAULT_RULES, FAMILIES, RULE_IDS, familyOf, type Family } from './rules.ts';

export type RedactionStyle = 'placeholder' | 'pseudonym';
export type RuleSetting = RedactionStyle | 'off';

/** A bounded opt-in to relax named rules (or families) for one tenant, e.g. during an incident. */
export interface DeepDebugGrant {
  id: string;
  /** Rule ids or family names relaxed while the grant is active. */
  rules: string[];
  startsAt: Date;
  expiresAt: Date;
  /** Who granted it (an operator id, never an e-mail in docs examples) and why; both go on the timeline. */
  actor: string;
  reason: string;
}

export interface TenantScrubPolicy {
  tenant: string;
  /** Style of every enabled rule id; rules absent from the map are off. */
  styles: ReadonlyMap<string, RedactionStyle>;
  /** HMAC-SHA-256 key for pseudonyms (required when any rule uses the pseudonym style). */
  pseudonymKey: Uint8Array | undefined;
  repoRoots: readonly string[];
  /** Additional attribute-key names (case-insensitive, matched as the key's last segment). */
  sensitiveKeys: readonly string[];
  grants: readonly DeepDebugGrant[];
  /** Add `redaction.*` summary attributes on scrubbed spans, log records, resources and scopes. */
  summaryAttributes: boolean;
}

export interface ScrubConfig {
  /** Policy for tenants without their own entry (its tenant is `*`). */
  defaults: TenantScrubPolicy;
  tenants: ReadonlyMap<string, TenantScrubPolicy>;
}

export class ScrubConfigError extends Error {}

/** Default style of each rule: placeholders everywhere; every default rule on (IP included). */
export function defaultStyles(): Map<string, RedactionStyle> {
  const m = new Map<string, RedactionStyle>();
  for (const r of DEFAULT_RULES) if (!r.defaultOff) m.set(r.id, 'placeholder');
  m.set('repo_path', 'placeholder');
  m.set('sensitive_key', 'placeholder');
  return m;
}

/** Rule ids named by a rule id or a family name. */
export function expandRuleName(name: string): string[] | undefined {
  if (RULE_IDS.includes(name)) return [name];
  if ((FAMILIES as readonly string[]).includes(name)) return RULE_IDS.filter((id) => familyOf(id) === (name as Family));
  return undefined;
}

const MAX_GRANT_MS = 7 * 24 * 3600 * 1000;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(path: string, msg: string): never {
  throw new ScrubConfigError(`scrub config ${path}: ${msg}`);
}

function onlyKeys(o: Record<string, unknown>, path: string, allowed: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(`${path}.${k}`, `unknown key (allowed: ${allowed.join(', ')})`);
}

function stringList(v: unknown, path: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x.length === 0)) fail(path, 'must be a list of non-empty strings');
  return v as string[];
}

function parseDate(v: unknown, path: string): Date {
  const d = v instanceof Date ? v : typeof v === 'string' ? new Date(v) : undefined;
  if (!d || Number.isNaN(d.getTime())) fail(path, 'must be an RFC 3339 timestamp, e.g. 2026-11-23T15:00:00Z');
  return d;
}

function parseKey(v: unknown, path: string, env: Record<string, string | undefined>): Uint8Array {
  let text: string | undefined;
  if (typeof v === 'string') text = v;
  else if (isObj(v) && typeof v.env === 'string') {
    text = env[v.env];
    if (text === undefined) fail(path, `environment variable ${v.env} is not set`);
  } else fail(path, 'must be a string ("hex:<64 hex>", "base64:<...>") or {env: NAME}');
  const m = /^(hex|base64):(.+)$/.exec(text);
  if (!m) fail(path, 'must start with "hex:" or "base64:"');
  const bytes = m[1] === 'hex'
    ? (/^([0-9a-fA-F]{2})+$/.test(m[2]!) ? Buffer.from(m[2]!, 'hex') : fail(path, 'invalid hex'))
    : Buffer.from(m[2]!, 'base64');
  if (bytes.length < 16) fail(path, 'must hold at least 16 bytes (128 bits)');
  return new Uint8Array(bytes);
}

function applyRules(styles: Map<string, RedactionStyle>, v: unknown, path: string): void {
  if (v === undefined) return;
  if (!isObj(v)) fail(path, 'must be a map of rule id or family -> placeholder | pseudonym | off');
  // Families first, then single rules, so `{token: pseudonym, aws_access_key: off}` means what it says.
  const entries = Object.entries(v).sort(([a], [b]) => Number(RULE_IDS.includes(a)) - Number(RULE_IDS.includes(b)));
  for (const [name, setting] of entries) {
    const ids = expandRuleName(name);
    if (!ids) fail(`${path}.${name}`, `unknown rule or family (families: ${FAMILIES.join(', ')}; rules: ${RULE_IDS.join(', ')})`);
    if (setting !== 'placeholder' && setting !== 'pseudonym' && setting !== 'off') fail(`${path}.${name}`, 'must be placeholder, pseudonym or off');
    for (const id of ids) {
      if (setting === 'off') styles.delete(id);
      else styles.set(id, setting);
    }
  }
}

function parseGrant(v: unknown, path: string): DeepDebugGrant {
  if (!isObj(v)) fail(path, 'must be a map with id, rules, expiresAt, actor, reason');
  onlyKeys(v, path, ['id', 'rules', 'startsAt', 'expiresAt', 'actor', 'reason']);
  if (typeof v.id !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(v.id)) fail(`${path}.id`, 'must match [A-Za-z0-9._-]{1,64}');
  const rules = stringList(v.rules, `${path}.rules`);
  if (rules.length === 0) fail(`${path}.rules`, 'must name at least one rule or family');
  for (const r of rules) if (!expandRuleName(r)) fail(`${path}.rules`, `unknown rule or family "${r}"`);
  if (v.startsAt === undefined) fail(`${path}.startsAt`, 'is required (a grant has a bounded window)');
  const startsAt = parseDate(v.startsAt, `${path}.startsAt`);
  const expiresAt = parseDate(v.expiresAt, `${path}.expiresAt`);
  if (expiresAt <= startsAt) fail(`${path}.expiresAt`, 'must be after startsAt');
  if (expiresAt.getTime() - startsAt.getTime() > MAX_GRANT_MS) fail(`${path}.expiresAt`, 'a deep-debug grant lasts at most 7 days');
  if (typeof v.actor !== 'string' || v.actor.length === 0) fail(`${path}.actor`, 'is required');
  if (typeof v.reason !== 'string' || v.reason.length === 0) fail(`${path}.reason`, 'is required');
  return { id: v.id, rules, startsAt, expiresAt, actor: v.actor, reason: v.reason };
}

interface PolicyBase { styles: Map<string, RedactionStyle>; repoRoots: string[]; sensitiveKeys: string[]; summaryAttributes: boolean; pseudonymKey: Uint8Array | undefined }

function parsePolicy(v: unknown, path: string, base: PolicyBase, tenant: string, env: Record<string, string | undefined>): TenantScrubPolicy {
  if (v === undefined || v === null) v = {};
  if (!isObj(v)) fail(path, 'must be a map');
  onlyKeys(v, path, ['rules', 'ip', 'repoRoots', 'sensitiveKeys', 'pseudonymKey', 'summaryAttributes', 'deepDebug']);
  const styles = new Map(base.styles);
  if (v.ip !== undefined) {
    if (typeof v.ip !== 'boolean') fail(`${path}.ip`, 'must be true or false');
    applyRules(styles, { ip: v.ip ? 'placeholder' : 'off' }, `${path}.ip`);
  }
  applyRules(styles, v.rules, `${path}.rules`);
  const repoRoots = v.repoRoots === undefined ? base.repoRoots : stringList(v.repoRoots, `${path}.repoRoots`);
  for (const [i, r] of repoRoots.entries()) if (!/^(\/|[A-Za-z]:\\)/.test(r)) fail(`${path}.repoRoots[${i}]`, 'must be an absolute path');
  const sensitiveKeys = [...base.sensitiveKeys, ...stringList(v.sensitiveKeys, `${path}.sensitiveKeys`)];
  for (const k of sensitiveKeys) if (!/^[A-Za-z0-9._-]{1,64}$/.test(k)) fail(`${path}.sensitiveKeys`, `"${k}" must match [A-Za-z0-9._-]{1,64}`);
  if (v.summaryAttributes !== undefined && typeof v.summaryAttributes !== 'boolean') fail(`${path}.summaryAttributes`, 'must be true or false');
  const pseudonymKey = v.pseudonymKey !== undefined ? parseKey(v.pseudonymKey, `${path}.pseudonymKey`, env) : base.pseudonymKey;
  if (!pseudonymKey && [...styles.values()].includes('pseudonym')) fail(`${path}.pseudonymKey`, 'is required when a rule uses the pseudonym style');
  if (v.deepDebug !== undefined && !Array.isArray(v.deepDebug)) fail(`${path}.deepDebug`, 'must be a list of grants');
  const grants = ((v.deepDebug as unknown[] | undefined) ?? []).map((g, i) => parseGrant(g, `${path}.deepDebug[${i}]`));
  const ids = new Set<string>();
  for (const g of grants) { if (ids.has(g.id)) fail(`${path}.deepDebug`, `grant id "${g.id}" is used twice`); ids.add(g.id); }
  return { tenant, styles, pseudonymKey, repoRoots, sensitiveKeys, grants,
    summaryAttributes: (v.summaryAttributes as boolean | undefined) ?? base.summaryAttributes };
}

/**
 * Validate and normalize a raw scrub config:
 * ```yaml
 * defaults: { rules: { ip: off }, repoRoots: [/srv/build/repo] }
 * tenants:
 *   acme:
 *     pseudonymKey: { env: STELLA_SCRUB_KEY_ACME }   # or "hex:..." / "base64:..."
 *     rules: { email: pseudonym, card: placeholder }
 *     deepDebug: [{ id: INC-42, rules: [email], startsAt: ..., expiresAt: ..., actor: ops-7, reason: ... }]
 * ```
 * `undefined`/`null` yields the defaults (every default rule, placeholder style).
 */
export function parseScrubConfig(raw: unknown, env: Record<string, string | undefined> = process.env): ScrubConfig {
  if (raw === undefined || raw === null) raw = {};
  if (!isObj(raw)) fail('(root)', 'must be a map with optional "defaults" and "tenants"');
  onlyKeys(raw, '(root)', ['defaults', 'tenants']);
  if (isObj(raw.defaults) && raw.defaults.deepDebug !== undefined) fail('defaults.deepDebug', 'grants are per tenant');
  const defaults = parsePolicy(raw.defaults, 'defaults',
    { styles: defaultStyles(), repoRoots: [], sensitiveKeys: [], summaryAttributes: true, pseudonymKey: undefined }, '*', env);
  const tenants = new Map<string, TenantScrubPolicy>();
  if (raw.tenants !== undefined) {
    if (!isObj(raw.tenants)) fail('tenants', 'must be a map of tenant id -> policy');
    for (const [id, v] of Object.entries(raw.tenants)) {
      if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(id)) fail(`tenants.${id}`, 'tenant id must match ^[a-z0-9][a-z0-9_-]{0,62}$');
      tenants.set(id, parsePolicy(v, `tenants.${id}`, { ...defaults, styles: new Map(defaults.styles),
        repoRoots: [...defaults.repoRoots], sensitiveKeys: [...defaults.sensitiveKeys] }, id, env));
    }
  }
  return { defaults, tenants };
}

/** The policy for a tenant (its own, else the defaults re-labelled with the tenant id). */
export function policyFor(cfg: ScrubConfig, tenant: string): TenantScrubPolicy {
  const own = cfg.tenants.get(tenant);
  if (own) return own;
  let cache = defaultsByTenant.get(cfg);
  if (!cache) defaultsByTenant.set(cfg, (cache = new Map()));
  let p = cache.get(tenant);
  if (!p) cache.set(tenant, (p = { ...cfg.defaults, tenant, grants: [] }));
  return p;
}
const defaultsByTenant = new WeakMap<ScrubConfig, Map<string, TenantScrubPolicy>>();

/** Rule ids relaxed at `now` by the tenant's active grants. */
export function relaxedRules(policy: TenantScrubPolicy, now: Date): Set<string> {
  const out = new Set<string>();
  const t = now.getTime();
  for (const g of policy.grants) {
    if (t < g.startsAt.getTime() || t >= g.expiresAt.getTime()) continue;
    for (const name of g.rules) for (const id of expandRuleName(name) ?? []) out.add(id);
  }
  return out;
}
