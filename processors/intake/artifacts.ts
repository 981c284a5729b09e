// Pure core of the artifact and symbol-bundle intake (issue 13 §4, docs/intake.md "Artifacts and
// symbol bundles"): no I/O. The route (api/artifact-routes.ts) feeds it the request and what it
// looked up; the timeline sink re-runs the artifact check before it writes a row.
//
// An artifact is accepted only with its provenance: a DSSE envelope (payloadType
// application/vnd.in-toto+json) of an in-toto Statement v1 carrying an SLSA Provenance v1 predicate,
// signed by one of the tenant's intake trust keys, with a subject whose sha256 is the artifact's.
// A symbol bundle is accepted only for an artifact that was accepted that way, and an ELF bundle
// only when the build-id note in its bytes is the build-id it declares.
import { createHash } from 'node:crypto';
import { canonicalBytes } from '../evidence/jcs.ts';
import { fromB64Strict } from '../evidence/hash.ts';
import { ElfError, readBuildId } from '../../lib/elf.ts';
import { MachOError, parseMachO, type MachOSlice } from '../../lib/macho.ts';
import { PdbError, readPdbIdentity, type PdbIdentity } from '../../lib/pdb.ts';

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const STATEMENT_V1_TYPE = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';

/** Named refusals; each is the `error.code` of the 4xx answer. */
export type IntakeReason =
  // artifact record
  | 'ARTIFACT_RECORD_MALFORMED' | 'ARTIFACT_SHA256_INVALID' | 'BUILDER_COMMIT_INVALID' | 'COMPILER_INVALID'
  | 'FLAGS_INVALID' | 'OCI_DIGEST_INVALID' | 'PROVENANCE_MISSING'
  // envelope and signature
  | 'ENVELOPE_MALFORMED' | 'ENVELOPE_NOT_BASE64' | 'PAYLOAD_TYPE_UNSUPPORTED' | 'SIGNATURE_NOT_TRUSTED'
  // statement and predicate
  | 'STATEMENT_MALFORMED' | 'STATEMENT_TYPE_UNSUPPORTED' | 'PREDICATE_TYPE_UNSUPPORTED' | 'PREDICATE_MALFORMED'
  | 'SUBJECT_DIGEST_MISMATCH' | 'BUILDER_COMMIT_NOT_ATTESTED' | 'COMPILER_MISMATCH' | 'FLAGS_MISMATCH'
  // symbol bundles
  | 'SYMBOL_KIND_INVALID' | 'SYMBOL_KEY_INVALID' | 'ORIGIN_ARTIFACT_SHA256_INVALID' | 'ORIGIN_ARTIFACT_UNATTESTED'
  | 'SYMBOL_BUNDLE_EMPTY' | 'ELF_MALFORMED' | 'ELF_BUILD_ID_MISSING' | 'BUILD_ID_MISMATCH'
  | 'PDB_MALFORMED' | 'PDB_GUID_MISMATCH' | 'PDB_AGE_MISMATCH' | 'MACHO_MALFORMED' | 'DSYM_UUID_MISSING' | 'DSYM_UUID_MISMATCH';

export interface Refusal { ok: false; reason: IntakeReason; message: string }
const refuse = (reason: IntakeReason, message: string): Refusal => ({ ok: false, reason, message });

/** A DSSE envelope as sent (JSON object). */
export interface DsseEnvelopeJson { payload: string; payloadType: string; signatures: { keyid: string; sig: string }[] }

/**
 * The tenant's trust check: lib/intake/trust.ts IntakeTrust.verifyIntakeEnvelope, bound to the loaded
 * trust config; fails closed (no keys configured, unknown keyid, bad signature). Injected so that
 * this core stays free of configuration.
 */
export type { IntakeEnvelopeVerifier } from '../../lib/intake/trust.ts';
import type { IntakeEnvelopeVerifier } from '../../lib/intake/trust.ts';

const SHA256_HEX = /^[0-9a-f]{64}$/;
const GIT_COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const OCI_DIGEST = /^sha256:[0-9a-f]{64}$/;
const MAX_COMPILER = 256;
const MAX_FLAGS = 1024;
const MAX_FLAG = 4096;
/** All flags together: they are sealed in the evidence entry of the registration (at most 64 KiB). */
const MAX_FLAGS_BYTES = 16 * 1024;
/** An envelope is a few KB; far more is not a provenance document. */
export const MAX_ENVELOPE_BYTES = 1024 * 1024;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const sha256Hex = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

