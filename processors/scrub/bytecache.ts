// A cache keyed by the bytes of a protobuf string field, so the wire walker can skip decoding and
// scanning a recurring value (routes, methods, user agents, attribute keys) without first making a
// JS string of it. Entries are found by a 32-bit FNV-1a hash of the bytes (computed by the walker in
// the same loop that checks for ASCII) and confirmed by comparing the bytes. Two generations
// approximate an LRU at Map speed: a full young generation becomes the old one, and hits in the old
// generation are promoted, so recurring values survive a flood of unique ones.

interface Entry<V> { bytes: Uint8Array; value: V }

export const FNV_OFFSET = 0x811c9dc5;
export const FNV_PRIME = 0x01000193;

export class ByteCache<V> {
  private young = new Map<number, Entry<V>>();
  private old = new Map<number, Entry<V>>();

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
