// A tenant's trust root: what a verifier pins out of band before it believes a bundle.
//
// Canonical JSON (RFC 8785), e.g.
//   {"log_keys":["stella-telemetry.example/tenants/acme+1a2b3c4d+AQ…"],
//    "origin":"stella-telemetry.example/tenants/acme",
//    "rotations":[{"new_key":"…","previous_key":"…","valid_from_size":513}],
//    "tenant":"acme","tsa":{"certificates":[],"k":0},
//    "type":"stella.evidence.trust-root/v1","witnesses":{"k":0,"keys":[]}}
//
// log_keys are the log's genesis verifier keys (C2SP signed-note vkeys, alg 0x01): a bundle's key
// schedule must start from one of them. Later keys are derived from the log's own rotation entries;
// `rotations` pins the rotations known when the root was exported, so a key retired before then
// cannot sign a checkpoint past its retirement (a bundle that omits the rotation is refused).
// witnesses: C2SP tlog-cosignature verifier keys (alg 0x04) with a k-of-n policy; tsa: the PEM
// certificates of trusted RFC 3161 TSAs and how many tokens each checkpoint needs.
import { X509Certificate, createPublicKey } from 'node:crypto';
import { fromB64Strict, sha256, sha256Hex } from './hash.ts';
import { canonicalBytes } from './jcs.ts';
import { NoteError, parseVerifierKey, validateKeyName } from './note.ts';
import { LogReader } from './reader.ts';
import type { EvidenceStore } from './store.ts';
import { validateTenantId } from '../../lib/tenancy.ts';

export const TRUST_ROOT_TYPE = 'stella.evidence.trust-root/v1';

/** A rotation the trust root pins: `previous_key` signs sizes below `valid_from_size`, `new_key` from it on. */
export interface PinnedRotation { previous_key: string; new_key: string; valid_from_size: number }

export interface WitnessKey { name: string; vkey: string }

export interface TrustRoot {
  type: typeof TRUST_ROOT_TYPE;
  tenant: string;
  /** The log origin (checkpoint key name), e.g. stella-telemetry.example/tenants/acme. */
  origin: string;
  /** Genesis note verifier keys `<name>+<hex id>+<b64>`; later keys derive from the log's rotation entries. */
  log_keys: string[];
  /** Rotations known at export time, in log order (absent in the input = none). */
  rotations: PinnedRotation[];
  /** C2SP tlog-cosignature verifier keys, k-of-n policy (k=0: none required). */
  witnesses: { k: number; keys: WitnessKey[] };
  /** PEM certificates of trusted RFC 3161 TSAs; k tokens required per checkpoint (0: optional). */
  tsa: { k: number; certificates: string[] };
  /**
   * The tenant's intake trust keys (config `intake.trust.<tenant>.keys`, Ed25519 SPKI PEM): the only
   * keys an audit bundle's provenance envelopes may be verified with. Absent = none pinned (a
   * provenance bundle then fails PROVENANCE_KEY_UNTRUSTED). Exported only when configured, so roots
   * of tenants without intake keys keep their bytes.
   */
  intake_keys?: IntakeKeyPin[];
  /** The join-completeness policy an audit bundle is checked against (absent: the default 20 / 0.95). */
  provenance_policy?: { top_frames: number; min_completeness: number };
}

export interface IntakeKeyPin { keyid: string; public_key: string }

export class TrustRootError extends Error {
  override readonly name = 'TrustRootError';
}

/** Signature type byte of a C2SP tlog-cosignature/v1 Ed25519 verifier key. */
export const ALG_COSIGNATURE_V1 = 0x04;

const TOP_KEYS = ['type', 'tenant', 'origin', 'log_keys', 'rotations', 'witnesses', 'tsa', 'intake_keys', 'provenance_policy'];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  const extra = Object.keys(o).filter((k) => !allowed.includes(k));
  if (extra.length) throw new TrustRootError(`${where}: unknown field${extra.length > 1 ? 's' : ''} ${extra.map((k) => JSON.stringify(k)).join(', ')} (allowed: ${allowed.join(', ')})`);
}

function stringField(o: Record<string, unknown>, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v === '') throw new TrustRootError(`${where}.${key} must be a non-empty string`);
  return v;
}

function arrayField(o: Record<string, unknown>, key: string, where: string): unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) throw new TrustRootError(`${where}.${key} must be an array`);
  return v;
}

