// An idempotent, acks=all producer that coalesces concurrent sends into one produce request, as
// Kafka's own producer does: a batch goes out when it is full, or once its oldest message has waited
// `lingerMs`, whichever comes first, and never while another produce is in flight (one at a time, as
// the idempotent producer requires); what queued behind one goes out when it is answered.
// Each caller's promise settles only when Kafka acknowledged (or refused) its own messages, so
// "acked to the client" always means "acked by Kafka".
//
// The produce itself is ours over kafkajs' cluster and broker connections (metadata, SASL/TLS,
// request queue, response decoding stay kafkajs'): partitioning, the producer id and the
// per-partition sequence numbers, and the retries. kafkajs' producer.sendBatch spent more CPU per
// produce than the request itself (merging and validating topic messages, a partitioner call and a
// murmur2 per message, target-topic and metadata bookkeeping, a retrier, per-broker locks and
// promise chains): about a third of the receiver's produce path at the issue-16 benchmark's rates,
// where a produce carries one or two client requests.
import { createRequire } from 'node:module';
import type { Kafka, PartitionMetadata } from 'kafkajs';
import { CompressionTypes, Partitioners } from 'kafkajs';
import { installProduceEncoder } from './produce-request.ts';

// Produce requests are encoded by lib/kafka/produce-request.ts (one buffer, native CRC-32C), not by
// kafkajs' copying encoder. Done on import: it must precede the process's first Produce request.
export const produceEncoder = installProduceEncoder();

const require = createRequire(import.meta.url);
const kafkajsDir = require.resolve('kafkajs').replace(/index\.js$/, '');
const InstrumentationEmitter = require(`${kafkajsDir}src/instrumentation/emitter.js`) as new () => KafkaEmitter;
const NETWORK_REQUEST = 'network.request';

interface KafkaEmitter { addListener(event: string, listener: (e: { payload: RequestEvent }) => void): () => void }
/** kafkajs' instrumentation payload of one answered request. */
export interface RequestEvent { apiName: string; size: number; duration: number }
interface KafkaBroker {
  nodeId: number;
  produce(args: { acks: number; timeout: number; compression: CompressionTypes; producerId: number; producerEpoch: number;
    topicData: { topic: string; partitions: { partition: number; firstSequence: number; messages: WireMessage[] }[] }[] }): Promise<unknown>;
  initProducerId(args: { transactionalId?: string; transactionTimeout: number }): Promise<{ producerId: number; producerEpoch: number }>;
}
interface KafkaCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  isConnected(): boolean;
  refreshMetadata(): Promise<void>;
  refreshMetadataIfNecessary(): Promise<void>;
  addMultipleTargetTopics(topics: string[]): Promise<void>;
  findTopicPartitionMetadata(topic: string): PartitionMetadata[];
  findBroker(args: { nodeId: number }): Promise<KafkaBroker>;
  findControllerBroker(): Promise<KafkaBroker>;
  removeBroker(args: { host: string; port: number }): void;
}
type CreateCluster = (opts: { allowAutoTopicCreation: boolean; metadataMaxAge: number; maxInFlightRequests: number; instrumentationEmitter: KafkaEmitter }) => KafkaCluster;
interface WireMessage { key: string | null; value: Buffer; headers?: Record<string, string> }

/** kafkajs builds every client's cluster through this private factory of its Kafka object. */
function clusterFactory(kafka: Kafka): CreateCluster {
  const sym = Object.getOwnPropertySymbols(kafka).find((s) => s.description === 'private:Kafka:createCluster');
  const fn = sym && (kafka as unknown as Record<symbol, unknown>)[sym];
  if (typeof fn !== 'function') throw new Error('kafkajs: Kafka has no createCluster (a kafkajs version this producer was not written for)');
  return fn as CreateCluster;
}

const INT32_MAX = 2 ** 31 - 1;
/** kafkajs' (and the Java producer's) idempotent producers' transaction timeout default; unused without a transactional id. */
const TRANSACTION_TIMEOUT_MS = 60_000;
/** Broker-side wait for the in-sync replicas (kafkajs' sendBatch default). */
const ACK_TIMEOUT_MS = 30_000;
/** Errors after which the cached metadata may be wrong (kafkajs' staleMetadata plus its connection errors). */
const REFRESH_METADATA = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE', 'NOT_LEADER_FOR_PARTITION']);
const REFRESH_NAMES = new Set(['KafkaJSMetadataNotLoaded', 'KafkaJSConnectionError', 'KafkaJSConnectionClosedError', 'KafkaJSBrokerNotFound']);

