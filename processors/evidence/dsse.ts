// DSSE envelopes (https://github.com/secure-systems-lab/dsse) signed with Ed25519, carrying
// in-toto Statement v1 payloads. Envelopes are serialized as canonical JSON so that the same
// statement and key always give the same bytes (Ed25519 signatures are deterministic).
import { fromB64Strict, toB64 } from './hash.ts';
import { canonicalBytes } from './jcs.ts';
import type { Signer, Verifier } from './note.ts';

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

export interface DsseSignature { keyid: string; sig: string }
export interface DsseEnvelope { payload: string; payloadType: string; signatures: DsseSignature[] }

/** PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body; LEN in bytes, ASCII decimal. */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

/** The DSSE key id we set: the signed-note key name and id, `<name>+<hex8>`. */
export const dsseKeyId = (k: Verifier): string => `${k.name}+${k.keyIdHex}`;

export function signEnvelope(payloadType: string, payload: Uint8Array, signer: Signer): DsseEnvelope {
  return { payload: toB64(payload), payloadType, signatures: [{ keyid: dsseKeyId(signer), sig: toB64(signer.sign(pae(payloadType, payload))) }] };
}

export const serializeEnvelope = (e: DsseEnvelope): Buffer => canonicalBytes(e);

export type EnvelopeVerdict =
  | { ok: true; payload: Buffer; payloadType: string; signedBy: Verifier }
  | { ok: false; reason: 'malformed' | 'unknown-key' | 'bad-signature'; detail: string };

export function parseEnvelope(bytes: Uint8Array): DsseEnvelope {
  const e = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<DsseEnvelope>;
  if (typeof e.payload !== 'string' || typeof e.payloadType !== 'string' || !Array.isArray(e.signatures) || e.signatures.length === 0) {
    throw new Error('DSSE envelope needs payload, payloadType and at least one signature');
  }
  for (const s of e.signatures) if (typeof s?.sig !== 'string' || typeof s.keyid !== 'string') throw new Error('DSSE signature needs keyid and sig');
  return e as DsseEnvelope;
}

/** Verify an envelope: a signature whose keyid names a known key must verify over PAE. */
export function verifyEnvelope(bytes: Uint8Array, verifiers: readonly Verifier[]): EnvelopeVerdict {
  let e: DsseEnvelope;
  try { e = parseEnvelope(bytes); } catch (err) { return { ok: false, reason: 'malformed', detail: (err as Error).message }; }
  const payload = fromB64Strict(e.payload);
  if (!payload) return { ok: false, reason: 'malformed', detail: 'DSSE payload is not base64' };
  const msg = pae(e.payloadType, payload);
  for (const s of e.signatures) {
    const v = verifiers.find((k) => dsseKeyId(k) === s.keyid);
    if (!v) continue;
    const sig = fromB64Strict(s.sig);
    if (!sig || !v.verify(msg, sig)) return { ok: false, reason: 'bad-signature', detail: `DSSE signature by ${s.keyid} does not verify` };
    return { ok: true, payload, payloadType: e.payloadType, signedBy: v };
  }
  return { ok: false, reason: 'unknown-key', detail: `DSSE envelope signed by unknown key(s): ${e.signatures.map((s) => s.keyid).join(', ')}` };
}
