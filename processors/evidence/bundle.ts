// Evidence bundles: deterministic .tar.gz files anyone can verify offline.
//
//   manifest.json                    canonical JSON: what the bundle holds and claims
//   entries/<index>.json             the entries (canonical JSON bytes as logged)       [kind "entries"]
//   proofs/<index>.tlog-proof        C2SP tlog-proof of each entry in the newest checkpoint
//   tile/entries/<N>[.p/<W>]         the whole log prefix as C2SP entry bundles          [kind "log"]
//   checkpoints/<size>               signed checkpoints (C2SP signed note)
//   envelopes/<size>.dsse.json       the DSSE/in-toto statement sealed with each checkpoint
//   consistency/<from>.<to>          consistency proof from an older checkpoint to the newest
//   keys/<key id hex>.vkey           the verifier keys, one per line, with their validity in the manifest
//   cosignatures/<size>              witness cosignature lines (C2SP tlog-cosignature) on checkpoints/<size>
//   timestamps/<size>.<n>.tst        RFC 3161 time-stamp tokens over checkpoints/<size> (its exact bytes)
//   records/<index>.binpb            the clean OTLP record (scrubbed protobuf bytes) a clean-batch entry digests
//   tile/<L>/<N>[.p/<W>]             C2SP hash tiles of the newest checkpoint's tree: each entry's proof and the root recomputed from them  [with tiles]
import { HASH_SIZE, fromB64Strict, leafHash, sha256Hex, toB64, toHex, bytesEqual } from './hash.ts';
import { canonicalBytes, canonicalize } from './jcs.ts';
import { keyForSize, keySchedule, parseKeyRotation, KeyScheduleError, type KeyValidity } from './keys.ts';
import { defaultOrigin } from './layout.ts';
import { CompactRange, ProofError, verifyConsistency, verifyInclusion } from './merkle.ts';
import { parseCheckpoint, parseNote, parseVerifierKey, verifyNote, type Checkpoint, type Verifier } from './note.ts';
import { LogReader, formatTlogProof, parseTlogProof, readTile, throwIfPruned } from './reader.ts';
import { verifyEnvelope } from './dsse.ts';
import { checkStatementShape, type SegmentStatement } from './statement.ts';
import type { EvidenceStore } from './store.ts';
import { gunzip, gzipDeterministic, readTar, writeTar, TarError, type TarFile } from './tar.ts';
import { TILE_WIDTH, decodeEntryBundle, entryBundlePath, tileInTree, tilePath } from './tiles.ts';
import { bundleTiles, verifyBundleTiles, type BundleTile } from './bundle-tiles.ts';
import { VerifyFailure, type VerifyCause } from './causes.ts';
import { storedCosignatures, storedTimestamps } from './attest.ts';
import { checkWitnessPolicy, splitSignatureLines, type WitnessPolicy } from './witness.ts';
import { checkTsaPolicy, type TsaPolicy } from './tsa.ts';
import type { TrustRoot } from './trust-root.ts';
import { parseCleanEntry } from './clean-entry.ts';
import type { RecordSource } from './record-packs.ts';
import { verifyAuditSection, type AuditSection, type AuditVerified } from '../provenance/audit-bundle.ts';

export const BUNDLE_FORMAT = 'stella-telemetry.example/evidence-bundle/v1';
export const CONSISTENCY_HEADER = 'stella-telemetry.example/consistency-proof@v1';

export interface ManifestKey { key_id: string; verifier_key: string; valid_from_size: number; valid_until_size: number | null; rotation_index: number | null }
export interface Manifest {
  format: typeof BUNDLE_FORMAT;
  tenant: string;
  origin: string;
  case_id: string;
  kind: 'entries' | 'log';
  tree_size: number;
  /** kind "entries": each entry, the sha256 of its bytes and the size of the checkpoint that first sealed it. */
  entries: { index: number; sha256: string; sealed_in: number; role: 'case' | 'key-rotation' }[];
  /** kind "log": the entry bundles covering [0, tree_size). */
  entry_bundles: { path: string; sha256: string }[];
  checkpoints: { size: number; sha256: string }[];
  envelopes: { size: number; sha256: string }[];
  consistency: { from: number; to: number; sha256: string }[];
  keys: ManifestKey[];
  /** Witness cosignatures per checkpoint (absent when there are none: older bundles verify as before). */
  cosignatures?: { size: number; sha256: string }[];
  /** RFC 3161 tokens per checkpoint, `index` numbering the tokens of one size (absent when none). */
  timestamps?: { size: number; index: number; sha256: string }[];
  /** The clean records of the bundle's clean-batch entries, by entry index (absent when none). */
  records?: { index: number; sha256: string; size: number }[];
  /**
   * kind "entries" with tiles (audit bundles): the C2SP hash tiles of the tree of `tree_size` needed to
   * recompute every entry's inclusion proof and the root (bundle-tiles.ts), by level then index.
   */
  tiles?: BundleTile[];
  /** Audit bundles (`--with-provenance`): the trace's frames, join, symbol refs, provenance envelopes (docs/provenance.md). */
  provenance?: AuditSection;
}

export interface BuildOptions {
  caseId: string;
  /** Entry indices to include (kind "entries"); omit for a whole-log export (kind "log"). */
  indices?: readonly number[];
  /** Tree size to prove against; defaults to the latest sealed size. */
  atSize?: number;
  gzipLevel?: number;
  /**
   * Where the sealed records are read (record-packs.ts PackedRecords over the CAS): every clean-batch
   * entry among `indices` is bundled with its record bytes (records/<index>.binpb), which
   * verification requires. Without it, clean-batch entries are refused.
   */
  records?: RecordSource;
  /** The provenance section and its files (processors/provenance/audit-bundle.ts auditFiles). */
  provenance?: { section: AuditSection; files: TarFile[] };
  /**
   * Carry the hash tiles each entry's proof and the root are recomputed from (case bundles only);
   * default: with a provenance section (audit bundles must carry them, verification requires them).
   */
  tiles?: boolean;
}

/** A clean-batch entry's record bytes are not available to bundle (not stored, or no store given). */
export class RecordUnavailableError extends Error {
  override readonly name = 'RecordUnavailableError';
  constructor(readonly index: number, detail: string) { super(`entry ${index}: ${detail}`); }
}