export interface OutMessage {
  /** Tenant id for our records; null only when relaying a keyless record as it came. */
  key: string | null;
  value: Buffer;
  headers?: Record<string, string>;
  /** Explicit partition (e.g. a processor keeping the source partition); else murmur2(key). */
  partition?: number;
}

interface Pending { topic: string; messages: OutMessage[]; bytes: number; resolve: () => void; reject: (e: unknown) => void; /** performance.now() when queued */ at: number }

export interface BatchingProducerOptions {
  lingerMs?: number;
  /** Upper bound on one produce request's payload: keeps each partition's record batch under the broker's message.max.bytes. */
  maxBatchBytes?: number;
  compression?: 'none' | 'gzip';
}

/** One partition's share of a produce: its messages and, once assigned, its first sequence number. */
interface PartitionBatch { topic: string; partition: number; messages: WireMessage[]; firstSequence: number }
type ProduceError = Error & { type?: string; retriable?: boolean; host?: string; port?: number };

const sleep = (ms: number) => new Promise<void>((r) => { setTimeout(r, ms); });

export class BatchingProducer {
  private readonly cluster: KafkaCluster;
  private readonly emitter = new InstrumentationEmitter();
  /** The idempotent session: -1 until InitProducerId answered, and again after a produce failed for good. */
  private producerId = -1;
  private producerEpoch = 0;
  /** Next sequence number per `topic\0partition` of this producer id. */
  private sequences = new Map<string, number>();
  /** Topics whose metadata the cluster tracks. */
  private readonly targetTopics = new Set<string>();
  /** Partition per key and topic, for the partition count it was computed with (murmur2 once per key). */
  private readonly partitionByKey = new Map<string, { count: number; byKey: Map<string, number> }>();
  private readonly partitioner = Partitioners.DefaultPartitioner();
  private readonly retry: { retries: number; initialRetryTime: number; maxRetryTime: number };
  private queue: Pending[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The produce in flight (settled when none is). */
  private inFlight: Promise<void> = Promise.resolve();
  private sending = false;
  private readonly lingerMs: number;
  private readonly maxBatchBytes: number;
  private readonly compression: CompressionTypes;

  constructor(kafka: Kafka, opts: BatchingProducerOptions = {}) {
    // allowAutoTopicCreation off: a typo in a topic name fails instead of creating a topic.
    this.cluster = clusterFactory(kafka)({ allowAutoTopicCreation: false, maxInFlightRequests: 1, metadataMaxAge: 300_000, instrumentationEmitter: this.emitter });
    const sym = Object.getOwnPropertySymbols(kafka).find((x) => x.description === 'private:Kafka:clusterRetry');
    const r = (sym && (kafka as unknown as Record<symbol, Partial<BatchingProducer['retry']> | undefined>)[sym]) ?? {};
    this.retry = { retries: r.retries ?? 5, initialRetryTime: r.initialRetryTime ?? 300, maxRetryTime: r.maxRetryTime ?? 30_000 };
    this.lingerMs = opts.lingerMs ?? 2;
    this.maxBatchBytes = opts.maxBatchBytes ?? 1_000_000;
    this.compression = opts.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
  }

  /** Every request this producer's connections answered (kafkajs' instrumentation), e.g. to count produces. */
  onRequest(listener: (e: RequestEvent) => void): () => void {
    return this.emitter.addListener(NETWORK_REQUEST, (e) => listener(e.payload));
  }

  /** Connect and take a producer id, retrying retriable errors (e.g. a coordinator still loading) as
   * kafkajs' producer does. */
  async connect(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.cluster.connect();
        await this.initProducerId();
        return;
      } catch (e) {
        if (!this.retriable(e as ProduceError) || attempt >= this.retry.retries) throw e;
        await this.backoff(attempt, e as ProduceError);
      }
    }
  }

  private retriable(err: ProduceError): boolean {
    return err.retriable === true || REFRESH_METADATA.has(err.type ?? '') || REFRESH_NAMES.has(err.name);
  }

  /** Before the next attempt: new metadata where it may be stale, then kafkajs' backoff (doubling, ±20%). */
  private async backoff(attempt: number, err: ProduceError): Promise<void> {
    if (REFRESH_METADATA.has(err.type ?? '') || REFRESH_NAMES.has(err.name)) await this.cluster.refreshMetadata().catch(() => {});
    const base = Math.min(this.retry.initialRetryTime * 2 ** attempt, this.retry.maxRetryTime);
    await sleep(base * (0.8 + 0.4 * Math.random()));
  }

  /** Flush, wait for outstanding produces (at most `graceMs`: with Kafka down they would retry for
   * long), then disconnect. Callers whose sends were cut short see their promises reject. */
  async disconnect(graceMs = 10_000): Promise<void> {
    this.flush();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'grace'>((r) => { timer = setTimeout(() => r('grace'), graceMs); });
    // Each answered produce sends what queued behind it; wait until nothing is left or grace is up.
    while (this.sending || this.queue.length > 0) {
      if (await Promise.race([this.inFlight.catch(() => {}), grace]) === 'grace') break;
      this.flush();
    }
    clearTimeout(timer);
    await this.cluster.disconnect().catch(() => {});
  }

  /** Resolves when every message is acked by all in-sync replicas. A list larger than
   * maxBatchBytes is split across produce requests, so no request exceeds the broker's limit. */
  send(topic: string, messages: OutMessage[]): Promise<void> {
    const parts: Promise<void>[] = [];
    let chunk: OutMessage[] = [];
    let chunkBytes = 0;
    for (const m of messages) {
      const size = m.value.length + (m.key?.length ?? 0);
      if (chunk.length > 0 && chunkBytes + size > this.maxBatchBytes) {
        parts.push(this.enqueue(topic, chunk, chunkBytes));
        chunk = [];
        chunkBytes = 0;
      }
      chunk.push(m);
      chunkBytes += size;
    }
    if (chunk.length > 0) parts.push(this.enqueue(topic, chunk, chunkBytes));
    return parts.length === 1 ? parts[0]! : Promise.all(parts).then(() => {});
  }

  private enqueue(topic: string, messages: OutMessage[], bytes: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ topic, messages, bytes, resolve, reject, at: performance.now() });
      this.queuedBytes += bytes;
      this.schedule();
    });
  }

  /** Flush now if a batch is ready (full, or its oldest message lingered long enough), else arm the
   * linger timer; nothing while a produce is in flight (its answer calls this again). */
  private schedule(): void {
    if (this.sending || this.queue.length === 0) return;
    const waited = performance.now() - this.queue[0]!.at;
    if (this.queuedBytes >= this.maxBatchBytes || waited >= this.lingerMs) { this.flush(); return; }
    if (!this.timer) this.timer = setTimeout(() => { this.timer = undefined; this.schedule(); }, this.lingerMs - waited);
  }

  /** Send the head of the queue, up to maxBatchBytes, unless a produce is in flight. (Before, each
   * linger window became a produce of its own, chained behind the one in flight: at a few hundred
   * requests/s, one produce per request, one at a time, and the chain fell behind.) */
  private flush(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    if (this.sending || this.queue.length === 0) return;
    let n = 0;
    let bytes = 0;
    // Whole sends only; each is at most maxBatchBytes (send() splits larger ones).
    while (n < this.queue.length && (n === 0 || bytes + this.queue[n]!.bytes <= this.maxBatchBytes)) bytes += this.queue[n++]!.bytes;
    const batch = this.queue.splice(0, n);
    this.queuedBytes -= bytes;
    // One produce at a time (idempotent producer, max.in.flight=1).
    this.sending = true;
    this.inFlight = this.produce(batch).then(
      () => { for (const p of batch) p.resolve(); },
      (err: unknown) => { for (const p of batch) p.reject(err); },
    ).finally(() => {
      this.sending = false;
      this.schedule();
    });
  }

  private async initProducerId(): Promise<void> {
    // Any broker hands out producer ids to a non-transactional producer; kafkajs asks the controller.
    await this.cluster.refreshMetadataIfNecessary();
    const broker = await this.cluster.findControllerBroker();
    const r = await broker.initProducerId({ transactionTimeout: TRANSACTION_TIMEOUT_MS });
    this.producerId = r.producerId;
    this.producerEpoch = r.producerEpoch;
    this.sequences = new Map();
  }

  /** The partition of each message: its own, else murmur2(key) as Java's default partitioner (cached
   * per key), else kafkajs' round robin for keyless ones. */
  private partitionOf(topic: string, m: OutMessage, meta: PartitionMetadata[]): number {
    if (m.partition !== undefined) return m.partition;
    if (m.key === null) return this.partitioner({ topic, partitionMetadata: meta, message: { key: null, value: m.value } });
    let cache = this.partitionByKey.get(topic);
    if (!cache || cache.count !== meta.length) this.partitionByKey.set(topic, (cache = { count: meta.length, byKey: new Map() }));
    let p = cache.byKey.get(m.key);
    if (p === undefined) {
      p = this.partitioner({ topic, partitionMetadata: meta, message: { key: m.key, value: m.value } });
      if (cache.byKey.size < 10_000) cache.byKey.set(m.key, p);
    }
    return p;
  }

  /** Messages per partition, with sequence numbers taken from this producer id's counters (taken once:
   * a retry resends the same batch with the same numbers, so the broker keeps the first copy only). */
  private assign(batch: Pending[]): PartitionBatch[] {
    const byPartition = new Map<string, PartitionBatch>();
    for (const p of batch) {
      const meta = this.cluster.findTopicPartitionMetadata(p.topic);
      if (meta.length === 0) throw Object.assign(new Error(`no metadata for topic ${p.topic}`), { name: 'KafkaJSMetadataNotLoaded' });
      for (const m of p.messages) {
        const partition = this.partitionOf(p.topic, m, meta);
        const k = `${p.topic}\0${partition}`;
        let pb = byPartition.get(k);
        if (!pb) byPartition.set(k, (pb = { topic: p.topic, partition, messages: [], firstSequence: 0 }));
        pb.messages.push({ key: m.key, value: m.value, headers: m.headers });
      }
    }
    for (const [k, pb] of byPartition) {
      const seq = this.sequences.get(k) ?? 0;
      pb.firstSequence = seq;
      const next = seq + pb.messages.length;
      this.sequences.set(k, next > INT32_MAX ? next - INT32_MAX - 1 : next);
    }
    return [...byPartition.values()];
  }

  /** Produce one batch, acks=all: per leader one request, retried (with the same sequence numbers)
   * on retriable errors up to the client's retries. A batch that fails for good ends the producer id:
   * the broker may have appended it, and a different batch must never reuse its sequence numbers (the
   * broker would acknowledge it as a duplicate without writing it: acked data silently lost). */
  private async produce(batch: Pending[]): Promise<void> {
    let parts: PartitionBatch[] | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        if (!this.cluster.isConnected()) await this.cluster.connect();
        if (this.producerId === -1) await this.initProducerId();
        const topics = batch.filter((p) => !this.targetTopics.has(p.topic)).map((p) => p.topic);
        if (topics.length > 0) {
          await this.cluster.addMultipleTargetTopics([...new Set(topics)]);
          for (const t of topics) this.targetTopics.add(t);
        }
        await this.cluster.refreshMetadataIfNecessary();
        parts ??= this.assign(batch);
        parts = await this.sendParts(parts);
        if (parts.length === 0) return;
      } catch (e) {
        const err = e as ProduceError;
        if (err.name === 'KafkaJSConnectionClosedError' && err.host) this.cluster.removeBroker({ host: err.host, port: err.port! });
        if (!this.retriable(err) || attempt >= this.retry.retries) {
          if (parts) this.producerId = -1; // sequence numbers were taken: this session is over
          throw err;
        }
        await this.backoff(attempt, err);
      }
    }
  }

  /** One produce request per leader, concurrently; returns the partitions not acked yet, or throws
   * the first error once all requests settled (what was acked stays acked). */
  private async sendParts(parts: PartitionBatch[]): Promise<PartitionBatch[]> {
    const byLeader = new Map<number, PartitionBatch[]>();
    for (const pb of parts) {
      const leader = this.cluster.findTopicPartitionMetadata(pb.topic).find((m) => m.partitionId === pb.partition)?.leader;
      if (leader === undefined || leader < 0) throw Object.assign(new Error(`no leader for ${pb.topic} partition ${pb.partition}`), { type: 'LEADER_NOT_AVAILABLE', retriable: true });
      let list = byLeader.get(leader);
      if (!list) byLeader.set(leader, (list = []));
      list.push(pb);
    }
    const failed: PartitionBatch[] = [];
    let firstError: unknown;
    const one = async (nodeId: number, list: PartitionBatch[]): Promise<void> => {
      try {
        const broker = await this.cluster.findBroker({ nodeId });
        const byTopic = new Map<string, PartitionBatch[]>();
        for (const pb of list) { let t = byTopic.get(pb.topic); if (!t) byTopic.set(pb.topic, (t = [])); t.push(pb); }
        // kafkajs' response parser throws on any partition's error code.
        await broker.produce({ acks: -1, timeout: ACK_TIMEOUT_MS, compression: this.compression, producerId: this.producerId, producerEpoch: this.producerEpoch,
          topicData: [...byTopic].map(([topic, pbs]) => ({ topic, partitions: pbs.map((pb) => ({ partition: pb.partition, firstSequence: pb.firstSequence, messages: pb.messages })) })) });
      } catch (err) {
        failed.push(...list);
        firstError ??= err;
      }
    };
    if (byLeader.size === 1) { const [nodeId, list] = byLeader.entries().next().value!; await one(nodeId, list); }
    else await Promise.all([...byLeader].map(([nodeId, list]) => one(nodeId, list)));
    if (firstError !== undefined) {
      // Keep the unacked ones for the retry; the error decides whether there is one.
      parts.length = 0;
      parts.push(...failed);
      throw firstError;
    }
    return [];
  }
}
