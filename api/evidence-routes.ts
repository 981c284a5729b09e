// Evidence routes (docs/evidence.md "API"):
//   GET  /evidence/:tenant/checkpoint                 evidence:read    latest signed checkpoint (text/plain)
//   GET  /evidence/:tenant/trust-root                 evidence:read    the tenant's trust root (canonical JSON)
//   GET  /evidence/:tenant/tile/<L>/<N>[.p/<W>]        evidence:read    C2SP tlog-tiles, as stored (immutable)
//   GET  /evidence/:tenant/tile/entries/<N>[.p/<W>]    evidence:read    entry bundles
//   GET  /evidence/proof/inclusion?event_id=           evidence:read    C2SP tlog-proof of the event's entry
//   GET  /evidence/proof/consistency?from=&to=         evidence:read    consistency proof between sealed sizes
//   POST /evidence/snapshot {kind, resource_id, case_id} evidence:create deterministic case bundle → its id
//   GET  /evidence/bundles/:id                          evidence:export  the bundle bytes (.tar.gz)
//   POST /evidence/verify  (bundle bytes)               evidence:read    verification result JSON, against the
//                                                                        token tenant's trust root (the server's key schedule)
//   POST   /evidence/hold/:case_id {trace_ids?, entries?, sealed?, reason?}  evidence:create  place a legal hold
//   DELETE /evidence/hold/:case_id[?reason=]           admin            release it (retention may then prune)
//   GET    /evidence/holds[?all=true]                  evidence:read    the tenant's holds (all: released ones too)
// The tenant comes from the token's grants (`?tenant=` to choose); in `/evidence/:tenant/...` paths it
// must be the path's tenant, checked by the same guard (403 otherwise).
//
// Two things these routes need from the HTTP server beyond JSON (see docs/evidence.md "Server"):
// the raw request body as `rawBody: Buffer` on POST, and responses whose `body` is a Buffer or a
// string with a non-JSON content type written as-is.
import { forTenant, MAX_LIMIT, TABLES, timelineInsertRow, type Store, type TimelineEvent, type TimelineEventRow } from '../lib/store/index.ts';
import { validateTenantId, type Scope } from '../lib/tenancy.ts';
import { RecordUnavailableError, buildBundle, formatConsistencyProof, verifyBundle, type Manifest, type VerifyResult } from '../processors/evidence/bundle.ts';
import { causeExitCode, VerifyFailure } from '../processors/evidence/causes.ts';
import { CASE_ID, HoldError, bundleEntryRanges, holdTimelineEvent, latestHold, listHolds, parseHoldRequest, recordHold, type HoldRecord } from '../processors/evidence/holds.ts';
import { traceRecordIndices } from '../processors/evidence/trace-index.ts';
import { PackedRecords, type RecordPackStore } from '../processors/evidence/record-packs.ts';
import { EventIndex } from '../processors/evidence/event-index.ts';
import { parseCleanEntry } from '../processors/evidence/clean-entry.ts';
import { buildAuditParts, type AuditBuildDeps, type AuditBuildResult } from '../processors/provenance/audit-build.ts';
import { sha256Hex } from '../processors/evidence/hash.ts';
import { canonicalBytes } from '../processors/evidence/jcs.ts';
import { CHECKPOINT_FILE } from '../processors/evidence/layout.ts';
import { LogReader, formatTlogProof } from '../processors/evidence/reader.ts';
import type { EvidenceStore } from '../processors/evidence/store.ts';
import { gunzip, readTar } from '../processors/evidence/tar.ts';
import { parseTilePath } from '../processors/evidence/tiles.ts';
import { exportTrustRoot, serializeTrustRoot, type TrustPolicy } from '../processors/evidence/trust-root.ts';
import { BadRequest, EVENT_ID, HEX_TRACE_ID } from './params.ts';
import { apiError, json, type ApiRequest, type ApiResponse, type AuthedHandler, type AuthedRequest, type Router } from './router.ts';

