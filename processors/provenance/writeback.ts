// The resolved-symbol write-back, off the query path: frames a query resolved are queued here and
// written to frames.resolved_symbol only while no provenance query runs (embedded chdb runs one
// session: an insert started between two queries delays the second, measured 43 ms median with
// 240-400 ms spikes per 1,000 rows at 10M frames). Bounded: the queue holds at most maxPending
// frames (beyond that new ones are dropped and counted; a dropped write-back only costs a lookup
// next time), and each insert is at most chunkRows rows, so a query arriving while one runs waits
// for one small insert at most. docs/provenance.md "Write-back".
import type { FrameRow } from './frames-store.ts';

export interface WriteBackUpdate { frame: FrameRow; resolved_symbol: string }

export interface IdleWriteBackOptions {
  /** A write starts only after this long without a query (ms). Default 1,000. */
  idleMs?: number;
  /** Frames queued at most; further updates are dropped (counted). Default 50,000. */
  maxPending?: number;
  /** Rows per insert. Default 500. */
  chunkRows?: number;
}

/** Writes one tenant's updates; resolves with the rows written. */
export type WriteBackFn = (tenant: string, updates: readonly WriteBackUpdate[]) => Promise<number>;

export interface WriteBackEvents {
  written?: (n: number) => void;
  failed?: (tenant: string, n: number, err: Error) => void;
  dropped?: (n: number) => void;
}

/** A frame's row identity (the ReplacingMergeTree key plus ts): one queued update per frame, the latest wins. */
const frameId = (tenant: string, f: FrameRow): string => `${tenant}\u0000${f.trace_id}\u0000${f.span_id}\u0000${f.exception_id}\u0000${f.frame_index}\u0000${f.ts_unix_nano}`;

export class IdleWriteBack {
  private readonly pending = new Map<string, { tenant: string; update: WriteBackUpdate }>();
  private readonly idleMs: number;
  private readonly maxPending: number;
  private readonly chunkRows: number;
  private active = 0;
  private lastQueryAt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The insert in flight, if any (at most one at a time). */
  private inFlight: Promise<void> | undefined;
  written = 0;
  dropped = 0;
  failed = 0;

  constructor(private readonly write: WriteBackFn, opts: IdleWriteBackOptions = {}, private readonly events: WriteBackEvents = {},
    private readonly now: () => number = () => performance.now()) {
    this.idleMs = opts.idleMs ?? 1_000;
    this.maxPending = opts.maxPending ?? 50_000;
    this.chunkRows = Math.max(1, opts.chunkRows ?? 500);
  }

  get pendingCount(): number { return this.pending.size; }

  /** A query starts: no write starts until every started query ended and idleMs passed. Returns its end. */
  queryStarted(): () => void {
    this.active++;
    this.lastQueryAt = this.now();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.active--;
      this.lastQueryAt = this.now();
      this.schedule(this.idleMs);
    };
  }

  /** Queues updates (only frames whose stored symbol differs: the caller's filter). */
  add(tenant: string, updates: readonly WriteBackUpdate[]): void {
    let dropped = 0;
    for (const u of updates) {
      const id = frameId(tenant, u.frame);
      if (!this.pending.has(id) && this.pending.size >= this.maxPending) { dropped++; continue; }
      this.pending.set(id, { tenant, update: u });
    }
    if (dropped) { this.dropped += dropped; this.events.dropped?.(dropped); }
    this.schedule(this.idleMs);
  }

  /** Writes everything queued now, whatever the queries (tests, shutdown). */
  async flush(): Promise<void> {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    for (;;) {
      if (this.inFlight) { await this.inFlight; continue; }
      if (this.pending.size === 0) return;
      await this.writeChunk();
    }
  }

  private schedule(ms: number): void {
    if (this.timer || this.pending.size === 0) return;
    this.timer = setTimeout(() => { this.timer = undefined; this.tick(); }, ms);
    this.timer.unref();
  }

  private tick(): void {
    if (this.pending.size === 0 || this.inFlight) return; // an insert in flight reschedules when done
    const quietFor = this.now() - this.lastQueryAt;
    if (this.active > 0) return; // the query's end reschedules
    if (quietFor < this.idleMs) { this.schedule(this.idleMs - quietFor); return; }
    void this.writeChunk().then(() => this.schedule(0));
  }

  /** One insert: up to chunkRows queued frames of the first queued frame's tenant. */
  private writeChunk(): Promise<void> {
    let tenant: string | undefined;
    const chunk: WriteBackUpdate[] = [];
    for (const [id, e] of this.pending) {
      if (tenant === undefined) tenant = e.tenant;
      if (e.tenant !== tenant) continue;
      chunk.push(e.update);
      this.pending.delete(id);
      if (chunk.length >= this.chunkRows) break;
    }
    if (tenant === undefined) return Promise.resolve();
    const t = tenant;
    const p = this.write(t, chunk)
      .then((n) => { this.written += n; this.events.written?.(n); })
      .catch((e: unknown) => { this.failed += chunk.length; this.events.failed?.(t, chunk.length, e as Error); })
      .finally(() => { this.inFlight = undefined; });
    this.inFlight = p;
    return p;
  }
}
