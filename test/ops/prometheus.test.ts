// prometheus/: the scrape config (wrapped into a full prometheus.yml) passes `promtool check
// config`, the alert rules pass `promtool check rules`, every metric the rules use is one the code
// registers, and `promtool test rules` shows each alert firing on a synthetic failure and staying
// quiet on a healthy (or not-yet-long-enough) series.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { defaultConfig } from '../../lib/config.ts';

const root = new URL('../../', import.meta.url).pathname;
const scrapePath = path.join(root, 'prometheus/scrape.yaml');
const alertsPath = path.join(root, 'prometheus/alerts.yaml');
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-ops-prom-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** promtool's path; a missing binary fails the test with the reason and the fix. */
function promtool(): string {
  for (const d of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(d, 'promtool');
    try { if (statSync(p).isFile()) return p; } catch { /* not here */ }
  }
  throw new Error('promtool was not found on PATH: these tests need the Prometheus tools (Debian/Ubuntu: apt-get install prometheus; '
    + 'or put the promtool binary of a Prometheus release on PATH)');
}

function run(args: string[]): { code: number; out: string } {
  const r = spawnSync(promtool(), args, { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new Error(`cannot run promtool: ${r.error.message}`);
  return { code: r.status ?? -1, out: `${r.stdout}\n${r.stderr}` };
}

type Obj = Record<string, any>;
const alertsDoc = parse(readFileSync(alertsPath, 'utf8')) as Obj;
const rules: Obj[] = alertsDoc.groups.flatMap((g: Obj) => g.rules);

/** Names the code registers with lib/metrics.ts (counter/gauge/histogram('name', ...)). */
function registeredMetrics(): Set<string> {
  const names = new Set<string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) {
        for (const m of readFileSync(p, 'utf8').matchAll(/\b(counter|gauge|histogram)\(\s*'(stella_[a-z0-9_]+)'/g)) {
          names.add(m[2]!);
          if (m[1] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m[2]! + s);
        }
      }
    }
  };
  for (const d of ['lib', 'receiver', 'processors', 'api', 'cli']) { try { walk(path.join(root, d)); } catch { /* folder absent */ } }
  return names;
}

describe('prometheus/scrape.yaml', () => {
  it('is a valid scrape config for our admin /metrics (wrapped as a full prometheus.yml with the alert rules)', () => {
    const scrape = parse(readFileSync(scrapePath, 'utf8')) as Obj;
    const job = (scrape.scrape_configs as Obj[]).find((j) => j.job_name === 'stella');
    expect(job).toBeDefined();
    expect(job!.metrics_path ?? '/metrics').toBe('/metrics');
    const targets: string[] = job!.static_configs.flatMap((s: Obj) => s.targets);
    expect(targets.length).toBeGreaterThan(0);
    for (const t of targets) expect(t.endsWith(`:${defaultConfig().admin.port}`)).toBe(true);
    const full = { global: { scrape_interval: '15s', evaluation_interval: '15s' }, rule_files: [alertsPath], scrape_configs: scrape.scrape_configs };
    writeFileSync(path.join(dir, 'prometheus.yml'), stringify(full));
    const r = run(['check', 'config', 'prometheus.yml']);
    expect(r.out).toContain('SUCCESS');
    expect(r.code, r.out).toBe(0);
  });

  it('promtool check config fails on a broken config (the check has teeth)', () => {
    writeFileSync(path.join(dir, 'broken.yml'), stringify({ scrape_configs: [{ job_name: 'stella', scrape_interval: 'soon', static_configs: [{ targets: ['x:9464'] }] }] }));
    expect(run(['check', 'config', 'broken.yml']).code).not.toBe(0);
  });
});

