// Reading a tenant's sealed log back from the store: checkpoints, entries, proofs from tiles,
// the key schedule. Reads only the tiles a proof needs.
import { fromB64Strict, toB64 } from './hash.ts';
import { parseKeyRotation, keySchedule, type KeyValidity } from './keys.ts';
import { CHECKPOINT_FILE, checkpointHistoryPath, envelopePath, prunedMarkerPath, sizesFromNames, type KeyRecord } from './layout.ts';
import { EntryPrunedError } from './causes.ts';
import { consistencyProofRanges, inclusionProofRanges, rangeHash, ProofError } from './merkle.ts';
import { parseCheckpoint, parseNote, parseVerifierKey, type Checkpoint } from './note.ts';
import type { EvidenceStore } from './store.ts';
import { TILE_WIDTH, decodeEntryBundle, entryBundlePath, tileInTree, tileNodeSource, tilePath, tilesForRanges, type TileCoord } from './tiles.ts';

export interface SignedCheckpoint { note: string; bytes: Uint8Array; checkpoint: Checkpoint }

export function parseSignedCheckpoint(bytes: Uint8Array): SignedCheckpoint {
  const note = Buffer.from(bytes).toString('utf8');
  return { note, bytes, checkpoint: parseCheckpoint(parseNote(note).text) };
}

/** Read one tile, accepting a full tile (or a wider partial) in place of a superseded partial one. */
export async function readTile(store: EvidenceStore, tenant: string, t: TileCoord): Promise<Uint8Array | undefined> {
  const exact = await store.read(tenant, tilePath(t));
  if (exact || t.width === TILE_WIDTH) return exact;
  return store.read(tenant, tilePath({ ...t, width: TILE_WIDTH }));
}

export interface LogReaderOptions {
  /** Keep up to this many tiles in memory. Tile paths name immutable content (the width is in the
   *  path), so a cached tile never goes stale; upper-level tiles are shared by most proofs. */
  tileCache?: number;
}

export class LogReader {
  private readonly cache = new Map<string, Uint8Array>();
  private readonly cacheMax: number;
  private readonly nodeMemo: Map<string, Uint8Array> | undefined;

  constructor(readonly store: EvidenceStore, readonly tenant: string, opts: LogReaderOptions = {}) {
    this.cacheMax = opts.tileCache ?? 0;
    this.nodeMemo = this.cacheMax > 0 ? new Map() : undefined;
  }

  private async tile(t: TileCoord): Promise<Uint8Array | undefined> {
    const key = tilePath(t);
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key); // refresh LRU position
      this.cache.set(key, hit);
      return hit;
    }
    const b = await readTile(this.store, this.tenant, t);
    if (b && this.cacheMax > 0) {
      this.cache.set(key, b);
      if (this.cache.size > this.cacheMax) this.cache.delete(this.cache.keys().next().value!);
    }
    return b;
  }

  async latest(): Promise<SignedCheckpoint | undefined> {
    const b = await this.store.read(this.tenant, CHECKPOINT_FILE);
    return b ? parseSignedCheckpoint(b) : undefined;
  }

  async checkpointAt(size: number): Promise<SignedCheckpoint | undefined> {
    const b = await this.store.read(this.tenant, checkpointHistoryPath(size));
    return b ? parseSignedCheckpoint(b) : undefined;
  }

  async envelopeAt(size: number): Promise<Uint8Array | undefined> {
    return this.store.read(this.tenant, envelopePath(size));
  }

  /** Sizes of all sealed segments (those with an envelope), ascending. */
  async sealedSizes(): Promise<number[]> {
    return sizesFromNames(await this.store.list(this.tenant, 'envelopes'), '.dsse.json');
  }

  /** Hash source reading only the needed tiles of a tree of `size` for the given proof ranges. */
  private async nodesFor(ranges: readonly (readonly [number, number])[], size: number) {
    const tiles = tilesForRanges(ranges, size);
    const loaded = new Map<string, Uint8Array>();
    await Promise.all(tiles.map(async (t) => {
      const b = await this.tile(t);
      if (!b) throw new ProofError(`tile ${tilePath(t)} is missing from the store`);
      loaded.set(tilePath(t), b);
    }));
    // Bound the memo roughly like the tile cache (a tile yields at most 255 memoized nodes).
    if (this.nodeMemo && this.nodeMemo.size > this.cacheMax * 64) this.nodeMemo.clear();
    return tileNodeSource(size, (t) => loaded.get(tilePath(t)), this.nodeMemo);
  }

  async inclusionProof(index: number, size: number): Promise<Uint8Array[]> {
    const ranges = inclusionProofRanges(index, size);
    const node = await this.nodesFor(ranges, size);
    return ranges.map(([a, b]) => rangeHash(a, b, node));
  }

  async consistencyProof(m: number, n: number): Promise<Uint8Array[]> {
    const ranges = consistencyProofRanges(m, n);
    if (ranges.length === 0) return [];
    const node = await this.nodesFor(ranges, n);
    return ranges.map(([a, b]) => rangeHash(a, b, node));
  }

  /** Entry `index` as sealed in a tree of `size` (read from its entry bundle). */
  async entry(index: number, size: number): Promise<Uint8Array> {
    if (index >= size) throw new ProofError(`entry ${index} is not in a tree of size ${size}`);
    const e = (await this.bundleOf(index, size))[index % TILE_WIDTH];
    if (!e) throw new ProofError(`entry ${index} is missing from its bundle`);
    return e;
  }

  /** Entries [from, to) as sealed in a tree of `size`, one entry bundle read per 256 entries. */
  async entriesIn(from: number, to: number, size: number): Promise<Uint8Array[]> {
    if (to > size) throw new ProofError(`entry ${to - 1} is not in a tree of size ${size}`);
    const out: Uint8Array[] = [];
    for (let i = from; i < to;) {
      const bundle = await this.bundleOf(i, size);
      const end = Math.min(to, (Math.floor(i / TILE_WIDTH) + 1) * TILE_WIDTH);
      for (; i < end; i++) {
        const e = bundle[i % TILE_WIDTH];
        if (!e) throw new ProofError(`entry ${i} is missing from its bundle`);
        out.push(e);
      }
    }
    return out;
  }

  private async bundleOf(index: number, size: number): Promise<Uint8Array[]> {
    const t = tileInTree(0, Math.floor(index / TILE_WIDTH), size)!;
    let b = await this.store.read(this.tenant, entryBundlePath(t.index, t.width));
    if (!b && t.width < TILE_WIDTH) b = await this.store.read(this.tenant, entryBundlePath(t.index, TILE_WIDTH));
    if (!b) {
      await throwIfPruned(this.store, this.tenant, t.index, index);
      throw new ProofError(`entry bundle ${entryBundlePath(t.index, t.width)} is missing`);
    }
    return decodeEntryBundle(b);
  }

  /** The key records in the store, committed up to `size` (rotations beyond it are not yet sealed). */
  async keySchedule(size: number): Promise<KeyValidity[]> {
    const names = (await this.store.list(this.tenant, 'keys')).filter((n) => n.endsWith('.json'));
    const records: KeyRecord[] = [];
    for (const n of names) {
      const b = await this.store.read(this.tenant, `keys/${n}`);
      if (b) records.push(JSON.parse(Buffer.from(b).toString('utf8')) as KeyRecord);
    }
    const committed = records.filter((r) => r.rotation_index === null || r.rotation_index < size);
    const genesis = committed.find((r) => r.rotation_index === null);
    if (!genesis) throw new Error(`tenant ${this.tenant} has no genesis key record`);
    const rotations = [];
    for (const r of committed.filter((x) => x.rotation_index !== null).sort((a, b) => a.rotation_index! - b.rotation_index!)) {
      const entry = parseKeyRotation(await this.entry(r.rotation_index!, size));
      if (!entry) throw new Error(`entry ${r.rotation_index} is not the key rotation keys/ says it is`);
      rotations.push({ index: r.rotation_index!, entry });
    }
    return keySchedule(parseVerifierKey(genesis.verifier_key), rotations);
  }
}


