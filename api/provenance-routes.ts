// GET /obs/trace/:trace_id/provenance and GET /forensic/trace/:trace_id/replay-manifest (scope obs:read): per frame of the trace, ip -> symbol ->
// symbol bundle sha256 -> artifact (commit, compiler, flags) -> DSSE provenance -> evidence
// (inclusion proof), with signer and timestamps, and the join's completeness against the tenant's
// policy (docs/provenance.md). The tenant comes from the auth guard; every lookup is tenant-scoped.
import type { ProvenanceService } from '../processors/provenance/service.ts';
import { BadRequest, parseTraceId } from './params.ts';
import { apiError, json, type AuthedHandler, type Router } from './router.ts';

export interface ProvenanceRouteDeps { service: ProvenanceService }

const handled = (h: AuthedHandler): AuthedHandler => async (req) => {
  try { return await h(req); } catch (err) {
    if (err instanceof BadRequest) return apiError(400, 'invalid_parameter', err.message, { parameter: err.param });
    throw err;
  }
};

export function registerProvenanceRoutes(router: Router, deps: ProvenanceRouteDeps): void {
  router.scoped('GET', '/obs/trace/:trace_id/provenance', 'obs:read', handled(async (req) => {
    const traceId = parseTraceId('trace_id', req.params.trace_id ?? '');
    const report = await deps.service.traceProvenance(req.tenant, traceId);
    // A trace without frames (unknown, another tenant's, or no exceptions) is indistinguishable: 404.
    if (report.frames.length === 0) return apiError(404, 'not_found', 'no frames recorded for this trace');
    return json(200, { tenant: req.tenant, ...report });
  }));

  // The replay-harness contract (docs/provenance.md "Replay manifests"); built from the join and the
  // trace's resource attributes and stored in `replays` (the same manifest again changes nothing).
  router.scoped('GET', '/forensic/trace/:trace_id/replay-manifest', 'obs:read', handled(async (req) => {
    const traceId = parseTraceId('trace_id', req.params.trace_id ?? '');
    const r = await deps.service.replayManifest(req.tenant, traceId);
    if (!r) return apiError(404, 'not_found', 'no spans or frames recorded for this trace');
    return json(200, { tenant: req.tenant, manifest_sha256: r.sha256, manifest: r.manifest });
  }));
}
