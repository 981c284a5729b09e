// Witnesses: C2SP tlog-witness (the `add-checkpoint` protocol) and tlog-cosignature (Ed25519,
// signature type 0x04, timestamped).
//
//   cosigner key id:   SHA-256(<name> ‖ 0x0A ‖ 0x04 ‖ 32-byte public key)[:4]
//   verifier key:      <name>+<hex8 key id>+<base64(0x04 ‖ public key)>
//   signature line:    — <name> base64(key id(4) ‖ u64 BE timestamp ‖ Ed25519 signature(64))
//   signed message:    "cosignature/v1\ntime <timestamp>\n" ‖ checkpoint note text (no signature lines)
//   add-checkpoint:    POST <url>/add-checkpoint, body "old <size>\n" ‖ proof lines ‖ "\n" ‖ signed checkpoint
//                      200: cosignature lines; 409 (text/x.tlog.size): "<witness's latest size>\n"
// Specs: https://c2sp.org/tlog-witness, https://c2sp.org/tlog-cosignature, https://c2sp.org/signed-note
//
// The pure part (keys, lines, messages, the k-of-n policy) has no I/O; WitnessClient is the thin
// HTTP client, one per configured witness.
import { createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { fromB64Strict, sha256, toB64 } from './hash.ts';
import { NoteError, parseNote, validateKeyName, type Signer } from './note.ts';

export const ALG_COSIGNATURE_V1 = 0x04;
const EM_DASH_PREFIX = '\u2014 ';
const MAX_TIMESTAMP = (1n << 63n) - 1n;
/** tlog-witness: a client MUST NOT send more than 63 consistency proof lines. */
export const MAX_PROOF_LINES = 63;

export class WitnessError extends Error {
  override readonly name = 'WitnessError';
}

export interface CosignatureVerifier {
  readonly name: string;
  readonly keyId: Buffer;
  readonly keyIdHex: string;
  readonly publicKey: Buffer;
  /** `<name>+<hex8>+<base64(0x04 ‖ pubkey)>` */
  readonly verifierKey: string;
  verifyRaw(message: Uint8Array, signature: Uint8Array): boolean;
}

export function cosignerKeyId(name: string, publicKey: Uint8Array): Buffer {
  if (publicKey.length !== 32) throw new NoteError('Ed25519 public key must be 32 bytes');
  return sha256(Buffer.concat([Buffer.from(name, 'utf8'), Buffer.from([0x0a, ALG_COSIGNATURE_V1]), publicKey])).subarray(0, 4);
}

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function makeCosignatureVerifier(name: string, publicKey: Uint8Array): CosignatureVerifier {
  validateKeyName(name);
  const id = cosignerKeyId(name, publicKey);
  const pub = Buffer.from(publicKey);
  const keyObj: KeyObject = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, pub]), format: 'der', type: 'spki' });
  return {
    name, keyId: id, keyIdHex: id.toString('hex'), publicKey: pub,
    verifierKey: `${name}+${id.toString('hex')}+${toB64(Buffer.concat([Buffer.from([ALG_COSIGNATURE_V1]), pub]))}`,
    verifyRaw: (message, signature) => signature.length === 64 && edVerify(null, message, keyObj, signature),
  };
}

/** Parse a witness verifier key (signature type 0x04), checking its key id. */
export function parseCosignatureVerifierKey(vkey: string): CosignatureVerifier {
  const parts = vkey.split('+');
  if (parts.length < 3) throw new NoteError('witness verifier key must be <name>+<hex id>+<base64 key>');
  const [name, idHex] = parts as [string, string];
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new NoteError('witness verifier key id must be 8 lowercase hex digits');
  const key = fromB64Strict(parts.slice(2).join('+'));
  if (!key || key.length !== 33) throw new NoteError('witness verifier key must be base64(0x04 ‖ 32-byte Ed25519 public key)');
  if (key[0] !== ALG_COSIGNATURE_V1) throw new NoteError(`witness verifier key has signature type 0x${key[0]!.toString(16).padStart(2, '0')}, expected 0x04 (tlog-cosignature/v1 Ed25519)`);
  const v = makeCosignatureVerifier(name, key.subarray(1));
  if (v.keyIdHex !== idHex) throw new NoteError(`witness verifier key id ${idHex} does not match the key (${v.keyIdHex})`);
  return v;
}

