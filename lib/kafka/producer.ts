// An idempotent, acks=all producer that coalesces concurrent sends into one produce request, as
// Kafka's own producer does: a batch goes out when it is full, or once its oldest message has waited
// `lingerMs`, whichever comes first, and never while another produce is in flight (one at a time, as
// the idempotent producer requires); what queued behind one goes out when it is answered.
// Each caller's promise settles only when Kafka acknowledged (or refused) its own messages, so
// "acked to the client" always means "acked by Kafka".
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

interface Pending { topic: string; messages: OutMessage[]; bytes: number; resolve: () => void; reject: (e: unknown) => void; /** performance.now() when queued */ at: number }

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
  /** The produce in flight (settled when none is). */
  private inFlight: Promise<void> = Promise.resolve();
  private sending = false;
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
    const grace = new Promise<'grace'>((r) => { timer = setTimeout(() => r('grace'), graceMs); });
    // Each answered produce sends what queued behind it; wait until nothing is left or grace is up.
    while (this.sending || this.queue.length > 0) {
      if (await Promise.race([this.inFlight.catch(() => {}), grace]) === 'grace') break;
      this.flush();
    }
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
    const byTopic = new Map<string, Message[]>();
    for (const p of batch) {
      let list = byTopic.get(p.topic);
      if (!list) byTopic.set(p.topic, (list = []));
      for (const m of p.messages) list.push({ key: m.key, value: m.value, headers: m.headers, partition: m.partition });
    }
    const topicMessages: TopicMessages[] = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
    // One produce at a time (idempotent producer, max.in.flight=1 in kafkajs).
    this.sending = true;
    this.inFlight = (async () => {
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
    })().catch((err: unknown) => { for (const p of batch) p.reject(err); }).finally(() => {
      this.sending = false;
      this.schedule();
    });
  }
}
