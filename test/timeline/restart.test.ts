// Kill and restart the timeline processor mid-stream: the first instance stores part of the
// stream, then "crashes" on every later batch (its output is written, its offsets are never
// committed) and is stopped; a second instance in the same group takes over and replays from the
// last commit. Visible result: every event exactly once, none missing.
import { afterAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { decodeLogs } from '../../lib/otlp/proto.ts';
import { forTenant } from '../../lib/store/index.ts';
import { eventsFromLogs } from '../../processors/timeline/events.ts';
import { startTimelineRunner, type RunningTimeline } from '../../processors/timeline/runner.ts';
import { createTopics, readRecords, testKafka, uniq } from '../support/kafka.ts';
import { eventually, hexId, logsRequest, nowNs, testStore } from './support.ts';

const topics = { spans: uniq('spans_clean'), logs: uniq('logs_clean'), metrics: uniq('metrics_clean'), timelineEvents: uniq('timeline_events'), dlq: uniq('dlq') };
const tenants = ['acme', 'globex', 'initech'];
const running: RunningTimeline[] = [];
let producer: Producer | undefined;

afterAll(async () => {
  for (const r of running) await r.stop().catch(() => {});
  await producer?.disconnect();
});

describe('timeline restart', () => {
  it('shows no duplicates and no gaps after a crash between store and commit', async () => {
    const store = await testStore();
    await createTopics(Object.values(topics), 3);
    producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const groupId = uniq('timeline-restart');
    const t0 = nowNs();
    const run = hexId(4);
    const expected = new Map<string, Set<string>>(tenants.map((t) => [t, new Set()]));
    let seq = 0;
    const produce = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const tenant = tenants[seq % tenants.length]!;
        const buf = logsRequest(tenant, 'worker', Array.from({ length: 5 }, (_, k) => ({ eventName: `step.${k}`, timeNs: t0 + BigInt(seq * 10 + k) * 1000n,
          attrs: { 'stella.resource.type': 'run', 'stella.resource.id': run } })));
        for (const e of eventsFromLogs(decodeLogs(buf), tenant, { topic: topics.logs, partition: 0, offset: '0' })) expected.get(tenant)!.add(e.event_id);
        await producer!.send({ topic: topics.logs, acks: -1, messages: [{ key: tenant, value: buf, headers: { tenant } }] });
        seq++;
      }
    };
    const visible = async (tenant: string): Promise<string[]> => {
      const ids: string[] = [];
      let after: { tsUnixNano: bigint; eventId: string } | undefined;
      for (;;) {
        const page = await forTenant(store, tenant).listEvents({ fromUnixNano: t0 - 1n, toUnixNano: t0 + 10_000_000_000n, resourceId: run, limit: 1000, after });
        ids.push(...page.map((e) => e.event_id));
        if (page.length < 1000) return ids;
        after = { tsUnixNano: BigInt(page[page.length - 1]!.ts_unix_nano), eventId: page[page.length - 1]!.event_id };
      }
    };

    // Instance A: commits its first batch of logs, then crashes after storing every later one. Only
    // batches of the logs topic count: the runner also reads back its own published events, and a
    // "crash" on those alone would leave nothing to replay (seen under load).
    let okBatches = 0;
    let crashedAfterStore = 0;
    const a = await startTimelineRunner({ kafka: testKafka('timeline-a'), store, topics, groupId, writer: { maxDelayMs: 5 },
      beforeCommit: async (records) => {
        if (!records.some((r) => r.topic === topics.logs)) return;
        if (okBatches < 1) { okBatches++; return; }
        crashedAfterStore++;
        throw new Error('simulated crash before commit');
      } });
    running.push(a);
    await produce(6);
    await eventually(async () => (okBatches === 1 ? true : undefined));
    await produce(6); // a later batch of logs: stored and published, never committed
    await eventually(async () => (crashedAfterStore > 0 ? true : undefined));
    await produce(12); // arrives while A is failing to commit
    await new Promise((r) => setTimeout(r, 300));
    await a.stop();

    // Instance B, same group: replays everything after A's last commit.
    const b = await startTimelineRunner({ kafka: testKafka('timeline-b'), store, topics, groupId, writer: { maxDelayMs: 5 } });
    running.push(b);
    await produce(12);
    for (const tenant of tenants) {
      const want = expected.get(tenant)!;
      const ids = await eventually(async () => { const v = await visible(tenant); return v.length >= want.size ? v : undefined; });
      expect(ids.length).toBe(want.size); // no duplicates visible
      expect(new Set(ids)).toEqual(want); // no gaps
    }
    expect(crashedAfterStore).toBeGreaterThan(0);
    // The evidence topic got every event at least once (redelivery may repeat some; consumers dedup by event_id).
    const total = [...expected.values()].reduce((n, s) => n + s.size, 0);
    const admin = testKafka().admin();
    await admin.connect();
    const unique = await eventually(async () => {
      const hw = (await admin.fetchTopicOffsets(topics.timelineEvents)).reduce((n, p) => n + Number(p.high), 0);
      const published = await readRecords([topics.timelineEvents], hw, 20_000);
      const ids = new Set(published.map((r) => JSON.parse(r.value.toString()).event_id as string));
      return ids.size === total ? { ids, hw } : undefined;
    }, 40_000, 500);
    await admin.disconnect();
    expect([...unique.ids].every((id) => [...expected.values()].some((s) => s.has(id)))).toBe(true);
    // The replay really happened: the crashed batches were published by A and again by B.
    expect(unique.hw).toBeGreaterThan(total);
  });
});
