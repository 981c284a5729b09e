// Artifact and symbol-bundle intake (docs/intake.md "Artifacts and symbol bundles"):
//   POST /api/v1/artifacts         (artifacts:write)  an artifact record with its DSSE/SLSA provenance
//   POST /api/v1/symbols           (symbols:write)    symbol bundle bytes; keys in the query
//   GET  /api/v1/artifacts/:sha256 (attest:read)      attestations and symbol bundles of an artifact
//   GET  /api/v1/symbols/:key      (attest:read)      symbol bundles for a build-id / PDB key / dSYM UUID
// Order of a POST: validate (pure core, fail closed) -> bytes to the CAS -> publish the intake record
// and its timeline event (resolves once Kafka acked both) -> answer. Refusals are 4xx with the
// reason as error.code and store nothing.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { logger } from '../lib/log.ts';
import { counter } from '../lib/metrics.ts';
import type { Store } from '../lib/store/index.ts';
import type { BlobStore } from '../lib/cas.ts';
import { publishIntake, type IntakeProducer, type IntakeTimelineEvent } from '../lib/intake/publish.ts';
import type { IntakeEnvelopeVerifier } from '../lib/intake/trust.ts';
import { defaultTopicNames, type TopicNames } from '../lib/kafka/topics.ts';
import { elfBuildIdReader, validateArtifact, validateSymbolBundle, type AcceptedArtifact, type ElfBuildIdReader, type SymbolKind, SYMBOL_KINDS }
  from '../processors/intake/artifacts.ts';
import { artifactIntake, symbolsIntake } from '../processors/intake/artifact-records.ts';
import { bundlesOfArtifact, lookupArtifact, lookupSymbolBundle, type ArtifactRow } from '../processors/intake/lookup.ts';
import { apiError, json, type ApiResponse, type AuthedRequest, type Router } from './router.ts';

/** An artifact record with its envelope is a few KB; this leaves room for long flag lists. */
export const MAX_ARTIFACT_BODY_BYTES = 2 * 1024 * 1024;
/** Symbol bundles (debug files are large; the API server's ceiling, api/server.ts MAX_BODY_BYTES, is the same). */
export const MAX_SYMBOL_BODY_BYTES = 64 * 1024 * 1024;

export interface ArtifactRouteDeps {
  store: Store;
  /** lib/cas.ts BlobStore.put */
  putBlob(tenant: string, bytes: Uint8Array): Promise<{ digest: string; uri: string; size: number }>;
  /** lib/intake/publish.ts publishIntake bound to the API's producer; resolves after Kafka acked both. */
  publish(p: { topic: 'artifacts' | 'symbols'; tenant: string; value: Buffer; timelineEvent: IntakeTimelineEvent }): Promise<void>;
  /** The tenant's intake trust check (lib/intake/trust.ts). */
  verify: IntakeEnvelopeVerifier;
  readElfBuildId: ElfBuildIdReader;
  /** Where answered registrations are kept across restarts (AckedRegistrations); absent: memory + ClickHouse only. */
  ackedDir?: string;
  /** How long POST /symbols waits for a just-registered origin artifact to reach ClickHouse (default 3000 ms). */
  originWaitMs?: number;
  now?: () => bigint;
}

/** The route's dependencies from the foundation's parts (what `stella run` and the tests hand it). */
export function artifactRouteDeps(o: { store: Store; blobs: BlobStore; producer: IntakeProducer; verify: IntakeEnvelopeVerifier;
  topics?: Partial<Pick<TopicNames, 'intakeArtifacts' | 'intakeSymbols' | 'timelineEvents'>>; originWaitMs?: number; dataDir?: string }): ArtifactRouteDeps {
  const t = { ...defaultTopicNames, ...o.topics };
  return {
    store: o.store,
    putBlob: (tenant, bytes) => o.blobs.put(tenant, bytes),
    publish: async (p) => {
      await publishIntake(o.producer, { topic: p.topic === 'artifacts' ? t.intakeArtifacts : t.intakeSymbols, tenant: p.tenant, value: p.value,
        timelineEvent: p.timelineEvent, timelineTopic: t.timelineEvents });
    },
    verify: o.verify,
    readElfBuildId: elfBuildIdReader,
    originWaitMs: o.originWaitMs,
    ...(o.dataDir ? { ackedDir: path.join(o.dataDir, 'intake', 'registrations') } : {}),
  };
}

