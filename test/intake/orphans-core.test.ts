// The orphan policy's pure core (processors/intake/orphans.ts): backoff doubling and its cap, the
// queue bound refusing newcomers, and each retry decision on both sides of its boundary.
import { describe, expect, it } from 'vitest';
import { admitOrphan, newOrphan, orphanBackoffMs, retryDecision, type OrphanPolicy } from '../../processors/intake/orphans.ts';

const p: OrphanPolicy = { maxQueued: 3, ttlMs: 10_000, retryInitialMs: 100, retryMaxMs: 1000 };

describe('orphan policy', () => {
  it('backs off exponentially up to the cap', () => {
    expect([0, 1, 2, 3, 4, 5, 60].map((a) => orphanBackoffMs(a, p))).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
  });

  it('admits below the bound and refuses the newcomer at it', () => {
    expect(admitOrphan(2, p)).toEqual({ admit: true });
    const full = admitOrphan(3, p);
    expect(full.admit).toBe(false);
    expect(!full.admit && full.reason).toMatch(/orphan queue full \(3 held/);
  });

  it('waits until due, resolves a known graph, reschedules an unknown one, expires at the TTL', () => {
    const s = newOrphan(1000, p);
    expect(s).toEqual({ firstSeenMs: 1000, attempts: 0, nextAttemptMs: 1100 });
    expect(retryDecision(s, 1099, true, p)).toEqual({ kind: 'wait' });
    expect(retryDecision(s, 1100, true, p)).toEqual({ kind: 'resolve' });
    expect(retryDecision(s, 1100, false, p)).toEqual({ kind: 'reschedule', next: { firstSeenMs: 1000, attempts: 1, nextAttemptMs: 1300 } });
    expect(retryDecision(s, 10_999, false, p).kind).toBe('reschedule');
    const late = { ...s, nextAttemptMs: 50_000 }; // not due, but past its TTL: looked at anyway
    expect(retryDecision(late, 11_000, false, p)).toMatchObject({ kind: 'expire', reason: expect.stringMatching(/orphan expired/) });
    expect(retryDecision(late, 11_000, true, p)).toEqual({ kind: 'resolve' }); // the graph came: nothing is dropped
  });
});
