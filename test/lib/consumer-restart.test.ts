// A consumer that crashes on an error kafkajs does not retry (at startup: the group coordinator not
// ready yet, KafkaJSGroupCoordinatorNotFound) stays stopped for good unless restartOnFatalCrash runs
// it again. The crash here comes from the real join protocol: an assigner that fails its first
// assignment with a non-retriable error, on the real broker.
import { AssignerProtocol, KafkaJSNonRetriableError, type PartitionAssigner } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { logger } from '../../lib/log.ts';
import { restartOnFatalCrash } from '../../lib/kafka/restart.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';

describe('restartOnFatalCrash', () => {
  it('restarts a consumer that crashed on a non-retriable error; it then consumes', async () => {
    const topic = uniq('restart');
    await createTopics([topic], 1);
    let failures = 1;
    const failingOnce: PartitionAssigner = () => ({
      name: 'FailingOnce', version: 1,
      async assign({ members }) {
        if (failures-- > 0) throw new KafkaJSNonRetriableError('assignment failed (test)');
        return members.map((m) => ({ memberId: m.memberId, memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: { [topic]: [0] }, userData: Buffer.alloc(0) }) }));
      },
      protocol({ topics }) { return { name: 'FailingOnce', metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }) }; },
    });
    const consumer = testKafka('restart-test').consumer({ groupId: uniq('restart'), partitionAssigners: [failingOnce], maxWaitTimeInMs: 100,
      sessionTimeout: 6000, heartbeatInterval: 1000 }); // as the processors' groups (lib/kafka/group-timing.ts)
    const crashes: boolean[] = [];
    consumer.on(consumer.events.CRASH, (e) => crashes.push(e.payload.restart));
    const seen: string[] = [];
    let stopping = false;
    const start = async () => {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value!.toString()); } });
    };
    restartOnFatalCrash(consumer, start, { log: logger('test'), stopping: () => stopping, delayMs: 200 });
    await start();
    const producer = testKafka().producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ value: 'after-crash' }] });
    await producer.disconnect();
    const end = Date.now() + 30_000;
    while (!seen.includes('after-crash') && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    stopping = true;
    await consumer.disconnect();
    expect(crashes).toEqual([false]); // kafkajs itself would not have restarted it
    expect(seen).toContain('after-crash');
  }, 60_000);
});
