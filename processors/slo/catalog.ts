// The default SLO catalog: the platform's four journeys, for every tenant (tenant "*") and every
// service (service "*"), on unless the config says `slo.defaultCatalog: false`. A journey is
// recognised by its spans' names (docs/slo.md "The default catalog"): any span kind, any service,
// so a job span (internal) counts as much as a server span. A tenant's own SLO with the same name
// replaces the catalog's for that tenant.
import { parseSloConfig, type SloConfig, type SloDefinition } from './config.ts';

export const DEFAULT_CATALOG_YAML = `
version: 1
slos:
  - name: sbom-ingest-availability
    tenant: "*"
    service: "*"
    journey: sbom-ingest
    objective: 99.5%
    description: SBOM ingest spans (sbom.*) end without error.
    sli: { type: availability, spans: { nameRegex: "sbom\\\\..+", kind: any } }
  - name: sbom-ingest-latency
    tenant: "*"
    service: "*"
    journey: sbom-ingest
    objective: 95%
    description: 95% of SBOM ingest spans (sbom.*) take at most 30 s.
    sli: { type: latency, threshold: 30s, spans: { nameRegex: "sbom\\\\..+", kind: any } }
  - name: policy-evaluation-availability
    tenant: "*"
    service: "*"
    journey: policy-evaluation
    objective: 99.9%
    description: Policy evaluation spans (policy.evaluate*) end without error.
    sli: { type: availability, spans: { nameRegex: "policy\\\\.evaluate(\\\\..+)?", kind: any } }
  - name: policy-evaluation-latency
    tenant: "*"
    service: "*"
    journey: policy-evaluation
    objective: 95%
    description: 95% of policy evaluations (policy.evaluate*) take at most 2 s.
    sli: { type: latency, threshold: 2s, spans: { nameRegex: "policy\\\\.evaluate(\\\\..+)?", kind: any } }
  - name: advisory-link-availability
    tenant: "*"
    service: "*"
    journey: advisory-link
    objective: 99.5%
    description: Advisory link spans (advisory.link*) end without error.
    sli: { type: availability, spans: { nameRegex: "advisory\\\\.link(\\\\..+)?", kind: any } }
  - name: advisory-link-latency
    tenant: "*"
    service: "*"
    journey: advisory-link
    objective: 95%
    description: 95% of advisory links (advisory.link*) take at most 5 s.
    sli: { type: latency, threshold: 5s, spans: { nameRegex: "advisory\\\\.link(\\\\..+)?", kind: any } }
  - name: export-availability
    tenant: "*"
    service: "*"
    journey: export
    objective: 99.5%
    description: Export spans (export, export.*, <anything>.export) end without error.
    sli: { type: availability, spans: { nameRegex: "(.+\\\\.)?export(\\\\..+)?", kind: any } }
  - name: export-latency
    tenant: "*"
    service: "*"
    journey: export
    objective: 95%
    description: 95% of exports take at most 60 s.
    sli: { type: latency, threshold: 60s, spans: { nameRegex: "(.+\\\\.)?export(\\\\..+)?", kind: any } }
`;

let parsed: SloDefinition[] | undefined;
export function defaultCatalog(): SloDefinition[] {
  return (parsed ??= parseSloConfig(DEFAULT_CATALOG_YAML).slos);
}

/**
 * The configured SLOs plus the catalog's. A configured every-tenant SLO with a catalog name replaces
 * that catalog entry; a configured per-tenant one replaces it for its tenant (SloEvaluator).
 */
export function withDefaultCatalog(config: SloConfig): SloConfig {
  const everyTenant = new Set(config.slos.filter((d) => d.tenant === '*').map((d) => d.name));
  return { slos: [...defaultCatalog().filter((d) => !everyTenant.has(d.name)), ...config.slos] };
}
