// What an accepted artifact / symbol bundle becomes (pure): the Kafka intake record (value on
// intake_artifacts / intake_symbols), the timeline event that the evidence processor seals, and the
// ClickHouse rows the timeline sink writes from the record. Every output is a function of the
// record alone, so a redelivered record writes identical rows (they collapse) and a republished
// event keeps its event_id (the evidence log holds it once).
import { validateTenantId } from '../../lib/tenancy.ts';
import { intakeEventId, type IntakeTimelineEvent } from '../../lib/intake/publish.ts';
import { canonicalBytes } from '../evidence/jcs.ts';
import { validateArtifact, type AcceptedArtifact, type AcceptedSymbolBundle, type IntakeEnvelopeVerifier, SYMBOL_KINDS } from './artifacts.ts';

export const ARTIFACT_REGISTERED = 'artifact.registered';
export const SYMBOLS_REGISTERED = 'symbols.registered';
export const RECORD_VERSION = 1;

// Event identity (lib/intake/publish.ts intakeEventId over these seeds): the same registration
// published twice is one timeline event and one evidence entry.
const artifactSeed = (a: Pick<AcceptedArtifact, 'sha256' | 'envelope_sha256'>): string => `artifact\n${a.sha256}\n${a.envelope_sha256}`;
const bundleSeed = (b: Pick<AcceptedSymbolBundle, 'kind' | 'symbol_key' | 'bundle_sha256' | 'artifact_sha256'>): string =>
  `symbol_bundle\n${b.kind}\n${b.symbol_key}\n${b.bundle_sha256}\n${b.artifact_sha256}`;
export const artifactEventId = (a: Pick<AcceptedArtifact, 'tenant' | 'sha256' | 'envelope_sha256'>): string =>
  intakeEventId(a.tenant, ARTIFACT_REGISTERED, artifactSeed(a));
export const symbolsEventId = (b: Pick<AcceptedSymbolBundle, 'tenant' | 'kind' | 'symbol_key' | 'bundle_sha256' | 'artifact_sha256'>): string =>
  intakeEventId(b.tenant, SYMBOLS_REGISTERED, bundleSeed(b));

/** Value of an intake_artifacts record. */
export interface ArtifactIntakeRecord {
  v: typeof RECORD_VERSION; type: 'artifact'; event_id: string; registered_at_unix_nano: string;
  envelope_cas_uri: string; artifact: AcceptedArtifact;
}
/** Value of an intake_symbols record. */
export interface SymbolIntakeRecord {
  v: typeof RECORD_VERSION; type: 'symbol_bundle'; event_id: string; registered_at_unix_nano: string;
  cas_uri: string; bundle: AcceptedSymbolBundle;
}

export interface IntakeContext { nowUnixNano: string; actor: string; traceId: string }

export function artifactIntake(a: AcceptedArtifact, envelopeCasUri: string, ctx: IntakeContext):
  { record: ArtifactIntakeRecord; value: Buffer; timelineEvent: IntakeTimelineEvent } {
  const event_id = artifactEventId(a);
  const record: ArtifactIntakeRecord = { v: RECORD_VERSION, type: 'artifact', event_id, registered_at_unix_nano: ctx.nowUnixNano, envelope_cas_uri: envelopeCasUri, artifact: a };
  return {
    record, value: canonicalBytes(record),
    timelineEvent: {
      kind: ARTIFACT_REGISTERED, idSeed: artifactSeed(a), tsUnixNano: ctx.nowUnixNano, actor: ctx.actor, traceId: ctx.traceId,
      resourceType: 'artifact', resourceId: a.sha256, digest: `sha256:${a.envelope_sha256}`,
      // Small enough for one evidence entry; the envelope itself is committed to by its digest.
      details: { sha256: a.sha256, builder_commit: a.builder_commit, compiler: a.compiler, flags: a.flags, oci_digest: a.oci_digest,
        attested_fields: a.attested_fields, builder_id: a.builder_id, build_type: a.build_type, predicate_type: a.predicate_type,
        signer_keyid: a.signer_keyid, envelope_sha256: a.envelope_sha256, envelope_cas_uri: envelopeCasUri },
    },
  };
}

