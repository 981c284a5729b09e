// lib/intake/publish.ts against the real broker, as the pipeline's `api` Kafka user with the
// pipeline's ACLs: the intake record and its timeline event both land (key = tenant, tenant and
// content-sha256 headers), the event is one the timeline processor stores, and a publication Kafka
// refuses rejects (the caller never answers its client on it).
import { createHash } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { publishIntake } from '../../lib/intake/publish.ts';
import { ensurePipelineAcls } from '../../lib/kafka/acls.ts';
import { BatchingProducer } from '../../lib/kafka/producer.ts';
import { ensurePipelineTopics } from '../../lib/kafka/setup.ts';
import { H, intakeTopics } from '../../lib/kafka/topics.ts';
import { eventRowFromMessage } from '../../processors/timeline/external-events.ts';
import { readRecords, testAccess, testKafka, uniq } from '../support/kafka.ts';
import { testConfig } from '../support/receiver.ts';

const cfg = testConfig({ kafka: { groupIdPrefix: `${uniq('intake')}-` } });
const T = cfg.kafka.topics;
const as = (user: string): Kafka => testKafka(`publish-${user}`, testAccess(user));
let producer: BatchingProducer;

beforeAll(async () => {
  await ensurePipelineTopics(testAccess(), cfg.kafka);
  await ensurePipelineAcls(testKafka('acl-setup'), { topics: T, groupIdPrefix: cfg.kafka.groupIdPrefix, directTenants: [] });
  producer = new BatchingProducer(as('api'));
  await producer.connect();
}, 120_000);
afterAll(async () => { await producer?.disconnect(); });

it('creates the four intake topics', async () => {
  const admin = testKafka('topics').admin();
  await admin.connect();
  const have = await admin.listTopics();
  await admin.disconnect();
  expect(intakeTopics(T)).toHaveLength(5);
  for (const t of intakeTopics(T)) expect(have).toContain(t);
});

it('produces the intake record and its timeline event, both acked, as the api user', async () => {
  const value = Buffer.from(JSON.stringify({ cas_uri: `cas://acme/${'ab'.repeat(32)}` }));
  const row = await publishIntake(producer, { topic: T.intakeRuntimeFacts, timelineTopic: T.timelineEvents, tenant: 'acme', value,
    timelineEvent: { kind: 'reach.runtime.ingested', resourceType: 'runtime_facts', resourceId: 'ing-1', digest: `sha256:${'ab'.repeat(32)}`,
      details: { ingest_id: 'ing-1', graph_hash: `sha256:${'cd'.repeat(32)}` }, tsUnixNano: '1795436000000000000' } });
  const [rec] = await readRecords([T.intakeRuntimeFacts], 1);
  expect(rec!.key).toBe('acme');
  expect(rec!.value).toEqual(value);
  expect(rec!.headers[H.tenant]).toBe('acme');
  expect(rec!.headers[H.contentSha256]).toBe(createHash('sha256').update(value).digest('hex'));
  const [ev] = await readRecords([T.timelineEvents], 1);
  expect(ev!.key).toBe('acme');
  // The timeline processor stores it (not its own event), as this row.
  expect(ev!.headers.producer).not.toBe('stella-timeline');
  const parsed = eventRowFromMessage(ev!.value, ev!.key);
  expect(parsed).toEqual(row);
  expect(parsed.kind).toBe('reach.runtime.ingested');
  expect(JSON.parse(parsed.details)).toEqual({ graph_hash: `sha256:${'cd'.repeat(32)}`, ingest_id: 'ing-1' });
  // The same intake published again has the same event id (timeline and evidence dedup by it).
  const again = await publishIntake(producer, { topic: T.intakeRuntimeFacts, timelineTopic: T.timelineEvents, tenant: 'acme', value,
    timelineEvent: { kind: 'reach.runtime.ingested', resourceType: 'runtime_facts', resourceId: 'ing-1', digest: `sha256:${'ab'.repeat(32)}`,
      details: { ingest_id: 'ing-1', graph_hash: `sha256:${'cd'.repeat(32)}` }, tsUnixNano: '1795436000000000000' } });
  expect(again.event_id).toBe(row.event_id);
}, 60_000);

it('rejects when Kafka refuses either record (the api user may not write a clean topic)', async () => {
  const refused = new BatchingProducer(as('api'));
  await refused.connect();
  try {
    await expect(publishIntake(refused, { topic: T.spansClean, timelineTopic: T.timelineEvents, tenant: 'acme', value: Buffer.from('{}'),
      timelineEvent: { kind: 'reach.runtime.ingested', resourceType: 'runtime_facts', resourceId: 'ing-2', digest: '', details: {} } })).rejects.toThrow();
  } finally { await refused.disconnect(); }
  // Only the API writes the intake topics: the receiver (which ingests telemetry) may not.
  const receiver = new BatchingProducer(as('receiver'));
  await receiver.connect();
  try {
    await expect(publishIntake(receiver, { topic: T.intakeRuntimeFacts, timelineTopic: T.timelineEvents, tenant: 'acme', value: Buffer.from('{}'),
      timelineEvent: { kind: 'reach.runtime.ingested', resourceType: 'runtime_facts', resourceId: 'ing-3', digest: '', details: {} } })).rejects.toThrow();
  } finally { await receiver.disconnect(); }
}, 60_000);

it('refuses an invalid tenant before producing anything', async () => {
  await expect(publishIntake(producer, { topic: T.intakeRuntimeFacts, tenant: '../x', value: Buffer.from('{}'),
    timelineEvent: { kind: 'runtime.ingest.failed', resourceType: 'runtime_facts', resourceId: 'x', digest: '', details: {} } })).rejects.toThrow(/tenant/);
});