const consistencyPath = (from: number, to: number): string => `consistency/${from}.${to}`;
const keyPath = (keyIdHex: string): string => `keys/${keyIdHex}.vkey`;
const cosignaturesPath = (size: number): string => `cosignatures/${size}`;
const timestampBundlePath = (size: number, index: number): string => `timestamps/${size}.${index}.tst`;
export const recordBundlePath = (index: number): string => `records/${index}.binpb`;

export function formatConsistencyProof(from: number, to: number, proof: readonly Uint8Array[]): string {
  return `${CONSISTENCY_HEADER}\nold ${from}\nnew ${to}\n${proof.map((h) => `${toB64(h)}\n`).join('')}`;
}

export function parseConsistencyProof(text: string): { from: number; to: number; proof: Buffer[] } {
  const lines = text.split('\n');
  const from = /^old (0|[1-9]\d*)$/.exec(lines[1] ?? '');
  const to = /^new (0|[1-9]\d*)$/.exec(lines[2] ?? '');
  if (lines[0] !== CONSISTENCY_HEADER || !from || !to || lines[lines.length - 1] !== '') throw new ProofError('malformed consistency proof file');
  const proof = lines.slice(3, -1).map((l, i) => {
    const h = fromB64Strict(l);
    if (!h || h.length !== 32) throw new ProofError(`consistency proof line ${i + 4} is not a base64 SHA-256 hash`);
    return h;
  });
  return { from: Number(from[1]), to: Number(to[1]), proof };
}

/** Build a deterministic bundle from a tenant's sealed log. Same store state and options → same bytes. */
export async function buildBundle(store: EvidenceStore, tenant: string, opts: BuildOptions): Promise<Buffer> {
  const reader = new LogReader(store, tenant);
  const sealed = await reader.sealedSizes();
  const n = opts.atSize ?? sealed[sealed.length - 1];
  if (n === undefined || !sealed.includes(n)) throw new Error(`tenant ${tenant} has no sealed checkpoint of size ${opts.atSize ?? '(any)'}`);
  const top = (await reader.checkpointAt(n))!;
  const schedule = await reader.keySchedule(n);
  const files: TarFile[] = [];
  const manifest: Manifest = {
    format: BUNDLE_FORMAT, tenant, origin: top.checkpoint.origin, case_id: opts.caseId, kind: opts.indices ? 'entries' : 'log', tree_size: n,
    entries: [], entry_bundles: [], checkpoints: [], envelopes: [], consistency: [], keys: [],
  };
  const checkpointSizes = new Set<number>([n]);
  if (opts.indices) {
    const rotationIdx = schedule.filter((k) => k.rotationIndex !== null).map((k) => k.rotationIndex!);
    const wanted = [...new Set([...opts.indices, ...rotationIdx])].sort((a, b) => a - b);
    const caseSet = new Set(opts.indices);
    for (const i of wanted) {
      if (!Number.isSafeInteger(i) || i < 0 || i >= n) throw new Error(`entry index ${i} is not in the tree of size ${n}`);
      const entry = await reader.entry(i, n);
      const sealedIn = sealed.find((s) => s > i)!;
      checkpointSizes.add(sealedIn);
      files.push({ path: `entries/${i}.json`, bytes: entry });
      files.push({ path: `proofs/${i}.tlog-proof`, bytes: Buffer.from(formatTlogProof(i, await reader.inclusionProof(i, n), top.note)) });
      manifest.entries.push({ index: i, sha256: sha256Hex(entry), sealed_in: sealedIn, role: caseSet.has(i) ? 'case' : 'key-rotation' });
      const clean = parseCleanEntry(entry);
      if (clean) {
        if (!opts.records) throw new RecordUnavailableError(i, 'a clean-batch entry is bundled only with its record bytes; no record store given');
        const record = await opts.records.record(tenant, i, clean.sha256);
        if (!record) throw new RecordUnavailableError(i, `record sha256:${clean.sha256} is not in the record store`);
        files.push({ path: recordBundlePath(i), bytes: record });
        (manifest.records ??= []).push({ index: i, sha256: clean.sha256, size: record.length });
      }
    }
    if (opts.tiles ?? !!opts.provenance) {
      manifest.tiles = [];
      for (const t of bundleTiles(wanted, n)) {
        // The tile as it is in the tree of size n: the store may have only the full (or a wider
        // partial) tile by now, whose first `width` hashes are the same (C2SP tlog-tiles).
        const stored = await readTile(store, tenant, t);
        const p = tilePath(t);
        if (!stored || stored.length < t.width * HASH_SIZE) throw new Error(`tile ${p} of the tree of size ${n} is missing from the store`);
        const bytes = Buffer.from(stored.subarray(0, t.width * HASH_SIZE));
        files.push({ path: p, bytes });
        manifest.tiles.push({ path: p, sha256: sha256Hex(bytes) });
      }
    }
  } else {
    if (opts.tiles) throw new Error('tiles go in case bundles (indices); a whole-log export recomputes the tree from its entries');
    for (const s of sealed) if (s <= n) checkpointSizes.add(s);
    for (let t = 0; t * TILE_WIDTH < n; t++) {
      const tile = tileInTree(0, t, n)!;
      let b = await store.read(tenant, entryBundlePath(t, tile.width));
      if (!b && tile.width < TILE_WIDTH) b = await store.read(tenant, entryBundlePath(t, TILE_WIDTH));
      if (!b) { await throwIfPruned(store, tenant, t, t * TILE_WIDTH); throw new Error(`entry bundle ${entryBundlePath(t, tile.width)} is missing`); }
      if (tile.width < TILE_WIDTH) b = Buffer.concat(decodeEntryBundle(b).slice(0, tile.width).flatMap((e) => [u16(e.length), e]));
      const p = entryBundlePath(t, tile.width);
      files.push({ path: p, bytes: b });
      manifest.entry_bundles.push({ path: p, sha256: sha256Hex(b) });
    }
  }
  for (const s of [...checkpointSizes].sort((a, b) => a - b)) {
    const cp = (await reader.checkpointAt(s))!;
    const env = (await reader.envelopeAt(s))!;
    files.push({ path: `checkpoints/${s}`, bytes: cp.bytes }, { path: `envelopes/${s}.dsse.json`, bytes: env });
    manifest.checkpoints.push({ size: s, sha256: sha256Hex(cp.bytes) });
    manifest.envelopes.push({ size: s, sha256: sha256Hex(env) });
    const cosigs = await storedCosignatures(store, tenant, s);
    if (cosigs.length > 0) {
      const b = Buffer.from(cosigs.join(''));
      files.push({ path: cosignaturesPath(s), bytes: b });
      (manifest.cosignatures ??= []).push({ size: s, sha256: sha256Hex(b) });
    }
    (await storedTimestamps(store, tenant, s)).forEach((t, index) => {
      files.push({ path: timestampBundlePath(s, index), bytes: t });
      (manifest.timestamps ??= []).push({ size: s, index, sha256: sha256Hex(t) });
    });
    if (s < n && manifest.kind === 'entries') {
      const c = Buffer.from(formatConsistencyProof(s, n, await reader.consistencyProof(s, n)));
      files.push({ path: consistencyPath(s, n), bytes: c });
      manifest.consistency.push({ from: s, to: n, sha256: sha256Hex(c) });
    }
  }
  for (const k of schedule) {
    files.push({ path: keyPath(k.verifier.keyIdHex), bytes: Buffer.from(`${k.verifier.verifierKey}\n`) });
    manifest.keys.push({ key_id: k.verifier.keyIdHex, verifier_key: k.verifier.verifierKey, valid_from_size: k.validFrom, valid_until_size: k.validUntil, rotation_index: k.rotationIndex });
  }
  if (opts.provenance) {
    if (manifest.kind !== 'entries') throw new Error('a provenance section needs a case bundle (indices)');
    files.push(...opts.provenance.files);
    manifest.provenance = opts.provenance.section;
  }
  files.push({ path: 'manifest.json', bytes: canonicalBytes(manifest) });
  // Whole-log exports are large and already cheap to verify: favour build speed (level 1).
  return gzipDeterministic(writeTar(files), opts.gzipLevel ?? (manifest.kind === 'log' ? 1 : 6));
}

