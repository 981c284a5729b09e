// Event-time buckets {good, total} in a ring of fixed-size slots (minutes or hours), with running
// sums per window so that every window sum is O(1) to read: advancing the head moves exactly one
// slot into and one slot out of each window, and only out-of-order samples touch the sums. Counts
// are weighted (a sampled span stands for 1/p spans), so slots are float64: a 3-day minute ring is
// 4320 × 2 × 8 bytes ≈ 69 KB. Weights are multiples of 2^-10 (samples.ts quantizeWeight), so
// every sum below 2^43 is exact and adding then subtracting a slot leaves no residue.

/** Largest count a slot accepts: beyond 2^43 sums of 2^-10 multiples would stop being exact. */
const SLOT_MAX = 2 ** 43;

export class SlotRing {
  readonly good: Float64Array;
  readonly total: Float64Array;
  /** Absolute index (time / slotMs) of the newest slot; -Infinity before the first sample. */
  head = Number.NEGATIVE_INFINITY;
  /**
   * Running sums per window (aligned with `windows`) over the window's slots EXCEPT the head:
   * (head − w, head − 1]. The head slot is added on read, so the common case — a sample for the
   * current slot — is two increments. Exact: see the quantum above.
   */
  private readonly restGood: Float64Array;
  private readonly restTotal: Float64Array;

  constructor(readonly slotMs: number, readonly size: number, readonly windows: readonly number[]) {
    for (const w of windows) if (!(w >= 1 && w <= size && Number.isInteger(w))) throw new Error(`window of ${w} slots does not fit a ring of ${size}`);
    this.good = new Float64Array(size);
    this.total = new Float64Array(size);
    this.restGood = new Float64Array(windows.length);
    this.restTotal = new Float64Array(windows.length);
  }

  private idx(slot: number): number {
    const i = slot % this.size;
    return i < 0 ? i + this.size : i;
  }

  /** Good events in window i (by index into `windows`), head included. O(1). */
  windowGood(i: number): number {
    return this.head === Number.NEGATIVE_INFINITY ? 0 : this.restGood[i]! + this.good[this.idx(this.head)]!;
  }

  windowTotal(i: number): number {
    return this.head === Number.NEGATIVE_INFINITY ? 0 : this.restTotal[i]! + this.total[this.idx(this.head)]!;
  }

  /** Moves the head forward to `slot`, retiring slots that fall out of each window. */
  advanceTo(slot: number): void {
    if (slot <= this.head) return;
    const steps = slot - this.head;
    if (steps >= this.size || this.head === Number.NEGATIVE_INFINITY) {
      // Everything in the ring is older than the largest window: start clean.
      this.good.fill(0);
      this.total.fill(0);
      this.restGood.fill(0);
      this.restTotal.fill(0);
      this.head = slot;
      return;
    }
    for (let h = this.head; h < slot; h++) {
      // Head h becomes a past slot of every window; slot h + 1 − w leaves window w.
      const cur = this.idx(h);
      const g = this.good[cur]!;
      const t = this.total[cur]!;
      for (let i = 0; i < this.windows.length; i++) {
        const leaving = this.idx(h + 1 - this.windows[i]!);
        this.restGood[i]! += g - this.good[leaving]!;
        this.restTotal[i]! += t - this.total[leaving]!;
      }
      const next = this.idx(h + 1); // held h + 1 − size, which just left the largest window
      this.good[next] = 0;
      this.total[next] = 0;
    }
    this.head = slot;
  }

  /**
   * Adds counts to an absolute slot; a slot ahead of the head advances it. Returns false (nothing
   * applied) when the slot is older than the ring holds or the slot would overflow.
   */
  add(slot: number, good: number, total: number): boolean {
    if (slot > this.head) this.advanceTo(slot);
    else if (slot <= this.head - this.size) return false;
    const i = this.idx(slot);
    const t = this.total[i]! + total;
    if (t > SLOT_MAX) return false; // saturated slot: refuse rather than lose exactness
    this.good[i]! += good;
    this.total[i] = t;
    if (slot !== this.head) {
      // Out of order: an older slot is already part of the running sums of the windows that still hold it.
      const age = this.head - slot;
      for (let w = 0; w < this.windows.length; w++) {
        if (age < this.windows[w]!) {
          this.restGood[w]! += good;
          this.restTotal[w]! += total;
        }
      }
    }
    return true;
  }

  /** Calls fn for every non-empty slot from oldest to newest (absolute slot index). */
  forEachNonEmpty(fn: (slot: number, good: number, total: number) => void): void {
    if (this.head === Number.NEGATIVE_INFINITY) return;
    for (let s = this.head - this.size + 1; s <= this.head; s++) {
      const i = this.idx(s);
      if (this.total[i] !== 0 || this.good[i] !== 0) fn(s, this.good[i]!, this.total[i]!);
    }
  }

  /** Window sums recomputed by scanning (O(window)); used by tests to check the running sums. */
  scanWindow(slots: number): { good: number; total: number } {
    let good = 0;
    let total = 0;
    if (this.head === Number.NEGATIVE_INFINITY) return { good, total };
    for (let s = this.head - slots + 1; s <= this.head; s++) {
      good += this.good[this.idx(s)]!;
      total += this.total[this.idx(s)]!;
    }
    return { good, total };
  }

  byteSize(): number {
    return this.good.byteLength + this.total.byteLength + this.restGood.byteLength + this.restTotal.byteLength;
  }
}
