// Runtime-facts orphans, the pure core (docs/intake.md "Orphans"): facts whose graph_hash names no
// graph the tenant registered are parked in a bounded queue and retried with exponential backoff
// until the graph arrives (then written like any ingest) or their time to live runs out (then dead-
// lettered). This file decides; processors/intake/orphan-queue.ts keeps the entries on disk and
// runtime-sink.ts runs the retries.

export interface OrphanPolicy {
  /** Most orphans held at once (all tenants); a new orphan past it is refused (dead-lettered), queued ones are kept. */
  maxQueued: number;
  /** How long an orphan waits for its graph, from when the sink first saw it. */
  ttlMs: number;
  /** First retry delay; doubles per attempt up to retryMaxMs. */
  retryInitialMs: number;
  retryMaxMs: number;
}

export const DEFAULT_ORPHAN_POLICY: OrphanPolicy = { maxQueued: 10_000, ttlMs: 24 * 3600_000, retryInitialMs: 1000, retryMaxMs: 5 * 60_000 };

export interface OrphanState { firstSeenMs: number; attempts: number; nextAttemptMs: number }

/** Delay before retry number `attempts + 1`: initial × 2^attempts, capped. */
export function orphanBackoffMs(attempts: number, p: OrphanPolicy): number {
  return Math.min(p.retryMaxMs, p.retryInitialMs * 2 ** Math.min(attempts, 30));
}

/** A new orphan: first retry one initial delay from now. */
export function newOrphan(nowMs: number, p: OrphanPolicy): OrphanState {
  return { firstSeenMs: nowMs, attempts: 0, nextAttemptMs: nowMs + orphanBackoffMs(0, p) };
}

export type AdmitDecision = { admit: true } | { admit: false; reason: string };

/** Whether a new orphan fits: the queue refuses newcomers when full (what is held stays held). */
export function admitOrphan(queued: number, p: OrphanPolicy): AdmitDecision {
  return queued < p.maxQueued ? { admit: true }
    : { admit: false, reason: `runtime facts orphan queue full (${p.maxQueued} held; intake.runtimeFacts.orphans.maxQueued): graph unknown, not queued` };
}

export type RetryDecision =
  | { kind: 'wait' }
  | { kind: 'resolve' }
  | { kind: 'expire'; reason: string }
  | { kind: 'reschedule'; next: OrphanState };

/**
 * What to do with a queued orphan at `nowMs`. A known graph resolves it even past its expiry (the
 * graph arrived: nothing is lost by writing); otherwise an expired orphan is dropped, a due one
 * rescheduled with the next backoff, and one not yet due waits.
 */
export function retryDecision(s: OrphanState, nowMs: number, graphKnown: boolean | undefined, p: OrphanPolicy): RetryDecision {
  if (nowMs < s.nextAttemptMs && nowMs - s.firstSeenMs < p.ttlMs) return { kind: 'wait' };
  if (graphKnown) return { kind: 'resolve' };
  if (nowMs - s.firstSeenMs >= p.ttlMs) return { kind: 'expire', reason: `runtime facts orphan expired: graph unknown after ${Math.round(p.ttlMs / 1000)} s (intake.runtimeFacts.orphans.ttlSeconds)` };
  const attempts = s.attempts + 1;
  return { kind: 'reschedule', next: { ...s, attempts, nextAttemptMs: nowMs + orphanBackoffMs(attempts, p) } };
}
