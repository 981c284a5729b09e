// Orchestrator export routes (docs/intake.md "Orchestrator exports"):
//   POST /internal/orchestrator/exports      scope orchestrator:exports:write — submit one export (≤ 1 MiB JSON)
//   GET  /internal/orchestrator/exports      scope attest:read — the tenant's exports, paged by (runId, startedAt, id)
//   GET  /internal/orchestrator/exports/:id  scope attest:read — one export with its signatures
// A submission is validated (processors/intake/exports.ts), its uniqueness decided by a durable claim
// (lib/intake/export-claims.ts) that also stores its raw body (or, with putBody, the body goes to a
// CAS first), then published to Kafka (the export
// topic and a ledger_export timeline event); the client is answered only after Kafka acked.
import { exportsForTenant, MAX_EXPORT_LIMIT, type ExportCursor, type StoredExport } from '../lib/store/export-store.ts';
import type { Store } from '../lib/store/index.ts';
import path from 'node:path';
import { sha256Digest, type BlobStore } from '../lib/cas.ts';
import { ExportClaims } from '../lib/intake/export-claims.ts';
import { publishIntake, type IntakeProducer } from '../lib/intake/publish.ts';
import { logger } from '../lib/log.ts';
import { counter } from '../lib/metrics.ts';
import {
  checkExportSubmission, EXPORT_STATUSES, exportRecord, exportRecordBytes, ledgerExportEvent, ledgerExportEventId, MAX_EXPORT_BODY_BYTES, refusal,
  type ExportRecord, type ExportRefusal, type IntakeEnvelopeVerifier, type LedgerExportEvent, type ValidatedExport,
} from '../processors/intake/exports.ts';
import { BadRequest, parseLimit, parseText } from './params.ts';
import { apiError, json, type ApiResponse, type AuthedHandler, type AuthedRequest, type Router } from './router.ts';

export const EXPORTS_PATH = '/internal/orchestrator/exports';

export interface ExportRouteDeps {
  store: Store;
  claims: ExportClaims;
  /** The tenant's intake trust (lib/intake/trust.ts verifyIntakeEnvelope). */
  verify: IntakeEnvelopeVerifier;
  /** Publishes the record on the export topic and the event on timeline_events; resolves after Kafka acked both. */
  publish: (p: { tenant: string; value: Buffer; timelineEvent: LedgerExportEvent }) => Promise<void>;
  /**
   * A store the body goes to first (its digest recorded in the record). Absent: the body is stored in
   * the claim journal with the claim (one write and fdatasync for the batch; ExportClaims.body reads it).
   */
  putBody?: (tenant: string, body: Buffer) => Promise<string>;
  now?: () => bigint;
}

const submissions = counter('stella_intake_exports_total', 'Orchestrator export submissions by outcome', ['outcome']);

const refused = (r: ExportRefusal): ApiResponse => {
  submissions.inc({ outcome: r.reason });
  return apiError(r.httpStatus, r.reason, r.message, r.field !== undefined ? { field: r.field } : {});
};

function summary(r: ExportRecord, version: number, eventId: string, replay: boolean): Record<string, unknown> {
  return { id: r.id, tenant: r.tenant, runId: r.export.runId, artifactHash: r.export.artifactHash, status: r.export.status, version,
    idempotencyKey: r.export.idempotencyKey, exportDigest: r.exportDigest, bodyDigest: r.bodyDigest, eventId, replay,
    links: { self: `${EXPORTS_PATH}/${r.id}`, timeline_event: `/timeline/${eventId}` } };
}

function render(e: StoredExport, withSignatures: boolean): Record<string, unknown> {
  const rec = JSON.parse(e.record) as Record<string, unknown>;
  return {
    id: e.export_id, runId: e.run_id, jobType: e.job_type, artifactHash: rec.artifactHash, policyHash: e.policy_hash || null,
    startedAt: e.started_at_text, completedAt: e.completed_at_text || null, status: e.status, manifestPath: e.manifest_path, logsPath: e.logs_path,
    tenantId: e.tenant_id, environment: e.environment, idempotencyKey: e.idempotency_key, exportDigest: e.export_digest,
    bodyDigest: e.body_digest || null, dsseEnvelopeDigests: e.dsse_envelope_digests, signerKeyids: e.signer_keyids, eventId: e.event_id,
    receivedAtUnixNano: e.received_at_unix_nano,
    ...(withSignatures ? { signatures: rec.signatures } : {}),
    links: { self: `${EXPORTS_PATH}/${e.export_id}`, timeline_event: `/timeline/${e.event_id}` },
  };
}

