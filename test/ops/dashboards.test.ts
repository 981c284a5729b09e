// Every panel of every dashboard in dashboards/ runs against the embedded engine seeded with the
// demo workload: the data source's macros and the template variables are substituted the way the
// grafana-clickhouse-datasource plugin and Grafana do, and each query must run, return the
// columns its panel is built on and at least one row for the seeded tenant (and none for a tenant
// that has no data, where the panel is tenant-scoped). Variable queries run too.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { migrate, openStore, type Store } from '../../lib/store/index.ts';
import { DEMO_TENANT, OTHER_TENANT, seedDemoWorkload, type DemoSummary } from './demo-workload.ts';

const DASH_DIR = new URL('../../dashboards/', import.meta.url).pathname;
const PLUGIN = 'grafana-clickhouse-datasource';
type Obj = Record<string, any>;

const dashboards: { file: string; json: Obj }[] = readdirSync(DASH_DIR).filter((f) => f.endsWith('.json')).sort()
  .map((file) => ({ file, json: JSON.parse(readFileSync(path.join(DASH_DIR, file), 'utf8')) as Obj }));
const queryPanels = (d: Obj): Obj[] => (d.panels as Obj[]).filter((p) => p.type !== 'row');

/** The columns (in order) each panel's visualisation is built on, and whether it is tenant-scoped. */
const EXPECTED: Record<string, Record<string, { columns: string[]; scoped: boolean }>> = {
  'stella-hub': {
    'Throughput (requests/s)': { columns: ['time', 'service', 'rps'], scoped: true },
    'Error rate': { columns: ['time', 'service', 'error_rate'], scoped: true },
    'Latency P95 / P99 (ms)': { columns: ['time', 'service', 'p95_ms', 'p99_ms'], scoped: true },
    'Services in range': { columns: ['tenant', 'service', 'requests', 'errors', 'error_rate', 'worst_p99_ms'], scoped: true },
    'SLO alerts: latest state': { columns: ['tenant', 'slo', 'service', 'severity', 'windows', 'state', 'burn_rate_long', 'burn_rate_short', 'budget_remaining', 'last_change'], scoped: true },
    'Burn rate at alert transitions (long window)': { columns: ['time', 'slo_window', 'burn_rate_long'], scoped: true },
    'Error budget remaining (30 d, at the last transition)': { columns: ['slo', 'budget_remaining'], scoped: true },
    'Top failing routes': { columns: ['tenant', 'service', 'route', 'errors', 'spans', 'error_ratio', 'p95_ms'], scoped: true },
    'Noisiest tenants (spans + log records)': { columns: ['tenant', 'spans', 'logs'], scoped: false },
    'Stored per minute (by event time)': { columns: ['time', 'signal', 'items'], scoped: true },
    'Event time → stored delay (timeline_events)': { columns: ['time', 'p50_delay_s', 'p95_delay_s'], scoped: true },
    'Evidence sealing per tenant': { columns: ['tenant', 'segments', 'entries_sealed', 'log_size', 'last_sealed_at', 'seconds_since_last_seal'], scoped: true },
  },
  'stella-forensics': {
    'Events over time by kind family': { columns: ['time', 'family', 'events'], scoped: true },
    'Tenant timeline': { columns: ['ts', 'kind', 'actor', 'resource_type', 'resource_id', 'project_id', 'trace_id', 'event_id', 'digest', 'source', 'details'], scoped: true },
    'Job failures by resource': { columns: ['resource_type', 'resource_id', 'failures', 'last_failure', 'last_message'], scoped: true },
    'Evidence segments': { columns: ['sealed_at', 'from_size', 'to_size', 'entries', 'chain', 'root_hex', 'statement_sha256'], scoped: true },
    'Incident-mode periods': { columns: ['started_at', 'stopped_at', 'state', 'duration_s', 'reason', 'started_by', 'stop_reason'], scoped: true },
  },
};

// ---- Macro and variable substitution --------------------------------------------------------

/** A variable's current value(s); `{ raw }` = a custom "All" value, which Grafana inserts unformatted. */
export interface Vars { [name: string]: string | string[] | { raw: string } }
export interface Range { fromMs: number; toMs: number; intervalSeconds: number }

const dt64 = (ms: number) => `toDateTime64('${new Date(ms).toISOString().replace('T', ' ').replace('Z', '')}', 9)`;
// Grafana's formats: sqlstring doubles quotes ('' ), singlequote backslash-escapes them (\').
const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

