// Pruning a tenant's log past retention (the I/O around retention.ts), and checking what remains.
//
// Crash safety: for each batch, the markers `pruned/<N>.json` are written (durably) before entry
// bundle N and its superseded partials are deleted. A kill at any point leaves every bundle either
// present (and verifying) or marked; the next prune first finishes every marked bundle (resume).
// Fencing: every write goes through the writer view given (the runner's fenced view, or the one
// `stella forensic prune` claims), so a pruner whose epoch was superseded stops with FencedError
// before changing anything further. docs/evidence.md "Retention and legal hold".
import path from 'node:path';
import { logger } from '../../lib/log.ts';
import { counter } from '../../lib/metrics.ts';
import { bytesEqual, leafHash, toHex } from './hash.ts';
import { parseEnvelope } from './dsse.ts';
import { canonicalBytes } from './jcs.ts';
import { keyForSize } from './keys.ts';
import { prunedMarkerPath, sizesFromNames, type KeyRecord } from './layout.ts';
import { rangeHash } from './merkle.ts';
import { verifyNote } from './note.ts';
import { LogReader, readTile } from './reader.ts';
import { heldByTrace, planPrune, type HoldCover, type IncidentMark, type SegmentTime } from './retention.ts';
import type { SegmentPredicate } from './statement.ts';
import type { EvidenceStore } from './store.ts';
import type { CasDigest, FsBlobStore } from '../../lib/cas.ts';
import { parseCleanEntry } from './clean-entry.ts';
import { packIndexPath, type PackIndexFile } from './record-packs.ts';
import { tracesPath, type TraceIndexFile } from './trace-index.ts';
import { TILE_WIDTH, decodeEntryBundle, entryBundlePath, splitTileHashes, tileInTree, tileNodeSource, tilePath, tilesForRanges } from './tiles.ts';

const log = logger('evidence');
const prunedBundles = counter('stella_evidence_pruned_bundles_total', 'Entry bundles (256 entries each) deleted past retention', []);

export interface PruneOptions {
  /** The tenant's writer view (fenced); must implement removeEntryBundles. */
  store: EvidenceStore;
  tenant: string;
  /** Active holds' covers (holds.ts activeHoldCovers). */
  holds: readonly HoldCover[];
  /** Retention in force for the tenant (with the incident extension when on). */
  retentionMs: number;
  nowMs: number;
  /** Most bundles deleted per call (bounds the time a runner holds the tenant). Default 4096. */
  maxBundles?: number;
  /** Bundles per marker/delete round. Default 64. */
  batch?: number;
  dryRun?: boolean;
  /** After each deleted batch (progress; the kill test uses it). */
  onBatch?: (done: number) => void;
  /**
   * The record store the runner writes (lib/cas.ts): a pruned bundle's record packs, and the record
   * blobs (stored one per record before packs) that no remaining entry references, are deleted too.
   */
  records?: Pick<FsBlobStore, 'remove'>;
  /** Called after the records of a batch are deleted and before its entry bundles are (the kill test uses it). */
  onRecordsSwept?: (bundles: readonly number[]) => void;
}

export interface PruneReport {
  tenant: string;
  size: number;
  cutoff: string;
  /** Bundles deleted by this call (with the resumed ones). */
  pruned: number[];
  /** Marked bundles of an interrupted prune finished by this call. */
  resumed: number[];
  /** Bundles past retention that holds keep. */
  held: { bundle: number; case_id: string }[];
  /** Record packs and record blobs deleted with the pruned bundles (absent when no record store was given). */
  records?: { packs: number; blobs: number };
  dry_run: boolean;
}

/** The sealing time of each segment, from its DSSE statement. */
export async function segmentTimes(store: EvidenceStore, tenant: string): Promise<SegmentTime[]> {
  const reader = new LogReader(store, tenant);
  const out: SegmentTime[] = [];
  for (const s of await reader.sealedSizes()) {
    const env = await reader.envelopeAt(s);
    if (!env) continue;
    const p = (JSON.parse(Buffer.from(parseEnvelope(env).payload, 'base64').toString('utf8')) as { predicate: SegmentPredicate }).predicate;
    out.push({ from: p.previous.size, to: p.new.size, sealedAtMs: Date.parse(p.sealed_at) });
  }
  return out;
}