/** Throw ENTRY_PRUNED when retention recorded entry bundle `bundle` as pruned (else return). */
export async function throwIfPruned(store: EvidenceStore, tenant: string, bundle: number, index: number): Promise<void> {
  const m = await store.read(tenant, prunedMarkerPath(bundle));
  if (!m) return;
  let at = 'an unknown time';
  try { at = String((JSON.parse(Buffer.from(m).toString('utf8')) as { pruned_at?: unknown }).pruned_at ?? at); } catch { /* the marker's existence is what counts */ }
  throw new EntryPrunedError(index, bundle, at);
}

// ---- C2SP tlog-proof ---------------------------------------------------------------------------

export const TLOG_PROOF_HEADER = 'c2sp.org/tlog-proof@v1';

export function formatTlogProof(index: number, proof: readonly Uint8Array[], checkpointNote: string, extra?: Uint8Array): string {
  const lines = [TLOG_PROOF_HEADER];
  if (extra) lines.push(`extra ${toB64(extra)}`);
  lines.push(`index ${index}`);
  for (const h of proof) lines.push(toB64(h));
  return `${lines.join('\n')}\n\n${checkpointNote}`;
}

export interface TlogProof { index: number; proof: Buffer[]; checkpointNote: string; extra?: Buffer }

export function parseTlogProof(text: string): TlogProof {
  const lines = text.split('\n');
  let i = 0;
  if (lines[i++] !== TLOG_PROOF_HEADER) throw new ProofError(`tlog-proof must start with ${TLOG_PROOF_HEADER}`);
  let extra: Buffer | undefined;
  if (lines[i]?.startsWith('extra ')) {
    extra = fromB64Strict(lines[i]!.slice(6));
    if (!extra) throw new ProofError('tlog-proof extra line is not base64');
    i++;
  }
  const m = /^index (0|[1-9]\d*)$/.exec(lines[i++] ?? '');
  if (!m || !Number.isSafeInteger(Number(m[1]))) throw new ProofError('tlog-proof index line must be "index <decimal>"');
  const proof: Buffer[] = [];
  for (; i < lines.length && lines[i] !== ''; i++) {
    const h = fromB64Strict(lines[i]!);
    if (!h || h.length !== 32) throw new ProofError(`tlog-proof line ${i + 1} is not a base64 SHA-256 hash`);
    proof.push(h);
  }
  if (lines[i] !== '') throw new ProofError('tlog-proof has no blank line before its checkpoint');
  const checkpointNote = lines.slice(i + 1).join('\n');
  if (checkpointNote === '') throw new ProofError('tlog-proof has no checkpoint');
  return { index: Number(m[1]), proof, checkpointNote, ...(extra ? { extra } : {}) };
}