/** The message a v1 cosignature signs: header, time line, then the checkpoint note text. */
export function cosignedMessage(checkpointText: string, timestamp: bigint): Buffer {
  if (!checkpointText.endsWith('\n')) throw new NoteError('checkpoint text must end in a newline');
  return Buffer.from(`cosignature/v1\ntime ${timestamp}\n${checkpointText}`, 'utf8');
}

export interface Cosignature { name: string; keyId: Buffer; timestamp: bigint; signature: Buffer; line: string }

/** Parse one note signature line as a v1 cosignature (format only; nothing verified). */
export function parseCosignatureLine(line: string): Cosignature {
  const l = line.endsWith('\n') ? line.slice(0, -1) : line;
  if (!l.startsWith(EM_DASH_PREFIX)) throw new NoteError('cosignature line must start with "— "');
  const rest = l.slice(EM_DASH_PREFIX.length);
  const sp = rest.indexOf(' ');
  if (sp <= 0) throw new NoteError('cosignature line must be "— <name> <base64>"');
  const name = rest.slice(0, sp);
  validateKeyName(name);
  const blob = fromB64Strict(rest.slice(sp + 1));
  if (!blob || blob.length !== 4 + 8 + 64) throw new NoteError(`cosignature by ${name} must be base64(key id ‖ timestamp ‖ 64-byte signature)`);
  return { name, keyId: blob.subarray(0, 4), timestamp: blob.readBigUInt64BE(4), signature: blob.subarray(12), line: `${l}\n` };
}

/** Split a block of signature lines ("— …\n" each) into lines, each ending in "\n". */
export function splitSignatureLines(text: string): string[] {
  if (text === '') return [];
  if (!text.endsWith('\n')) throw new NoteError('signature lines must each end in a newline');
  return text.slice(0, -1).split('\n').map((l) => `${l}\n`);
}

export type CosignatureVerdict = { ok: true; timestamp: bigint } | { ok: false; detail: string };

/** Verify one cosignature line against a verifier for the checkpoint's note text. */
export function verifyCosignature(checkpointText: string, line: string, v: CosignatureVerifier): CosignatureVerdict {
  let c: Cosignature;
  try { c = parseCosignatureLine(line); } catch (e) { return { ok: false, detail: (e as Error).message }; }
  if (c.name !== v.name || !c.keyId.equals(v.keyId)) return { ok: false, detail: `cosignature is by ${c.name}+${c.keyId.toString('hex')}, not ${v.name}+${v.keyIdHex}` };
  // tlog-witness: the timestamp MUST NOT be zero; tlog-cosignature: it MUST NOT exceed 2^63-1.
  if (c.timestamp === 0n || c.timestamp > MAX_TIMESTAMP) return { ok: false, detail: `cosignature by ${v.name}+${v.keyIdHex} has timestamp ${c.timestamp} (must be 1..2^63-1)` };
  if (!v.verifyRaw(cosignedMessage(checkpointText, c.timestamp), c.signature)) return { ok: false, detail: `cosignature by ${v.name}+${v.keyIdHex} does not verify` };
  return { ok: true, timestamp: c.timestamp };
}

/** Produce a v1 cosignature line (tests and local cosigners: the signer's raw Ed25519 key signs). */
export function cosign(checkpointText: string, name: string, signer: Pick<Signer, 'sign' | 'publicKey'>, timestamp: bigint): string {
  const id = cosignerKeyId(name, signer.publicKey);
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(timestamp);
  const sig = signer.sign(cosignedMessage(checkpointText, timestamp));
  return `${EM_DASH_PREFIX}${name} ${toB64(Buffer.concat([id, ts, sig]))}\n`;
}

