// Helpers for tests against the real broker: unique topic names, and reading records back.
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { Kafka, logLevel, type IHeaders, type KafkaMessage } from 'kafkajs';
import { ensureTopics } from '../../lib/kafka/client.ts';

export const brokers = (): string => inject('kafkaBrokers');
export const uniq = (prefix: string): string => `${prefix}_${randomBytes(4).toString('hex')}`;

export function testKafka(clientId = 'stella-test'): Kafka {
  return new Kafka({ clientId, brokers: [brokers()], logLevel: logLevel.NOTHING });
}

/** Through the pipeline's own ensureTopics, which copes with kafkajs' leader-wait race. */
export async function createTopics(topics: string[], numPartitions = 3): Promise<void> {
  await ensureTopics(testKafka(), topics.map((name) => ({ name, partitions: numPartitions, replicationFactor: 1 })));
}

export interface ReadRecord { topic: string; partition: number; offset: string; key: string | null; value: Buffer; headers: Record<string, string> }

export function headersToStrings(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) if (v !== undefined) out[k] = Array.isArray(v) ? String(v[0]) : String(v);
  return out;
}

/** Read from the beginning of `topics` until `count` records arrived or `timeoutMs` passed. */
export function readRecords(topics: string[], count: number, timeoutMs = 30_000): Promise<ReadRecord[]> {
  return readRecordsAt(brokers(), topics, count, timeoutMs);
}

export async function readRecordsAt(brokerList: string, topics: string[], count: number, timeoutMs = 30_000): Promise<ReadRecord[]> {
  const kafka = new Kafka({ clientId: 'stella-test-reader', brokers: [brokerList], logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: uniq('reader'), maxWaitTimeInMs: 100 });
  const out: ReadRecord[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  await consumer.run({
    eachMessage: async ({ topic, partition, message }: { topic: string; partition: number; message: KafkaMessage }) => {
      out.push({ topic, partition, offset: message.offset, key: message.key?.toString() ?? null,
        value: message.value ?? Buffer.alloc(0), headers: headersToStrings(message.headers) });
      if (out.length >= count) done();
    },
  });
  const timer = setTimeout(done, timeoutMs);
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  return out;
}

/** Read every record currently in `topic`: up to each partition's high watermark at call time. */
export async function readAllRecordsAt(brokerList: string, topic: string, timeoutMs = 60_000): Promise<ReadRecord[]> {
  const kafka = new Kafka({ clientId: 'stella-test-reader', brokers: [brokerList], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const total = offsets.reduce((n, o) => n + Number(BigInt(o.high) - BigInt(o.low)), 0);
  const recs = await readRecordsAt(brokerList, [topic], total, timeoutMs);
  if (recs.length < total) throw new Error(`read ${recs.length} of the ${total} records in ${topic} within ${timeoutMs} ms`);
  return recs;
}
