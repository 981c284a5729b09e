// End to end on real Kafka and the real embedded engine: a scripted multi-service workload goes
// through the clean topics, the timeline runner and the read API; filters answer the forensic
// questions; the obs trace CLI prints the correlated view.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { startTimelineRunner, type RunningTimeline } from '../../processors/timeline/runner.ts';
import { obsTrace } from '../../processors/timeline/cli.ts';
import { startApiServer, type RunningApi } from '../../api/server.ts';
import { registerTimelineRoutes } from '../../api/timeline-routes.ts';
import { createTopics, readRecords, testKafka, uniq } from '../support/kafka.ts';
import { eventually, getJson, hexId, logsRequest, metricsRequest, nowNs, testStore, testTokens, TOKENS, tracesRequest, type LogSpec, type SpanSpec } from './support.ts';

const MS = 1_000_000n;
const topics = { spans: uniq('spans_clean'), logs: uniq('logs_clean'), metrics: uniq('metrics_clean'), timelineEvents: uniq('timeline_events'), dlq: uniq('dlq') };
let runner: RunningTimeline;
let api: RunningApi;
let producer: Producer;

const TRACEPARENT = `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01`;

async function send(topic: string, tenant: string, value: Buffer): Promise<void> {
  await producer.send({ topic, acks: -1, messages: [{ key: tenant, value, headers: { tenant, traceparent: TRACEPARENT } }] });
}

interface Step { service: string; job: string; event: string; resource: [string, string]; fail?: boolean }

/** One pipeline run: each service runs a job span and emits a decision/result event inside it. */
async function runWorkload(tenant: string, steps: Step[], t0: bigint, traceId = hexId(16)): Promise<{ traceId: string; expected: string[] }> {
  const expected: string[] = [];
  for (const [i, st] of steps.entries()) {
    const start = t0 + BigInt(i) * 20n * MS;
    const spanId = hexId(8);
    const span: SpanSpec = { traceId, spanId, name: st.job, startNs: start, endNs: start + 10n * MS, error: st.fail,
      attrs: { 'stella.job.name': st.job, 'stella.job.id': `${st.job}-${i}`, 'stella.resource.type': st.resource[0], 'stella.resource.id': st.resource[1], 'stella.project.id': 'proj-1' } };
    const log: LogSpec = { eventName: st.event, timeNs: start + 5n * MS, traceId, spanId, body: `${st.event} done`,
      attrs: { 'stella.resource.type': st.resource[0], 'stella.resource.id': st.resource[1], 'stella.project.id': 'proj-1', 'stella.actor': `svc:${st.service}` } };
    await send(topics.logs, tenant, logsRequest(tenant, st.service, [log]));
    await send(topics.spans, tenant, tracesRequest(tenant, st.service, [span]));
    expected.push('job.started', st.event, st.fail ? 'job.failed' : 'job.finished');
  }
  return { traceId, expected };
}

const chain: Step[] = [
  { service: 'source-fetcher', job: 'source.fetch', event: 'source.fetched', resource: ['source', 'git:acme/app@abc123'] },
  { service: 'sbom-service', job: 'sbom.compute', event: 'sbom.generated', resource: ['sbom', 'sbom-1'] },
  { service: 'policy-engine', job: 'policy.evaluate', event: 'policy.decision', resource: ['component', 'pkg:npm/lodash@4.17.20'] },
  { service: 'advisory-linker', job: 'advisory.link', event: 'advisory.linked', resource: ['advisory', 'GHSA-xxxx'] },
  { service: 'exporter', job: 'export', event: 'export.completed', resource: ['export', 'bundle-1'] },
];

beforeAll(async () => {
  const store = await testStore();
  await createTopics(Object.values(topics), 3);
  producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  runner = await startTimelineRunner({ kafka: testKafka('timeline'), store, topics, groupId: uniq('timeline'), writer: { maxDelayMs: 10 } });
  api = await startApiServer({ tokens: testTokens(), port: 0, register: [(r) => registerTimelineRoutes(r, { store })], ready: () => store.ping() });
});

afterAll(async () => {
  await runner?.stop();
  await api?.close();
  await producer?.disconnect();
});

