// GET /obs/slo, /obs/incident, /obs/golden-signals and POST /obs/incident over a real runner
// (Kafka + chdb): per-tenant answers, cross-tenant tokens refused, incident on/off with TTL expiry
// (timeline row, webhook, sampler), and the CLI functions `stella slo list` / `stella incident`.
import Long from 'long';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encode } from '../../lib/otlp/proto.ts';
import { startApiServer, type RunningApi } from '../../api/server.ts';
import { registerSloRoutes } from '../../api/slo-routes.ts';
import type { StageRecord } from '../../lib/kafka/stage.ts';
import { forTenant, type Store } from '../../lib/store/index.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import type { WebhookPayload } from '../../processors/slo/alert-payloads.ts';
import { incidentSet, sloList } from '../../processors/slo/cli.ts';
import { parseSloConfig } from '../../processors/slo/config.ts';
import { startSloRunner, type RunningSloRunner } from '../../processors/slo/runner.ts';
import { HeadSampler } from '../../receiver/sampling.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { MIN, startReceiver, type Receiver } from './helpers.ts';
import { minuteRequest, produceTenant, sloTestStore } from './support.ts';

const config = parseSloConfig(`
slos:
  - name: checkout-availability
    tenant: acme
    service: checkout
    objective: 0.99
    sli: { type: availability, spans: { name: "POST /checkout", kind: server } }
  - name: checkout-latency
    tenant: acme
    service: checkout
    objective: 0.95
    sli: { type: latency, threshold: 100ms, spans: { name: "POST /checkout" } }
  - name: search-latency-hist
    tenant: acme
    service: search
    objective: 0.99
    sli: { type: latency, threshold: 500ms, metric: { name: http.server.request.duration } }
  - name: api-availability
    tenant: globex
    service: api
    objective: 0.995
    sli: { type: availability, spans: { name: "GET /v1/items", kind: server } }
`);

const TOK = {
  acmeRead: 'acme-obs-read-0123456789', acmeWrite: 'acme-obs-write-0123456789', globexRead: 'globex-obs-read-0123456789',
  acmeTimelineOnly: 'acme-timeline-only-0123456789',
};
const tokens = new TokenRegistry([
  { id: 'acme', tokens: [
    { sha256: sha256Hex(TOK.acmeRead), scopes: ['obs:read'], name: 'acme-reader' },
    { sha256: sha256Hex(TOK.acmeWrite), scopes: ['obs:read', 'obs:write'], name: 'acme-oncall' },
    { sha256: sha256Hex(TOK.acmeTimelineOnly), scopes: ['timeline:read'] },
  ] },
  { id: 'globex', tokens: [{ sha256: sha256Hex(TOK.globexRead), scopes: ['obs:read', 'obs:write'], name: 'globex-oncall' }] },
]);

let store: Store;
let runner: RunningSloRunner;
let api: RunningApi;
let hook: Receiver;
const sampler = new HeadSampler();
const startMs = Math.floor((Date.now() - 30 * MIN) / MIN) * MIN;

