// A cache keyed by the bytes of a protobuf string field, so the wire walker can skip decoding and
// scanning a recurring value (routes, methods, user agents, attribute keys) without first making a
// JS string of it. Entries are found by a 32-bit hash of the bytes (`hashBytes`, computed in the
// same loop that checks for ASCII) and confirmed by comparing the bytes. Two generations
// approximate an LRU at Map speed: a full young generation becomes the old one, and hits in the old
// generation are promoted, so recurring values survive a flood of unique ones. A value is admitted
// on its second sighting (only its hash is noted on the first), so unique values (ids, timestamps)
// are not copied into the cache only to be evicted.

interface Entry<V> { bytes: Uint8Array; value: V }

/** Set by hashBytes: true when it read every byte and all were ASCII (false: not all ASCII, or not all read). */
export let wasAscii = true;

/** Values longer than this are hashed by their first and last SAMPLE bytes (and their length). */
const SAMPLE = 32;

/**
 * MurmurHash3 (x86, 32-bit) of buf[s, e), four bytes per step, reduced to 30 bits so Map keys stay
 * small integers. Long values are hashed by a sample (head, tail, length): a hit is confirmed by
 * comparing all bytes anyway, so the hash only has to spread values, and the compare is the one
 * full pass. Notes in `wasAscii` whether all bytes were read and were ASCII.
 */
export function hashBytes(buf: Uint8Array, s: number, e: number): number {
  const n = e - s;
  if (n > 2 * SAMPLE) {
    const h = mix(mix(0x9747b28c ^ n, buf, s, s + SAMPLE), buf, e - SAMPLE, e);
    wasAscii = false;
    return finish(h, n);
  }
  const h = mix(0x9747b28c, buf, s, e);
  wasAscii = (orAcc & 0x80808080) === 0;
  return finish(h, n);
}

/** OR of the words `mix` read last (for the ASCII check). */
let orAcc = 0;

function mix(h: number, buf: Uint8Array, s: number, e: number): number {
  let or = 0;
  let i = s;
  for (const e4 = e - 3; i < e4; i += 4) {
    let k = buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
    or |= k;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  for (let sh = 0; i < e; i++, sh += 8) k |= buf[i]! << sh;
  or |= k;
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  orAcc = or;
  return h ^ Math.imul(k, 0x1b873593);
}

function finish(h: number, n: number): number {
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & 0x3fffffff;
}

export class ByteCache<V> {
  private young = new Map<number, Entry<V>>();
  private old = new Map<number, Entry<V>>();
  /** Hashes of values seen once and not admitted yet. */
  private seen = new Set<number>();

  /** `limit`: entries kept over both generations; `maxBytes`: longer values are not cached. */
  constructor(private readonly limit: number, readonly maxBytes: number) {}

  /** The value cached for buf[s, e) whose hash is `h`, or undefined. */
  get(h: number, buf: Uint8Array, s: number, e: number): V | undefined {
    let x = this.young.get(h);
    if (x !== undefined && same(x.bytes, buf, s, e)) return x.value;
    x = this.old.get(h);
    if (x !== undefined && same(x.bytes, buf, s, e)) { this.put(h, x); return x.value; }
    return undefined;
  }

  /** Remember `value` for (a copy of) buf[s, e). */
  set(h: number, buf: Uint8Array, s: number, e: number, value: V): void {
    if (e - s > this.maxBytes) return;
    if (!this.seen.has(h)) {
      if (this.seen.size >= this.limit) this.seen.clear();
      this.seen.add(h);
      return;
    }
    this.put(h, { bytes: buf.slice(s, e), value });
  }

  private put(h: number, x: Entry<V>): void {
    if (this.young.size >= this.limit / 2) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(h, x);
  }
}

function same(a: Uint8Array, buf: Uint8Array, s: number, e: number): boolean {
  if (a.length !== e - s) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== buf[s + i]) return false;
  return true;
}
