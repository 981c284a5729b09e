// Signing keys and key rotation.
// Key files hold an Ed25519 private key as PKCS#8 PEM (`openssl genpkey -algorithm ed25519`),
// mode 0600 (0400 also fine): any group/other permission bit makes loading fail. Key material is
// never logged; the loaded Signer prints as `[Ed25519 signer <name>+<id>]`.
//
// Rotation: the log itself records key changes. A rotation entry is canonical JSON
//   {"type":"stella.evidence.key-rotation/v1","previous_key":<vkey>,"new_key":<vkey>,"valid_from_size":S}
// appended as the last entry of a seal signed by the previous key (that checkpoint has size S-1);
// checkpoints of size ≥ S must be signed by the new key, and the previous key is valid only for
// sizes below S.
import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { logger } from '../../lib/log.ts';
import { canonicalBytes } from './jcs.ts';
import { parseVerifierKey, signerFromKeyObject, type Signer, type Verifier } from './note.ts';

const log = logger('evidence');

export class KeyFileError extends Error {
  override readonly name = 'KeyFileError';
}

/** Load an Ed25519 signing key (PKCS#8 PEM) whose note key name is `name`. */
export async function loadSigningKey(file: string, name: string): Promise<Signer> {
  const st = await fsp.stat(file);
  if (!st.isFile()) throw new KeyFileError(`signing key ${file} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new KeyFileError(`signing key ${file} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}; it must not be readable by group or others (chmod 600)`);
  }
  const pem = await fsp.readFile(file, 'utf8');
  let signer: Signer;
  try {
    signer = signerFromKeyObject(name, createPrivateKey({ key: pem, format: 'pem' }));
  } catch (e) {
    // The parser's message never includes key bytes, but keep ours generic anyway.
    throw new KeyFileError(`signing key ${file} is not an Ed25519 PKCS#8 PEM private key (${(e as Error).name})`);
  }
  log.info({ key_name: signer.name, key_id: signer.keyIdHex }, 'evidence signing key loaded');
  return signer;
}

export const KEY_ROTATION_TYPE = 'stella.evidence.key-rotation/v1';

export interface KeyRotationEntry { type: typeof KEY_ROTATION_TYPE; previous_key: string; new_key: string; valid_from_size: number }

export function keyRotationEntry(previous: Verifier, next: Verifier, validFromSize: number): Buffer {
  const e: KeyRotationEntry = { type: KEY_ROTATION_TYPE, previous_key: previous.verifierKey, new_key: next.verifierKey, valid_from_size: validFromSize };
  return canonicalBytes(e);
}

/** Parse an entry as a rotation entry; undefined when it is some other entry. */
export function parseKeyRotation(entry: Uint8Array): KeyRotationEntry | undefined {
  let v: unknown;
  try { v = JSON.parse(Buffer.from(entry).toString('utf8')); } catch { return undefined; }
  const r = v as Partial<KeyRotationEntry> | null;
  if (!r || typeof r !== 'object' || r.type !== KEY_ROTATION_TYPE) return undefined;
  if (typeof r.previous_key !== 'string' || typeof r.new_key !== 'string' || !Number.isSafeInteger(r.valid_from_size)) return undefined;
  return r as KeyRotationEntry;
}

/** A key and the checkpoint sizes it may sign: [validFrom, validUntil) (validUntil null = open). */
export interface KeyValidity { verifier: Verifier; validFrom: number; validUntil: number | null; rotationIndex: number | null }

export class KeyScheduleError extends Error {
  override readonly name = 'KeyScheduleError';
}

/**
 * Build the key schedule from the genesis key and the rotation entries (with their log indices),
 * in log order. Each rotation must name the then-current key as previous, and become valid at
 * exactly index + 2 (the checkpoint at index + 1 that holds it is signed by the previous key).
 */