// ---------------------------------------------------------------- artifacts

/** The artifact record as POSTed (snake_case JSON). */
export interface ArtifactSubmission {
  sha256: string;
  builder_commit: string;
  compiler: string;
  flags: string[];
  oci_digest?: string;
  provenance: DsseEnvelopeJson;
}

/** Which record fields the signed predicate itself states (the others are the submitter's word). */
export type AttestedField = 'builder_commit' | 'compiler' | 'flags' | 'oci_digest';

/** An accepted artifact: what is stored, published and sealed. */
export interface AcceptedArtifact {
  tenant: string;
  sha256: string;
  /** Name of the matching in-toto subject ("" when it has none). */
  subject_name: string;
  builder_commit: string;
  compiler: string;
  flags: string[];
  /** "" when the record has none. */
  oci_digest: string;
  attested_fields: AttestedField[];
  predicate_type: string;
  build_type: string;
  builder_id: string;
  /** runDetails.metadata.finishedOn when the predicate has it, else "". */
  build_finished_on: string;
  /** keyid of the trust key whose signature verified. */
  signer_keyid: string;
  /** RFC 8785 canonical JSON of the envelope as received (the signed payload is inside, unchanged). */
  envelope_json: string;
  envelope_sha256: string;
}

export type ArtifactVerdict = { ok: true; artifact: AcceptedArtifact } | Refusal;

/** Field-level checks of the record, before any signature work. */
function checkArtifactRecord(body: unknown): Refusal | ArtifactSubmission {
  if (!isObject(body)) return refuse('ARTIFACT_RECORD_MALFORMED', 'the artifact record must be a JSON object');
  const allowed = new Set(['sha256', 'builder_commit', 'compiler', 'flags', 'oci_digest', 'provenance']);
  const unknown = Object.keys(body).filter((k) => !allowed.has(k));
  if (unknown.length) return refuse('ARTIFACT_RECORD_MALFORMED', `unknown field(s) in the artifact record (allowed: ${[...allowed].join(', ')})`);
  const { sha256, builder_commit, compiler, flags, oci_digest, provenance } = body;
  if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) return refuse('ARTIFACT_SHA256_INVALID', 'sha256 must be 64 lowercase hex characters (the artifact file\'s SHA-256)');
  if (typeof builder_commit !== 'string' || !GIT_COMMIT.test(builder_commit)) {
    return refuse('BUILDER_COMMIT_INVALID', 'builder_commit must be a git commit id: 40 or 64 lowercase hex characters');
  }
  if (typeof compiler !== 'string' || compiler.trim().length === 0 || compiler.length > MAX_COMPILER || /[\u0000-\u001f]/.test(compiler)) {
    return refuse('COMPILER_INVALID', `compiler must be a non-empty single-line string of at most ${MAX_COMPILER} characters`);
  }
  if (!Array.isArray(flags) || flags.length > MAX_FLAGS || !flags.every((f) => typeof f === 'string' && f.length > 0 && f.length <= MAX_FLAG)
    || flags.reduce((n: number, f: string) => n + Buffer.byteLength(f), 0) > MAX_FLAGS_BYTES) {
    return refuse('FLAGS_INVALID', `flags must be an array of at most ${MAX_FLAGS} non-empty strings (the compiler arguments), ${MAX_FLAGS_BYTES} bytes in all`);
  }
  if (oci_digest !== undefined && (typeof oci_digest !== 'string' || !OCI_DIGEST.test(oci_digest))) {
    return refuse('OCI_DIGEST_INVALID', 'oci_digest must be sha256:<64 lowercase hex> when given');
  }
  if (provenance === undefined || provenance === null) return refuse('PROVENANCE_MISSING', 'provenance (a DSSE envelope of an SLSA provenance statement) is required: no attestation, no intake');
  return { sha256, builder_commit, compiler, flags: flags as string[], oci_digest: oci_digest as string | undefined, provenance: provenance as DsseEnvelopeJson };
}

/** DSSE allows standard or URL-safe base64, padded or not (the same rule as lib/intake/trust.ts); nothing else. */
export function dsseB64(s: string): Buffer | undefined {
  const std = fromB64Strict(s);
  if (std) return std;
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return undefined;
  const b = Buffer.from(s, 'base64url');
  return b.toString('base64url') === s ? b : undefined;
}

