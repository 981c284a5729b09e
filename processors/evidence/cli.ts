// Functions behind `stella forensic verify <bundle>` and `stella forensic attest show <bundle|envelope>`.
// Offline: they read one local file and touch no network. Argument parsing lives in the CLI.
import { promises as fsp } from 'node:fs';
import { causeExitCode, EXIT_OK } from './causes.ts';
import { verifyBundle, type Manifest, type VerifyProgress, type VerifyResult } from './bundle.ts';
import { parseEnvelope, verifyEnvelope } from './dsse.ts';
import { makeVerifier, parseVerifierKey, type Verifier } from './note.ts';
import { KeyFileError, KeyRotationPendingError, writePendingKey } from './keys.ts';
import { tenantKeyFile } from './tenant-keys.ts';
import type { SegmentStatement } from './statement.ts';
import type { EvidenceStore } from './store.ts';
import { gunzip, readTar } from './tar.ts';
import { TrustRootError, exportTrustRoot, parseTrustRootText, serializeTrustRoot, type TrustPolicy, type TrustRoot } from './trust-root.ts';

export { causeExitCode } from './causes.ts';

export interface ForensicVerifyOutcome { result: VerifyResult; exitCode: number; seconds: number }

export interface ForensicVerifyOptions {
  onProgress?: (p: VerifyProgress) => void;
  /** The pinned trust root (`--trust <file>` / STELLA_TRUST_ROOT, read with `readTrustRootFile`). */
  trustRoot?: TrustRoot;
  /** `--trusted-key <vkey>` (repeatable). */
  trustedKeys?: string[];
}

export async function forensicVerify(file: string, opts: ForensicVerifyOptions = {}): Promise<ForensicVerifyOutcome> {
  const started = performance.now();
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(file);
  } catch (e) {
    const result: VerifyResult = { ok: false, cause: 'BUNDLE_CORRUPT', detail: `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
    return { result, exitCode: causeExitCode.BUNDLE_CORRUPT, seconds: 0 };
  }
  const result = verifyBundle(bytes, {
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.trustRoot ? { trustRoot: opts.trustRoot } : {}),
    ...(opts.trustedKeys ? { trustedKeys: opts.trustedKeys } : {}),
  });
  return { result, exitCode: result.ok ? EXIT_OK : causeExitCode[result.cause], seconds: (performance.now() - started) / 1000 };
}

/** Read and strictly parse a trust-root file; errors name the file and the rule (TrustRootError). */
export async function readTrustRootFile(file: string): Promise<TrustRoot> {
  let text: string;
  try { text = await fsp.readFile(file, 'utf8'); } catch (e) {
    throw new TrustRootError(`cannot read trust root ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try { return parseTrustRootText(text); } catch (e) { throw new TrustRootError(`${file}: ${(e as Error).message}`); }
}

/**
 * `stella forensic trust export --tenant T`: the tenant's trust root from the local evidence store
 * (canonical JSON). Exit 1 when the tenant has no sealed log yet.
 */
export async function trustExport(o: { store: EvidenceStore; tenant: string; policy?: TrustPolicy }): Promise<{ exitCode: number; stdout: string; stderr: string; root?: TrustRoot }> {
  const root = await exportTrustRoot(o.store, o.tenant, o.policy);
  if (!root) return { exitCode: 1, stdout: '', stderr: `stella: tenant ${o.tenant} has no sealed evidence log here yet, so there is no key to pin\n` };
  return { exitCode: 0, stdout: `${serializeTrustRoot(root).toString('utf8')}\n`, stderr: '', root };
}

export interface Attestation {
  size: number;
  sealedAt: string;
  tenant: string;
  previousSize: number;
  rootHex: string;
  signedBy: string; // DSSE key id: <name>+<hex8>
  /** True when a signature verified against a key the bundle (or the statement itself) names. */
  signatureVerified: boolean;
  kafka: SegmentStatement['predicate']['kafka'];
  statement: SegmentStatement;
}

/** The statements in a bundle (every envelope) or in one `.dsse.json` envelope, and who signed them when. */
export async function attestShow(file: string): Promise<{ attestations: Attestation[]; text: string }> {
  const bytes = await fsp.readFile(file);
  const envelopes: Uint8Array[] = [];
  let keys: Verifier[] = [];
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    const files = readTar(gunzip(bytes));
    for (const f of files) if (/^envelopes\/\d+\.dsse\.json$/.test(f.path)) envelopes.push(f.bytes);
    const manifest = files.find((f) => f.path === 'manifest.json');
    if (manifest) keys = (JSON.parse(Buffer.from(manifest.bytes).toString('utf8')) as Manifest).keys.map((k) => parseVerifierKey(k.verifier_key));
  } else {
    envelopes.push(bytes);
  }
  const attestations = envelopes.map((b) => {
    const env = parseEnvelope(b);
    const statement = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as SegmentStatement;
    const p = statement.predicate;
    // A lone envelope only carries its own claim of who signed it: check it against that key, and say so.
    const candidates = keys.length ? keys : [parseVerifierKey(p.signing_key.verifier_key)];
    const v = verifyEnvelope(b, candidates);
    return {
      size: p.new.size, sealedAt: p.sealed_at, tenant: p.tenant, previousSize: p.previous.size, rootHex: p.new.root,
      signedBy: env.signatures[0]!.keyid, signatureVerified: v.ok, kafka: p.kafka, statement,
    };
  }).sort((a, b) => a.size - b.size);
  const text = attestations.map((a) => [
    `segment ${a.previousSize}→${a.size} of tenant ${a.tenant}`,
    `  sealed at   ${a.sealedAt}`,
    `  signed by   ${a.signedBy} (${a.signatureVerified ? 'signature verified' : 'SIGNATURE NOT VERIFIED'}${keys.length ? '' : ', against the key the statement names'})`,
    `  root        ${a.rootHex}`,
    ...a.kafka.map((k) => `  kafka       ${k.topic}[${k.partition}] ${k.fromOffset}..${k.toOffset}`),
    `  statement   ${JSON.stringify(a.statement, null, 2).split('\n').join('\n              ')}`,
  ].join('\n')).join('\n\n');
  return { attestations, text };
}