export function keySchedule(genesis: Verifier, rotations: readonly { index: number; entry: KeyRotationEntry }[]): KeyValidity[] {
  const out: KeyValidity[] = [{ verifier: genesis, validFrom: 1, validUntil: null, rotationIndex: null }];
  for (const r of [...rotations].sort((a, b) => a.index - b.index)) {
    const current = out[out.length - 1]!;
    if (r.entry.previous_key !== current.verifier.verifierKey) throw new KeyScheduleError(`rotation at index ${r.index} names previous key ${r.entry.previous_key}, but ${current.verifier.verifierKey} was current`);
    if (r.entry.valid_from_size !== r.index + 2) throw new KeyScheduleError(`rotation at index ${r.index} must be valid from size ${r.index + 2}, says ${r.entry.valid_from_size}`);
    current.validUntil = r.entry.valid_from_size;
    out.push({ verifier: parseVerifierKey(r.entry.new_key), validFrom: r.entry.valid_from_size, validUntil: null, rotationIndex: r.index });
  }
  return out;
}

/** The key that must sign a checkpoint of `size`. */
export function keyForSize(schedule: readonly KeyValidity[], size: number): KeyValidity | undefined {
  return schedule.find((k) => size >= k.validFrom && (k.validUntil === null || size < k.validUntil))
    ?? (size === 0 ? schedule[0] : undefined);
}

// Live rotation (docs/evidence.md "Rotation"): `stella keys rotate` writes a new key next to the
// current one as `<keyFile>.next` (mode 0600, never overwriting one already pending). The runner
// polls for it on its seal tick, rotates each open tenant's log at that tick (and a tenant opened
// later right after opening), and once every tenant in the store holds the new key, promotes it:
// the current file is kept as `<keyFile>.retired-<stamp>` (a hard link first, so a crash between the
// steps never leaves no key) and `<keyFile>.next` replaces `<keyFile>`.

/** Where a pending (next) signing key waits for the runner. */
export const pendingKeyFile = (keyFile: string): string => `${keyFile}.next`;

export class KeyRotationPendingError extends Error {
  override readonly name = 'KeyRotationPendingError';
}

/** Create a new Ed25519 key as `<keyFile>.next` (0600); refuses when one is pending or no current key exists. Returns its public key (SPKI DER). */
export async function writePendingKey(keyFile: string): Promise<{ file: string; publicKey: Buffer }> {
  const st = await fsp.stat(keyFile).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new KeyFileError(`no signing key at ${keyFile} yet: start the evidence processor once (it creates a development key) or configure evidence.keyFile`);
    throw e;
  });
  if (!st.isFile()) throw new KeyFileError(`signing key ${keyFile} is not a regular file`);
  const next = pendingKeyFile(keyFile);
  if (await fsp.stat(next).then(() => true, () => false)) throw new KeyRotationPendingError(`a rotation is already pending (${next}); the evidence processor applies it at its next seal tick`);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const tmp = path.join(path.dirname(next), `.${path.basename(next)}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await fsp.open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
    await fh.sync();
    await fh.chmod(0o600);
  } finally { await fh.close(); }
  try {
    // link() never replaces: two concurrent rotations cannot both win, and readers see a whole file.
    await fsp.link(tmp, next);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new KeyRotationPendingError(`a rotation is already pending (${next})`);
    throw e;
  } finally {
    await fsp.unlink(tmp).catch(() => undefined);
  }
  log.info({ file: next }, 'evidence signing key rotation requested');
  return { file: next, publicKey: publicKey.export({ format: 'der', type: 'spki' }) as Buffer };
}

/** Make the pending key the current one, keeping the old file as `<keyFile>.retired-<stamp>`. */
export async function promotePendingKey(keyFile: string, now: Date = new Date()): Promise<string> {
  // Never promote a key that would not load (wrong mode, not a key): with no log to rotate yet,
  // nothing else has tried it, and after the rename it would stop every later start.
  await loadSigningKey(pendingKeyFile(keyFile), 'stella-key-check');
  const retired = `${keyFile}.retired-${now.toISOString().replace(/[-:]/g, '')}`;
  await fsp.link(keyFile, retired).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'EEXIST') throw e; });
  await fsp.rename(pendingKeyFile(keyFile), keyFile);
  log.info({ retired }, 'evidence signing key rotation complete; the previous key file is retired');
  return retired;
}