const log = logger('artifact-intake');
const outcomes = counter('stella_intake_artifacts_total', 'Artifact and symbol-bundle submissions by outcome', ['kind', 'outcome']);

const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;
const refused = (kind: string, status: number, code: string, message: string): ApiResponse => {
  outcomes.inc({ kind, outcome: code });
  return apiError(status, code, message);
};

/** X-Stella-Tenant, when sent, must name the tenant the request acts for. */
function tenantHeaderMismatch(req: AuthedRequest): ApiResponse | undefined {
  const h = req.headers['x-stella-tenant'];
  if (h === undefined) return undefined;
  return h === req.tenant ? undefined : apiError(403, 'TENANT_MISMATCH', 'X-Stella-Tenant does not name the tenant this request acts for');
}

function artifactView(a: ArtifactRow) {
  const { dsse_envelope, ...rest } = a;
  return { ...rest, dsse_envelope: JSON.parse(dsse_envelope) as unknown };
}

/**
 * One registration per identity at a time in this process, and a memory of what this process
 * registered (the sink writes ClickHouse asynchronously): concurrent duplicates and quick replays
 * become one publish and replays of it. Across API processes, a duplicate that races past the
 * ClickHouse lookup publishes the same event id again (evidence logs it once; rows collapse).
 */
/**
 * Registrations answered to a client, on disk (`<dataDir>/intake/artifacts/<sha256 of the key>.json`,
 * written after Kafka acked and before the answer): a client's retry after an API restart is a replay
 * with the first event id even when the sink had not written the row yet when the process died.
 */