async function keyRecords(store: EvidenceStore, tenant: string): Promise<KeyRecord[]> {
  const out: KeyRecord[] = [];
  for (const n of await store.list(tenant, 'keys')) {
    const b = await store.read(tenant, `keys/${n}`);
    if (b) out.push(JSON.parse(Buffer.from(b).toString('utf8')) as KeyRecord);
  }
  return out;
}

export async function prunedSet(store: EvidenceStore, tenant: string): Promise<Set<number>> {
  return new Set(sizesFromNames(await store.list(tenant, 'pruned'), '.json'));
}

/** The files of entry bundle N still in the store: the full bundle and any superseded partials. */
async function bundleFiles(store: EvidenceStore, tenant: string, n: number, dirCache: Map<string, string[]>): Promise<string[]> {
  const full = entryBundlePath(n, TILE_WIDTH);
  const dir = path.posix.dirname(full);
  const base = path.posix.basename(full);
  let names = dirCache.get(dir);
  if (!names) dirCache.set(dir, (names = await store.list(tenant, dir)));
  const out: string[] = [];
  if (names.includes(base)) out.push(full);
  if (names.includes(`${base}.p`)) for (const w of await store.list(tenant, `${dir}/${base}.p`)) out.push(`${dir}/${base}.p/${w}`);
  return out;
}

/** Delete what retention allows (see the file comment for the crash and fencing rules). */
export async function pruneTenant(o: PruneOptions): Promise<PruneReport> {
  const { store, tenant } = o;
  if (!o.dryRun && !store.removeEntryBundles) throw new Error('this evidence store cannot delete entry bundles (WORM backends expire them themselves)');
  const reader = new LogReader(store, tenant);
  const size = (await reader.latest())?.checkpoint.size ?? 0;
  const report: PruneReport = { tenant, size, cutoff: new Date(o.nowMs - o.retentionMs).toISOString(), pruned: [], resumed: [], held: [], dry_run: !!o.dryRun };
  const pruned = await prunedSet(store, tenant);
  const dirCache = new Map<string, string[]>();
  // Marked bundles (this call's too): what no longer keeps a record blob alive.
  const gone = new Set(pruned);
  const sweeper = o.records && !o.dryRun ? new RecordSweeper(store, tenant, o.records, size, gone) : undefined;
  if (sweeper) report.records = sweeper.counts;
  // Records go after the markers and before the entry bundles: while a marked bundle's entries are
  // still there, a resumed prune can still tell which records were theirs.
  const removeBundles = async (batch: readonly { n: number; files: string[] }[]): Promise<void> => {
    if (sweeper) {
      await sweeper.sweep(batch.map((b) => b.n));
      o.onRecordsSwept?.(batch.map((b) => b.n));
    }
    await store.removeEntryBundles!(tenant, batch.flatMap((b) => b.files));
  };
  // 1. Resume: a marked bundle whose files are still there is finished first.
  for (const n of [...pruned].sort((a, b) => a - b)) {
    const files = await bundleFiles(store, tenant, n, dirCache);
    if (files.length === 0) continue;
    if (!o.dryRun) await removeBundles([{ n, files }]);
    report.resumed.push(n);
  }
  if (size === 0) return report;
  // 2. Plan from the sealed segments' times, the rotation entries (kept) and the holds.
  const keep = (await keyRecords(store, tenant)).filter((k) => k.rotation_index !== null).map((k) => k.rotation_index!);
  const plan = planPrune({ size, segments: await segmentTimes(store, tenant), keep, holds: o.holds, pruned, nowMs: o.nowMs, retentionMs: o.retentionMs });
  report.held.push(...plan.held);
  const max = o.maxBundles ?? 4096;
  const batchSize = o.batch ?? 64;
  const traceHolds = o.holds.filter((h) => h.trace_ids.length > 0);
  const byTraceRecords = traceHolds.length ? await traceRecordBundles(store, tenant, traceHolds) : undefined;
  let batch: { n: number; files: string[] }[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0 || o.dryRun) { batch = []; return; }
    const prunedAt = new Date(o.nowMs).toISOString();
    await store.writeImmutableMany(tenant, batch.map((b) => ({ path: prunedMarkerPath(b.n),
      bytes: canonicalBytes({ bundle: b.n, entries: { from: b.n * TILE_WIDTH, to: (b.n + 1) * TILE_WIDTH }, pruned_at: prunedAt, cutoff: report.cutoff }) })));
    for (const b of batch) gone.add(b.n);
    await removeBundles(batch);
    prunedBundles.inc(batch.length);
    batch = [];
    o.onBatch?.(report.pruned.length);
  };
  for (const n of plan.candidates) {
    if (report.pruned.length >= max) break;
    const files = await bundleFiles(store, tenant, n, dirCache);
    if (byTraceRecords) {
      // A held trace's clean records (their entries carry no trace_id: the trace index says where they
      // are); a bundle the trace index does not cover is kept as well (fail closed).
      const unknown = byTraceRecords.uncovered.some((u) => u.from < (n + 1) * TILE_WIDTH && u.to > n * TILE_WIDTH);
      const held = byTraceRecords.bundles.get(n) ?? (unknown ? traceHolds[0]!.case_id : undefined);
      if (held) { report.held.push({ bundle: n, case_id: held }); continue; }
    }
    if (traceHolds.length) {
      const full = entryBundlePath(n, TILE_WIDTH);
      const b = files.includes(full) ? await store.read(tenant, full) : undefined;
      const byTrace = b ? heldByTrace(decodeEntryBundle(b), traceHolds) : undefined;
      if (byTrace) { report.held.push({ bundle: n, case_id: byTrace }); continue; }
    }
    report.pruned.push(n);
    batch.push({ n, files });
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  if (report.pruned.length || report.resumed.length) log.info({ tenant_id: tenant, pruned: report.pruned.length, resumed: report.resumed.length, held: report.held.length, cutoff: report.cutoff, ...(report.records ? { record_packs: report.records.packs, record_blobs: report.records.blobs } : {}) }, 'evidence pruned past retention');
  return report;
}

