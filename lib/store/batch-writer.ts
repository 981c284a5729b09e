// Coalesces concurrent writes into one insert per table, bounded by rows and by time: many small
// Kafka batches (partitions handled concurrently) become few large ClickHouse blocks, which is what
// MergeTree wants. Each caller's promise settles when ITS rows are durable (or failed), so a
// processor can commit Kafka offsets exactly after its output is stored.
import type { Row, Store } from './store.ts';
import { blockToken } from './store.ts';

export interface BatchWriterOptions {
  /** Flush a table's queue once it holds this many rows. */
  maxRows?: number;
  /** ... or once its oldest row waited this long. */
  maxDelayMs?: number;
}

interface Waiter { resolve: () => void; reject: (e: unknown) => void }
interface Queue { rows: Row[]; waiters: Waiter[]; timer: NodeJS.Timeout | undefined }

export class BatchWriter {
  private readonly queues = new Map<string, Queue>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly maxRows: number;
  private readonly maxDelayMs: number;

  constructor(private readonly store: Store, opts: BatchWriterOptions = {}) {
    this.maxRows = opts.maxRows ?? 20_000;
    this.maxDelayMs = opts.maxDelayMs ?? 25;
  }

  /** Resolves once `rows` are inserted into `table`. */
  write(table: string, rows: Row[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let q = this.queues.get(table);
      if (!q) this.queues.set(table, (q = { rows: [], waiters: [], timer: undefined }));
      for (const r of rows) q.rows.push(r);
      q.waiters.push({ resolve, reject });
      if (q.rows.length >= this.maxRows) this.flush(table);
      else if (!q.timer) q.timer = setTimeout(() => this.flush(table), this.maxDelayMs);
    });
  }

  /** Flush everything queued and wait for all inserts in flight. */
  async drain(): Promise<void> {
    for (const table of [...this.queues.keys()]) this.flush(table);
    await Promise.allSettled([...this.inFlight]);
  }

  private flush(table: string): void {
    const q = this.queues.get(table);
    if (!q || q.rows.length === 0) return;
    if (q.timer) clearTimeout(q.timer);
    this.queues.delete(table);
    // Serialise once: the same lines make the dedup token and the insert body.
    const lines = q.rows.map((r) => JSON.stringify(r));
    const p = this.store.insertJsonLines(table, lines, blockToken(lines)).then(
      () => { for (const w of q.waiters) w.resolve(); },
      (err: unknown) => { for (const w of q.waiters) w.reject(err); },
    );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}
