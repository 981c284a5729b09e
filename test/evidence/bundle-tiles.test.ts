// Hash tiles in case bundles: which C2SP tiles a bundle carries, and that every one of their hashes
// is bound to the signed root (processors/evidence/bundle-tiles.ts). The pure part against tiles
// derived here from an in-memory tree by the spec's formula; the bundle part on a real sealed store.
import { beforeAll, describe, expect, it } from 'vitest';
import { buildBundle, verifyBundle, type Manifest, type VerifyResult } from '../../processors/evidence/bundle.ts';
import { bundleTiles, verifyBundleTiles, type BundleTile } from '../../processors/evidence/bundle-tiles.ts';
import { VerifyFailure } from '../../processors/evidence/causes.ts';
import { leafHash, sha256Hex } from '../../processors/evidence/hash.ts';
import { canonicalBytes } from '../../processors/evidence/jcs.ts';
import { MemoryTree } from '../../processors/evidence/merkle.ts';
import { Sealer } from '../../processors/evidence/sealer.ts';
import type { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { gunzip, gzipDeterministic, readTar, writeTar } from '../../processors/evidence/tar.ts';
import { tilePath, tilesForSize, type TileCoord } from '../../processors/evidence/tiles.ts';
import type { TrustRoot } from '../../processors/evidence/trust-root.ts';
import { TENANT, items, tempStore, testSigner, trustRootOf } from './helpers.ts';

// ---- the pure part --------------------------------------------------------------------------

const trees = new Map<string, MemoryTree>();
/** A tree of `size` leaves (entries "<salt>-<i>"), memoized. */
function tree(size: number, salt = 'a'): MemoryTree {
  const k = `${salt}/${size}`;
  let t = trees.get(k);
  if (!t) trees.set(k, (t = new MemoryTree(Array.from({ length: size }, (_, i) => leafHash(Buffer.from(`${salt}-${i}`))))));
  return t;
}
/** Tile `t` by C2SP tlog-tiles' definition: hash i is MTH(D[(N*256+i)*256^L : (N*256+i+1)*256^L]), a complete node at level 8L. */
function tileBytes(mt: MemoryTree, t: TileCoord): Buffer {
  return Buffer.concat(Array.from({ length: t.width }, (_, i) => mt.levels[8 * t.level]![t.index * 256 + i]!));
}

interface Case { size: number; indices: number[]; files: Map<string, Uint8Array>; listed: BundleTile[]; proofs: Map<number, Uint8Array[]>; salt: string }
function makeCase(size: number, indices: number[], salt = 'a'): Case {
  const mt = tree(size, salt);
  const files = new Map<string, Uint8Array>();
  const listed: BundleTile[] = [];
  for (const t of bundleTiles(indices, size)) {
    const b = tileBytes(mt, t);
    files.set(tilePath(t), b);
    listed.push({ path: tilePath(t), sha256: sha256Hex(b) });
  }
  return { size, indices, files, listed, salt, proofs: new Map(indices.map((i) => [i, mt.inclusionProof(i, size)])) };
}
function check(c: Case, over: { files?: Map<string, Uint8Array>; listed?: BundleTile[]; proofs?: Map<number, Uint8Array[]>; leaf?: (i: number) => Uint8Array } = {}): number {
  const files = over.files ?? c.files;
  return verifyBundleTiles({
    size: c.size, root: tree(c.size, c.salt).root(), listed: over.listed ?? c.listed, read: (p) => files.get(p),
    entries: c.indices.map((i) => ({ index: i, leaf: over.leaf?.(i) ?? leafHash(Buffer.from(`${c.salt}-${i}`)), proof: (over.proofs ?? c.proofs).get(i)! })),
  });
}
/** The cause and detail a check fails with ('ok' when it passes). */
function outcome(f: () => unknown): string {
  try { f(); return 'ok'; } catch (e) { if (e instanceof VerifyFailure) return `${e.code}: ${e.detail}`; throw e; }
}
const flipped = (b: Uint8Array, at: number): Buffer => { const c = Buffer.from(b); c[at]! ^= 0x01; return c; };

describe('bundle tiles (pure)', () => {
  it('selects the tiles the proofs and the root need, once each, by level then index, whatever the order of the indices', () => {
    // C2SP's example tree of 70,000: 273 full + 1 partial (112) at level 0, 1 full + 1 partial (17) at level 1, 1 partial (1) at level 2.
    const tiles = bundleTiles([10, 69_999, 40_000, 10], 70_000).map(tilePath);
    expect(tiles).toEqual([
      'tile/0/000', 'tile/0/156', 'tile/0/273.p/112', // leaf tiles of 10 and 40,000; the right edge (69,999 and the root)
      'tile/1/000', 'tile/1/001.p/17', // 10's and 40,000's level-8..15 siblings; the root's middle
      'tile/2/000.p/1', // the root's left 65,536 leaves
    ]);
    expect(bundleTiles([69_999, 10, 40_000], 70_000).map(tilePath)).toEqual(tiles);
    const all = new Set(tilesForSize(70_000).map(tilePath));
    for (const p of tiles) expect(all.has(p)).toBe(true);
    // Small trees: one partial tile; 256 leaves: a full tile and the level-1 partial of width 1.
    expect(bundleTiles([0, 3], 4).map(tilePath)).toEqual(['tile/0/000.p/4']);
    expect(bundleTiles([7], 256).map(tilePath)).toEqual(['tile/0/000', 'tile/1/000.p/1']);
  });

  it('recomputes every proof and the root from the tiles, at sizes around tile boundaries and three tile levels', () => {
    for (const [size, indices] of [[1, [0]], [2, [1]], [255, [0, 254]], [256, [0, 255]], [257, [256, 3]], [513, [0, 300, 512]], [600, [5, 299, 300, 599]],
      [65_536, [0, 65_535]], [70_000, [10, 40_000, 65_535, 65_536, 69_999]]] as [number, number[]][]) {
      const c = makeCase(size, indices);
      expect({ size, n: check(c) }).toEqual({ size, n: c.listed.length });
      // The growth docs/evidence.md states: at most (k + 1) tiles per tile level.
      const levels = Math.floor(Math.log(size) / Math.log(256) + 1e-9) + 1;
      expect(c.listed.length).toBeLessThanOrEqual((indices.length + 1) * levels);
      // Each tile is needed: without any one of them (file and listing), it fails naming that tile.
      for (const t of c.listed) {
        const files = new Map(c.files);
        files.delete(t.path);
        expect(outcome(() => check(c, { files, listed: c.listed.filter((x) => x !== t) }))).toMatch(new RegExp(`^TILE_MISMATCH: ${t.path.replace(/\./g, '\\.')} is needed`));
        expect(outcome(() => check(c, { files }))).toMatch(/^TILE_MISMATCH: .* listed in the manifest but missing/);
      }
    }
  });

  it('fails on a flipped bit in any hash of any carried tile (including the entries\' own ancestors, which no proof uses)', () => {
    for (const c of [makeCase(600, [5, 299, 599]), makeCase(70_000, [10, 69_999])]) {
      let checked = 0;
      for (const [p, b] of c.files) {
        for (let h = 0; h < b.length / 32; h++) {
          const files = new Map(c.files).set(p, flipped(b, h * 32 + (h % 32)));
          expect({ p, h, r: outcome(() => check(c, { files })).split(':')[0] }).toEqual({ p, h, r: 'TILE_MISMATCH' });
          checked++;
        }
      }
      expect(checked).toBe(c.listed.reduce((n, t) => n + c.files.get(t.path)!.length / 32, 0));
    }
    // The ancestor hashes are named as such: tile/1/000 hash 0 is MTH(tile/0/000), which entry 10's proof never uses.
    const c = makeCase(70_000, [10]);
    const files = new Map(c.files).set('tile/1/000', flipped(c.files.get('tile/1/000')!, 0));
    expect(outcome(() => check(c, { files }))).toContain('tile/1/000 hash 0 is');
  });

  it('fails on a tile from another tree size, a full tile for a partial one, another log\'s tiles, and tiles that disagree with the carried proof or entry', () => {
    const c = makeCase(600, [5, 599]);
    const bigger = tree(700);
    // The level-0 edge of the tree of 700 under its own path, instead of this tree's.
    const edge700 = { level: 0, index: 2, width: 188 };
    const swapped = new Map(c.files);
    swapped.delete('tile/0/002.p/88');
    swapped.set(tilePath(edge700), tileBytes(bigger, edge700));
    const swappedListed = c.listed.map((t) => (t.path === 'tile/0/002.p/88' ? { path: tilePath(edge700), sha256: sha256Hex(swapped.get(tilePath(edge700))!) } : t));
    expect(outcome(() => check(c, { files: swapped, listed: swappedListed }))).toMatch(/^TILE_MISMATCH: tile\/0\/002\.p\/188 is not a tile of the tree of size 600 .*another tree size/);
    // The same bytes under this tree's path; a smaller tree's edge (a prefix) under it; the full tile the store may hold by now.
    for (const bytes of [tileBytes(bigger, edge700), tileBytes(tree(550), { level: 0, index: 2, width: 38 }), tileBytes(tree(800), { level: 0, index: 2, width: 256 })]) {
      expect(outcome(() => check(c, { files: new Map(c.files).set('tile/0/002.p/88', bytes) }))).toMatch(/^TILE_MISMATCH: tile\/0\/002\.p\/88 has \d+ bytes; a tile of width 88 has 2816/);
    }
    // The tiles of another log of the same size: the root is not the signed one.
    const other = makeCase(600, [5, 599], 'b');
    expect(outcome(() => check(c, { files: other.files, listed: other.listed }))).toMatch(/^TILE_MISMATCH: the tiles give root [0-9a-f]{64} for size 600; the signed checkpoint says/);
    // A carried proof or an entry the tiles do not give.
    const proofs = new Map(c.proofs).set(5, c.proofs.get(5)!.map((h, k) => (k === 3 ? flipped(h, 0) : h)));
    expect(outcome(() => check(c, { proofs }))).toMatch(/^TILE_MISMATCH: entry 5: inclusion proof hash 3 is .* the tiles give/);
    expect(outcome(() => check(c, { proofs: new Map(c.proofs).set(5, c.proofs.get(5)!.slice(1)) }))).toMatch(/^TILE_MISMATCH: entry 5: the tiles give a \d+-hash inclusion proof/);
    expect(outcome(() => check(c, { leaf: (i) => leafHash(Buffer.from(i === 599 ? 'a-598' : `a-${i}`)) }))).toMatch(/^TILE_MISMATCH: entry 599: its level-0 tile holds leaf hash/);
    // Listed twice, or an entry bundle listed as a hash tile.
    expect(outcome(() => check(c, { listed: [...c.listed, c.listed[0]!] }))).toMatch(/^TILE_MISMATCH: the manifest lists a tile twice/);
    expect(outcome(() => check(c, { listed: [...c.listed, { path: 'tile/entries/000', sha256: '' }] }))).toMatch(/^TILE_MISMATCH: tile\/entries\/000 is not a C2SP hash tile path/);
  });
});

// ---- in bundles built from a real sealed store ----------------------------------------------

const CASE_ENTRIES = [5, 299, 300, 600];
let store: FsEvidenceStore;
let root: TrustRoot;
let bundle: Buffer;

type Files = Map<string, Uint8Array>;
const unpack = (b: Uint8Array): Files => new Map(readTar(gunzip(b)).map((f) => [f.path, f.bytes]));
/** A careful forger: edit files and the manifest, then fix every tile digest the manifest lists. */
function forge(b: Uint8Array, edit: (f: Files, m: Manifest) => void, fixDigests = true): VerifyResult {
  const f = unpack(b);
  const m = JSON.parse(Buffer.from(f.get('manifest.json')!).toString('utf8')) as Manifest;
  edit(f, m);
  if (m.tiles && fixDigests) m.tiles = m.tiles.map((t) => ({ path: t.path, sha256: f.has(t.path) ? sha256Hex(f.get(t.path)!) : t.sha256 }));
  f.set('manifest.json', canonicalBytes(m));
  return verifyBundle(gzipDeterministic(writeTar([...f].map(([path, bytes]) => ({ path, bytes })))), { trustRoot: root });
}

beforeAll(async () => {
  store = tempStore();
  const s = await Sealer.recover({ store, tenant: TENANT, signer: testSigner() });
  s.append(items(0, 300)); await s.seal('2026-11-23T10:00:00Z');
  s.append(items(300, 513)); await s.seal('2026-11-23T10:01:00Z');
  s.append(items(513, 777)); await s.seal('2026-11-23T10:02:00Z');
  bundle = await buildBundle(store, TENANT, { caseId: 'case-tiles', indices: CASE_ENTRIES, tiles: true });
  root = await trustRootOf(store);
});

describe('bundles with tiles', () => {
  it('carry the tiles exactly as the store serves them at the bundle\'s size, byte-identical when built twice, and verify', async () => {
    expect((await buildBundle(store, TENANT, { caseId: 'case-tiles', indices: [600, 300, 299, 5], tiles: true })).equals(bundle)).toBe(true);
    const f = unpack(bundle);
    const m = JSON.parse(Buffer.from(f.get('manifest.json')!).toString('utf8')) as Manifest;
    // 777 = 3 full level-0 tiles + 9; level 1: 3. Entries 5, 299/300 and 600 sit in level-0 tiles 0, 1 and 2.
    expect(m.tiles!.map((t) => t.path)).toEqual(['tile/0/000', 'tile/0/001', 'tile/0/002', 'tile/0/003.p/9', 'tile/1/000.p/3']);
    for (const t of m.tiles!) {
      expect(Buffer.from(f.get(t.path)!).equals(Buffer.from((await store.read(TENANT, t.path))!))).toBe(true);
      expect(sha256Hex(f.get(t.path)!)).toBe(t.sha256);
    }
    expect(verifyBundle(bundle, { trustRoot: root })).toMatchObject({ ok: true, treeSize: 777, entries: 4, tiles: 5 });
    // At an older size: that tree's partial tiles, as the store kept them from that seal.
    const at513 = await buildBundle(store, TENANT, { caseId: 'case-tiles', indices: [5, 300], atSize: 513, tiles: true });
    const m513 = JSON.parse(Buffer.from(unpack(at513).get('manifest.json')!).toString('utf8')) as Manifest;
    expect(m513.tiles!.map((t) => t.path)).toEqual(['tile/0/000', 'tile/0/001', 'tile/0/002.p/1', 'tile/1/000.p/2']);
    for (const t of m513.tiles!) expect(Buffer.from(unpack(at513).get(t.path)!).equals(Buffer.from((await store.read(TENANT, t.path))!))).toBe(true);
    expect(verifyBundle(at513, { trustRoot: root })).toMatchObject({ ok: true, treeSize: 513, tiles: 4 });
    // Without tiles (plain case bundles, as before): none, and nothing required.
    const plain = await buildBundle(store, TENANT, { caseId: 'case-tiles', indices: CASE_ENTRIES });
    expect([...unpack(plain).keys()].some((p) => p.startsWith('tile/'))).toBe(false);
    expect(verifyBundle(plain, { trustRoot: root })).toMatchObject({ ok: true, tiles: 0 });
  });

  it('names each tamper TILE_MISMATCH (exit 39): a flipped byte, a removed tile, a tile from another tree size', async () => {
    const at513 = unpack(await buildBundle(store, TENANT, { caseId: 'x', indices: [5], atSize: 513, tiles: true }));
    const results = {
      flippedByte: forge(bundle, (f) => { f.set('tile/0/001', flipped(f.get('tile/0/001')!, 8000)); }),
      flippedDigestStale: forge(bundle, (f) => { f.set('tile/1/000.p/3', flipped(f.get('tile/1/000.p/3')!, 40)); }, false),
      removedFile: forge(bundle, (f) => { f.delete('tile/0/003.p/9'); }),
      removedTile: forge(bundle, (f, m) => { f.delete('tile/0/002'); m.tiles = m.tiles!.filter((t) => t.path !== 'tile/0/002'); }),
      allRemoved: forge(bundle, (f, m) => { for (const t of m.tiles!) f.delete(t.path); delete m.tiles; }),
      otherSizeSamePath: forge(bundle, (f) => { f.set('tile/1/000.p/3', at513.get('tile/1/000.p/2')!); }),
      otherSizeOwnPath: forge(bundle, (f, m) => {
        f.delete('tile/1/000.p/3');
        f.set('tile/1/000.p/2', at513.get('tile/1/000.p/2')!);
        m.tiles = m.tiles!.map((t) => (t.path === 'tile/1/000.p/3' ? { ...t, path: 'tile/1/000.p/2' } : t));
      }),
    };
    const causes = Object.fromEntries(Object.entries(results).map(([k, r]) => [k, r.ok ? 'ok' : r.cause]));
    // Stripping every tile (and the listing) from a bundle without a provenance section leaves a plain case bundle, which verifies by its proofs.
    expect(causes).toEqual({ flippedByte: 'TILE_MISMATCH', flippedDigestStale: 'TILE_MISMATCH', removedFile: 'TILE_MISMATCH', removedTile: 'TILE_MISMATCH',
      allRemoved: 'ok', otherSizeSamePath: 'TILE_MISMATCH', otherSizeOwnPath: 'TILE_MISMATCH' });
    const detail = (r: VerifyResult) => (r.ok ? '' : r.detail);
    expect(detail(results.removedTile)).toContain('tile/0/002 is needed');
    expect(detail(results.otherSizeOwnPath)).toContain('another tree size');
    // A tampered proof is still the proof's failure (checked first), not the tiles'.
    const proof = forge(bundle, (f) => {
      const lines = Buffer.from(f.get('proofs/299.tlog-proof')!).toString('utf8').split('\n');
      lines[2] = flipped(Buffer.from(lines[2]!, 'base64'), 3).toString('base64');
      f.set('proofs/299.tlog-proof', Buffer.from(lines.join('\n')));
    });
    expect(proof).toMatchObject({ ok: false, cause: 'MERKLE_MISMATCH' });
    // An unlisted tile file is refused as any unlisted file; tiles in a whole-log export are refused.
    expect(forge(bundle, (f) => { f.set('tile/1/000.p/2', at513.get('tile/1/000.p/2')!); })).toMatchObject({ ok: false, cause: 'MANIFEST_MISMATCH' });
    await expect(buildBundle(store, TENANT, { caseId: 'log', tiles: true })).rejects.toThrow(/case bundles/);
  });
});
