// Attestation routes (docs/evidence.md "Attestations API"), scope attest:read, tenant from the token:
//   GET  /attestations[?type=seal|key_rotation][&limit=][&cursor=]   the tenant's DSSE statements,
//        newest first: every seal's in-toto statement; a seal whose last entry rotates the signing
//        key is listed as type key_rotation with the rotation it carries. Each item holds its
//        envelope as stored, so it can be handed to POST /attestations/verify or checked offline.
//   POST /attestations/verify  (DSSE envelope bytes)                  verification result JSON
// Verification pins the token tenant's trust root from the server's own key schedule (never a key
// the envelope names) and fails closed with the causes of processors/evidence/causes.ts; the HTTP
// status is 200 for every verdict (the verdict is the answer), 4xx only for a request we cannot read.
// Intake receipts join this list when the signed-intake statements land (new `type` values).
import { causeExitCode } from '../processors/evidence/causes.ts';
import { parseEnvelope } from '../processors/evidence/dsse.ts';
import { fromB64Strict, sha256Hex } from '../processors/evidence/hash.ts';
import { checkpointHistoryPath } from '../processors/evidence/layout.ts';
import { LogReader } from '../processors/evidence/reader.ts';
import type { SegmentStatement } from '../processors/evidence/statement.ts';
import { matchLogCheckpoint, rotationSealedAt, verifyStatementEnvelope, type StatementKind, type StatementVerdict } from '../processors/evidence/statement-verify.ts';
import type { EvidenceStore } from '../processors/evidence/store.ts';
import { exportTrustRoot, type TrustRoot } from '../processors/evidence/trust-root.ts';
import { BadRequest, parseLimit } from './params.ts';
import { apiError, json, type AuthedHandler, type Router } from './router.ts';

export interface AttestationRouteDeps {
  /** The tenants' evidence logs (read-only here). */
  evidence: EvidenceStore;
}

/** Largest envelope POST /attestations/verify reads (a seal statement is a few KiB). */
export const MAX_ENVELOPE_BYTES = 1024 * 1024;
export const ATTESTATION_TYPES: readonly StatementKind[] = ['seal', 'key_rotation'];

export interface AttestationItem {
  type: StatementKind;
  /** The tree size the statement seals (its checkpoint's size). */
  size: number;
  previous_size: number;
  sealed_at: string;
  predicate_type: string;
  subject: SegmentStatement['subject'];
  /** DSSE key id of the signature, `<key name>+<hex8>`. */
  signed_by: string;
  /** SHA-256 of the statement (the DSSE payload), as in evidence_segments.statement_sha256. */
  statement_sha256: string;
  rotation?: { previous_key: string; new_key: string; valid_from_size: number };
  /** The DSSE envelope as stored. */
  envelope: unknown;
}

/** Opaque cursor: base64url of "a1:<size>"; the next page holds the sizes below it. */
const encodeCursor = (size: number): string => Buffer.from(`a1:${size}`).toString('base64url');
function decodeCursor(v: string): number {
  const m = /^a1:([1-9]\d{0,15})$/.exec(/^[A-Za-z0-9_-]{1,64}$/.test(v) ? Buffer.from(v, 'base64url').toString() : '');
  if (!m) throw new BadRequest('cursor', 'cursor is not one this API issued');
  return Number(m[1]);
}

const handled = (h: AuthedHandler): AuthedHandler => async (req) => {
  try { return await h(req); } catch (err) {
    if (err instanceof BadRequest) return apiError(400, 'invalid_parameter', err.message, { parameter: err.param });
    throw err;
  }
};

function item(root: TrustRoot, size: number, bytes: Uint8Array): AttestationItem {
  const env = parseEnvelope(bytes);
  const payload = fromB64Strict(env.payload)!;
  const st = JSON.parse(payload.toString('utf8')) as SegmentStatement;
  const rotation = rotationSealedAt(root, size);
  return {
    type: rotation ? 'key_rotation' : 'seal', size, previous_size: st.predicate.previous.size, sealed_at: st.predicate.sealed_at,
    predicate_type: st.predicateType, subject: st.subject, signed_by: env.signatures[0]!.keyid, statement_sha256: sha256Hex(payload),
    ...(rotation ? { rotation } : {}), envelope: env,
  };
}

export function registerAttestationRoutes(router: Router, deps: AttestationRouteDeps): void {
  router.scoped('GET', '/attestations', 'attest:read', handled(async (req) => {
    const type = req.query.get('type');
    if (type !== null && !(ATTESTATION_TYPES as readonly string[]).includes(type)) throw new BadRequest('type', `type must be one of: ${ATTESTATION_TYPES.join(', ')}`);
    const limit = parseLimit(req.query.get('limit'), 50, 500);
    const cursor = req.query.get('cursor');
    const below = cursor === null ? Infinity : decodeCursor(cursor);
    const root = await exportTrustRoot(deps.evidence, req.tenant);
    if (!root) return json(200, { tenant: req.tenant, attestations: [], next_cursor: null });
    const reader = new LogReader(deps.evidence, req.tenant);
    const sizes = (await reader.sealedSizes()).filter((s) => s < below && (type === null || (type === 'key_rotation') === (rotationSealedAt(root, s) !== undefined)));
    sizes.reverse();
    const page = sizes.slice(0, limit);
    const items = await Promise.all(page.map(async (s) => {
      const b = await reader.envelopeAt(s);
      if (!b) throw new Error(`tenant ${req.tenant}: envelopes/${s}.dsse.json vanished while listing`);
      return item(root, s, b);
    }));
    return json(200, { tenant: req.tenant, attestations: items, next_cursor: sizes.length > limit ? encodeCursor(page[page.length - 1]!) : null });
  }));

  router.scoped('POST', '/attestations/verify', 'attest:read', handled(async (req) => {
    const raw = req.rawBody;
    if (!raw || raw.length === 0) throw new BadRequest('body', 'send the DSSE envelope (JSON) as the request body');
    if (raw.length > MAX_ENVELOPE_BYTES) return apiError(413, 'too_large', `an envelope is at most ${MAX_ENVELOPE_BYTES} bytes`);
    const root = await exportTrustRoot(deps.evidence, req.tenant);
    let result: StatementVerdict;
    if (!root) {
      result = { ok: false, cause: 'TRUST_ROOT_MISSING', detail: `tenant ${req.tenant} has no sealed log on this server, so there is no key to verify against` };
    } else {
      result = verifyStatementEnvelope(raw, root);
      if (result.ok) result = matchLogCheckpoint(result, await deps.evidence.read(req.tenant, checkpointHistoryPath(result.size)));
    }
    const body = result.ok
      ? { ok: true, type: result.kind, size: result.size, signed_by: result.signedBy, statement_sha256: result.statementSha256 }
      : { ok: false, cause: result.cause, detail: result.detail };
    return json(200, { tenant: req.tenant, exit_code: result.ok ? 0 : causeExitCode[result.cause], result: body });
  }));
}
