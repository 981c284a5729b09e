// The SLO evaluator: routes samples to (tenant, SLO) states and evaluates the burn-rate rules,
// emitting only state transitions (firing / resolved). Pure and synchronous: time comes from the
// caller (event time in samples, evaluation time as an argument), so it is replayable and testable.
import { counter } from '../../lib/metrics.ts';
import { BURN_RULES, budgetRemaining, burnRate, errorRatio, ratioThreshold, type Severity } from './burn.ts';
import { SPAN_KIND_NUMBER, sliFingerprint, type SloConfig, type SloDefinition } from './config.ts';
import { histogramGoodCount, isSpanSample, type HistogramSample, type SliSample, type SpanSample } from './samples.ts';
import { SloState } from './slo-state.ts';
import { formatWindow } from './duration.ts';

export interface AlertIdentity {
  tenant: string;
  service: string;
  slo: string;
  journey: string;
  severity: Severity;
  /** "1h/5m" etc. */
  windows: string;
}

export interface AlertStatus extends AlertIdentity {
  status: 'firing' | 'resolved';
  /** Evaluation time of this status. */
  atMs: number;
  /** When the alert started firing (event time); kept on the resolved transition too. */
  startsAtMs: number;
  objective: number;
  factor: number;
  burnRateLong: number;
  burnRateShort: number;
  eventsLong: number;
  /** Share of the 30-day budget left (1 untouched, ≤ 0 spent). */
  budgetRemaining: number;
  /** Trace id of the latest bad event, '' when none is known. */
  exemplarTraceId: string;
  runbook: string;
}

export interface EvaluationResult {
  /** Alerts that changed state in this evaluation (the only thing that must be delivered once). */
  transitions: AlertStatus[];
  /** Every alert firing after this evaluation (for periodic re-sends). */
  firing: AlertStatus[];
}

export interface SloSummary {
  tenant: string;
  slo: string;
  service: string;
  journey: string;
  objective: number;
  budgetRemaining: number;
  burnRates: Record<string, number>;
  firing: string[];
  droppedLate: number;
  droppedFuture: number;
}

/** A compiled matcher + classifier for one SLO: returns good (1/0), or -1 when the sample does not match. */
interface CompiledSlo {
  state: SloState;
  matchSpan?: (s: SpanSample) => boolean;
  matchHistogram?: (s: HistogramSample) => boolean;
  thresholdMs: number;
  latency: boolean;
}

const samplesCounter = () => counter('stella_slo_samples_total', 'SLI samples by outcome (applied, late, future, unmatched)', ['outcome']);
const transitionsCounter = () => counter('stella_slo_alert_transitions_total', 'SLO alert state changes', ['severity', 'status']);

export class SloEvaluator {
  private readonly byTenant = new Map<string, Map<string, CompiledSlo[]>>();
  private readonly states = new Map<string, SloState>();
  // Counted locally and flushed to prom-client on evaluate(): a metric call per sample would cost more than the work.
  private pending = { applied: 0, late: 0, future: 0, unmatched: 0 };

  constructor(readonly config: SloConfig) {
    for (const def of config.slos) {
      const state = new SloState(def, sliFingerprint(def));
      this.states.set(state.key, state);
      let services = this.byTenant.get(def.tenant);
      if (!services) this.byTenant.set(def.tenant, (services = new Map()));
      const list = services.get(def.service) ?? [];
      list.push(compile(def, state));
      services.set(def.service, list);
    }
  }

  /** Routes samples to their SLOs; returns how many matched at least one (late ones included, and counted as late). */
  ingest(samples: readonly SliSample[]): number {
    let applied = 0;
    for (const s of samples) if (this.ingestOne(s)) applied++;
    return applied;
  }

  ingestOne(s: SliSample): boolean {
    const slos = this.byTenant.get(s.tenant)?.get(s.service);
    if (!slos) {
      this.pending.unmatched++;
      return false;
    }
    let hit = false;
    if (isSpanSample(s)) {
      for (const c of slos) {
        if (!c.matchSpan || !c.matchSpan(s)) continue;
        const bad = c.latency ? s.durationMs > c.thresholdMs : s.isError;
        const outcome = c.state.add(s.eventTimeMs, bad ? 0 : 1, 1, bad ? s.traceId : undefined);
        this.pending[outcome]++;
        hit = true;
      }
    } else {
      for (const c of slos) {
        if (!c.matchHistogram || !c.matchHistogram(s)) continue;
        const good = c.latency ? histogramGoodCount(s, c.thresholdMs) : s.isError ? 0 : s.count;
        const outcome = c.state.add(s.eventTimeMs, good, s.count);
        this.pending[outcome]++;
        hit = true;
      }
    }
    if (!hit) this.pending.unmatched++;
    return hit;
  }