/** The envelope's shape, checked before its signature (so malformed input has its own reason). */
function checkEnvelopeShape(e: unknown): Refusal | { envelope: DsseEnvelopeJson; payload: Buffer } {
  if (!isObject(e)) return refuse('ENVELOPE_MALFORMED', 'provenance must be a DSSE envelope object {payload, payloadType, signatures}');
  if (typeof e.payload !== 'string' || typeof e.payloadType !== 'string' || !Array.isArray(e.signatures)) {
    return refuse('ENVELOPE_MALFORMED', 'the DSSE envelope needs payload (string), payloadType (string) and signatures (array)');
  }
  if (e.signatures.length === 0 || e.signatures.length > 16) return refuse('ENVELOPE_MALFORMED', 'the DSSE envelope needs 1 to 16 signatures');
  for (const s of e.signatures) {
    if (!isObject(s) || typeof s.sig !== 'string' || typeof s.keyid !== 'string' || s.keyid.length === 0) {
      return refuse('ENVELOPE_MALFORMED', 'each DSSE signature needs a keyid and a sig (strings)');
    }
    if (!dsseB64(s.sig)) return refuse('ENVELOPE_NOT_BASE64', 'a DSSE signature is not base64 (standard or URL-safe)');
  }
  if (e.payloadType !== IN_TOTO_PAYLOAD_TYPE) return refuse('PAYLOAD_TYPE_UNSUPPORTED', `payloadType must be ${IN_TOTO_PAYLOAD_TYPE}`);
  const payload = dsseB64(e.payload);
  if (!payload || payload.length === 0) return refuse('ENVELOPE_NOT_BASE64', 'the DSSE payload is not (non-empty) base64 (standard or URL-safe)');
  return { envelope: { payload: e.payload, payloadType: e.payloadType, signatures: e.signatures.map((s) => ({ keyid: (s as { keyid: string }).keyid, sig: (s as { sig: string }).sig })) }, payload };
}

interface SlsaV1Facts {
  subjects: { name: string; sha256: string | undefined }[];
  buildType: string; builderId: string; finishedOn: string;
  gitCommits: Set<string>;
  compilers: string[];
  flagSets: string[][];
  subjectDigests: Set<string>;
}

