// State of one (tenant, SLO): minute buckets over 3 days for the burn-rate windows, hour buckets
// over 30 days for "budget left", the watermark that bounds lateness, the latest bad trace as an
// exemplar, and which alerts are firing (so a restored state neither re-fires nor forgets).
import { BURN_RULES, RING_MINUTES, RULE_WINDOWS_MIN } from './burn.ts';
import type { SloDefinition } from './config.ts';
import { SlotRing } from './slot-ring.ts';

const MIN = 60_000;
const HOUR = 3_600_000;
export const BUDGET_HOURS = 720; // 30 days

export interface AlertFlag {
  firing: boolean;
  /** Event time the alert started firing (Alertmanager startsAt); 0 when not firing. */
  startsAtMs: number;
}

/**
 * The window sums one evaluation saw, kept so that what is reported (`GET /obs/slo`) and re-sent
 * (firing alerts) always belongs to one evaluation and its minute, never to the live head, which
 * may already hold part of the next minute.
 */
export interface Evaluation {
  /** Evaluation time: the state's watermark at that evaluation (its minute is the ring head). */
  atMs: number;
  /** Sums per RULE_WINDOWS_MIN entry (same order). */
  good: number[];
  total: number[];
  budgetGood: number;
  budgetTotal: number;
  /** The exemplar (latest bad trace) as of that evaluation. */
  exemplarTraceId: string;
}

export type IngestOutcome = 'applied' | 'late' | 'future';
/**
 * Samples further than this ahead of the last evaluation time are refused: one client with a
 * skewed clock (year 2099) would otherwise move the watermark and wipe the tenant's windows.
 */
export const FUTURE_TOLERANCE_MS = 3_600_000;

export class SloState {
  readonly minutes = new SlotRing(MIN, RING_MINUTES, RULE_WINDOWS_MIN);
  readonly hours = new SlotRing(HOUR, BUDGET_HOURS, [BUDGET_HOURS]);
  /** Max of event times seen and evaluation times; lateness is measured against it. */
  watermarkMs = Number.NEGATIVE_INFINITY;
  droppedLate = 0;
  droppedFuture = 0;
  /** Latest evaluation time (not persisted: after a restore the first evaluation sets it again). */
  evaluatedAtMs = Number.NEGATIVE_INFINITY;
  exemplarTraceId = '';
  exemplarTimeMs = 0;
  readonly alerts: AlertFlag[] = BURN_RULES.map(() => ({ firing: false, startsAtMs: 0 }));
  /** What the latest evaluation saw (persisted with the state); undefined before the first one. */
  lastEval: Evaluation | undefined;

  constructor(readonly def: SloDefinition, readonly fingerprint: string) {}

  get key(): string {
    return stateKey(this.def.tenant, this.def.name);
  }

  /** Adds good/total counts at an event time; too-late samples are counted, not applied. */
  add(eventTimeMs: number, good: number, total: number, badTraceId?: string): IngestOutcome {
    if (eventTimeMs < this.watermarkMs - this.def.latenessMs) {
      this.droppedLate += total;
      return 'late';
    }
    if (eventTimeMs > this.evaluatedAtMs + FUTURE_TOLERANCE_MS && this.evaluatedAtMs !== Number.NEGATIVE_INFINITY) {
      this.droppedFuture += total;
      return 'future';
    }
    if (eventTimeMs > this.watermarkMs) this.watermarkMs = eventTimeMs;
    const minute = Math.floor(eventTimeMs / MIN);
    this.minutes.add(minute, good, total);
    this.hours.add(Math.floor(eventTimeMs / HOUR), good, total);
    if (badTraceId && eventTimeMs >= this.exemplarTimeMs) {
      this.exemplarTraceId = badTraceId;
      this.exemplarTimeMs = eventTimeMs;
    }
    return 'applied';
  }

  /** Moves windows to the evaluation time, so idle SLOs' windows keep sliding. */
  advanceTo(nowMs: number): void {
    if (nowMs > this.evaluatedAtMs) this.evaluatedAtMs = nowMs;
    if (nowMs > this.watermarkMs) this.watermarkMs = nowMs;
    this.minutes.advanceTo(Math.floor(this.watermarkMs / MIN));
    this.hours.advanceTo(Math.floor(this.watermarkMs / HOUR));
  }

  /** Records the window sums at the current head as this state's latest evaluation. */
  captureEvaluation(): Evaluation {
    const good: number[] = [];
    const total: number[] = [];
    for (let i = 0; i < RULE_WINDOWS_MIN.length; i++) { good.push(this.minutes.windowGood(i)); total.push(this.minutes.windowTotal(i)); }
    this.lastEval = { atMs: this.watermarkMs, good, total, budgetGood: this.hours.windowGood(0), budgetTotal: this.hours.windowTotal(0),
      exemplarTraceId: this.exemplarTraceId };
    return this.lastEval;
  }

  /** Sums of the rule window of `minutes` length; O(1) via the ring's running sums. */
  window(minutes: number): { good: number; total: number } {
    const i = RULE_WINDOWS_MIN.indexOf(minutes);
    if (i < 0) throw new Error(`no running sum for a ${minutes}m window`);
    return { good: this.minutes.windowGood(i), total: this.minutes.windowTotal(i) };
  }

  budgetWindow(): { good: number; total: number } {
    return { good: this.hours.windowGood(0), total: this.hours.windowTotal(0) };
  }

  byteSize(): number {
    return this.minutes.byteSize() + this.hours.byteSize() + 64 * BURN_RULES.length + 128;
  }
}

export const stateKey = (tenant: string, slo: string): string => `${tenant}/${slo}`;
