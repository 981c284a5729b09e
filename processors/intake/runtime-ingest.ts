// Ingesting runtime facts, shared by POST /api/v1/runtime-facts and `stella ingest runtime`:
// verify (graph hash, declared digest, every record, the optional DSSE envelope), then the CAS,
// then publishIntake (intake record + reach.runtime.ingested), which resolves once Kafka acked.
// A refusal stores nothing and publishes only a runtime.ingest.failed event naming the reason.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { BlobStore } from '../../lib/cas.ts';
import { publishIntake, type IntakeProducer } from '../../lib/intake/publish.ts';
import { readTimeAnchorText, type IntakeEnvelopeVerifier, type RuntimeFactsConfig, type TimeAnchorConfig } from '../../lib/intake/trust.ts';
import { gauge } from '../../lib/metrics.ts';
import {
  checkRuntimeEnvelope, forEachRuntimeFact, ingestIdFor, normalizeSha256, refuse, timeAnchorVerdict, type RuntimeIntakeRecord, type RuntimeRefusal,
} from './runtime-facts.ts';

const gunzip = promisify(zlib.gunzip);

export interface RuntimeIngestDeps {
  cas: BlobStore;
  producer: IntakeProducer;
  verify: IntakeEnvelopeVerifier;
  topics: { intakeRuntimeFacts: string; timelineEvents: string };
  limits: RuntimeFactsConfig;
  /** The clock the time anchor is judged by (default Date.now). */
  now?: () => number;
}

const anchorStaleness = gauge('stella_runtime_time_anchor_staleness_seconds', 'Age of the configured time anchor (now - anchor), as of the last runtime-facts intake or check');

/**
 * Reads the anchor file (each time: whoever refreshes it rewrites it) and judges it; an anchor that
 * cannot be read or parsed refuses too (fail closed). Sets the staleness gauge.
 */
export async function checkTimeAnchor(a: TimeAnchorConfig, nowMs: number): Promise<{ ok: true; stalenessSeconds: number } | RuntimeRefusal> {
  let text: string;
  try { text = await readFile(a.file, 'utf8'); } catch (err) {
    return refuse('TIME_ANCHOR_UNAVAILABLE', `the time anchor file cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): intake refused until it can`);
  }
  const anchorMs = readTimeAnchorText(text);
  if (typeof anchorMs === 'string') return refuse('TIME_ANCHOR_UNAVAILABLE', `the time anchor file ${anchorMs}`);
  const v = timeAnchorVerdict(anchorMs, nowMs, a.maxStalenessSeconds);
  anchorStaleness.set(v.ok ? v.stalenessSeconds : v.staleness_seconds!);
  return v;
}

export interface RuntimeIngestRequest {
  tenant: string;
  /** As given (query parameter / flag): `sha256:<hex>` or `<hex>`. */
  graphHash: string | null;
  /** The NDJSON, decompressed. */
  ndjson: Buffer;
  /** A declared sha256 of the NDJSON (Content-SHA256 header, manifest), if any. */
  declaredSha256?: string | undefined;
  /** The DSSE envelope's JSON bytes, if one came with the facts. */
  envelope?: Buffer | undefined;
  actor: string;
  via: 'api' | 'cli';
}

export interface RuntimeIngested {
  ok: true;
  ingestId: string;
  graphHash: string;
  /** sha256:<hex> of the NDJSON: its CAS digest. */
  contentSha256: string;
  casUri: string;
  records: number;
  size: number;
  signedBy: string;
}

/**
 * gunzip with a ceiling on the output: a zip bomb stops once it inflates past `max` bytes. Output
 * chunks of up to 1 MiB (about 4x the input, at least 64 KiB): zlib's default 16 KiB chunks cost a
 * thread-pool round trip and a Buffer each, which made inflating ~3x slower (BENCHMARKS.md).
 */
export async function gunzipLimited(body: Buffer, max: number): Promise<Buffer | RuntimeRefusal> {
  try {
    return await gunzip(body, { maxOutputLength: max, chunkSize: Math.min(1024 * 1024, Math.max(64 * 1024, body.length * 4)) });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) return refuse('DECOMPRESSED_TOO_LARGE', `the gzip body inflates past ${max} bytes (intake.runtimeFacts.maxDecompressedBytes)`);
    return refuse('GZIP_INVALID', 'the body is not valid gzip');
  }
}

