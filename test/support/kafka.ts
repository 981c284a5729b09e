// Helpers for tests against the real broker: logins, unique topic names, and reading records back.
// Every client goes through the project's createKafka and logs in (the test broker refuses anyone
// else); by default as the super user, or as one of the pipeline's users to test what it may do.
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import type { IHeaders, Kafka, KafkaMessage } from 'kafkajs';
import { accessEnv, Secret, type KafkaAccess } from '../../lib/kafka/auth.ts';
import { createKafka, ensureTopics } from '../../lib/kafka/client.ts';

export const brokers = (): string => inject('kafkaBrokers');
export const uniq = (prefix: string): string => `${prefix}_${randomBytes(4).toString('hex')}`;

/** How `user` (default: the run's super user) reaches the test broker. */
export function testAccess(user: string = inject('kafkaSuperUser')): KafkaAccess {
  const password = inject('kafkaUsers')[user];
  if (password === undefined) throw new Error(`the test broker has no user "${user}"`);
  return { brokers: [brokers()], sasl: { mechanism: 'scram-sha-512', username: user, password: new Secret(password) }, tls: null };
}

/** The environment a config needs to reach the test broker as `user` (KAFKA_BROKERS + KAFKA_SASL_*). */
export function kafkaEnv(user?: string): Record<string, string> {
  return kafkaEnvOf(testAccess(user));
}

/** KAFKA_BROKERS + KAFKA_SASL_* for an access (e.g. a test's own broker's `access()`). */
export const kafkaEnvOf = accessEnv;

/** A quiet client with kafkajs' default timeouts, logged in as the super user (or `access`). */
export function testKafka(clientId = 'stella-test', access: KafkaAccess = testAccess()): Kafka {
  return createKafka({ ...access, clientId, quiet: true, connectionTimeoutMs: 1000, requestTimeoutMs: 30_000,
    retryBackoffMs: { initial: 300, max: 30_000 } });
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

/** A broker address alone means the run's test broker, as the super user. */
const accessOf = (at: string | KafkaAccess): KafkaAccess => (typeof at === 'string' ? { ...testAccess(), brokers: [at] } : at);

/** Read from the beginning of `topics` until `count` records arrived or `timeoutMs` passed. */
export function readRecords(topics: string[], count: number, timeoutMs = 30_000): Promise<ReadRecord[]> {
  return readRecordsAt(testAccess(), topics, count, timeoutMs);
}

export async function readRecordsAt(at: string | KafkaAccess, topics: string[], count: number, timeoutMs = 30_000): Promise<ReadRecord[]> {
  const kafka = testKafka('stella-test-reader', accessOf(at));
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
export async function readAllRecordsAt(at: string | KafkaAccess, topic: string, timeoutMs = 60_000): Promise<ReadRecord[]> {
  const access = accessOf(at);
  const admin = testKafka('stella-test-reader', access).admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const total = offsets.reduce((n, o) => n + Number(BigInt(o.high) - BigInt(o.low)), 0);
  if (total === 0) return []; // nothing to wait for (reading would sit out the whole timeout)
  const recs = await readRecordsAt(access, [topic], total, timeoutMs);
  if (recs.length < total) throw new Error(`read ${recs.length} of the ${total} records in ${topic} within ${timeoutMs} ms`);
  return recs;
}