const u16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };

// ---- verification ------------------------------------------------------------------------------

export interface VerifyProgress { phase: 'unpack' | 'keys' | 'checkpoints' | 'entries' | 'tree' | 'done'; done: number; total: number }
export interface VerifyOptions {
  /** The tenant's pinned trust root (origin, genesis keys, known rotations, witness and TSA policy). */
  trustRoot?: TrustRoot;
  /**
   * Note verifier keys trusted out of band (`--trusted-key`): the bundle's genesis key or the key
   * of its newest checkpoint must be one of them, and its origin one of their names. With neither
   * option verification fails with TRUST_ROOT_MISSING: a bundle never vouches for itself.
   */
  trustedKeys?: readonly string[];
  onProgress?: (p: VerifyProgress) => void;
  /** Trusted witnesses (trust root `witnesses`): the newest checkpoint needs k valid cosignatures. */
  witnesses?: WitnessPolicy;
  /** Trusted TSAs (trust root `tsa`): the newest checkpoint needs k valid tokens; every token present must verify. */
  tsa?: TsaPolicy;
}

/** What to tell someone who verified without an anchor. */
export const TRUST_ROOT_HOWTO = 'pin the tenant\'s trust root: --trust <file> (or STELLA_TRUST_ROOT=<file>) with the document from '
  + '`stella forensic trust export --tenant <tenant>` or `GET /evidence/<tenant>/trust-root` (scope evidence:read), '
  + 'or --trusted-key <name>+<hex id>+<base64> (repeatable) with a verifier key published for the log';

interface Anchor { origins: string[]; tenant: string | undefined; keys: Set<string>; rotations: TrustRoot['rotations']; genesisOnly: boolean; what: string }

function anchorOf(opts: VerifyOptions): Anchor {
  const extra = opts.trustedKeys ?? [];
  if (!opts.trustRoot && extra.length === 0) return fail('TRUST_ROOT_MISSING', `nothing to verify against: ${TRUST_ROOT_HOWTO}`);
  const names: string[] = [];
  for (const k of extra) {
    try { names.push(parseVerifierKey(k).name); } catch (e) { return fail('TRUST_ROOT_MISSING', `trusted key ${JSON.stringify(k.slice(0, 80))} is not a note verifier key (${(e as Error).message}); ${TRUST_ROOT_HOWTO}`); }
  }
  const r = opts.trustRoot;
  return {
    origins: r ? [r.origin] : [...new Set(names)],
    tenant: r?.tenant,
    keys: new Set([...(r?.log_keys ?? []), ...extra]),
    rotations: r?.rotations ?? [],
    // A trust root names genesis keys; a bare --trusted-key may be any key the log published (e.g.
    // the one `keys rotate` printed), which vouches for everything in the tree it signed.
    genesisOnly: extra.length === 0,
    what: r ? `the trust root of tenant ${r.tenant}` : 'the trusted keys',
  };
}

/**
 * The bundle's key schedule must chain to the anchor: its genesis key pinned (or, for --trusted-key,
 * the key of its newest checkpoint), and every rotation the trust root pins at or below the
 * bundle's size present, with none the trust root does not know before its last pinned rotation.
 */
function checkAnchoredSchedule(schedule: readonly KeyValidity[], m: Manifest, a: Anchor): void {
  const described = (v: Verifier): string => `${v.name}+${v.keyIdHex}`;
  const genesis = schedule[0]!;
  const top = keyForSize(schedule, m.tree_size);
  if (!a.keys.has(genesis.verifier.verifierKey) && !(!a.genesisOnly && top && a.keys.has(top.verifier.verifierKey))) {
    fail('KEY_UNTRUSTED', `checkpoint ${m.tree_size} is signed by ${top ? described(top.verifier) : 'no valid key'} (genesis key ${described(genesis.verifier)}), which is not derivable from ${a.what}`);
  }
  const horizon = a.rotations.length ? a.rotations[a.rotations.length - 1]!.valid_from_size : 0;
  for (const r of a.rotations) {
    if (r.valid_from_size > m.tree_size) break;
    const i = schedule.findIndex((k) => k.validFrom === r.valid_from_size && k.rotationIndex !== null);
    if (i < 1 || schedule[i]!.verifier.verifierKey !== r.new_key || schedule[i - 1]!.verifier.verifierKey !== r.previous_key) {
      const old = parseVerifierKey(r.previous_key);
      fail('KEY_UNTRUSTED', `${a.what} records that key ${described(old)} was retired at size ${r.valid_from_size}; this bundle (tree size ${m.tree_size}) does not carry that rotation, so its checkpoint key is not derivable from the trust root`);
    }
  }
  for (const k of schedule.slice(1)) {
    if (k.validFrom <= Math.min(horizon, m.tree_size) && !a.rotations.some((r) => r.valid_from_size === k.validFrom && r.new_key === k.verifier.verifierKey)) {
      fail('KEY_UNTRUSTED', `the bundle rotates to key ${described(k.verifier)} at size ${k.validFrom}, a rotation ${a.what} does not record`);
    }
  }
}

