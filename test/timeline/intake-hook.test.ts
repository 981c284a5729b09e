// The timeline processor's intake hook (processors/timeline/intake-hook.ts) with the real broker and
// chdb: records on an intake topic reach the sink registered for it, in the timeline's group; what
// the sink writes is in ClickHouse before the offsets are committed (a crash replays, the replay is
// invisible); a record the sink refuses goes to the DLQ with its reason; intake timeline events
// published by lib/intake/publish.ts become timeline rows.
import { afterAll, expect, it } from 'vitest';
import { publishIntake } from '../../lib/intake/publish.ts';
import { BatchingProducer } from '../../lib/kafka/producer.ts';
import type { StageRecord } from '../../lib/kafka/stage.ts';
import { H } from '../../lib/kafka/topics.ts';
import { forTenant, TABLES, timelineInsertRow } from '../../lib/store/index.ts';
import { intakeEventRow } from '../../lib/intake/publish.ts';
import type { IntakeSink } from '../../processors/timeline/intake-hook.ts';
import { startTimelineRunner, type RunningTimeline } from '../../processors/timeline/runner.ts';
import { createTopics, readRecords, testKafka, uniq } from '../support/kafka.ts';
import { eventually, nowNs, testStore } from './support.ts';

const topics = { spans: uniq('spans_clean'), logs: uniq('logs_clean'), metrics: uniq('metrics_clean'), timelineEvents: uniq('timeline_events'), dlq: uniq('dlq') };
const intakeTopic = uniq('intake_runtime_facts');
const running: RunningTimeline[] = [];
let producer: BatchingProducer | undefined;
afterAll(async () => {
  for (const r of running) await r.stop().catch(() => {});
  await producer?.disconnect();
});

/** A sink for the test: each record `{"id": "..."}` becomes one timeline row (kind test.intake); anything else is refused. */
function testSink(seen: StageRecord[]): IntakeSink {
  return {
    name: 'test', topics: ['intakeRuntimeFacts'],
    async write(records, ctx) {
      const rows = [];
      const dead = [];
      for (const r of records.intakeRuntimeFacts ?? []) {
        seen.push(r);
        let id: unknown;
        try { id = (JSON.parse(r.value.toString()) as { id?: unknown }).id; } catch { /* refused below */ }
        if (typeof id !== 'string') { dead.push({ record: r, reason: 'not a test intake record' }); continue; }
        rows.push(timelineInsertRow(intakeEventRow(r.key!, { kind: 'reach.runtime.ingested', resourceType: 'test', resourceId: id, digest: '', details: { id },
          tsUnixNano: String(t0) }, r.topic)));
      }
      await ctx.writer.write(TABLES.timelineEvents, rows);
      return dead;
    },
  };
}
const t0 = nowNs();

it('hands intake records to their sink, dead-letters refused ones, and stores intake timeline events', async () => {
  const store = await testStore();
  await createTopics([...Object.values(topics), intakeTopic], 3);
  const seen: StageRecord[] = [];
  const timeline = await startTimelineRunner({ kafka: testKafka('timeline-intake'), store, topics, groupId: uniq('timeline-intake'),
    writer: { maxDelayMs: 5 }, intakeSinks: [testSink(seen)], intakeTopics: { intakeRuntimeFacts: intakeTopic } });
  running.push(timeline);
  producer = new BatchingProducer(testKafka('intake-producer'));
  await producer.connect();
  for (const id of ['r1', 'r2']) {
    await publishIntake(producer, { topic: intakeTopic, timelineTopic: topics.timelineEvents, tenant: 'acme', value: Buffer.from(JSON.stringify({ id })),
      timelineEvent: { kind: 'artifact.registered', resourceType: 'artifact', resourceId: id, digest: '', details: { id }, tsUnixNano: String(t0 + 1n) } });
  }
  await producer.send(intakeTopic, [{ key: 'acme', value: Buffer.from('not json'), headers: { [H.tenant]: 'acme' } }]);

  const acme = forTenant(store, 'acme');
  const kinds = async () => (await acme.listEvents({ fromUnixNano: t0 - 1n, toUnixNano: t0 + 10n, limit: 100 })).map((e) => `${e.kind}:${e.resource_id}`).sort();
  await eventually(async () => expect(await kinds()).toEqual(['artifact.registered:r1', 'artifact.registered:r2', 'reach.runtime.ingested:r1', 'reach.runtime.ingested:r2']), 30_000);
  const [dead] = await readRecords([topics.dlq], 1);
  expect(dead!.value.toString()).toBe('not json');
  expect(dead!.headers[H.dlqReason]).toBe('timeline intake: not a test intake record');
  expect(dead!.headers[H.dlqSourceTopic]).toBe(intakeTopic);
  // Another tenant sees none of it.
  expect(await forTenant(store, 'globex').listEvents({ fromUnixNano: t0 - 1n, toUnixNano: t0 + 10n, limit: 100 })).toEqual([]);
  expect(seen.map((r) => r.topic)).toEqual([intakeTopic, intakeTopic, intakeTopic]);
}, 120_000);

it('refuses two sinks claiming one topic', async () => {
  const { IntakeRouting } = await import('../../processors/timeline/intake-hook.ts');
  const s = testSink([]);
  expect(() => new IntakeRouting([s, { ...s, name: 'other' }], { intakeRuntimeFacts: 'a', orchestratorExports: 'b', intakeArtifacts: 'c', intakeSymbols: 'd', intakeGraphs: 'e' }))
    .toThrow(/claimed by two sinks: test and other/);
});
