// Event-time buckets {good, total} in a ring of fixed-size slots (minutes or hours), with running
// sums per window so that every window sum is O(1) to read: adding a sample touches each window
// once, and advancing the head subtracts exactly the slots that leave each window. Typed arrays
// keep a 3-day minute ring at 4320 × 2 × 4 bytes ≈ 34 KB.

const U32_MAX = 0xffff_ffff;

export class SlotRing {
  readonly good: Uint32Array;
  readonly total: Uint32Array;
  /** Absolute index (time / slotMs) of the newest slot; -Infinity before the first sample. */
  head = Number.NEGATIVE_INFINITY;
  /** Running sums per window, aligned with `windows`. Sums stay exact in float64 (< 2^53). */
  readonly sumGood: Float64Array;
  readonly sumTotal: Float64Array;

  constructor(readonly slotMs: number, readonly size: number, readonly windows: readonly number[]) {
    for (const w of windows) if (!(w >= 1 && w <= size && Number.isInteger(w))) throw new Error(`window of ${w} slots does not fit a ring of ${size}`);
    this.good = new Uint32Array(size);
    this.total = new Uint32Array(size);
    this.sumGood = new Float64Array(windows.length);
    this.sumTotal = new Float64Array(windows.length);
  }

  slotOf(timeMs: number): number {
    return Math.floor(timeMs / this.slotMs);
  }

  /** Moves the head forward to `slot`, retiring slots that fall out of each window. */
  advanceTo(slot: number): void {
    if (slot <= this.head) return;
    const steps = slot - this.head;
    if (steps >= this.size || this.head === Number.NEGATIVE_INFINITY) {
      // Everything in the ring is older than the largest window: start clean.
      this.good.fill(0);
      this.total.fill(0);
      this.sumGood.fill(0);
      this.sumTotal.fill(0);
      this.head = slot;
      return;
    }
    const n = this.size;
    for (let h = this.head + 1; h <= slot; h++) {
      for (let i = 0; i < this.windows.length; i++) {
        const leaving = (((h - this.windows[i]!) % n) + n) % n;
        this.sumGood[i]! -= this.good[leaving]!;
        this.sumTotal[i]! -= this.total[leaving]!;
      }
      const idx = ((h % n) + n) % n; // this physical slot held h − n, already out of every window
      this.good[idx] = 0;
      this.total[idx] = 0;
    }
    this.head = slot;
  }

  /**
   * Adds counts to an absolute slot; a slot ahead of the head advances it. Returns false (nothing
   * applied) when the slot is older than the ring holds.
   */
  add(slot: number, good: number, total: number): boolean {
    if (slot > this.head) this.advanceTo(slot);
    else if (slot <= this.head - this.size) return false;
    const idx = ((slot % this.size) + this.size) % this.size;
    const g = this.good[idx]! + good;
    const t = this.total[idx]! + total;
    if (t > U32_MAX) return false; // saturated slot: refuse rather than wrap around
    this.good[idx] = g;
    this.total[idx] = t;
    const age = this.head - slot;
    for (let i = 0; i < this.windows.length; i++) {
      if (age < this.windows[i]!) {
        this.sumGood[i]! += good;
        this.sumTotal[i]! += total;
      }
    }
    return true;
  }

  /** Calls fn for every non-empty slot from oldest to newest (absolute slot index). */
  forEachNonEmpty(fn: (slot: number, good: number, total: number) => void): void {
    if (this.head === Number.NEGATIVE_INFINITY) return;
    for (let s = this.head - this.size + 1; s <= this.head; s++) {
      const idx = ((s % this.size) + this.size) % this.size;
      if (this.total[idx] !== 0 || this.good[idx] !== 0) fn(s, this.good[idx]!, this.total[idx]!);
    }
  }

  /** Window sums recomputed by scanning (O(window)); used by tests to check the running sums. */
  scanWindow(slots: number): { good: number; total: number } {
    let good = 0;
    let total = 0;
    if (this.head === Number.NEGATIVE_INFINITY) return { good, total };
    for (let s = this.head - slots + 1; s <= this.head; s++) {
      const idx = ((s % this.size) + this.size) % this.size;
      good += this.good[idx]!;
      total += this.total[idx]!;
    }
    return { good, total };
  }

  byteSize(): number {
    return this.good.byteLength + this.total.byteLength + this.sumGood.byteLength + this.sumTotal.byteLength;
  }
}