/** Parse the signed payload as an in-toto Statement v1 with an SLSA Provenance v1 predicate. */
function readStatement(payload: Buffer): Refusal | SlsaV1Facts {
  let st: unknown;
  try { st = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload)); } catch {
    return refuse('STATEMENT_MALFORMED', 'the DSSE payload is not UTF-8 JSON');
  }
  if (!isObject(st)) return refuse('STATEMENT_MALFORMED', 'the statement must be a JSON object');
  if (st._type !== STATEMENT_V1_TYPE) return refuse('STATEMENT_TYPE_UNSUPPORTED', `statement _type must be ${STATEMENT_V1_TYPE}`);
  if (st.predicateType !== SLSA_PROVENANCE_V1) {
    return refuse('PREDICATE_TYPE_UNSUPPORTED', `predicateType must be ${SLSA_PROVENANCE_V1} (SLSA Provenance v1; v0.2 is not accepted)`);
  }
  if (!Array.isArray(st.subject) || st.subject.length === 0) return refuse('STATEMENT_MALFORMED', 'the statement needs a non-empty subject array');
  const subjects: SlsaV1Facts['subjects'] = [];
  const subjectDigests = new Set<string>();
  for (const s of st.subject) {
    if (!isObject(s) || !isObject(s.digest) || Object.keys(s.digest).length === 0) return refuse('STATEMENT_MALFORMED', 'every subject needs a digest set');
    if (s.name !== undefined && typeof s.name !== 'string') return refuse('STATEMENT_MALFORMED', 'a subject name must be a string');
    for (const [alg, v] of Object.entries(s.digest)) {
      if (typeof v !== 'string' || !/^[0-9a-f]+$/i.test(v)) return refuse('STATEMENT_MALFORMED', `subject digest ${JSON.stringify(alg).slice(0, 40)} must be a hex string`);
    }
    const d = s.digest.sha256;
    if (d !== undefined && !SHA256_HEX.test(d as string)) return refuse('STATEMENT_MALFORMED', 'a subject sha256 digest must be 64 lowercase hex characters');
    subjects.push({ name: (s.name as string | undefined) ?? '', sha256: d as string | undefined });
    if (typeof d === 'string') subjectDigests.add(d);
  }
  const p = st.predicate;
  if (!isObject(p) || !isObject(p.buildDefinition) || !isObject(p.runDetails)) {
    return refuse('PREDICATE_MALFORMED', 'the SLSA predicate needs buildDefinition and runDetails objects');
  }
  const bd = p.buildDefinition;
  const rd = p.runDetails;
  if (typeof bd.buildType !== 'string' || bd.buildType.length === 0) return refuse('PREDICATE_MALFORMED', 'buildDefinition.buildType is required');
  if (!isObject(bd.externalParameters)) return refuse('PREDICATE_MALFORMED', 'buildDefinition.externalParameters (object) is required');
  if (bd.internalParameters !== undefined && !isObject(bd.internalParameters)) return refuse('PREDICATE_MALFORMED', 'buildDefinition.internalParameters must be an object');
  if (!isObject(rd.builder) || typeof rd.builder.id !== 'string' || rd.builder.id.length === 0) return refuse('PREDICATE_MALFORMED', 'runDetails.builder.id is required');
  if (bd.resolvedDependencies !== undefined && !Array.isArray(bd.resolvedDependencies)) return refuse('PREDICATE_MALFORMED', 'buildDefinition.resolvedDependencies must be an array');
  const gitCommits = new Set<string>();
  for (const dep of (bd.resolvedDependencies ?? []) as unknown[]) {
    if (!isObject(dep)) return refuse('PREDICATE_MALFORMED', 'each resolvedDependencies entry must be a resource descriptor object');
    if (dep.digest !== undefined) {
      if (!isObject(dep.digest)) return refuse('PREDICATE_MALFORMED', 'a resolvedDependencies digest must be a digest set');
      if (typeof dep.digest.gitCommit === 'string') gitCommits.add(dep.digest.gitCommit.toLowerCase());
    }
  }
  // Compiler and flags have no standard SLSA field: read `compiler` / `flags` from the external or
  // internal parameters when the builder states them (docs/intake.md).
  const compilers: string[] = [];
  const flagSets: string[][] = [];
  for (const params of [bd.externalParameters, bd.internalParameters]) {
    if (!isObject(params)) continue;
    if (params.compiler !== undefined) {
      if (typeof params.compiler !== 'string') return refuse('PREDICATE_MALFORMED', 'a predicate compiler parameter must be a string');
      compilers.push(params.compiler);
    }
    if (params.flags !== undefined) {
      if (!Array.isArray(params.flags) || !params.flags.every((f) => typeof f === 'string')) return refuse('PREDICATE_MALFORMED', 'a predicate flags parameter must be an array of strings');
      flagSets.push(params.flags as string[]);
    }
  }
  let finishedOn = '';
  if (rd.metadata !== undefined) {
    if (!isObject(rd.metadata)) return refuse('PREDICATE_MALFORMED', 'runDetails.metadata must be an object');
    if (rd.metadata.finishedOn !== undefined) {
      if (typeof rd.metadata.finishedOn !== 'string' || Number.isNaN(Date.parse(rd.metadata.finishedOn))) return refuse('PREDICATE_MALFORMED', 'runDetails.metadata.finishedOn must be an RFC 3339 timestamp');
      finishedOn = rd.metadata.finishedOn;
    }
  }
  return { subjects, buildType: bd.buildType, builderId: rd.builder.id, finishedOn, gitCommits, compilers, flagSets, subjectDigests };
}

const sameFlags = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Validate an artifact submission for `tenant`. Order: record fields, envelope shape, signature
 * (fail closed, via `verify`), then the statement parsed from the VERIFIED payload, then the
 * bindings between the statement and the record.
 */