beforeAll(async () => {
  store = await sloTestStore();
  const topics = { spans: uniq('api_spans'), metrics: uniq('api_metrics'), sloEvents: uniq('api_slo_events'), timelineEvents: uniq('api_timeline') };
  await createTopics(Object.values(topics), 3);
  hook = await startReceiver();
  const handled = new Map<number, bigint>();
  const handledMetrics = new Map<number, bigint>();
  runner = await startSloRunner({ kafka: testKafka('slo-api'), config, store, topics, groupId: uniq('slo-api'), sampler,
    webhooks: [{ name: 'ops', url: hook.url }], idleTickMs: 200, sender: { baseDelayMs: 50 },
    beforeCommit: async (recs: StageRecord[]) => {
      const l = recs[recs.length - 1]!;
      (l.topic === topics.metrics ? handledMetrics : handled).set(l.partition, BigInt(l.offset));
    } });
  // acme: 20 minutes, 100 spans/min, 5% errors and 10% slow; globex: clean.
  const acme = await produceTenant(topics.spans, 'acme', Array.from({ length: 20 }, (_, m) => minuteRequest({ tenant: 'acme', service: 'checkout',
    spanName: 'POST /checkout', startMs, minute: m, perMinute: 100, errors: 5, durationMs: 20 })));
  const globex = await produceTenant(topics.spans, 'globex', Array.from({ length: 20 }, (_, m) => minuteRequest({ tenant: 'globex', service: 'api',
    spanName: 'GET /v1/items', startMs, minute: m, perMinute: 10, errors: 0 })));
  // acme's search service reports a delta histogram per minute: 5 of 100 requests above 500 ms.
  const metrics = await produceTenant(topics.metrics, 'acme', Array.from({ length: 20 }, (_, m) => Buffer.from(encode('metrics', { resourceMetrics: [{
    resource: { attributes: [{ key: 'service.name', value: { stringValue: 'search' } }] },
    scopeMetrics: [{ scope: { name: 'test' }, metrics: [{ name: 'http.server.request.duration', unit: 's', histogram: { aggregationTemporality: 1, dataPoints: [{
      startTimeUnixNano: Long.fromNumber(startMs + m * MIN).multiply(1_000_000), timeUnixNano: Long.fromNumber(startMs + m * MIN + 59_000).multiply(1_000_000),
      count: Long.fromNumber(100), sum: 20, bucketCounts: [85, 10, 3, 2].map((n) => Long.fromNumber(n)), explicitBounds: [0.1, 0.5, 1],
      attributes: [{ key: 'http.route', value: { stringValue: '/search' } }] }] } }] }] }] }))));
  const deadline = Date.now() + 60_000;
  while ((handled.get(acme.partition) ?? -1n) < acme.lastOffset || (handled.get(globex.partition) ?? -1n) < globex.lastOffset
    || (handledMetrics.get(metrics.partition) ?? -1n) < metrics.lastOffset) {
    if (Date.now() > deadline) throw new Error('runner did not consume the traffic');
    await new Promise((r) => setTimeout(r, 100));
  }
  // A span of minute 20 (of a service no SLO watches) per tenant closes minute 19: its evaluation
  // then holds every span and metric of minutes 0..19, whatever order the two topics were read in.
  const closeA = await produceTenant(topics.spans, 'acme', [minuteRequest({ tenant: 'acme', service: 'marker', spanName: 'x', startMs, minute: 20, perMinute: 1, errors: 0 })]);
  const closeG = await produceTenant(topics.spans, 'globex', [minuteRequest({ tenant: 'globex', service: 'marker', spanName: 'x', startMs, minute: 20, perMinute: 1, errors: 0 })]);
  while ((handled.get(closeA.partition) ?? -1n) < closeA.lastOffset || (handled.get(closeG.partition) ?? -1n) < closeG.lastOffset) {
    if (Date.now() > deadline) throw new Error('runner did not consume the closing records');
    await new Promise((r) => setTimeout(r, 100));
  }
  api = await startApiServer({ tokens, port: 0, register: [(r) => registerSloRoutes(r, { slo: runner, store })] });
});

afterAll(async () => {
  await api?.close();
  await runner?.stop();
  await hook?.close();
});

async function call(method: string, path: string, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${api.url}${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.status, body: await res.json() };
}

describe('GET /obs/slo', () => {
  it('answers each tenant with its own SLOs, burn rates and budget', async () => {
    const a = await call('GET', '/obs/slo', TOK.acmeRead);
    expect(a.status).toBe(200);
    expect(a.body.tenant).toBe('acme');
    expect(a.body.slos.map((s: any) => s.slo).sort()).toEqual(['checkout-availability', 'checkout-latency', 'search-latency-hist']);
    // From the metrics topic: 5% over the threshold against a 1% budget (below every page factor,
    // so incident mode stays off).
    const hist = a.body.slos.find((s: any) => s.slo === 'search-latency-hist');
    expect(hist.burn_rates['1h']).toBeCloseTo(5, 6);
    const avail = a.body.slos.find((s: any) => s.slo === 'checkout-availability');
    // 5% errors against a 1% budget: burn rate 5 in every window that holds data.
    expect(avail.burn_rates['5m']).toBeCloseTo(5, 6);
    expect(avail.burn_rates['1h']).toBeCloseTo(5, 6);
    expect(avail.budget_remaining).toBeLessThan(1);
    expect(avail.objective).toBe(0.99);
    // Everything comes from one evaluation, that of minute 19 (closed by the minute-20 record).
    expect(avail.minute).toBe(new Date(startMs + 19 * MIN).toISOString());
    expect(avail.evaluated_at).toBe(new Date(startMs + 20 * MIN - 1).toISOString());
    expect(hist.minute).toBe(avail.minute);
    expect(a.body.incident).toEqual({ on: false, since: null, until: null, reason: null, by: null });
    const g = await call('GET', '/obs/slo', TOK.globexRead);
    expect(g.body.tenant).toBe('globex');
    expect(g.body.slos.map((s: any) => s.slo)).toEqual(['api-availability']);
    expect(g.body.slos[0].burn_rates['1h']).toBe(0);
    expect(g.body.slos[0].budget_remaining).toBe(1);
  });

  it('refuses cross-tenant, missing and wrong-scope tokens', async () => {
    expect((await call('GET', '/obs/slo?tenant=globex', TOK.acmeRead)).status).toBe(403);
    expect((await call('GET', '/obs/slo?tenant=acme', TOK.globexRead)).status).toBe(403);
    expect((await call('GET', '/obs/slo', TOK.acmeTimelineOnly)).status).toBe(403);
    expect((await call('GET', '/obs/slo')).status).toBe(401);
    expect((await call('GET', '/obs/golden-signals?tenant=globex', TOK.acmeRead)).status).toBe(403);
    expect((await call('POST', '/obs/incident?tenant=acme&mode=on', TOK.globexRead)).status).toBe(403);
    expect((await call('POST', '/obs/incident?mode=on', TOK.acmeRead)).status).toBe(403); // obs:read is not obs:write
  });

  it('serves golden signals per tenant', async () => {
    const q = `from=${new Date(startMs).toISOString()}&to=${new Date(startMs + 30 * MIN).toISOString()}`;
    const a = await call('GET', `/obs/golden-signals?${q}`, TOK.acmeRead);
    expect(a.status).toBe(200);
    expect(a.body.signals.length).toBeGreaterThan(10);
    expect(a.body.signals.every((s: any) => s.service === 'checkout' && s.requests === 100 && s.errors === 5)).toBe(true);
    const g = await call('GET', `/obs/golden-signals?${q}`, TOK.globexRead);
    expect(g.body.signals.every((s: any) => s.service === 'api' && s.requests === 10)).toBe(true);
  });
});

