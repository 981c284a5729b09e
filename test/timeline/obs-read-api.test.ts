// GET /obs/logs, /obs/metrics, /obs/health and `stella obs logs|metrics|health` over data written
// by the real timeline runner (Kafka -> chdb): filters, stable cursor pages, tenant isolation (each
// tenant's rows are identical apart from the tenant, so only the store's tenant predicate separates
// them), bad parameters as 400 naming the parameter, and the CLI's exit codes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import Long from 'long';
import { registerObsReadRoutes } from '../../api/obs-read-routes.ts';
import { startApiServer, type RunningApi } from '../../api/server.ts';
import { obsHealth, obsLogs, obsMetrics } from '../../cli/obs-read.ts';
import { encode } from '../../lib/otlp/proto.ts';
import { insertGoldenSignals } from '../../processors/slo/outputs.ts';
import { startTimelineRunner, type RunningTimeline } from '../../processors/timeline/runner.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { eventually, getJson, hexId, metricsRequest, nowNs, testStore, testTokens, TOKENS } from './support.ts';

const topics = { spans: uniq('or_spans'), logs: uniq('or_logs'), metrics: uniq('or_metrics'), timelineEvents: uniq('or_timeline'), dlq: uniq('or_dlq') };
let runner: RunningTimeline;
let api: RunningApi;
let producer: Producer;
// One second into the 10-minute block before the current one: the three metric points (t0, +1 min,
// +2 min) share one step=600 bucket whatever the wall clock (t0 = now - 1 min split them at :x0).
const BLOCK_NS = 600_000_000_000n;
const t0 = (nowNs() / BLOCK_NS) * BLOCK_NS - BLOCK_NS + 1_000_000_000n;
const trace = hexId(16);
const win = `from=${t0 - 1_000_000n}&to=${t0 + 600_000_000_000n}`;
const SEV: [number, string][] = [[5, 'DEBUG'], [9, 'INFO'], [13, 'WARN'], [17, 'ERROR']];

/** 40 records per tenant: 2 services × 20, severities cycling, every 5th in `trace`, bodies numbered. */
function logs(tenant: string, service: string, base: number): Buffer {
  return Buffer.from(encode('logs', { resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }, { key: 'tenant.id', value: { stringValue: tenant } }] },
    scopeLogs: [{ scope: { name: 't' }, logRecords: Array.from({ length: 20 }, (_, i) => {
      const [n, text] = SEV[i % 4]!;
      return { timeUnixNano: Long.fromString((t0 + BigInt((base + i) * 1000) * 1_000_000n).toString(), true), severityNumber: n, severityText: text,
        body: { stringValue: `${service} step ${i}${i === 7 ? ' Payment DECLINED' : ''}` }, traceId: i % 5 === 0 ? Buffer.from(trace, 'hex') : Buffer.alloc(0),
        spanId: Buffer.alloc(0), attributes: [] };
    }) }] }] }));
}