export interface VerifiedBundle {
  ok: true;
  tenant: string;
  origin: string;
  caseId: string;
  kind: Manifest['kind'];
  treeSize: number;
  rootHex: string;
  entries: number;
  /** Clean OTLP records whose bytes were checked against their sealed entries. */
  records: number;
  /** Hash tiles the entries' proofs and the root were recomputed from (0: the bundle carries none). */
  tiles: number;
  checkpoints: number[];
  keys: { keyId: string; validFrom: number; validUntil: number | null }[];
  /** Trusted witnesses that cosigned the newest checkpoint, with their cosignature time (POSIX seconds). */
  cosignedBy: { name: string; timestamp: number }[];
  /** Times at which trusted TSAs dated the newest checkpoint. */
  timestampedAt: string[];
  /** Audit bundles: what the provenance section proved (absent for plain evidence bundles). */
  provenance?: AuditVerified;
}
export type VerifyResult = VerifiedBundle | { ok: false; cause: VerifyCause; detail: string };

const fail = (cause: VerifyCause, detail: string): never => { throw new VerifyFailure(cause, detail); };

/** Verify a bundle offline. Never throws: failures come back with a named cause. */
export function verifyBundle(bytes: Uint8Array, opts: VerifyOptions = {}): VerifyResult {
  try {
    return verifyOrThrow(bytes, opts);
  } catch (e) {
    if (e instanceof VerifyFailure) return { ok: false, cause: e.code, detail: e.detail };
    return { ok: false, cause: 'BUNDLE_CORRUPT', detail: `unexpected: ${(e as Error).message}` };
  }
}

