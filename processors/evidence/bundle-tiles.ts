// Tile fragments in case bundles (pure; no I/O): the C2SP tlog-tiles hash tiles
// (`tile/<L>/<N>[.p/<W>]`, exactly as the log serves them for the bundle's tree size) from which a
// verifier recomputes each bundled entry's inclusion proof and the checkpoint's root offline.
// Audit bundles carry them (issue 14 item 4); docs/evidence.md "Tiles in case bundles".
//
// What the tiles must hold, and why each check is there: every hash of every carried tile is bound
// to the signed root. Hashes a proof or the root uses are compared through them; the one hash per
// level a proof does not use (the entry's own ancestor: the leaf itself at level 0, the MTH of the
// full tile below it higher up) is recomputed from the tile below and compared. So a flipped byte
// anywhere in a tile fails, whichever hash it lands in.
import { VerifyFailure } from './causes.ts';
import { HASH_SIZE, bytesEqual, toHex } from './hash.ts';
import { ProofError, inclusionProofRanges, rangeHash, rootFromNodes, type LeafRange } from './merkle.ts';
import { TILE_WIDTH, hashesAtTileLevel, parseTilePath, splitTileHashes, subtreeHash, tileInTree, tileNodeSource, tilePath, tilesForRanges, type TileCoord } from './tiles.ts';

export interface BundleTile { path: string; sha256: string }

const fail = (detail: string): never => { throw new VerifyFailure('TILE_MISMATCH', detail); };

/**
 * The hash tiles of a tree of `size` needed to recompute the inclusion proof of each of `indices`
 * (its siblings and its own leaf hash) and the tree's root, each once, ordered by level then index
 * (a bundle's bytes do not depend on the order indices come in).
 */
export function bundleTiles(indices: readonly number[], size: number): TileCoord[] {
  const ranges: LeafRange[] = [[0, size]];
  for (const i of new Set(indices)) ranges.push(...inclusionProofRanges(i, size), [i, i + 1]);
  return tilesForRanges(ranges, size).sort((a, b) => a.level - b.level || a.index - b.index);
}

export interface TileCheck {
  /** The tree size and root of the bundle's newest (signed, already verified) checkpoint. */
  size: number;
  root: Uint8Array;
  /** Each bundled entry: its index, its leaf hash, and the inclusion proof the bundle carries (already verified). */
  entries: readonly { index: number; leaf: Uint8Array; proof: readonly Uint8Array[] }[];
  /** The tiles the manifest lists. */
  listed: readonly BundleTile[];
  /** A bundle file's bytes (undefined: absent). */
  read: (path: string) => Uint8Array | undefined;
}

/**
 * Recompute every entry's inclusion proof and the root from the bundled tiles; throws
 * VerifyFailure TILE_MISMATCH when a needed tile is missing, the wrong width, altered, not the
 * tree's (another size), unneeded, or disagrees with a carried proof. Returns the tiles checked.
 */
export function verifyBundleTiles(x: TileCheck): number {
  let needed: TileCoord[];
  try { needed = bundleTiles(x.entries.map((e) => e.index), x.size); } catch (e) { return fail((e as Error).message); }
  const neededPaths = new Set(needed.map(tilePath));
  const listedPaths = new Set<string>();
  for (const t of x.listed) {
    if (typeof t?.path !== 'string' || listedPaths.has(t.path)) fail('the manifest lists a tile twice or without a path');
    listedPaths.add(t.path);
    const c = parseTilePath(t.path);
    if (!c || c.entries) fail(`${t.path} is not a C2SP hash tile path (tile/<L>/<N>[.p/<W>])`);
    if (!neededPaths.has(t.path)) {
      const inTree = tileInTree(c!.level, c!.index, x.size);
      fail(inTree && inTree.width !== c!.width
        ? `${t.path} is not a tile of the tree of size ${x.size} (whose tile there is ${tilePath(inTree)}): a tile from another tree size`
        : `${t.path} is not needed by the bundle's proofs or the root of the tree of size ${x.size}${inTree ? '' : ' (the tree has no such tile)'}`);
    }
  }
  const bytesOf = new Map<string, Uint8Array>();
  for (const t of needed) {
    const p = tilePath(t);
    if (!listedPaths.has(p)) fail(`${p} is needed to recompute the proofs and root of the tree of size ${x.size}, but the manifest does not list it`);
    const b = x.read(p) ?? fail(`${p} is listed in the manifest but missing from the bundle`);
    if (b.length !== t.width * HASH_SIZE) fail(`${p} has ${b.length} bytes; a tile of width ${t.width} has ${t.width * HASH_SIZE} (a tile from another tree size?)`);
    bytesOf.set(p, b);
  }
  const node = tileNodeSource(x.size, (t) => bytesOf.get(tilePath(t)));
  const hashAt = (level: number, index: number): Uint8Array => {
    const t = tileInTree(level, Math.floor(index / TILE_WIDTH), x.size)!;
    return splitTileHashes(bytesOf.get(tilePath(t))!, t.width)[index % TILE_WIDTH]!;
  };
  try {
    const root = rootFromNodes(x.size, node);
    if (!bytesEqual(root, x.root)) fail(`the tiles give root ${toHex(root)} for size ${x.size}; the signed checkpoint says ${toHex(x.root)} (a tile was altered)`);
    for (const e of x.entries) {
      const leaf = node(0, e.index);
      if (!bytesEqual(leaf, e.leaf)) fail(`entry ${e.index}: its level-0 tile holds leaf hash ${toHex(leaf)}, the entry hashes to ${toHex(e.leaf)}`);
      const ranges = inclusionProofRanges(e.index, x.size);
      if (ranges.length !== e.proof.length) fail(`entry ${e.index}: the tiles give a ${ranges.length}-hash inclusion proof, the bundle carries ${e.proof.length} hashes`);
      ranges.forEach(([a, b], k) => {
        const h = rangeHash(a, b, node);
        if (!bytesEqual(h, e.proof[k]!)) fail(`entry ${e.index}: inclusion proof hash ${k} is ${toHex(e.proof[k]!)}, the tiles give ${toHex(h)} (MTH of leaves [${a}, ${b}))`);
      });
      // The entry's ancestor at each higher tile level: the MTH of the full tile below holding it.
      for (let level = 1; hashesAtTileLevel(x.size, level) > Math.floor(e.index / TILE_WIDTH ** level); level++) {
        const below = Math.floor(e.index / TILE_WIDTH ** level);
        const upper = tilePath(tileInTree(level, Math.floor(below / TILE_WIDTH), x.size)!);
        if (!bytesOf.has(upper)) continue; // not carried: nothing in the bundle claims it
        const lower = tilePath({ level: level - 1, index: below, width: TILE_WIDTH });
        const lb = bytesOf.get(lower) ?? fail(`${upper} is carried but ${lower}, which it hashes, is not`);
        const want = subtreeHash(splitTileHashes(lb, TILE_WIDTH));
        if (!bytesEqual(hashAt(level, below), want)) fail(`${upper} hash ${below % TILE_WIDTH} is ${toHex(hashAt(level, below))}; ${lower} hashes to ${toHex(want)}`);
      }
    }
  } catch (err) {
    if (err instanceof VerifyFailure) throw err;
    if (err instanceof ProofError) fail(err.message);
    throw err;
  }
  return needed.length;
}