/** Opaque cursor over (run_id, started_at, export_id): base64url of JSON ["v1", runId, ns, id]. */
export function encodeExportCursor(c: { run_id: string; started_at_unix_nano: string; export_id: string }): string {
  return Buffer.from(JSON.stringify(['v1', c.run_id, c.started_at_unix_nano, c.export_id])).toString('base64url');
}

export function decodeExportCursor(v: string): ExportCursor {
  let a: unknown;
  try { a = /^[A-Za-z0-9_-]{1,2048}$/.test(v) ? JSON.parse(Buffer.from(v, 'base64url').toString('utf8')) : undefined; } catch { a = undefined; }
  if (!Array.isArray(a) || a.length !== 4 || a[0] !== 'v1' || typeof a[1] !== 'string' || typeof a[2] !== 'string' || !/^\d{1,19}$/.test(a[2])
    || typeof a[3] !== 'string' || !/^[0-9a-f]{32}$/.test(a[3])) {
    throw new BadRequest('cursor', 'cursor is not one this API issued');
  }
  return { runId: a[1], startedAtNs: BigInt(a[2]), exportId: a[3] };
}

const handled = (h: AuthedHandler): AuthedHandler => async (req) => {
  try { return await h(req); } catch (err) {
    if (err instanceof BadRequest) return apiError(400, 'invalid_parameter', err.message, { parameter: err.param });
    throw err;
  }
};

