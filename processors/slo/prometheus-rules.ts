// Renders the SLOs as Prometheus recording + alerting rules (Sloth-style naming) for teams that
// alert from Prometheus. Span SLIs read the OpenTelemetry Collector spanmetrics connector's series;
// metric SLIs read the OTLP histogram as Prometheus names it. The alerts carry the same labels as
// the processor's Alertmanager alerts and compare with the same `factor * (1 - objective)` literal.
import { stringify } from 'yaml';
import { BURN_RULES } from './burn.ts';
import type { SloConfig, SloDefinition } from './config.ts';
import { ALERT_NAME } from './alert-payloads.ts';
import { formatWindow } from './duration.ts';
import { ANY } from './evaluator.ts';

export interface RenderOptions {
  /** Label that carries the tenant on every series (added by the collector); default "tenant". */
  tenantLabel?: string;
  /** spanmetrics calls counter; default traces_span_metrics_calls_total. */
  spanCalls?: string;
  /** spanmetrics duration histogram base name (ms); default traces_span_metrics_duration_milliseconds. */
  spanDuration?: string;
  /** Recording-rule evaluation interval; default 1m (matches the processor's minute buckets). */
  interval?: string;
}

const SPAN_KIND_LABEL: Record<string, string> = {
  internal: 'SPAN_KIND_INTERNAL', server: 'SPAN_KIND_SERVER', client: 'SPAN_KIND_CLIENT',
  producer: 'SPAN_KIND_PRODUCER', consumer: 'SPAN_KIND_CONSUMER',
};

/** Every window a rule reads: short and long windows, ascending. */
const RATIO_WINDOWS = [...new Set(BURN_RULES.flatMap((r) => [r.shortMs, r.longMs]))].sort((a, b) => a - b).map(formatWindow);
const LONG_WINDOWS = [...new Set(BURN_RULES.map((r) => r.longMs))].map(formatWindow);

const q = (v: string): string => JSON.stringify(v); // PromQL double-quoted strings share JSON's escapes
const reEscape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function selector(matchers: Matcher[]): string {
  return `{${matchers.map(([k, op, v]) => `${k}${op}${q(v)}`).join(', ')}}`;
}

/** OTLP metric name + unit → Prometheus base name (as the OTLP→Prometheus translation does). */
export function promMetricBase(name: string, unit: 'seconds' | 'milliseconds' | ''): string {
  const base = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return unit && !base.endsWith(`_${unit}`) ? `${base}_${unit}` : base;
}

/** Prometheus renders `le` as written by the exporter: "2" or "2.0"; match both. */
function leMatcher(bound: number): string {
  const s = String(bound);
  return s.includes('.') || s.includes('e') ? reEscape(s) : `${s}(\\.0)?`;
}

interface SliExprs {
  errors: (w: string) => string;
  total: (w: string) => string;
}

type Matcher = [string, '=' | '!=' | '=~' | '!~', string];

/**
 * An every-tenant SLO (tenant "*") is one rule set over all tenants' series, summed by tenant: each
 * tenant gets its own ratios and alerts, as the evaluator keeps a state per (tenant, SLO). An
 * every-service SLO (service "*") sums all services into that one state, labelled service="*"
 * like the evaluator's alerts. `exceptTenants`: tenants with an SLO of the same name of their own,
 * which replaces the every-tenant one for them (catalog.ts), so it must not also alert for them.
 */
function sliExprs(def: SloDefinition, o: Required<RenderOptions>, exceptTenants: string[] = []): SliExprs {
  const sli = def.sli;
  const serviceLabel = sli.source === 'spans' && sli.spans ? 'service_name' : 'job';
  const wildTenant = def.tenant === ANY;
  const wildService = def.service === ANY;
  const m: Matcher[] = [];
  if (!wildTenant) m.push([o.tenantLabel, '=', def.tenant]);
  else if (exceptTenants.length) m.push([o.tenantLabel, '!~', exceptTenants.map(reEscape).join('|')]);
  if (!wildService) m.push([serviceLabel, '=', def.service]);
  // The recordings' tenant label is `tenant` whatever the source series call it.
  const relabel = (v: string): string => (o.tenantLabel === 'tenant' ? v : `label_replace(${v}, "tenant", "$1", ${q(o.tenantLabel)}, "(.*)")`);
  const sumRate = (series: string, w: string): string =>
    (wildTenant ? `sum by (tenant) (${relabel(`rate(${series}[${w}])`)})` : `sum(rate(${series}[${w}]))`);
  // A missing error series counts as zero errors: per tenant, zero where the total has a value.
  const orZero = (errors: string, total: string): string => `(${errors} or ${wildTenant ? `(${total} * 0)` : 'vector(0)'})`;
  if (sli.source === 'spans' && sli.spans) {
    if (sli.spans.name !== undefined) m.push(['span_name', '=', sli.spans.name]);
    if (sli.spans.namePattern !== undefined) m.push(['span_name', '=~', sli.spans.namePattern]); // PromQL =~ is anchored too
    if (sli.spans.kind !== 'any') m.push(['span_kind', '=', SPAN_KIND_LABEL[sli.spans.kind]!]);
    if (sli.type === 'availability') {
      const calls = o.spanCalls;
      const total = (w: string) => sumRate(`${calls}${selector(m)}`, w);
      return {
        // ERROR status, plus non-ERROR spans with an HTTP 5xx (counted once either way).
        errors: (w) => `${orZero(sumRate(`${calls}${selector([...m, ['status_code', '=', 'STATUS_CODE_ERROR']])}`, w), total(w))}` +
          ` + ${orZero(sumRate(`${calls}${selector([...m, ['status_code', '!=', 'STATUS_CODE_ERROR'], ['http_response_status_code', '=~', '5..']])}`, w), total(w))}`,
        total,
      };
    }
    const d = o.spanDuration;
    return {
      errors: (w) => `(${sumRate(`${d}_count${selector(m)}`, w)} - ${sumRate(`${d}_bucket${selector([...m, ['le', '=~', leMatcher(sli.thresholdMs!)]])}`, w)})`,
      total: (w) => sumRate(`${d}_count${selector(m)}`, w),
    };
  }
  const metric = sli.metric!;
  // OTLP histograms of request durations are conventionally in seconds (semconv); the SLO threshold is in ms.
  const base = promMetricBase(metric.name, 'seconds');
  for (const [k, v] of Object.entries(metric.attributes).sort()) m.push([k.replace(/[^a-zA-Z0-9_]/g, '_'), '=', v]);
  const total = (w: string) => sumRate(`${base}_count${selector(m)}`, w);
  if (sli.type === 'availability') {
    return {
      errors: (w) => orZero(sumRate(`${base}_count${selector([...m, ['http_response_status_code', '=~', '5..']])}`, w), total(w)),
      total,
    };
  }
  return {
    errors: (w) => `(${total(w)} - ${sumRate(`${base}_bucket${selector([...m, ['le', '=~', leMatcher(sli.thresholdMs! / 1000)]])}`, w)})`,
    total,
  };
}

