import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EMPTY_ROOT, leafHash } from '../../processors/evidence/hash.ts';
import {
  CompactRange, MemoryTree, ProofError, consistencyProofLength, inclusionProofLength, verifyConsistency, verifyInclusion,
} from '../../processors/evidence/merkle.ts';

// An independent, deliberately naive RFC 6962 implementation: recursion straight from §2.1.
const h = (...parts: Uint8Array[]): Buffer => createHash('sha256').update(Buffer.concat(parts)).digest();
const L = (e: Uint8Array): Buffer => h(Buffer.from([0]), e);
const N = (a: Uint8Array, b: Uint8Array): Buffer => h(Buffer.from([1]), a, b);
function k(n: number): number { let x = 1; while (x * 2 < n) x *= 2; return x; }
// Ranges are [a, b) of one data array; MTH memoized per range so the quadratic sweeps stay fast.
const memo = new Map<string, Buffer>();
function mthR(d: Uint8Array[], a: number, b: number): Buffer {
  const key = `${a},${b}`;
  let r = memo.get(key);
  if (!r) {
    r = b - a === 0 ? h() : b - a === 1 ? L(d[a]!) : N(mthR(d, a, a + k(b - a)), mthR(d, a + k(b - a), b));
    memo.set(key, r);
  }
  return r;
}
function pathR(m: number, d: Uint8Array[], a: number, b: number): Buffer[] {
  if (b - a === 1) return [];
  const s = k(b - a);
  return m < s ? [...pathR(m, d, a, a + s), mthR(d, a + s, b)] : [...pathR(m - s, d, a + s, b), mthR(d, a, a + s)];
}
function subproofR(m: number, d: Uint8Array[], a: number, b: number, bb: boolean): Buffer[] {
  if (m === b - a) return bb ? [] : [mthR(d, a, b)];
  const s = k(b - a);
  return m <= s ? [...subproofR(m, d, a, a + s, bb), mthR(d, a + s, b)] : [...subproofR(m - s, d, a + s, b, false), mthR(d, a, a + s)];
}
// All brute-force calls below use the same data array, so the memo stays valid across sizes.
const path = (m: number, d: Uint8Array[], n: number): Buffer[] => pathR(m, d, 0, n);
const subproof = (m: number, d: Uint8Array[], n: number): Buffer[] => subproofR(m, d, 0, n, true);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Buffer => Buffer.from(s, 'hex');