beforeAll(async () => {
  const store = await testStore();
  await createTopics(Object.values(topics), 3);
  producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  runner = await startTimelineRunner({ kafka: testKafka('obs-read'), store, topics, groupId: uniq('obs-read'), writer: { maxDelayMs: 10 } });
  for (const tenant of ['acme', 'globex']) {
    const send = (topic: string, value: Buffer) => producer.send({ topic, acks: -1, messages: [{ key: tenant, value, headers: { tenant } }] });
    await send(topics.logs, logs(tenant, 'checkout', 0));
    await send(topics.logs, logs(tenant, 'search', 20));
    for (let m = 0; m < 3; m++) await send(topics.metrics, metricsRequest(tenant, 'checkout', 'queue_depth', 10 + m, t0 + BigInt(m) * 60_000_000_000n));
  }
  // Golden signals as the SLO processor writes them: acme's checkout fails 20%, search is clean.
  const minute = Math.floor(Date.now() / 60_000) * 60_000 - 60_000;
  await insertGoldenSignals(store, [
    { tenant: 'acme', service: 'checkout', minuteStartMs: minute, requests: 100, errors: 20, errorRate: 0.2, throughputPerSec: 1.6, p50Ms: 5, p95Ms: 9, p99Ms: 12 },
    { tenant: 'acme', service: 'search', minuteStartMs: minute, requests: 50, errors: 0, errorRate: 0, throughputPerSec: 0.8, p50Ms: 1, p95Ms: 2, p99Ms: 3 },
    { tenant: 'globex', service: 'billing', minuteStartMs: minute, requests: 10, errors: 0, errorRate: 0, throughputPerSec: 0.2, p50Ms: 1, p95Ms: 2, p99Ms: 3 },
  ]);
  api = await startApiServer({ tokens: testTokens(), port: 0, register: [(r) => registerObsReadRoutes(r, { store })] });
  await eventually(async () => {
    const r = await getJson(api.url, `/obs/logs?${win}&limit=1000`, TOKENS.globex);
    const m = await getJson(api.url, `/obs/metrics?name=queue_depth&${win}`, TOKENS.globex);
    return r.body.logs?.length === 40 && m.body.series?.[0]?.points.length === 3 ? true : undefined;
  }, 60_000);
}, 120_000);

afterAll(async () => {
  await runner?.stop();
  await api?.close();
  await producer?.disconnect();
});