function policyK(o: Record<string, unknown>, n: number, where: string): number {
  const k = o.k;
  if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 0) throw new TrustRootError(`${where}.k must be a non-negative integer`);
  if (k > n) throw new TrustRootError(`${where}.k is ${k} but only ${n} ${n === 1 ? 'key is' : 'keys are'} listed: the policy could never be met`);
  return k;
}

function logKey(v: unknown, origin: string, where: string): string {
  if (typeof v !== 'string') throw new TrustRootError(`${where} must be a verifier key string <name>+<hex id>+<base64>`);
  let name: string;
  try { name = parseVerifierKey(v).name; } catch (e) { throw new TrustRootError(`${where}: ${(e as NoteError).message}`); }
  if (name !== origin) throw new TrustRootError(`${where} is named ${name}, not the log origin ${origin}`);
  return v;
}

/** Parse a C2SP tlog-cosignature/v1 Ed25519 vkey `<name>+<hex id>+<base64(0x04 ‖ key)>`, checking its key id. */
export function parseCosignatureKey(vkey: string): { name: string; keyIdHex: string; publicKey: Buffer } {
  const parts = vkey.split('+');
  if (parts.length < 3) throw new TrustRootError('witness vkey must be <name>+<hex id>+<base64 key>');
  const [name, idHex] = parts as [string, string];
  try { validateKeyName(name); } catch (e) { throw new TrustRootError((e as Error).message); }
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new TrustRootError('witness vkey id must be 8 lowercase hex digits');
  const key = fromB64Strict(parts.slice(2).join('+'));
  if (!key || key.length !== 33 || key[0] !== ALG_COSIGNATURE_V1) throw new TrustRootError('witness vkey must be base64(0x04 ‖ 32-byte Ed25519 public key) (C2SP tlog-cosignature/v1)');
  const id = sha256(Buffer.concat([Buffer.from(name, 'utf8'), Buffer.from([0x0a, ALG_COSIGNATURE_V1]), key.subarray(1)])).subarray(0, 4).toString('hex');
  if (id !== idHex) throw new TrustRootError(`witness vkey id ${idHex} does not match the key (${id})`);
  return { name, keyIdHex: id, publicKey: Buffer.from(key.subarray(1)) };
}

const PEM_CERT = /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?$/;

function tsaCertificate(v: unknown, where: string): string {
  if (typeof v !== 'string' || !PEM_CERT.test(v)) throw new TrustRootError(`${where} must be one PEM certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)`);
  try { new X509Certificate(v); } catch { throw new TrustRootError(`${where} is not a parsable X.509 certificate`); }
  return v;
}

