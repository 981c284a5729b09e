// C2SP tlog-tiles: tile coordinates and paths, entry bundles, which tiles a tree of size n has,
// building tiles from leaf hashes, and a NodeSource that reads hashes out of tiles.
// Spec: https://c2sp.org/tlog-tiles (tile width 256; level-l tiles hold MTHs of 256^l leaves).
import { HASH_SIZE, nodeHash } from './hash.ts';
import { ProofError, type LeafRange, type NodeSource } from './merkle.ts';

export const TILE_WIDTH = 256;
export const TILE_HEIGHT = 8; // log2(TILE_WIDTH): each tile level spans 8 Merkle levels
export const MAX_ENTRY_SIZE = 0xffff; // entry bundles length-prefix entries with a uint16

/** A tile: `level` is the tile level (0 = leaf hashes), `index` its N, `width` 1..256. */
export interface TileCoord { level: number; index: number; width: number }

/** N as zero-padded 3-digit path elements, all but the last prefixed with `x` (1234067 → x001/x234/067). */
export function encodeTileIndex(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`tile index must be a non-negative integer, got ${n}`);
  const groups: string[] = [];
  let rest = n;
  do {
    groups.unshift(String(rest % 1000).padStart(3, '0'));
    rest = Math.floor(rest / 1000);
  } while (rest > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join('/');
}

export function decodeTileIndex(s: string): number {
  const parts = s.split('/');
  let n = 0;
  parts.forEach((p, i) => {
    const last = i === parts.length - 1;
    if (!(last ? /^\d{3}$/ : /^x\d{3}$/).test(p)) throw new RangeError(`malformed tile index "${s}"`);
    n = n * 1000 + Number(last ? p : p.slice(1));
  });
  return n;
}

function widthSuffix(width: number): string {
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH) throw new RangeError(`tile width must be 1..256, got ${width}`);
  return width === TILE_WIDTH ? '' : `.p/${width}`;
}

/** `tile/<L>/<N>[.p/<W>]` */
export function tilePath(t: TileCoord): string {
  if (!Number.isInteger(t.level) || t.level < 0 || t.level > 63) throw new RangeError(`tile level must be 0..63, got ${t.level}`);
  return `tile/${t.level}/${encodeTileIndex(t.index)}${widthSuffix(t.width)}`;
}

/** `tile/entries/<N>[.p/<W>]` */
export function entryBundlePath(index: number, width: number): string {
  return `tile/entries/${encodeTileIndex(index)}${widthSuffix(width)}`;
}

/** Parse a tile or entry-bundle path; undefined if it is neither. */
export function parseTilePath(p: string): (TileCoord & { entries: boolean }) | undefined {
  const m = /^tile\/(entries|0|[1-9]\d?)\/((?:x\d{3}\/)*\d{3})(?:\.p\/([1-9]\d*))?$/.exec(p);
  if (!m) return undefined;
  const width = m[3] === undefined ? TILE_WIDTH : Number(m[3]);
  if (m[3] !== undefined && width >= TILE_WIDTH) return undefined; // a full tile has no .p/ suffix
  const entries = m[1] === 'entries';
  return { entries, level: entries ? 0 : Number(m[1]), index: decodeTileIndex(m[2]!), width };
}

/** Number of level-`level` tile hashes in a tree of `size` leaves: floor(size / 256^level). */
export const hashesAtTileLevel = (size: number, level: number): number => Math.floor(size / TILE_WIDTH ** level);

/**
 * Every tile a tree of `size` has (full tiles, then the partial tile of each level), level by level.
 * A tree of 70,000: 273 full + 1 partial (112) at level 0, 1 full + 1 partial (17) at level 1, 1 partial (1) at level 2.
 */
export function tilesForSize(size: number): TileCoord[] {
  const out: TileCoord[] = [];
  for (let level = 0; hashesAtTileLevel(size, level) > 0; level++) {
    const count = hashesAtTileLevel(size, level);
    const full = Math.floor(count / TILE_WIDTH);
    for (let i = 0; i < full; i++) out.push({ level, index: i, width: TILE_WIDTH });
    if (count % TILE_WIDTH) out.push({ level, index: full, width: count % TILE_WIDTH });
  }
  return out;
}

/** The tiles that change when a tree grows from `oldSize` to `newSize` (the ones a seal writes). */
export function tilesToWrite(oldSize: number, newSize: number): TileCoord[] {
  const out: TileCoord[] = [];
  for (let level = 0; hashesAtTileLevel(newSize, level) > 0; level++) {
    const before = hashesAtTileLevel(oldSize, level);
    const after = hashesAtTileLevel(newSize, level);
    if (after === before) continue;
    const first = Math.floor(before / TILE_WIDTH);
    const last = Math.floor((after - 1) / TILE_WIDTH);
    for (let i = first; i <= last; i++) out.push({ level, index: i, width: Math.min(TILE_WIDTH, after - i * TILE_WIDTH) });
  }
  return out;
}

