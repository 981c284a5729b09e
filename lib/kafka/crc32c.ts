// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of Kafka's record batches.
//
// `crc32c` is @node-rs/crc32's (SSE4.2/ARMv8 CRC instructions; ~5 GB/s here) when its prebuilt
// binary loads, else `crc32cJs`: slicing-by-8 over 32-bit words (~1.5 GB/s). kafkajs' own
// byte-at-a-time loop runs at ~0.3 GB/s, which was ~7% of the receiver's CPU (BENCHMARKS.md, ingest).
import { createRequire } from 'node:module';

const POLY = 0x82f63b78;

/** T[k * 256 + b]: the CRC of byte b followed by k zero bytes. */
const T = new Int32Array(8 * 256);
for (let b = 0; b < 256; b++) {
  let c = b;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[b] = c;
}
for (let b = 0; b < 256; b++) {
  for (let k = 1; k < 8; k++) T[k * 256 + b] = (T[(k - 1) * 256 + b]! >>> 8) ^ T[T[(k - 1) * 256 + b]! & 0xff]!;
}

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** CRC-32C of `buf` in JavaScript, continuing from `crc` (a previous result; 0 to start). */
export function crc32cJs(buf: Uint8Array, crc = 0): number {
  let c = ~crc;
  let i = 0;
  const end = buf.length;
  const lead = (4 - (buf.byteOffset & 3)) & 3;
  if (littleEndian && end - lead >= 8) {
    // Bytes up to a 4-byte boundary one at a time, then eight bytes per step read as two words:
    // the first folds into the running CRC, the second is looked up on its own.
    for (; i < lead; i++) c = T[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
    const words = ((end - i) >>> 3) << 1;
    const w = new Int32Array(buf.buffer, buf.byteOffset + i, words);
    for (let j = 0; j < words; j += 2) {
      const lo = c ^ w[j]!;
      const hi = w[j + 1]!;
      c = T[1792 + (lo & 0xff)]! ^ T[1536 + ((lo >>> 8) & 0xff)]! ^ T[1280 + ((lo >>> 16) & 0xff)]! ^ T[1024 + (lo >>> 24)]!
        ^ T[768 + (hi & 0xff)]! ^ T[512 + ((hi >>> 8) & 0xff)]! ^ T[256 + ((hi >>> 16) & 0xff)]! ^ T[hi >>> 24]!;
    }
    i += words * 4;
  }
  for (; i < end; i++) c = T[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

type Crc = (buf: Uint8Array, crc?: number) => number;

function loadNative(): Crc | undefined {
  try {
    const mod = createRequire(import.meta.url)('@node-rs/crc32') as { crc32c(input: Uint8Array, initial?: number): number };
    const check = new TextEncoder().encode('123456789');
    if (mod.crc32c(check) !== 0xe3069283) return undefined; // the standard check value
    return (buf, crc = 0) => mod.crc32c(buf, crc);
  } catch {
    return undefined;
  }
}

const native = loadNative();

/** CRC-32C of `buf`, continuing from `crc` (a previous result; 0 to start). */
export const crc32c: Crc = native ?? crc32cJs;
/** Which implementation `crc32c` is. */
export const crc32cImpl: 'native' | 'js' = native ? 'native' : 'js';