/**
 * Entry bundles holding clean records (span and log batches) of a held trace, from the trace index
 * files (`traces/<size>.json`, trace-index.ts), and the entry ranges from the first file on that no
 * file covers (a file not written yet, or lost until the runner rebuilds it): what is there is unknown.
 */
async function traceRecordBundles(store: EvidenceStore, tenant: string, holds: readonly HoldCover[]): Promise<{ bundles: Map<number, string>; uncovered: { from: number; to: number }[] }> {
  const ids = new Map<string, string>();
  for (const h of holds) for (const t of h.trace_ids) if (!ids.has(t.toLowerCase())) ids.set(t.toLowerCase(), h.case_id);
  const bundles = new Map<number, string>();
  const uncovered: { from: number; to: number }[] = [];
  let coveredTo: number | undefined;
  for (const size of sizesFromNames(await store.list(tenant, 'traces'), '.json')) {
    const b = await store.read(tenant, tracesPath(size));
    if (!b) continue;
    const text = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    // Canonical JSON: the file starts with its `from`.
    const from = Number(/^\{"from":(\d+),/.exec(text.subarray(0, 40).toString('latin1'))?.[1] ?? NaN);
    if (!Number.isSafeInteger(from)) throw new Error(`trace index ${tracesPath(size)} of tenant ${tenant} is not a trace index file`);
    if (coveredTo !== undefined && from > coveredTo) uncovered.push({ from: coveredTo, to: from });
    coveredTo = Math.max(coveredTo ?? 0, size);
    const present = [...ids.keys()].filter((id) => text.indexOf(`"${id}"`) >= 0);
    if (present.length === 0) continue;
    const f = JSON.parse(text.toString('utf8')) as TraceIndexFile;
    for (const id of present) for (const i of f.traces[id] ?? []) { const n = Math.floor(i / TILE_WIDTH); if (!bundles.has(n)) bundles.set(n, ids.get(id)!); }
  }
  if (coveredTo !== undefined) uncovered.push({ from: coveredTo, to: Number.MAX_SAFE_INTEGER });
  return { bundles, uncovered };
}

/**
 * Deletes the stored records of pruned entry bundles (record-packs.ts). Packs are scoped to one
 * bundle (packLabel), so a pruned bundle's packs go with it. Record blobs stored one per record
 * (before packs) deduplicate: one goes only when no entry outside the marked bundles (held, or not
 * yet past retention) is a clean-batch entry with its digest and no pack. Those can exist only
 * between the first trace index file (records storage turned on) and the first pack index, so only
 * that range is scanned for references. Deleting is idempotent: a resumed prune sweeps again.
 */
class RecordSweeper {
  readonly counts = { packs: 0, blobs: 0 };
  private packFroms: number[] | undefined;
  private readonly packFiles = new Map<number, PackIndexFile | undefined>();
  private legacy: { from: number; to: number } | null | undefined;
  private readonly digestsOf = new Map<number, string[]>();
  private readonly reader: LogReader;

  constructor(private readonly store: EvidenceStore, private readonly tenant: string, private readonly cas: Pick<FsBlobStore, 'remove'>,
    private readonly size: number, private readonly gone: ReadonlySet<number>) {
    this.reader = new LogReader(store, tenant);
  }

  /** The pack index files whose seal overlaps entry bundle n. */
  private async packsOf(n: number): Promise<PackIndexFile[]> {
    this.packFroms ??= sizesFromNames(await this.store.list(this.tenant, 'packs'), '.json');
    const lo = n * TILE_WIDTH;
    const hi = lo + TILE_WIDTH;
    let first = -1;
    this.packFroms.forEach((f, k) => { if (f <= lo) first = k; });
    const out: PackIndexFile[] = [];
    for (let k = Math.max(0, first); k < this.packFroms.length && this.packFroms[k]! < hi; k++) {
      const from = this.packFroms[k]!;
      if (!this.packFiles.has(from)) {
        const b = await this.store.read(this.tenant, packIndexPath(from));
        this.packFiles.set(from, b ? JSON.parse(Buffer.from(b).toString('utf8')) as PackIndexFile : undefined);
      }
      const f = this.packFiles.get(from);
      if (f) out.push(f);
    }
    return out;
  }

  /** [first trace index from, first pack index from): where records may be stored one blob per record (null: nowhere). */
  private async legacyRange(): Promise<{ from: number; to: number } | null> {
    if (this.legacy !== undefined) return this.legacy;
    const traces = sizesFromNames(await this.store.list(this.tenant, 'traces'), '.json');
    this.packFroms ??= sizesFromNames(await this.store.list(this.tenant, 'packs'), '.json');
    let from: number | undefined;
    if (traces.length) {
      const b = await this.store.read(this.tenant, tracesPath(traces[0]!));
      from = b ? (JSON.parse(Buffer.from(b).toString('utf8')) as TraceIndexFile).from : 0;
    }
    const to = this.packFroms[0] ?? this.size;
    return (this.legacy = from !== undefined && from < to ? { from, to } : null);
  }

  /** Digests of the clean-batch entries of bundle n (within the legacy range) whose records are not packed. */
  private async unpackedDigests(n: number, range: { from: number; to: number }): Promise<string[]> {
    let d = this.digestsOf.get(n);
    if (d) return d;
    const lo = Math.max(n * TILE_WIDTH, range.from);
    const hi = Math.min((n + 1) * TILE_WIDTH, range.to, this.size);
    d = [];
    if (lo < hi) {
      const packed = new Set((await this.packsOf(n)).flatMap((f) => f.packs.filter((p) => p.bundle === n).flatMap((p) => p.records.map((r) => r.index))));
      const entries = await this.reader.entriesIn(lo, hi, this.size);
      entries.forEach((e, k) => {
        const c = parseCleanEntry(e);
        if (c && !packed.has(lo + k)) d!.push(c.sha256);
      });
    }
    this.digestsOf.set(n, d);
    return d;
  }

  async sweep(bundles: readonly number[]): Promise<void> {
    const packs = new Set<string>();
    for (const n of bundles) for (const f of await this.packsOf(n)) for (const p of f.packs) if (p.bundle === n) packs.add(p.pack);
    const blobs = new Set<string>();
    const range = await this.legacyRange();
    if (range) {
      for (const n of bundles) for (const d of await this.unpackedDigests(n, range)) blobs.add(d);
      if (blobs.size) {
        // References from every bundle not marked pruned (held, or not past retention) in the range.
        for (let m = Math.floor(range.from / TILE_WIDTH); m * TILE_WIDTH < Math.min(range.to, this.size); m++) {
          if (this.gone.has(m)) continue;
          for (const d of await this.unpackedDigests(m, range)) blobs.delete(d);
        }
      }
    }
    if (packs.size === 0 && blobs.size === 0) return;
    await this.cas.remove(this.tenant, { packs: [...packs], blobs: [...blobs].map((h) => `sha256:${h}` as CasDigest) });
    this.counts.packs += packs.size;
    this.counts.blobs += blobs.size;
  }
}

/** Where the runner records each sealed incident.mode.* event of a tenant's log (derived data, never pruned). */
export const incidentMarkPath = (index: number): string => `incidents/${index}.json`;

/** The tenant's latest sealed incident mark (undefined: none recorded). */
export async function latestIncident(store: EvidenceStore, tenant: string): Promise<IncidentMark | undefined> {
  const last = sizesFromNames(await store.list(tenant, 'incidents'), '.json').pop();
  if (last === undefined) return undefined;
  const b = await store.read(tenant, incidentMarkPath(last));
  return b ? JSON.parse(Buffer.from(b).toString('utf8')) as IncidentMark : undefined;
}

// ---- what remains still verifies ---------------------------------------------------------------

export interface StoreCheck {
  ok: boolean;
  tenant: string;
  size: number;
  checkpoints: number;
  bundles_checked: number;
  bundles_pruned: number;
  /** A named cause when not ok: MERKLE_MISMATCH, ENTRY_MISSING, SIGNATURE_INVALID, KEY_UNKNOWN. */
  cause?: string;
  detail?: string;
}

/**
 * Check a tenant's stored log as it is after pruning: every checkpoint signed by the key its size
 * calls for (the log's own key schedule), every checkpoint's root recomputed from the tiles, every
 * entry bundle still present hashing to its level-0 tile, and every missing bundle marked pruned.
 */
export async function checkStoredLog(store: EvidenceStore, tenant: string): Promise<StoreCheck> {
  const reader = new LogReader(store, tenant);
  const sizes = await reader.sealedSizes();
  const size = sizes[sizes.length - 1] ?? 0;
  const res: StoreCheck = { ok: true, tenant, size, checkpoints: sizes.length, bundles_checked: 0, bundles_pruned: 0 };
  const bad = (cause: string, detail: string): StoreCheck => ({ ...res, ok: false, cause, detail });
  if (size === 0) return res;
  const schedule = await reader.keySchedule(size);
  for (const s of sizes) {
    const cp = await reader.checkpointAt(s);
    if (!cp) return bad('CHECKPOINT_INCONSISTENT', `checkpoints/${s} is missing`);
    const key = keyForSize(schedule, s);
    if (!key) return bad('KEY_UNKNOWN', `no key is valid for size ${s}`);
    const v = verifyNote(cp.note, [key.verifier]);
    if (!v.ok) return bad('SIGNATURE_INVALID', `checkpoints/${s}: ${v.detail}`);
    const tiles = new Map<string, Uint8Array>();
    for (const t of tilesForRanges([[0, s]], s)) {
      const b = await readTile(store, tenant, t);
      if (!b) return bad('MERKLE_MISMATCH', `tile ${tilePath(t)} is missing`);
      tiles.set(tilePath(t), b);
    }
    const root = rangeHash(0, s, tileNodeSource(s, (t) => tiles.get(tilePath(t))));
    if (!bytesEqual(root, cp.checkpoint.root)) return bad('MERKLE_MISMATCH', `the tiles give root ${toHex(root)} at size ${s}, checkpoints/${s} says ${toHex(cp.checkpoint.root)}`);
  }
  const pruned = await prunedSet(store, tenant);
  for (let n = 0; n * TILE_WIDTH < size; n++) {
    const t = tileInTree(0, n, size)!;
    let b = await store.read(tenant, entryBundlePath(n, t.width));
    if (!b && t.width < TILE_WIDTH) b = await store.read(tenant, entryBundlePath(n, TILE_WIDTH));
    if (!b) {
      if (pruned.has(n)) { res.bundles_pruned++; continue; }
      return bad('ENTRY_MISSING', `entry bundle ${entryBundlePath(n, t.width)} is missing and not recorded as pruned`);
    }
    const tile = await readTile(store, tenant, t);
    if (!tile) return bad('MERKLE_MISMATCH', `tile ${tilePath(t)} is missing`);
    const hashes = splitTileHashes(tile.subarray(0, t.width * 32), t.width);
    const entries = decodeEntryBundle(b).slice(0, t.width);
    if (entries.length !== t.width) return bad('ENTRY_MISSING', `entry bundle ${n} holds ${entries.length} entries, expected ${t.width}`);
    for (let i = 0; i < t.width; i++) {
      if (!bytesEqual(leafHash(entries[i]!), hashes[i]!)) return bad('MERKLE_MISMATCH', `entry ${n * TILE_WIDTH + i} does not hash to its leaf in ${tilePath(t)}`);
    }
    res.bundles_checked++;
  }
  return res;
}
