// The SLO evaluator: routes samples to (tenant, SLO) states and evaluates the burn-rate rules,
// emitting only state transitions (firing / resolved). Pure and synchronous: time comes from the
// caller (event time in samples, evaluation time as an argument), so it is replayable and testable.
import { counter } from '../../lib/metrics.ts';
import { BURN_RULES, budgetRemaining, burnRate, errorRatio, ratioThreshold, RULE_WINDOWS_MIN, type Severity } from './burn.ts';
import { SPAN_KIND_NUMBER, sliFingerprint, type SloConfig, type SloDefinition } from './config.ts';
import { histogramGoodCount, isSpanSample, type HistogramSample, type SliSample, type SpanSample } from './samples.ts';
import { SloState, type Evaluation } from './slo-state.ts';
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
  /** Time of the evaluation everything above comes from (its minute: floor(evaluatedAtMs / 1 min)); null before the first. */
  evaluatedAtMs: number | null;
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

/** `tenant: "*"` / `service: "*"` in an SLO definition: every tenant / every service (the default catalog). */
export const ANY = '*';

export class SloEvaluator {
  private readonly byTenant = new Map<string, Map<string, CompiledSlo[]>>();
  private readonly states = new Map<string, SloState>();
  /** Definitions for every tenant (tenant "*"), instantiated per tenant when it first sends a sample. */
  private readonly templates: SloDefinition[];
  private readonly instantiated = new Set<string>();
  // Counted locally and flushed to prom-client on evaluate(): a metric call per sample would cost more than the work.
  private pending = { applied: 0, late: 0, future: 0, unmatched: 0 };

  constructor(readonly config: SloConfig) {
    this.templates = config.slos.filter((d) => d.tenant === ANY);
    for (const def of config.slos) if (def.tenant !== ANY) this.add(def);
  }

  private add(def: SloDefinition): void {
    const state = new SloState(def, sliFingerprint(def));
    this.states.set(state.key, state);
    let services = this.byTenant.get(def.tenant);
    if (!services) this.byTenant.set(def.tenant, (services = new Map()));
    const list = services.get(def.service) ?? [];
    list.push(compile(def, state));
    services.set(def.service, list);
  }

  /**
   * The tenant's instances of the every-tenant definitions, made once. A tenant's own definition
   * with the same name replaces the template (configured otherwise, so the catalog's stays off).
   */
  private ensureTenant(tenant: string): void {
    if (!this.templates.length || this.instantiated.has(tenant)) return;
    this.instantiated.add(tenant);
    for (const t of this.templates) if (!this.states.has(`${tenant}/${t.name}`)) this.add({ ...t, tenant });
  }

  /** Routes samples to their SLOs; returns how many matched at least one (late ones included, and counted as late). */
  ingest(samples: readonly SliSample[]): number {
    let applied = 0;
    for (const s of samples) if (this.ingestOne(s)) applied++;
    return applied;
  }

  ingestOne(s: SliSample): boolean {
    this.ensureTenant(s.tenant);
    const services = this.byTenant.get(s.tenant);
    const own = services?.get(s.service);
    const any = services?.get(ANY);
    let hit = own ? this.apply(own, s) : false;
    if (any && s.service !== ANY && this.apply(any, s)) hit = true;
    if (!hit) this.pending.unmatched++;
    return hit;
  }