export function registerExportRoutes(router: Router, deps: ExportRouteDeps): void {
  const log = logger('api');
  const now = deps.now ?? (() => BigInt(Date.now()) * 1_000_000n);

  // Publishes in flight in this process, per claim: a replay arriving meanwhile waits for that
  // publish (and is answered after its ack) instead of publishing the same record again.
  const inFlight = new Map<string, Promise<string>>();
  const publish = (v: ValidatedExport, r: ExportRecord, bytes: Buffer, version: number): Promise<string> => {
    const key = `${r.tenant}/${r.id}/${version}`;
    const running = inFlight.get(key);
    if (running) return running;
    const p = (async () => {
      const ev = ledgerExportEvent(r, v);
      await deps.publish({ tenant: r.tenant, value: bytes, timelineEvent: ev });
      await deps.claims.markPublished(r.tenant, r.id, version);
      return ledgerExportEventId(r);
    })();
    inFlight.set(key, p);
    void p.then(() => inFlight.delete(key), () => inFlight.delete(key));
    return p;
  };

  router.scoped('POST', EXPORTS_PATH, 'orchestrator:exports:write', async (req: AuthedRequest): Promise<ApiResponse> => {
    if (!/^application\/json\s*(;|$)/i.test(String(req.headers['content-type'] ?? ''))) {
      return refused(refusal('UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/json'));
    }
    const raw = req.rawBody ?? Buffer.alloc(0);
    const v = checkExportSubmission(raw, { tenant: req.tenant, verify: deps.verify });
    if (!v.ok) return refused(v);
    const bodyDigest = deps.putBody ? await deps.putBody(req.tenant, raw) : sha256Digest(raw);
    const record = exportRecord(v, req.tenant, now(), bodyDigest, req.traceId ?? '');
    const outcome = await deps.claims.claim(record, exportRecordBytes(record), deps.putBody ? undefined : raw);
    if (outcome.kind === 'conflict') {
      submissions.inc({ outcome: outcome.reason });
      return apiError(409, outcome.reason, outcome.message, { id: outcome.current.id, current_status: outcome.current.export.status });
    }
    let eventId: string;
    try {
      eventId = outcome.kind === 'replay' && outcome.published
        ? ledgerExportEventId(outcome.record)
        : await publish(v, outcome.record, outcome.bytes, outcome.version);
    } catch (err) {
      // Claimed but not acked: the client retries, which is a replay that publishes the stored record.
      log.warn({ request_id: req.requestId, tenant_id: req.tenant, error_message: String(err) }, 'export publish failed');
      submissions.inc({ outcome: 'unavailable' });
      return { ...apiError(503, 'unavailable', 'Kafka did not acknowledge the export; retry the same body'), headers: { 'retry-after': '1' } };
    }
    submissions.inc({ outcome: outcome.kind });
    return json(outcome.kind === 'accepted' ? 201 : 200, summary(outcome.record, outcome.version, eventId, outcome.kind === 'replay'),
      outcome.kind === 'accepted' ? { location: `${EXPORTS_PATH}/${outcome.record.id}` } : undefined);
  }, {
    // The contract's 1 MiB, enforced while the body arrives (api/server.ts bodyReader): nothing past it is read or kept.
    // rawOnly: the handler parses the raw bytes strictly itself (a JSON.parse of them as well was wasted).
    body: { maxBytes: MAX_EXPORT_BODY_BYTES, code: 'BODY_TOO_LARGE', rawOnly: true, refuse: (_req, over) => refused(refusal('BODY_TOO_LARGE', `body is over ${over.limit} bytes`)) },
  });

  router.scoped('GET', EXPORTS_PATH, 'attest:read', handled(async (req) => {
    const q = req.query;
    const one = (name: string): string | undefined => {
      const all = q.getAll(name);
      if (all.length > 1) throw new BadRequest(name, `${name} may be given once`);
      return all[0];
    };
    const limit = parseLimit(one('limit') ?? null, 100, MAX_EXPORT_LIMIT);
    const runId = one('run_id'); const artifact = one('artifact_hash'); const status = one('status'); const cursor = one('cursor');
    if (artifact !== undefined && !/^sha256:[A-Fa-f0-9]{64}$/.test(artifact)) throw new BadRequest('artifact_hash', 'artifact_hash must be sha256:<64 hex>');
    if (status !== undefined && !(EXPORT_STATUSES as readonly string[]).includes(status)) throw new BadRequest('status', `status must be one of ${EXPORT_STATUSES.join(', ')}`);
    const rows = await exportsForTenant(deps.store, req.tenant).listExports({
      limit: limit + 1, ...(runId !== undefined ? { runId: parseText('run_id', runId) } : {}),
      ...(artifact !== undefined ? { artifactHash: artifact.toLowerCase() } : {}), ...(status !== undefined ? { status } : {}),
      ...(cursor !== undefined ? { after: decodeExportCursor(cursor) } : {}),
    });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return json(200, { tenant: req.tenant, exports: page.map((e) => render(e, false)),
      next_cursor: rows.length > limit && last ? encodeExportCursor(last) : null });
  }));

  router.scoped('GET', `${EXPORTS_PATH}/:id`, 'attest:read', handled(async (req) => {
    const id = req.params.id!.toLowerCase();
    if (!/^[0-9a-f]{32}$/.test(id)) throw new BadRequest('id', 'id must be 32 hex characters');
    const e = await exportsForTenant(deps.store, req.tenant).getExport(id);
    // Another tenant's export is indistinguishable from a missing one.
    if (!e) return apiError(404, 'not_found', 'no such export');
    return json(200, { tenant: req.tenant, export: render(e, true) });
  }));
}

/**
 * The routes' dependencies as `stella run` has them: claims (and the bodies, stored with them) under
 * `<dataDir>/intake/exports`, the API's producer. `cas` is kept for callers; bodies no longer go there.
 */
export function exportRouteDeps(o: { store: Store; dataDir: string; cas?: BlobStore; verify: IntakeEnvelopeVerifier; producer: IntakeProducer | undefined;
  topics: { orchestratorExports: string; timelineEvents: string }; claims?: ExportClaims }): ExportRouteDeps {
  return {
    store: o.store, verify: o.verify, claims: o.claims ?? exportClaimsUnder(o.dataDir),
    publish: async (p) => {
      if (!o.producer) throw new Error('the API was started without Kafka: intake is unavailable');
      await publishIntake(o.producer, { topic: o.topics.orchestratorExports, tenant: p.tenant, value: p.value, timelineEvent: p.timelineEvent,
        timelineTopic: o.topics.timelineEvents });
    },
  };
}

export { MAX_EXPORT_BODY_BYTES };

/** The claim journals of `stella run`: `<dataDir>/intake/exports`, compacting on their own (failures logged, retried later). */
export function exportClaimsUnder(dataDir: string): ExportClaims {
  const log = logger('api');
  return new ExportClaims(path.join(dataDir, 'intake', 'exports'), {
    onCompactionError: (tenant, err) => log.warn({ tenant_id: tenant, error_code: 'CLAIM_JOURNAL_COMPACTION_FAILED', error_message: String(err) }, 'claim journal compaction failed; retried later'),
  });
}