export function symbolsIntake(b: AcceptedSymbolBundle, casUri: string, ctx: IntakeContext):
  { record: SymbolIntakeRecord; value: Buffer; timelineEvent: IntakeTimelineEvent } {
  const event_id = symbolsEventId(b);
  const record: SymbolIntakeRecord = { v: RECORD_VERSION, type: 'symbol_bundle', event_id, registered_at_unix_nano: ctx.nowUnixNano, cas_uri: casUri, bundle: b };
  return {
    record, value: canonicalBytes(record),
    timelineEvent: {
      kind: SYMBOLS_REGISTERED, idSeed: bundleSeed(b), tsUnixNano: ctx.nowUnixNano, actor: ctx.actor, traceId: ctx.traceId,
      resourceType: 'symbol_bundle', resourceId: b.bundle_sha256, digest: `sha256:${b.bundle_sha256}`,
      details: { kind: b.kind, symbol_key: b.symbol_key, build_id: b.build_id, pdb_age: b.pdb_age, key_verified: b.key_verified,
        artifact_sha256: b.artifact_sha256, bundle_sha256: b.bundle_sha256, size: b.size, cas_uri: casUri },
    },
  };
}

export class BadIntakeRecord extends Error {}

function parseRecord(value: Buffer, key: string | null): Record<string, unknown> {
  let m: unknown;
  try { m = JSON.parse(value.toString('utf8')); } catch { throw new BadIntakeRecord('intake record is not JSON'); }
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw new BadIntakeRecord('intake record is not a JSON object');
  const r = m as Record<string, unknown>;
  if (r.v !== RECORD_VERSION) throw new BadIntakeRecord(`intake record version must be ${RECORD_VERSION}`);
  if (typeof r.event_id !== 'string' || !/^[0-9a-f]{32}$/.test(r.event_id)) throw new BadIntakeRecord('intake record event_id must be 32 hex');
  if (typeof r.registered_at_unix_nano !== 'string' || !/^\d{1,20}$/.test(r.registered_at_unix_nano)) throw new BadIntakeRecord('intake record registered_at_unix_nano must be decimal nanoseconds');
  if (key === null || validateTenantId(key)) throw new BadIntakeRecord('intake record key must be a tenant id');
  return r;
}

const casUriOk = (u: unknown, tenant: string): u is string => typeof u === 'string' && new RegExp(`^cas://${tenant}/[0-9a-f]{64}$`).test(u);

/**
 * ClickHouse rows (JSONEachRow objects; DateTime64 as epoch-ns text for the caller's dateTime64())
 * from an intake_artifacts record. With `verify`, the provenance is checked again against the
 * tenant's trust keys (the sink's fail-closed guard against records that did not come through the API).
 */