  private apply(slos: CompiledSlo[], s: SliSample): boolean {
    let hit = false;
    if (isSpanSample(s)) {
      for (const c of slos) {
        if (!c.matchSpan || !c.matchSpan(s)) continue;
        const bad = c.latency ? s.durationMs > c.thresholdMs : s.isError;
        const w = s.weight ?? 1;
        const outcome = c.state.add(s.eventTimeMs, bad ? 0 : w, w, bad ? s.traceId : undefined);
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
    return hit;
  }

  /** Evaluates every SLO at `nowMs` (event-time clock) and returns the transitions. */
  evaluate(nowMs: number): EvaluationResult {
    this.flushCounters();
    const transitions: AlertStatus[] = [];
    const firing: AlertStatus[] = [];
    for (const state of this.states.values()) {
      state.advanceTo(nowMs);
      const view = state.captureEvaluation();
      const def = state.def;
      BURN_RULES.forEach((rule, i) => {
        const long = windowOf(view, rule.longMs);
        const short = windowOf(view, rule.shortMs);
        const threshold = ratioThreshold(rule.factor, def.objective);
        const burning = long.total >= def.minEvents && long.total > 0
          && errorRatio(long.good, long.total) > threshold && errorRatio(short.good, short.total) > threshold;
        const flag = state.alerts[i]!;
        const wasFiring = flag.firing;
        if (burning && !wasFiring) {
          flag.firing = true;
          flag.startsAtMs = state.watermarkMs;
        }
        const status = alertStatus(state, view, i, burning ? 'firing' : 'resolved');
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

  /**
   * The alerts firing after the latest evaluation, as that evaluation computed them (no side
   * effects): what the runner re-sends to Alertmanager at startup and on its resend timer.
   */
  firingNow(): AlertStatus[] {
    const out: AlertStatus[] = [];
    for (const state of this.states.values()) {
      const view = state.lastEval;
      if (!view) continue;
      state.alerts.forEach((flag, i) => { if (flag.firing) out.push(alertStatus(state, view, i, 'firing')); });
    }
    return out;
  }

  /**
   * Burn rates, budget and firing alerts per SLO, all from the latest evaluation (with its time), for
   * `GET /obs/slo` and `stella slo list` (no side effects). Never evaluated: zero burn, nothing firing.
   */
  summaries(tenant?: string): SloSummary[] {
    let states = [...this.states.values()];
    if (tenant !== undefined) {
      states = states.filter((st) => st.def.tenant === tenant);
      // A tenant that sent nothing yet still has the catalog: shown unevaluated (nothing is created by a read).
      if (!this.instantiated.has(tenant)) {
        for (const t of this.templates) if (!this.states.has(`${tenant}/${t.name}`)) states.push(new SloState({ ...t, tenant }, ''));
      }
    }
    return states.map((state) => {
      const def = state.def;
      const view = state.lastEval;
      const burnRates: Record<string, number> = {};
      for (const rule of BURN_RULES) {
        for (const ms of [rule.longMs, rule.shortMs]) {
          const w = view ? windowOf(view, ms) : { good: 0, total: 0 };
          burnRates[formatWindow(ms)] = burnRate(errorRatio(w.good, w.total), def.objective);
        }
      }
      return {
        tenant: def.tenant, slo: def.name, service: def.service, journey: def.journey, objective: def.objective,
        budgetRemaining: view ? budgetRemaining(view.budgetGood, view.budgetTotal, def.objective) : 1, burnRates,
        firing: view ? BURN_RULES.filter((_, i) => state.alerts[i]!.firing).map((r) => `${r.severity}:${r.windows}`) : [],
        evaluatedAtMs: view ? view.atMs : null,
        droppedLate: state.droppedLate,
        droppedFuture: state.droppedFuture,
      };
    });
  }

  /** States in a stable order (by key) — the snapshot relies on it for deterministic bytes. */
  sortedStates(): SloState[] {
    return [...this.states.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** The state of (tenant, SLO); a catalog SLO's is made for the tenant here (restoring a snapshot needs it). */
  state(tenant: string, slo: string): SloState | undefined {
    this.ensureTenant(tenant);
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

function windowOf(view: Evaluation, ms: number): { good: number; total: number } {
  const i = RULE_WINDOWS_MIN.indexOf(ms / 60_000);
  if (i < 0) throw new Error(`no running sum for a ${ms / 60_000}m window`);
  return { good: view.good[i]!, total: view.total[i]! };
}

/** Rule i of a state as an alert, from the window sums of one evaluation. */
function alertStatus(state: SloState, view: Evaluation, i: number, status: AlertStatus['status']): AlertStatus {
  const def = state.def;
  const rule = BURN_RULES[i]!;
  const long = windowOf(view, rule.longMs);
  const short = windowOf(view, rule.shortMs);
  return {
    tenant: def.tenant, service: def.service, slo: def.name, journey: def.journey,
    severity: rule.severity, windows: rule.windows, status,
    atMs: view.atMs, startsAtMs: state.alerts[i]!.startsAtMs, objective: def.objective, factor: rule.factor,
    burnRateLong: burnRate(errorRatio(long.good, long.total), def.objective), burnRateShort: burnRate(errorRatio(short.good, short.total), def.objective),
    eventsLong: long.total, budgetRemaining: budgetRemaining(view.budgetGood, view.budgetTotal, def.objective),
    exemplarTraceId: view.exemplarTraceId, runbook: def.runbook,
  };
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
