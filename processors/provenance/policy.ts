// The `provenance` section of the stella config (cfg.sections.provenance): the join-completeness
// gate, per tenant. Validated with every problem listed.
//
//   provenance:
//     topFrames: 20            # completeness is measured over the N most frequent native frames of a trace
//     minCompleteness: 0.95    # gate: share of those frames resolved to an attested artifact
//     tenants:
//       acme: { minCompleteness: 1.0, topFrames: 50 }

export class ProvenanceSectionError extends Error {}

export interface CompletenessPolicy { topFrames: number; minCompleteness: number }
export interface ProvenanceSection { defaults: CompletenessPolicy; tenants: Record<string, CompletenessPolicy> }

export const DEFAULT_POLICY: CompletenessPolicy = { topFrames: 20, minCompleteness: 0.95 };

export function policyFor(section: ProvenanceSection, tenant: string): CompletenessPolicy {
  return section.tenants[tenant] ?? section.defaults;
}

const KNOWN = ['topFrames', 'minCompleteness', 'tenants'];

function parsePolicy(v: unknown, at: string, base: CompletenessPolicy, problems: string[], allowTenants: boolean): CompletenessPolicy {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) { problems.push(`${at} must be a mapping`); return base; }
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!KNOWN.includes(k) || (!allowTenants && k === 'tenants')) problems.push(`${at}.${k} is not a known field (allowed: topFrames, minCompleteness${allowTenants ? ', tenants' : ''})`);
  }
  const out = { ...base };
  if (o.topFrames !== undefined) {
    if (!Number.isInteger(o.topFrames) || (o.topFrames as number) < 1 || (o.topFrames as number) > 10_000) problems.push(`${at}.topFrames must be a whole number from 1 to 10000`);
    else out.topFrames = o.topFrames as number;
  }
  if (o.minCompleteness !== undefined) {
    if (typeof o.minCompleteness !== 'number' || !(o.minCompleteness >= 0 && o.minCompleteness <= 1)) problems.push(`${at}.minCompleteness must be a number from 0 to 1`);
    else out.minCompleteness = o.minCompleteness;
  }
  return out;
}

export function parseProvenanceSection(section: unknown): ProvenanceSection {
  if (section === undefined || section === null) return { defaults: { ...DEFAULT_POLICY }, tenants: {} };
  const problems: string[] = [];
  const defaults = parsePolicy(section, 'provenance', DEFAULT_POLICY, problems, true);
  const tenants: Record<string, CompletenessPolicy> = {};
  const t = (section as Record<string, unknown>).tenants;
  if (t !== undefined) {
    if (typeof t !== 'object' || t === null || Array.isArray(t)) problems.push('provenance.tenants must be a mapping of tenant -> policy');
    else for (const [tenant, p] of Object.entries(t)) {
      if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(tenant)) { problems.push(`provenance.tenants.${tenant}: not a valid tenant id`); continue; }
      tenants[tenant] = parsePolicy(p, `provenance.tenants.${tenant}`, defaults, problems, false);
    }
  }
  if (problems.length) throw new ProvenanceSectionError(problems.join('; '));
  return { defaults, tenants };
}
