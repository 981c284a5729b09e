// Orchestrator exports (issue #13 §3, docs/intake.md "Orchestrator exports"): the pure core. Bytes
// in, a verdict out: either the validated export (with its id, digests and the record published on
// Kafka) or one named refusal. No I/O: the DSSE check goes through an injected verifier (the
// tenant's intake trust config, lib/intake/trust.ts), so the same rules run in the API (before
// anything is stored) and in the consumer (before a Kafka record is persisted).
//
// The idempotency key: sha256 over the UTF-8 bytes of runId ‖ artifactHash ‖ tenantId, concatenated
// exactly as sent with no separator, written `sha256:<64 hex>` (hex compared case-insensitively).
// The concatenation is unambiguous: tenant ids hold no ':' and the artifact hash ends in 64 hex
// digits, so the last ':' splits it.
import { hash } from 'node:crypto';
import { parseStrictJson, StrictJsonError } from '../../lib/strict-json.ts';
import { validateTenantId } from '../../lib/tenancy.ts';
import { dateTime64 } from '../../lib/store/tables.ts';
import { IN_TOTO_PAYLOAD_TYPE, type DsseEnvelope } from '../evidence/dsse.ts';
import { canonicalBytes, canonicalize } from '../evidence/jcs.ts';
import { STATEMENT_TYPE } from '../evidence/statement.ts';
import { dsseB64 } from './artifacts.ts';
import { intakeEventId, type IntakeTimelineEvent } from '../../lib/intake/publish.ts';

/** Body limit of POST /internal/orchestrator/exports (the contract's 1 MiB). */
export const MAX_EXPORT_BODY_BYTES = 1024 * 1024;
/** The in-toto predicate type an export's DSSE statement carries. */
export const EXPORT_PREDICATE_TYPE = 'https://stella-telemetry.example/orchestrator-export/v1';
export const LEDGER_EXPORT_KIND = 'ledger_export';
export const EXPORT_RECORD_VERSION = 1;

// Bounds that keep one export well inside a Kafka record (message.max.bytes ~1 MiB) and an
// evidence entry (64 KiB for the timeline event, which carries no signatures).
export const MAX_SIGNATURES = 8;
export const MAX_ENVELOPE_PAYLOAD_BYTES = 64 * 1024;
const MAX_ENVELOPE_SIGS = 8;
const TEXT_LIMITS = { runId: 256, jobType: 128, environment: 128 } as const;

export const EXPORT_FIELDS = ['runId', 'jobType', 'artifactHash', 'policyHash', 'startedAt', 'completedAt', 'status', 'manifestPath',
  'logsPath', 'tenantId', 'environment', 'idempotencyKey', 'signatures'] as const;
export type ExportField = (typeof EXPORT_FIELDS)[number];
const OPTIONAL_FIELDS: ReadonlySet<string> = new Set(['policyHash']);

