// The pure core of POST /attestations/verify (processors/evidence/statement-verify.ts): key windows
// from a trust root with a rotation, and each named failure, without Kafka or a store.
import { describe, expect, it } from 'vitest';
import { IN_TOTO_PAYLOAD_TYPE, serializeEnvelope, signEnvelope } from '../../processors/evidence/dsse.ts';
import { sha256Hex } from '../../processors/evidence/hash.ts';
import { canonicalBytes } from '../../processors/evidence/jcs.ts';
import type { Signer } from '../../processors/evidence/note.ts';
import { segmentStatement, type SegmentPredicate } from '../../processors/evidence/statement.ts';
import { keyWindows, matchLogCheckpoint, verifyStatementEnvelope } from '../../processors/evidence/statement-verify.ts';
import { parseTrustRoot, TRUST_ROOT_TYPE } from '../../processors/evidence/trust-root.ts';
import { ORIGIN, testSigner } from './helpers.ts';

const k1 = testSigner('sv-1');
const k2 = testSigner('sv-2');
const root = parseTrustRoot({ type: TRUST_ROOT_TYPE, tenant: 'acme', origin: ORIGIN, log_keys: [k1.verifierKey],
  rotations: [{ previous_key: k1.verifierKey, new_key: k2.verifierKey, valid_from_size: 7 }], witnesses: { k: 0, keys: [] }, tsa: { k: 0, certificates: [] } });
const checkpoint = (size: number) => Buffer.from(`${ORIGIN}\n${size}\nroot\n`);

function envelope(size: number, signer: Signer, over: Partial<SegmentPredicate> = {}): Buffer {
  const predicate: SegmentPredicate = { tenant: 'acme', origin: ORIGIN, previous: { size: size - 1, root: '00' }, new: { size, root: '11' },
    consistency_proof: [], kafka: [], kafka_high_water: [], signing_key: { name: signer.name, key_id: signer.keyIdHex, verifier_key: signer.verifierKey },
    sealed_at: '2026-12-03T00:00:00.000Z', ...over };
  return serializeEnvelope(signEnvelope(IN_TOTO_PAYLOAD_TYPE, canonicalBytes(segmentStatement(checkpoint(size), predicate)), signer));
}

describe('verifyStatementEnvelope', () => {
  it('derives key windows from the trust root: genesis until the rotation, the new key from it on', () => {
    expect(keyWindows(root).map((w) => [w.verifier.keyIdHex, w.validFrom, w.validUntil])).toEqual([[k1.keyIdHex, 0, 7], [k2.keyIdHex, 7, null]]);
  });

  it('accepts each key inside its window, typing the seal that carries the rotation', () => {
    expect(matchLogCheckpoint(verifyStatementEnvelope(envelope(5, k1), root), checkpoint(5))).toMatchObject({ ok: true, kind: 'seal', size: 5 });
    expect(matchLogCheckpoint(verifyStatementEnvelope(envelope(6, k1), root), checkpoint(6))).toMatchObject({ ok: true, kind: 'key_rotation', size: 6 });
    const v = verifyStatementEnvelope(envelope(9, k2), root);
    expect(v).toMatchObject({ ok: true, kind: 'seal', signedBy: `${k2.name}+${k2.keyIdHex}` });
    expect(v.ok && v.subjectSha256).toBe(sha256Hex(checkpoint(9)));
  });

  it('names each failure', () => {
    const cause = (b: Buffer | string) => { const v = verifyStatementEnvelope(Buffer.from(b), root); return v.ok ? 'OK' : v.cause; };
    expect(cause('not json')).toBe('BUNDLE_CORRUPT');
    expect(cause(envelope(5, testSigner('stranger')))).toBe('KEY_UNTRUSTED');
    expect(cause(envelope(9, k1))).toBe('KEY_UNTRUSTED'); // retired key past its retirement
    expect(cause(envelope(3, k2))).toBe('KEY_UNTRUSTED'); // new key before it was valid
    expect(cause(envelope(5, k1, { tenant: 'globex' }))).toBe('ORIGIN_MISMATCH');
    const wrongType = JSON.parse(envelope(5, k1).toString()) as { payload: string };
    expect(cause(serializeEnvelope(signEnvelope('text/plain', Buffer.from(wrongType.payload, 'base64'), k1)))).toBe('STATEMENT_MISMATCH');
    expect(cause(serializeEnvelope(signEnvelope(IN_TOTO_PAYLOAD_TYPE, Buffer.from('{"_type":"x"}'), k1)))).toBe('STATEMENT_MISMATCH');
    const forged = JSON.parse(envelope(5, k1).toString()) as { signatures: { sig: string }[] };
    forged.signatures[0]!.sig = Buffer.alloc(64, 1).toString('base64');
    expect(cause(JSON.stringify(forged))).toBe('SIGNATURE_INVALID');
    expect(matchLogCheckpoint(verifyStatementEnvelope(envelope(5, k1), root), undefined)).toMatchObject({ ok: false, cause: 'CHECKPOINT_INCONSISTENT' });
    expect(matchLogCheckpoint(verifyStatementEnvelope(envelope(5, k1), root), checkpoint(4))).toMatchObject({ ok: false, cause: 'CHECKPOINT_INCONSISTENT' });
  });
});
