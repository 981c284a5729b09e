// The SLO runner on a real Kafka broker, embedded ClickHouse (chdb) and a real Alertmanager:
// a synthetic error burst through the clean-spans topic fires the page alert (Alertmanager →
// its webhook, plus a direct webhook), emits slo_events and timeline rows, switches incident mode
// on; a crash after a checkpoint but before the offset commit, and a restart mid-burn, neither
// forget the burning window nor fire twice; golden signals are per tenant and replay-idempotent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forTenant, type Store } from '../../lib/store/index.ts';
import { parseSloConfig } from '../../processors/slo/config.ts';
import type { WebhookPayload } from '../../processors/slo/alert-payloads.ts';
import { goldenSignalsFor } from '../../processors/slo/outputs.ts';
import { registry } from '../../lib/metrics.ts';
import { startSloRunner, type RunningSloRunner } from '../../processors/slo/runner.ts';
import type { StageRecord } from '../../lib/kafka/stage.ts';
import { HeadSampler } from '../../receiver/sampling.ts';
import { createTopics, readRecords, testKafka, uniq } from '../support/kafka.ts';
import { endOfMinute, MIN, startAlertmanager, startReceiver, type Receiver, type RunningAlertmanager } from './helpers.ts';
import { minuteRequest, produceTenant, sloTestStore } from './support.ts';

const config = parseSloConfig(`
slos:
  - name: checkout-availability
    tenant: acme
    service: checkout
    objective: 0.999
    minEvents: 10
    runbook: https://runbooks.example/slo/checkout
    sli: { type: availability, spans: { name: "POST /checkout", kind: server } }
  - name: api-availability
    tenant: globex
    service: api
    objective: 0.99
    sli: { type: availability, spans: { name: "GET /v1/items", kind: server } }
`);

let store: Store;
let am: RunningAlertmanager;
let amHook: Receiver;
let direct: Receiver;
const topics = { spans: uniq('slo_spans_clean'), metrics: uniq('slo_metrics_clean'), sloEvents: uniq('slo_events'), timelineEvents: uniq('slo_timeline') };
const groupId = uniq('stella-slo-test');
const startMs = Math.floor((Date.now() - 150 * MIN) / MIN) * MIN;
const acmeMinute = (m: number) => minuteRequest({ tenant: 'acme', service: 'checkout', spanName: 'POST /checkout', startMs, minute: m,
  perMinute: 100, errors: m >= 90 && m < 110 ? 50 : 0 });
const globexMinute = (m: number) => minuteRequest({ tenant: 'globex', service: 'api', spanName: 'GET /v1/items', startMs, minute: m,
  perMinute: 10, errors: 0, durationMs: 200 });
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

beforeAll(async () => {
  store = await sloTestStore();
  await createTopics(Object.values(topics), 3);
  amHook = await startReceiver();
  direct = await startReceiver();
  am = await startAlertmanager(amHook.url);
});
afterAll(async () => {
  await am?.stop();
  await amHook?.close();
  await direct?.close();
});

/** beforeCommit hook that records the last handled offset per partition and can simulate a crash. */
function commitWatch() {
  const handled = new Map<number, bigint>();
  let crashAt: { partition: number; offset: bigint } | undefined;
  let crashes = 0;
  const waiters: (() => void)[] = [];
  return {
    handled, get crashes() { return crashes; },
    crashOnce(partition: number, offset: bigint) { crashAt = { partition, offset }; },
    hook: async (records: StageRecord[]) => {
      const last = records[records.length - 1]!;
      const off = BigInt(last.offset);
      handled.set(last.partition, off > (handled.get(last.partition) ?? -1n) ? off : handled.get(last.partition)!);
      for (const w of waiters.splice(0)) w();
      // Simulated crash after the checkpoint, before the commit: every retry of this batch fails too,
      // until the runner is stopped (so the group's committed offset stays behind the checkpoint).
      if (crashAt && last.partition === crashAt.partition && off >= crashAt.offset) { crashes++; throw new Error('simulated crash before commit'); }
    },
    async until(partition: number, offset: bigint, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while ((handled.get(partition) ?? -1n) < offset) {
        if (Date.now() > deadline) throw new Error(`partition ${partition} not handled up to ${offset} (at ${handled.get(partition)})`);
        await new Promise<void>((r) => { waiters.push(r); setTimeout(r, 200); });
      }
    },
  };
}

