// Resolve where Kafka is: the configured brokers, or a local broker started by the project under
// the data dir (when KAFKA_BROKERS / kafka.brokers is not set). Creates the pipeline's topics, and on
// the local broker its ACLs (on an external cluster the operator grants them: docs/operations.md).
import path from 'node:path';
import type { KafkaConfig } from '../config.ts';
import { logger } from '../log.ts';
import { collectorUser, directTopics, ensurePipelineAcls, SUPER_USER, type PipelineUser } from './acls.ts';
import type { KafkaAccess } from './auth.ts';
import { startBroker, type RunningBroker } from './broker.ts';
import { ensureTopics, createKafka, resolveAccess, type TopicSpec } from './client.ts';
import type { TopicNames } from './topics.ts';

export interface KafkaConnection {
  brokers: string[];
  localBroker: RunningBroker | undefined;
  /** How a part reaches Kafka: its own user on the local broker; the configured login (KAFKA_SASL_*) on
   * an external cluster, where parts run with --only can each be given their own. */
  access(user: PipelineUser | typeof SUPER_USER): KafkaAccess;
}

export async function connectKafka(cfg: KafkaConfig, dataDir: string): Promise<KafkaConnection> {
  if (cfg.brokers) {
    const external: KafkaAccess = { brokers: cfg.brokers, sasl: cfg.sasl, tls: cfg.tls };
    return { brokers: cfg.brokers, localBroker: undefined, access: () => external };
  }
  const log = logger('kafka');
  const broker = await startBroker({ dataDir: path.join(dataDir, 'kafka'), log: (m) => log.info(m),
    extraUsers: cfg.directTenants.map(collectorUser), ownProcessGroup: true });
  return { brokers: [broker.brokers], localBroker: broker, access: (user) => broker.access(user) };
}

/** The topics (raw, clean, DLQ, events, and each Kafka-direct tenant's raw topics). `at`: a KafkaAccess,
 * or broker addresses reached with the config's own login. */
export async function ensurePipelineTopics(at: string[] | KafkaAccess, cfg: KafkaConfig, names: (keyof TopicNames)[] = Object.keys(cfg.topics) as (keyof TopicNames)[]): Promise<void> {
  const kafka = createKafka({ ...resolveAccess(at, cfg), clientId: `${cfg.clientId}-admin` });
  const spec = (name: string): TopicSpec => ({ name, partitions: cfg.partitions, replicationFactor: cfg.replicationFactor,
    ...(name === cfg.topics.dlq ? { configs: { 'retention.ms': String(cfg.dlqRetentionMs) } } : {}) });
  const direct = cfg.directTenants.flatMap((t) => Object.entries(directTopics(cfg.topics, t))
    .filter(([signal]) => names.includes(signal as keyof TopicNames)).map(([, topic]) => topic));
  await ensureTopics(kafka, [...names.map((n) => spec(cfg.topics[n])), ...direct.map(spec)]);
}

/** Topics, then (on the local broker, whose super user we hold) the ACLs every part needs. */
export async function preparePipeline(conn: KafkaConnection, cfg: KafkaConfig): Promise<void> {
  const admin = conn.access(SUPER_USER);
  await ensurePipelineTopics(admin, cfg);
  if (conn.localBroker) {
    await ensurePipelineAcls(createKafka({ ...admin, clientId: `${cfg.clientId}-admin` }),
      { topics: cfg.topics, groupIdPrefix: cfg.groupIdPrefix, directTenants: cfg.directTenants });
  }
}