export function validateArtifact(tenant: string, body: unknown, verify: IntakeEnvelopeVerifier): ArtifactVerdict {
  const rec = checkArtifactRecord(body);
  if ('ok' in rec) return rec;
  const shape = checkEnvelopeShape(rec.provenance);
  if ('ok' in shape) return shape;
  let envelopeJson: string;
  try { envelopeJson = canonicalBytes(shape.envelope).toString('utf8'); } catch {
    return refuse('ENVELOPE_MALFORMED', 'the DSSE envelope is not I-JSON');
  }
  if (Buffer.byteLength(envelopeJson) > MAX_ENVELOPE_BYTES) return refuse('ENVELOPE_MALFORMED', `the DSSE envelope is over ${MAX_ENVELOPE_BYTES} bytes`);
  let v: ReturnType<IntakeEnvelopeVerifier>;
  try { v = verify(shape.envelope, tenant, IN_TOTO_PAYLOAD_TYPE); } catch { v = { ok: false, reason: 'verification failed' }; }
  if (!v.ok) return refuse('SIGNATURE_NOT_TRUSTED', `the provenance signature does not verify against the tenant's intake trust keys: ${v.reason}`);
  // Parse what was signed, never a second copy of it.
  const facts = readStatement(v.payload);
  if ('ok' in facts) return facts;
  const match = facts.subjects.filter((s) => s.sha256 === rec.sha256);
  if (match.length === 0) return refuse('SUBJECT_DIGEST_MISMATCH', 'no subject of the provenance statement has the artifact\'s sha256');
  if (!facts.gitCommits.has(rec.builder_commit)) {
    return refuse('BUILDER_COMMIT_NOT_ATTESTED', 'builder_commit is not a gitCommit digest of any resolvedDependencies entry of the provenance');
  }
  if (facts.compilers.some((c) => c !== rec.compiler)) return refuse('COMPILER_MISMATCH', 'compiler differs from the compiler the provenance states');
  if (facts.flagSets.some((f) => !sameFlags(f, rec.flags))) return refuse('FLAGS_MISMATCH', 'flags differ from the flags the provenance states');
  const attested: AttestedField[] = ['builder_commit'];
  if (facts.compilers.length) attested.push('compiler');
  if (facts.flagSets.length) attested.push('flags');
  if (rec.oci_digest && facts.subjectDigests.has(rec.oci_digest.slice('sha256:'.length))) attested.push('oci_digest');
  return {
    ok: true,
    artifact: {
      tenant, sha256: rec.sha256, subject_name: match[0]!.name, builder_commit: rec.builder_commit, compiler: rec.compiler,
      flags: rec.flags, oci_digest: rec.oci_digest ?? '', attested_fields: attested, predicate_type: SLSA_PROVENANCE_V1,
      build_type: facts.buildType, builder_id: facts.builderId, build_finished_on: facts.finishedOn, signer_keyid: v.keyid,
      envelope_json: envelopeJson, envelope_sha256: sha256Hex(envelopeJson),
    },
  };
}

// ---------------------------------------------------------------- symbol bundles

export type SymbolKind = 'elf' | 'pdb' | 'dsym';
export const SYMBOL_KINDS: readonly SymbolKind[] = ['elf', 'pdb', 'dsym'];

/** The declared keys of a bundle (query parameters of POST /api/v1/symbols). */
export interface SymbolDeclaration {
  kind: string | undefined;
  build_id?: string;
  pdb_guid?: string;
  pdb_age?: string;
  dsym_uuid?: string;
  artifact_sha256: string | undefined;
}

/**
 * The normalized lookup key of a symbol bundle, the join key frames carry:
 *  - elf:  the GNU build-id, lowercase hex (as `readelf -n` and OTLP profiles' Mapping build_id print it);
 *  - pdb:  GUID as 32 uppercase hex digits without dashes, then the age in uppercase hex (the
 *          symbol-server key, e.g. `0123...CDEF1`);
 *  - dsym: the Mach-O LC_UUID as 32 lowercase hex digits without dashes.
 */
export function elfKey(buildId: string): string | undefined {
  const h = buildId.toLowerCase();
  return /^(?:[0-9a-f]{2}){4,64}$/.test(h) ? h : undefined;
}
export function pdbKey(guid: string, age: string | number): string | undefined {
  const g = guid.replace(/^\{|\}$/g, '').replace(/-/g, '').toUpperCase();
  if (!/^[0-9A-F]{32}$/.test(g)) return undefined;
  if (!/^\d{1,10}$/.test(String(age)) || Number(age) > 0xffffffff) return undefined;
  return `${g}${Number(age).toString(16).toUpperCase()}`;
}
export function dsymKey(uuid: string): string | undefined {
  const u = uuid.replace(/-/g, '').toLowerCase();
  return /^[0-9a-f]{32}$/.test(u) ? u : undefined;
}

/** Reads the build-id from ELF bytes (lib/elf.ts). */
export type ElfBuildIdReader = (bytes: Uint8Array) => { ok: true; buildId: string | undefined } | { ok: false; error: string };