export const EXPORT_STATUSES = ['pending', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type ExportStatus = (typeof EXPORT_STATUSES)[number];

/** pending(1) → running(2) → succeeded | failed | canceled (3); one step at a time, forward only. */
export const STATUS_RANK: Readonly<Record<ExportStatus, 1 | 2 | 3>> = { pending: 1, running: 2, succeeded: 3, failed: 3, canceled: 3 };
export const isTerminal = (s: ExportStatus): boolean => STATUS_RANK[s] === 3;
export function transitionAllowed(from: ExportStatus, to: ExportStatus): boolean {
  return (from === 'pending' && to === 'running') || (from === 'running' && isTerminal(to));
}

/** Every refusal, with its HTTP status. */
export const EXPORT_REFUSALS = {
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INVALID_UTF8: 400,
  INVALID_JSON: 400,
  DUPLICATE_JSON_KEY: 400,
  NOT_AN_OBJECT: 400,
  UNKNOWN_FIELD: 400,
  MISSING_FIELD: 400,
  INVALID_TYPE: 400,
  INVALID_VALUE: 400,
  INVALID_HASH: 400,
  INVALID_CAS_PATH: 400,
  CAS_NAMESPACE_MISMATCH: 400,
  INVALID_TIMESTAMP: 400,
  COMPLETED_BEFORE_STARTED: 400,
  COMPLETED_AT_REQUIRED: 400,
  INVALID_STATUS: 400,
  IDEMPOTENCY_KEY_MISMATCH: 400,
  TENANT_MISMATCH: 403,
  SIGNATURE_MALFORMED: 400,
  SIGNATURE_UNTRUSTED: 400,
  SIGNATURE_INVALID: 400,
  SIGNATURE_MISMATCH: 400,
  DUPLICATE_CONFLICT: 409,
  INVALID_STATUS_TRANSITION: 409,
} as const;
export type ExportRefusalReason = keyof typeof EXPORT_REFUSALS;

export interface ExportRefusal { ok: false; reason: ExportRefusalReason; httpStatus: number; message: string; field?: string }

export function refusal(reason: ExportRefusalReason, message: string, field?: string): ExportRefusal {
  return { ok: false, reason, httpStatus: EXPORT_REFUSALS[reason], message, ...(field !== undefined ? { field } : {}) };
}

/** An export as the contract has it. policyHash is null when absent; completedAt null only before a terminal status. */
export interface OrchestratorExport {
  runId: string; jobType: string; artifactHash: string; policyHash: string | null; startedAt: string; completedAt: string | null;
  status: ExportStatus; manifestPath: string; logsPath: string; tenantId: string; environment: string; idempotencyKey: string;
  signatures: DsseEnvelope[];
}

/** The tenant's intake DSSE verification (lib/intake/trust.ts verifyIntakeEnvelope): fail closed. */
export type IntakeEnvelopeVerdict = { ok: true; keyid: string; payload: Buffer } | { ok: false; reason: string };
export type IntakeEnvelopeVerifier = (envelope: DsseEnvelope, tenant: string, expectedPayloadType?: string) => IntakeEnvelopeVerdict;

export interface ValidatedExport {
  ok: true;
  export: OrchestratorExport;
  /** Stable id of the export (tenant, runId, artifact): 32 hex. Versions (status steps) share it. */
  exportId: string;
  /** `sha256:<lowercase hex>` */
  artifactHash: string;
  startedAtNs: bigint;
  completedAtNs: bigint | null;
  /** sha256 of the canonical JSON (RFC 8785) of the export: what "the same body again" compares. */
  exportDigest: string;
  /** sha256 of each DSSE envelope's canonical JSON, in order. */
  envelopeDigests: string[];
  signerKeyids: string[];
}

export type ExportVerdict = ValidatedExport | ExportRefusal;

export const sha256Hex = (b: Uint8Array | string): string => hash('sha256', b, 'hex');

/** The idempotency key the contract asks for: sha256(runId + artifactHash + tenantId) over UTF-8. */
export function idempotencyKeyFor(runId: string, artifactHash: string, tenantId: string): string {
  return `sha256:${sha256Hex(Buffer.from(runId + artifactHash + tenantId, 'utf8'))}`;
}

/** The stable export id. Separators are NULs, which no validated field can hold. */
export function exportIdFor(tenant: string, runId: string, artifactHash: string): string {
  return sha256Hex(Buffer.from(`orchestrator-export/v1\0${tenant}\0${runId}\0${artifactHash.toLowerCase()}`, 'utf8')).slice(0, 32);
}

const HASH = /^sha256:[A-Fa-f0-9]{64}$/;
// Any C0/C1 control character or DEL: ids are shown in tables and logs.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const UTC_TS = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$/;
// DateTime64(9) holds 1900-01-01 .. 2262-04-11; we take the Unix epoch onwards (the store clamps below it).
const MIN_YEAR = 1970;
const MAX_YEAR = 2261;
const CAS_URI = /^cas:\/\/([^/]+)\/([0-9a-f]{64})$/;

/**
 * A `cas://<namespace>/<64 lowercase hex>` URI -> its parts, or a message. The same rule as
 * lib/cas.ts parseCasUri (no other scheme, no query, no further path).
 */
export function parseCasPath(uri: string): { namespace: string; hex: string } | string {
  const m = CAS_URI.exec(uri);
  if (!m) return 'must be a cas://<namespace>/<64 lowercase hex> URI (no other scheme)';
  return { namespace: m[1]!, hex: m[2]! };
}

/** Strict UTC ISO-8601 (`YYYY-MM-DDThh:mm:ss[.f{1,9}]Z`) -> epoch nanoseconds, or undefined. */
export function parseUtcTimestamp(v: string): bigint | undefined {
  const m = UTC_TS.exec(v);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (y < MIN_YEAR || y > MAX_YEAR || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return undefined;
  if (d > new Date(Date.UTC(y, mo, 0)).getUTCDate()) return undefined; // day 0 of next month = last day of this one
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  return BigInt(ms) * 1_000_000n + BigInt((m[7] ?? '').padEnd(9, '0'));
}

/** Decode and parse a request body: UTF-8, strict JSON, at most 1 MiB. */
export function parseExportBody(raw: Uint8Array): { ok: true; value: unknown } | ExportRefusal {
  if (raw.length > MAX_EXPORT_BODY_BYTES) return refusal('BODY_TOO_LARGE', `body is over ${MAX_EXPORT_BODY_BYTES} bytes`);
  let text: string;
  try { text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw); } catch {
    return refusal('INVALID_UTF8', 'body is not valid UTF-8');
  }
  try { return { ok: true, value: parseStrictJson(text) }; } catch (err) {
    if (err instanceof StrictJsonError) {
      return err.kind === 'duplicate_key' ? refusal('DUPLICATE_JSON_KEY', `body is refused: ${err.message}`)
        : refusal('INVALID_JSON', `body is not valid JSON: ${err.message}`);
    }
    throw err;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

export interface ValidateContext {
  /** The tenant of the token (API) or of the Kafka record (consumer). */
  tenant: string;
  verify: IntakeEnvelopeVerifier;
}

/** Validate a parsed export against the contract, then its DSSE signatures. The first failure wins. */
export function validateExport(value: unknown, ctx: ValidateContext): ExportVerdict {
  if (!isObject(value)) return refusal('NOT_AN_OBJECT', 'the export must be a JSON object');
  for (const k of Object.keys(value)) {
    // Names are not echoed when they are not plain identifiers (they could be anything the client sent).
    if (!(EXPORT_FIELDS as readonly string[]).includes(k)) {
      return refusal('UNKNOWN_FIELD', /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(k) ? `unknown field ${k}` : 'unknown field', /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(k) ? k : undefined);
    }
  }
  for (const f of EXPORT_FIELDS) {
    if (!own(value, f) && !OPTIONAL_FIELDS.has(f)) return refusal('MISSING_FIELD', `${f} is required`, f);
  }
  const str = (f: ExportField, nullable = false): string | null | ExportRefusal => {
    const v = own(value, f) ? value[f] : null;
    if (v === null && nullable) return null;
    if (typeof v !== 'string') return refusal('INVALID_TYPE', `${f} must be a string${nullable ? ' or null' : ''}, not ${typeName(v)}`, f);
    return v;
  };
  const strings: Partial<Record<ExportField, string | null>> = {};
  for (const f of EXPORT_FIELDS) {
    if (f === 'signatures') continue;
    const v = str(f, f === 'policyHash' || f === 'completedAt');
    if (v !== null && typeof v === 'object') return v;
    strings[f] = v;
  }
  if (!Array.isArray(value.signatures)) return refusal('INVALID_TYPE', `signatures must be an array, not ${typeName(value.signatures)}`, 'signatures');

  for (const f of ['runId', 'jobType', 'environment'] as const) {
    const v = strings[f]!;
    const bytes = Buffer.byteLength(v, 'utf8');
    if (bytes === 0 || bytes > TEXT_LIMITS[f]) return refusal('INVALID_VALUE', `${f} must be 1 to ${TEXT_LIMITS[f]} bytes of UTF-8`, f);
    if (CONTROL.test(v)) return refusal('INVALID_VALUE', `${f} must not contain control characters`, f);
  }
  for (const f of ['artifactHash', 'policyHash', 'idempotencyKey'] as const) {
    const v = strings[f];
    if (v !== null && v !== undefined && !HASH.test(v)) return refusal('INVALID_HASH', `${f} must match ^sha256:[A-Fa-f0-9]{64}$`, f);
  }
  for (const f of ['manifestPath', 'logsPath'] as const) {
    const p = parseCasPath(strings[f]!);
    if (typeof p === 'string') return refusal('INVALID_CAS_PATH', `${f} ${p}`, f);
    // A path into another tenant's namespace would be a cross-tenant reference.
    if (p.namespace !== ctx.tenant) return refusal('CAS_NAMESPACE_MISMATCH', `${f} must be in the tenant's own namespace (cas://${ctx.tenant}/...)`, f);
  }
  const startedAtNs = parseUtcTimestamp(strings.startedAt!);
  if (startedAtNs === undefined) return refusal('INVALID_TIMESTAMP', 'startedAt must be a UTC ISO-8601 timestamp (YYYY-MM-DDThh:mm:ss[.fffffffff]Z, 1970-2261)', 'startedAt');
  let completedAtNs: bigint | null = null;
  if (strings.completedAt !== null) {
    const c = parseUtcTimestamp(strings.completedAt!);
    if (c === undefined) return refusal('INVALID_TIMESTAMP', 'completedAt must be a UTC ISO-8601 timestamp (YYYY-MM-DDThh:mm:ss[.fffffffff]Z, 1970-2261) or null', 'completedAt');
    completedAtNs = c;
  }
  const status = strings.status!;
  if (!(EXPORT_STATUSES as readonly string[]).includes(status)) return refusal('INVALID_STATUS', `status must be one of ${EXPORT_STATUSES.join(', ')}`, 'status');
  const st = status as ExportStatus;
  if (completedAtNs === null && isTerminal(st)) return refusal('COMPLETED_AT_REQUIRED', `completedAt is required when status is ${st}`, 'completedAt');
  if (completedAtNs !== null && completedAtNs < startedAtNs) return refusal('COMPLETED_BEFORE_STARTED', 'completedAt must not be before startedAt', 'completedAt');

  const tenantId = strings.tenantId!;
  // Checked before the key: a key over another tenant's id must not tell the client anything.
  if (tenantId !== ctx.tenant) return refusal('TENANT_MISMATCH', 'tenantId must be the tenant of the token', 'tenantId');
  const runId = strings.runId!;
  const artifactHash = strings.artifactHash!;
  const expectedKey = idempotencyKeyFor(runId, artifactHash, tenantId);
  if (strings.idempotencyKey!.toLowerCase() !== expectedKey) {
    return refusal('IDEMPOTENCY_KEY_MISMATCH', 'idempotencyKey must be sha256:<hex of SHA-256 over the UTF-8 of runId + artifactHash + tenantId>', 'idempotencyKey');
  }

  const exp: OrchestratorExport = {
    runId, jobType: strings.jobType!, artifactHash, policyHash: strings.policyHash ?? null, startedAt: strings.startedAt!,
    completedAt: strings.completedAt ?? null, status: st, manifestPath: strings.manifestPath!, logsPath: strings.logsPath!,
    tenantId, environment: strings.environment!, idempotencyKey: strings.idempotencyKey!, signatures: [],
  };
  const sigs = value.signatures as unknown[];
  if (sigs.length > MAX_SIGNATURES) return refusal('SIGNATURE_MALFORMED', `at most ${MAX_SIGNATURES} signatures`, 'signatures');
  const envelopeDigests: string[] = [];
  const signerKeyids: string[] = [];
  for (let i = 0; i < sigs.length; i++) {
    const env = envelopeShape(sigs[i], i);
    if (!('payload' in env)) return env;
    const checked = checkSignature(env, exp, ctx, i);
    if (typeof checked !== 'string') return checked;
    exp.signatures.push(env);
    envelopeDigests.push(`sha256:${sha256Hex(canonicalBytes(env))}`);
    signerKeyids.push(checked);
  }
  const expText = canonicalize(exp);
  canonicalExports.set(exp, expText);
  return {
    ok: true, export: exp, exportId: exportIdFor(tenantId, runId, artifactHash), artifactHash: artifactHash.toLowerCase(),
    startedAtNs, completedAtNs, exportDigest: `sha256:${sha256Hex(expText)}`, envelopeDigests, signerKeyids,
  };
}

/** Parse and validate a request body in one step. */
export function checkExportSubmission(raw: Uint8Array, ctx: ValidateContext): ExportVerdict {
  const parsed = parseExportBody(raw);
  return parsed.ok ? validateExport(parsed.value, ctx) : parsed;
}

/** A DSSE envelope exactly as the spec has it (payload, payloadType, signatures[{keyid, sig}]), as a plain object. */
function envelopeShape(v: unknown, i: number): DsseEnvelope | ExportRefusal {
  const field = `signatures[${i}]`;
  const bad = (m: string) => refusal('SIGNATURE_MALFORMED', `${field}: ${m}`, field);
  if (!isObject(v)) return bad('must be a DSSE envelope object');
  for (const k of Object.keys(v)) if (k !== 'payload' && k !== 'payloadType' && k !== 'signatures') return bad('unknown field in DSSE envelope');
  if (typeof v.payload !== 'string' || typeof v.payloadType !== 'string') return bad('payload and payloadType must be strings');
  if (v.payloadType !== IN_TOTO_PAYLOAD_TYPE) return bad(`payloadType must be ${IN_TOTO_PAYLOAD_TYPE}`);
  // DSSE allows standard or URL-safe base64, padded or not (as lib/intake/trust.ts); alphabets not mixed.
  const payload = v.payload.length <= 4 * MAX_ENVELOPE_PAYLOAD_BYTES / 3 + 4 ? dsseB64(v.payload) : undefined;
  if (!payload || payload.length === 0) return bad(`payload must be non-empty base64 (standard or URL-safe) of at most ${MAX_ENVELOPE_PAYLOAD_BYTES} bytes`);
  if (payload.length > MAX_ENVELOPE_PAYLOAD_BYTES) return bad(`payload is over ${MAX_ENVELOPE_PAYLOAD_BYTES} bytes`);
  if (!Array.isArray(v.signatures) || v.signatures.length === 0 || v.signatures.length > MAX_ENVELOPE_SIGS) {
    return bad(`signatures must hold 1 to ${MAX_ENVELOPE_SIGS} signatures`);
  }
  const out: DsseEnvelope = { payload: v.payload, payloadType: v.payloadType, signatures: [] };
  for (const s of v.signatures as unknown[]) {
    if (!isObject(s) || Object.keys(s).some((k) => k !== 'keyid' && k !== 'sig')) return bad('each signature is {keyid, sig}');
    if (typeof s.keyid !== 'string' || s.keyid.length === 0 || s.keyid.length > 256 || CONTROL.test(s.keyid)) return bad('keyid must be 1 to 256 printable characters');
    if (typeof s.sig !== 'string' || s.sig.length > 512 || !dsseB64(s.sig)) return bad('sig must be base64 (standard or URL-safe)');
    out.signatures.push({ keyid: s.keyid, sig: s.sig });
  }
  return out;
}

/** The contract fields a signed statement's predicate must repeat exactly (everything but signatures). */
const SIGNED_FIELDS = EXPORT_FIELDS.filter((f) => f !== 'signatures');

/** Verify one envelope through the trust config, then that its statement is about THIS export. Returns the keyid. */
function checkSignature(env: DsseEnvelope, exp: OrchestratorExport, ctx: ValidateContext, i: number): string | ExportRefusal {
  const field = `signatures[${i}]`;
  let verdict: IntakeEnvelopeVerdict;
  try { verdict = ctx.verify(env, ctx.tenant, IN_TOTO_PAYLOAD_TYPE); } catch {
    verdict = { ok: false, reason: 'verification failed' }; // fail closed
  }
  if (!verdict.ok) {
    // lib/intake/trust.ts reasons: "malformed envelope: ...", "no intake trust keys configured ...",
    // "unknown keyid: ...", "signature by <keyid> does not verify".
    const r = verdict.reason;
    if (/^malformed/i.test(r)) return refusal('SIGNATURE_MALFORMED', `${field}: ${r}`, field);
    const untrusted = /no intake trust keys|unknown keyid|not configured|untrusted/i.test(r);
    return refusal(untrusted ? 'SIGNATURE_UNTRUSTED' : 'SIGNATURE_INVALID',
      `${field}: ${untrusted ? 'not signed by a key in the tenant\'s intake trust config' : 'DSSE signature does not verify'}`, field);
  }
  const mismatch = (m: string) => refusal('SIGNATURE_MISMATCH', `${field}: ${m}`, field);
  let st: unknown;
  try { st = parseStrictJson(new TextDecoder('utf-8', { fatal: true }).decode(verdict.payload)); } catch {
    return mismatch('signed payload is not a JSON in-toto statement');
  }
  if (!isObject(st) || st._type !== STATEMENT_TYPE) return mismatch(`signed payload must be an in-toto statement (_type ${STATEMENT_TYPE})`);
  if (st.predicateType !== EXPORT_PREDICATE_TYPE) return mismatch(`predicateType must be ${EXPORT_PREDICATE_TYPE}`);
  const want = exp.artifactHash.slice('sha256:'.length).toLowerCase();
  const subjects = Array.isArray(st.subject) ? st.subject : [];
  const names = subjects.some((s) => isObject(s) && isObject(s.digest) && typeof s.digest.sha256 === 'string' && s.digest.sha256.toLowerCase() === want);
  if (!names) return mismatch('statement subject does not name the artifactHash');
  const pred = st.predicate;
  if (!isObject(pred)) return mismatch('statement predicate must be an object');
  for (const k of Object.keys(pred)) if (!(SIGNED_FIELDS as readonly string[]).includes(k)) return mismatch('predicate holds a field the export does not');
  for (const f of SIGNED_FIELDS) {
    const signed = own(pred, f) ? pred[f] : null;
    if (signed !== exp[f]) return mismatch(`signed ${f} differs from the export's`);
  }
  return verdict.keyid;
}

// ---- what the API stores, publishes and the consumer persists -------------------------------

/** The Kafka record on `orchestrator.export.created` (canonical JSON): the export plus what the API added. */
export interface ExportRecord {
  v: typeof EXPORT_RECORD_VERSION;
  id: string;
  tenant: string;
  /** When the API accepted this version (epoch ns, decimal). */
  receivedAtNs: string;
  exportDigest: string;
  /** CAS digest of the body as received, when the API stored it there. */
  bodyDigest: string | null;
  /** The submitting request's trace id (32 hex) or ''. */
  traceId: string;
  export: OrchestratorExport;
}

export function exportRecord(v: ValidatedExport, tenant: string, receivedAtNs: bigint, bodyDigest: string | null, traceId = ''): ExportRecord {
  return { v: EXPORT_RECORD_VERSION, id: v.exportId, tenant, receivedAtNs: receivedAtNs.toString(), exportDigest: v.exportDigest,
    bodyDigest, traceId: /^[0-9a-f]{32}$/.test(traceId) ? traceId : '', export: v.export };
}

/**
 * The canonical JSON (RFC 8785) of exports validateExport built, by object: the record around an
 * export is written with it instead of serializing the export a second time (these exports are
 * not changed after validation).
 */
const canonicalExports = new WeakMap<OrchestratorExport, string>();
const RECORD_MEMBERS = 8;

/**
 * canonicalBytes(r), byte for byte (test/intake/hot-paths.test.ts compares them). The members in
 * RFC 8785 order (UTF-16 code units: bodyDigest < export < exportDigest < id < receivedAtNs < tenant
 * < traceId < v), the export's text reused when validateExport made it.
 */
export function exportRecordBytes(r: ExportRecord): Buffer {
  if (Object.keys(r).length !== RECORD_MEMBERS) return canonicalBytes(r); // a record this writer does not know: the general path
  const exp = canonicalExports.get(r.export) ?? canonicalize(r.export);
  const s = (v: string | null) => (v === null ? 'null' : canonicalize(v));
  return Buffer.from(`{"bodyDigest":${s(r.bodyDigest)},"export":${exp},"exportDigest":${s(r.exportDigest)},"id":${s(r.id)},`
    + `"receivedAtNs":${s(r.receivedAtNs)},"tenant":${s(r.tenant)},"traceId":${s(r.traceId)},"v":${canonicalize(r.v)}}`, 'utf8');
}

/** The ledger_export event of an accepted export step, as lib/intake/publish.ts publishes it. */
export type LedgerExportEvent = IntakeTimelineEvent;

/** Identity of a step's event: a replay re-publishes the same event, which timeline and evidence de-duplicate. */
const ledgerIdSeed = (r: ExportRecord): string => `orchestrator-export/v1\n${r.id}\n${r.export.status}\n${r.exportDigest}`;
export const ledgerExportEventId = (r: ExportRecord): string => intakeEventId(r.tenant, LEDGER_EXPORT_KIND, ledgerIdSeed(r));

/** Deterministic in the record (and its verification): re-publishing gives the same event. */
export function ledgerExportEvent(r: ExportRecord, v: Pick<ValidatedExport, 'envelopeDigests' | 'signerKeyids'>): LedgerExportEvent {
  const e = r.export;
  return {
    kind: LEDGER_EXPORT_KIND, resourceType: 'orchestrator_export', resourceId: r.id, digest: r.exportDigest, actor: `orchestrator:${e.jobType}`,
    tsUnixNano: r.receivedAtNs, idSeed: ledgerIdSeed(r), ...(r.traceId ? { traceId: r.traceId } : {}),
    details: {
      exportId: r.id, runId: e.runId, artifactHash: e.artifactHash, policyHash: e.policyHash, manifestPath: e.manifestPath, logsPath: e.logsPath,
      dsseEnvelopeDigest: v.envelopeDigests[0] ?? null, dsseEnvelopeDigests: v.envelopeDigests, signerKeyids: v.signerKeyids,
      idempotencyKey: e.idempotencyKey, status: e.status, jobType: e.jobType, environment: e.environment,
      startedAt: e.startedAt, completedAt: e.completedAt, bodyDigest: r.bodyDigest,
    },
  };
}

/** A row of clickhouse/0202 orchestrator_exports (JSONEachRow). */
// A type alias (not an interface) so a row is a store Row (Record<string, unknown>).
export type OrchestratorExportRow = {
  tenant_id: string; artifact_hash: string; run_id: string; export_id: string; status: ExportStatus; status_rank: number;
  job_type: string; policy_hash: string; started_at: string; completed_at: string | null; started_at_text: string; completed_at_text: string;
  manifest_path: string; logs_path: string; environment: string; idempotency_key: string; export_digest: string; body_digest: string;
  dsse_envelope_digests: string[]; signer_keyids: string[]; event_id: string; received_at: string; record: string;
};

export function exportRow(r: ExportRecord, v: ValidatedExport): OrchestratorExportRow {
  const e = r.export;
  return {
    tenant_id: r.tenant, artifact_hash: v.artifactHash, run_id: e.runId, export_id: r.id, status: e.status, status_rank: STATUS_RANK[e.status],
    job_type: e.jobType, policy_hash: e.policyHash ?? '', started_at: dateTime64(v.startedAtNs),
    completed_at: v.completedAtNs === null ? null : dateTime64(v.completedAtNs), started_at_text: e.startedAt, completed_at_text: e.completedAt ?? '',
    manifest_path: e.manifestPath, logs_path: e.logsPath, environment: e.environment, idempotency_key: e.idempotencyKey,
    export_digest: r.exportDigest, body_digest: r.bodyDigest ?? '', dsse_envelope_digests: v.envelopeDigests, signer_keyids: v.signerKeyids,
    event_id: ledgerExportEventId(r), received_at: dateTime64(BigInt(r.receivedAtNs)), record: canonicalBytes(e).toString('utf8'),
  };
}

/** A record the consumer will not persist (goes to the DLQ with this reason). */
export class ExportRecordRefused extends Error {
  override readonly name = 'ExportRecordRefused';
  constructor(readonly reason: string, message: string) { super(message); }
}

/**
 * The consumer's side: a Kafka record from `orchestrator.export.created` -> the row to persist. It
 * trusts nothing the API did: the record's tenant must be the key, the export is validated again
 * and its DSSE signatures verified again against the tenant's trust config (fail closed).
 */
export function exportRowFromRecord(value: Buffer, key: string | null, verify: IntakeEnvelopeVerifier): { row: OrchestratorExportRow; record: ExportRecord; validated: ValidatedExport } {
  const parsed = parseExportBody(value);
  if (!parsed.ok) throw new ExportRecordRefused(parsed.reason, parsed.message);
  const r = parsed.value;
  if (!isObject(r) || r.v !== EXPORT_RECORD_VERSION) throw new ExportRecordRefused('RECORD_MALFORMED', `export record must be a version ${EXPORT_RECORD_VERSION} object`);
  if (typeof r.tenant !== 'string' || validateTenantId(r.tenant) || r.tenant !== key) throw new ExportRecordRefused('RECORD_TENANT', 'export record tenant must be the record key');
  if (typeof r.receivedAtNs !== 'string' || !/^\d{1,19}$/.test(r.receivedAtNs)) throw new ExportRecordRefused('RECORD_MALFORMED', 'receivedAtNs must be decimal nanoseconds');
  if (r.bodyDigest !== null && (typeof r.bodyDigest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(r.bodyDigest))) throw new ExportRecordRefused('RECORD_MALFORMED', 'bodyDigest must be sha256:<hex> or null');
  if (typeof r.traceId !== 'string' || !/^(?:[0-9a-f]{32})?$/.test(r.traceId)) throw new ExportRecordRefused('RECORD_MALFORMED', 'traceId must be 32 hex or empty');
  const v = validateExport(r.export, { tenant: r.tenant, verify });
  if (!v.ok) throw new ExportRecordRefused(v.reason, v.message);
  if (r.id !== v.exportId || r.exportDigest !== v.exportDigest) throw new ExportRecordRefused('RECORD_MALFORMED', 'export record id or digest does not match its export');
  const record: ExportRecord = { v: EXPORT_RECORD_VERSION, id: v.exportId, tenant: r.tenant, receivedAtNs: r.receivedAtNs, exportDigest: v.exportDigest,
    bodyDigest: r.bodyDigest as string | null, traceId: r.traceId, export: v.export };
  return { row: exportRow(record, v), record, validated: v };
}