/**
 * What Grafana + the ClickHouse plugin send for `sql`: data-source macros
 * ($__timeFilter(col), $__fromTime, $__toTime, $__timeInterval(col), $__interval_s) and template
 * variables ($v, ${v}, ${v:singlequote}, ${v:sqlstring}; multi-value lists joined with commas).
 */
export function substitute(sql: string, range: Range, vars: Vars): string {
  let out = sql
    .replace(/\$__timeFilter\(\s*([^)]+?)\s*\)/g, (_, c: string) => `${c} >= ${dt64(range.fromMs)} AND ${c} <= ${dt64(range.toMs)}`)
    .replace(/\$__timeInterval\(\s*([^)]+?)\s*\)/g, (_, c: string) => `toStartOfInterval(toDateTime(${c}), INTERVAL ${range.intervalSeconds} second)`)
    .replace(/\$__fromTime\b/g, dt64(range.fromMs))
    .replace(/\$__toTime\b/g, dt64(range.toMs))
    .replace(/\$__interval_s\b/g, String(range.intervalSeconds));
  out = out.replace(/\$\{(\w+)(?::(\w+))?\}|\$(\w+)/g, (m, a: string | undefined, fmt: string | undefined, b: string | undefined) => {
    const name = (a ?? b)!;
    if (!(name in vars)) {
      if (b !== undefined) return m; // e.g. a `$` inside a string that is no variable
      throw new Error(`undefined template variable ${name}`);
    }
    const val = vars[name]!;
    if (typeof val === 'object' && !Array.isArray(val)) return val.raw;
    const vals = ([] as string[]).concat(val);
    if (fmt === 'singlequote') return vals.map((v) => `'${v.replace(/'/g, "\\'")}'`).join(',');
    if (fmt === 'sqlstring') return vals.map(sqlString).join(',');
    if (fmt) throw new Error(`unsupported variable format ${fmt}`);
    return vals.join(',');
  });
  if (/\$__\w+/.test(out)) throw new Error(`unsubstituted macro in: ${out.match(/\$__\w+/)![0]}`);
  return out;
}

// ---- The store, seeded once for the whole file (one chdb engine per process) ------------------

let store: Store;
let seeded: DemoSummary;
let dir: string;
const NOW = Date.now();

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stella-ops-dash-'));
  store = await openStore({ dataPath: dir });
  await migrate(store, { timelineTtlDays: 180, otelTtlDays: 30 });
  seeded = await seedDemoWorkload(store, NOW);
}, 180_000);

afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const range = (): Range => ({ fromMs: seeded.fromMs - 5 * 60_000, toMs: NOW + 15 * 60_000, intervalSeconds: 60 });

/** Values of a query variable: its own query, run with the variables it depends on. */
async function variableValues(v: Obj, vars: Vars): Promise<string[]> {
  const rows = await store.selectRows<Record<string, string>>(substitute(v.query as string, range(), vars));
  return rows.map((r) => Object.values(r)[0]!);
}

/** The variables as a user picks them: `tenant` chosen, multi-value "All" = every value. */
async function resolveVars(d: Obj, tenant: string, picks: Vars = {}): Promise<Vars> {
  const vars: Vars = {};
  for (const v of d.templating.list as Obj[]) {
    if (v.type === 'datasource') continue;
    if (v.name in picks) { vars[v.name] = picks[v.name]!; continue; }
    if (v.name === 'tenant') { vars.tenant = v.multi ? [tenant] : tenant; continue; }
    if (v.type === 'textbox') { vars[v.name] = v.current?.value ?? ''; continue; }
    if (v.type === 'query') {
      const values = await variableValues(v, vars);
      if (v.includeAll && v.allValue) vars[v.name] = { raw: v.allValue as string };
      else vars[v.name] = v.includeAll ? (values.length ? values : ['']) : values[0] ?? '';
      continue;
    }
    throw new Error(`variable ${v.name}: unhandled type ${v.type}`);
  }
  return vars;
}

