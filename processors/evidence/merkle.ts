// RFC 6962 Merkle trees: roots, inclusion and consistency proofs.
//
// Proof *generation* follows RFC 6962 §2.1.1/§2.1.2 (PATH and SUBPROOF) but is split in two pure
// steps so that proofs can be computed from any hash storage (memory, tiles on disk):
//   1. `inclusionProofRanges` / `consistencyProofRanges` list the leaf ranges [a, b) whose Merkle
//      Tree Hashes make up the proof, in proof order;
//   2. `rangeHash` computes MTH(D[a:b]) from complete-subtree hashes given by a `NodeSource`.
// Proof *verification* follows RFC 9162 §2.1.3.2 and §2.1.4.2.
import { EMPTY_ROOT, HASH_SIZE, bytesEqual, nodeHash } from './hash.ts';

export class ProofError extends Error {
  override readonly name = 'ProofError';
}

/** Hash of the complete subtree at `level` (2^level leaves) with index `index` (leaves index·2^level…). */
export type NodeSource = (level: number, index: number) => Uint8Array;

export type LeafRange = readonly [start: number, end: number];

// Sizes and indices are plain numbers (exact up to 2^53); bit tricks use arithmetic, not 32-bit ops.
const isOdd = (x: number): boolean => x % 2 === 1;
const half = (x: number): number => Math.floor(x / 2);

/** The largest power of two strictly smaller than n (n ≥ 2): the RFC 6962 split point k. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function checkSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new ProofError(`${what} must be a non-negative safe integer, got ${n}`);
}

function checkHash(h: Uint8Array | undefined, what: string): asserts h is Uint8Array {
  if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
    throw new ProofError(`${what} must be a ${HASH_SIZE}-byte hash, got ${h instanceof Uint8Array ? `${h.length} bytes` : typeof h}`);
  }
}

/**
 * MTH(D[start:end]) from complete-subtree hashes. The range must be one RFC 6962 produces: its
 * start aligned to the largest power of two ≤ its length. It decomposes into complete subtrees
 * of decreasing size, left to right, folded right to left (which is exactly MTH's split rule).
 */
export function rangeHash(start: number, end: number, node: NodeSource): Uint8Array {
  if (end <= start) throw new ProofError(`empty range [${start}, ${end})`);
  const parts: Uint8Array[] = [];
  let pos = start;
  while (pos < end) {
    let size = 1;
    let level = 0;
    while (size * 2 <= end - pos) { size *= 2; level++; }
    if (pos % size !== 0) throw new ProofError(`range [${start}, ${end}) is not aligned to its subtrees`);
    parts.push(node(level, pos / size));
    pos += size;
  }
  let acc = parts[parts.length - 1]!;
  for (let i = parts.length - 2; i >= 0; i--) acc = nodeHash(parts[i]!, acc);
  return acc;
}

/** Root of a tree of `size` leaves. */
export function rootFromNodes(size: number, node: NodeSource): Uint8Array {
  checkSize(size, 'tree size');
  return size === 0 ? EMPTY_ROOT : rangeHash(0, size, node);
}

/** Ranges whose MTHs form PATH(index, D[0:size]) (RFC 6962 §2.1.1), leaf sibling first. */
export function inclusionProofRanges(index: number, size: number): LeafRange[] {
  checkSize(size, 'tree size');
  checkSize(index, 'leaf index');
  if (size === 0) throw new ProofError('no inclusion proof in an empty tree (size 0)');
  if (index >= size) throw new ProofError(`leaf index ${index} is not below tree size ${size}`);
  const out: LeafRange[] = [];
  // Iterative PATH: walk down from the root, collecting the sibling range at each split.
  const stack: LeafRange[] = [];
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) { stack.push([lo + k, hi]); hi = lo + k; } else { stack.push([lo, lo + k]); lo += k; }
  }
  for (let i = stack.length - 1; i >= 0; i--) out.push(stack[i]!);
  return out;
}