/** Raw Ed25519 signing for `cosign` from a KeyObject (no note key-name rules apply to the signer). */
export function rawEd25519Signer(privateKey: KeyObject): Pick<Signer, 'sign' | 'publicKey'> {
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { publicKey: spki.subarray(spki.length - 32), sign: (m: Uint8Array) => edSign(null, m, privateKey) };
}

// ---- the k-of-n policy --------------------------------------------------------------------------

export interface WitnessPolicy { k: number; keys: readonly { name: string; vkey: string }[] }

export type PolicyVerdict =
  | { ok: true; cosignedBy: { name: string; keyIdHex: string; timestamp: bigint }[] }
  | { ok: false; reason: 'invalid' | 'unmet' | 'malformed'; detail: string };

/**
 * Check a checkpoint's cosignatures against a k-of-n witness policy. Lines from keys not in the
 * policy are ignored (tlog-witness: clients MUST ignore unknown keys); a line whose name and key id
 * match a policy key but whose signature fails rejects the whole set (fail closed, as signed-note
 * treats a bad signature from a known key); each policy key counts once.
 */
export function checkWitnessPolicy(checkpointText: string, lines: readonly string[], policy: WitnessPolicy): PolicyVerdict {
  if (!Number.isSafeInteger(policy.k) || policy.k < 0) return { ok: false, reason: 'malformed', detail: `witness policy k must be a non-negative integer (got ${policy.k})` };
  let verifiers: CosignatureVerifier[];
  try { verifiers = policy.keys.map((k) => parseCosignatureVerifierKey(k.vkey)); } catch (e) { return { ok: false, reason: 'malformed', detail: `witness policy: ${(e as Error).message}` }; }
  if (policy.k > verifiers.length) return { ok: false, reason: 'malformed', detail: `witness policy needs ${policy.k} of ${verifiers.length} witnesses` };
  const cosignedBy = new Map<string, { name: string; keyIdHex: string; timestamp: bigint }>();
  for (const line of lines) {
    let c: Cosignature;
    try { c = parseCosignatureLine(line); } catch (e) { return { ok: false, reason: 'malformed', detail: (e as Error).message }; }
    const v = verifiers.find((x) => x.name === c.name && x.keyId.equals(c.keyId));
    if (!v) continue;
    const r = verifyCosignature(checkpointText, line, v);
    if (!r.ok) return { ok: false, reason: 'invalid', detail: r.detail };
    if (!cosignedBy.has(v.verifierKey)) cosignedBy.set(v.verifierKey, { name: v.name, keyIdHex: v.keyIdHex, timestamp: r.timestamp });
  }
  if (cosignedBy.size < policy.k) {
    return { ok: false, reason: 'unmet', detail: `${cosignedBy.size} of the required ${policy.k} witness cosignatures (trusted witnesses: ${verifiers.map((v) => v.name).join(', ') || 'none'})` };
  }
  return { ok: true, cosignedBy: [...cosignedBy.values()] };
}

// ---- add-checkpoint -----------------------------------------------------------------------------

/** The add-checkpoint request body. */
export function addCheckpointBody(oldSize: number, proof: readonly Uint8Array[], signedCheckpoint: string): string {
  if (!Number.isSafeInteger(oldSize) || oldSize < 0) throw new WitnessError(`old size ${oldSize} is not a non-negative integer`);
  if (proof.length > MAX_PROOF_LINES) throw new WitnessError(`consistency proof has ${proof.length} lines (at most ${MAX_PROOF_LINES})`);
  if (oldSize === 0 && proof.length > 0) throw new WitnessError('a proof from size 0 must be empty');
  parseNote(signedCheckpoint); // a well-formed signed note, or throw
  return `old ${oldSize}\n${proof.map((h) => `${toB64(h)}\n`).join('')}\n${signedCheckpoint}`;
}

/** The body of a 409 answer: the witness's latest cosigned size. */
export function parseConflictBody(text: string): number {
  const m = /^(0|[1-9]\d*)\n?$/.exec(text);
  if (!m || !Number.isSafeInteger(Number(m[1]))) throw new WitnessError(`409 body is not a tree size: ${JSON.stringify(text.slice(0, 40))}`);
  return Number(m[1]);
}