describe('incident mode', () => {
  it('POST on with a TTL, visible in GET and the sampler; ends by itself; timeline rows and webhooks', async () => {
    expect((await call('POST', '/obs/incident?mode=sideways', TOK.acmeWrite)).status).toBe(400);
    expect((await call('POST', '/obs/incident?mode=on&ttl_seconds=0', TOK.acmeWrite)).status).toBe(400);
    const on = await call('POST', '/obs/incident?mode=on&ttl_seconds=2', TOK.acmeWrite);
    expect(on.status).toBe(200);
    expect(on.body.incident.on).toBe(true);
    expect(on.body.incident.by).toBe('api:acme-oncall');
    expect(on.body.changed).toBe(true);
    expect(sampler.inIncident('acme')).toBe(true);
    expect(sampler.inIncident('globex')).toBe(false);
    expect((await call('GET', '/obs/incident', TOK.acmeRead)).body.incident.on).toBe(true);
    expect((await call('GET', '/obs/incident', TOK.globexRead)).body.incident.on).toBe(false);
    // TTL passes; the runner's timer emits incident.mode.stopped.
    const acmeTl = forTenant(store, 'acme');
    const find = async (kind: string) => (await acmeTl.listEvents({ fromUnixNano: BigInt(Date.now() - 60_000) * 1_000_000n,
      toUnixNano: BigInt(Date.now() + 60_000) * 1_000_000n, kinds: [kind], limit: 10 }));
    const deadline = Date.now() + 15_000;
    while ((await find('incident.mode.stopped')).length === 0) {
      if (Date.now() > deadline) throw new Error('incident mode did not expire');
      await new Promise((r) => setTimeout(r, 200));
    }
    const stopped = (await find('incident.mode.stopped'))[0]!;
    expect(JSON.parse(stopped.details).reason).toBe('ttl');
    expect((await find('incident.mode.started')).map((e) => JSON.parse(e.details).by)).toEqual(['api:acme-oncall']);
    expect((await call('GET', '/obs/incident', TOK.acmeRead)).body.incident.on).toBe(false);
    expect(sampler.inIncident('acme')).toBe(false);
    const hooks = () => hook.bodies.map((b) => b.body as WebhookPayload).filter((p) => p.commonLabels?.alertname === 'StellaIncidentMode');
    await hook.waitFor((b) => (b as WebhookPayload).commonLabels?.alertname === 'StellaIncidentMode' && (b as WebhookPayload).status === 'resolved', 10_000);
    expect(hooks().map((p) => p.status)).toEqual(['firing', 'resolved']);
    expect(hooks()[0]!.commonLabels.tenant).toBe('acme');
  });

  it('manual off stops it at once; CLI functions drive the same API', async () => {
    const cli = { baseUrl: api.url, token: TOK.acmeWrite };
    const r1 = await incidentSet({ ...cli, mode: 'on', ttlSeconds: 600 });
    expect(r1.exitCode).toBe(0);
    expect(r1.stdout).toMatch(/^tenant acme: incident mode on until \d{4}-/);
    const list = await sloList({ ...cli });
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toMatch(/incident mode ON until/);
    expect(list.stdout).toMatch(/checkout-availability\s+checkout\s+99\.0%/);
    const json = JSON.parse((await sloList({ ...cli, format: 'json' })).stdout);
    expect(json.slos).toHaveLength(3);
    const off = await incidentSet({ ...cli, mode: 'off' });
    expect(off.stdout).toBe('tenant acme: incident mode off\n');
    expect(sampler.inIncident('acme')).toBe(false);
    expect((await incidentSet({ ...cli, mode: 'off' })).stdout).toBe('tenant acme: incident mode off (unchanged)\n');
    expect((await incidentSet({ ...cli, mode: 'on', tenant: 'globex' })).exitCode).toBe(3);
    expect((await sloList({ baseUrl: api.url, token: 'nope' })).exitCode).toBe(3);
    expect((await incidentSet({ ...cli, mode: 'on', ttlSeconds: -5 })).exitCode).toBe(2);
    expect((await sloList({ baseUrl: 'http://127.0.0.1:1', token: 'x' })).exitCode).toBe(4);
  });
});
