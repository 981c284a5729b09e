// The one place the project builds kafkajs clients: logs go through pino, credentials and TLS come
// from a KafkaAccess (./auth.ts), topics are created here.
import { readFileSync } from 'node:fs';
import kafkajs, { Kafka, logLevel, type Admin, type ITopicConfig, type LogEntry } from 'kafkajs';
import type { ConnectionOptions } from 'node:tls';
import { logger } from '../log.ts';
import type { KafkaAccess, KafkaSasl, KafkaTls } from './auth.ts';
import { installRequestQueueFix } from './request-queue.ts';
import { kafkaLogLevel } from './log-levels.ts';
import { saslWithRetriableTransport } from './sasl-retry.ts';

// Before any connection exists: kafkajs' idle 1 ms timer loop per connection (./request-queue.ts).
installRequestQueueFix();

const kafkaLog = logger('kafka');

export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  /** Per-request timeout; connection attempts fail fast so callers can answer 503 quickly. */
  requestTimeoutMs?: number;
  connectionTimeoutMs?: number;
  /** SASL credentials (null/absent: none, e.g. a PLAINTEXT listener). */
  sasl?: KafkaSasl | null;
  /** TLS to the brokers (null/absent: plaintext). */
  tls?: KafkaTls | null;
  /** kafkajs retries (default 5); 0 for probes that loop themselves. */
  retries?: number;
  /** Backoff between retries (default 100 ms doubling up to 2 s). */
  retryBackoffMs?: { initial: number; max: number };
  /** No log lines at all (probes and test helpers that expect refusals). */
  quiet?: boolean;
}

/** Broker addresses with a config's login (sasl/tls), or an access given as it is. */
export function resolveAccess(at: string[] | KafkaAccess, login: { sasl: KafkaSasl | null; tls: KafkaTls | null }): KafkaAccess {
  return Array.isArray(at) ? { brokers: at, sasl: login.sasl, tls: login.tls } : at;
}

function tlsOptions(t: KafkaTls): ConnectionOptions | true {
  if (!t.caFile && !t.certFile) return true;
  return {
    ...(t.caFile ? { ca: [readFileSync(t.caFile)] } : {}),
    ...(t.certFile && t.keyFile ? { cert: readFileSync(t.certFile), key: readFileSync(t.keyFile) } : {}),
  };
}

export function createKafka(opts: KafkaClientOptions): Kafka {
  return new Kafka({
    clientId: opts.clientId,
    brokers: opts.brokers,
    connectionTimeout: opts.connectionTimeoutMs ?? 3000,
    requestTimeout: opts.requestTimeoutMs ?? 10_000,
    retry: { initialRetryTime: opts.retryBackoffMs?.initial ?? 100, retries: opts.retries ?? 5, maxRetryTime: opts.retryBackoffMs?.max ?? 2000 },
    // A connection lost mid-login is retried like any lost connection; a wrong password is not (./sasl-retry.ts).
    ...(opts.sasl ? { sasl: saslWithRetriableTransport(opts.sasl) } : {}),
    ...(opts.tls ? { ssl: tlsOptions(opts.tls) } : {}),
    logLevel: opts.quiet ? logLevel.NOTHING : logLevel.WARN,
    logCreator: () => ({ namespace, level, log }: LogEntry) => {
      const { message, timestamp: _ts, logger: _l, ...rest } = log as Record<string, unknown>;
      kafkaLog[kafkaLogLevel(level, String(message), rest)]({ namespace, ...rest }, String(message));
    },
  });
}

export interface TopicSpec { name: string; partitions: number; replicationFactor: number; configs?: Record<string, string> }

/** Create missing topics (idempotent). An existing topic keeps its partitions; the configs a spec names
 * are set on it (AlterConfigs replaces the topic's other dynamic configs: only specs that name all of
 * them, e.g. the DLQ's retention.ms, use configs). */
export async function ensureTopics(kafka: Kafka, topics: TopicSpec[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const reconfigure = topics.filter((t) => existing.has(t.name) && t.configs && Object.keys(t.configs).length > 0);
    if (reconfigure.length) await setTopicConfigs(admin, reconfigure);
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

/** Set the configs specs name on existing topics where they differ. A login not allowed to describe
 * or alter topic configs (an external cluster's) only gets a warning: the operator sets them there. */
async function setTopicConfigs(admin: Admin, specs: TopicSpec[]): Promise<void> {
  const TOPIC = kafkajs.ConfigResourceTypes.TOPIC;
  try {
    const current = await admin.describeConfigs({ includeSynonyms: false,
      resources: specs.map((t) => ({ type: TOPIC, name: t.name, configNames: Object.keys(t.configs!) })) });
    const differs = specs.filter((t) => {
      const have = current.resources.find((r) => r.resourceName === t.name)?.configEntries ?? [];
      return Object.entries(t.configs!).some(([k, v]) => have.find((e) => e.configName === k)?.configValue !== v);
    });
    if (differs.length === 0) return;
    await admin.alterConfigs({ validateOnly: false, resources: differs.map((t) => ({ type: TOPIC, name: t.name,
      configEntries: Object.entries(t.configs!).map(([name, value]) => ({ name, value })) })) });
  } catch (err) {
    if (!/AUTHORIZATION_FAILED/.test(String((err as { type?: string }).type))) throw err;
    kafkaLog.warn({ topics: specs.map((t) => t.name), error_code: (err as { type?: string }).type },
      'not allowed to set these topics\' configs (e.g. the DLQ\'s retention.ms); set them on the cluster');
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