export interface EvidenceRouteDeps {
  /** The tenants' logs (read-only here; the runner writes them). */
  evidence: EvidenceStore;
  /** Where bundles and holds are kept: a separate store (the runner's recovery never touches it). */
  cases: EvidenceStore;
  /** ClickHouse, for the timeline events a snapshot covers. */
  store: Store;
  /** Most events one snapshot may hold. Default 10,000. */
  maxSnapshotEvents?: number;
  now?: () => Date;
  /** Witness and TSA policy a tenant's trust root carries (configuration); default none required. */
  trustPolicy?: (tenant: string) => TrustPolicy;
  /**
   * Publish a timeline event to Kafka (`timeline_events`, key = tenant) for the evidence processor
   * to seal: hold placements and releases. Without it holds are recorded but not sealed.
   */
  publishTimelineEvent?: (row: TimelineEventRow) => Promise<void>;
  /** The record store the runner writes (lib/cas.ts): a trace's bundle carries the trace's clean records. */
  records?: Pick<RecordPackStore, 'getPacked' | 'get'>;
  /** Audit bundles (`with_provenance`): the join, the CAS for symbol bytes (processors/provenance/audit-build.ts). */
  provenance?: AuditBuildDeps;
}

export { CASE_ID };

const BUNDLE_ID = /^[0-9a-f]{64}$/;
const SIZE = /^[1-9]\d{0,15}$/;

export const bundlePath = (id: string): string => `bundles/${id}.tar.gz`;
export const bundleMetaPath = (id: string): string => `bundles/${id}.json`;

export interface BundleMeta { id: string; case_id: string; kind: string; resource_id: string; tree_size: number; events: number; records?: number; bytes: number;
  /** Audit bundles: the frames and registrations the provenance section holds. */
  provenance?: { frames: number; registrations: number; symbol_bytes: boolean } }

const text = (status: number, body: string | Buffer, contentType: string, extra: Record<string, string> = {}): ApiResponse =>
  ({ status, body, headers: { 'content-type': contentType, ...extra } });

const handled = (h: AuthedHandler): AuthedHandler => async (req) => {
  try { return await h(req); } catch (err) {
    if (err instanceof BadRequest) return apiError(400, 'invalid_parameter', err.message, { parameter: err.param });
    throw err;
  }
};

type WithBody = ApiRequest & { rawBody?: Buffer; body?: unknown };

/** The request body as bytes (server-provided `rawBody`, or a Buffer `body`). */
function rawBody(req: ApiRequest): Buffer | undefined {
  const r = req as WithBody;
  if (Buffer.isBuffer(r.rawBody)) return r.rawBody;
  if (Buffer.isBuffer(r.body)) return r.body;
  return undefined;
}

