// Fire-and-forget JSON POSTs to one endpoint: a bounded queue drained by one sender with
// exponential backoff and jitter. enqueue() is synchronous and never throws, so a dead or slow
// endpoint can delay only its own queue, never the evaluator that produced the alerts.
import { counter, gauge } from '../../lib/metrics.ts';
import { logger } from '../../lib/log.ts';

export interface PosterOptions {
  url: string;
  /** Metric label naming the target (alertmanager, webhook:<name>). */
  target: string;
  maxQueue?: number;
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  timeoutMs?: number;
  headers?: Record<string, string>;
  /** Injected for deterministic tests; [0,1). */
  random?: () => number;
}

const deliveries = () => counter('stella_slo_alert_deliveries_total', 'Alert/webhook POST outcomes per target', ['target', 'outcome']);
const queueDepth = () => gauge('stella_slo_alert_queue_depth', 'Alert/webhook POSTs waiting per target', ['target']);
const log = logger('slo');

interface Item { body: string; attempts: number }

export class RetryingPoster {
  private readonly queue: Item[] = [];
  private running = false;
  private closed = false;
  private wake?: () => void;
  private inflight?: AbortController;
  private idleWaiters: (() => void)[] = [];
  readonly opts: Required<Omit<PosterOptions, 'headers'>> & { headers: Record<string, string> };

  constructor(opts: PosterOptions) {
    this.opts = {
      maxQueue: 1000, maxAttempts: 8, baseDelayMs: 250, maxDelayMs: 30_000, timeoutMs: 5000, random: Math.random, headers: {},
      ...opts,
    };
  }

  get depth(): number {
    return this.queue.length;
  }

  /** Queues a JSON body; when full, the oldest item is dropped (newer alert state supersedes it). */
  enqueue(payload: unknown): void {
    if (this.closed) return;
    if (this.queue.length >= this.opts.maxQueue) {
      this.queue.shift();
      deliveries().inc({ target: this.opts.target, outcome: 'dropped_queue_full' });
    }
    this.queue.push({ body: JSON.stringify(payload), attempts: 0 });
    queueDepth().set({ target: this.opts.target }, this.queue.length);
    if (!this.running) void this.pump();
  }

  /** Resolves when the queue is empty and nothing is in flight (tests, graceful shutdown). */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops sending; queued items are dropped. */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.wake?.();
    this.inflight?.abort(); // do not leave a request hanging on a dead endpoint after shutdown
  }

  /** Backoff before attempt n (1-based retry count): base·2^(n−1) capped, with "equal jitter" (half fixed, half random). */
  backoffMs(retry: number): number {
    const cap = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** (retry - 1));
    return cap / 2 + (cap / 2) * this.opts.random();
  }

  private async pump(): Promise<void> {
    this.running = true;
    try {
      while (!this.closed && this.queue.length > 0) {
        const item = this.queue[0]!;
        const result = await this.post(item.body);
        if (this.closed) break;
        if (result === 'ok' || result === 'rejected') {
          if (this.queue[0] === item) this.queue.shift();
          deliveries().inc({ target: this.opts.target, outcome: result === 'ok' ? 'sent' : 'rejected' });
          continue;
        }
        item.attempts++;
        if (item.attempts >= this.opts.maxAttempts) {
          if (this.queue[0] === item) this.queue.shift();
          deliveries().inc({ target: this.opts.target, outcome: 'dropped_gave_up' });
          log.warn({ target: this.opts.target, error_code: 'SLO_ALERT_GAVE_UP', attempts: item.attempts }, 'alert delivery gave up');
          continue;
        }
        deliveries().inc({ target: this.opts.target, outcome: 'retried' });
        await this.sleep(this.backoffMs(item.attempts));
      }
    } finally {
      this.running = false;
      queueDepth().set({ target: this.opts.target }, this.queue.length);
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async post(body: string): Promise<'ok' | 'rejected' | 'retry'> {
    const ctl = (this.inflight = new AbortController());
    try {
      const res = await fetch(this.opts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...this.opts.headers },
        body,
        signal: AbortSignal.any([ctl.signal, AbortSignal.timeout(this.opts.timeoutMs)]),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return 'ok';
      // 4xx (except 408/429) will not get better by retrying the same body.
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
        log.warn({ target: this.opts.target, error_code: 'SLO_ALERT_REJECTED', status: res.status }, 'alert POST rejected');
        return 'rejected';
      }
      return 'retry';
    } catch (e) {
      log.debug({ target: this.opts.target, error_code: 'SLO_ALERT_POST_FAILED', error_message: (e as Error).message }, 'alert POST failed');
      return 'retry';
    } finally {
      this.inflight = undefined;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = undefined; resolve(); }, ms);
      t.unref(); // a retry backoff must never keep the process alive
      this.wake = () => { clearTimeout(t); this.wake = undefined; resolve(); };
    });
  }
}
