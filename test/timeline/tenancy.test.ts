// Cross-tenant matrix over every route and every kind of wrong token, and injection attempts in
// every filter. Data for three tenants is written through the real core and store.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchWriter, TABLES, timelineInsertRow } from '../../lib/store/index.ts';
import { transformRecord } from '../../processors/timeline/transform.ts';
import { startApiServer, type RunningApi } from '../../api/server.ts';
import { registerTimelineRoutes } from '../../api/timeline-routes.ts';
import { getJson, hexId, logsRequest, nowNs, testStore, testTokens, TOKENS, tracesRequest } from './support.ts';

const tenants = ['acme', 'globex', 'initech'] as const;
type Tenant = (typeof tenants)[number];
const data = {} as Record<Tenant, { traceId: string; eventIds: Set<string>; firstEvent: string }>;
const readers: Record<Tenant, string> = { acme: TOKENS.acme, globex: TOKENS.globex, initech: TOKENS.initech };
let api: RunningApi;
let t0: bigint;
let win: string;

beforeAll(async () => {
  const store = await testStore();
  const writer = new BatchWriter(store, { maxDelayMs: 5 });
  t0 = nowNs();
  win = `from=${t0 - 1_000_000n}&to=${t0 + 1_000_000_000n}`;
  for (const [i, tenant] of tenants.entries()) {
    const traceId = hexId(16);
    // Same kinds, resources and project names in every tenant: only the tenant predicate separates them.
    const logs = logsRequest(tenant, 'policy-engine', [0, 1, 2].map((k) => ({ eventName: 'policy.changed', timeNs: t0 + BigInt(i * 10 + k) * 1000n, traceId,
      attrs: { 'stella.resource.type': 'component', 'stella.resource.id': 'pkg:npm/shared@1.0.0', 'stella.project.id': 'shared-project' } })));
    const spans = tracesRequest(tenant, 'worker', [{ traceId, spanId: hexId(8), name: 'job', startNs: t0 + BigInt(i) * 1000n, endNs: t0 + BigInt(i) * 1000n + 500n,
      attrs: { 'stella.job.name': 'scan', 'stella.resource.type': 'component', 'stella.resource.id': 'pkg:npm/shared@1.0.0' }, error: true }]);
    const outs = [transformRecord('logs', { topic: 'l', partition: 0, offset: String(i), key: tenant, value: logs, headers: { tenant } }),
      transformRecord('traces', { topic: 's', partition: 0, offset: String(i), key: tenant, value: spans, headers: { tenant } })];
    const eventIds = new Set(outs.flatMap((o) => o.events.map((e) => e.event_id)));
    data[tenant] = { traceId, eventIds, firstEvent: outs[0]!.events[0]!.event_id };
    await Promise.all(outs.flatMap((o) => [...[...o.rows].map(([t, r]) => writer.write(t, r)), writer.write(TABLES.timelineEvents, o.events.map(timelineInsertRow))]));
  }
  api = await startApiServer({ tokens: testTokens(), port: 0, register: [(r) => registerTimelineRoutes(r, { store })] });
});

afterAll(async () => { await api?.close(); });

const routes = (t: Tenant) => [
  { path: `/timeline?${win}`, scope: 'timeline:read' },
  { path: `/timeline/${data[t].firstEvent}`, scope: 'timeline:read' },
  { path: `/obs/trace/${data[t].traceId}`, scope: 'obs:read' },
];
const withTenant = (path: string, t: string) => `${path}${path.includes('?') ? '&' : '?'}tenant=${t}`;