describe('GET /obs/logs', () => {
  it('filters by service, severity, trace_id and text, newest first', async () => {
    const all = await getJson(api.url, `/obs/logs?${win}&limit=1000`, TOKENS.acme);
    expect(all.status).toBe(200);
    expect(all.body.logs).toHaveLength(40);
    const ts = all.body.logs.map((l: any) => BigInt(l.ts));
    expect(ts).toEqual([...ts].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)));
    const svc = await getJson(api.url, `/obs/logs?${win}&service=search&limit=1000`, TOKENS.acme);
    expect(svc.body.logs).toHaveLength(20);
    expect(svc.body.logs.every((l: any) => l.service === 'search')).toBe(true);
    const warn = await getJson(api.url, `/obs/logs?${win}&severity=warn&limit=1000`, TOKENS.acme);
    expect(warn.body.logs).toHaveLength(20);
    expect(new Set(warn.body.logs.map((l: any) => l.severity))).toEqual(new Set(['WARN', 'ERROR']));
    const tr = await getJson(api.url, `/obs/logs?${win}&trace_id=${trace.toUpperCase()}&limit=1000`, TOKENS.acme);
    expect(tr.body.logs).toHaveLength(8);
    expect(tr.body.logs.every((l: any) => l.trace_id === trace)).toBe(true);
    const text = await getJson(api.url, `/obs/logs?${win}&q=payment%20declined`, TOKENS.acme);
    expect(text.body.logs.map((l: any) => l.body).sort()).toEqual(['checkout step 7 Payment DECLINED', 'search step 7 Payment DECLINED']);
    const narrow = await getJson(api.url, `/obs/logs?from=${t0}&to=${t0 + 5_000_000_000n}&limit=1000`, TOKENS.acme);
    expect(narrow.body.logs).toHaveLength(5); // seconds 0..4 of checkout
  });

  it('pages with a cursor: every record once, in order, and a page is stable when newer records arrive', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let first: any[] | undefined;
    do {
      const r = await getJson(api.url, `/obs/logs?${win}&limit=7${cursor ? `&cursor=${cursor}` : ''}`, TOKENS.acme);
      expect(r.status).toBe(200);
      first ??= r.body.logs;
      seen.push(...r.body.logs.map((l: any) => l.record_id));
      cursor = r.body.next_cursor;
    } while (cursor);
    expect(seen).toHaveLength(40);
    expect(new Set(seen).size).toBe(40);
    const all = await getJson(api.url, `/obs/logs?${win}&limit=1000`, TOKENS.acme);
    expect(seen).toEqual(all.body.logs.map((l: any) => l.record_id));
    // A second page taken with the first page's cursor is the same after newer records were written.
    const p1 = await getJson(api.url, `/obs/logs?${win}&limit=7`, TOKENS.acme);
    const before = await getJson(api.url, `/obs/logs?${win}&limit=7&cursor=${p1.body.next_cursor}`, TOKENS.acme);
    await producer.send({ topic: topics.logs, acks: -1, messages: [{ key: 'acme', value: logs('acme', 'late', 100), headers: { tenant: 'acme' } }] });
    await eventually(async () => ((await getJson(api.url, `/obs/logs?${win}&service=late`, TOKENS.acme)).body.logs.length === 20 ? true : undefined));
    const after = await getJson(api.url, `/obs/logs?${win}&limit=7&cursor=${p1.body.next_cursor}`, TOKENS.acme);
    expect(after.body.logs).toEqual(before.body.logs);
  });

  it('is tenant-scoped: another tenant\'s token sees only its own, and cannot ask for acme', async () => {
    const g = await getJson(api.url, `/obs/logs?${win}&limit=1000&service=checkout`, TOKENS.globex);
    expect(g.body.tenant).toBe('globex');
    const a = await getJson(api.url, `/obs/logs?${win}&limit=1000&service=checkout`, TOKENS.acme);
    expect(new Set(g.body.logs.map((l: any) => l.record_id)).size).toBe(20);
    expect(g.body.logs.some((l: any) => a.body.logs.some((x: any) => x.record_id === l.record_id))).toBe(false);
    for (const p of ['/obs/logs', '/obs/metrics?name=queue_depth', '/obs/health']) {
      expect((await getJson(api.url, `${p}${p.includes('?') ? '&' : '?'}tenant=acme`, TOKENS.globex)).status, p).toBe(403);
      expect((await getJson(api.url, p)).status, p).toBe(401);
    }
    // A cursor made from acme's records gives globex nothing of acme's.
    const p1 = await getJson(api.url, `/obs/logs?${win}&limit=3`, TOKENS.acme);
    const other = await getJson(api.url, `/obs/logs?${win}&limit=1000&cursor=${p1.body.next_cursor}`, TOKENS.globex);
    expect(other.body.tenant).toBe('globex');
    expect(other.body.logs.every((l: any) => !a.body.logs.some((x: any) => x.record_id === l.record_id))).toBe(true);
  });

  it('refuses bad parameters with 400 naming the parameter, never echoing the value', async () => {
    const bad: [string, string][] = [
      ['severity=loud', 'severity'], ['trace_id=xyz', 'trace_id'], ['from=yesterday', 'from'], [`from=${t0}&to=${t0}`, 'from'],
      ['limit=0', 'limit'], ['limit=5000', 'limit'], ['cursor=bm9wZQ', 'cursor'], ['colour=red', 'colour'], ['attr.x=1', 'attr'],
    ];
    for (const [q, param] of bad) {
      const r = await getJson(api.url, `/obs/logs?${q}`, TOKENS.acme);
      expect(r.status, q).toBe(400);
      expect(r.body.error.code).toBe('invalid_parameter');
      expect(r.body.error.parameter, q).toBe(param);
      expect(r.body.error.message).not.toMatch(/loud|xyz|yesterday|red/);
    }
  });
});