function verifyOrThrow(bytes: Uint8Array, given: VerifyOptions): VerifiedBundle {
  const anchor = anchorOf(given);
  // The trust root's witness and TSA policies apply unless the caller passes its own.
  const witnesses = given.witnesses ?? given.trustRoot?.witnesses;
  const tsa = given.tsa ?? given.trustRoot?.tsa;
  const opts: VerifyOptions = { ...given, ...(witnesses ? { witnesses } : {}), ...(tsa ? { tsa } : {}) };
  const progress = opts.onProgress ?? (() => undefined);
  progress({ phase: 'unpack', done: 0, total: 1 });
  let files: Map<string, Uint8Array>;
  try {
    files = new Map(readTar(gunzip(bytes)).map((f) => [f.path, f.bytes]));
  } catch (e) {
    return fail('BUNDLE_CORRUPT', e instanceof TarError ? e.message : `cannot unpack: ${(e as Error).message}`);
  }
  const mBytes = files.get('manifest.json') ?? fail('MANIFEST_MISSING', 'the bundle has no manifest.json');
  const m = parseManifest(mBytes);
  // Checked before anything else the bundle says: another log's bundle is that, whatever its state.
  if (!anchor.origins.includes(m.origin)) fail('ORIGIN_MISMATCH', `the bundle is from log ${m.origin}; ${anchor.what} ${anchor.origins.length === 1 ? `is for ${anchor.origins[0]}` : `names ${anchor.origins.join(', ')}`}`);
  if (anchor.tenant !== undefined && m.tenant !== anchor.tenant) fail('ORIGIN_MISMATCH', `the bundle is tenant ${m.tenant}'s; ${anchor.what} is for tenant ${anchor.tenant}`);
  const need = (p: string, missing: VerifyCause): Uint8Array => files.get(p) ?? fail(missing, `${p} is listed in the manifest but missing from the bundle`);
  const listed = new Set<string>(['manifest.json']);
  // Manifest digests are compared last, so that a tampered file reports what the cryptography
  // says about it (bad signature, wrong root) rather than merely "differs from the manifest".
  const deferredDigests: { path: string; sha: string }[] = [];
  const checkListed = (p: string, sha: string, missing: VerifyCause): Uint8Array => {
    listed.add(p);
    deferredDigests.push({ path: p, sha });
    return need(p, missing);
  };

  // Keys and their validity, from the manifest, the key files, and the rotation entries.
  progress({ phase: 'keys', done: 0, total: m.keys.length });
  for (const k of m.keys) {
    listed.add(keyPath(k.key_id));
    const f = Buffer.from(need(keyPath(k.key_id), 'KEY_UNKNOWN')).toString('utf8');
    if (f !== `${k.verifier_key}\n`) fail('MANIFEST_MISMATCH', `${keyPath(k.key_id)} differs from the manifest's key`);
  }
  const genesis = m.keys.find((k) => k.rotation_index === null) ?? fail('KEY_UNKNOWN', 'the manifest names no genesis key');
  let genesisVerifier: Verifier;
  try { genesisVerifier = parseVerifierKey(genesis.verifier_key); } catch (e) { return fail('KEY_UNKNOWN', (e as Error).message); }
  if (genesisVerifier.name !== m.origin) fail('KEY_UNKNOWN', `key name ${genesisVerifier.name} is not the log origin ${m.origin}`);
  const rotationEntries = m.keys.filter((k) => k.rotation_index !== null).map((k) => {
    const idx = k.rotation_index!;
    let entry: Uint8Array | undefined;
    if (m.kind === 'entries') entry = m.entries.some((e) => e.index === idx) ? files.get(`entries/${idx}.json`) : undefined;
    else entry = entryFromLogBundles(files, m, idx);
    if (!entry) return fail('ENTRY_MISSING', `key rotation entry ${idx} is not in the bundle`);
    const r = parseKeyRotation(entry) ?? fail('KEY_UNKNOWN', `entry ${idx} is not a key rotation entry`);
    if (r.new_key !== k.verifier_key) fail('KEY_UNKNOWN', `rotation entry ${idx} introduces a different key than the manifest says`);
    return { index: idx, entry: r };
  });
  let schedule: KeyValidity[];
  try { schedule = keySchedule(genesisVerifier, rotationEntries); } catch (e) { return fail('KEY_UNKNOWN', e instanceof KeyScheduleError ? e.message : (e as Error).message); }
  for (const k of m.keys) {
    const s = schedule.find((x) => x.verifier.keyIdHex === k.key_id && x.verifier.verifierKey === k.verifier_key);
    if (!s || s.validFrom !== k.valid_from_size || s.validUntil !== k.valid_until_size) fail('KEY_UNKNOWN', `key ${k.key_id}'s validity in the manifest does not follow from the rotation entries`);
  }
  checkAnchoredSchedule(schedule, m, anchor);

  // Checkpoints, each signed by the key valid for its size, each with its sealed statement.
  const checkpoints = new Map<number, Checkpoint>();
  progress({ phase: 'checkpoints', done: 0, total: m.checkpoints.length });
  if (!m.checkpoints.some((c) => c.size === m.tree_size)) fail('MANIFEST_MISMATCH', `the manifest lists no checkpoint of tree size ${m.tree_size}`);
  m.checkpoints.forEach((c, i) => {
    const cpBytes = checkListed(`checkpoints/${c.size}`, c.sha256, 'BUNDLE_CORRUPT');
    const cp = verifyCheckpointNote(cpBytes, c.size, m, schedule);
    checkpoints.set(c.size, cp);
    progress({ phase: 'checkpoints', done: i + 1, total: m.checkpoints.length });
  });
  for (const e of m.envelopes) {
    const envBytes = checkListed(`envelopes/${e.size}.dsse.json`, e.sha256, 'BUNDLE_CORRUPT');
    const cp = checkpoints.get(e.size) ?? fail('MANIFEST_MISMATCH', `envelope for size ${e.size} has no checkpoint in the bundle`);
    verifySegmentEnvelope(envBytes, files.get(`checkpoints/${e.size}`)!, cp, e.size, m, schedule, checkpoints);
  }
  for (const c of m.checkpoints) if (!m.envelopes.some((e) => e.size === c.size)) fail('MANIFEST_MISMATCH', `checkpoint ${c.size} has no envelope in the bundle`);
  const top = checkpoints.get(m.tree_size)!;
  const vouched = verifyAttestations(files, m, checkListed, opts);
  let records = 0;
  let tiles = 0;
  let provenance: AuditVerified | undefined;

  if (m.kind === 'entries') {
    for (const c of m.consistency) {
      const proofBytes = checkListed(consistencyPath(c.from, c.to), c.sha256, 'BUNDLE_CORRUPT');
      const older = checkpoints.get(c.from);
      if (!older || c.to !== m.tree_size) fail('MANIFEST_MISMATCH', `consistency proof ${c.from}→${c.to} does not connect bundle checkpoints`);
      checkConsistency(proofBytes, c.from, c.to, older!.root, top.root);
    }
    for (const c of m.checkpoints) if (c.size !== m.tree_size && !m.consistency.some((x) => x.from === c.size)) fail('CHECKPOINT_INCONSISTENT', `no consistency proof from checkpoint ${c.size} to ${m.tree_size}`);
    verifyEntries(files, m, top, checkpoints, listed, progress);
    tiles = verifyTiles(files, m, top, checkListed);
    records = verifyRecords(files, m, listed);
    if (m.provenance !== undefined) {
      const entryIdx = new Set(m.entries.map((e) => e.index));
      provenance = verifyAuditSection({ files, tenant: m.tenant, trustRoot: given.trustRoot, checkListed,
        entry: (i) => (entryIdx.has(i) ? files.get(`entries/${i}.json`) : undefined), recordIndices: (m.records ?? []).map((r) => r.index) }, m.provenance);
    }
  } else if (m.records !== undefined || m.provenance !== undefined || m.tiles !== undefined) {
    fail('MANIFEST_MISMATCH', 'a whole-log bundle carries no records, provenance or hash tiles');
  } else {
    verifyLog(files, m, checkpoints, listed, progress);
  }
  for (const d of deferredDigests) if (sha256Hex(files.get(d.path)!) !== d.sha) fail('MANIFEST_MISMATCH', `${d.path} does not match the sha256 the manifest lists`);
  for (const p of files.keys()) if (!listed.has(p)) fail('MANIFEST_MISMATCH', `${p} is in the bundle but not in the manifest`);
  progress({ phase: 'done', done: 1, total: 1 });
  return {
    ok: true, tenant: m.tenant, origin: m.origin, caseId: m.case_id, kind: m.kind, treeSize: m.tree_size, rootHex: toHex(top.root),
    entries: m.kind === 'entries' ? m.entries.length : m.tree_size, records, tiles, checkpoints: m.checkpoints.map((c) => c.size),
    keys: schedule.map((k) => ({ keyId: k.verifier.keyIdHex, validFrom: k.validFrom, validUntil: k.validUntil })),
    ...vouched, ...(provenance ? { provenance } : {}),
  };
}

/**
 * Witness cosignatures and time-stamp tokens. Each checkpoint's cosignatures from trusted
 * witnesses must verify (lines from other keys are ignored, as tlog-witness says); each token must
 * verify against the trusted TSA certificates (fail closed: a token that does not is an error, not
 * skipped). The newest checkpoint, the one the entries are proven against, must meet the k-of-n
 * policies; older ones are tied to it by consistency proofs. Without trusted witnesses or TSAs
 * there is nothing to check them against, so they are carried but prove nothing.
 */