describe('dashboards: structure', () => {
  it('two dashboards (hub and forensics), schemaVersion ≥ 39, every panel declared in the expectations and vice versa', () => {
    expect(dashboards.map((d) => d.json.uid).sort()).toEqual(['stella-forensics', 'stella-hub']);
    for (const { file, json } of dashboards) {
      expect(json.schemaVersion, file).toBeGreaterThanOrEqual(39);
      const ids = (json.panels as Obj[]).map((p) => p.id);
      expect(new Set(ids).size, `${file}: panel ids unique`).toBe(ids.length);
      expect(queryPanels(json).map((p) => p.title).sort()).toEqual(Object.keys(EXPECTED[json.uid]!).sort());
    }
  });

  it('every query uses the ClickHouse plugin through the datasource variable, as raw SQL', () => {
    for (const { file, json } of dashboards) {
      const dsVar = (json.templating.list as Obj[]).find((v) => v.type === 'datasource');
      expect(dsVar?.query, file).toBe(PLUGIN);
      for (const p of queryPanels(json)) {
        expect(p.datasource, `${file}/${p.title}`).toEqual({ type: PLUGIN, uid: `\${${dsVar!.name}}` });
        expect(p.targets).toHaveLength(1);
        const t = p.targets[0];
        expect(t.datasource).toEqual(p.datasource);
        expect(t.editorType).toBe('sql');
        expect(['timeseries', 'table', 'logs', 'traces']).toContain(t.queryType);
        expect(t.rawSql).toMatch(/\$__timeFilter\(|\$__fromTime/); // every panel follows the dashboard's time range
        if (t.queryType === 'timeseries') expect(EXPECTED[json.uid]![p.title]!.columns[0]).toBe('time');
        for (const k of ['h', 'w', 'x', 'y']) expect(typeof p.gridPos[k]).toBe('number');
        expect(p.gridPos.x + p.gridPos.w, `${file}/${p.title} fits the 24-column grid`).toBeLessThanOrEqual(24);
        expect(['timeseries', 'table', 'stat', 'bargauge', 'barchart', 'state-timeline', 'logs', 'traces'], `${file}/${p.title}`).toContain(p.type);
      }
    }
  });

  it('provisioning: a file provider for the dashboards and a ClickHouse data source from the environment', () => {
    const prov = parse(readFileSync(path.join(DASH_DIR, 'provisioning/dashboards.yaml'), 'utf8')) as Obj;
    expect(prov.apiVersion).toBe(1);
    expect(prov.providers[0].type).toBe('file');
    expect(prov.providers[0].options.path).toBeTruthy();
    const ds = parse(readFileSync(path.join(DASH_DIR, 'provisioning/datasources.yaml'), 'utf8')) as Obj;
    const src = ds.datasources[0];
    expect(src.type).toBe(PLUGIN);
    expect(src.jsonData.host).toMatch(/^\$\{[A-Z_]+\}$/);
    expect(String(src.jsonData.port)).toMatch(/^\$\{[A-Z_]+\}$/);
    expect(src.secureJsonData.password).toMatch(/^\$\{[A-Z_]+\}$/);
    expect(src.jsonData.traces.defaultTable).toBe('otel_traces');
    expect(src.jsonData.logs.defaultTable).toBe('otel_logs');
  });
});

describe('substitute()', () => {
  const r: Range = { fromMs: Date.UTC(2026, 10, 23, 12, 0, 0), toMs: Date.UTC(2026, 10, 23, 13, 0, 0, 500), intervalSeconds: 30 };
  it('expands the macros and variable formats', () => {
    expect(substitute('WHERE $__timeFilter(ts) AND tenant_id IN (${tenant:singlequote}) AND x = ${id:sqlstring} AND y <= $__toTime', r,
      { tenant: ['acme', "o'neil"], id: "a'b" })).toBe(
      "WHERE ts >= toDateTime64('2026-11-23 12:00:00.000', 9) AND ts <= toDateTime64('2026-11-23 13:00:00.500', 9)"
      + " AND tenant_id IN ('acme','o\\'neil') AND x = 'a''b' AND y <= toDateTime64('2026-11-23 13:00:00.500', 9)");
    expect(substitute('SELECT $__timeInterval(ts) AS t', r, {})).toBe('SELECT toStartOfInterval(toDateTime(ts), INTERVAL 30 second) AS t');
  });
  it('refuses unknown variables and leftover macros', () => {
    expect(() => substitute('WHERE t = ${nope}', r, {})).toThrow(/undefined template variable nope/);
    expect(() => substitute('WHERE $__dateFilter(d)', r, {})).toThrow(/unsubstituted macro/);
  });
});

describe('dashboards: every panel against the seeded engine', () => {
  it('the seed produced the forensic material the panels show', () => {
    expect(seeded.breachEvents).toBeGreaterThanOrEqual(2); // started and resolved
    expect(seeded.incidentEvents).toBe(2); // started by the page, stopped by the operator
    expect(seeded.segments).toBeGreaterThanOrEqual(3);
  });

  for (const { file, json } of dashboards) {
    for (const p of queryPanels(json)) {
      it(`${file} · ${p.title}: runs, returns its columns and rows for the seeded tenant`, async () => {
        const exp = EXPECTED[json.uid]![p.title]!;
        const sql = substitute(p.targets[0].rawSql, range(), await resolveVars(json, DEMO_TENANT));
        const rows = await store.selectRows<Record<string, unknown>>(sql);
        expect(rows.length, sql).toBeGreaterThan(0);
        expect(Object.keys(rows[0]!)).toEqual(exp.columns);
        if (p.title === 'Noisiest tenants (spans + log records)') {
          expect(rows.map((r) => r.tenant)).toEqual([DEMO_TENANT, OTHER_TENANT]); // demo sends more
        }
        if (exp.scoped) {
          const tenants = rows.map((r) => r.tenant).filter((t) => t !== undefined);
          for (const t of tenants) expect(t).toBe(DEMO_TENANT);
          const none = await store.selectRows(substitute(p.targets[0].rawSql, range(), await resolveVars(json, 'nobody')));
          expect(none, `${p.title} must be tenant-scoped`).toEqual([]);
        }
      });
    }
  }

  it('panels show the seeded facts: the checkout burst fires and resolves, the incident period is closed, the segment chain is contiguous', async () => {
    const hub = dashboards.find((d) => d.json.uid === 'stella-hub')!.json;
    const fx = dashboards.find((d) => d.json.uid === 'stella-forensics')!.json;
    const run = async (d: Obj, title: string, tenant = DEMO_TENANT) => store.selectRows<Record<string, any>>(
      substitute(queryPanels(d).find((p) => p.title === title)!.targets[0].rawSql, range(), await resolveVars(d, tenant)));
    const slo = await run(hub, 'SLO alerts: latest state');
    expect(slo.some((r) => r.slo === 'checkout-availability' && r.severity === 'page' && r.state === 'resolved')).toBe(true);
    const routes = await run(hub, 'Top failing routes');
    expect(routes[0]).toMatchObject({ service: 'checkout', route: 'POST /checkout' });
    const incidents = await run(fx, 'Incident-mode periods');
    expect(incidents).toHaveLength(1);
    expect(incidents[0]).toMatchObject({ state: 'ended', stop_reason: 'manual', started_by: 'stella-slo' });
    const segs = await run(fx, 'Evidence segments');
    expect(segs.length).toBe(seeded.segments);
    expect(new Set(segs.map((s) => s.chain))).toEqual(new Set(['contiguous']));
    // Picking one resource narrows the timeline to it: the advisory job's start and failure.
    const picked = await store.selectRows<Record<string, any>>(substitute(queryPanels(fx).find((p) => p.title === 'Tenant timeline')!.targets[0].rawSql,
      range(), await resolveVars(fx, DEMO_TENANT, { resource_id: ['pkg:npm/lodash@4.17.20'] })));
    expect(picked.map((r) => r.kind).sort()).toEqual(['job.failed', 'job.started']);
    expect(new Set(picked.map((r) => r.resource_id))).toEqual(new Set(['pkg:npm/lodash@4.17.20']));
    const jobs = await run(fx, 'Job failures by resource');
    expect(jobs[0]).toMatchObject({ resource_type: 'component', resource_id: 'pkg:npm/lodash@4.17.20' });
  });

  it('a gap in the evidence segments shows as GAP', async () => {
    const fx = dashboards.find((d) => d.json.uid === 'stella-forensics')!.json;
    const sql = queryPanels(fx).find((p) => p.title === 'Evidence segments')!.targets[0].rawSql as string;
    const { insertEvidenceSegment } = await import('../../lib/store/index.ts');
    const last = (await store.selectRows<{ m: string }>(`SELECT max(to_size) AS m FROM evidence_segments FINAL WHERE tenant_id = '${DEMO_TENANT}'`))[0]!.m;
    await insertEvidenceSegment(store, { tenant_id: DEMO_TENANT, from_size: Number(last) + 5, to_size: Number(last) + 9, root_hex: 'ab'.repeat(32),
      statement_sha256: 'cd'.repeat(32), sealed_at: (BigInt(NOW) * 1_000_000n).toString() });
    const rows = await store.selectRows<Record<string, any>>(substitute(sql, range(), await resolveVars(fx, DEMO_TENANT)));
    expect(rows[0]).toMatchObject({ to_size: String(Number(last) + 9), chain: 'GAP' });
    expect(rows.slice(1).every((r) => r.chain === 'contiguous')).toBe(true);
  });
});