export function artifactRowsFromRecord(value: Buffer, key: string | null, verify?: IntakeEnvelopeVerifier):
  { artifact: Record<string, unknown>; evidence: Record<string, unknown> } {
  const r = parseRecord(value, key) as unknown as ArtifactIntakeRecord;
  const a = r.artifact;
  if (r.type !== 'artifact' || !a || typeof a !== 'object') throw new BadIntakeRecord('not an artifact intake record');
  if (a.tenant !== key) throw new BadIntakeRecord('artifact tenant does not match the record key');
  if (!casUriOk(r.envelope_cas_uri, key)) throw new BadIntakeRecord('envelope_cas_uri must be cas://<tenant>/<sha256>');
  if (r.event_id !== artifactEventId(a)) throw new BadIntakeRecord('event_id is not the artifact registration id');
  if (verify) {
    let provenance: unknown;
    try { provenance = JSON.parse(a.envelope_json); } catch { throw new BadIntakeRecord('envelope_json is not JSON'); }
    const v = validateArtifact(key, { sha256: a.sha256, builder_commit: a.builder_commit, compiler: a.compiler, flags: a.flags,
      ...(a.oci_digest ? { oci_digest: a.oci_digest } : {}), provenance }, verify);
    if (!v.ok) throw new BadIntakeRecord(`provenance refused on re-verification: ${v.reason}`);
    if (v.artifact.envelope_sha256 !== a.envelope_sha256) throw new BadIntakeRecord('envelope_sha256 does not match the envelope');
    // Facts derived from the signed statement are taken from the re-verification, not the record.
    Object.assign(a, { subject_name: v.artifact.subject_name, attested_fields: v.artifact.attested_fields, build_type: v.artifact.build_type,
      builder_id: v.artifact.builder_id, build_finished_on: v.artifact.build_finished_on, signer_keyid: v.artifact.signer_keyid });
  }
  const str = (v: unknown, f: string): string => { if (typeof v !== 'string') throw new BadIntakeRecord(`artifact ${f} must be a string`); return v; };
  for (const f of ['sha256', 'envelope_sha256', 'subject_name', 'builder_commit', 'compiler', 'oci_digest', 'predicate_type', 'build_type', 'builder_id',
    'build_finished_on', 'signer_keyid', 'envelope_json'] as const) str(a[f], f);
  if (!/^[0-9a-f]{64}$/.test(a.sha256) || !/^[0-9a-f]{64}$/.test(a.envelope_sha256)) throw new BadIntakeRecord('artifact digests must be 64 hex');
  if (!Array.isArray(a.flags) || !Array.isArray(a.attested_fields)) throw new BadIntakeRecord('artifact flags and attested_fields must be arrays');
  return {
    artifact: {
      tenant_id: key, sha256: a.sha256, envelope_sha256: a.envelope_sha256, subject_name: a.subject_name, builder_commit: a.builder_commit,
      compiler: a.compiler, flags: a.flags, oci_digest: a.oci_digest, attested_fields: a.attested_fields, predicate_type: a.predicate_type,
      build_type: a.build_type, builder_id: a.builder_id, build_finished_on: a.build_finished_on, signer_keyid: a.signer_keyid,
      dsse_envelope: a.envelope_json, envelope_cas_uri: r.envelope_cas_uri, event_id: r.event_id, registered_at: r.registered_at_unix_nano,
    },
    evidence: {
      tenant_id: key, subject_type: 'artifact', subject_sha256: a.sha256, event_id: r.event_id, event_kind: ARTIFACT_REGISTERED,
      artifact_sha256: a.sha256, envelope_sha256: a.envelope_sha256, signer_keyid: a.signer_keyid, cas_uri: r.envelope_cas_uri,
      recorded_at: r.registered_at_unix_nano,
    },
  };
}

/** ClickHouse rows from an intake_symbols record. */
export function symbolRowsFromRecord(value: Buffer, key: string | null): { bundle: Record<string, unknown>; evidence: Record<string, unknown> } {
  const r = parseRecord(value, key) as unknown as SymbolIntakeRecord;
  const b = r.bundle;
  if (r.type !== 'symbol_bundle' || !b || typeof b !== 'object') throw new BadIntakeRecord('not a symbol bundle intake record');
  if (b.tenant !== key) throw new BadIntakeRecord('bundle tenant does not match the record key');
  if (!casUriOk(r.cas_uri, key) || !r.cas_uri.endsWith(`/${b.bundle_sha256}`)) throw new BadIntakeRecord('cas_uri must be cas://<tenant>/<bundle sha256>');
  if (!(SYMBOL_KINDS as readonly string[]).includes(b.kind) || typeof b.symbol_key !== 'string' || b.symbol_key.length === 0) throw new BadIntakeRecord('bad symbol kind or key');
  if (typeof b.artifact_sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(b.artifact_sha256)) throw new BadIntakeRecord('artifact_sha256 must be 64 hex');
  if (r.event_id !== symbolsEventId(b)) throw new BadIntakeRecord('event_id is not the bundle registration id');
  if (!Number.isSafeInteger(b.size) || !Number.isInteger(b.pdb_age) || typeof b.build_id !== 'string') throw new BadIntakeRecord('bad bundle size, age or build_id');
  return {
    bundle: {
      tenant_id: key, symbol_key: b.symbol_key, kind: b.kind, bundle_sha256: b.bundle_sha256, artifact_sha256: b.artifact_sha256,
      build_id: b.build_id, pdb_age: b.pdb_age, size: b.size, cas_uri: r.cas_uri, key_verified: b.key_verified ? 1 : 0,
      event_id: r.event_id, registered_at: r.registered_at_unix_nano,
    },
    evidence: {
      tenant_id: key, subject_type: 'symbol_bundle', subject_sha256: b.bundle_sha256, event_id: r.event_id, event_kind: SYMBOLS_REGISTERED,
      artifact_sha256: b.artifact_sha256, envelope_sha256: '', signer_keyid: '', cas_uri: r.cas_uri, recorded_at: r.registered_at_unix_nano,
    },
  };
}