// Certificate Transparency / transparency-dev reference leaves and roots for sizes 0..8.
const CT_LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(unhex);
const CT_ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const CT_INCLUSION: [number, number, string[]][] = [
  [0, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [5, 8, ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
];
const CT_CONSISTENCY: [number, number, string[]][] = [
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 5, ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
  [6, 7, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [3, 7, ['0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7', '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7', 'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125', '837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e']],
  [4, 7, ['837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e']],
  [4, 8, ['6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [7, 8, ['b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f', '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1', '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
];

describe('RFC 6962 known answers', () => {
  const tree = new MemoryTree(CT_LEAVES.map((e) => leafHash(e)));
  it('empty-tree root and the roots of sizes 1..8', () => {
    expect(hex(EMPTY_ROOT)).toBe(CT_ROOTS[0]);
    for (let n = 0; n <= 8; n++) expect(hex(tree.root(n)), `size ${n}`).toBe(CT_ROOTS[n]);
  });
  it('inclusion proofs', () => {
    for (const [i, n, want] of CT_INCLUSION) {
      expect(tree.inclusionProof(i, n).map(hex)).toEqual(want);
      expect(verifyInclusion(leafHash(CT_LEAVES[i]!), i, n, want.map(unhex), unhex(CT_ROOTS[n]!))).toBe(true);
    }
  });
  it('consistency proofs', () => {
    for (const [m, n, want] of CT_CONSISTENCY) {
      expect(tree.consistencyProof(m, n).map(hex), `${m}->${n}`).toEqual(want);
      expect(verifyConsistency(m, n, want.map(unhex), unhex(CT_ROOTS[m]!), unhex(CT_ROOTS[n]!))).toBe(true);
    }
  });
});

describe('every proof up to 200 leaves agrees with the brute-force tree', () => {
  const MAX = 200;
  const data = Array.from({ length: MAX }, (_, i) => Buffer.from(`entry-${i}-${'x'.repeat(i % 7)}`));
  const tree = new MemoryTree(data.map((e) => leafHash(e)));
  memo.clear();
  const roots = Array.from({ length: MAX + 1 }, (_, n) => mthR(data, 0, n));

  it('roots', () => {
    for (let n = 0; n <= MAX; n++) expect(bytesHex(tree.root(n))).toBe(hex(roots[n]!));
  });

  it('a streaming compact range gives the same root at every size', () => {
    const r = new CompactRange();
    expect(hex(r.root())).toBe(hex(roots[0]!));
    for (let n = 1; n <= MAX; n++) {
      r.append(L(data[n - 1]!));
      if (hex(r.root()) !== hex(roots[n]!)) throw new Error(`compact range root differs at ${n}`);
    }
    expect(r.size).toBe(MAX);
  });

  it('inclusion proofs for every (index, size), generated equal and verified', () => {
    let count = 0;
    for (let n = 1; n <= MAX; n++) {
      for (let i = 0; i < n; i++) {
        const got = tree.inclusionProof(i, n);
        const want = path(i, data, n);
        if (got.length !== want.length || got.some((g, j) => !want[j]!.equals(g))) throw new Error(`inclusion ${i}/${n} differs`);
        expect(got.length).toBe(inclusionProofLength(i, n));
        if (!verifyInclusion(L(data[i]!), i, n, got, roots[n]!)) throw new Error(`inclusion ${i}/${n} does not verify`);
        count++;
      }
    }
    expect(count).toBe((MAX * (MAX + 1)) / 2);
  });

  it('consistency proofs for every (m, n), generated equal and verified', () => {
    let count = 0;
    for (let n = 1; n <= MAX; n++) {
      for (let m = 1; m <= n; m++) {
        const got = tree.consistencyProof(m, n);
        const want = m === n ? [] : subproof(m, data, n);
        if (got.length !== want.length || got.some((g, j) => !want[j]!.equals(g))) throw new Error(`consistency ${m}->${n} differs`);
        if (m < n) expect(got.length).toBe(consistencyProofLength(m, n));
        if (!verifyConsistency(m, n, got, roots[m]!, roots[n]!)) throw new Error(`consistency ${m}->${n} does not verify`);
        count++;
      }
    }
    expect(count).toBe((MAX * (MAX + 1)) / 2);
  });

  it('tampered proofs and wrong claims fail (sampled over all shapes up to 64)', () => {
    for (let n = 2; n <= 64; n++) {
      for (let i = 0; i < n; i++) {
        const p = tree.inclusionProof(i, n);
        const flipped = p.map((x) => Buffer.from(x));
        flipped[flipped.length - 1]![0]! ^= 1;
        expect(verifyInclusion(L(data[i]!), i, n, flipped, roots[n]!)).toBe(false);
        expect(verifyInclusion(L(data[(i + 1) % n]!), i, n, p, roots[n]!)).toBe(false);
        expect(verifyInclusion(L(data[i]!), i, n, p, roots[n - 1]!)).toBe(false);
      }
      for (let m = 1; m < n; m++) {
        const p = tree.consistencyProof(m, n);
        const flipped = p.map((x) => Buffer.from(x));
        flipped[0]![5]! ^= 0x80;
        expect(verifyConsistency(m, n, flipped, roots[m]!, roots[n]!)).toBe(false);
        expect(verifyConsistency(m, n, p, roots[m - 1]!, roots[n]!)).toBe(false);
      }
    }
  });
});

function bytesHex(b: Uint8Array): string { return hex(b); }

describe('malformed proofs are refused with clear errors', () => {
  const data = Array.from({ length: 8 }, (_, i) => Buffer.from([i]));
  const tree = new MemoryTree(data.map((e) => leafHash(e)));
  const root = tree.root();
  const leaf = leafHash(data[5]!);
  const proof = tree.inclusionProof(5, 8);

  it('size 0, index ≥ size', () => {
    expect(() => verifyInclusion(leaf, 0, 0, [], EMPTY_ROOT)).toThrow(/size 0/);
    expect(() => verifyInclusion(leaf, 8, 8, proof, root)).toThrow(/not below tree size/);
    expect(() => tree.inclusionProof(8, 8)).toThrow(ProofError);
    expect(() => tree.inclusionProof(0, 0)).toThrow(/size 0/);
  });
  it('wrong number of hashes', () => {
    expect(() => verifyInclusion(leaf, 5, 8, proof.slice(0, 2), root)).toThrow(/must have 3 hashes, got 2/);
    expect(() => verifyInclusion(leaf, 5, 8, [...proof, root], root)).toThrow(/must have 3 hashes, got 4/);
    const c = tree.consistencyProof(3, 8);
    expect(() => verifyConsistency(3, 8, c.slice(1), tree.root(3), root)).toThrow(/must have/);
    expect(() => verifyConsistency(3, 8, [], tree.root(3), root)).toThrow(/must have/);
    expect(() => verifyConsistency(8, 8, [root], root, root)).toThrow(/must be empty/);
  });
  it('empty or short hashes', () => {
    expect(() => verifyInclusion(leaf, 5, 8, [new Uint8Array(0), proof[1]!, proof[2]!], root)).toThrow(/32-byte hash, got 0 bytes/);
    expect(() => verifyInclusion(leaf.subarray(0, 31), 5, 8, proof, root)).toThrow(/leaf hash must be/);
    expect(() => verifyConsistency(3, 8, tree.consistencyProof(3, 8), new Uint8Array(31), root)).toThrow(/old root/);
  });
  it('old size larger than new size; trivial cases', () => {
    expect(() => verifyConsistency(9, 8, [], root, root)).toThrow(/larger than new size/);
    expect(verifyConsistency(8, 8, [], root, root)).toBe(true);
    expect(verifyConsistency(8, 8, [], tree.root(7), root)).toBe(false);
    expect(verifyConsistency(0, 8, [], EMPTY_ROOT, root)).toBe(true);
    expect(verifyConsistency(0, 8, [], root, root)).toBe(false);
  });
});