/** Strictly validate a parsed JSON value as a trust root. Unknown fields, duplicates and impossible policies are refused. */
export function parseTrustRoot(json: unknown): TrustRoot {
  const w = 'trust root';
  if (!isObject(json)) throw new TrustRootError(`${w} must be a JSON object`);
  onlyKeys(json, TOP_KEYS, w);
  if (json.type !== TRUST_ROOT_TYPE) throw new TrustRootError(`${w}.type must be "${TRUST_ROOT_TYPE}"${typeof json.type === 'string' ? ` (got "${json.type}")` : ''}`);
  const tenant = stringField(json, 'tenant', w);
  const tenantProblem = validateTenantId(tenant);
  if (tenantProblem) throw new TrustRootError(`${w}.tenant: ${tenantProblem}`);
  const origin = stringField(json, 'origin', w);
  try { validateKeyName(origin); } catch (e) { throw new TrustRootError(`${w}.origin: ${(e as Error).message}`); }

  const logKeys = arrayField(json, 'log_keys', w).map((v, i) => logKey(v, origin, `${w}.log_keys[${i}]`));
  if (logKeys.length === 0) throw new TrustRootError(`${w}.log_keys must list at least one genesis key`);
  if (new Set(logKeys).size !== logKeys.length) throw new TrustRootError(`${w}.log_keys lists a key twice`);

  const rotations: PinnedRotation[] = (json.rotations === undefined ? [] : arrayField(json, 'rotations', w)).map((v, i) => {
    const rw = `${w}.rotations[${i}]`;
    if (!isObject(v)) throw new TrustRootError(`${rw} must be an object`);
    onlyKeys(v, ['previous_key', 'new_key', 'valid_from_size'], rw);
    const s = v.valid_from_size;
    if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 2) throw new TrustRootError(`${rw}.valid_from_size must be an integer ≥ 2`);
    return { previous_key: logKey(v.previous_key, origin, `${rw}.previous_key`), new_key: logKey(v.new_key, origin, `${rw}.new_key`), valid_from_size: s };
  });
  rotations.forEach((r, i) => {
    const prev = rotations[i - 1];
    if (i === 0 && !logKeys.includes(r.previous_key)) throw new TrustRootError(`${w}.rotations[0].previous_key is not one of log_keys`);
    if (prev && r.previous_key !== prev.new_key) throw new TrustRootError(`${w}.rotations[${i}].previous_key is not rotations[${i - 1}].new_key`);
    if (prev && r.valid_from_size <= prev.valid_from_size) throw new TrustRootError(`${w}.rotations must be in log order (valid_from_size increasing)`);
    if (r.new_key === r.previous_key) throw new TrustRootError(`${w}.rotations[${i}] rotates a key to itself`);
  });

  const wit = json.witnesses;
  if (!isObject(wit)) throw new TrustRootError(`${w}.witnesses must be an object {k, keys}`);
  onlyKeys(wit, ['k', 'keys'], `${w}.witnesses`);
  const witnessKeys = arrayField(wit, 'keys', `${w}.witnesses`).map((v, i) => {
    const kw = `${w}.witnesses.keys[${i}]`;
    if (!isObject(v)) throw new TrustRootError(`${kw} must be an object {name, vkey}`);
    onlyKeys(v, ['name', 'vkey'], kw);
    const name = stringField(v, 'name', kw);
    const vkey = stringField(v, 'vkey', kw);
    let parsed: { name: string };
    try { parsed = parseCosignatureKey(vkey); } catch (e) { throw new TrustRootError(`${kw}.vkey: ${(e as Error).message}`); }
    if (parsed.name !== name) throw new TrustRootError(`${kw}: vkey is named ${parsed.name}, not ${name}`);
    if (name === origin) throw new TrustRootError(`${kw}: a witness cannot be named like the log origin`);
    return { name, vkey };
  });
  if (new Set(witnessKeys.map((k) => k.name)).size !== witnessKeys.length) throw new TrustRootError(`${w}.witnesses.keys names a witness twice`);
  if (new Set(witnessKeys.map((k) => k.vkey.slice(k.vkey.indexOf('+', k.name.length + 1) + 1))).size !== witnessKeys.length) {
    throw new TrustRootError(`${w}.witnesses.keys lists the same public key twice (one key counts once towards k)`);
  }
  const witnessK = policyK(wit, witnessKeys.length, `${w}.witnesses`);

  const tsa = json.tsa;
  if (!isObject(tsa)) throw new TrustRootError(`${w}.tsa must be an object {k, certificates}`);
  onlyKeys(tsa, ['k', 'certificates'], `${w}.tsa`);
  const certificates = arrayField(tsa, 'certificates', `${w}.tsa`).map((v, i) => tsaCertificate(v, `${w}.tsa.certificates[${i}]`));
  if (new Set(certificates.map((c) => new X509Certificate(c).fingerprint256)).size !== certificates.length) throw new TrustRootError(`${w}.tsa.certificates lists a certificate twice`);
  const tsaK = policyK(tsa, certificates.length, `${w}.tsa`);

  const intakeKeys = json.intake_keys === undefined ? undefined : arrayField(json, 'intake_keys', w).map((v, i) => {
    const kw = `${w}.intake_keys[${i}]`;
    if (!isObject(v)) throw new TrustRootError(`${kw} must be an object {keyid, public_key}`);
    onlyKeys(v, ['keyid', 'public_key'], kw);
    const keyid = stringField(v, 'keyid', kw);
    if (!/^[\x21-\x7e]{1,256}$/.test(keyid)) throw new TrustRootError(`${kw}.keyid must be 1-256 printable ASCII characters without spaces`);
    const pem = stringField(v, 'public_key', kw);
    let key;
    try { key = createPublicKey({ key: pem, format: 'pem' }); } catch { throw new TrustRootError(`${kw}.public_key is not a parsable PEM (SPKI) public key`); }
    if (key.asymmetricKeyType !== 'ed25519') throw new TrustRootError(`${kw}.public_key must be an Ed25519 key`);
    return { keyid, public_key: pem };
  });
  if (intakeKeys && new Set(intakeKeys.map((k) => k.keyid)).size !== intakeKeys.length) throw new TrustRootError(`${w}.intake_keys lists a keyid twice`);
  let provenancePolicy: TrustRoot['provenance_policy'];
  if (json.provenance_policy !== undefined) {
    const pp = json.provenance_policy;
    const pw = `${w}.provenance_policy`;
    if (!isObject(pp)) throw new TrustRootError(`${pw} must be an object {top_frames, min_completeness}`);
    onlyKeys(pp, ['top_frames', 'min_completeness'], pw);
    const n = pp.top_frames;
    const min = pp.min_completeness;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 10_000) throw new TrustRootError(`${pw}.top_frames must be a whole number from 1 to 10000`);
    if (typeof min !== 'number' || !(min >= 0 && min <= 1)) throw new TrustRootError(`${pw}.min_completeness must be a number from 0 to 1`);
    provenancePolicy = { top_frames: n, min_completeness: min };
  }

  return {
    type: TRUST_ROOT_TYPE, tenant, origin, log_keys: logKeys, rotations,
    witnesses: { k: witnessK, keys: witnessKeys }, tsa: { k: tsaK, certificates },
    ...(intakeKeys ? { intake_keys: intakeKeys } : {}),
    ...(provenancePolicy ? { provenance_policy: provenancePolicy } : {}),
  };
}