describe('timeline pipeline', () => {
  it('puts a multi-service workload on the tenant timeline as one ordered chain, queryable via the API and the CLI', async () => {
    const t0 = nowNs();
    const { traceId, expected } = await runWorkload('acme', chain, t0);
    await send(topics.metrics, 'acme', metricsRequest('acme', 'sbom-service', 'sbom_queue_depth', 3, t0));
    await send(topics.logs, 'acme', Buffer.from('not protobuf at all \xff\xff'));

    const events = await eventually(async () => {
      const r = await getJson(api.url, `/timeline?trace_id=${traceId}`, TOKENS.acme);
      return r.body.events?.length === expected.length ? r.body.events : undefined;
    });
    expect(events.map((e: any) => e.kind)).toEqual(expected);
    expect(events.map((e: any) => e.ts_unix_nano)).toEqual([...events.map((e: any) => e.ts_unix_nano)].sort((a: string, b: string) => (BigInt(a) < BigInt(b) ? -1 : 1)));
    const decision = events.find((e: any) => e.kind === 'policy.decision');
    expect(decision).toMatchObject({ actor: 'svc:policy-engine', project_id: 'proj-1', resource: { type: 'component', id: 'pkg:npm/lodash@4.17.20' },
      trace_id: traceId, details: { service: 'policy-engine', body: 'policy.decision done' }, links: { trace: `/obs/trace/${traceId}` } });

    // Paging with a small limit walks the same chain without gaps or repeats.
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const r: { status: number; body: any } = await getJson(api.url, `/timeline?trace_id=${traceId}&limit=4${cursor ? `&cursor=${cursor}` : ''}`, TOKENS.acme);
      expect(r.status).toBe(200);
      paged.push(...r.body.events.map((e: any) => e.event_id));
      cursor = r.body.next_cursor;
    } while (cursor);
    expect(paged).toEqual(events.map((e: any) => e.event_id));

    const one = await getJson(api.url, `/timeline/${decision.event_id}`, TOKENS.acme);
    expect(one.status).toBe(200);
    expect(one.body.event.links).toEqual({ self: `/timeline/${decision.event_id}`, trace: `/obs/trace/${traceId}`,
      evidence: { segment: null, inclusion_proof: null, status: 'unavailable' } });

    const trace = await getJson(api.url, `/obs/trace/${traceId}`, TOKENS.acme);
    expect(trace.status).toBe(200);
    expect(trace.body.spans.map((s: any) => s.name)).toEqual(chain.map((c) => c.job));
    expect(trace.body.events.map((e: any) => e.kind)).toEqual(expected);
    const obsOnly = await getJson(api.url, `/obs/trace/${traceId}`, TOKENS.acmeObsOnly);
    expect(obsOnly.body.events).toBeNull();
    expect(obsOnly.body.events_omitted).toBe('token lacks scope timeline:read#tenant/acme');

    const table = await obsTrace({ baseUrl: api.url, token: TOKENS.acme, traceId });
    expect(table.exitCode).toBe(0);
    expect(table.stdout.split('\n')[0]).toBe(`trace ${traceId}: 5 spans, 15 events`);
    expect(table.stdout).toMatch(/policy\.decision\s+\S+\s+svc:policy-engine component:pkg:npm\/lodash@4\.17\.20/);
    const asJson = await obsTrace({ baseUrl: api.url, token: TOKENS.acme, traceId, format: 'json' });
    expect(JSON.parse(asJson.stdout).events).toHaveLength(15);
    expect((await obsTrace({ baseUrl: api.url, token: TOKENS.globex, traceId })).exitCode).toBe(1); // other tenant: nothing
    expect((await obsTrace({ baseUrl: api.url, token: 'wrong', traceId })).exitCode).toBe(3);

    // Every event was published for the evidence processor, as JSON keyed by tenant.
    const published = await readRecords([topics.timelineEvents], 15, 20_000);
    const mine = published.map((r) => JSON.parse(r.value.toString())).filter((m) => m.trace_id === traceId);
    expect(new Set(mine.map((m) => m.event_id))).toEqual(new Set(events.map((e: any) => e.event_id)));
    expect(published.every((r) => r.key === 'acme' && r.headers.tenant === 'acme' && r.headers.traceparent === TRACEPARENT)).toBe(true);

    // Metrics reached the exporter tables; the undecodable record went to the DLQ and did not stall the stream.
    const store = await testStore();
    await eventually(async () => (Number((await store.selectRows<{ n: string }>(
      "SELECT count() AS n FROM otel_metrics_gauge WHERE TenantId = 'acme' AND MetricName = 'sbom_queue_depth'"))[0]!.n) === 1 ? true : undefined));
    const dlq = await readRecords([topics.dlq], 1, 20_000);
    expect(dlq[0]!.headers['dlq-reason']).toBe('timeline: undecodable record');
  });

  it('answers: all policy changes; all job failures that touched component X; everything for a trace', async () => {
    const t0 = nowNs();
    const X = `pkg:npm/left-pad@${hexId(2)}`;
    const Y = `pkg:npm/right-pad@${hexId(2)}`;
    const changes = [0, 1, 2].map((i) => ({ eventName: 'policy.changed', timeNs: t0 + BigInt(i) * MS,
      attrs: { 'stella.actor': `user:${['alice', 'bob', 'carol'][i]}`, 'stella.resource.type': 'policy', 'stella.resource.id': `pol-${i}` } }));
    await send(topics.logs, 'acme', logsRequest('acme', 'policy-admin', [...changes, { eventName: 'policy.viewed', timeNs: t0 + 5n * MS }]));
    await send(topics.logs, 'globex', logsRequest('globex', 'policy-admin', [{ eventName: 'policy.changed', timeNs: t0 + MS }]));
    const trace = hexId(16);
    const job = (i: number, component: string, fail: boolean): SpanSpec => ({ traceId: i < 3 ? trace : hexId(16), spanId: hexId(8), name: 'scan',
      startNs: t0 + BigInt(10 + 2 * i) * MS, endNs: t0 + BigInt(11 + 2 * i) * MS, error: fail,
      attrs: { 'stella.job.name': 'advisory.link', 'stella.resource.type': 'component', 'stella.resource.id': component } });
    await send(topics.spans, 'acme', tracesRequest('acme', 'advisory-linker', [job(0, X, true), job(1, X, false), job(2, Y, true), job(3, X, true)]));
    await send(topics.spans, 'globex', tracesRequest('globex', 'advisory-linker', [job(4, X, true)]));
    const win = `from=${t0 - MS}&to=${t0 + 100n * MS}`;

    const failures = await eventually(async () => {
      const r = await getJson(api.url, `/timeline?${win}&kind=job.failed&resource_type=component&resource_id=${encodeURIComponent(X)}`, TOKENS.acme);
      return r.body.events?.length === 2 ? r.body.events : undefined;
    });
    expect(failures.every((e: any) => e.kind === 'job.failed' && e.resource.id === X)).toBe(true);
    const changesSeen = await eventually(async () => {
      const r = await getJson(api.url, `/timeline?${win}&kind=policy.changed`, TOKENS.acme);
      return r.body.events?.length === 3 ? r.body.events : undefined;
    });
    expect(changesSeen.map((e: any) => e.actor)).toEqual(['user:alice', 'user:bob', 'user:carol']);
    const family = await getJson(api.url, `/timeline?${win}&kind=policy.*`, TOKENS.acme);
    expect(family.body.events.map((e: any) => e.kind)).toEqual(['policy.changed', 'policy.changed', 'policy.changed', 'policy.viewed']);
    const forTrace = await getJson(api.url, `/timeline?${win}&trace_id=${trace}`, TOKENS.acme);
    expect(forTrace.body.events.map((e: any) => `${e.kind}:${e.resource.id}`)).toEqual(
      [`job.started:${X}`, `job.failed:${X}`, `job.started:${X}`, `job.finished:${X}`, `job.started:${Y}`, `job.failed:${Y}`]);
    // The other tenant's equivalents exist but never show up for acme, and vice versa.
    const globex = await eventually(async () => {
      const r = await getJson(api.url, `/timeline?${win}&kind=job.failed`, TOKENS.globex);
      return r.body.events?.length === 1 ? r.body.events : undefined;
    });
    expect(globex[0].resource.id).toBe(X);
  });
});