/** The project's ELF reader (lib/elf.ts) as an ElfBuildIdReader: malformed files become { ok: false } with the rule broken. */
export const elfBuildIdReader: ElfBuildIdReader = (bytes) => {
  try { return { ok: true, buildId: readBuildId(bytes) }; } catch (err) {
    if (err instanceof ElfError) return { ok: false, error: err.message };
    throw err;
  }
};

/** A PDB's identity read from its bytes (lib/pdb.ts), or the rule it breaks. */
export function pdbIdentityOf(bytes: Uint8Array): { ok: true; identity: PdbIdentity } | { ok: false; error: string } {
  try { return { ok: true, identity: readPdbIdentity(bytes) }; } catch (err) {
    if (err instanceof PdbError) return { ok: false, error: err.message };
    throw err;
  }
}

/** The slices of a (thin or universal) Mach-O file with their LC_UUIDs (lib/macho.ts), or the rule it breaks. */
export function machOSlicesOf(bytes: Uint8Array): { ok: true; slices: MachOSlice[] } | { ok: false; error: string } {
  try { return { ok: true, slices: parseMachO(bytes).slices }; } catch (err) {
    if (err instanceof MachOError) return { ok: false, error: err.message };
    throw err;
  }
}

/**
 * The join keys a bundle's bytes carry, for re-checking a stored bundle (timeline sink, join):
 * ELF: its build-id; PDB: GUID + age (pdbKey); dSYM: the UUID of every slice.
 */
export function bundleKeysFromBytes(kind: SymbolKind, bytes: Uint8Array, readElfBuildId: ElfBuildIdReader = elfBuildIdReader):
  { ok: true; keys: string[] } | { ok: false; error: string } {
  if (kind === 'elf') {
    const r = readElfBuildId(bytes);
    if (!r.ok) return r;
    return { ok: true, keys: r.buildId === undefined ? [] : [r.buildId.toLowerCase()] };
  }
  if (kind === 'pdb') {
    const r = pdbIdentityOf(bytes);
    return r.ok ? { ok: true, keys: [pdbKey(r.identity.guid, r.identity.age)!] } : r;
  }
  const r = machOSlicesOf(bytes);
  return r.ok ? { ok: true, keys: r.slices.flatMap((x) => (x.uuid ? [x.uuid] : [])) } : r;
}

/** What the route knows about the origin artifact (from lookupArtifact). */
export interface OriginArtifact { sha256: string; attested: boolean }

export interface AcceptedSymbolBundle {
  tenant: string;
  kind: SymbolKind;
  /** Normalized key (elfKey / pdbKey / dsymKey). */
  symbol_key: string;
  /** ELF: lowercase hex build-id; PDB: GUID (32 uppercase hex); dSYM: UUID (32 lowercase hex). */
  build_id: string;
  /** PDB age, 0 otherwise. */
  pdb_age: number;
  artifact_sha256: string;
  bundle_sha256: string;
  size: number;
  /** The key was read from the bytes (always true for bundles accepted now; false on rows from before PDB/dSYM keys were read). */
  key_verified: boolean;
  /** dSYM: the architecture of the slice whose LC_UUID is the key (a universal file has one UUID per slice). */
  arch?: string;
}

export type SymbolVerdict = { ok: true; bundle: AcceptedSymbolBundle } | Refusal;

/**
 * Validate a symbol bundle. `origin` is the lookup of the declared artifact (undefined when the
 * tenant has no such artifact); only attested artifacts exist, but the flag is checked anyway so a
 * future unattested row cannot open the door.
 */