export interface KeysRotateOptions {
  /** The runner's key file (evidence.keyFile, or the development key under the data dir). */
  keyFile: string;
  /** Checkpoint origin (= note key name) of each tenant to print the new verifier key for. */
  origins: { tenant: string; origin: string }[];
}

export interface RotatedKey { tenant: string; name: string; key_id: string; verifier_key: string }

/**
 * `stella keys rotate`: write the next signing key as `<keyFile>.next` for the evidence runner to
 * pick up (keys.ts "Live rotation"), and return each tenant's new note verifier key. The key is
 * one for every tenant; its key id differs per tenant because the key name is the tenant's origin.
 */
export async function keysRotate(o: KeysRotateOptions): Promise<{ pendingFile: string; keys: RotatedKey[] }> {
  const { file, publicKey } = await writePendingKey(o.keyFile);
  // SPKI DER of Ed25519 = 12-byte prefix + the 32-byte public key.
  const raw = publicKey.subarray(publicKey.length - 32);
  const keys = o.origins.map(({ tenant, origin }) => {
    const v = makeVerifier(origin, raw);
    return { tenant, name: v.name, key_id: v.keyIdHex, verifier_key: v.verifierKey };
  });
  return { pendingFile: file, keys };
}

export interface TenantKeyRotated extends RotatedKey { key_file: string; pending_file: string }

/**
 * `stella keys rotate [--tenant T]` with per-tenant keys: a next key beside each tenant's key
 * (`<keyDir>/<tenant>.pem.next`, 0600), applied by the evidence processor at its next tick. A
 * tenant whose key does not exist yet (nothing sealed) is skipped; one already pending is a problem.
 */
export async function tenantKeysRotate(o: { keyDir: string; origins: { tenant: string; origin: string }[] }): Promise<{ keys: TenantKeyRotated[]; skipped: string[]; problems: string[] }> {
  const keys: TenantKeyRotated[] = [];
  const skipped: string[] = [];
  const problems: string[] = [];
  const one = async ({ tenant, origin }: { tenant: string; origin: string }): Promise<TenantKeyRotated | { skipped: string } | { problem: string }> => {
    const file = tenantKeyFile(o.keyDir, tenant);
    try {
      const { file: pending, publicKey } = await writePendingKey(file);
      const v = makeVerifier(origin, publicKey.subarray(publicKey.length - 32));
      return { tenant, name: v.name, key_id: v.keyIdHex, verifier_key: v.verifierKey, key_file: file, pending_file: pending };
    } catch (e) {
      if (e instanceof KeyFileError && !(await fsp.stat(file).then(() => true, () => false))) return { skipped: tenant };
      if (e instanceof KeyRotationPendingError || e instanceof KeyFileError) return { problem: `tenant ${tenant}: ${e.message}` };
      throw e;
    }
  };
  // Each key is fsynced; many tenants at once overlap those waits. Output keeps the given order.
  for (let i = 0; i < o.origins.length; i += 32) {
    for (const r of await Promise.all(o.origins.slice(i, i + 32).map(one))) {
      if ('skipped' in r) skipped.push(r.skipped);
      else if ('problem' in r) problems.push(r.problem);
      else keys.push(r);
    }
  }
  return { keys, skipped, problems };
}