/** Ranges whose MTHs form PROOF(m, D[0:n]) (RFC 6962 §2.1.2). Empty for m = n or m = 0. */
export function consistencyProofRanges(m: number, n: number): LeafRange[] {
  checkSize(m, 'old size');
  checkSize(n, 'new size');
  if (m > n) throw new ProofError(`old size ${m} is larger than new size ${n}`);
  if (m === 0 || m === n) return [];
  const out: LeafRange[] = [];
  // SUBPROOF(m, D[lo:hi], b), unrolled: proof elements are appended innermost-first, so collect
  // the right-hand elements on a stack and emit them after the innermost one.
  const tail: LeafRange[] = [];
  let lo = 0;
  let hi = n;
  let b = true;
  let mm = m;
  for (;;) {
    const len = hi - lo;
    if (mm === len) {
      if (!b) out.push([lo, hi]);
      break;
    }
    const k = splitPoint(len);
    if (mm <= k) {
      tail.push([lo + k, hi]);
      hi = lo + k;
    } else {
      tail.push([lo, lo + k]);
      lo += k;
      mm -= k;
      b = false;
    }
  }
  for (let i = tail.length - 1; i >= 0; i--) out.push(tail[i]!);
  return out;
}

export function inclusionProof(index: number, size: number, node: NodeSource): Uint8Array[] {
  return inclusionProofRanges(index, size).map(([a, b]) => rangeHash(a, b, node));
}

export function consistencyProof(m: number, n: number, node: NodeSource): Uint8Array[] {
  return consistencyProofRanges(m, n).map(([a, b]) => rangeHash(a, b, node));
}

function bitLength(x: number): number {
  let n = 0;
  while (x > 0) { x = half(x); n++; }
  return n;
}
function popCount(x: number): number {
  let n = 0;
  while (x > 0) { n += x % 2; x = half(x); }
  return n;
}
function xor(a: number, b: number): number {
  // Exact XOR for safe integers (beyond 32 bits).
  return Number(BigInt(a) ^ BigInt(b));
}

/** Number of hashes in an inclusion proof for (index, size). */
export function inclusionProofLength(index: number, size: number): number {
  const inner = bitLength(xor(index, size - 1));
  return inner + popCount(Math.floor(index / 2 ** inner));
}

/** Number of hashes in a consistency proof for 0 < m < n. */
export function consistencyProofLength(m: number, n: number): number {
  let shift = 0;
  while ((m / 2 ** (shift + 1)) % 1 === 0) shift++;
  const index = m - 1;
  const inner = bitLength(xor(index, n - 1));
  const border = popCount(Math.floor(index / 2 ** inner));
  const seedFromProof = m !== 2 ** shift ? 1 : 0;
  return seedFromProof + (inner - shift) + border;
}

/**
 * RFC 9162 §2.1.3.2. Throws ProofError when the proof is malformed (size 0, index out of range,
 * hashes of the wrong length, wrong number of hashes); returns false when it does not prove
 * inclusion under `root`.
 */
export function verifyInclusion(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  checkSize(size, 'tree size');
  checkSize(index, 'leaf index');
  if (size === 0) throw new ProofError('inclusion proof against an empty tree (size 0)');
  if (index >= size) throw new ProofError(`leaf index ${index} is not below tree size ${size}`);
  checkHash(leaf, 'leaf hash');
  checkHash(root, 'root hash');
  proof.forEach((h, i) => checkHash(h, `proof hash ${i}`));
  const want = inclusionProofLength(index, size);
  if (proof.length !== want) throw new ProofError(`inclusion proof for leaf ${index} of ${size} must have ${want} hashes, got ${proof.length}`);
  return bytesEqual(rootFromInclusion(leaf, index, size, proof), root);
}

/** The root an inclusion proof implies (RFC 9162 §2.1.3.2 steps 3–5); assumes a well-formed proof. */
export function rootFromInclusion(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[]): Uint8Array {
  let fn = index;
  let sn = size - 1;
  let r: Uint8Array = leaf;
  for (const p of proof) {
    if (sn === 0) throw new ProofError('inclusion proof is longer than the tree is deep');
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!isOdd(fn)) while (!isOdd(fn) && fn !== 0) { fn = half(fn); sn = half(sn); }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError('inclusion proof is shorter than the tree is deep');
  return r;
}

/**
 * RFC 9162 §2.1.4.2, plus the trivial cases (m = n: empty proof and equal roots; m = 0: empty
 * proof, the old root must be the empty-tree hash). Throws ProofError when malformed; returns
 * false when the proof does not show `oldRoot` is a prefix of `newRoot`.
 */
