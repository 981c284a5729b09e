// Named verification failures and the exit codes `stella forensic verify` uses for them
// (documented in docs/evidence.md).
export const VERIFY_CAUSES = [
  'BUNDLE_CORRUPT', 'MANIFEST_MISSING', 'MANIFEST_MISMATCH', 'ENTRY_MISSING', 'MERKLE_MISMATCH',
  'CHECKPOINT_INCONSISTENT', 'SIGNATURE_INVALID', 'KEY_UNKNOWN', 'STATEMENT_MISMATCH',
  // Trust anchoring (issue 12): verification chains only to a pinned trust root, never to keys the bundle carries.
  'TRUST_ROOT_MISSING', 'KEY_UNTRUSTED', 'ORIGIN_MISMATCH',
  // Outside vouching (issue 12): witness cosignatures (C2SP tlog-cosignature) and RFC 3161 tokens.
  'WITNESS_POLICY_UNMET', 'COSIGNATURE_INVALID', 'TIMESTAMP_POLICY_UNMET', 'TIMESTAMP_INVALID',
  // Retention (issue 12 item 6): the entry was pruned past retention; its hash stays in the tiles.
  'ENTRY_PRUNED',
  // Records in bundles (issue 12 item 5): the clean OTLP bytes a clean-batch entry digests.
  'RECORD_MISSING', 'RECORD_MISMATCH',
  // Audit bundles (issue 14 section 4): frames, symbol references, provenance envelopes and the join.
  'FRAME_MISMATCH', 'SYMBOL_REF_MISMATCH', 'SYMBOL_BYTES_MISMATCH', 'PROVENANCE_MISSING', 'PROVENANCE_SIGNATURE_INVALID',
  'PROVENANCE_KEY_UNTRUSTED', 'PROVENANCE_SUBJECT_MISMATCH', 'PROVENANCE_MISMATCH', 'JOIN_MISMATCH', 'JOIN_INCOMPLETE',
  // Tiles in case bundles (issue 14 section 4): the C2SP hash tiles the proofs and root are recomputed from.
  'TILE_MISMATCH',
] as const;
export type VerifyCause = (typeof VERIFY_CAUSES)[number];

export const EXIT_OK = 0;

export const causeExitCode: Readonly<Record<VerifyCause, number>> = {
  BUNDLE_CORRUPT: 10,
  MANIFEST_MISSING: 11,
  MANIFEST_MISMATCH: 12,
  ENTRY_MISSING: 13,
  MERKLE_MISMATCH: 14,
  CHECKPOINT_INCONSISTENT: 15,
  SIGNATURE_INVALID: 16,
  KEY_UNKNOWN: 17,
  STATEMENT_MISMATCH: 18,
  TRUST_ROOT_MISSING: 19,
  KEY_UNTRUSTED: 20,
  ORIGIN_MISMATCH: 21,
  WITNESS_POLICY_UNMET: 22,
  COSIGNATURE_INVALID: 23,
  TIMESTAMP_POLICY_UNMET: 24,
  TIMESTAMP_INVALID: 25,
  ENTRY_PRUNED: 26,
  RECORD_MISSING: 27,
  RECORD_MISMATCH: 28,
  FRAME_MISMATCH: 29,
  SYMBOL_REF_MISMATCH: 30,
  SYMBOL_BYTES_MISMATCH: 31,
  PROVENANCE_MISSING: 32,
  PROVENANCE_SIGNATURE_INVALID: 33,
  PROVENANCE_KEY_UNTRUSTED: 34,
  PROVENANCE_SUBJECT_MISMATCH: 35,
  PROVENANCE_MISMATCH: 36,
  JOIN_MISMATCH: 37,
  JOIN_INCOMPLETE: 38,
  TILE_MISMATCH: 39,
};

export class VerifyFailure extends Error {
  override readonly name = 'VerifyFailure';
  constructor(readonly code: VerifyCause, readonly detail: string) { super(`${code}: ${detail}`); }
}

/** An entry (or whole-log export) needs an entry bundle that retention pruned (`pruned/<N>.json` records it). */
export class EntryPrunedError extends VerifyFailure {
  constructor(readonly index: number, readonly bundle: number, prunedAt: string) {
    super('ENTRY_PRUNED', `entry ${index} was pruned past retention (entry bundle ${bundle}, pruned at ${prunedAt}); its hash remains in the tiles, so proofs of other entries still verify`);
  }
}
