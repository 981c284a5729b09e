// Live golden signals (issue 17 item 3): spans of the current minute reach GET /obs/top and
// `stella obs top --once` within seconds, marked partial, through a real SLO runner (Kafka + chdb)
// writing its open minutes every `goldenLiveMs`; once the minute closes its closed row replaces the
// partial one in ClickHouse. Without live writes the minute would appear only ~3 minutes after it ended.
import { Partitioners } from 'kafkajs';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { registerObsRoutes } from '../../api/obs-routes.ts';
import { startApiServer, type RunningApi } from '../../api/server.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { fetchTop, type TopBody } from '../../cli/obs-top.ts';
import { goldenSignalsFor } from '../../processors/slo/outputs.ts';
import { startSloRunner, type RunningSloRunner } from '../../processors/slo/runner.ts';
import { withDefaultCatalog } from '../../processors/slo/catalog.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import type { Store } from '../../lib/store/index.ts';
import { MIN } from './helpers.ts';
import { runStellaCli, type StellaResult } from '../support/stella.ts';
import { minuteRequest, produceTenant, sloTestStore } from './support.ts';

const TOKEN = `live-top-${randomBytes(8).toString('hex')}`;
const tenant = `live${randomBytes(3).toString('hex')}`;
const tokens = new TokenRegistry([{ id: tenant, tokens: [{ sha256: sha256Hex(TOKEN), scopes: ['obs:read'] }] }]);
let store: Store;
let runner: RunningSloRunner;
let api: RunningApi;
let spansTopic = '';
let firstTenantPartition = -1;

beforeAll(async () => {
  store = await sloTestStore();
  const topics = { spans: uniq('live_spans'), metrics: uniq('live_metrics'), sloEvents: uniq('live_slo_events'), timelineEvents: uniq('live_timeline') };
  spansTopic = topics.spans;
  await createTopics(Object.values(topics), 2);
  runner = await startSloRunner({ kafka: testKafka('slo-live'), config: withDefaultCatalog({ slos: [] }), store, topics, groupId: uniq('slo-live'),
    goldenLiveMs: 300, idleTickMs: 60_000 });
  api = await startApiServer({ tokens, port: 0, register: [(r) => registerObsRoutes(r, { store })] });
}, 120_000);

afterAll(async () => {
  await api?.close();
  await runner?.stop();
});

function stellaTop(): Promise<StellaResult> {
  return runStellaCli(['obs', 'top', '--once'], { ...process.env as Record<string, string>, STELLA_LOG_LEVEL: 'silent', STELLA_API_URL: api.url, STELLA_TOKEN: TOKEN });
}

it('spans of the current minute show in obs top within seconds, marked partial', async () => {
  // 40 server spans (4 failing) spread over the current minute.
  const minuteStart = Math.floor(Date.now() / MIN) * MIN;
  const sent = Date.now();
  firstTenantPartition = (await produceTenant(spansTopic, tenant, [minuteRequest({ tenant, service: 'checkout', spanName: 'POST /checkout', startMs: minuteStart, minute: 0, perMinute: 40, errors: 4 })])).partition;
  let top: TopBody | undefined;
  while (!top) {
    const r = await fetchTop({ baseUrl: api.url, token: TOKEN });
    if ('body' in r && r.body.services.length) top = r.body;
    else if (Date.now() - sent > 15_000) throw new Error('no golden signals within 15 s');
    else await new Promise((res) => setTimeout(res, 200));
  }
  const seconds = (Date.now() - sent) / 1000;
  console.log(`golden signals of the current minute visible after ${seconds.toFixed(2)} s`);
  expect(seconds).toBeLessThan(10);
  const svc = top.services[0]!;
  expect(svc.service).toBe('checkout');
  expect(svc.latest_minute_partial).toBe(true);
  expect(svc.latest_minute).toBe(new Date(minuteStart).toISOString().replace('.000Z', 'Z'));
  expect(svc.requests).toBe(40);
  expect(svc.errors).toBe(4);
  const cli = await stellaTop();
  expect(cli.code).toBe(0);
  expect(cli.stdout).toMatch(/checkout\s+40\s/);
  expect(cli.stdout).toMatch(/^checkout\s+40\s.* \d\d:\d\d partial$/m);
  expect(cli.stdout).toContain('(partial: that minute is still open');
}, 60_000);

it("a minute's closed row replaces its partial rows once the watermark passes it", async () => {
  // A quiet tenant of its own: minute M live (partial), then a span 4 minutes later closes M.
  // Watermarks are per partition: on the first tenant's partition (whose spans are of the current
  // minute) M would already be complete and never live. So t2 is keyed onto the other partition.
  const partitionOf = Partitioners.DefaultPartitioner();
  const metadata = [0, 1].map((partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 0, replicas: [0], isr: [0] }));
  const partition = (key: string) => partitionOf({ topic: spansTopic, partitionMetadata: metadata, message: { key, value: null } });
  let t2 = `${tenant}b`;
  for (let i = 0; partition(t2) === partition(tenant); i++) t2 = `${tenant}b${i}`;
  const m = Math.floor(Date.now() / MIN) * MIN - 10 * MIN;
  const produced = await produceTenant(spansTopic, t2, [minuteRequest({ tenant: t2, service: 'api', spanName: 'GET /x', startMs: m, minute: 0, perMinute: 30, errors: 3 })]);
  expect(produced.partition, 'the quiet tenant shares no partition with the current-minute tenant').toBe(partition(t2));
  expect(produced.partition).not.toBe(firstTenantPartition);
  const read = () => goldenSignalsFor(store, t2, { fromMs: m, toMs: m + 10 * MIN });
  const poll = async (ok: (rows: Awaited<ReturnType<typeof read>>) => boolean) => {
    const end = Date.now() + 20_000;
    for (;;) {
      const rows = await read();
      if (ok(rows)) return rows;
      if (Date.now() > end) throw new Error(`timed out: ${JSON.stringify(rows)}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  };
  const live = await poll((rows) => rows.length > 0);
  expect(live).toEqual([expect.objectContaining({ minute: new Date(m).toISOString().replace('.000Z', 'Z'), requests: 30, errors: 3, partial: true })]);
  await produceTenant(spansTopic, t2, [minuteRequest({ tenant: t2, service: 'api', spanName: 'GET /x', startMs: m, minute: 4, perMinute: 1, errors: 0 })]);
  const closed = await poll((rows) => rows.some((r) => r.minute === live[0]!.minute && !r.partial));
  const first = closed.filter((r) => r.minute === live[0]!.minute);
  expect(first).toEqual([expect.objectContaining({ requests: 30, errors: 3, partial: false })]);
}, 60_000);
