// Golden signals per tenant + service per minute (event time): throughput, error rate and
// P50/P95/P99 latency. Latency goes into a fixed log-bucketed histogram (8 buckets per doubling,
// ≤ ~4.4% relative error) so adding a span is O(1) and a quantile is one pass over ≤ 272 counters.
import { SPAN_KIND_NUMBER } from './config.ts';
import type { SpanSample } from './samples.ts';

const MIN = 60_000;
const SUB_BUCKETS = 8; // per power of two
const MIN_MS = 0.001; // 1 µs; everything faster lands in bucket 0
const BUCKETS = 34 * SUB_BUCKETS; // 1 µs · 2^34 ≈ 4.8 h; slower lands in the last bucket
const GROWTH = 2 ** (1 / SUB_BUCKETS);

export function latencyBucket(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const i = Math.ceil(Math.log2(ms / MIN_MS) * SUB_BUCKETS);
  return i >= BUCKETS ? BUCKETS - 1 : i;
}
/** Upper bound of bucket i (ms): bucket i holds (MIN_MS·g^(i−1), MIN_MS·g^i]. */
export const bucketUpperMs = (i: number): number => MIN_MS * GROWTH ** i;

export interface GoldenSignalRow {
  tenant: string;
  service: string;
  minuteStartMs: number;
  requests: number;
  errors: number;
  errorRate: number;
  throughputPerSec: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  /** The minute is still open: these are its running totals so far (openRows), not its final row. */
  partial?: boolean;
}

// Weighted like the SLO counts: a span kept by head sampling stands for its adjusted count
// (SpanSample.weight), so requests, errors and the latency histogram estimate all traffic.
interface Cell { tenant: string; service: string; minute: number; requests: number; errors: number; hist: Float64Array }

export interface GoldenSignalsOptions {
  /** Span kinds that represent requests served (entry spans); default server and consumer. */
  kinds?: number[];
}

export class GoldenSignals {
  private readonly cells = new Map<string, Cell>();
  private readonly kinds: Set<number>;
  /** Minutes before this were flushed; spans for them are late and only counted. */
  private flushedBeforeMinute = Number.NEGATIVE_INFINITY;
  lateDropped = 0;

  constructor(opts: GoldenSignalsOptions = {}) {
    this.kinds = new Set(opts.kinds ?? [SPAN_KIND_NUMBER.server, SPAN_KIND_NUMBER.consumer]);
  }

  add(s: SpanSample): void {
    if (!this.kinds.has(s.kind)) return;
    const minute = Math.floor(s.eventTimeMs / MIN);
    if (minute < this.flushedBeforeMinute) {
      this.lateDropped++;
      return;
    }
    const key = `${s.tenant}\u0000${s.service}\u0000${minute}`;
    let c = this.cells.get(key);
    if (!c) this.cells.set(key, (c = { tenant: s.tenant, service: s.service, minute, requests: 0, errors: 0, hist: new Float64Array(BUCKETS) }));
    const w = s.weight ?? 1;
    c.requests += w;
    if (s.isError) c.errors += w;
    c.hist[latencyBucket(s.durationMs)]! += w;
  }

  /** Returns and forgets every minute that ends at or before `beforeMs` (e.g. watermark − lateness), ordered. */
  flush(beforeMs: number): GoldenSignalRow[] {
    const limit = Math.floor(beforeMs / MIN);
    const rows: GoldenSignalRow[] = [];
    for (const [key, c] of this.cells) {
      if (c.minute >= limit) continue;
      this.cells.delete(key);
      rows.push(rowOf(c, false));
    }
    if (limit > this.flushedBeforeMinute) this.flushedBeforeMinute = limit;
    return sortRows(rows);
  }

  /**
   * The running totals of every open minute (partial rows), ordered; nothing is forgotten. Written
   * live so that the current minute is visible within seconds; the minute's final row replaces them.
   */
  openRows(): GoldenSignalRow[] {
    return sortRows([...this.cells.values()].map((c) => rowOf(c, true)));
  }

  get openCells(): number {
    return this.cells.size;
  }

  /**
   * Open minutes as deterministic JSON (sorted cells, sparse histograms), to checkpoint with the
   * offsets: a replay must not re-emit a minute with only the post-checkpoint part of its spans.
   */
  snapshot(): string {
    const cells = [...this.cells.values()]
      .sort((a, b) => a.minute - b.minute || cmp(a.tenant, b.tenant) || cmp(a.service, b.service))
      .map((c) => {
        const hist: number[] = [];
        c.hist.forEach((n, i) => { if (n) hist.push(i, n); });
        return [c.tenant, c.service, c.minute, c.requests, c.errors, hist];
      });
    const flushed = this.flushedBeforeMinute === Number.NEGATIVE_INFINITY ? null : this.flushedBeforeMinute;
    return JSON.stringify({ v: 1, flushedBeforeMinute: flushed, lateDropped: this.lateDropped, cells });
  }

  restore(json: string): void {
    const doc = JSON.parse(json) as { v: number; flushedBeforeMinute: number | null; lateDropped: number; cells: [string, string, number, number, number, number[]][] };
    if (doc.v !== 1) throw new Error(`unsupported golden-signals snapshot version ${doc.v}`);
    this.cells.clear();
    this.flushedBeforeMinute = doc.flushedBeforeMinute ?? Number.NEGATIVE_INFINITY;
    this.lateDropped = doc.lateDropped;
    for (const [tenant, service, minute, requests, errors, sparse] of doc.cells) {
      const hist = new Float64Array(BUCKETS);
      for (let i = 0; i < sparse.length; i += 2) hist[sparse[i]!] = sparse[i + 1]!;
      this.cells.set(`${tenant}\u0000${service}\u0000${minute}`, { tenant, service, minute, requests, errors, hist });
    }
  }
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const sortRows = (rows: GoldenSignalRow[]): GoldenSignalRow[] =>
  rows.sort((a, b) => a.minuteStartMs - b.minuteStartMs || cmp(a.tenant, b.tenant) || cmp(a.service, b.service));

function rowOf(c: Cell, partial: boolean): GoldenSignalRow {
  const [p50, p95, p99] = quantiles(c.hist, c.requests, [0.5, 0.95, 0.99]);
  return {
    // Whole numbers for the UInt64 columns; the rate and throughput keep the exact estimate.
    tenant: c.tenant, service: c.service, minuteStartMs: c.minute * MIN, requests: Math.round(c.requests), errors: Math.round(c.errors),
    errorRate: c.requests ? c.errors / c.requests : 0, throughputPerSec: c.requests / 60,
    p50Ms: p50!, p95Ms: p95!, p99Ms: p99!, ...(partial ? { partial: true } : {}),
  };
}

/** Nearest-rank quantiles from the histogram, reported as the bucket's geometric midpoint. */
function quantiles(hist: Float64Array, n: number, qs: number[]): number[] {
  const out: number[] = [];
  let qi = 0;
  let seen = 0;
  for (let i = 0; i < hist.length && qi < qs.length; i++) {
    seen += hist[i]!;
    while (qi < qs.length && seen >= Math.max(1, Math.ceil(qs[qi]! * n))) {
      out.push(i === 0 ? MIN_MS : bucketUpperMs(i) / Math.sqrt(GROWTH));
      qi++;
    }
  }
  while (out.length < qs.length) out.push(0);
  return out;
}