/** The tile at `level`/`index` as it exists in a tree of `size` (full or partial); undefined if absent. */
export function tileInTree(level: number, index: number, size: number): TileCoord | undefined {
  const count = hashesAtTileLevel(size, level);
  const width = Math.min(TILE_WIDTH, count - index * TILE_WIDTH);
  return width > 0 ? { level, index, width } : undefined;
}

/** MTH of 2^k consecutive hashes (k ≤ 8), pairwise. */
export function subtreeHash(hashes: readonly Uint8Array[]): Uint8Array {
  let layer = hashes;
  while (layer.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < layer.length; i += 2) next.push(nodeHash(layer[i]!, layer[i + 1]!));
    layer = next;
  }
  return layer[0]!;
}

export function splitTileHashes(bytes: Uint8Array, width: number): Uint8Array[] {
  if (bytes.length !== width * HASH_SIZE) throw new ProofError(`tile of width ${width} must be ${width * HASH_SIZE} bytes, got ${bytes.length}`);
  const out: Uint8Array[] = [];
  for (let i = 0; i < width; i++) out.push(bytes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE));
  return out;
}

/** Entry bundle: concatenation of big-endian uint16 length-prefixed entries. */
export function encodeEntryBundle(entries: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const e of entries) {
    if (e.length > MAX_ENTRY_SIZE) throw new RangeError(`entry of ${e.length} bytes exceeds the ${MAX_ENTRY_SIZE}-byte limit of entry bundles`);
    total += 2 + e.length;
  }
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  for (const e of entries) {
    out.writeUInt16BE(e.length, pos);
    out.set(e, pos + 2);
    pos += 2 + e.length;
  }
  return out;
}

export function decodeEntryBundle(bytes: Uint8Array): Buffer[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (pos + 2 > buf.length) throw new RangeError('entry bundle truncated inside a length prefix');
    const len = buf.readUInt16BE(pos);
    if (pos + 2 + len > buf.length) throw new RangeError('entry bundle truncated inside an entry');
    out.push(buf.subarray(pos + 2, pos + 2 + len));
    pos += 2 + len;
  }
  return out;
}

/**
 * The tiles (as they exist in a tree of `size`) holding the complete subtrees that make up the
 * given ranges: exactly what `tileNodeSource` will ask for, so callers can fetch only these.
 */
export function tilesForRanges(ranges: readonly LeafRange[], size: number): TileCoord[] {
  const seen = new Map<string, TileCoord>();
  forEachSubtree(ranges, (level, index) => {
    const tl = Math.floor(level / TILE_HEIGHT);
    const first = index * 2 ** (level % TILE_HEIGHT);
    const t = tileInTree(tl, Math.floor(first / TILE_WIDTH), size);
    if (!t) throw new ProofError(`node (${level}, ${index}) is outside a tree of size ${size}`);
    seen.set(tilePath(t), t);
  });
  return [...seen.values()];
}

function forEachSubtree(ranges: readonly LeafRange[], f: (level: number, index: number) => void): void {
  for (const [start, end] of ranges) {
    let pos = start;
    while (pos < end) {
      let size = 1;
      let level = 0;
      while (size * 2 <= end - pos) { size *= 2; level++; }
      f(level, pos / size);
      pos += size;
    }
  }
}

/**
 * A NodeSource over tiles of a tree of `size`: node (level, index) lives in tile level
 * floor(level/8) and is the MTH of 2^(level mod 8) consecutive hashes of that tile.
 * `getTile` returns a tile's bytes (a full tile or a wider partial is fine: hashes are a prefix).
 */
export function tileNodeSource(size: number, getTile: (t: TileCoord) => Uint8Array | undefined, nodeMemo?: Map<string, Uint8Array>): NodeSource {
  const cache = new Map<string, Uint8Array[]>();
  return (level, index) => {
    // A complete subtree's hash never changes as the tree grows, so a long-lived reader of one
    // log may memoize node hashes across proofs (upper-level tiles serve every proof).
    const memoKey = nodeMemo ? `${level}/${index}` : '';
    const memoized = nodeMemo?.get(memoKey);
    if (memoized) return memoized;
    const tl = Math.floor(level / TILE_HEIGHT);
    const span = 2 ** (level % TILE_HEIGHT);
    const first = index * span;
    const t = tileInTree(tl, Math.floor(first / TILE_WIDTH), size);
    if (!t) throw new ProofError(`node (${level}, ${index}) is outside a tree of size ${size}`);
    const key = tilePath(t);
    let hashes = cache.get(key);
    if (!hashes) {
      const bytes = getTile(t);
      if (!bytes) throw new ProofError(`tile ${key} is missing`);
      if (bytes.length < t.width * HASH_SIZE || bytes.length % HASH_SIZE !== 0) throw new ProofError(`tile ${key} has ${bytes.length} bytes, need ${t.width * HASH_SIZE}`);
      hashes = splitTileHashes(bytes.subarray(0, t.width * HASH_SIZE), t.width);
      cache.set(key, hashes);
    }
    const offset = first % TILE_WIDTH;
    if (offset + span > hashes.length) throw new ProofError(`node (${level}, ${index}) is not complete in tile ${key}`);
    const h = subtreeHash(hashes.slice(offset, offset + span));
    nodeMemo?.set(memoKey, h);
    return h;
  };
}