/** Verify and store; refusals are returned (not yet published: see publishRuntimeRefusal). */
export async function ingestRuntimeFacts(deps: RuntimeIngestDeps, req: RuntimeIngestRequest): Promise<RuntimeIngested | RuntimeRefusal> {
  if (deps.limits.timeAnchor) {
    const a = await checkTimeAnchor(deps.limits.timeAnchor, (deps.now ?? Date.now)());
    if (!a.ok) return a;
  }
  const graphHash = normalizeSha256(req.graphHash);
  if (!graphHash) return refuse('GRAPH_HASH_INVALID', 'graph_hash must be sha256:<64 hex> (or 64 hex)');
  if (req.ndjson.length > deps.limits.maxDecompressedBytes) return refuse('DECOMPRESSED_TOO_LARGE', `the NDJSON is over ${deps.limits.maxDecompressedBytes} bytes`);
  let declared: string | undefined;
  if (req.declaredSha256 !== undefined) {
    declared = normalizeSha256(req.declaredSha256);
    if (!declared) return refuse('CONTENT_SHA256_INVALID', 'the declared Content-SHA256 must be 64 hex (or sha256:<64 hex>)');
  }
  const contentSha256 = `sha256:${createHash('sha256').update(req.ndjson).digest('hex')}` as const;
  if (declared !== undefined && declared !== contentSha256) {
    return refuse('CONTENT_SHA256_MISMATCH', 'the declared Content-SHA256 is not the sha256 of the (decompressed) NDJSON');
  }
  const summary = forEachRuntimeFact(req.ndjson, deps.limits);
  if (!summary.ok) return summary;
  let signedBy = '';
  if (req.envelope !== undefined) {
    let env: unknown;
    try { env = JSON.parse(req.envelope.toString('utf8')); } catch { return refuse('ENVELOPE_MALFORMED', 'the DSSE envelope is not JSON'); }
    const v = checkRuntimeEnvelope(env, deps.verify, req.tenant, graphHash, contentSha256);
    if (!v.ok) return v;
    signedBy = v.keyid;
  }
  // Verified: the CAS first (write-once, idempotent), then Kafka.
  const blob = await deps.cas.put(req.tenant, req.ndjson);
  const envelopeRef = req.envelope !== undefined ? await deps.cas.put(req.tenant, req.envelope) : undefined;
  const ingestId = ingestIdFor(req.tenant, graphHash, contentSha256);
  const record: RuntimeIntakeRecord = {
    v: 1, ingest_id: ingestId, tenant: req.tenant, graph_hash: graphHash, content_sha256: contentSha256, cas_uri: blob.uri, size: blob.size,
    records: summary.records, first_ts_unix_nano: summary.firstTsNs.toString(), last_ts_unix_nano: summary.lastTsNs.toString(),
    signed_by: signedBy, envelope_cas_uri: envelopeRef?.uri ?? '', received_at_unix_nano: (BigInt(Date.now()) * 1_000_000n).toString(), via: req.via,
  };
  await publishIntake(deps.producer, {
    topic: deps.topics.intakeRuntimeFacts, timelineTopic: deps.topics.timelineEvents, tenant: req.tenant, value: Buffer.from(JSON.stringify(record)),
    timelineEvent: {
      kind: 'reach.runtime.ingested', resourceType: 'runtime_facts', resourceId: ingestId, digest: contentSha256, actor: req.actor,
      // The event time is the facts' own latest time: the same ingest again is the same event.
      tsUnixNano: summary.lastTsNs.toString(), idSeed: ingestId,
      // The ingest receipt sealed in the tenant's evidence log.
      details: { ingest_id: ingestId, graph_hash: graphHash, content_sha256: contentSha256, cas_uri: blob.uri, tenant: req.tenant,
        records: summary.records, size: blob.size, signed_by: signedBy, envelope_cas_uri: envelopeRef?.uri ?? '', via: req.via },
    },
  });
  return { ok: true, ingestId, graphHash, contentSha256, casUri: blob.uri, records: summary.records, size: blob.size, signedBy };
}

/**
 * Publish the runtime.ingest.failed event of a refusal (nothing else: no CAS blob, no intake record).
 * `body` is what was received; only its sha256 and size are recorded.
 */
export async function publishRuntimeRefusal(deps: Pick<RuntimeIngestDeps, 'producer' | 'topics'>, tenant: string, refusal: RuntimeRefusal,
  ctx: { body: Buffer; graphHash: string | null; actor: string; via: 'api' | 'cli'; bodyUnread?: boolean }): Promise<void> {
  // A body refused while it arrived (over a size limit) was never held whole: no digest to name.
  const bodySha256 = ctx.bodyUnread ? '' : `sha256:${createHash('sha256').update(ctx.body).digest('hex')}`;
  const graphHash = normalizeSha256(ctx.graphHash) ?? '';
  // Each refused attempt is its own event (timeline rows are keyed by time and id).
  const ts = (BigInt(Date.now()) * 1_000_000n + BigInt(process.hrtime()[1] % 1_000_000)).toString();
  await publishIntake(deps.producer, {
    topic: deps.topics.intakeRuntimeFacts, timelineTopic: deps.topics.timelineEvents, tenant, value: null,
    timelineEvent: {
      kind: 'runtime.ingest.failed', resourceType: 'runtime_facts', resourceId: graphHash, digest: bodySha256, actor: ctx.actor,
      tsUnixNano: ts, idSeed: `${refusal.reason}\n${bodySha256}\n${graphHash}\n${ts}`,
      details: { reason: refusal.reason, message: refusal.message, ...(refusal.line !== undefined ? { line: refusal.line } : {}),
        ...(refusal.field !== undefined ? { field: refusal.field } : {}), graph_hash: graphHash, body_sha256: ctx.bodyUnread ? null : bodySha256, body_size: ctx.bodyUnread ? null : ctx.body.length, via: ctx.via },
    },
  });
}
