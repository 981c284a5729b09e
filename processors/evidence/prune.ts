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
  // 1. Resume: a marked bundle whose files are still there is finished first.
  for (const n of [...pruned].sort((a, b) => a - b)) {
    const files = await bundleFiles(store, tenant, n, dirCache);
    if (files.length === 0) continue;
    if (!o.dryRun) await store.removeEntryBundles!(tenant, files);
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
  let batch: { n: number; files: string[] }[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0 || o.dryRun) { batch = []; return; }
    const prunedAt = new Date(o.nowMs).toISOString();
    await store.writeImmutableMany(tenant, batch.map((b) => ({ path: prunedMarkerPath(b.n),
      bytes: canonicalBytes({ bundle: b.n, entries: { from: b.n * TILE_WIDTH, to: (b.n + 1) * TILE_WIDTH }, pruned_at: prunedAt, cutoff: report.cutoff }) })));
    await store.removeEntryBundles!(tenant, batch.flatMap((b) => b.files));
    prunedBundles.inc(batch.length);
    batch = [];
    o.onBatch?.(report.pruned.length);
  };
  for (const n of plan.candidates) {
    if (report.pruned.length >= max) break;
    const files = await bundleFiles(store, tenant, n, dirCache);
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
  if (report.pruned.length || report.resumed.length) log.info({ tenant_id: tenant, pruned: report.pruned.length, resumed: report.resumed.length, held: report.held.length, cutoff: report.cutoff }, 'evidence pruned past retention');
  return report;
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
