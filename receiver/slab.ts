// Record values carved out of reused 2 MiB slabs instead of one fresh ArrayBuffer each.
//
// Why: every Kafka record value (~70 KB for a 100-span request) lives until Kafka acks it, and each
// fresh Buffer of that size is its own external ArrayBuffer. V8 counts external memory towards its
// GC heuristics, so a steady stream of them drove full mark-compacts several times a second
// (BENCHMARKS.md, ingest). Slabs are handed out front to back and recycled when the last value
// in them is released, so in steady state no new backing stores are made.
//
// Memory stays bounded: a slab is held only while one of its values is in flight (the in-flight
// byte cap bounds those), and at most `maxFree` empty slabs are kept for reuse.

interface Slab { buf: Buffer; used: number; live: number }

/** The slabs one request's values came from; give it back with SlabPool.release once Kafka settled them. */
export interface Lease { slabs: Slab[]; released: boolean }

export class SlabPool {
  private cur: Slab | undefined;
  private readonly free: Slab[] = [];

  constructor(readonly slabBytes = 2 * 1024 * 1024, private readonly maxFree = 8) {}

  lease(): Lease { return { slabs: [], released: false }; }

  /** `n` bytes, uninitialised; values over a quarter of a slab get a buffer of their own. */
  alloc(n: number, lease: Lease): Buffer {
    if (n > this.slabBytes >>> 2) return Buffer.allocUnsafeSlow(n);
    let s = this.cur;
    if (!s || s.used + n > s.buf.length) {
      // The old current slab goes back to the free list when its last value is released.
      s = this.cur = this.free.pop() ?? { buf: Buffer.allocUnsafeSlow(this.slabBytes), used: 0, live: 0 };
    }
    const out = s.buf.subarray(s.used, s.used + n);
    s.used += (n + 7) & ~7;
    s.live++;
    lease.slabs.push(s);
    return out;
  }

  /** Call once Kafka no longer reads the values (the produce settled); the bytes are reused after. */
  release(lease: Lease): void {
    if (lease.released) return;
    lease.released = true;
    for (const s of lease.slabs) {
      if (--s.live > 0) continue;
      s.used = 0;
      if (s !== this.cur && this.free.length < this.maxFree) this.free.push(s);
    }
    lease.slabs.length = 0;
  }
}
