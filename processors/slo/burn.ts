// Multiwindow, multi-burn-rate alert rules for a 30-day error budget (Google SRE workbook, ch. 5):
// an alert fires only while BOTH its long window (is the budget really burning?) and its short
// window (is it still burning now?) exceed the factor, which gives fast detection and fast reset.

export type Severity = 'page' | 'ticket';

export interface BurnRule {
  severity: Severity;
  longMs: number;
  shortMs: number;
  factor: number;
  /** Label value, e.g. "1h/5m"; part of the alert's identity. */
  windows: string;
}

const MIN = 60_000;
const HOUR = 60 * MIN;
export const BURN_RULES: readonly BurnRule[] = [
  { severity: 'page', longMs: HOUR, shortMs: 5 * MIN, factor: 14.4, windows: '1h/5m' },
  { severity: 'page', longMs: 6 * HOUR, shortMs: 30 * MIN, factor: 6, windows: '6h/30m' },
  { severity: 'ticket', longMs: 24 * HOUR, shortMs: 2 * HOUR, factor: 3, windows: '1d/2h' },
  { severity: 'ticket', longMs: 72 * HOUR, shortMs: 6 * HOUR, factor: 1, windows: '3d/6h' },
];

/** Every distinct window the rules read, in minutes (ascending); the minute ring keeps a running sum for each. */
export const RULE_WINDOWS_MIN: readonly number[] = [...new Set(BURN_RULES.flatMap((r) => [r.longMs / MIN, r.shortMs / MIN]))].sort((a, b) => a - b);
/** The largest window (3 days) sizes the minute ring. */
export const RING_MINUTES = Math.max(...RULE_WINDOWS_MIN);

/** Error ratio of a window; an empty window has no errors (it cannot burn budget). */
export function errorRatio(good: number, total: number): number {
  return total > 0 ? (total - good) / total : 0;
}

/** Burn rate: how many times faster than "exactly spend the budget in 30 days" errors arrive. */
export function burnRate(ratio: number, objective: number): number {
  return ratio / (1 - objective);
}

/**
 * The threshold on the error ratio, computed exactly as the rendered Prometheus rules write it
 * (`factor * (1 - objective)`), so both paths round identically at the edge.
 */
export function ratioThreshold(factor: number, objective: number): number {
  return factor * (1 - objective);
}

/** Remaining share of the 30-day budget: 1 untouched, 0 spent, negative overspent. */
export function budgetRemaining(good: number, total: number, objective: number): number {
  if (total <= 0) return 1;
  return 1 - (total - good) / (total * (1 - objective));
}
