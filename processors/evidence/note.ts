// C2SP signed-note (Ed25519) and tlog-checkpoint.
//   note:        <text ending in \n>\n— <name> <base64(keyid(4) ‖ signature)>\n ...
//   key id:      SHA-256(name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key)[:4]
//   verifier:    <name>+<hex8 key id>+<base64(0x01 ‖ public key)>
//   checkpoint:  <origin>\n<size>\n<base64 root>\n[extension lines]
// Specs: https://c2sp.org/signed-note, https://c2sp.org/tlog-checkpoint
import { createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { HASH_SIZE, fromB64Strict, sha256, toB64 } from './hash.ts';

export const ALG_ED25519 = 0x01;
const EM_DASH_PREFIX = '\u2014 ';

export class NoteError extends Error {
  override readonly name = 'NoteError';
}

export function validateKeyName(name: string): void {
  if (name.length === 0 || /[\s+]/u.test(name) || /[\u0000-\u001f]/.test(name)) {
    throw new NoteError(`key name "${name}" must be non-empty, without spaces or '+'`);
  }
}

export function keyId(name: string, publicKey: Uint8Array): Buffer {
  if (publicKey.length !== 32) throw new NoteError('Ed25519 public key must be 32 bytes');
  return sha256(Buffer.concat([Buffer.from(name, 'utf8'), Buffer.from([0x0a, ALG_ED25519]), publicKey])).subarray(0, 4);
}

export interface Verifier {
  readonly name: string;
  readonly keyId: Uint8Array; // 4 bytes
  readonly keyIdHex: string;
  readonly publicKey: Uint8Array; // 32 bytes
  /** `<name>+<hex8>+<base64(0x01 ‖ pubkey)>` */
  readonly verifierKey: string;
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

/** A signing key. The private key stays inside a closure: it never appears in logs, JSON or inspect. */
export interface Signer extends Verifier {
  sign(message: Uint8Array): Buffer;
}

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function publicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

export function makeVerifier(name: string, publicKey: Uint8Array): Verifier {
  validateKeyName(name);
  const id = keyId(name, publicKey);
  const keyObj = publicKeyObject(publicKey);
  const pub = Buffer.from(publicKey);
  return {
    name, keyId: id, keyIdHex: id.toString('hex'), publicKey: pub,
    verifierKey: `${name}+${id.toString('hex')}+${toB64(Buffer.concat([Buffer.from([ALG_ED25519]), pub]))}`,
    verify: (message, signature) => signature.length === 64 && edVerify(null, message, keyObj, signature),
  };
}

/** Parse `<name>+<hex8>+<base64(0x01 ‖ pubkey)>`, checking the key id. */
export function parseVerifierKey(vkey: string): Verifier {
  const parts = vkey.split('+');
  // The base64 key may itself contain '+': name and id are the first two fields.
  if (parts.length < 3) throw new NoteError('verifier key must be <name>+<hex id>+<base64 key>');
  const [name, idHex] = parts as [string, string];
  const keyB64 = parts.slice(2).join('+');
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new NoteError('verifier key id must be 8 lowercase hex digits');
  const key = fromB64Strict(keyB64);
  if (!key || key.length !== 33 || key[0] !== ALG_ED25519) throw new NoteError('verifier key must be base64(0x01 ‖ 32-byte Ed25519 public key)');
  const v = makeVerifier(name, key.subarray(1));
  if (v.keyIdHex !== idHex) throw new NoteError(`verifier key id ${idHex} does not match the key (${v.keyIdHex})`);
  return v;
}

function attachRedaction<T extends object>(o: T, label: string): T {
  Object.defineProperty(o, inspect.custom, { value: () => label, enumerable: false });
  Object.defineProperty(o, 'toJSON', { value: () => label, enumerable: false });
  return o;
}

export function signerFromKeyObject(name: string, privateKey: KeyObject): Signer {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new NoteError(`signing key must be Ed25519, got ${privateKey.asymmetricKeyType}`);
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const v = makeVerifier(name, spki.subarray(spki.length - 32));
  return attachRedaction({ ...v, sign: (message: Uint8Array) => edSign(null, message, privateKey) }, `[Ed25519 signer ${v.name}+${v.keyIdHex}]`);
}

/** A signer from a raw 32-byte Ed25519 seed (RFC 8032 private key). */
export function signerFromSeed(name: string, seed: Uint8Array): Signer {
  if (seed.length !== 32) throw new NoteError('Ed25519 seed must be 32 bytes');
  return signerFromKeyObject(name, createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' }));
}

export interface NoteSignature { name: string; keyId: Uint8Array; signature: Uint8Array; line: string }
export interface ParsedNote { text: string; signatures: NoteSignature[] }

/** Sign `text` (which must end in a newline) as a signed note with one or more signers. */
export function signNote(text: string, signers: readonly Signer[]): string {
  checkNoteText(text);
  const msg = Buffer.from(text, 'utf8');
  const lines = signers.map((s) => `${EM_DASH_PREFIX}${s.name} ${toB64(Buffer.concat([s.keyId, s.sign(msg)]))}\n`);
  return `${text}\n${lines.join('')}`;
}

function checkNoteText(text: string): void {
  if (!text.endsWith('\n')) throw new NoteError('note text must end in a newline');
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) throw new NoteError('note text must not contain control characters other than newline');
}

/** Split a signed note into text and signature lines (format only; nothing is verified). */
export function parseNote(note: string): ParsedNote {
  if (!note.endsWith('\n')) throw new NoteError('signed note must end in a newline');
  const sep = note.lastIndexOf('\n\n');
  if (sep < 0) throw new NoteError('signed note has no blank line before its signatures');
  const text = note.slice(0, sep + 1);
  checkNoteText(text);
  const sigLines = note.slice(sep + 2, -1).split('\n');
  if (sigLines.length === 0 || sigLines[0] === '') throw new NoteError('signed note has no signatures');
  const signatures = sigLines.map((line) => {
    if (!line.startsWith(EM_DASH_PREFIX)) throw new NoteError('signature line must start with "— "');
    const rest = line.slice(EM_DASH_PREFIX.length);
    const sp = rest.indexOf(' ');
    if (sp <= 0) throw new NoteError('signature line must be "— <name> <base64>"');
    const name = rest.slice(0, sp);
    validateKeyName(name);
    const blob = fromB64Strict(rest.slice(sp + 1));
    if (!blob || blob.length < 5) throw new NoteError('signature must be base64(key id ‖ signature)');
    return { name, keyId: blob.subarray(0, 4), signature: blob.subarray(4), line };
  });
  return { text, signatures };
}

export type NoteVerdict =
  | { ok: true; text: string; verifiedBy: Verifier[] }
  | { ok: false; reason: 'unknown-key' | 'bad-signature' | 'malformed'; detail: string };

/**
 * Verify a signed note against known verifiers. Signatures from unknown keys (name and id not
 * both matching) are ignored; a known key whose signature fails rejects the note; at least one
 * known key must verify.
 */
export function verifyNote(note: string, verifiers: readonly Verifier[]): NoteVerdict {
  let parsed: ParsedNote;
  try { parsed = parseNote(note); } catch (e) { return { ok: false, reason: 'malformed', detail: (e as Error).message }; }
  const msg = Buffer.from(parsed.text, 'utf8');
  const verifiedBy: Verifier[] = [];
  for (const s of parsed.signatures) {
    const v = verifiers.find((k) => k.name === s.name && Buffer.compare(k.keyId, s.keyId) === 0);
    if (!v) continue;
    if (!v.verify(msg, s.signature)) return { ok: false, reason: 'bad-signature', detail: `signature by ${v.name}+${v.keyIdHex} does not verify` };
    verifiedBy.push(v);
  }
  if (verifiedBy.length === 0) {
    const names = parsed.signatures.map((s) => `${s.name}+${Buffer.from(s.keyId).toString('hex')}`).join(', ');
    return { ok: false, reason: 'unknown-key', detail: `no signature from a known key (signed by: ${names})` };
  }
  return { ok: true, text: parsed.text, verifiedBy };
}

export interface Checkpoint { origin: string; size: number; root: Uint8Array; extensions: string[] }

export function formatCheckpoint(c: Checkpoint): string {
  validateKeyName(c.origin);
  if (c.root.length !== HASH_SIZE) throw new NoteError('checkpoint root must be 32 bytes');
  return `${c.origin}\n${c.size}\n${toB64(c.root)}\n${c.extensions.map((l) => `${l}\n`).join('')}`;
}

export function parseCheckpoint(text: string): Checkpoint {
  const lines = text.split('\n');
  if (lines.length < 4 || lines[lines.length - 1] !== '') throw new NoteError('checkpoint must have origin, size and root lines, each ending in a newline');
  const [origin, sizeStr, rootB64] = lines as [string, string, string];
  if (origin === '') throw new NoteError('checkpoint origin is empty');
  if (!/^(0|[1-9]\d*)$/.test(sizeStr) || !Number.isSafeInteger(Number(sizeStr))) throw new NoteError(`checkpoint size "${sizeStr}" is not a decimal without leading zeroes`);
  const root = fromB64Strict(rootB64);
  if (!root || root.length !== HASH_SIZE) throw new NoteError('checkpoint root must be base64 of 32 bytes');
  const extensions = lines.slice(3, -1);
  if (extensions.some((l) => l === '')) throw new NoteError('checkpoint extension lines must not be empty');
  return { origin, size: Number(sizeStr), root, extensions };
}
