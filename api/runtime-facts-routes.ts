// POST /api/v1/runtime-facts?graph_hash=<sha256> (scope runtime:write): NDJSON runtime facts,
// optionally gzip (Content-Encoding: gzip), optionally with a DSSE envelope over their digest
// (X-Stella-DSSE-Envelope: base64 of the envelope JSON). The HTTP side only: the checks, the CAS
// and Kafka are processors/intake/runtime-ingest.ts. Answers only after Kafka acked (202).
import { createHash } from 'node:crypto';
import type { BlobStore } from '../lib/cas.ts';
import { registerGraph, type GraphRegistry } from '../lib/intake/graphs.ts';
import type { IntakeProducer } from '../lib/intake/publish.ts';
import type { IntakeEnvelopeVerifier, RuntimeFactsConfig } from '../lib/intake/trust.ts';
import { logger } from '../lib/log.ts';
import type { Store } from '../lib/store/index.ts';
import { runtimeForTenant } from '../lib/store/runtime-store.ts';
import { counter } from '../lib/metrics.ts';
import { normalizeSha256, refuse, type RuntimeRefusal } from '../processors/intake/runtime-facts.ts';
import { checkTimeAnchor, gunzipLimited, ingestRuntimeFacts, publishRuntimeRefusal } from '../processors/intake/runtime-ingest.ts';
import { apiError, json, type ApiResponse, type AuthedRequest, type BodyLimit, type Router } from './router.ts';

export const TENANT_HEADER = 'x-stella-tenant';
export const ENVELOPE_HEADER = 'x-stella-dsse-envelope';

export interface RuntimeFactsRouteDeps {
  cas: BlobStore;
  /** The API's intake producer (api/server.ts); undefined: the route answers 503. */
  producer: IntakeProducer | undefined;
  verify: IntakeEnvelopeVerifier;
  /** intakeGraphs: where graph registrations are published (required with `graphs`). */
  topics: { intakeRuntimeFacts: string; timelineEvents: string; intakeGraphs?: string };
  limits: RuntimeFactsConfig;
  /** For GET /api/v1/runtime-facts/:ingest_id (absent: no read route). */
  store?: Store;
  /** The graph registry (lib/intake/graphs.ts): POST /api/v1/reachability/graphs (absent: no route). */
  graphs?: GraphRegistry;
}

/** A reachability graph is opaque bytes to the intake (its format is the analyzer's); this bounds one. */
export const MAX_GRAPH_BODY_BYTES = 64 * 1024 * 1024;

const outcomes = counter('stella_runtime_facts_requests_total', 'POST /api/v1/runtime-facts by outcome (accepted or the refusal reason)', ['outcome']);

const header = (req: AuthedRequest, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** A DSSE envelope header: base64 (standard or URL-safe) of the envelope's JSON bytes. */
function envelopeFromHeader(v: string): Buffer | undefined {
  const s = v.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(s)) return undefined;
  const b = Buffer.from(s, /[-_]/.test(s) ? 'base64url' : 'base64');
  return b.length > 0 ? b : undefined;
}