function sliTotalIncrease(exprs: SliExprs, w: string): string {
  // increase = rate × window; reuse the total-rate expression so both see the same series.
  const seconds = parseWindowSeconds(w);
  return `${exprs.total(w)} * ${seconds}`;
}

function parseWindowSeconds(w: string): number {
  const n = Number(w.slice(0, -1));
  const unit = w.slice(-1);
  return n * ({ s: 1, m: 60, h: 3600, d: 86400 } as Record<string, number>)[unit]!;
}

export function renderPrometheusRules(config: SloConfig, options: RenderOptions = {}): string {
  const o: Required<RenderOptions> = {
    tenantLabel: 'tenant', spanCalls: 'traces_span_metrics_calls_total',
    spanDuration: 'traces_span_metrics_duration_milliseconds', interval: '1m', ...options,
  };
  const groups: unknown[] = [];
  for (const def of config.slos) {
    const exceptTenants = def.tenant === ANY
      ? [...new Set(config.slos.filter((d) => d.name === def.name && d.tenant !== ANY).map((d) => d.tenant))].sort() : [];
    // An every-tenant SLO's tenant label comes from the series (sliExprs sums by it).
    const ids: Record<string, string> = { ...(def.tenant === ANY ? {} : { tenant: def.tenant }), service: def.service, slo: def.name };
    const sel = selector([
      ...(def.tenant !== ANY ? [['tenant', '=', def.tenant] as Matcher] : exceptTenants.length ? [['tenant', '!~', exceptTenants.map(reEscape).join('|')] as Matcher] : []),
      ['slo', '=', def.name]]);
    const exprs = sliExprs(def, o, exceptTenants);
    const recordings: unknown[] = RATIO_WINDOWS.map((w) => ({
      record: `slo:sli_error:ratio_rate${w}`,
      expr: `(${exprs.errors(w)})\n/\n(${exprs.total(w)})`,
      labels: { ...ids },
    }));
    for (const w of LONG_WINDOWS) {
      recordings.push({ record: `slo:sli_events:increase${w}`, expr: sliTotalIncrease(exprs, w), labels: { ...ids } });
    }
    recordings.push(
      { record: 'slo:objective:ratio', expr: `vector(${def.objective})`, labels: { ...ids } },
      { record: 'slo:error_budget:ratio', expr: `vector(1 - ${def.objective})`, labels: { ...ids } },
    );
    const who = `${def.tenant === ANY ? '{{ $labels.tenant }}' : def.tenant}/${def.service}`;
    const alerts = BURN_RULES.map((r) => {
      const threshold = `(${r.factor} * (1 - ${def.objective}))`;
      const long = formatWindow(r.longMs);
      const short = formatWindow(r.shortMs);
      return {
        alert: ALERT_NAME,
        expr: `(\n  slo:sli_error:ratio_rate${long}${sel} > ${threshold}\n  and\n  slo:sli_error:ratio_rate${short}${sel} > ${threshold}\n)\n` +
          `and\nslo:sli_events:increase${long}${sel} >= ${def.minEvents}`,
        labels: { ...ids, severity: r.severity, windows: r.windows },
        annotations: {
          summary: `${who}: SLO ${def.name} is burning its error budget (${r.severity}, ${r.windows})`,
          // Static text (no $value): identical to the processor's alerts and testable with promtool exp_annotations.
          description: `Error ratio over ${long} and ${short} exceeds ${r.factor}× the error budget of objective ${def.objective} (30-day window).`,
          journey: def.journey,
          ...(def.runbook ? { runbook_url: def.runbook } : {}),
        },
      };
    });
    const key = `${def.tenant === ANY ? 'every-tenant' : def.tenant}${def.service === ANY ? '' : `-${def.service}`}-${def.name}`;
    groups.push(
      { name: `slo-sli-recordings-${def.tenant === ANY || def.service === ANY ? key : `${def.tenant}-${def.name}`}`, interval: o.interval, rules: recordings },
      { name: `slo-alerts-${def.tenant === ANY || def.service === ANY ? key : `${def.tenant}-${def.name}`}`, interval: o.interval, rules: alerts },
    );
  }
  return stringify({ groups }, { lineWidth: 0 });
}