export class AckedRegistrations<T> {
  constructor(readonly dir: string) {}
  private file(key: string): string { return path.join(this.dir, `${createHash('sha256').update(key).digest('hex')}.json`); }
  async get(key: string): Promise<T | undefined> {
    try { return JSON.parse(await fs.readFile(this.file(key), 'utf8')) as T; } catch { return undefined; }
  }
  async put(key: string, value: T): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    const f = this.file(key);
    const tmp = `${f}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const h = await fs.open(tmp, 'w');
    try { await h.writeFile(JSON.stringify(value)); await h.sync(); } finally { await h.close(); }
    await fs.rename(tmp, f);
    const d = await fs.open(this.dir, 'r');
    try { await d.sync(); } finally { await d.close(); }
  }
}

class Registrations<T> {
  private readonly recent = new Map<string, T>();
  private readonly inflight = new Map<string, Promise<unknown>>();
  constructor(private readonly acked?: AckedRegistrations<T>) {}

  async once(key: string, existing: () => Promise<T | undefined>, register: () => Promise<T>): Promise<{ replay: boolean; value: T }> {
    for (;;) {
      const pending = this.inflight.get(key);
      if (!pending) break;
      await pending.catch(() => undefined);
    }
    const run = (async () => {
      const prior = this.recent.get(key) ?? await this.acked?.get(key) ?? await existing();
      if (prior !== undefined) return { replay: true, value: prior };
      const value = await register();
      await this.acked?.put(key, value);
      this.recent.set(key, value);
      if (this.recent.size > 10_000) this.recent.delete(this.recent.keys().next().value!);
      return { replay: false, value };
    })();
    this.inflight.set(key, run);
    try { return await run; } finally { if (this.inflight.get(key) === run) this.inflight.delete(key); }
  }
}

export function registerArtifactRoutes(router: Router, deps: ArtifactRouteDeps): void {
  const now = deps.now ?? nowNs;
  const artifacts = new Registrations<{ event_id: string; envelope_cas_uri: string }>(deps.ackedDir ? new AckedRegistrations(path.join(deps.ackedDir, 'artifacts')) : undefined);
  const bundles = new Registrations<{ event_id: string; cas_uri: string }>(deps.ackedDir ? new AckedRegistrations(path.join(deps.ackedDir, 'symbols')) : undefined);
  // `<tenant>\n<artifact sha256>` of artifacts this process registered (or saw registered): origins for symbol uploads.
  const attestedHere = new Set<string>();
  const noteAttested = (k: string) => { attestedHere.add(k); if (attestedHere.size > 10_000) attestedHere.delete(attestedHere.values().next().value!); };

  router.scoped('POST', '/api/v1/artifacts', 'artifacts:write', async (req) => {
    const mismatch = tenantHeaderMismatch(req);
    if (mismatch) return mismatch;
    const raw = req.rawBody ?? Buffer.alloc(0);
    if (raw.length > MAX_ARTIFACT_BODY_BYTES) return refused('artifact', 413, 'BODY_TOO_LARGE', `an artifact record is at most ${MAX_ARTIFACT_BODY_BYTES} bytes`);
    if (req.body === undefined) return refused('artifact', 400, 'ARTIFACT_RECORD_MALFORMED', 'the body must be an artifact record as application/json');
    const v = validateArtifact(req.tenant, req.body, deps.verify);
    if (!v.ok) return refused('artifact', 400, v.reason, v.message);
    const a = v.artifact;
    const r = await artifacts.once(`${a.tenant}\n${a.sha256}\n${a.envelope_sha256}`,
      async () => (await lookupArtifact(deps.store, a.tenant, a.sha256)).find((x) => x.envelope_sha256 === a.envelope_sha256),
      async () => {
        const ref = await deps.putBlob(a.tenant, Buffer.from(a.envelope_json, 'utf8'));
        if (ref.digest !== `sha256:${a.envelope_sha256}`) throw new Error('CAS digest differs from the envelope digest');
        const intake = artifactIntake(a, ref.uri, { nowUnixNano: now().toString(), actor: req.principal.tokenName ?? '', traceId: req.traceId ?? '' });
        await deps.publish({ topic: 'artifacts', tenant: a.tenant, value: intake.value, timelineEvent: intake.timelineEvent });
        log.info({ tenant_id: a.tenant, request_id: req.requestId, trace_id: req.traceId, artifact_sha256: a.sha256, event_id: intake.record.event_id }, 'artifact registered');
        return { event_id: intake.record.event_id, envelope_cas_uri: ref.uri };
      });
    noteAttested(`${a.tenant}\n${a.sha256}`);
    outcomes.inc({ kind: 'artifact', outcome: r.replay ? 'replay' : 'accepted' });
    return json(r.replay ? 200 : 201, { tenant: a.tenant, replay: r.replay, event_id: r.value.event_id,
      artifact: { ...publicArtifact(a), envelope_cas_uri: r.value.envelope_cas_uri } });
  }, { body: { maxBytes: MAX_ARTIFACT_BODY_BYTES, code: 'BODY_TOO_LARGE',
    refuse: (_req, over) => refused('artifact', 413, 'BODY_TOO_LARGE', `an artifact record is at most ${over.limit} bytes`) } });

  router.scoped('POST', '/api/v1/symbols', 'symbols:write', async (req) => {
    const mismatch = tenantHeaderMismatch(req);
    if (mismatch) return mismatch;
    const bytes = req.rawBody ?? Buffer.alloc(0);
    if (bytes.length > MAX_SYMBOL_BODY_BYTES) return refused('symbols', 413, 'BODY_TOO_LARGE', `a symbol bundle is at most ${MAX_SYMBOL_BODY_BYTES} bytes`);
    const q = req.query;
    const allowed = new Set(['tenant', 'kind', 'build_id', 'pdb_guid', 'pdb_age', 'dsym_uuid', 'artifact_sha256']);
    for (const k of q.keys()) if (!allowed.has(k)) return refused('symbols', 400, 'SYMBOL_KEY_INVALID', `unknown query parameter (allowed: ${[...allowed].join(', ')})`);
    const declared = req.headers['content-sha256'];
    if (declared !== undefined) {
      const d = String(declared).toLowerCase().replace(/^sha256:/, '');
      if (d !== createHash('sha256').update(bytes).digest('hex')) return refused('symbols', 400, 'CONTENT_SHA256_MISMATCH', 'Content-SHA256 does not match the body');
    }
    const get = (k: string) => q.get(k) ?? undefined;
    const artifactSha = get('artifact_sha256');
    const origin = artifactSha && /^[0-9a-f]{64}$/.test(artifactSha) ? await findOrigin(req.tenant, artifactSha) : undefined;
    const v = validateSymbolBundle(req.tenant, { kind: get('kind'), build_id: get('build_id'), pdb_guid: get('pdb_guid'), pdb_age: get('pdb_age'),
      dsym_uuid: get('dsym_uuid'), artifact_sha256: artifactSha }, bytes, origin, deps.readElfBuildId);
    if (!v.ok) return refused('symbols', v.reason === 'ORIGIN_ARTIFACT_UNATTESTED' ? 409 : 400, v.reason, v.message);
    const b = v.bundle;
    const r = await bundles.once(`${b.tenant}\n${b.kind}\n${b.symbol_key}\n${b.bundle_sha256}\n${b.artifact_sha256}`,
      async () => (await lookupSymbolBundle(deps.store, b.tenant, b.symbol_key, b.kind))
        .find((x) => x.bundle_sha256 === b.bundle_sha256 && x.artifact_sha256 === b.artifact_sha256),
      async () => {
        const ref = await deps.putBlob(b.tenant, bytes);
        if (ref.digest !== `sha256:${b.bundle_sha256}`) throw new Error('CAS digest differs from the bundle digest');
        const intake = symbolsIntake(b, ref.uri, { nowUnixNano: now().toString(), actor: req.principal.tokenName ?? '', traceId: req.traceId ?? '' });
        await deps.publish({ topic: 'symbols', tenant: b.tenant, value: intake.value, timelineEvent: intake.timelineEvent });
        log.info({ tenant_id: b.tenant, request_id: req.requestId, trace_id: req.traceId, bundle_sha256: b.bundle_sha256, event_id: intake.record.event_id }, 'symbol bundle registered');
        return { event_id: intake.record.event_id, cas_uri: ref.uri };
      });
    outcomes.inc({ kind: 'symbols', outcome: r.replay ? 'replay' : 'accepted' });
    return json(r.replay ? 200 : 201, { tenant: b.tenant, replay: r.replay, event_id: r.value.event_id, bundle: { ...b, cas_uri: r.value.cas_uri } });
  }, { body: { maxBytes: MAX_SYMBOL_BODY_BYTES, code: 'BODY_TOO_LARGE',
    refuse: (_req, over) => refused('symbols', 413, 'BODY_TOO_LARGE', `a symbol bundle is at most ${over.limit} bytes`) } });

  /** The origin artifact: registered here a moment ago, or in ClickHouse (waiting briefly for the sink). */
  async function findOrigin(tenant: string, sha256: string): Promise<{ sha256: string; attested: boolean } | undefined> {
    if (attestedHere.has(`${tenant}\n${sha256}`)) return { sha256, attested: true };
    const deadline = Date.now() + (deps.originWaitMs ?? 3000);
    for (;;) {
      if ((await lookupArtifact(deps.store, tenant, sha256)).length > 0) return { sha256, attested: true };
      if (Date.now() >= deadline) return undefined;
      await new Promise((res) => setTimeout(res, 250));
    }
  }

  router.scoped('GET', '/api/v1/artifacts/:sha256', 'attest:read', async (req) => {
    const sha = req.params.sha256!.toLowerCase().replace(/^sha256:/, '');
    if (!/^[0-9a-f]{64}$/.test(sha)) return apiError(400, 'ARTIFACT_SHA256_INVALID', 'the artifact sha256 must be 64 hex characters');
    const rows = await lookupArtifact(deps.store, req.tenant, sha);
    if (rows.length === 0) return apiError(404, 'not_found', 'no such artifact for this tenant');
    const bundles = await bundlesOfArtifact(deps.store, req.tenant, sha);
    return json(200, { tenant: req.tenant, sha256: sha, attestations: rows.map(artifactView), symbol_bundles: bundles });
  });

  router.scoped('GET', '/api/v1/symbols/:key', 'attest:read', async (req) => {
    const kind = req.query.get('kind') ?? undefined;
    if (kind !== undefined && !(SYMBOL_KINDS as readonly string[]).includes(kind)) return apiError(400, 'SYMBOL_KIND_INVALID', `kind must be one of ${SYMBOL_KINDS.join(', ')}`);
    const key = req.params.key!;
    if (!/^[0-9A-Fa-f-]{8,160}$/.test(key)) return apiError(400, 'SYMBOL_KEY_INVALID', 'the key must be a build-id, PDB GUID+age or dSYM UUID (hex)');
    const rows = await lookupSymbolBundle(deps.store, req.tenant, key, kind as SymbolKind | undefined);
    if (rows.length === 0) return apiError(404, 'not_found', 'no symbol bundle with this key for this tenant');
    return json(200, { tenant: req.tenant, key, bundles: rows });
  });
}

/** The accepted artifact as answered (the envelope as a JSON object, not text). */
function publicArtifact(a: AcceptedArtifact) {
  const { envelope_json, ...rest } = a;
  return { ...rest, dsse_envelope: JSON.parse(envelope_json) as unknown };
}