export function registerRuntimeFactsRoutes(router: Router, deps: RuntimeFactsRouteDeps): void {
  const log = logger('api');
  const store = deps.store;
  if (store) {
    // The stored ingest (once the timeline processor wrote it) and a page of its facts, in line order.
    router.scoped('GET', '/api/v1/runtime-facts/:ingest_id', 'obs:read', async (req): Promise<ApiResponse> => {
      const id = req.params.ingest_id ?? '';
      if (!/^[0-9a-f]{32}$/.test(id)) return apiError(400, 'invalid_ingest_id', 'ingest_id must be 32 lowercase hex characters');
      const after = Number(req.query.get('after_line') ?? '0');
      const limit = Number(req.query.get('limit') ?? '1000');
      if (!Number.isInteger(after) || after < 0 || after > 4_294_967_295) return apiError(400, 'invalid_after_line', 'after_line must be a line number');
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) return apiError(400, 'invalid_limit', 'limit must be an integer from 1 to 10000');
      const rs = runtimeForTenant(store, req.tenant);
      const ingest = await rs.getIngest(id);
      if (!ingest) return apiError(404, 'not_found', 'no such ingest for this tenant');
      const facts = await rs.listFacts(id, after, limit);
      return json(200, { ingest, facts, stored_facts: await rs.countFacts(id),
        next_after_line: facts.length === limit ? facts[facts.length - 1]!.line : null });
    });
  }
  const anchor = deps.limits.timeAnchor;
  if (anchor) {
    // The staleness gauge moves between intakes too (an alert on it should not wait for traffic).
    const t = setInterval(() => { void checkTimeAnchor(anchor, Date.now()).catch(() => undefined); }, 30_000);
    t.unref();
    void checkTimeAnchor(anchor, Date.now()).catch(() => undefined);
  }
  const graphs = deps.graphs;
  if (graphs) {
    // Registers a reachability graph: its bytes to the CAS, then the marker that makes its digest a
    // known graph_hash (runtime facts naming it stop being orphans; queued ones resolve on their next retry).
    router.scoped('POST', '/api/v1/reachability/graphs', 'runtime:write', async (req): Promise<ApiResponse> => {
      const claimed = header(req, TENANT_HEADER);
      if (claimed !== undefined && claimed !== req.tenant) return apiError(403, 'TENANT_MISMATCH', `${TENANT_HEADER} names another tenant than the token acts for`);
      if (!deps.producer) return apiError(503, 'INTAKE_UNAVAILABLE', 'this API runs without Kafka: intake is not available', { reason: 'INTAKE_UNAVAILABLE' });
      let r;
      try {
        r = await registerGraph({ cas: deps.cas, graphs, producer: deps.producer,
          topics: { intakeGraphs: deps.topics.intakeGraphs ?? 'intake_graphs', timelineEvents: deps.topics.timelineEvents } },
        req.tenant, req.rawBody ?? Buffer.alloc(0), header(req, 'content-sha256'), { actor: req.principal.tokenName ?? '', via: 'api' });
      } catch (err) {
        // Kafka (or the disk) failed: the graph is not known yet; a retry publishes the same registration.
        log.error({ request_id: req.requestId, tenant_id: req.tenant, error_code: 'INTAKE_WRITE_FAILED', error_message: String(err) }, 'graph registration not stored');
        return { ...apiError(503, 'INTAKE_UNAVAILABLE', 'the graph registration could not be stored; retry', { reason: 'INTAKE_UNAVAILABLE' }), headers: { 'retry-after': '2' } };
      }
      if (!r.ok) return apiError(400, r.reason, r.reason === 'EMPTY_BODY' ? r.message : 'Content-SHA256 is not the sha256 of the body');
      log.info({ request_id: req.requestId, tenant_id: req.tenant, graph_hash: r.graphHash, fresh: !r.replay }, 'reachability graph registered');
      return json(r.replay ? 200 : 201, { graph_hash: r.graphHash, cas_uri: r.casUri, size: r.size, replay: r.replay, event_id: r.eventId }, { 'x-graph-hash': r.graphHash });
    }, { body: { maxBytes: MAX_GRAPH_BODY_BYTES, code: 'BODY_TOO_LARGE' } });
  }

  /** A refusal: counted, recorded as a runtime.ingest.failed event (best effort), answered with its named reason. */
  const refused = async (req: AuthedRequest, r: RuntimeRefusal, body: Buffer | undefined): Promise<ApiResponse> => {
    outcomes.inc({ outcome: r.reason });
    if (deps.producer) {
      try {
        await publishRuntimeRefusal({ producer: deps.producer, topics: deps.topics }, req.tenant, r,
          { body: body ?? Buffer.alloc(0), bodyUnread: body === undefined, graphHash: req.query.get('graph_hash'), actor: req.principal.tokenName ?? '', via: 'api' });
      } catch (err) {
        // The refusal stands; only its timeline event could not be recorded.
        log.warn({ request_id: req.requestId, tenant_id: req.tenant, error_code: 'REFUSAL_EVENT_NOT_PUBLISHED', error_message: String(err) }, 'runtime.ingest.failed not published');
      }
    }
    const res = apiError(r.status, r.reason, r.message, { reason: r.reason, ...(r.line !== undefined ? { line: r.line } : {}), ...(r.field !== undefined ? { field: r.field } : {}),
      ...(r.staleness_seconds !== undefined ? { staleness_seconds: r.staleness_seconds, budget_seconds: r.budget_seconds } : {}) });
    return r.status === 503 ? { ...res, headers: { 'retry-after': '60' } } : res;
  };
  // Both limits hold while the body arrives (api/server.ts bodyReader): a body over maxBodyBytes, or
  // gzip inflating past maxDecompressedBytes, is refused at the byte that crosses it.
  const bodyLimit: BodyLimit = {
    maxBytes: deps.limits.maxBodyBytes, code: 'BODY_TOO_LARGE', gunzipMaxBytes: deps.limits.maxDecompressedBytes, gunzipCode: 'DECOMPRESSED_TOO_LARGE',
    refuse: (req, over) => refused(req, over.over === 'body'
      ? refuse('BODY_TOO_LARGE', `the body is over ${over.limit} bytes (intake.runtimeFacts.maxBodyBytes)`)
      : refuse('DECOMPRESSED_TOO_LARGE', `the gzip body inflates past ${over.limit} bytes (intake.runtimeFacts.maxDecompressedBytes)`), undefined),
  };

  router.scoped('POST', '/api/v1/runtime-facts', 'runtime:write', async (req): Promise<ApiResponse> => {
    if (!deps.producer) return apiError(503, 'INTAKE_UNAVAILABLE', 'this API runs without Kafka: intake is not available', { reason: 'INTAKE_UNAVAILABLE' });
    const producer = deps.producer;
    const body = req.rawBody ?? Buffer.alloc(0);
    const graphHash = req.query.get('graph_hash');
    const actor = req.principal.tokenName ?? '';
    const refusedHere = (r: RuntimeRefusal) => refused(req, r, body);

    // The tenant is the token's; a tenant header, if sent, must name the same one.
    const claimed = header(req, TENANT_HEADER);
    if (claimed !== undefined && claimed !== req.tenant) return refusedHere(refuse('TENANT_MISMATCH', `${TENANT_HEADER} names another tenant than the token acts for`));
    const type = (header(req, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-ndjson') return refusedHere(refuse('UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/x-ndjson'));
    const encoding = (header(req, 'content-encoding') ?? 'identity').trim().toLowerCase();
    if (encoding !== 'identity' && encoding !== 'gzip') return refusedHere(refuse('UNSUPPORTED_ENCODING', 'Content-Encoding must be gzip or identity'));
    if (body.length > deps.limits.maxBodyBytes) return refusedHere(refuse('BODY_TOO_LARGE', `the body is over ${deps.limits.maxBodyBytes} bytes (intake.runtimeFacts.maxBodyBytes)`));
    let ndjson = body;
    if (encoding === 'gzip') {
      // Inflated as it arrived (bodyReader); absent only when it was not valid gzip, named here.
      const out = req.inflatedBody ?? await gunzipLimited(body, deps.limits.maxDecompressedBytes);
      if (!Buffer.isBuffer(out)) return refusedHere(out);
      ndjson = out;
    }
    let envelope: Buffer | undefined;
    const envHeader = header(req, ENVELOPE_HEADER);
    if (envHeader !== undefined) {
      envelope = envelopeFromHeader(envHeader);
      if (!envelope) return refusedHere(refuse('ENVELOPE_MALFORMED', `${ENVELOPE_HEADER} must be the base64 of a DSSE envelope's JSON`));
    }
    let result;
    try {
      result = await ingestRuntimeFacts({ cas: deps.cas, producer, verify: deps.verify, topics: deps.topics, limits: deps.limits },
        { tenant: req.tenant, graphHash, ndjson, declaredSha256: header(req, 'content-sha256'), envelope, actor, via: 'api' });
    } catch (err) {
      // Kafka (or the CAS disk) failed: nothing was acked; the client retries (same body, same ingest).
      log.error({ request_id: req.requestId, tenant_id: req.tenant, error_code: 'INTAKE_WRITE_FAILED', error_message: String(err) }, 'runtime facts not stored');
      outcomes.inc({ outcome: 'unavailable' });
      return { ...apiError(503, 'INTAKE_UNAVAILABLE', 'the runtime facts could not be stored; retry', { reason: 'INTAKE_UNAVAILABLE' }), headers: { 'retry-after': '2' } };
    }
    if (!result.ok) return refusedHere(result);
    outcomes.inc({ outcome: 'accepted' });
    return json(202, {
      ingest_id: result.ingestId, graph_hash: result.graphHash, content_sha256: result.contentSha256, cas_uri: result.casUri,
      records: result.records, size: result.size, signed_by: result.signedBy || null,
      // false: the graph is not registered (yet): the facts are kept as orphans until it is (docs/intake.md "Orphans").
      graph_known: deps.graphs ? await deps.graphs.isKnown(req.tenant, result.graphHash) : null,
    }, { 'content-sha256': result.contentSha256.slice(7), 'x-graph-hash': result.graphHash, 'x-ingest-id': result.ingestId });
  }, { body: bodyLimit });
}
