// An idempotent, acks=all producer that coalesces concurrent sends into one produce request per
// linger window. Each caller's promise settles only when Kafka acknowledged (or refused) its own
// messages, so "acked to the client" always means "acked by Kafka".
import type { Kafka, Message, Producer, TopicMessages } from 'kafkajs';
import { CompressionTypes, Partitioners } from 'kafkajs';
import { installProduceEncoder } from './produce-request.ts';

// Produce requests are encoded by lib/kafka/produce-request.ts (one buffer, native CRC-32C), not by
// kafkajs' copying encoder. Done on import: it must precede the process's first Produce request.
export const produceEncoder = installProduceEncoder();

export interface OutMessage {
  /** Tenant id for our records; null only when relaying a keyless record as it came. */
  key: string | null;
  value: Buffer;
  headers?: Record<string, string>;
  /** Explicit partition (e.g. a processor keeping the source partition); else murmur2(key). */
  partition?: number;
}

interface Pending { topic: string; messages: OutMessage[]; bytes: number; resolve: () => void; reject: (e: unknown) => void }

export interface BatchingProducerOptions {
  lingerMs?: number;
  /** Upper bound on one produce request's payload: keeps each partition's record batch under the broker's message.max.bytes. */
  maxBatchBytes?: number;
  compression?: 'none' | 'gzip';
}

export class BatchingProducer {
  private producer: Producer;
  /** Set when a produce failed for good: the idempotent session must not be reused (see flush). */
  private poisoned = false;
  private queue: Pending[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> = Promise.resolve();
  private connected = false;
  private readonly lingerMs: number;
  private readonly maxBatchBytes: number;
  private readonly compression: CompressionTypes;

  constructor(private readonly kafka: Kafka, opts: BatchingProducerOptions = {}) {
    this.producer = this.newProducer();
    this.lingerMs = opts.lingerMs ?? 2;
    this.maxBatchBytes = opts.maxBatchBytes ?? 1_000_000;
    this.compression = opts.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
  }

  private newProducer(): Producer {
    // The Java-compatible murmur2 partitioner: a tenant's key lands on the same partition whichever
    // client (ours, a collector's Kafka exporter, a Java tool) wrote it. Retries stay bounded (kafkajs
    // warns that this weakens exactly-once); the receiver's own timeout and client retries cover it.
    return this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner });
  }

  async connect(): Promise<void> {
    await this.producer.connect();
    this.connected = true;
  }

  /** Flush, wait for outstanding produces (at most `graceMs`: with Kafka down they would retry for
   * long), then disconnect. Callers whose sends were cut short see their promises reject. */
  async disconnect(graceMs = 10_000): Promise<void> {
    this.flush();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.inFlight.catch(() => {}), new Promise((r) => { timer = setTimeout(r, graceMs); })]);
    clearTimeout(timer);
    if (this.connected) await this.producer.disconnect().catch(() => {});
    this.connected = false;
  }

  private async renewSession(): Promise<void> {
    await this.producer.disconnect().catch(() => {});
    this.producer = this.newProducer();
    await this.producer.connect();
    this.poisoned = false;
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
    return Promise.all(parts).then(() => {});
  }

  private enqueue(topic: string, messages: OutMessage[], bytes: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.queuedBytes > 0 && this.queuedBytes + bytes > this.maxBatchBytes) this.flush();
      this.queue.push({ topic, messages, bytes, resolve, reject });
      this.queuedBytes += bytes;
      if (this.queuedBytes >= this.maxBatchBytes) this.flush();
      else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.lingerMs);
    });
  }

  private flush(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    const byTopic = new Map<string, Message[]>();
    for (const p of batch) {
      let list = byTopic.get(p.topic);
      if (!list) byTopic.set(p.topic, (list = []));
      for (const m of p.messages) list.push({ key: m.key, value: m.value, headers: m.headers, partition: m.partition });
    }
    const topicMessages: TopicMessages[] = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
    // Requests go out one at a time (idempotent producer, max.in.flight=1 in kafkajs), so chain them.
    this.inFlight = this.inFlight.catch(() => {}).then(async () => {
      if (this.poisoned) await this.renewSession();
      await this.producer.sendBatch({ topicMessages, acks: -1, compression: this.compression }).then(
        () => { for (const p of batch) p.resolve(); },
        (err: unknown) => {
          // kafkajs rolls a partition's sequence number back when a produce fails, even when the
          // broker did append the batch (e.g. a request timeout). The next, different batch would
          // then reuse that sequence range and the broker would acknowledge it as a duplicate
          // without writing it: acked data silently lost. A fresh producer id avoids that.
          this.poisoned = true;
          for (const p of batch) p.reject(err);
        },
      );
    }).catch((err: unknown) => { for (const p of batch) p.reject(err); });
  }
}
