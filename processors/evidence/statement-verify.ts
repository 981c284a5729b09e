// One DSSE statement envelope checked against a tenant's trust root (POST /attestations/verify,
// `stella forensic attest verify`). Pure: the caller passes the envelope bytes, the trust root it
// pins (for the API: the server's key schedule of the token's tenant) and, for the second step,
// the log's checkpoint of the size the statement claims.
//
// Fail closed, in this order, each failure named with a cause of causes.ts:
//   not a DSSE envelope / payload not base64                      BUNDLE_CORRUPT
//   no signature by a key of the trust root                        KEY_UNTRUSTED
//   a signature by a trusted key that does not verify over PAE     SIGNATURE_INVALID
//   payload not an in-toto statement of ours                       STATEMENT_MISMATCH
//   statement for another tenant or log origin                     ORIGIN_MISMATCH
//   signing key not valid for the statement's tree size            KEY_UNTRUSTED
//   the log holds no such checkpoint, or another one               CHECKPOINT_INCONSISTENT
// The keys the envelope or its statement name are never trusted for themselves: only the keyid is
// used, to find a trust-root key.
import type { VerifyCause } from './causes.ts';
import { dsseKeyId, IN_TOTO_PAYLOAD_TYPE, pae, parseEnvelope, type DsseEnvelope } from './dsse.ts';
import { fromB64Strict, sha256Hex } from './hash.ts';
import { parseVerifierKey, type Verifier } from './note.ts';
import { checkpointSubjectName, checkStatementShape, type SegmentStatement } from './statement.ts';
import type { PinnedRotation, TrustRoot } from './trust-root.ts';

/** A trust-root key and the checkpoint sizes it may sign: [validFrom, validUntil), null = open. */
export interface KeyWindow { verifier: Verifier; validFrom: number; validUntil: number | null }

/** The trust root's key schedule: genesis key, then each pinned rotation in log order. */
export function keyWindows(root: TrustRoot): KeyWindow[] {
  const out: KeyWindow[] = root.log_keys.map((k) => ({ verifier: parseVerifierKey(k), validFrom: 0, validUntil: null }));
  for (const r of root.rotations) {
    for (const w of out) if (w.verifier.verifierKey === r.previous_key && w.validUntil === null) w.validUntil = r.valid_from_size;
    out.push({ verifier: parseVerifierKey(r.new_key), validFrom: r.valid_from_size, validUntil: null });
  }
  return out;
}

/** What a seal statement is: a plain seal, or the seal whose last entry rotates the key. */
export type StatementKind = 'seal' | 'key_rotation';

/** The rotation a seal of `size` carries (its checkpoint holds the rotation entry as its last one). */
export const rotationSealedAt = (root: TrustRoot, size: number): PinnedRotation | undefined =>
  root.rotations.find((r) => r.valid_from_size === size + 1);

export type StatementVerdict =
  | { ok: true; tenant: string; size: number; kind: StatementKind; signedBy: string; statementSha256: string; subjectSha256: string; statement: SegmentStatement }
  | { ok: false; cause: VerifyCause; detail: string };

const fail = (cause: VerifyCause, detail: string): StatementVerdict => ({ ok: false, cause, detail });

/** Step 1: the envelope, its signature and its statement against the trust root (no log access). */
export function verifyStatementEnvelope(bytes: Uint8Array, root: TrustRoot): StatementVerdict {
  let env: DsseEnvelope;
  try { env = parseEnvelope(bytes); } catch (e) {
    return fail('BUNDLE_CORRUPT', `not a DSSE envelope: ${e instanceof SyntaxError ? 'not JSON' : (e as Error).message}`);
  }
  const payload = fromB64Strict(env.payload);
  if (!payload) return fail('BUNDLE_CORRUPT', 'DSSE payload is not base64');
  const windows = keyWindows(root);
  const msg = pae(env.payloadType, payload);
  // Every signature by a trusted key must verify, and at least one must be by a trusted key.
  let signer: KeyWindow | undefined;
  for (const s of env.signatures) {
    const w = windows.find((k) => dsseKeyId(k.verifier) === s.keyid);
    if (!w) continue;
    const sig = fromB64Strict(s.sig);
    if (!sig || !w.verifier.verify(msg, sig)) return fail('SIGNATURE_INVALID', `the signature by ${s.keyid} does not verify over the envelope's payload`);
    signer ??= w;
  }
  if (!signer) {
    return fail('KEY_UNTRUSTED', `signed by ${env.signatures.map((s) => JSON.stringify(String(s.keyid).slice(0, 200))).join(', ')}, not by a key of tenant ${root.tenant}'s trust root`);
  }
  if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) return fail('STATEMENT_MISMATCH', `payloadType must be ${IN_TOTO_PAYLOAD_TYPE}`);
  let statement: SegmentStatement;
  try { statement = JSON.parse(payload.toString('utf8')) as SegmentStatement; } catch { return fail('STATEMENT_MISMATCH', 'the payload is not JSON'); }
  const shape = checkStatementShape(statement);
  if (shape) return fail('STATEMENT_MISMATCH', shape);
  const p = statement.predicate;
  if (p.tenant !== root.tenant) return fail('ORIGIN_MISMATCH', `the statement is tenant ${JSON.stringify(p.tenant.slice(0, 80))}'s; the trust root is tenant ${root.tenant}'s`);
  if (p.origin !== root.origin) return fail('ORIGIN_MISMATCH', `the statement is about log ${JSON.stringify(String(p.origin).slice(0, 200))}; the trust root is for ${root.origin}`);
  const size = p.new.size;
  if (!Number.isSafeInteger(size) || size < 1) return fail('STATEMENT_MISMATCH', 'predicate.new.size must be a positive integer');
  if (statement.subject[0]!.name !== checkpointSubjectName(root.origin, size)) return fail('STATEMENT_MISMATCH', `the subject must be ${checkpointSubjectName(root.origin, size)}`);
  if (size < signer.validFrom || (signer.validUntil !== null && size >= signer.validUntil)) {
    return fail('KEY_UNTRUSTED', `key ${dsseKeyId(signer.verifier)} may sign sizes ${signer.validFrom} to ${signer.validUntil === null ? 'now' : signer.validUntil - 1}; the statement is for size ${size}`);
  }
  return {
    ok: true, tenant: root.tenant, size, kind: rotationSealedAt(root, size) ? 'key_rotation' : 'seal', signedBy: dsseKeyId(signer.verifier),
    statementSha256: sha256Hex(payload), subjectSha256: statement.subject[0]!.digest.sha256, statement,
  };
}

/** Step 2: the statement's subject must be the log's own checkpoint of that size. */
export function matchLogCheckpoint(v: StatementVerdict, checkpoint: Uint8Array | undefined): StatementVerdict {
  if (!v.ok) return v;
  if (!checkpoint) return fail('CHECKPOINT_INCONSISTENT', `tenant ${v.tenant}'s log has no sealed checkpoint of size ${v.size}`);
  if (sha256Hex(checkpoint) !== v.subjectSha256) return fail('CHECKPOINT_INCONSISTENT', `the statement's subject is not tenant ${v.tenant}'s checkpoint of size ${v.size}`);
  return v;
}