describe('prometheus/alerts.yaml', () => {
  it('passes promtool check rules', () => {
    const r = run(['check', 'rules', alertsPath]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  it('uses only metrics the code registers, and covers lag, DLQ, seal delay, produce errors and Kafka down', () => {
    const known = registeredMetrics();
    expect(known.has('stella_stage_lag_records')).toBe(true); // the scan itself works
    for (const r of rules) {
      for (const m of String(r.expr).matchAll(/\bstella_[a-z0-9_]+/g)) expect(known.has(m[0]), `${r.alert}: ${m[0]}`).toBe(true);
      expect(r.labels?.severity, r.alert).toMatch(/^(page|ticket)$/);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
    }
    const exprOf = (name: string): string => String(rules.find((r) => r.alert === name)?.expr ?? '');
    expect(exprOf('StellaConsumerLagHigh')).toContain('stella_stage_lag_records');
    expect(exprOf('StellaDlqGrowing')).toContain('stella_scrub_records_total{outcome="dlq"}');
    expect(exprOf('StellaEvidenceSealDelayed')).toContain('stella_evidence_entries_sealed_total');
    expect(exprOf('StellaReceiverProduceErrors')).toContain('kafka_error');
    expect(exprOf('StellaKafkaDown')).toContain('stella_kafka_up');
  });

  // Behaviour. promtool compares annotations too; they are templates checked by `check rules`
  // above, so the unit tests run on a copy without them and compare labels.
  interface Case { name: string; series: Record<string, string>; fires: { at: string; labels: Record<string, string>[] }[]; quiet: string[] }
  const cases: Record<string, Case> = {
    StellaTargetDown: { name: 'a target stops answering for 2 minutes',
      series: { 'up{job="stella",instance="r0:9464",component="receiver"}': '1 1 0x10', 'up{job="stella",instance="s0:9464",component="scrub"}': '1x12' },
      fires: [{ at: '5m', labels: [{ severity: 'page', job: 'stella', instance: 'r0:9464', component: 'receiver' }] }], quiet: ['3m'] },
    StellaKafkaDown: { name: 'Kafka unreachable for a minute',
      series: { 'stella_kafka_up{job="stella",instance="a:9464"}': '1 1 0x10' }, fires: [{ at: '4m', labels: [{ severity: 'page', job: 'stella', instance: 'a:9464' }] }], quiet: ['2m'] },
    StellaReceiverProduceErrors: { name: 'Kafka timeouts refused on one instance; other refusals (bad tokens) elsewhere do not count',
      series: {
        'stella_receiver_refused_requests_total{instance="a:9464",signal="traces",tenant="acme",reason="kafka_timeout"}': '0+60x30',
        'stella_receiver_refused_requests_total{instance="b:9464",signal="traces",tenant="acme",reason="tenant_mismatch"}': '0+600x30',
      },
      fires: [{ at: '15m', labels: [{ severity: 'ticket', instance: 'a:9464' }] }], quiet: ['3m'] },
    StellaConsumerLagHigh: { name: 'one timeline partition 20000 behind for 10 minutes; scrub slightly behind',
      series: {
        'stella_stage_lag_records{stage="timeline",topic="otlp_spans_clean",partition="0"}': '20000x30',
        'stella_stage_lag_records{stage="timeline",topic="otlp_spans_clean",partition="1"}': '3x30',
        'stella_stage_lag_records{stage="scrub",topic="otlp_spans",partition="0"}': '500x30',
      },
      fires: [{ at: '15m', labels: [{ severity: 'ticket', stage: 'timeline', topic: 'otlp_spans_clean' }] }], quiet: ['5m'] },
    StellaStageRetrying: { name: 'timeline only retries; scrub retries sometimes but completes batches',
      series: {
        'stella_stage_batches_total{stage="timeline",outcome="retry"}': '0+10x30', 'stella_stage_batches_total{stage="timeline",outcome="ok"}': '100x30',
        'stella_stage_batches_total{stage="scrub",outcome="retry"}': '0+1x30', 'stella_stage_batches_total{stage="scrub",outcome="ok"}': '0+50x30',
      },
      fires: [{ at: '15m', labels: [{ severity: 'page', stage: 'timeline' }] }], quiet: ['3m'] },
    StellaDlqGrowing: { name: 'traces keep going to the DLQ; logs went there once',
      series: {
        'stella_scrub_records_total{signal="traces",outcome="dlq"}': '0+5x40', 'stella_scrub_records_total{signal="traces",outcome="clean"}': '0+500x40',
        'stella_scrub_records_total{signal="logs",outcome="dlq"}': '0 3x40',
      },
      fires: [{ at: '25m', labels: [{ severity: 'ticket', signal: 'traces' }] }], quiet: ['5m'] },
    StellaTimelinePoisonRecords: { name: 'one poison record',
      series: { 'stella_timeline_poison_records_total': '0 0 0 0 1x20' }, fires: [{ at: '6m', labels: [{ severity: 'ticket' }] }], quiet: ['3m'] },
    StellaEvidenceSealDelayed: { name: 'appends continue, seals stop at minute 10',
      series: {
        'stella_evidence_records_total{outcome="appended"}': '0+100x45',
        'stella_evidence_entries_sealed_total{tenant="acme"}': '0+100x10 1000x35',
      },
      fires: [{ at: '32m', labels: [{ severity: 'page' }] }], quiet: ['20m', '27m'] },
    StellaEvidenceSealSlow: { name: 'every seal takes 5-10 s',
      series: {
        'stella_evidence_seal_seconds_bucket{le="1"}': '0x30', 'stella_evidence_seal_seconds_bucket{le="5"}': '0x30',
        'stella_evidence_seal_seconds_bucket{le="10"}': '0+10x30', 'stella_evidence_seal_seconds_bucket{le="+Inf"}': '0+10x30',
      },
      fires: [{ at: '20m', labels: [{ severity: 'ticket' }] }], quiet: ['5m'] },
    StellaEvidenceCosignatureLagging: { name: 'a witness down from minute 5 (lag grows 60 s a minute); another witness keeps up',
      series: {
        'stella_evidence_cosignature_lag_seconds{tenant="acme",witness="w1",instance="a:9464"}': '0x5 60+60x40',
        'stella_evidence_cosignature_lag_seconds{tenant="acme",witness="w2",instance="a:9464"}': '0 30 0 30 0 30 0 30 0 30 0 30 0 30 0 30 0 30 0 30 0 30 0 30 0 30 0 30 0 30',
      },
      fires: [{ at: '26m', labels: [{ severity: 'ticket', tenant: 'acme', witness: 'w1' }] }], quiet: ['10m', '20m'] },
    StellaEvidenceTimestampGap: { name: 'the TSA down from minute 5',
      series: { 'stella_evidence_timestamp_gap_seconds{tenant="acme",instance="a:9464"}': '0x5 60+60x40' },
      fires: [{ at: '26m', labels: [{ severity: 'ticket', tenant: 'acme' }] }], quiet: ['10m', '20m'] },
    StellaReachabilityOrphansDropped: { name: 'orphans expire from minute 10 on one instance; another only queues and resolves',
      series: {
        'stella_reachability_orphan_traces{instance="a:9464",outcome="expired"}': '0x10 1+1x20',
        'stella_reachability_orphan_traces{instance="b:9464",outcome="queued"}': '0+5x30',
        'stella_reachability_orphan_traces{instance="b:9464",outcome="resolved"}': '0+5x30',
      },
      fires: [{ at: '13m', labels: [{ severity: 'ticket', instance: 'a:9464' }] }], quiet: ['5m', '10m'] },
  };
  const healthy: Record<string, Record<string, string>> = {
    StellaReachabilityOrphansDropped: { 'stella_reachability_orphan_traces{instance="a:9464",outcome="queued"}': '0+3x45', 'stella_reachability_orphan_traces{instance="a:9464",outcome="resolved"}': '0+3x45' },
    StellaEvidenceSealDelayed: { 'stella_evidence_records_total{outcome="appended"}': '0+100x45', 'stella_evidence_entries_sealed_total{tenant="acme"}': '0+100x45' },
    StellaEvidenceSealSlow: {
      'stella_evidence_seal_seconds_bucket{le="1"}': '0+10x30', 'stella_evidence_seal_seconds_bucket{le="5"}': '0+10x30',
      'stella_evidence_seal_seconds_bucket{le="10"}': '0+10x30', 'stella_evidence_seal_seconds_bucket{le="+Inf"}': '0+10x30',
    },
    StellaKafkaDown: { 'stella_kafka_up{job="stella",instance="a:9464"}': '1x30' },
    StellaEvidenceCosignatureLagging: { 'stella_evidence_cosignature_lag_seconds{tenant="acme",witness="w1"}': '0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45 0 45' },
    StellaEvidenceTimestampGap: { 'stella_evidence_timestamp_gap_seconds{tenant="acme"}': '0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2 0 2' },
    StellaConsumerLagHigh: { 'stella_stage_lag_records{stage="slo",topic="otlp_spans_clean",partition="0"}': '9999x30' },
    StellaDlqGrowing: { 'stella_scrub_records_total{signal="traces",outcome="dlq"}': '7x40', 'stella_scrub_records_total{signal="traces",outcome="clean"}': '0+500x40' },
  };

  function unitFile(alert: string, c: { series: Record<string, string>; fires: Case['fires']; quiet: string[] }): string {
    const stripped = structuredClone(alertsDoc);
    for (const g of stripped.groups) for (const r of g.rules) delete r.annotations;
    writeFileSync(path.join(dir, 'alerts.noannotations.yaml'), stringify(stripped));
    const tests = [{
      interval: '1m',
      input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
      alert_rule_test: [
        ...c.quiet.map((at) => ({ eval_time: at, alertname: alert, exp_alerts: [] })),
        ...c.fires.map((f) => ({ eval_time: f.at, alertname: alert, exp_alerts: f.labels.map((l) => ({ exp_labels: l })) })),
      ],
    }];
    const file = `${alert}.${Math.random().toString(36).slice(2, 8)}.test.yaml`;
    writeFileSync(path.join(dir, file), stringify({ rule_files: ['alerts.noannotations.yaml'], evaluation_interval: '1m', tests }));
    return file;
  }

  it('has a behaviour case for every alert', () => {
    expect(Object.keys(cases).sort()).toEqual(rules.map((r) => r.alert as string).sort());
  });

  for (const [alert, c] of Object.entries(cases)) {
    it(`${alert} fires when ${c.name}, and not before`, () => {
      const r = run(['test', 'rules', unitFile(alert, c)]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain('SUCCESS');
    });
  }

  for (const [alert, series] of Object.entries(healthy)) {
    it(`${alert} stays quiet on a healthy pipeline`, () => {
      const r = run(['test', 'rules', unitFile(alert, { series, fires: [], quiet: ['10m', '25m', '40m'] })]);
      expect(r.code, r.out).toBe(0);
    });
  }

  it('a wrong expectation fails promtool test rules (the harness has teeth)', () => {
    const c = cases.StellaKafkaDown!;
    const r = run(['test', 'rules', unitFile('StellaKafkaDown', { series: c.series, fires: [{ at: '4m', labels: [{ severity: 'ticket', job: 'stella', instance: 'a:9464' }] }], quiet: [] })]);
    expect(r.code).not.toBe(0);
  });
});