const start = (sampler: HeadSampler, hook: (r: StageRecord[]) => Promise<void>, over: Partial<Parameters<typeof startSloRunner>[0]> = {}) =>
  startSloRunner({ kafka: testKafka('slo-runner'), config, store, topics, groupId, alertmanagerUrl: am.url,
    webhooks: [{ name: 'ops', url: direct.url }], externalURL: 'http://stella.test', idleTickMs: 3_600_000,
    sampler, beforeCommit: hook, sender: { baseDelayMs: 50 }, ...over });

async function waitCommitted(group: string, topic: string, partition: number, offset: bigint): Promise<void> {
  const admin = testKafka('slo-test-admin').admin();
  await admin.connect();
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      const o = t?.partitions.find((x) => x.partition === partition)?.offset;
      if (o !== undefined && BigInt(o) >= offset) return;
      if (Date.now() > deadline) throw new Error(`offset ${offset} of ${topic}/${partition} not committed (at ${o})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.disconnect();
  }
}

const isPage = (a: { labels: Record<string, string> }) => a.labels.alertname === 'SloErrorBudgetBurn' && a.labels.severity === 'page' && a.labels.windows === '1h/5m';

describe('SLO runner', () => {
  it('fires once across a crash and a restart mid-burn, resolves, writes slo_events, timeline rows and golden signals', async () => {
    const sampler = new HeadSampler();
    // Phase 1: minutes 0..99 (the burst starts at minute 90; the 1h/5m page crosses at the end of 91).
    const acme1 = await produceTenant(topics.spans, 'acme', range(0, 100).map(acmeMinute));
    const globex1 = await produceTenant(topics.spans, 'globex', range(0, 100).map(globexMinute));
    const watchA = commitWatch();
    watchA.crashOnce(acme1.partition, acme1.lastOffset);
    // Checkpoint after every batch: the crash leaves the checkpoint AHEAD of the committed offset.
    let runner: RunningSloRunner = await start(sampler, watchA.hook, { checkpointIntervalMs: 0 });
    try {
      await watchA.until(acme1.partition, acme1.lastOffset);
      await watchA.until(globex1.partition, globex1.lastOffset);
      // Alertmanager got the page and routed it to its webhook.
      const got = await amHook.waitFor((b) => (b as WebhookPayload).alerts?.some((a) => isPage(a) && a.status === 'firing'), 20_000);
      const alert = (got.body as WebhookPayload).alerts.find(isPage)!;
      expect(new Date(alert.startsAt).getTime()).toBe(endOfMinute(startMs, 91));
      expect(alert.labels).toMatchObject({ tenant: 'acme', slo: 'checkout-availability', service: 'checkout' });
      // Page burn → incident mode on, reported to the sampler.
      expect(sampler.inIncident('acme')).toBe(true);
      expect(sampler.inIncident('globex')).toBe(false);
      const s = await runner.summaries('acme');
      expect(s.map((x) => x.slo)).toEqual(['checkout-availability']);
      expect(s[0]!.firing).toContain('page:1h/5m');
      expect(watchA.crashes).toBeGreaterThan(0);
    } finally {
      await runner.stop(); // the crashed batch was never committed
    }

    // Phase 2: the rest of the burst and the recovery, consumed by a fresh runner (same group).
    const acme2 = await produceTenant(topics.spans, 'acme', range(100, 150).map(acmeMinute));
    const globex2 = await produceTenant(topics.spans, 'globex', range(100, 150).map(globexMinute));
    const watchB = commitWatch();
    const samplerB = new HeadSampler();
    runner = await start(samplerB, watchB.hook);
    try {
      await watchB.until(acme2.partition, acme2.lastOffset);
      await watchB.until(globex2.partition, globex2.lastOffset);
      const resolved = await amHook.waitFor((b) => (b as WebhookPayload).alerts?.some((a) => isPage(a) && a.status === 'resolved'), 20_000);
      expect(resolved).toBeDefined();
      const s = await runner.summaries('acme');
      expect(s[0]!.firing).not.toContain('page:1h/5m');
      expect(s[0]!.budgetRemaining).toBeLessThan(0); // 1000 bad of 15000 against a 0.1% budget
      // The auto incident mode (page burn at minute 91, TTL 2 h of event time) came back with the state.
      expect(samplerB.inIncident('acme')).toBe(true);
      expect((await runner.incidentStatus('acme')).reason).toBe('slo:checkout-availability 1h/5m');
    } finally {
      await runner.stop();
    }

    // slo_events: every alert (windows) started at most once and the page exactly once, then resolved once.
    const events = (await readRecords([topics.sloEvents], 1000, 5000)).map((r) => ({ key: r.key, headers: r.headers, v: JSON.parse(r.value.toString()) }));
    const byWindows = new Map<string, string[]>();
    for (const e of events) byWindows.set(`${e.v.slo}|${e.v.windows}`, [...(byWindows.get(`${e.v.slo}|${e.v.windows}`) ?? []), e.v.kind]);
    expect(byWindows.get('checkout-availability|1h/5m')).toEqual(['slo.breach.started', 'slo.breach.resolved']);
    for (const [k, kinds] of byWindows) expect(kinds.filter((x) => x === 'slo.breach.started'), k).toHaveLength(1);
    expect(events.every((e) => e.key === 'acme' && e.headers.tenant === 'acme')).toBe(true);
    const pageStart = events.find((e) => e.v.windows === '1h/5m' && e.v.kind === 'slo.breach.started')!;
    expect(pageStart.v.starts_at_ms).toBe(endOfMinute(startMs, 91));
    expect(pageStart.v.at_ms).toBe(endOfMinute(startMs, 91));
    const pageEnd = events.find((e) => e.v.windows === '1h/5m' && e.v.kind === 'slo.breach.resolved')!;
    expect(pageEnd.v.at_ms).toBe(endOfMinute(startMs, 114));

    // The direct webhook got transitions only: one firing and one resolved page, across both runners.
    await new Promise((r) => setTimeout(r, 500));
    const directPages = direct.bodies.map((b) => b.body as WebhookPayload).filter((p) => p.alerts?.some(isPage));
    expect(directPages.map((p) => p.status)).toEqual(['firing', 'resolved']);
    // Incident-mode webhooks (Alertmanager format) for the auto switch-on.
    expect(direct.bodies.some((b) => (b.body as WebhookPayload).commonLabels?.alertname === 'StellaIncidentMode')).toBe(true);

    // Timeline rows (deduplicated by event id) and the timeline_events topic for the evidence processor.
    const acmeTl = forTenant(store, 'acme');
    const tl = await acmeTl.listEvents({ fromUnixNano: BigInt(startMs) * 1_000_000n, toUnixNano: BigInt(Date.now() + 3_600_000) * 1_000_000n,
      kindPrefixes: ['slo.', 'incident.'], limit: 1000 });
    const pageRows = tl.filter((e) => e.kind.startsWith('slo.breach') && JSON.parse(e.details).windows === '1h/5m');
    expect(pageRows.map((e) => e.kind)).toEqual(['slo.breach.started', 'slo.breach.resolved']);
    expect(pageStart.headers['event-id']).toBe(pageRows[0]!.event_id); // consumers of slo_events dedup replays by it
    expect(tl.filter((e) => e.kind === 'incident.mode.started')).toHaveLength(1);
    expect(tl.filter((e) => e.kind === 'slo.breach.started')).toHaveLength(byWindows.size);
    expect((await forTenant(store, 'globex').listEvents({ fromUnixNano: 0n, toUnixNano: BigInt(Date.now() + 3_600_000) * 1_000_000n, kindPrefixes: ['slo.'], limit: 10 }))).toHaveLength(0);
    const topicEvents = (await readRecords([topics.timelineEvents], 1000, 5000)).map((r) => JSON.parse(r.value.toString()));
    expect(new Set(topicEvents.map((e) => e.event_id))).toEqual(new Set(tl.map((e) => e.event_id)));

    // Golden signals: one row per tenant, service and minute; acme's burst minutes at 50% errors.
    const golden = await goldenSignalsFor(store, 'acme', { fromMs: startMs, toMs: startMs + 150 * MIN });
    expect(golden.length).toBeGreaterThanOrEqual(145);
    expect(new Set(golden.map((g) => g.minute)).size).toBe(golden.length);
    expect(golden.every((g) => g.service === 'checkout' && g.requests === 100)).toBe(true);
    const burst = golden.filter((g) => g.errors > 0);
    expect(burst).toHaveLength(20);
    expect(burst.every((g) => g.error_rate === 0.5)).toBe(true);
    expect(burst[0]!.minute).toBe(new Date(startMs + 90 * MIN).toISOString().replace('.000', ''));
    const globexGolden = await goldenSignalsFor(store, 'globex', { fromMs: startMs, toMs: startMs + 150 * MIN });
    expect(globexGolden.every((g) => g.service === 'api' && g.requests === 10 && g.errors === 0)).toBe(true);
    expect(globexGolden[0]!.p50_ms).toBeGreaterThan(190);
    expect(globexGolden[0]!.p50_ms).toBeLessThan(210);

    // Replay: a second group re-reads everything from offset 0 into the same tables: golden signals
    // and timeline rows stay exactly as they are.
    const watchC = commitWatch();
    const replayTopics = { ...topics, sloEvents: uniq('slo_events_replay'), timelineEvents: uniq('slo_timeline_replay') };
    await createTopics([replayTopics.sloEvents, replayTopics.timelineEvents], 3);
    const replay = await startSloRunner({ kafka: testKafka('slo-replay'), config, store, groupId: uniq('stella-slo-replay'), idleTickMs: 3_600_000,
      topics: replayTopics, sampler: new HeadSampler(), beforeCommit: watchC.hook });
    try {
      await watchC.until(acme2.partition, acme2.lastOffset);
      await watchC.until(globex2.partition, globex2.lastOffset);
    } finally {
      await replay.stop();
    }
    expect(await goldenSignalsFor(store, 'acme', { fromMs: startMs, toMs: startMs + 150 * MIN })).toEqual(golden);
    expect(await goldenSignalsFor(store, 'globex', { fromMs: startMs, toMs: startMs + 150 * MIN })).toEqual(globexGolden);
    const tl2 = await acmeTl.listEvents({ fromUnixNano: BigInt(startMs) * 1_000_000n, toUnixNano: BigInt(Date.now() + 3_600_000) * 1_000_000n,
      kindPrefixes: ['slo.', 'incident.'], limit: 1000 });
    expect(tl2.map((e) => e.event_id)).toEqual(tl.map((e) => e.event_id));
  }, 240_000);

  it('with throttled checkpoints, a crash leaves the commit ahead of the checkpoint: the restart rewinds, nothing is lost or fired twice', async () => {
    const t2 = { spans: uniq('slo2_spans'), metrics: uniq('slo2_metrics'), sloEvents: uniq('slo2_events'), timelineEvents: uniq('slo2_tl') };
    await createTopics(Object.values(t2), 3);
    const hook2 = await startReceiver();
    const group2 = uniq('stella-slo-rewind');
    const rewinds = async () => ((await registry.getSingleMetric('stella_slo_rewinds_total')?.get())?.values ?? []).reduce((a, v) => a + v.value, 0);
    const tenant = 'acme';
    const run = (hook: (r: StageRecord[]) => Promise<void>) => startSloRunner({ kafka: testKafka('slo-rewind'), config, store, topics: t2, groupId: group2,
      webhooks: [{ name: 'ops', url: hook2.url }], idleTickMs: 3_600_000, sampler: new HeadSampler(), beforeCommit: hook, checkpointIntervalMs: 3_600_000 });
    try {
      // Shifted start so the golden rows of this test do not mix with the first one's.
      const s2 = startMs - 200 * MIN;
      const minute = (m: number) => minuteRequest({ tenant, service: 'checkout', spanName: 'POST /checkout', startMs: s2, minute: m, perMinute: 100,
        errors: m >= 90 && m < 110 ? 50 : 0 });
      const p0 = await produceTenant(t2.spans, tenant, range(0, 96).map(minute));
      const wA = commitWatch();
      const a = await run(wA.hook);
      await wA.until(p0.partition, p0.lastOffset);
      // Minutes 96..99: no transitions, so no checkpoint; their offsets are committed all the same.
      const p1 = await produceTenant(t2.spans, tenant, range(96, 100).map(minute));
      await wA.until(p1.partition, p1.lastOffset);
      await waitCommitted(group2, t2.spans, p1.partition, p1.lastOffset + 1n);
      await a.stop({ checkpoint: false }); // crash: offsets committed up to minute 99, last checkpoint at the last transition
      const before = await rewinds();
      const p2 = await produceTenant(t2.spans, tenant, range(100, 150).map(minute));
      const wB = commitWatch();
      const b = await run(wB.hook);
      try {
        await wB.until(p2.partition, p2.lastOffset);
      } finally {
        await b.stop();
      }
      const events = (await readRecords([t2.sloEvents], 1000, 5000)).map((r) => JSON.parse(r.value.toString()));
      const page = events.filter((e) => e.windows === '1h/5m').map((e) => e.kind);
      expect(page).toEqual(['slo.breach.started', 'slo.breach.resolved']);
      const started = events.filter((e) => e.kind === 'slo.breach.started').map((e) => e.windows);
      expect(new Set(started).size).toBe(started.length);
      await new Promise((r) => setTimeout(r, 300));
      const directPages = hook2.bodies.map((x) => x.body as WebhookPayload).filter((p) => p.alerts?.some(isPage)).map((p) => p.status);
      expect(directPages).toEqual(['firing', 'resolved']);
      // Every minute counted exactly once: nothing lost to the rewind, nothing doubled by the replay.
      const golden = await goldenSignalsFor(store, tenant, { fromMs: s2, toMs: s2 + 150 * MIN });
      expect(golden.length).toBeGreaterThanOrEqual(145);
      expect(golden.map((g) => g.requests)).toEqual(golden.map(() => 100));
      expect(golden.filter((g) => g.errors === 50)).toHaveLength(20);
      const minutes = golden.map((g) => (Date.parse(g.minute) - s2) / MIN);
      expect(minutes).toEqual(range(0, minutes.length));
      expect(await rewinds()).toBeGreaterThan(before);
    } finally {
      await hook2.close();
    }
  }, 180_000);

  it('an idle partition keeps being evaluated: a burst that stops mid-way resolves without further traffic', async () => {
    const t3 = { spans: uniq('slo3_spans'), metrics: uniq('slo3_metrics'), sloEvents: uniq('slo3_events'), timelineEvents: uniq('slo3_tl') };
    await createTopics(Object.values(t3), 3);
    let clock = Date.now();
    const s3 = startMs - 400 * MIN;
    const p = await produceTenant(t3.spans, 'acme', range(0, 100).map((m) => minuteRequest({ tenant: 'acme', service: 'checkout', spanName: 'POST /checkout',
      startMs: s3, minute: m, perMinute: 100, errors: m >= 90 ? 50 : 0 })));
    const w = commitWatch();
    let gate: Promise<void> | undefined;
    let entered: (() => void) | undefined;
    const r = await startSloRunner({ kafka: testKafka('slo-idle'), config, store, topics: t3, groupId: uniq('stella-slo-idle'), sampler: new HeadSampler(),
      idleTickMs: 3_600_000, idleAfterMs: 60_000, lagMs: 0, now: () => clock,
      beforeCommit: async (recs) => { await w.hook(recs); if (gate) { entered?.(); await gate; } } });
    const burst = (m: number) => minuteRequest({ tenant: 'acme', service: 'checkout', spanName: 'POST /checkout', startMs: s3, minute: m, perMinute: 100, errors: 50 });
    try {
      await w.until(p.partition, p.lastOffset);
      expect((await r.summaries('acme'))[0]!.firing).toContain('page:1h/5m');
      await r.idleTick(); // data arrived just now: not idle yet
      expect((await r.summaries('acme'))[0]!.firing).toContain('page:1h/5m');

      // A partition that only looks idle because its records wait (a batch is slow; more are queued
      // behind it) must not be evaluated at the wall clock: that would make its backlog late.
      let open!: () => void;
      gate = new Promise<void>((res) => (open = res));
      const inBatch = new Promise<void>((res) => (entered = res));
      const q1 = await produceTenant(t3.spans, 'acme', [burst(100)]);
      await inBatch; // minute 100 is applied; its commit waits
      const q2 = await produceTenant(t3.spans, 'acme', [burst(101)]);
      clock += 61_000;
      const tick = r.idleTick();
      await new Promise((res) => setTimeout(res, 300));
      gate = undefined;
      open();
      await tick;
      await w.until(q2.partition, q2.lastOffset);
      expect(q1.lastOffset + 1n).toBe(q2.lastOffset);
      expect((await r.summaries('acme'))[0]!.firing).toContain('page:1h/5m');

      clock += 61_000;
      await r.idleTick(); // now idle for real: evaluated minute by minute up to the wall clock
      expect((await r.summaries('acme'))[0]!.firing).not.toContain('page:1h/5m');
    } finally {
      await r.stop();
    }
    const events = (await readRecords([t3.sloEvents], 1000, 5000)).map((x) => JSON.parse(x.value.toString()));
    const page = events.filter((e) => e.windows === '1h/5m');
    expect(page.map((e) => e.kind)).toEqual(['slo.breach.started', 'slo.breach.resolved']);
    // The last data minute is 101; the 5m window (minutes 101..106] is empty at the end of minute 106.
    expect(page[1].at_ms).toBe(endOfMinute(s3, 106));
  }, 120_000);
});
