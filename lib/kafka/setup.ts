// Resolve where Kafka is: the configured brokers, or a local broker started by the project under
// the data dir (when KAFKA_BROKERS / kafka.brokers is not set). Creates the pipeline's topics.
import path from 'node:path';
import type { KafkaConfig } from '../config.ts';
import { logger } from '../log.ts';
import { startBroker, type RunningBroker } from './broker.ts';
import { ensureTopics, createKafka } from './client.ts';
import type { TopicNames } from './topics.ts';

export interface KafkaConnection { brokers: string[]; localBroker: RunningBroker | undefined }

export async function connectKafka(cfg: KafkaConfig, dataDir: string): Promise<KafkaConnection> {
  if (cfg.brokers) return { brokers: cfg.brokers, localBroker: undefined };
  const log = logger('kafka');
  const broker = await startBroker({ dataDir: path.join(dataDir, 'kafka'), log: (m) => log.info(m) });
  return { brokers: [broker.brokers], localBroker: broker };
}

export async function ensurePipelineTopics(brokers: string[], cfg: KafkaConfig, names: (keyof TopicNames)[] = Object.keys(cfg.topics) as (keyof TopicNames)[]): Promise<void> {
  const kafka = createKafka({ brokers, clientId: `${cfg.clientId}-admin` });
  await ensureTopics(kafka, names.map((n) => ({ name: cfg.topics[n], partitions: cfg.partitions, replicationFactor: cfg.replicationFactor })));
}