/** Parse trust-root file text (any JSON formatting). */
export function parseTrustRootText(text: string | Uint8Array): TrustRoot {
  let v: unknown;
  try { v = JSON.parse(typeof text === 'string' ? text : Buffer.from(text).toString('utf8')); } catch (e) {
    throw new TrustRootError(`trust root is not JSON: ${(e as Error).message}`);
  }
  return parseTrustRoot(v);
}

/** The canonical serialisation (RFC 8785 JSON): same trust root, same bytes. */
export function serializeTrustRoot(root: TrustRoot): Buffer {
  return canonicalBytes(parseTrustRoot(root));
}

/** SHA-256 (hex) of the canonical serialisation: a short fingerprint to compare roots by. */
export const trustRootDigest = (root: TrustRoot): string => sha256Hex(serializeTrustRoot(root));

export interface TrustPolicy {
  witnesses?: TrustRoot['witnesses']; tsa?: TrustRoot['tsa'];
  /** The tenant's intake trust keys (config intake.trust), pinned for audit bundles' provenance envelopes. */
  intakeKeys?: IntakeKeyPin[];
  /** The tenant's join-completeness policy (config provenance), recorded for audit bundles. */
  provenancePolicy?: { top_frames: number; min_completeness: number };
}

/**
 * The trust root of a tenant's log as the operator's store knows it: origin and genesis key of the
 * latest sealed checkpoint's key schedule, with every rotation up to it pinned. Undefined before
 * the first seal. Witness and TSA policy come from configuration.
 */
export async function exportTrustRoot(store: EvidenceStore, tenant: string, policy: TrustPolicy = {}): Promise<TrustRoot | undefined> {
  const reader = new LogReader(store, tenant);
  const sizes = await reader.sealedSizes();
  const size = sizes[sizes.length - 1];
  if (size === undefined) return undefined;
  const cp = await reader.checkpointAt(size);
  if (!cp) throw new TrustRootError(`tenant ${tenant}: checkpoints/${size} is missing`);
  const schedule = await reader.keySchedule(size);
  return parseTrustRoot({
    type: TRUST_ROOT_TYPE, tenant, origin: cp.checkpoint.origin,
    log_keys: [schedule[0]!.verifier.verifierKey],
    rotations: schedule.slice(1).map((k, i) => ({ previous_key: schedule[i]!.verifier.verifierKey, new_key: k.verifier.verifierKey, valid_from_size: k.validFrom })),
    witnesses: policy.witnesses ?? { k: 0, keys: [] },
    tsa: policy.tsa ?? { k: 0, certificates: [] },
    ...(policy.intakeKeys?.length ? { intake_keys: [...policy.intakeKeys].sort((a, b) => (a.keyid < b.keyid ? -1 : a.keyid > b.keyid ? 1 : 0)) } : {}),
    ...(policy.provenancePolicy ? { provenance_policy: policy.provenancePolicy } : {}),
  });
}

/**
 * A tenant's trust policy with its intake trust keys and join-completeness policy pinned (for audit
 * bundles). Both are added only when the tenant has intake keys configured: the trust roots of
 * other tenants keep their bytes.
 */
export function withIntakePins(base: TrustPolicy, intakeKeys: readonly { keyid: string; publicKey: string }[] | undefined,
  policy: { topFrames: number; minCompleteness: number }): TrustPolicy {
  if (!intakeKeys?.length) return base;
  return { ...base, intakeKeys: intakeKeys.map((k) => ({ keyid: k.keyid, public_key: k.publicKey })),
    provenancePolicy: { top_frames: policy.topFrames, min_completeness: policy.minCompleteness } };
}