export function verifyConsistency(m: number, n: number, proof: readonly Uint8Array[], oldRoot: Uint8Array, newRoot: Uint8Array): boolean {
  checkSize(m, 'old size');
  checkSize(n, 'new size');
  if (m > n) throw new ProofError(`old size ${m} is larger than new size ${n}`);
  checkHash(oldRoot, 'old root');
  checkHash(newRoot, 'new root');
  proof.forEach((h, i) => checkHash(h, `proof hash ${i}`));
  if (m === n || m === 0) {
    if (proof.length !== 0) throw new ProofError(`consistency proof from ${m} to ${n} must be empty, got ${proof.length} hashes`);
    return m === 0 ? bytesEqual(oldRoot, EMPTY_ROOT) : bytesEqual(oldRoot, newRoot);
  }
  const want = consistencyProofLength(m, n);
  if (proof.length !== want) throw new ProofError(`consistency proof from ${m} to ${n} must have ${want} hashes, got ${proof.length}`);
  const path = [...proof];
  // Step 2: when m is a power of two the old root is the first node of the path.
  if (2 ** Math.round(Math.log2(m)) === m) path.unshift(oldRoot);
  let fn = m - 1;
  let sn = n - 1;
  while (isOdd(fn)) { fn = half(fn); sn = half(sn); }
  let fr: Uint8Array = path[0]!;
  let sr: Uint8Array = path[0]!;
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!isOdd(fn)) while (!isOdd(fn) && fn !== 0) { fn = half(fn); sn = half(sn); }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && bytesEqual(fr, oldRoot) && bytesEqual(sr, newRoot);
}

/**
 * All complete-subtree hashes of a tree held in memory, level by level: levels[0] are the leaf
 * hashes, levels[l][i] = nodeHash(levels[l-1][2i], levels[l-1][2i+1]). Building it costs one hash
 * per leaf; afterwards roots of any prefix and any proof need no hashing beyond `rangeHash` folds.
 */
export class MemoryTree {
  readonly levels: Uint8Array[][] = [[]];

  constructor(leafHashes: Iterable<Uint8Array> = []) {
    for (const h of leafHashes) this.append(h);
  }

  get size(): number { return this.levels[0]!.length; }

  append(leaf: Uint8Array): void {
    checkHash(leaf, 'leaf hash');
    let h = leaf;
    for (let l = 0; ; l++) {
      const level = (this.levels[l] ??= []);
      level.push(h);
      if (level.length % 2 === 1) return;
      h = nodeHash(level[level.length - 2]!, h);
    }
  }

  readonly node: NodeSource = (level, index) => {
    const h = this.levels[level]?.[index];
    if (!h) throw new ProofError(`no node at level ${level} index ${index} in a tree of size ${this.size}`);
    return h;
  };

  root(size = this.size): Uint8Array {
    if (size > this.size) throw new ProofError(`tree size ${size} exceeds the ${this.size} leaves held`);
    return rootFromNodes(size, this.node);
  }

  inclusionProof(index: number, size = this.size): Uint8Array[] {
    if (size > this.size) throw new ProofError(`tree size ${size} exceeds the ${this.size} leaves held`);
    return inclusionProof(index, size, this.node);
  }

  consistencyProof(m: number, n = this.size): Uint8Array[] {
    if (n > this.size) throw new ProofError(`tree size ${n} exceeds the ${this.size} leaves held`);
    return consistencyProof(m, n, this.node);
  }
}

/**
 * A compact range [0, size): the O(log n) roots of the complete subtrees left of the edge. Enough
 * to compute the tree's root at any point while streaming leaves, without keeping the tree — what
 * whole-log verification uses.
 */
export class CompactRange {
  private readonly hashes: Uint8Array[] = [];
  private readonly heights: number[] = [];
  size = 0;

  append(leaf: Uint8Array): void {
    let h = leaf;
    let height = 0;
    // Merge with the rightmost subtree while it has the same height (binary carry).
    while (this.heights.length > 0 && this.heights[this.heights.length - 1] === height) {
      h = nodeHash(this.hashes.pop()!, h);
      this.heights.pop();
      height++;
    }
    this.hashes.push(h);
    this.heights.push(height);
    this.size++;
  }

  root(): Uint8Array {
    if (this.size === 0) return EMPTY_ROOT;
    let acc = this.hashes[this.hashes.length - 1]!;
    for (let i = this.hashes.length - 2; i >= 0; i--) acc = nodeHash(this.hashes[i]!, acc);
    return acc;
  }
}
