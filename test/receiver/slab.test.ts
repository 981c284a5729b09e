import { describe, expect, it } from 'vitest';
import { SlabPool } from '../../receiver/slab.ts';

describe('SlabPool', () => {
  it('never hands out bytes that a live value still holds', () => {
    const pool = new SlabPool(1024, 2);
    const live: { buf: Buffer; fill: number; lease: ReturnType<SlabPool['lease']> }[] = [];
    let fill = 0;
    for (let round = 0; round < 200; round++) {
      const lease = pool.lease();
      const buf = pool.alloc(1 + (round * 37) % 250, lease);
      buf.fill(++fill & 0xff);
      live.push({ buf, fill: fill & 0xff, lease });
      // Release out of order now and then, like produces that settle late.
      if (live.length > 5) pool.release(live.splice(round % 3, 1)[0]!.lease);
      for (const v of live) expect(v.buf.every((b) => b === v.fill)).toBe(true);
    }
  });

  it('reuses a slab once its last value is released', () => {
    const pool = new SlabPool(1024, 2);
    const a = pool.lease();
    const first = pool.alloc(200, a);
    pool.release(a);
    const b = pool.lease();
    const second = pool.alloc(200, b);
    expect(second.buffer).toBe(first.buffer);
    expect(second.byteOffset).toBe(first.byteOffset);
    // A second release of the same lease changes nothing.
    pool.release(a);
    const c = pool.lease();
    expect(pool.alloc(200, c).byteOffset).not.toBe(second.byteOffset);
  });

  it('gives values over a quarter of a slab their own buffer', () => {
    const pool = new SlabPool(1024, 2);
    const l = pool.lease();
    const big = pool.alloc(300, l);
    expect(big.length).toBe(300);
    expect(big.buffer.byteLength).toBe(300);
    expect(l.slabs).toHaveLength(0);
  });
});
