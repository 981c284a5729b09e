// The scrub policy version: what the evidence log records beside each clean record, so an auditor
// can tell which scrubbing produced the sealed bytes. It is `sha256:<hex>` of the RFC 8785 canonical
// JSON of the policy *in effect* for the record:
//   - the rule definitions (ids, families, regex sources, leads, styles of output) and the
//     sensitive-key pattern, plus SCRUB_ENGINE_VERSION for behaviour that lives in code (validators,
//     the OTLP walker): bump it whenever such a change alters what the scrubber writes;
//   - the tenant's enabled rules and their styles, minus the rules a deep-debug grant relaxed at
//     the record's time; repository roots, extra sensitive keys, summary attributes;
//   - a fingerprint of the pseudonym key (HMAC under the key, never the key or a plain hash of it),
//     since pseudonyms change with the key.
// Pure and deterministic: the same config and code give the same version on every restart; grant
// metadata (actor, reason, window) does not enter, only the rules it relaxes.
import { createHash, createHmac } from 'node:crypto';
import { canonicalize } from '../evidence/jcs.ts';
import type { TenantScrubPolicy } from './config.ts';
import { DEFAULT_RULES, OUTPUT_HEAD, SENSITIVE_KEY } from './rules.ts';

/** Bump when code (not data above) changes what the scrubber writes for some input. */
export const SCRUB_ENGINE_VERSION = 1;

const RULES_DOC = DEFAULT_RULES.map((r) => ({
  id: r.id, family: r.family, keep: r.keep ?? null, value: r.value, lead: r.lead ?? null, angle: r.angle ?? null,
  default_off: r.defaultOff === true, refine: r.refine === true, validated: r.validate !== undefined,
}));
const CODE_DOC = { engine: SCRUB_ENGINE_VERSION, rules: RULES_DOC, sensitive_key: SENSITIVE_KEY.source, output_head: OUTPUT_HEAD };

/** Pseudonym-key fingerprint: identifies the key without revealing anything usable about it. */
const keyFingerprint = (key: Uint8Array | undefined): string | null =>
  key ? createHmac('sha256', key).update('stella-scrub/pseudonym-key-fingerprint/v1').digest('hex') : null;

/** The version of `policy` with `relaxed` rules (an active deep-debug grant) turned off. */
export function scrubPolicyVersion(policy: TenantScrubPolicy, relaxed: ReadonlySet<string>): string {
  const styles: Record<string, string> = {};
  for (const [id, style] of policy.styles) if (!relaxed.has(id)) styles[id] = style;
  const doc = {
    type: 'stella.scrub-policy/v1', code: CODE_DOC, styles,
    repo_roots: [...policy.repoRoots], sensitive_keys: [...policy.sensitiveKeys],
    summary_attributes: policy.summaryAttributes, pseudonym_key: keyFingerprint(policy.pseudonymKey),
  };
  return `sha256:${createHash('sha256').update(canonicalize(doc)).digest('hex')}`;
}

const cache = new WeakMap<TenantScrubPolicy, Map<string, string>>();

/** scrubPolicyVersion, memoised per policy object and relaxed set (the hot path calls it per record). */
export function policyVersionOf(policy: TenantScrubPolicy, relaxed: ReadonlySet<string>): string {
  let byRelaxed = cache.get(policy);
  if (!byRelaxed) cache.set(policy, (byRelaxed = new Map()));
  const k = relaxed.size ? [...relaxed].sort().join(',') : '';
  let v = byRelaxed.get(k);
  if (v === undefined) byRelaxed.set(k, (v = scrubPolicyVersion(policy, relaxed)));
  return v;
}
