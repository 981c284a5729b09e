// lib/kafka/request-queue.ts: kafkajs 2.2.4 re-arms a 1 ms timer per broker connection forever once
// the connection has answered a request. With the fix an idle connection arms none, and requests that
// must wait (the producer's one in-flight request at a time) still all go out and are acked.
import { expect, it } from 'vitest';
import { createKafka } from '../../lib/kafka/client.ts';
import { requestQueueClass } from '../../lib/kafka/request-queue.ts';
import { brokers, kafkaEnv, testAccess, createTopics, readRecords, uniq } from '../support/kafka.ts';

const proto = (requestQueueClass() as { prototype: { checkPendingRequests(): void } }).prototype;

/** How often any RequestQueue checked its pending requests during `ms`. */
async function checksDuring(ms: number): Promise<number> {
  const original = proto.checkPendingRequests;
  let calls = 0;
  proto.checkPendingRequests = function (this: unknown) { calls++; return original.call(this); };
  try {
    await new Promise((r) => setTimeout(r, ms));
  } finally {
    proto.checkPendingRequests = original;
  }
  return calls;
}

it('an idle producer connection runs no timer loop; queued requests are all sent and acked', async () => {
  const topic = uniq('rq');
  await createTopics([topic], 1);
  const kafka = createKafka({ ...testAccess(), clientId: 'rq-test' });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  try {
    // 30 sends at once through one in-flight slot: 29 wait in the queue and go out as answers arrive.
    await Promise.all(Array.from({ length: 30 }, (_, i) => producer.send({ topic, acks: -1, messages: [{ key: 'k', value: `v${i}` }] })));
    // kafkajs 2.2.4 without the fix: one check per ~1 ms per connection (hundreds in 400 ms).
    expect(await checksDuring(400)).toBeLessThan(5);
  } finally {
    await producer.disconnect();
  }
  const records = await readRecords([topic], 30);
  expect(records.map((r) => r.value.toString()).sort()).toEqual(Array.from({ length: 30 }, (_, i) => `v${i}`).sort());
});
