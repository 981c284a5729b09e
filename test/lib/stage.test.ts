// The shared processor stage: each record handled once in order, offsets committed only after the
// handler resolved, a failing batch retried from the same offset, and a restart resumes after the
// last committed batch (nothing handled twice, nothing skipped).
import { afterEach, expect, it } from 'vitest';
import { createKafka } from '../../lib/kafka/client.ts';
import { runStage, type RunningStage, type StageRecord } from '../../lib/kafka/stage.ts';
import { brokers, kafkaEnv, testAccess, createTopics, testKafka, uniq } from '../support/kafka.ts';

let stages: RunningStage[] = [];
afterEach(async () => { await Promise.all(stages.map((s) => s.stop())); stages = []; });

async function produce(topic: string, values: string[]): Promise<void> {
  const p = testKafka().producer();
  await p.connect();
  await p.send({ topic, acks: -1, messages: values.map((value) => ({ key: 'acme', value })) });
  await p.disconnect();
}

async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) { if (Date.now() > end) throw new Error('condition not met in time'); await new Promise((r) => setTimeout(r, 50)); }
}

it('handles every record once, retries a failed batch from the same offset, and resumes after a restart', async () => {
  const topic = uniq('stage');
  const groupId = uniq('group');
  await createTopics([topic], 1);
  await produce(topic, ['a', 'b', 'c']);
  const handled: string[] = [];
  let failOnce = true;
  const kafka = createKafka({ ...testAccess(), clientId: 'stage-test' });
  const handle = async (recs: StageRecord[]) => {
    if (failOnce && recs.some((r) => r.value.toString() === 'b')) { failOnce = false; throw new Error('sink down'); }
    handled.push(...recs.map((r) => r.value.toString()));
  };
  stages.push(await runStage({ name: 'stage-test', groupId, kafka, topics: [topic], handle }));
  await until(() => handled.includes('c'));
  await new Promise((r) => setTimeout(r, 500)); // a stage that does not advance would hand the batch over again
  expect(handled).toEqual(['a', 'b', 'c']);
  await stages.pop()!.stop();

  await produce(topic, ['d', 'e']);
  stages.push(await runStage({ name: 'stage-test', groupId, kafka, topics: [topic], handle }));
  await until(() => handled.includes('e'));
  await new Promise((r) => setTimeout(r, 500));
  expect(handled).toEqual(['a', 'b', 'c', 'd', 'e']);
});

it('the producer splits one large send under maxBatchBytes, so no request exceeds the broker limit', async () => {
  const { BatchingProducer } = await import('../../lib/kafka/producer.ts');
  const topic = uniq('bigsend');
  await createTopics([topic], 1);
  const producer = new BatchingProducer(createKafka({ ...testAccess(), clientId: 'bigsend' }), { maxBatchBytes: 300_000 });
  await producer.connect();
  // 40 x 100 KB = 4 MB in one call to one partition: as a single request the broker (1 MB limit) refuses it.
  await producer.send(topic, Array.from({ length: 40 }, (_, i) => ({ key: 'acme', value: Buffer.alloc(100_000, i) })));
  await producer.disconnect();
  const { readRecords } = await import('../support/kafka.ts');
  const recs = await readRecords([topic], 40, 20_000);
  expect(recs.map((r) => r.value[0])).toEqual(Array.from({ length: 40 }, (_, i) => i));
});
