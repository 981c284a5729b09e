// The right edge of a tiled log: everything needed to append to it without reading the whole
// tree. For a tree of size s it is, per tile level, the hashes of that level's partial tile, plus
// the entries of the partial entry bundle. The root is a fold over these hashes.
import { leafHash } from './hash.ts';
import { EMPTY_ROOT } from './hash.ts';
import { nodeHash } from './hash.ts';
import {
  TILE_WIDTH, encodeEntryBundle, entryBundlePath, hashesAtTileLevel, subtreeHash, tilePath,
} from './tiles.ts';

export interface LogEdge {
  readonly size: number;
  /** partialTiles[l] = hashes of the partial tile at tile level l (empty when that level has none). */
  readonly partialTiles: readonly (readonly Uint8Array[])[];
  /** Entries of the partial entry bundle (size mod 256 of them). */
  readonly partialEntries: readonly Uint8Array[];
}

export const EMPTY_EDGE: LogEdge = { size: 0, partialTiles: [], partialEntries: [] };

export interface FileWrite { path: string; bytes: Uint8Array }

export interface ExtendResult {
  edge: LogEdge;
  root: Uint8Array;
  /** Tiles and entry bundles that changed (full and partial), in a deterministic order. */
  files: FileWrite[];
  /** Leaf hashes of the appended entries, in order (handy for callers that index them). */
  leafHashes: Uint8Array[];
}

/** Root of the tree whose right edge this is. */
export function edgeRoot(edge: LogEdge): Uint8Array {
  if (edge.size === 0) return EMPTY_ROOT;
  // Complete subtrees left to right: higher tile levels first, within a tile bigger chunks first.
  const parts: Uint8Array[] = [];
  for (let l = edge.partialTiles.length - 1; l >= 0; l--) {
    const hashes = edge.partialTiles[l]!;
    let pos = 0;
    for (let bit = TILE_WIDTH / 2; bit >= 1; bit /= 2) {
      if (hashes.length & bit) { parts.push(subtreeHash(hashes.slice(pos, pos + bit))); pos += bit; }
    }
  }
  let acc = parts[parts.length - 1]!;
  for (let i = parts.length - 2; i >= 0; i--) acc = nodeHash(parts[i]!, acc);
  return acc;
}

function concatHashes(hashes: readonly Uint8Array[]): Buffer {
  return Buffer.concat(hashes as Uint8Array[]);
}

/** Append entries to the log edge: the new edge, root, and every tile/bundle file to write. */
export function extendEdge(edge: LogEdge, entries: readonly Uint8Array[]): ExtendResult {
  const oldSize = edge.size;
  const newSize = oldSize + entries.length;
  const leafHashes = entries.map((e) => leafHash(e));
  const files: FileWrite[] = [];

  // Entry bundles mirror level-0 tiles.
  {
    const all = [...edge.partialEntries, ...entries];
    const firstIndex = Math.floor(oldSize / TILE_WIDTH);
    let partialEntries: Uint8Array[] = [];
    for (let i = 0; i * TILE_WIDTH < all.length; i++) {
      const chunk = all.slice(i * TILE_WIDTH, (i + 1) * TILE_WIDTH);
      if (entries.length > 0) files.push({ path: entryBundlePath(firstIndex + i, chunk.length), bytes: encodeEntryBundle(chunk) });
      if (chunk.length < TILE_WIDTH) partialEntries = chunk;
    }
    if (all.length % TILE_WIDTH === 0) partialEntries = [];
    edge = { ...edge, partialEntries };
  }

  const partialTiles: Uint8Array[][] = [];
  let incoming: Uint8Array[] = leafHashes;
  for (let level = 0; level < Math.max(edge.partialTiles.length, 1) || incoming.length > 0; level++) {
    const existing = edge.partialTiles[level] ?? [];
    if (incoming.length === 0) { partialTiles.push([...existing]); continue; }
    const all = [...existing, ...incoming];
    const firstIndex = Math.floor(hashesAtTileLevel(oldSize, level) / TILE_WIDTH);
    const promoted: Uint8Array[] = [];
    let partial: Uint8Array[] = [];
    for (let i = 0; i * TILE_WIDTH < all.length; i++) {
      const chunk = all.slice(i * TILE_WIDTH, (i + 1) * TILE_WIDTH);
      files.push({ path: tilePath({ level, index: firstIndex + i, width: chunk.length }), bytes: concatHashes(chunk) });
      if (chunk.length === TILE_WIDTH) promoted.push(subtreeHash(chunk));
      else partial = chunk;
    }
    partialTiles.push(partial);
    incoming = promoted;
  }
  while (partialTiles.length > 0 && partialTiles[partialTiles.length - 1]!.length === 0 && hashesAtTileLevel(newSize, partialTiles.length - 1) === 0) partialTiles.pop();
  const next: LogEdge = { size: newSize, partialTiles, partialEntries: edge.partialEntries };
  return { edge: next, root: edgeRoot(next), files, leafHashes };
}