export function validateSymbolBundle(tenant: string, decl: SymbolDeclaration, bytes: Uint8Array,
  origin: OriginArtifact | undefined, readElfBuildId: ElfBuildIdReader): SymbolVerdict {
  if (!decl.kind || !(SYMBOL_KINDS as readonly string[]).includes(decl.kind)) return refuse('SYMBOL_KIND_INVALID', `kind must be one of ${SYMBOL_KINDS.join(', ')}`);
  const kind = decl.kind as SymbolKind;
  let key: string | undefined;
  let buildId = '';
  let age = 0;
  if (kind === 'elf') {
    if (decl.pdb_guid !== undefined || decl.pdb_age !== undefined || decl.dsym_uuid !== undefined) return refuse('SYMBOL_KEY_INVALID', 'an elf bundle is keyed by build_id only');
    key = decl.build_id === undefined ? undefined : elfKey(decl.build_id);
    if (!key) return refuse('SYMBOL_KEY_INVALID', 'build_id must be the GNU build-id: 8 to 128 hex characters (even count)');
    buildId = key;
  } else if (kind === 'pdb') {
    if (decl.build_id !== undefined || decl.dsym_uuid !== undefined) return refuse('SYMBOL_KEY_INVALID', 'a pdb bundle is keyed by pdb_guid and pdb_age only');
    key = decl.pdb_guid === undefined || decl.pdb_age === undefined ? undefined : pdbKey(decl.pdb_guid, decl.pdb_age);
    if (!key) return refuse('SYMBOL_KEY_INVALID', 'pdb_guid must be a GUID (32 hex digits, dashes allowed) and pdb_age a decimal uint32');
    buildId = key.slice(0, 32);
    age = Number(decl.pdb_age);
  } else {
    if (decl.build_id !== undefined || decl.pdb_guid !== undefined || decl.pdb_age !== undefined) return refuse('SYMBOL_KEY_INVALID', 'a dsym bundle is keyed by dsym_uuid only');
    key = decl.dsym_uuid === undefined ? undefined : dsymKey(decl.dsym_uuid);
    if (!key) return refuse('SYMBOL_KEY_INVALID', 'dsym_uuid must be a UUID (32 hex digits, dashes allowed)');
    buildId = key;
  }
  if (decl.artifact_sha256 === undefined || !SHA256_HEX.test(decl.artifact_sha256)) {
    return refuse('ORIGIN_ARTIFACT_SHA256_INVALID', 'artifact_sha256 (the origin artifact\'s sha256, 64 lowercase hex) is required');
  }
  if (!origin || origin.sha256 !== decl.artifact_sha256 || !origin.attested) {
    return refuse('ORIGIN_ARTIFACT_UNATTESTED', 'the origin artifact is not a registered, attested artifact of this tenant: no symbols without attestation');
  }
  if (bytes.length === 0) return refuse('SYMBOL_BUNDLE_EMPTY', 'the symbol bundle is empty');
  let arch: string | undefined;
  if (kind === 'elf') {
    const r = readElfBuildId(bytes);
    if (!r.ok) return refuse('ELF_MALFORMED', `the bundle is not a readable ELF file: ${r.error}`);
    if (r.buildId === undefined) return refuse('ELF_BUILD_ID_MISSING', 'the ELF file has no GNU build-id note (link with --build-id)');
    if (r.buildId.toLowerCase() !== key) return refuse('BUILD_ID_MISMATCH', 'the declared build_id differs from the build-id note in the ELF bytes');
  } else if (kind === 'pdb') {
    const r = pdbIdentityOf(bytes);
    if (!r.ok) return refuse('PDB_MALFORMED', `the bundle is not a readable PDB (MSF 7.00) file: ${r.error}`);
    const guid = pdbKey(r.identity.guid, 0)!.slice(0, 32);
    if (guid !== buildId) return refuse('PDB_GUID_MISMATCH', 'the declared pdb_guid differs from the GUID in the PDB info stream');
    if (r.identity.age !== age) {
      return refuse('PDB_AGE_MISMATCH', `the declared pdb_age differs from the PDB's age (${r.identity.dbiAge !== undefined ? 'DBI stream' : 'info stream'}): ${r.identity.age}`);
    }
  } else {
    const r = machOSlicesOf(bytes);
    if (!r.ok) return refuse('MACHO_MALFORMED', `the bundle is not a readable Mach-O file (the DWARF file inside the .dSYM, thin or universal): ${r.error}`);
    const withUuid = r.slices.filter((x) => x.uuid !== undefined);
    if (withUuid.length === 0) return refuse('DSYM_UUID_MISSING', 'no slice of the Mach-O file has an LC_UUID load command');
    const slice = withUuid.find((x) => x.uuid === key);
    if (!slice) {
      return refuse('DSYM_UUID_MISMATCH', `the declared dsym_uuid is not the LC_UUID of any slice (${withUuid.map((x) => `${x.arch} ${x.uuid}`).join(', ')})`);
    }
    arch = slice.arch;
  }
  return {
    ok: true,
    bundle: { tenant, kind, symbol_key: key, build_id: buildId, pdb_age: age, artifact_sha256: decl.artifact_sha256,
      bundle_sha256: sha256Hex(bytes), size: bytes.length, key_verified: true, ...(arch ? { arch } : {}) },
  };
}