function verifyAttestations(files: ReadonlyMap<string, Uint8Array>, m: Manifest, checkListed: (p: string, sha: string, missing: VerifyCause) => Uint8Array,
  opts: VerifyOptions): Pick<VerifiedBundle, 'cosignedBy' | 'timestampedAt'> {
  const sizes = new Set(m.checkpoints.map((c) => c.size));
  const out: Pick<VerifiedBundle, 'cosignedBy' | 'timestampedAt'> = { cosignedBy: [], timestampedAt: [] };
  const cosigs = m.cosignatures ?? [];
  const stamps = m.timestamps ?? [];
  if (!Array.isArray(cosigs) || !Array.isArray(stamps)) fail('BUNDLE_CORRUPT', 'manifest cosignatures/timestamps must be arrays');
  if (new Set(cosigs.map((c) => c.size)).size !== cosigs.length) fail('MANIFEST_MISMATCH', 'the manifest lists cosignatures for one checkpoint twice');
  for (const c of cosigs) {
    if (!sizes.has(c.size)) fail('MANIFEST_MISMATCH', `cosignatures/${c.size} belong to no checkpoint in the bundle`);
    const lines = Buffer.from(checkListed(cosignaturesPath(c.size), c.sha256, 'BUNDLE_CORRUPT')).toString('utf8');
    if (!opts.witnesses) continue;
    let split: string[];
    try { split = splitSignatureLines(lines); } catch (e) { return fail('BUNDLE_CORRUPT', `cosignatures/${c.size}: ${(e as Error).message}`); }
    const cpText = parseNote(Buffer.from(files.get(`checkpoints/${c.size}`)!).toString('utf8')).text;
    const v = checkWitnessPolicy(cpText, split, { ...opts.witnesses, k: c.size === m.tree_size ? opts.witnesses.k : 0 });
    if (!v.ok) fail(v.reason === 'unmet' ? 'WITNESS_POLICY_UNMET' : 'COSIGNATURE_INVALID', `cosignatures/${c.size}: ${v.detail}`);
    if (v.ok && c.size === m.tree_size) out.cosignedBy = v.cosignedBy.map((x) => ({ name: x.name, timestamp: Number(x.timestamp) }));
  }
  if (opts.witnesses && opts.witnesses.k > 0 && !cosigs.some((c) => c.size === m.tree_size)) {
    fail('WITNESS_POLICY_UNMET', `checkpoint ${m.tree_size} has no witness cosignatures; the trust root requires ${opts.witnesses.k} of ${opts.witnesses.keys.length} witnesses`);
  }
  const bySize = new Map<number, Uint8Array[]>();
  for (const t of stamps) {
    if (!sizes.has(t.size)) fail('MANIFEST_MISMATCH', `timestamp token ${t.size}.${t.index} belongs to no checkpoint in the bundle`);
    if (!Number.isSafeInteger(t.index) || t.index !== (bySize.get(t.size)?.length ?? 0)) fail('MANIFEST_MISMATCH', `timestamp tokens of checkpoint ${t.size} are not numbered 0, 1, …`);
    const b = checkListed(timestampBundlePath(t.size, t.index), t.sha256, 'BUNDLE_CORRUPT');
    bySize.set(t.size, [...(bySize.get(t.size) ?? []), b]);
  }
  // A trust root that pins no TSA (exported before one was configured) has nothing to check the
  // tokens against: they are carried and prove nothing, as for cosignatures of unknown witnesses.
  if (opts.tsa && (opts.tsa.certificates.length > 0 || opts.tsa.k > 0)) {
    for (const size of new Set([...bySize.keys(), m.tree_size])) {
      const v = checkTsaPolicy(files.get(`checkpoints/${size}`)!, bySize.get(size) ?? [], { ...opts.tsa, k: size === m.tree_size ? opts.tsa.k : 0 });
      if (!v.ok) fail(v.reason === 'unmet' ? 'TIMESTAMP_POLICY_UNMET' : 'TIMESTAMP_INVALID', `checkpoint ${size}: ${v.detail}`);
      if (v.ok && size === m.tree_size) out.timestampedAt = v.stampedBy.map((x) => x.genTime.toISOString());
    }
  }
  return out;
}

function parseManifest(bytes: Uint8Array): Manifest {
  let m: Manifest;
  try { m = JSON.parse(Buffer.from(bytes).toString('utf8')) as Manifest; } catch { return fail('BUNDLE_CORRUPT', 'manifest.json is not JSON'); }
  if (canonicalize(m) !== Buffer.from(bytes).toString('utf8')) fail('BUNDLE_CORRUPT', 'manifest.json is not canonical JSON (RFC 8785)');
  if (m.format !== BUNDLE_FORMAT) fail('BUNDLE_CORRUPT', `manifest format must be ${BUNDLE_FORMAT}`);
  const arrays = ['entries', 'entry_bundles', 'checkpoints', 'envelopes', 'consistency', 'keys'] as const;
  if (typeof m.tenant !== 'string' || typeof m.origin !== 'string' || typeof m.case_id !== 'string' || !Number.isSafeInteger(m.tree_size) || m.tree_size < 1
    || (m.kind !== 'entries' && m.kind !== 'log') || arrays.some((a) => !Array.isArray(m[a]))) fail('BUNDLE_CORRUPT', 'manifest.json is missing required fields');
  if (m.origin !== defaultOrigin(m.tenant) && !m.origin.endsWith(`/${m.tenant}`)) fail('MANIFEST_MISMATCH', `origin ${m.origin} is not tenant ${m.tenant}'s log`);
  return m;
}

function verifyCheckpointNote(bytes: Uint8Array, size: number, m: Manifest, schedule: readonly KeyValidity[]): Checkpoint {
  const note = Buffer.from(bytes).toString('utf8');
  let cp: Checkpoint;
  try { cp = parseCheckpoint(parseNote(note).text); } catch (e) { return fail('BUNDLE_CORRUPT', `checkpoints/${size}: ${(e as Error).message}`); }
  if (cp.size !== size) fail('MANIFEST_MISMATCH', `checkpoints/${size} holds a checkpoint of size ${cp.size}`);
  if (cp.origin !== m.origin) fail('MANIFEST_MISMATCH', `checkpoints/${size} is from log ${cp.origin}, not ${m.origin}`);
  const key = keyForSize(schedule, size) ?? fail('KEY_UNKNOWN', `no key is valid for checkpoint size ${size}`);
  const v = verifyNote(note, [key.verifier]);
  if (!v.ok) {
    if (v.reason === 'bad-signature') fail('SIGNATURE_INVALID', `checkpoints/${size}: ${v.detail}`);
    const other = verifyNote(note, schedule.map((k) => k.verifier));
    if (other.ok) fail('KEY_UNKNOWN', `checkpoints/${size} is signed by ${other.verifiedBy[0]!.keyIdHex}, which is not valid for size ${size} (key ${key.verifier.keyIdHex} is)`);
    fail(other.ok === false && other.reason === 'bad-signature' ? 'SIGNATURE_INVALID' : 'KEY_UNKNOWN', `checkpoints/${size}: ${v.detail}`);
  }
  return cp;
}

