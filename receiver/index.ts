// The OTLP receiver: gRPC and HTTP front ends over one ingestor, one producer and one health probe.
import type { StellaConfig } from '../lib/config.ts';
import type { KafkaAccess } from '../lib/kafka/auth.ts';
import { createKafka, resolveAccess } from '../lib/kafka/client.ts';
import { KafkaHealth } from '../lib/kafka/health.ts';
import { BatchingProducer } from '../lib/kafka/producer.ts';
import { TokenRegistry } from '../lib/tenancy.ts';
import { startGrpcServer } from './grpc.ts';
import { startGrpcH2Server } from './grpc-h2.ts';
import { startHttpServer } from './http.ts';
import { Ingestor } from './ingestor.ts';

export interface RunningReceiver {
  grpcPort: number;
  httpPort: number;
  ingestor: Ingestor;
  health: KafkaHealth;
  close(): Promise<void>;
}

/** `brokers`: a KafkaAccess (the receiver's own Kafka user), or addresses reached with cfg.kafka's login. */
export async function startReceiver(cfg: StellaConfig, brokers: string[] | KafkaAccess, tokens = new TokenRegistry(cfg.tenants)): Promise<RunningReceiver> {
  const kafka = createKafka({ ...resolveAccess(brokers, cfg.kafka), clientId: `${cfg.kafka.clientId}-receiver`, requestTimeoutMs: cfg.kafka.produceTimeoutMs });
  const health = new KafkaHealth(kafka);
  await health.start();
  const producer = new BatchingProducer(kafka, { lingerMs: cfg.kafka.lingerMs, maxBatchBytes: cfg.kafka.maxRecordBytes, compression: cfg.kafka.compression });
  // Connecting can fail while Kafka is down; the producer connects again on its next send.
  await producer.connect().catch((err: unknown) => health.markDown(err));
  const ingestor = new Ingestor(producer, health, cfg.kafka.topics, {
    maxRecordBytes: cfg.kafka.maxRecordBytes,
    maxAttributeValueBytes: cfg.receiver.maxAttributeValueBytes,
    maxInflightBytes: cfg.receiver.maxInflightBytes,
    produceTimeoutMs: cfg.kafka.produceTimeoutMs,
    retryAfterSeconds: cfg.receiver.retryAfterSeconds,
    maxQueueWaitMs: cfg.receiver.maxQueueWaitMs,
  });
  const common = { host: cfg.receiver.host, maxRequestBytes: cfg.receiver.maxRequestBytes, retryAfterSeconds: cfg.receiver.retryAfterSeconds, tokens, ingestor };
  const grpc = cfg.receiver.grpcImpl === 'grpc-js'
    ? await startGrpcServer({ ...common, port: cfg.receiver.grpcPort })
    : await startGrpcH2Server({ ...common, port: cfg.receiver.grpcPort,
      keepaliveTimeMs: cfg.receiver.grpcKeepaliveTimeMs, keepaliveTimeoutMs: cfg.receiver.grpcKeepaliveTimeoutMs });
  const http = await startHttpServer({ ...common, port: cfg.receiver.httpPort });
  return {
    grpcPort: grpc.port, httpPort: http.port, ingestor, health,
    close: async () => {
      // Stop intake first, then let in-flight produces settle.
      await Promise.all([grpc.close(), http.close()]);
      await producer.disconnect();
      await health.stop();
    },
  };
}