describe('cross-tenant matrix', () => {
  it('each reader sees exactly its own tenant on every route', async () => {
    for (const t of tenants) {
      const list = await getJson(api.url, `/timeline?${win}`, readers[t]);
      expect(list.status).toBe(200);
      expect(list.body.tenant).toBe(t);
      expect(new Set(list.body.events.map((e: any) => e.event_id))).toEqual(data[t].eventIds);
      const one = await getJson(api.url, `/timeline/${data[t].firstEvent}`, readers[t]);
      expect(one.status).toBe(200);
      const trace = await getJson(api.url, `/obs/trace/${data[t].traceId}`, readers[t]);
      expect(trace.body.spans).toHaveLength(1);
      expect(new Set(trace.body.events.map((e: any) => e.event_id))).toEqual(data[t].eventIds);
    }
  });

  it('refuses every wrong-tenant token on every route, naming the missing scope without echoing the token', async () => {
    for (const target of tenants) {
      for (const r of routes(target)) {
        // No token / unknown token: 401.
        for (const tok of [undefined, 'not-a-real-token']) {
          const res = await getJson(api.url, withTenant(r.path, target), tok);
          expect(res.status).toBe(401);
          expect(res.body.error).toMatchObject({ code: 'unauthenticated', required_scope: `${r.scope}#tenant/<id>` });
          if (tok) expect(JSON.stringify(res.body)).not.toContain(tok);
        }
        // Other tenants' readers asking for the target tenant: 403 naming the scope.
        for (const other of tenants.filter((x) => x !== target)) {
          const res = await getJson(api.url, withTenant(r.path, target), readers[other]);
          expect(res.status).toBe(403);
          expect(res.body.error).toEqual({ code: 'forbidden', message: `token lacks scope ${r.scope}#tenant/${target}`, required_scope: `${r.scope}#tenant/${target}` });
          expect(JSON.stringify(res.body)).not.toContain(readers[other]);
        }
        // A token holding the wrong scope for the right tenant.
        const ingest = await getJson(api.url, withTenant(r.path, target), TOKENS.acmeIngest);
        expect(ingest.status).toBe(403);
        if (r.scope === 'timeline:read') expect((await getJson(api.url, withTenant(r.path, 'acme'), TOKENS.acmeObsOnly)).status).toBe(403);
        // The multi-tenant token (initech + globex) must choose, and cannot choose acme.
        const multi = await getJson(api.url, withTenant(r.path, 'acme'), TOKENS.multi);
        expect(multi.status).toBe(403);
        expect((await getJson(api.url, r.path, TOKENS.multi)).status).toBe(400);
      }
    }
  });

  it('never returns another tenant\'s rows, even for ids that exist elsewhere', async () => {
    for (const reader of tenants) {
      for (const owner of tenants.filter((x) => x !== reader)) {
        const one = await getJson(api.url, `/timeline/${data[owner].firstEvent}`, readers[reader]);
        expect(one.status).toBe(404); // indistinguishable from a missing id
        const trace = await getJson(api.url, `/obs/trace/${data[owner].traceId}`, readers[reader]);
        expect(trace.body).toMatchObject({ tenant: reader, spans: [], events: [] });
        const byTrace = await getJson(api.url, `/timeline?${win}&trace_id=${data[owner].traceId}`, readers[reader]);
        expect(byTrace.body.events).toEqual([]);
      }
    }
    const multi = await getJson(api.url, `/timeline?${win}&tenant=globex`, TOKENS.multi);
    expect(new Set(multi.body.events.map((e: any) => e.event_id))).toEqual(data.globex.eventIds);
  });

  it('keeps injection attempts in every filter inert (400 or no rows, never another tenant, never 500)', async () => {
    const payloads = ["' OR 1=1 --", "acme' OR tenant_id != 'acme", "x') OR ('1'='1", "\\' OR 1=1 #", '{tenant:String}', "'; DROP TABLE timeline_events; --",
      "pkg:npm/shared@1.0.0' OR '1'='1", '%', '\u0000', "policy.changed' UNION ALL SELECT * FROM timeline_events --"];
    const params = ['kind', 'resource_type', 'resource_id', 'project', 'trace_id', 'cursor', 'from', 'to', 'limit', 'tenant'];
    for (const p of payloads) {
      for (const param of params) {
        const res = await getJson(api.url, `/timeline?${param === 'from' || param === 'to' ? '' : `${win}&`}${param}=${encodeURIComponent(p)}`, TOKENS.globex);
        expect([200, 400, 403]).toContain(res.status);
        if (res.status === 200) expect(res.body.events).toEqual([]);
        if (res.status === 400 && p.length > 3) expect(JSON.stringify(res.body)).not.toContain(p);
      }
      for (const path of [`/timeline/${encodeURIComponent(p)}`, `/obs/trace/${encodeURIComponent(p)}`]) {
        const res = await getJson(api.url, path, TOKENS.globex);
        expect([400, 404]).toContain(res.status);
      }
    }
    // Exact-match filters really are exact: the shared resource id finds globex's rows only.
    const exact = await getJson(api.url, `/timeline?${win}&resource_id=${encodeURIComponent('pkg:npm/shared@1.0.0')}&project=shared-project`, TOKENS.globex);
    expect(exact.body.events).toHaveLength(3);
    expect(exact.body.events.every((e: any) => data.globex.eventIds.has(e.event_id))).toBe(true);
    // The table survived the DROP attempt.
    expect((await getJson(api.url, `/timeline?${win}`, TOKENS.acme)).body.events.length).toBe(data.acme.eventIds.size);
  });

  it('serves /healthz without a token, and 404/405 as JSON', async () => {
    expect(await getJson(api.url, '/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    expect((await getJson(api.url, '/nope', TOKENS.acme)).status).toBe(404);
    const post = await fetch(`${api.url}/timeline`, { method: 'POST', headers: { authorization: `Bearer ${TOKENS.acme}` } });
    expect(post.status).toBe(405);
  });
});