describe('GET /obs/metrics', () => {
  it('returns gauge and sum points per series and step, filtered by attributes, bounded', async () => {
    const r = await getJson(api.url, `/obs/metrics?name=queue_depth&${win}&step=60`, TOKENS.acme);
    expect(r.status).toBe(200);
    expect(r.body.series).toHaveLength(1);
    expect(r.body.series[0]).toMatchObject({ kind: 'gauge', service: 'checkout', attributes: { host: 'a' } });
    expect(r.body.series[0].points.map((p: any) => p.avg)).toEqual([10, 11, 12]);
    const sum = await getJson(api.url, `/obs/metrics?name=queue_depth_total&${win}&step=600`, TOKENS.acme);
    expect(sum.body.series[0]).toMatchObject({ kind: 'sum' });
    expect(sum.body.series[0].points).toEqual([expect.objectContaining({ samples: 3, last: 7 })]);
    expect((await getJson(api.url, `/obs/metrics?name=queue_depth&${win}&attr.host=b`, TOKENS.acme)).body.series).toEqual([]);
    expect((await getJson(api.url, `/obs/metrics?name=queue_depth&${win}&attr.host=a`, TOKENS.acme)).body.series).toHaveLength(1);
    for (const [q, param] of [['', 'name'], ['name=q&step=0', 'step'], [`name=q&from=${t0}&to=${t0 + 7_200_000_000_000n}&step=1`, 'step'], ['name=q&window=5', 'window']] as const) {
      const b = await getJson(api.url, `/obs/metrics?${q}`, TOKENS.acme);
      expect(b.status, q).toBe(400);
      expect(b.body.error.parameter, q).toBe(param);
    }
  });
});

describe('GET /obs/health', () => {
  it('per service: degraded from the golden signals\' error rate, up otherwise; per tenant', async () => {
    const r = await getJson(api.url, '/obs/health', TOKENS.acme);
    expect(r.status).toBe(200);
    expect(r.body.services).toEqual([
      expect.objectContaining({ service: 'checkout', status: 'degraded', requests: 100, errors: 20, reasons: ['error rate 20.00% ≥ 5.00%'] }),
      expect.objectContaining({ service: 'search', status: 'up', requests: 50, reasons: [] }),
    ]);
    const g = await getJson(api.url, '/obs/health', TOKENS.globex);
    expect(g.body.services.map((s: any) => s.service)).toEqual(['billing']);
    expect((await getJson(api.url, '/obs/health?window_seconds=5', TOKENS.acme)).body.error.parameter).toBe('window_seconds');
  });
});

describe('stella obs logs|metrics|health', () => {
  it('print tables and JSON, exit 2 on a bad parameter and 3 for another tenant', async () => {
    const base = { baseUrl: api.url, token: TOKENS.acme };
    const l = await obsLogs({ ...base, format: 'table', service: 'checkout', severity: 'error', from: String(t0 - 1_000_000n), to: String(t0 + 600_000_000_000n) });
    expect(l.exitCode).toBe(0);
    expect(l.stdout).toMatch(/^tenant acme: 5 log records\n/);
    expect(l.stdout).toMatch(/checkout +ERROR/);
    const lj = await obsLogs({ ...base, format: 'json', text: 'declined', from: String(t0 - 1_000_000n), to: String(t0 + 600_000_000_000n) });
    expect(JSON.parse(lj.stdout).logs.map((x: any) => x.service).sort()).toEqual(['checkout', 'late', 'search']); // 'late' from the paging test
    const m = await obsMetrics({ ...base, format: 'table', name: 'queue_depth', attributes: [['host', 'a']], from: String(t0 - 1_000_000n), to: String(t0 + 600_000_000_000n), step: 60 });
    expect(m.exitCode).toBe(0);
    expect(m.stdout).toMatch(/checkout\{host=a\} +gauge/);
    const h = await obsHealth({ ...base, format: 'table' });
    expect(h.stdout).toMatch(/^checkout +degraded +100 +20\.00% +error rate/m);
    expect((await obsLogs({ ...base, format: 'table', severity: 'loud' })).exitCode).toBe(2);
    expect((await obsHealth({ baseUrl: api.url, token: TOKENS.globex, tenant: 'acme', format: 'json' })).exitCode).toBe(3);
    expect((await obsLogs({ ...base, format: 'table', service: 'nothing-here' })).exitCode).toBe(1);
  });
});
