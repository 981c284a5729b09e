// The rendered Prometheus rules pass `promtool check rules`, and `promtool test rules` fed with
// spanmetrics counters derived from the same burst agrees with the processor's evaluator on which
// alerts are firing at every minute.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseSloConfig } from '../../processors/slo/config.ts';
import { SloEvaluator, type AlertStatus } from '../../processors/slo/evaluator.ts';
import type { HistogramSample } from '../../processors/slo/samples.ts';
import { renderPrometheusRules } from '../../processors/slo/prometheus-rules.ts';
import { runnerConfig, sloSectionOrDefault } from '../../processors/slo/section.ts';
import { availabilityConfig, countsByMinute, endOfMinute, requireBinary, trafficByMinute } from './helpers.ts';

const promtool = requireBinary(['promtool'], 'prometheus');
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-promtool-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function promtoolRun(args: string[]): { code: number; out: string } {
  const r = spawnSync(promtool, args, { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new Error(`cannot run promtool: ${r.error.message}`);
  return { code: r.status ?? -1, out: `${r.stdout}\n${r.stderr}` };
}

describe('renderPrometheusRules', () => {
  it('renders every SLI shape of the example file into rules promtool accepts', () => {
    const config = parseSloConfig(readFileSync(new URL('./fixtures/slos.yaml', import.meta.url), 'utf8'));
    const text = renderPrometheusRules(config);
    writeFileSync(path.join(dir, 'all.rules.yaml'), text);
    const r = promtoolRun(['check', 'rules', 'all.rules.yaml']);
    expect(r.out).toContain('SUCCESS');
    expect(r.code, r.out).toBe(0);
    // 4 SLOs × (7 ratio windows + 4 long-window event counts + objective + budget) recordings + 4 alerts each.
    expect(r.out).toContain(`${4 * (7 + 4 + 2 + 4)} rules found`);
    const doc = parse(text) as { groups: { name: string; rules: Record<string, unknown>[] }[] };
    const records = new Set(doc.groups.flatMap((g) => g.rules.map((x) => x.record)).filter(Boolean));
    expect([...records]).toEqual(expect.arrayContaining([
      'slo:sli_error:ratio_rate5m', 'slo:sli_error:ratio_rate30m', 'slo:sli_error:ratio_rate1h', 'slo:sli_error:ratio_rate2h',
      'slo:sli_error:ratio_rate6h', 'slo:sli_error:ratio_rate1d', 'slo:sli_error:ratio_rate3d', 'slo:sli_events:increase1h',
    ]));
    expect(text).toContain('le=~"2000(\\\\.0)?"'); // latency threshold as a bucket bound, either le rendering
    expect(text).toContain('span_name=~"GET /v[12]/.*"');
    expect(text).toContain('http_server_request_duration_seconds_bucket{tenant="globex", job="api", http_route="/search", le=~"0\\\\.5"}');
  });

  it('the default catalog (what stella slo rules renders without a file) renders into rules promtool accepts', () => {
    const config = runnerConfig(sloSectionOrDefault(undefined)!);
    writeFileSync(path.join(dir, 'catalog.rules.yaml'), renderPrometheusRules(config));
    const r = promtoolRun(['check', 'rules', 'catalog.rules.yaml']);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`${config.slos.length * (7 + 4 + 2 + 4)} rules found`);
  });

  it('a rule file promtool rejects is reported as a failure (the check has teeth)', () => {
    writeFileSync(path.join(dir, 'broken.rules.yaml'), renderPrometheusRules(availabilityConfig()).replace('sum(rate(', 'sum(rate(('));
    expect(promtoolRun(['check', 'rules', 'broken.rules.yaml']).code).not.toBe(0);
  });

  it('promtool test rules agrees with the evaluator, minute by minute, on the same burst', () => {
    const config = availabilityConfig();
    const rulesText = renderPrometheusRules(config);
    writeFileSync(path.join(dir, 'slo.rules.yaml'), rulesText);
    const rules = parse(rulesText) as { groups: { name: string; rules: { alert?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[] };
    const annotationsByWindows = new Map(rules.groups.flatMap((g) => g.rules).filter((r) => r.alert).map((r) => [r.labels!.windows!, r.annotations!]));

    // Same traffic shape as the Alertmanager test, event time from 0 (promtool series start at 0).
    const minutes = 160;
    const traffic = trafficByMinute({ startMs: 0, minutes, perMinute: 100, burstFrom: 90, burstTo: 110, errorsPerMinute: 50 });
    const counts = countsByMinute(traffic);
    const ev = new SloEvaluator(config);
    const firingAt: AlertStatus[][] = [];
    for (let m = 0; m < minutes; m++) {
      ev.ingest(traffic[m]!);
      firingAt.push(ev.evaluate(endOfMinute(0, m)).firing);
    }
    expect(firingAt[90]!.some((a) => a.windows === '1h/5m')).toBe(false);
    expect(firingAt[91]!.some((a) => a.windows === '1h/5m')).toBe(true);

    // spanmetrics counters scraped at each minute boundary: value at k·1m = events in minutes < k.
    const cumulative = (pick: (c: { good: number; total: number }) => number) => {
      const v = [0];
      for (const c of counts) v.push(v[v.length - 1]! + pick(c));
      return v.join(' ');
    };
    const base = 'tenant="acme", service_name="checkout", span_name="POST /checkout", span_kind="SPAN_KIND_SERVER"';
    const testDoc = (shiftMinutes: number) => ({
      rule_files: ['slo.rules.yaml'],
      evaluation_interval: '1m',
      group_eval_order: rules.groups.map((g) => g.name), // recordings before alerts at each step
      tests: [{
        interval: '1m',
        input_series: [
          { series: `traces_span_metrics_calls_total{${base}, status_code="STATUS_CODE_UNSET"}`, values: cumulative((c) => c.good) },
          { series: `traces_span_metrics_calls_total{${base}, status_code="STATUS_CODE_ERROR"}`, values: cumulative((c) => c.total - c.good) },
        ],
        // The evaluator's verdict at the end of minute m is Prometheus' verdict at (m+1)·1m.
        alert_rule_test: firingAt.map((firing, m) => ({
          eval_time: `${m + 1 + shiftMinutes}m`,
          alertname: 'SloErrorBudgetBurn',
          exp_alerts: firing.map((a) => ({
            exp_labels: { tenant: a.tenant, service: a.service, slo: a.slo, severity: a.severity, windows: a.windows },
            exp_annotations: annotationsByWindows.get(a.windows),
          })),
        })),
      }],
    });
    writeFileSync(path.join(dir, 'slo.test.yaml'), stringify(testDoc(0), { lineWidth: 0 }));
    const r = promtoolRun(['test', 'rules', 'slo.test.yaml']);
    expect(r.code, r.out.slice(0, 4000)).toBe(0);
    expect(r.out).toContain('SUCCESS');

    // Control: the same expectations one minute late must fail, so agreement above is not vacuous.
    writeFileSync(path.join(dir, 'slo-shifted.test.yaml'), stringify(testDoc(1), { lineWidth: 0 }));
    const shifted = promtoolRun(['test', 'rules', 'slo-shifted.test.yaml']);
    expect(shifted.code).not.toBe(0);
    expect(shifted.out).toContain('time: 1h32m,'); // first disagreement: the page alert fires at 92m (end of minute 91)
  });

  it('latency SLO: the spanmetrics-histogram rules agree with the evaluator minute by minute', () => {
    const config = parseSloConfig(`
slos:
  - name: checkout-latency
    tenant: acme
    service: checkout
    objective: 0.99
    minEvents: 10
    sli: { type: latency, threshold: 300ms, spans: { name: "POST /checkout" } }
`);
    const rulesText = renderPrometheusRules(config);
    writeFileSync(path.join(dir, 'lat.rules.yaml'), rulesText);
    const rules = parse(rulesText) as { groups: { name: string; rules: { alert?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[] };
    const annotationsByWindows = new Map(rules.groups.flatMap((g) => g.rules).filter((r) => r.alert).map((r) => [r.labels!.windows!, r.annotations!]));

    // 120 spans/min at 20 ms; minutes [60, 85) have 60 spans at 800 ms (50% slow vs a 1% budget).
    const minutes = 120;
    const traffic = trafficByMinute({ startMs: 0, minutes, perMinute: 120, burstFrom: 60, burstTo: 85, errorsPerMinute: 60 })
      .map((m) => m.map((sp) => ({ ...sp, durationMs: sp.isError ? 800 : 20, isError: false })));
    const ev = new SloEvaluator(config);
    const firingAt = traffic.map((m, i) => { ev.ingest(m); return ev.evaluate(endOfMinute(0, i)).firing; });
    const first = (windows: string) => firingAt.findIndex((f) => f.some((a) => a.windows === windows));
    // Hand-computed after k burst minutes: 1h/5m needs 60k/7200 > 14.4% ⇔ k ≥ 18 → minute 77;
    // 6h/30m needs 60k/(120·(60+k)) > 6% ⇔ k ≥ 9 → minute 68 (the 30m window is then 540/3600 = 15%).
    expect(first('1h/5m')).toBe(77);
    expect(first('6h/30m')).toBe(68);

    const cumulative = (pick: (sp: { durationMs: number }) => boolean) => {
      const v = [0];
      for (const m of traffic) v.push(v[v.length - 1]! + m.filter(pick).length);
      return v.join(' ');
    };
    const base = 'tenant="acme", service_name="checkout", span_name="POST /checkout", span_kind="SPAN_KIND_SERVER"';
    const doc = {
      rule_files: ['lat.rules.yaml'],
      evaluation_interval: '1m',
      group_eval_order: rules.groups.map((g) => g.name),
      tests: [{
        interval: '1m',
        input_series: [
          { series: `traces_span_metrics_duration_milliseconds_bucket{${base}, le="300"}`, values: cumulative((sp) => sp.durationMs <= 300) },
          { series: `traces_span_metrics_duration_milliseconds_bucket{${base}, le="+Inf"}`, values: cumulative(() => true) },
          { series: `traces_span_metrics_duration_milliseconds_count{${base}}`, values: cumulative(() => true) },
        ],
        alert_rule_test: firingAt.map((firing, m) => ({
          eval_time: `${m + 1}m`,
          alertname: 'SloErrorBudgetBurn',
          exp_alerts: firing.map((a) => ({
            exp_labels: { tenant: a.tenant, service: a.service, slo: a.slo, severity: a.severity, windows: a.windows },
            exp_annotations: annotationsByWindows.get(a.windows),
          })),
        })),
      }],
    };
    writeFileSync(path.join(dir, 'lat.test.yaml'), stringify(doc, { lineWidth: 0 }));
    const r = promtoolRun(['test', 'rules', 'lat.test.yaml']);
    expect(r.code, r.out.slice(0, 4000)).toBe(0);
    expect(firingAt.some((f) => f.length > 0)).toBe(true); // something fired, so agreement is not all-empty
  });

  it('metric SLO: the OTLP-histogram rules (seconds, job label, attribute matcher) agree with the evaluator', () => {
    const config = parseSloConfig(`
slos:
  - name: search-latency
    tenant: globex
    service: api
    objective: 0.99
    minEvents: 10
    sli: { type: latency, threshold: 500ms, metric: { name: http.server.request.duration, attributes: { http.route: /search } } }
`);
    const rulesText = renderPrometheusRules(config);
    writeFileSync(path.join(dir, 'metric.rules.yaml'), rulesText);
    const rules = parse(rulesText) as { groups: { name: string; rules: { alert?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[] };
    const annotationsByWindows = new Map(rules.groups.flatMap((g) => g.rules).filter((r) => r.alert).map((r) => [r.labels!.windows!, r.annotations!]));

    // One delta histogram point per minute, bounds 0.1 / 0.5 / 1 s: 200 requests, of which 100 over 0.5 s during minutes [60, 80).
    const minutes = 110;
    // Baseline 0.5% slow. (Exactly 1% would sit on the 3d/6h threshold of a 99% objective, where Prometheus'
    // float rate arithmetic and exact counts can differ by an ulp — see docs/slo.md.)
    const buckets = (m: number): number[] => (m >= 60 && m < 80 ? [50, 50, 60, 40] : [150, 49, 1, 0]);
    const samples: HistogramSample[] = Array.from({ length: minutes }, (_, m) => ({
      tenant: 'globex', service: 'api', metric: 'http.server.request.duration', attributes: { 'http.route': '/search' },
      eventTimeMs: m * 60_000 + 30_000, boundsMs: [100, 500, 1000], bucketCounts: buckets(m), count: 200, isError: false,
    }));
    const ev = new SloEvaluator(config);
    const firingAt = samples.map((s, m) => { ev.ingest([s]); return ev.evaluate(endOfMinute(0, m)).firing; });
    // 1h/5m: 0.5% before the burst, 50% during: 1h ratio (0.005·(60−k) + 0.5k)/60 > 0.144 ⇔ k ≥ 17 → minute 76.
    expect(firingAt.findIndex((f) => f.some((a) => a.windows === '1h/5m'))).toBe(76);

    const cumulative = (pick: (b: number[]) => number) => {
      const v = [0];
      for (let m = 0; m < minutes; m++) v.push(v[v.length - 1]! + pick(buckets(m)));
      return v.join(' ');
    };
    const base = 'tenant="globex", job="api", http_route="/search"';
    const doc = {
      rule_files: ['metric.rules.yaml'],
      evaluation_interval: '1m',
      group_eval_order: rules.groups.map((g) => g.name),
      tests: [{
        interval: '1m',
        input_series: [
          { series: `http_server_request_duration_seconds_bucket{${base}, le="0.1"}`, values: cumulative((b) => b[0]!) },
          { series: `http_server_request_duration_seconds_bucket{${base}, le="0.5"}`, values: cumulative((b) => b[0]! + b[1]!) },
          { series: `http_server_request_duration_seconds_bucket{${base}, le="+Inf"}`, values: cumulative(() => 200) },
          { series: `http_server_request_duration_seconds_count{${base}}`, values: cumulative(() => 200) },
          // Another route must not leak into this SLO.
          { series: `http_server_request_duration_seconds_count{tenant="globex", job="api", http_route="/other"}`, values: cumulative(() => 1000) },
        ],
        alert_rule_test: firingAt.map((firing, m) => ({
          eval_time: `${m + 1}m`,
          alertname: 'SloErrorBudgetBurn',
          exp_alerts: firing.map((a) => ({
            exp_labels: { tenant: a.tenant, service: a.service, slo: a.slo, severity: a.severity, windows: a.windows },
            exp_annotations: annotationsByWindows.get(a.windows),
          })),
        })),
      }],
    };
    writeFileSync(path.join(dir, 'metric.test.yaml'), stringify(doc, { lineWidth: 0 }));
    const r = promtoolRun(['test', 'rules', 'metric.test.yaml']);
    expect(r.code, r.out.slice(0, 4000)).toBe(0);
  });
  it('every-tenant, every-service SLO: one rule set alerts per tenant (services summed) as the evaluator does, and skips a tenant with its own SLO of that name', () => {
    const config = parseSloConfig(`
slos:
  - name: any-availability
    tenant: "*"
    service: "*"
    objective: 0.999
    minEvents: 10
    sli: { type: availability, spans: { name: "POST /checkout", kind: server } }
  - name: any-availability
    tenant: globex
    service: "*"
    objective: 0.5
    minEvents: 10
    sli: { type: availability, spans: { name: "POST /checkout", kind: server } }
`);
    const rulesText = renderPrometheusRules(config);
    writeFileSync(path.join(dir, 'any.rules.yaml'), rulesText);
    expect(promtoolRun(['check', 'rules', 'any.rules.yaml']).code).toBe(0);
    const rules = parse(rulesText) as { groups: { name: string; rules: { alert?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[] };
    expect(rulesText).toContain('tenant!~"globex"');

    // Four pairs: acme/checkout and globex/checkout burn (globex against its own, lenient SLO),
    // acme/search and beta/checkout are calm (beta has no error series at all). acme's two services
    // are one state: its ratio is 50 of 200 per burst minute.
    const pairs = [
      { tenant: 'acme', service: 'checkout', burst: true }, { tenant: 'acme', service: 'search', burst: false },
      { tenant: 'beta', service: 'checkout', burst: false }, { tenant: 'globex', service: 'checkout', burst: true },
    ];
    const minutes = 120;
    const traffic = pairs.map((p) => trafficByMinute({ startMs: 0, minutes, perMinute: 100, burstFrom: 90, burstTo: 110, errorsPerMinute: p.burst ? 50 : 0 })
      .map((min) => min.map((sp) => ({ ...sp, tenant: p.tenant, service: p.service }))));
    const ev = new SloEvaluator(config);
    const firingAt: AlertStatus[][] = [];
    for (let m = 0; m < minutes; m++) {
      ev.ingest(traffic.flatMap((t) => t[m]!));
      firingAt.push(ev.evaluate(endOfMinute(0, m)).firing);
    }
    const fired = new Set(firingAt.flat().map((a) => `${a.tenant}/${a.service}/${a.slo}`));
    expect([...fired]).toEqual(['acme/*/any-availability']); // globex's own SLO (50%) holds; the calm pairs hold

    const cumulative = (perMinute: (m: number) => number) => {
      const v = [0];
      for (let m = 0; m < minutes; m++) v.push(v[v.length - 1]! + perMinute(m));
      return v.join(' ');
    };
    const input_series = pairs.flatMap((p) => {
      const base = `tenant="${p.tenant}", service_name="${p.service}", span_name="POST /checkout", span_kind="SPAN_KIND_SERVER"`;
      const errs = (m: number) => (p.burst && m >= 90 && m < 110 ? 50 : 0);
      return [
        { series: `traces_span_metrics_calls_total{${base}, status_code="STATUS_CODE_UNSET"}`, values: cumulative((m) => 100 - errs(m)) },
        ...(p.burst ? [{ series: `traces_span_metrics_calls_total{${base}, status_code="STATUS_CODE_ERROR"}`, values: cumulative(errs) }] : []),
      ];
    });
    const annotations = (a: AlertStatus) => {
      const rule = rules.groups.flatMap((g) => g.rules).find((r) => r.alert && r.labels!.windows === a.windows && !r.labels!.tenant)!;
      return Object.fromEntries(Object.entries(rule.annotations!).map(([k, v]) => [k, v.replace('{{ $labels.tenant }}', a.tenant)]));
    };
    const doc = {
      rule_files: ['any.rules.yaml'],
      evaluation_interval: '1m',
      group_eval_order: rules.groups.map((g) => g.name),
      tests: [{
        interval: '1m',
        input_series,
        alert_rule_test: firingAt.map((firing, m) => ({
          eval_time: `${m + 1}m`,
          alertname: 'SloErrorBudgetBurn',
          exp_alerts: firing.map((a) => ({
            exp_labels: { tenant: a.tenant, service: a.service, slo: a.slo, severity: a.severity, windows: a.windows },
            exp_annotations: annotations(a),
          })),
        })),
      }],
    };
    writeFileSync(path.join(dir, 'any.test.yaml'), stringify(doc, { lineWidth: 0 }));
    const r = promtoolRun(['test', 'rules', 'any.test.yaml']);
    expect(r.code, r.out.slice(0, 4000)).toBe(0);
    expect(r.out).toContain('SUCCESS');
  });
});