/** A JSON object body (from rawBody or an already-parsed body), else the query parameters. */
function bodyFields(req: ApiRequest): Record<string, unknown> {
  const raw = rawBody(req);
  if (raw && raw.length) {
    try {
      const v = JSON.parse(raw.toString('utf8')) as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch { /* fall through */ }
    throw new BadRequest('body', 'body must be a JSON object');
  }
  const b = (req as WithBody).body;
  if (b && typeof b === 'object' && !Buffer.isBuffer(b)) return b as Record<string, unknown>;
  return Object.fromEntries(req.query);
}

export function registerEvidenceRoutes(router: Router, deps: EvidenceRouteDeps): void {
  const maxEvents = deps.maxSnapshotEvents ?? 10_000;
  const now = deps.now ?? (() => new Date());
  const recordSource = deps.records ? new PackedRecords(deps.evidence, deps.records) : undefined;
  const guard = router.guard;
  if (!guard) throw new Error('router has no auth guard');

  // One reader (tile cache) and one event index per tenant, refreshed as the log grows.
  const readers = new Map<string, LogReader>();
  const indexes = new Map<string, EventIndex>();
  const readerOf = (t: string): LogReader => { let r = readers.get(t); if (!r) readers.set(t, (r = new LogReader(deps.evidence, t, { tileCache: 4096 }))); return r; };
  const indexOf = async (t: string, size: number): Promise<EventIndex> => {
    let x = indexes.get(t);
    if (!x) indexes.set(t, (x = new EventIndex(deps.evidence, t)));
    await x.refresh(size, readerOf(t));
    return x;
  };

  /** A route under /evidence/:tenant/...: the guard checks the scope for the path's tenant. */
  const tenantPath = (method: string, pattern: string, scope: Scope, h: AuthedHandler): void => {
    const inner = guard(scope, handled(h));
    const handler = (req: ApiRequest) => {
      const t = req.params.tenant!;
      if (validateTenantId(t)) return apiError(400, 'invalid_tenant', 'tenant must be a tenant id (lowercase letters, digits, "-", "_")');
      const asked = req.query.get('tenant');
      if (asked !== null && asked !== t) return apiError(400, 'invalid_tenant', '?tenant= differs from the tenant in the path');
      const query = new URLSearchParams(req.query);
      query.set('tenant', t);
      return inner({ ...req, query });
    };
    router.routes.push({ method, pattern, parts: pattern.split('/').filter(Boolean), handler, scope });
  };

  tenantPath('GET', '/evidence/:tenant/checkpoint', 'evidence:read', async (req) => {
    const b = await deps.evidence.read(req.tenant, CHECKPOINT_FILE);
    if (!b) return apiError(404, 'not_found', 'the tenant has no sealed checkpoint yet');
    return text(200, Buffer.from(b), 'text/plain; charset=utf-8', { 'cache-control': 'no-cache' });
  });

  const trustRootOf = (t: string) => exportTrustRoot(deps.evidence, t, deps.trustPolicy?.(t));

  tenantPath('GET', '/evidence/:tenant/trust-root', 'evidence:read', async (req) => {
    const root = await trustRootOf(req.tenant);
    if (!root) return apiError(404, 'not_found', 'the tenant has no sealed checkpoint yet, so no log key to pin');
    // Changes on key rotation (and policy changes): never cached as immutable.
    return text(200, Buffer.from(`${serializeTrustRoot(root).toString('utf8')}\n`), 'application/json', { 'cache-control': 'no-cache' });
  });

  // Tile paths have 1 to 7 segments after tile/ (level or "entries", x-grouped index, .p/<W>).
  for (let n = 2; n <= 8; n++) {
    const segs = Array.from({ length: n }, (_, i) => `:s${i}`).join('/');
    tenantPath('GET', `/evidence/:tenant/tile/${segs}`, 'evidence:read', async (req) => {
      const rel = `tile/${Array.from({ length: n }, (_, i) => req.params[`s${i}`]!).join('/')}`;
      if (!parseTilePath(rel)) return apiError(404, 'not_found', 'not a tile path');
      const b = await deps.evidence.read(req.tenant, rel);
      if (!b) return apiError(404, 'not_found', 'no such tile');
      return text(200, Buffer.from(b), 'application/octet-stream', { 'cache-control': 'public, max-age=31536000, immutable' });
    });
  }

  router.scoped('GET', '/evidence/proof/inclusion', 'evidence:read', handled(async (req) => {
    const id = (req.query.get('event_id') ?? '').toLowerCase();
    if (!EVENT_ID.test(id)) throw new BadRequest('event_id', 'event_id must be 32 hex characters');
    const reader = readerOf(req.tenant);
    const latest = await reader.latest();
    if (!latest) return apiError(404, 'not_found', 'the tenant has no sealed checkpoint yet');
    const n = latest.checkpoint.size;
    const index = (await indexOf(req.tenant, n)).events.get(id);
    // Another tenant's event id is indistinguishable from one not (yet) sealed.
    if (index === undefined || index >= n) return apiError(404, 'not_found', 'no sealed entry for this event (unknown, or not sealed yet)');
    return text(200, formatTlogProof(index, await reader.inclusionProof(index, n), latest.note), 'text/plain; charset=utf-8');
  }));

  router.scoped('GET', '/evidence/proof/consistency', 'evidence:read', handled(async (req) => {
    const from = req.query.get('from') ?? '';
    const to = req.query.get('to') ?? '';
    if (!SIZE.test(from)) throw new BadRequest('from', 'from must be a sealed tree size (a positive integer)');
    if (!SIZE.test(to)) throw new BadRequest('to', 'to must be a sealed tree size (a positive integer)');
    const m = Number(from);
    const n = Number(to);
    if (m > n) throw new BadRequest('from', 'from must not exceed to');
    const reader = readerOf(req.tenant);
    const [a, b] = await Promise.all([reader.checkpointAt(m), reader.checkpointAt(n)]);
    if (!a || !b) return apiError(404, 'not_found', 'both sizes must be sealed checkpoints of this tenant');
    return text(200, formatConsistencyProof(m, n, await reader.consistencyProof(m, n)), 'text/plain; charset=utf-8');
  }));

  router.scoped('POST', '/evidence/snapshot', 'evidence:create', handled(async (req) => {
    const f = bodyFields(req);
    const kind = typeof f.kind === 'string' ? f.kind : '';
    const resourceId = typeof f.resource_id === 'string' ? f.resource_id : '';
    const caseId = typeof f.case_id === 'string' ? f.case_id : '';
    if (!/^[a-z][a-z0-9_.-]{0,63}$/.test(kind)) throw new BadRequest('kind', 'kind must be trace, event, resource, or a resource type');
    if (resourceId.length === 0 || resourceId.length > 512) throw new BadRequest('resource_id', 'resource_id must be 1 to 512 characters');
    if (!CASE_ID.test(caseId)) throw new BadRequest('case_id', 'case_id must be 1 to 128 characters of letters, digits, ".", "_", ":", "-"');
    for (const k of ['with_provenance', 'with_symbol_bytes']) if (f[k] !== undefined && typeof f[k] !== 'boolean') throw new BadRequest(k, `${k} must be true or false`);
    const withProvenance = f.with_provenance === true;
    if (f.with_symbol_bytes === true && !withProvenance) throw new BadRequest('with_symbol_bytes', 'with_symbol_bytes needs with_provenance');
    if (withProvenance && kind !== 'trace') throw new BadRequest('with_provenance', 'with_provenance needs kind trace');
    if (withProvenance && (!deps.provenance || !deps.records)) return apiError(501, 'not_configured', 'this server has no provenance join or record store, so it cannot build audit bundles');
    const events = await snapshotEvents(deps.store, req.tenant, kind, resourceId, maxEvents + 1);
    if (events.length > maxEvents) return apiError(413, 'too_many_events', `a snapshot holds at most ${maxEvents} events; narrow it`);
    const reader = readerOf(req.tenant);
    const latest = await reader.latest();
    const size = latest?.checkpoint.size ?? 0;
    // A trace's clean records (span and log batches holding it) sealed up to `size`, with their bytes.
    const recordIndices = kind === 'trace' && deps.records && size > 0 ? await traceRecordIndices(deps.evidence, req.tenant, resourceId, size) : [];
    if (recordIndices.length > maxEvents) return apiError(413, 'too_many_records', `a snapshot holds at most ${maxEvents} records; narrow it`);
    if (events.length === 0 && recordIndices.length === 0) return apiError(404, 'not_found', kind === 'trace' ? 'no timeline events match, and no sealed clean records hold this trace' : 'no timeline events match');
    const index = await indexOf(req.tenant, size);
    const indices: number[] = [];
    const unsealed: string[] = [];
    for (const e of events) {
      const i = index.events.get(e.event_id);
      if (i === undefined || i >= size) unsealed.push(e.event_id); else indices.push(i);
    }
    if (unsealed.length) {
      return apiError(409, 'not_sealed', `${unsealed.length} of the ${events.length} events are not sealed in the evidence log yet; retry after the next seal`,
        { unsealed_event_ids: unsealed.slice(0, 100) });
    }
    let audit: Extract<AuditBuildResult, { ok: true }> | undefined;
    if (withProvenance) {
      const traceId = resourceId.toLowerCase();
      const recs: { index: number; topic: string; bytes: Uint8Array }[] = [];
      for (const i of recordIndices) {
        const clean = parseCleanEntry(await reader.entry(i, size));
        const b = clean ? await recordSource!.record(req.tenant, i, clean.sha256) : undefined;
        if (!clean || !b) return apiError(409, 'record_unavailable', `the clean record of entry ${i} is not in the record store`);
        recs.push({ index: i, topic: clean.topic, bytes: b });
      }
      const r = await buildAuditParts(deps.provenance!, { tenant: req.tenant, traceId, records: recs, withSymbolBytes: f.with_symbol_bytes === true,
        indexOfEvent: (id) => { const i = index.events.get(id); return i !== undefined && i < size ? i : undefined; },
        entryAt: (i) => reader.entry(i, size) });
      if (!r.ok) return apiError(r.status, r.code, r.message, r.unsealed ? { unsealed_event_ids: r.unsealed.slice(0, 100) } : {});
      audit = r;
    }
    let bytes: Buffer;
    try {
      bytes = await buildBundle(deps.evidence, req.tenant, { caseId, indices: [...new Set([...indices, ...recordIndices, ...(audit?.indices ?? [])])].sort((a, b) => a - b), atSize: size,
        ...(recordSource ? { records: recordSource } : {}), ...(audit ? { provenance: { section: audit.section, files: audit.files } } : {}) });
    } catch (err) {
      // The case needs an entry retention deleted: its own cause, not a corrupt log.
      if (err instanceof VerifyFailure && err.code === 'ENTRY_PRUNED') {
        return apiError(410, 'entry_pruned', err.detail, { cause: 'ENTRY_PRUNED', exit_code: causeExitCode.ENTRY_PRUNED });
      }
      if (err instanceof RecordUnavailableError) return apiError(409, 'record_unavailable', `a clean record of this case is not in the record store: ${err.message}`);
      throw err;
    }
    const id = sha256Hex(bytes);
    const meta: BundleMeta = { id, case_id: caseId, kind, resource_id: resourceId, tree_size: size, events: indices.length,
      ...(recordIndices.length ? { records: recordIndices.length } : {}), bytes: bytes.length,
      ...(audit ? { provenance: { frames: audit.frames, registrations: audit.indices.length, symbol_bytes: audit.section.with_symbol_bytes } } : {}) };
    // Content-addressed and immutable: the same case over the same log gives the same id and bytes.
    await deps.cases.writeImmutableMany(req.tenant, [{ path: bundlePath(id), bytes }, { path: bundleMetaPath(id), bytes: canonicalBytes(meta) }]);
    return json(201, { tenant: req.tenant, bundle_id: id, ...meta, links: { self: `/evidence/bundles/${id}` } });
  }));

  router.scoped('GET', '/evidence/bundles/:id', 'evidence:export', handled(async (req) => {
    const id = req.params.id!.toLowerCase();
    if (!BUNDLE_ID.test(id)) throw new BadRequest('id', 'bundle id must be 64 hex characters');
    const b = await deps.cases.read(req.tenant, bundlePath(id));
    if (!b) return apiError(404, 'not_found', 'no such bundle');
    return text(200, Buffer.from(b), 'application/gzip', {
      'content-disposition': `attachment; filename="evidence-${id.slice(0, 16)}.tar.gz"`, 'cache-control': 'private, max-age=31536000, immutable',
    });
  }));

  router.scoped('POST', '/evidence/verify', 'evidence:read', handled(async (req) => {
    const raw = rawBody(req);
    if (!raw || raw.length === 0) throw new BadRequest('body', 'send the bundle bytes as the request body');
    // Against the token tenant's own trust root, from the server's key schedule: another tenant's
    // bundle fails with ORIGIN_MISMATCH, a bundle sealed with any other key with KEY_UNTRUSTED.
    const root = await trustRootOf(req.tenant);
    const result: VerifyResult = root ? verifyBundle(raw, { trustRoot: root })
      : { ok: false, cause: 'TRUST_ROOT_MISSING', detail: `tenant ${req.tenant} has no sealed log on this server, so there is no key to verify against` };
    return json(200, { tenant: req.tenant, exit_code: result.ok ? 0 : causeExitCode[result.cause], result });
  }));

  // Legal holds (processors/evidence/holds.ts): placed with evidence:create, released with admin
  // (lifting a hold lets retention delete evidence), listed with evidence:read. Each placement and
  // release is a timeline event published to Kafka, which the evidence processor seals into the log.
  const publishHold = async (tenant: string, h: HoldRecord): Promise<boolean> => {
    if (!deps.publishTimelineEvent) return false;
    const ev = holdTimelineEvent(tenant, h);
    await deps.store.insertRows(TABLES.timelineEvents, [timelineInsertRow(ev)]);
    await deps.publishTimelineEvent(ev);
    return true;
  };
  const holdError = (err: unknown): ApiResponse => {
    if (err instanceof HoldError) return apiError(400, 'invalid_parameter', err.message, { parameter: err.param });
    throw err;
  };
  const published = async (tenant: string, h: HoldRecord): Promise<Record<string, unknown>> => {
    try {
      return { event_published: await publishHold(tenant, h) };
    } catch (err) {
      // The hold is recorded (and in force); the event goes out when the request is repeated (same event id).
      return { event_published: false, event_error: 'the hold is recorded but its timeline event was not published; repeat the request', detail: (err as Error).message.slice(0, 200) };
    }
  };

  router.scoped('POST', '/evidence/hold/:case_id', 'evidence:create', handled(async (req) => {
    const caseId = req.params.case_id!;
    let parsed: ReturnType<typeof parseHoldRequest>;
    try { parsed = parseHoldRequest(caseId, bodyFields(req)); } catch (err) { return holdError(err); }
    const { cover } = parsed;
    // The case's bundles are held too: their entries join the cover.
    const bundles: string[] = [];
    for (const n of await deps.cases.list(req.tenant, 'bundles')) {
      if (!n.endsWith('.json')) continue;
      const m = await deps.cases.read(req.tenant, `bundles/${n}`);
      if (!m || (JSON.parse(Buffer.from(m).toString('utf8')) as BundleMeta).case_id !== caseId) continue;
      const id = n.slice(0, -5);
      bundles.push(id);
      const b = await deps.cases.read(req.tenant, bundlePath(id));
      if (b) cover.entries.push(...bundleEntryRanges(b));
    }
    cover.entries = mergeRanges(cover.entries);
    if (!cover.trace_ids.length && !cover.entries.length && !cover.sealed) {
      return apiError(400, 'invalid_parameter', 'a hold must name what it covers: trace_ids, entries or sealed (or the case must have bundles)', { parameter: 'body' });
    }
    const by = req.principal.tokenName ? `token:${req.principal.tokenName}` : 'api';
    const { record, changed } = await recordHold(deps.cases, req.tenant, { case_id: caseId, action: 'placed', at: now().toISOString(), by, reason: parsed.reason, cover, bundles: bundles.sort() });
    return json(changed ? 201 : 200, { tenant: req.tenant, hold: record, created: changed, ...(await published(req.tenant, record)) });
  }));

  router.scoped('DELETE', '/evidence/hold/:case_id', 'admin', handled(async (req) => {
    const caseId = req.params.case_id!;
    if (!CASE_ID.test(caseId)) throw new BadRequest('case_id', 'case_id must be 1 to 128 characters of letters, digits, ".", "_", ":", "-"');
    const cur = await latestHold(deps.cases, req.tenant, caseId);
    if (!cur) return apiError(404, 'not_found', 'no hold was ever placed on this case');
    const by = req.principal.tokenName ? `token:${req.principal.tokenName}` : 'api';
    const reason = req.query.get('reason') ?? '';
    if (reason.length > 512) throw new BadRequest('reason', 'reason must be at most 512 characters');
    const { record, changed } = await recordHold(deps.cases, req.tenant, { case_id: caseId, action: 'released', at: now().toISOString(), by, reason, cover: cur.cover, bundles: cur.bundles });
    return json(200, { tenant: req.tenant, hold: record, released: changed, ...(await published(req.tenant, record)) });
  }));

  router.scoped('GET', '/evidence/holds', 'evidence:read', handled(async (req) => {
    const all = req.query.get('all');
    if (all !== null && all !== 'true' && all !== 'false') throw new BadRequest('all', 'all must be true or false');
    return json(200, { tenant: req.tenant, holds: await listHolds(deps.cases, req.tenant, { includeReleased: all === 'true' }) });
  }));
}

/** Sorted, overlapping and adjacent ranges merged. */
function mergeRanges(rs: readonly { from: number; to: number }[]): { from: number; to: number }[] {
  const out: { from: number; to: number }[] = [];
  for (const r of [...rs].sort((a, b) => a.from - b.from || a.to - b.to)) {
    const last = out[out.length - 1];
    if (last && r.from <= last.to) last.to = Math.max(last.to, r.to); else out.push({ ...r });
  }
  return out;
}

/** The timeline events a snapshot covers. kind: trace (resource_id = trace id), event (an event id),
 *  resource (any resource type), or a resource type (e.g. service, component). */
export async function snapshotEvents(store: Store, tenant: string, kind: string, id: string, limit: number): Promise<TimelineEvent[]> {
  const ts = forTenant(store, tenant);
  if (kind === 'trace') {
    if (!HEX_TRACE_ID.test(id.toLowerCase())) throw new BadRequest('resource_id', 'a trace snapshot needs a 32-hex trace id');
    return ts.eventsForTrace(id.toLowerCase(), Math.min(limit, MAX_LIMIT));
  }
  if (kind === 'event') {
    if (!EVENT_ID.test(id.toLowerCase())) throw new BadRequest('resource_id', 'an event snapshot needs a 32-hex event id');
    const e = await ts.getEvent(id.toLowerCase());
    return e ? [e] : [];
  }
  const out: TimelineEvent[] = [];
  let after: { tsUnixNano: bigint; eventId: string } | undefined;
  const to = BigInt(Date.now() + 86_400_000) * 1_000_000n;
  while (out.length < limit) {
    const page = await ts.listEvents({ fromUnixNano: 0n, toUnixNano: to, resourceId: id, ...(kind === 'resource' ? {} : { resourceType: kind }),
      limit: MAX_LIMIT, ...(after ? { after } : {}) });
    out.push(...page);
    if (page.length < MAX_LIMIT) break;
    const last = page[page.length - 1]!;
    after = { tsUnixNano: BigInt(last.ts_unix_nano), eventId: last.event_id };
  }
  return out.slice(0, limit);
}

/**
 * For registerTimelineRoutes' `evidenceLinks`: where an event stands in its tenant's evidence log.
 * Sealed: `{status: "sealed", index, segment: "<from>..<to>" (the seal that covered it), checkpoint,
 * inclusion_proof}`; otherwise `{status: "pending"}` (not sealed yet, or not an evidence entry).
 */
export function createEvidenceLinks(evidence: EvidenceStore): (tenant: string, event: Pick<TimelineEvent, 'event_id'>) => Promise<Record<string, string>> {
  const indexes = new Map<string, EventIndex>();
  return async (tenant, event): Promise<Record<string, string>> => {
    const reader = new LogReader(evidence, tenant);
    const sizes = await reader.sealedSizes();
    const size = sizes[sizes.length - 1] ?? 0;
    let x = indexes.get(tenant);
    if (!x) indexes.set(tenant, (x = new EventIndex(evidence, tenant)));
    await x.refresh(size, reader);
    const i = x.events.get(event.event_id);
    const pending: Record<string, string> = { status: 'pending' };
    if (i === undefined || i >= size) return pending;
    const k = sizes.findIndex((s) => s > i);
    return {
      status: 'sealed', index: String(i), segment: `${k > 0 ? sizes[k - 1] : 0}..${sizes[k]}`,
      checkpoint: `/evidence/${tenant}/checkpoint`, inclusion_proof: `/evidence/proof/inclusion?event_id=${event.event_id}`,
    };
  };
}
