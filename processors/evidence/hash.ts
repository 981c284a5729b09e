// SHA-256 and the RFC 6962 hash prefixes. One place chooses the SHA-256 implementation so the
// benchmark's "keep the faster" decision is a one-line change (node:crypto's one-shot `hash` won,
// by 1.6–12x over @noble/hashes: see BENCHMARKS.md, section evidence).
import { hash as oneShotHash } from 'node:crypto';

export const HASH_SIZE = 32;

/**
 * SHA-256 of `data`, as a Buffer (a Uint8Array). The digest comes back as a latin1 ('binary') string and is
 * copied into a pool-allocated Buffer: for the 65-byte node hashes that dominate tree building this
 * is ~1.7x faster than asking node for a Buffer, which allocates a separate ArrayBuffer per digest.
 */
export function sha256(data: Uint8Array | string): Buffer {
  return Buffer.from(oneShotHash('sha256', data, 'binary'), 'latin1'); // 'binary' = latin1
}

export const sha256Hex = (data: Uint8Array | string): string => oneShotHash('sha256', data, 'hex');

/** The root of the empty tree: SHA-256 of the empty string (RFC 6962 §2.1). */
export const EMPTY_ROOT: Buffer = sha256(new Uint8Array(0));

// Entries are at most 65,535 bytes (uint16 length prefixes), so one scratch buffer holds any
// 0x00 ‖ entry without allocating per leaf.
const leafScratch = Buffer.alloc(1 + 0xffff);

/** RFC 6962 leaf hash: SHA-256(0x00 ‖ entry). */
export function leafHash(entry: Uint8Array): Buffer {
  if (entry.length > 0xffff) return sha256(Buffer.concat([Buffer.from([0x00]), entry]));
  leafScratch.set(entry, 1);
  return sha256(leafScratch.subarray(0, 1 + entry.length));
}

// A reused 65-byte scratch buffer: node hashing is the hot loop of tree building and proofs, and
// avoiding Buffer.concat there roughly halves its cost.
const nodeScratch = Buffer.alloc(1 + 2 * HASH_SIZE);
nodeScratch[0] = 0x01;

/** RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  nodeScratch.set(left, 1);
  nodeScratch.set(right, 1 + HASH_SIZE);
  return sha256(nodeScratch);
}

export const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
export const toB64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

/** Strict standard base64 (RFC 4648 §4): refuses anything that does not round-trip. */
export function fromB64Strict(s: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : undefined;
}

export function fromHexStrict(s: string): Buffer | undefined {
  if (!/^(?:[0-9a-f]{2})*$/.test(s)) return undefined;
  return Buffer.from(s, 'hex');
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}