export interface WitnessConfig { name: string; url: string; vkey: string }

export type SubmitResult =
  | { kind: 'cosigned'; line: string; timestamp: bigint; witnessSize: number }
  /** The witness has cosigned a larger tree than this checkpoint: this one can no longer be cosigned. */
  | { kind: 'superseded'; witnessSize: number };

export interface SubmitRequest {
  /** The signed checkpoint note as stored (checkpoints/<size>). */
  note: string;
  checkpointText: string;
  size: number;
  /** Consistency proof from `from` to `size` (the witness's last size). */
  proof(from: number): Promise<Uint8Array[]>;
}

/**
 * One configured witness. Remembers the witness's latest cosigned size (from our own stored
 * cosignatures at startup, corrected by 409 answers) so each request carries the right proof.
 */
export class WitnessClient {
  readonly name: string;
  readonly url: string;
  readonly verifier: CosignatureVerifier;
  /** The witness's latest cosigned size for this log, as far as we know (per origin). */
  private readonly known = new Map<string, number>();

  constructor(cfg: WitnessConfig, private readonly timeoutMs = 10_000) {
    this.verifier = parseCosignatureVerifierKey(cfg.vkey);
    if (this.verifier.name !== cfg.name) throw new WitnessError(`witness ${cfg.name}: its verifier key is named ${this.verifier.name}`);
    this.name = cfg.name;
    this.url = cfg.url.replace(/\/+$/, '');
  }

  knownSize(origin: string): number | undefined { return this.known.get(origin); }
  setKnownSize(origin: string, size: number): void { this.known.set(origin, size); }

  /**
   * Submit a checkpoint: with the proof from the witness's last size; on 409 retry once with the
   * size the witness names (catch-up). Throws WitnessError for anything else (down, 4xx/5xx, an
   * answer without a valid cosignature from this witness's key): the caller retries with backoff.
   */
  async submit(req: SubmitRequest): Promise<SubmitResult> {
    const origin = req.checkpointText.slice(0, req.checkpointText.indexOf('\n'));
    for (let attempt = 0; attempt < 3; attempt++) {
      const from = Math.min(this.known.get(origin) ?? 0, req.size);
      const proof = from === 0 || from === req.size ? [] : await req.proof(from);
      const res = await this.post(addCheckpointBody(from, proof, req.note));
      if (res.status === 409) {
        const ws = parseConflictBody(res.body);
        this.known.set(origin, ws);
        if (ws > req.size) return { kind: 'superseded', witnessSize: ws };
        continue;
      }
      if (res.status !== 200) throw new WitnessError(`witness ${this.name} answered ${res.status}: ${res.body.trim().slice(0, 200)}`);
      let lines: string[];
      try { lines = splitSignatureLines(res.body); } catch (e) { throw new WitnessError(`witness ${this.name}: ${(e as Error).message}`); }
      for (const line of lines) {
        let c: Cosignature;
        try { c = parseCosignatureLine(line); } catch { continue; } // other signature types: ignored
        if (c.name !== this.verifier.name || !c.keyId.equals(this.verifier.keyId)) continue;
        const v = verifyCosignature(req.checkpointText, line, this.verifier);
        if (!v.ok) throw new WitnessError(`witness ${this.name}: ${v.detail}`);
        this.known.set(origin, req.size);
        return { kind: 'cosigned', line: c.line, timestamp: v.timestamp, witnessSize: req.size };
      }
      throw new WitnessError(`witness ${this.name} answered 200 without a cosignature from ${this.verifier.verifierKey}`);
    }
    throw new WitnessError(`witness ${this.name} kept answering 409 for size ${req.size}`);
  }

  private async post(body: string): Promise<{ status: number; body: string }> {
    try {
      const res = await fetch(`${this.url}/add-checkpoint`, { method: 'POST', body, signal: AbortSignal.timeout(this.timeoutMs) });
      return { status: res.status, body: await res.text() };
    } catch (e) {
      throw new WitnessError(`witness ${this.name} unreachable: ${(e as Error).message}`);
    }
  }
}
