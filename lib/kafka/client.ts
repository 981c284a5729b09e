// The one place the project builds kafkajs clients: logs go through pino, topics are created here.
import { Kafka, logLevel, type Admin, type ITopicConfig, type LogEntry } from 'kafkajs';
import { logger } from '../log.ts';
import { installRequestQueueFix } from './request-queue.ts';
import { kafkaLogLevel } from './log-levels.ts';

// Before any connection exists: kafkajs' idle 1 ms timer loop per connection (./request-queue.ts).
installRequestQueueFix();

const kafkaLog = logger('kafka');

export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  /** Per-request timeout; connection attempts fail fast so callers can answer 503 quickly. */
  requestTimeoutMs?: number;
  connectionTimeoutMs?: number;
}

export function createKafka(opts: KafkaClientOptions): Kafka {
  return new Kafka({
    clientId: opts.clientId,
    brokers: opts.brokers,
    connectionTimeout: opts.connectionTimeoutMs ?? 3000,
    requestTimeout: opts.requestTimeoutMs ?? 10_000,
    retry: { initialRetryTime: 100, retries: 5, maxRetryTime: 2000 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, level, log }: LogEntry) => {
      const { message, timestamp: _ts, logger: _l, ...rest } = log as Record<string, unknown>;
      kafkaLog[kafkaLogLevel(level, String(message), rest)]({ namespace, ...rest }, String(message));
    },
  });
}

export interface TopicSpec { name: string; partitions: number; replicationFactor: number; configs?: Record<string, string> }

/** Create missing topics (idempotent); existing topics are left as they are. */
export async function ensureTopics(kafka: Kafka, topics: TopicSpec[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing: ITopicConfig[] = topics.filter((t) => !existing.has(t.name)).map((t) => ({
      topic: t.name, numPartitions: t.partitions, replicationFactor: t.replicationFactor,
      configEntries: Object.entries(t.configs ?? {}).map(([name, value]) => ({ name, value })),
    }));
    if (missing.length === 0) return;
    try {
      await admin.createTopics({ topics: missing, waitForLeaders: true });
    } catch (err) {
      // While just-created topics propagate (several created at once), kafkajs' wait for leaders can
      // fail with UNKNOWN_TOPIC_OR_PARTITION instead of retrying; the topics exist: wait for leaders here.
      if ((err as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err;
      await waitForLeaders(admin, missing.map((t) => t.topic));
    }
  } finally {
    await admin.disconnect();
  }
}

async function waitForLeaders(admin: Admin, topics: string[], timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const md = await admin.fetchTopicMetadata({ topics }).catch(() => undefined);
    if (md && md.topics.length === topics.length && md.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
    if (Date.now() > end) throw new Error(`topics ${topics.join(', ')} have no leaders after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