function verifySegmentEnvelope(envBytes: Uint8Array, cpBytes: Uint8Array, cp: Checkpoint, size: number, m: Manifest,
  schedule: readonly KeyValidity[], checkpoints: ReadonlyMap<number, Checkpoint>): void {
  const key = keyForSize(schedule, size)!;
  const v = verifyEnvelope(envBytes, [key.verifier]);
  if (!v.ok) {
    if (v.reason === 'malformed') fail('BUNDLE_CORRUPT', `envelopes/${size}.dsse.json: ${v.detail}`);
    if (v.reason === 'bad-signature') fail('SIGNATURE_INVALID', `envelopes/${size}.dsse.json: ${v.detail}`);
    fail('KEY_UNKNOWN', `envelopes/${size}.dsse.json: ${v.detail}; key ${key.verifier.keyIdHex} is valid for size ${size}`);
  }
  if (!v.ok) return;
  let st: SegmentStatement;
  try { st = JSON.parse(v.payload.toString('utf8')) as SegmentStatement; } catch { return fail('STATEMENT_MISMATCH', `envelopes/${size}.dsse.json: payload is not JSON`); }
  const shape = checkStatementShape(st);
  if (shape) fail('STATEMENT_MISMATCH', `envelopes/${size}.dsse.json: ${shape}`);
  const p = st.predicate;
  if (st.subject[0]!.digest.sha256 !== sha256Hex(cpBytes)) fail('STATEMENT_MISMATCH', `statement ${size} does not digest checkpoints/${size}`);
  if (p.new.size !== size || p.new.root !== toHex(cp.root)) fail('STATEMENT_MISMATCH', `statement ${size} names tree ${p.new.size}/${p.new.root}, checkpoint says ${size}/${toHex(cp.root)}`);
  if (p.tenant !== m.tenant || p.origin !== m.origin) fail('STATEMENT_MISMATCH', `statement ${size} is for tenant ${p.tenant}, bundle for ${m.tenant}`);
  const prevRoot = Buffer.from(p.previous.root, 'hex');
  const proof = p.consistency_proof.map((h) => Buffer.from(h, 'hex'));
  let consistent = false;
  try { consistent = prevRoot.length === 32 && verifyConsistency(p.previous.size, size, proof, prevRoot, cp.root); } catch (e) {
    fail('CHECKPOINT_INCONSISTENT', `statement ${size}: ${(e as Error).message}`);
  }
  if (!consistent) fail('CHECKPOINT_INCONSISTENT', `statement ${size}: its consistency proof does not link ${p.previous.size} to ${size}`);
  const prev = checkpoints.get(p.previous.size);
  if (prev && !bytesEqual(prev.root, prevRoot)) fail('CHECKPOINT_INCONSISTENT', `statement ${size} names previous root ${p.previous.root}, checkpoints/${p.previous.size} says ${toHex(prev.root)}`);
}

function checkConsistency(bytes: Uint8Array, from: number, to: number, oldRoot: Uint8Array, newRoot: Uint8Array): void {
  let ok = false;
  try {
    const c = parseConsistencyProof(Buffer.from(bytes).toString('utf8'));
    if (c.from !== from || c.to !== to) fail('CHECKPOINT_INCONSISTENT', `${consistencyPath(from, to)} proves ${c.from}→${c.to}`);
    ok = verifyConsistency(from, to, c.proof, oldRoot, newRoot);
  } catch (e) {
    if (e instanceof VerifyFailure) throw e;
    fail('CHECKPOINT_INCONSISTENT', `${consistencyPath(from, to)}: ${(e as Error).message}`);
  }
  if (!ok) fail('CHECKPOINT_INCONSISTENT', `checkpoint ${from} is not consistent with checkpoint ${to}`);
}

function verifyEntries(files: ReadonlyMap<string, Uint8Array>, m: Manifest, top: Checkpoint, checkpoints: ReadonlyMap<number, Checkpoint>,
  listed: Set<string>, progress: (p: VerifyProgress) => void): void {
  const topNote = Buffer.from(files.get(`checkpoints/${m.tree_size}`)!).toString('utf8');
  let last = -1;
  m.entries.forEach((e, n) => {
    if (!Number.isSafeInteger(e.index) || e.index <= last || e.index >= m.tree_size) fail('MANIFEST_MISMATCH', `manifest entry ${e.index} is out of order or outside the tree`);
    last = e.index;
    const ep = `entries/${e.index}.json`;
    const pp = `proofs/${e.index}.tlog-proof`;
    listed.add(ep).add(pp);
    const entry = files.get(ep) ?? fail('ENTRY_MISSING', `${ep} is listed in the manifest but missing`);
    const proofText = Buffer.from(files.get(pp) ?? fail('ENTRY_MISSING', `${pp} is missing`)).toString('utf8');
    let ok = false;
    try {
      const p = parseTlogProof(proofText);
      if (p.index !== e.index) fail('MERKLE_MISMATCH', `${pp} proves index ${p.index}, not ${e.index}`);
      if (p.checkpointNote !== topNote) fail('CHECKPOINT_INCONSISTENT', `${pp} carries a checkpoint other than checkpoints/${m.tree_size}`);
      ok = verifyInclusion(leafHash(entry), e.index, m.tree_size, p.proof, top.root);
    } catch (err) {
      if (err instanceof VerifyFailure) throw err;
      fail('MERKLE_MISMATCH', `${pp}: ${(err as Error).message}`);
    }
    if (!ok) fail('MERKLE_MISMATCH', `entry ${e.index} is not included in checkpoint ${m.tree_size} (entry or proof altered)`);
    if (sha256Hex(entry) !== e.sha256) fail('MANIFEST_MISMATCH', `${ep} does not match the sha256 the manifest lists`);
    if (!checkpoints.has(e.sealed_in) || e.sealed_in <= e.index) fail('MANIFEST_MISMATCH', `entry ${e.index} claims to be sealed in checkpoint ${e.sealed_in}, which the bundle does not hold or which does not contain it`);
    if (n % 1000 === 0 || n === m.entries.length - 1) progress({ phase: 'entries', done: n + 1, total: m.entries.length });
  });
}

/**
 * The hash tiles (bundle-tiles.ts): required in audit bundles (a provenance section) and wherever the
 * manifest lists any; absent from both, a case bundle verifies by its proofs alone, as before.
 * Runs after the proofs verified, so a tampered proof is MERKLE_MISMATCH and a tampered tile TILE_MISMATCH.
 */