  /** Evaluates every SLO at `nowMs` (event-time clock) and returns the transitions. */
  evaluate(nowMs: number): EvaluationResult {
    this.flushCounters();
    const transitions: AlertStatus[] = [];
    const firing: AlertStatus[] = [];
    for (const state of this.states.values()) {
      state.advanceTo(nowMs);
      const def = state.def;
      const budget = state.budgetWindow();
      const budgetLeft = budgetRemaining(budget.good, budget.total, def.objective);
      BURN_RULES.forEach((rule, i) => {
        const long = state.window(rule.longMs / 60_000);
        const short = state.window(rule.shortMs / 60_000);
        const ratioLong = errorRatio(long.good, long.total);
        const ratioShort = errorRatio(short.good, short.total);
        const threshold = ratioThreshold(rule.factor, def.objective);
        const burning = long.total >= def.minEvents && long.total > 0 && ratioLong > threshold && ratioShort > threshold;
        const flag = state.alerts[i]!;
        const wasFiring = flag.firing;
        if (burning && !wasFiring) {
          flag.firing = true;
          flag.startsAtMs = state.watermarkMs;
        }
        const status: AlertStatus = {
          tenant: def.tenant, service: def.service, slo: def.name, journey: def.journey,
          severity: rule.severity, windows: rule.windows, status: burning ? 'firing' : 'resolved',
          atMs: state.watermarkMs, startsAtMs: flag.startsAtMs, objective: def.objective, factor: rule.factor,
          burnRateLong: burnRate(ratioLong, def.objective), burnRateShort: burnRate(ratioShort, def.objective),
          eventsLong: long.total, budgetRemaining: budgetLeft, exemplarTraceId: state.exemplarTraceId, runbook: def.runbook,
        };
        if (burning !== wasFiring) transitions.push(status);
        if (!burning && wasFiring) {
          flag.firing = false;
          flag.startsAtMs = 0;
        }
        if (burning) firing.push(status);
      });
    }
    for (const t of transitions) transitionsCounter().inc({ severity: t.severity, status: t.status });
    return { transitions, firing };
  }

  /** Current burn rates and budget per SLO, for `GET /obs/slo` and `stella slo list` (no side effects). */
  summaries(): SloSummary[] {
    return [...this.states.values()].map((state) => {
      const def = state.def;
      const budget = state.budgetWindow();
      const burnRates: Record<string, number> = {};
      for (const rule of BURN_RULES) {
        for (const ms of [rule.longMs, rule.shortMs]) {
          const w = state.window(ms / 60_000);
          burnRates[formatWindow(ms)] = burnRate(errorRatio(w.good, w.total), def.objective);
        }
      }
      return {
        tenant: def.tenant, slo: def.name, service: def.service, journey: def.journey, objective: def.objective,
        budgetRemaining: budgetRemaining(budget.good, budget.total, def.objective), burnRates,
        firing: BURN_RULES.filter((_, i) => state.alerts[i]!.firing).map((r) => `${r.severity}:${r.windows}`),
        droppedLate: state.droppedLate,
        droppedFuture: state.droppedFuture,
      };
    });
  }

  /** States in a stable order (by key) — the snapshot relies on it for deterministic bytes. */
  sortedStates(): SloState[] {
    return [...this.states.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  state(tenant: string, slo: string): SloState | undefined {
    return this.states.get(`${tenant}/${slo}`);
  }

  private flushCounters(): void {
    const p = this.pending;
    if (p.applied) samplesCounter().inc({ outcome: 'applied' }, p.applied);
    if (p.late) samplesCounter().inc({ outcome: 'late' }, p.late);
    if (p.future) samplesCounter().inc({ outcome: 'future' }, p.future);
    if (p.unmatched) samplesCounter().inc({ outcome: 'unmatched' }, p.unmatched);
    this.pending = { applied: 0, late: 0, future: 0, unmatched: 0 };
  }
}

function compile(def: SloDefinition, state: SloState): CompiledSlo {
  const latency = def.sli.type === 'latency';
  const thresholdMs = def.sli.thresholdMs ?? Number.POSITIVE_INFINITY;
  if (def.sli.source === 'spans' && def.sli.spans) {
    const { name, nameRegex, kind } = def.sli.spans;
    const kindNum = kind === 'any' ? -1 : SPAN_KIND_NUMBER[kind];
    const matchSpan = (s: SpanSample): boolean =>
      (kindNum < 0 || s.kind === kindNum) &&
      (name === undefined || s.spanName === name) &&
      (nameRegex === undefined || nameRegex.test(s.spanName));
    return { state, matchSpan, thresholdMs, latency };
  }
  const m = def.sli.metric!;
  const attrs = Object.entries(m.attributes);
  const matchHistogram = (s: HistogramSample): boolean => s.metric === m.name && attrs.every(([k, v]) => s.attributes[k] === v);
  return { state, matchHistogram, thresholdMs, latency };
}