function verifyTiles(files: ReadonlyMap<string, Uint8Array>, m: Manifest, top: Checkpoint,
  checkListed: (p: string, sha: string, missing: VerifyCause) => Uint8Array): number {
  if (m.tiles === undefined && m.provenance === undefined) return 0;
  if (m.tiles !== undefined && !Array.isArray(m.tiles)) fail('BUNDLE_CORRUPT', 'manifest tiles must be an array');
  const listed = m.tiles ?? [];
  // Register each listed tile (its digest is compared at the end) without failing on absence here:
  // a missing tile is the tile check's to name.
  for (const t of listed) if (typeof t?.path === 'string' && files.has(t.path)) checkListed(t.path, t.sha256, 'TILE_MISMATCH');
  return verifyBundleTiles({
    size: m.tree_size, root: top.root, listed, read: (p) => files.get(p),
    entries: m.entries.map((e) => {
      const entry = files.get(`entries/${e.index}.json`)!;
      return { index: e.index, leaf: leafHash(entry), proof: parseTlogProof(Buffer.from(files.get(`proofs/${e.index}.tlog-proof`)!).toString('utf8')).proof };
    }),
  });
}

/**
 * The clean records: every clean-batch entry of the bundle (already proven included) must come with
 * its record, whose SHA-256 and size are recomputed and compared with the sealed entry. The
 * manifest is not signed, so it only says where the bytes are; the entry says what they must be.
 */
function verifyRecords(files: ReadonlyMap<string, Uint8Array>, m: Manifest, listed: Set<string>): number {
  const recs = m.records ?? [];
  if (!Array.isArray(recs)) fail('BUNDLE_CORRUPT', 'manifest records must be an array');
  const byIndex = new Map<number, { index: number; sha256: string; size: number }>();
  for (const r of recs) {
    if (!Number.isSafeInteger(r.index) || byIndex.has(r.index)) fail('MANIFEST_MISMATCH', `the manifest lists record ${r.index} twice or with a bad index`);
    byIndex.set(r.index, r);
  }
  let n = 0;
  for (const e of m.entries) {
    const clean = parseCleanEntry(files.get(`entries/${e.index}.json`)!);
    const r = byIndex.get(e.index);
    if (!clean) {
      if (r) fail('MANIFEST_MISMATCH', `the manifest lists a record for entry ${e.index}, which is not a clean-batch entry`);
      continue;
    }
    const p = recordBundlePath(e.index);
    listed.add(p);
    if (!r) fail('RECORD_MISSING', `entry ${e.index} logs clean record sha256:${clean.sha256} (${clean.topic}), which the bundle does not carry`);
    const bytes = files.get(p) ?? fail('RECORD_MISSING', `${p} (clean record sha256:${clean.sha256}) is listed in the manifest but missing from the bundle`);
    const got = sha256Hex(bytes);
    if (got !== clean.sha256 || bytes.length !== clean.size) {
      fail('RECORD_MISMATCH', `${p} hashes to sha256:${got} (${bytes.length} bytes); sealed entry ${e.index} says sha256:${clean.sha256} (${clean.size} bytes): the record was altered`);
    }
    if (r!.sha256 !== clean.sha256 || r!.size !== clean.size) fail('MANIFEST_MISMATCH', `the manifest's digest of ${p} differs from its sealed entry`);
    byIndex.delete(e.index);
    n++;
  }
  for (const r of byIndex.values()) fail('MANIFEST_MISMATCH', `the manifest lists a record for entry ${r.index}, which the bundle does not hold`);
  return n;
}

function entryFromLogBundles(files: ReadonlyMap<string, Uint8Array>, m: Manifest, index: number): Uint8Array | undefined {
  if (index >= m.tree_size) return undefined;
  const t = tileInTree(0, Math.floor(index / TILE_WIDTH), m.tree_size)!;
  const b = files.get(entryBundlePath(t.index, t.width));
  if (!b) return undefined;
  try { return decodeEntryBundle(b)[index % TILE_WIDTH]; } catch { return undefined; }
}

function verifyLog(files: ReadonlyMap<string, Uint8Array>, m: Manifest, checkpoints: ReadonlyMap<number, Checkpoint>,
  listed: Set<string>, progress: (p: VerifyProgress) => void): void {
  // Recompute the tree from the entries, streaming: one leaf hash and about one node hash per
  // entry, O(log n) memory, and the root taken at every checkpoint size on the way.
  const range = new CompactRange();
  const sizes = [...checkpoints.keys()].sort((a, b) => a - b);
  let nextSize = 0;
  const total = Math.ceil(m.tree_size / TILE_WIDTH);
  if (m.entry_bundles.length !== total) fail('ENTRY_MISSING', `the log of size ${m.tree_size} needs ${total} entry bundles, the manifest lists ${m.entry_bundles.length}`);
  const checkRoot = (): void => {
    while (nextSize < sizes.length && sizes[nextSize] === range.size) {
      const cp = checkpoints.get(range.size)!;
      const root = range.root();
      if (!bytesEqual(root, cp.root)) fail('MERKLE_MISMATCH', `the entries give root ${toHex(root)} at size ${range.size}, checkpoints/${range.size} says ${toHex(cp.root)}`);
      nextSize++;
    }
  };
  m.entry_bundles.forEach((eb, t) => {
    const tile = tileInTree(0, t, m.tree_size)!;
    if (eb.path !== entryBundlePath(t, tile.width)) fail('MANIFEST_MISMATCH', `entry bundle ${t} should be ${entryBundlePath(t, tile.width)}, manifest says ${eb.path}`);
    listed.add(eb.path);
    const b = files.get(eb.path) ?? fail('ENTRY_MISSING', `${eb.path} is listed in the manifest but missing`);
    let entries: Buffer[];
    try { entries = decodeEntryBundle(b); } catch (e) { return fail('MERKLE_MISMATCH', `${eb.path}: ${(e as Error).message}`); }
    if (entries.length !== tile.width) fail('ENTRY_MISSING', `${eb.path} holds ${entries.length} entries, expected ${tile.width}`);
    for (const e of entries) { range.append(leafHash(e)); checkRoot(); }
    if (t % 64 === 0 || t === total - 1) progress({ phase: 'tree', done: range.size, total: m.tree_size });
  });
  if (nextSize < sizes.length) fail('MANIFEST_MISMATCH', `checkpoint ${sizes[nextSize]} is beyond the log's entries`);
  for (const eb of m.entry_bundles) if (sha256Hex(files.get(eb.path)!) !== eb.sha256) fail('MANIFEST_MISMATCH', `${eb.path} does not match the sha256 the manifest lists`);
}

