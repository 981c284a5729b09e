// Joins the pure core to Kafka: refuses quickly when Kafka is down or the in-flight byte cap is
// reached (retryable), produces the records with acks=all, and answers only after Kafka acked.
import { hash, randomFillSync } from 'node:crypto';
import type { BatchingProducer } from '../lib/kafka/producer.ts';
import type { KafkaHealth } from '../lib/kafka/health.ts';
import { H, type TopicNames } from '../lib/kafka/topics.ts';
import { counter, gauge, histogram } from '../lib/metrics.ts';
import { startRequestTrace, type RequestTrace } from '../lib/tracing.ts';
import type { Signal } from '../lib/otlp/proto.ts';
import type { Principal } from '../lib/tenancy.ts';
import { IngestError, prepareExport, type IngestLimits } from './ingest.ts';
import { headSampler, otelThresholdHex, SAMPLING_TH_HEADER, type HeadSampler } from './sampling.ts';
import { SlabPool, type Lease } from './slab.ts';

export interface IngestorOptions extends IngestLimits {
  maxInflightBytes: number;
  produceTimeoutMs: number;
  retryAfterSeconds: number;
  /** Admission by expected wait (see Ingestor.expectedWaitMs); 0 or absent = off. */
  maxQueueWaitMs?: number;
  /** Per-tenant head sampling; default the process-wide `headSampler` (receiver/sampling.ts). */
  sampler?: HeadSampler;
}

export interface ExportOutcome { accepted: number; rejected: number; message: string }

export const receiverMetrics = {
  requests: counter('stella_receiver_requests_total', 'OTLP export requests by protocol, signal and status', ['protocol', 'signal', 'code']),
  items: counter('stella_receiver_items_total', 'OTLP items (spans, data points, log records) by outcome and reason', ['signal', 'tenant', 'outcome', 'reason']),
  refusedRequests: counter('stella_receiver_refused_requests_total', 'Whole requests refused, by reason', ['signal', 'tenant', 'reason']),
  produceSeconds: histogram('stella_receiver_produce_seconds', 'Time from produce to Kafka ack (acks=all)', ['topic']),
  requestSeconds: histogram('stella_receiver_request_seconds', 'OTLP request handling time', ['protocol', 'signal']),
  inflightBytes: gauge('stella_receiver_inflight_bytes', 'Bytes accepted from clients and not yet acked by Kafka'),
  records: counter('stella_receiver_records_total', 'Kafka records written', ['topic']),
};

/** A metric's child for one set of label values, made once: prom-client hashes the label object of
 * every labelled inc()/startTimer() call (sorted keys), a cost paid per request. Label values come
 * from configuration (tenants, topics, signals), so the caches stay as small as the metrics. */
export function metricChild<T>(cache: Map<string, T>, key: string, make: () => T): T {
  let child = cache.get(key);
  if (!child) cache.set(key, (child = make()));
  return child;
}
const produceSecondsByTopic = new Map<string, ReturnType<typeof receiverMetrics.produceSeconds.labels>>();
const recordsByTopic = new Map<string, ReturnType<typeof receiverMetrics.records.labels>>();
const acceptedItems = new Map<string, ReturnType<typeof receiverMetrics.items.labels>>();
const noop = (): void => {};

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

// Random ids come from a pool refilled 4 KB at a time: a randomBytes call per request showed up
// in the receiver's profile (~1% of its CPU).
const idPool = Buffer.alloc(4096);
let idAt = idPool.length;
function randomHex(bytes: number): string {
  if (idAt + bytes > idPool.length) { randomFillSync(idPool); idAt = 0; }
  idAt += bytes;
  return idPool.toString('hex', idAt - bytes, idAt);
}

/** The traceparent for the receiver's produce step: the caller's trace when it sent one. */
export function childTraceparent(incoming: string | undefined): string {
  const m = incoming ? TRACEPARENT.exec(incoming.trim()) : null;
  const traceId = m && m[1] !== '0'.repeat(32) ? m[1]! : randomHex(16);
  return `00-${traceId}-${randomHex(8)}-${m ? m[3] : '01'}`;
}

// The ack rate is measured over windows of this much busy time (time with something in flight):
// idle time says nothing about how fast Kafka drains a queue.
const RATE_WINDOW_MS = 250;

export class Ingestor {
  private inflight = 0;
  /** Kafka's measured drain rate, bytes per ms of busy time (moving average); 0 = not measured yet. */
  private ackRate = 0;
  private windowBytes = 0;
  private windowBusyMs = 0;
  /** When the in-flight bytes last went from 0 to > 0 (-1 while idle). */
  private busySince = -1;
  /** Each produce not yet settled, oldest first (a Map keeps insertion order): its start time and
   * what to do if Kafka has not answered within produceTimeoutMs. */
  private readonly pending = new Map<object, { started: number; timedOut: () => void }>();
  /** One timer for all produce timeouts, armed for the oldest pending produce's deadline: a
   * setTimeout/clearTimeout pair and a Promise.race per request were measurable at low rates
   * (BENCHMARKS.md, issue 16 front end). */
  private sweep: NodeJS.Timeout | undefined;
  /** Record values live in reused slabs until Kafka settled them (receiver/slab.ts). */
  private readonly pool = new SlabPool();

  constructor(
    private readonly producer: BatchingProducer,
    private readonly health: KafkaHealth,
    private readonly topics: TopicNames,
    private readonly opts: IngestorOptions,
  ) {}

  get inflightBytes(): number { return this.inflight; }

  /**
   * How long a request of `bytes` would wait for Kafka's ack if admitted now: the queued bytes
   * ahead of it at the measured ack rate, and at least as long as the oldest unacked produce has
   * already waited (that covers a stalled Kafka, when no ack refreshes the rate).
   */
  expectedWaitMs(bytes: number, now = performance.now()): number {
    // Only bytes already queued count: with nothing in flight a request is always admitted, so a
    // rate measured during a stall cannot lock the receiver out (each produce measures it again).
    let wait = this.ackRate > 0 && this.inflight > 0 ? (this.inflight + bytes) / this.ackRate : 0;
    for (const p of this.pending.values()) { wait = Math.max(wait, now - p.started); break; }
    return wait;
  }

  private started(bytes: number, token: object, now: number, timedOut: () => void): void {
    if (this.inflight === 0) this.busySince = now;
    this.inflight += bytes;
    this.pending.set(token, { started: now, timedOut });
    if (!this.sweep) this.armSweep(now);
  }

  /** Arms the timeout timer for the oldest pending produce (none pending: disarmed). */
  private armSweep(now: number): void {
    this.sweep = undefined;
    for (const p of this.pending.values()) {
      this.sweep = setTimeout(() => this.expire(), Math.max(1, Math.ceil(p.started + this.opts.produceTimeoutMs - now)));
      break;
    }
  }

  /** Times out every produce older than produceTimeoutMs (they stay pending until Kafka settles them). */
  private expire(): void {
    const now = performance.now();
    const deadline = now - this.opts.produceTimeoutMs;
    const due: (() => void)[] = [];
    for (const p of this.pending.values()) {
      if (p.started > deadline) break;
      due.push(p.timedOut);
      p.timedOut = noop; // once
    }
    // Re-armed for the oldest produce that has not timed out yet (older ones already have).
    this.sweep = undefined;
    for (const p of this.pending.values()) {
      if (p.timedOut === noop) continue;
      this.sweep = setTimeout(() => this.expire(), Math.max(1, Math.ceil(p.started + this.opts.produceTimeoutMs - now)));
      break;
    }
    for (const f of due) f();
  }

  private settled(bytes: number, token: object, acked: boolean): void {
    const now = performance.now();
    this.pending.delete(token);
    if (acked) this.windowBytes += bytes;
    this.windowBusyMs += now - this.busySince; // busy since the last settle or since work arrived
    this.busySince = now;
    this.inflight -= bytes;
    if (this.inflight === 0) this.busySince = -1;
    if (this.windowBusyMs >= RATE_WINDOW_MS) {
      const rate = this.windowBytes / this.windowBusyMs;
      this.ackRate = this.ackRate === 0 ? rate : 0.7 * this.ackRate + 0.3 * rate;
      this.windowBytes = 0;
      this.windowBusyMs = 0;
    }
  }

  /** Reads `body` only before it returns its promise (the records are copies): callers may reuse
   * the body's memory as soon as export() returned (receiver/http.ts does). */
  async export(signal: Signal, body: Uint8Array, principal: Principal, traceparent?: string): Promise<ExportOutcome> {
    // Self-tracing (lib/tracing.ts): a `receive` span, child of the caller's traceparent, around it all.
    const rt = startRequestTrace(signal.name, principal.tenantId, traceparent);
    if (!rt) return this.exportWith(signal, body, principal, traceparent, undefined);
    try {
      const out = await this.exportWith(signal, body, principal, traceparent, rt);
      rt.end(out.accepted, out.rejected);
      return out;
    } catch (err) {
      rt.end(0, 0, err);
      throw err;
    }
  }

  private async exportWith(signal: Signal, body: Uint8Array, principal: Principal, traceparent: string | undefined, rt: RequestTrace | undefined): Promise<ExportOutcome> {
    const lease = this.pool.lease();
    let handedOff = false;
    try {
      const out = await this.produceExport(signal, body, principal, traceparent, rt, lease, () => { handedOff = true; });
      return out;
    } finally {
      // Values that never reached the producer go back at once; the others when Kafka settled them.
      if (!handedOff) this.pool.release(lease);
    }
  }

  private async produceExport(signal: Signal, body: Uint8Array, principal: Principal, traceparent: string | undefined, rt: RequestTrace | undefined,
    lease: Lease, handOff: () => void): Promise<ExportOutcome> {
    const tenant = principal.tenantId;
    let prepared;
    let threshold: number | undefined;
    try {
      threshold = (this.opts.sampler ?? headSampler).thresholdFor(tenant);
      prepared = prepareExport(signal, body, tenant, this.opts, threshold, (n) => this.pool.alloc(n, lease));
    } catch (err) {
      if (err instanceof IngestError) receiverMetrics.refusedRequests.inc({ signal: signal.name, tenant, reason: err.reason });
      throw err;
    }
    for (const [reason, n] of prepared.rejectedBy) receiverMetrics.items.inc({ signal: signal.name, tenant, outcome: 'refused', reason }, n);
    if (prepared.sampledOut) receiverMetrics.items.inc({ signal: signal.name, tenant, outcome: 'sampled_out', reason: 'head_sampling' }, prepared.sampledOut);
    if (prepared.records.length === 0) return { accepted: 0, rejected: prepared.rejected, message: prepared.message };

    const refuse = (reason: string, message: string): never => {
      receiverMetrics.items.inc({ signal: signal.name, tenant, outcome: 'refused', reason }, prepared.accepted);
      receiverMetrics.refusedRequests.inc({ signal: signal.name, tenant, reason });
      throw new IngestError('unavailable', reason, message);
    };
    if (!this.health.isUp) refuse('kafka_unavailable', 'Kafka is unreachable; the data was not accepted, retry later');
    const bytes = prepared.records.reduce((n, r) => n + r.length, 0);
    if (this.inflight + bytes > this.opts.maxInflightBytes) {
      refuse('inflight_limit', `the receiver is at its in-flight limit of ${this.opts.maxInflightBytes} bytes waiting for Kafka; retry later`);
    }
    // Refused now, quickly, rather than accepted and answered after the client gave up and resent
    // (which duplicates the data once Kafka acks the first copy).
    const budget = this.opts.maxQueueWaitMs ?? 0;
    const now = performance.now();
    if (budget > 0 && this.expectedWaitMs(bytes, now) > budget) {
      refuse('queue_wait', `Kafka is acknowledging slower than data arrives: the expected wait exceeds ${budget} ms; retry later`);
    }

    const topic = this.topics[signal.topicKey];
    // Traced: the records carry the `send` span's context; else a child id of the caller's trace.
    const tp = rt ? rt.startSend(topic, prepared.records.length) : childTraceparent(traceparent);
    // Sampled span records say with what probability their non-error spans were kept (SLO weights).
    const th = signal.name === 'traces' ? otelThresholdHex(threshold) : undefined;
    const messages = prepared.records.map((value) => ({
      key: tenant,
      value,
      headers: { [H.tenant]: tenant, [H.contentSha256]: hash('sha256', value, 'hex'), [H.traceparent]: tp, ...(th && { [SAMPLING_TH_HEADER]: th }) },
    }));
    // The bytes stay counted until Kafka settles them, even if the client was already told to
    // retry: that is what bounds memory while Kafka is slow.
    const token = {};
    const endProduce = metricChild(produceSecondsByTopic, topic, () => receiverMetrics.produceSeconds.labels(topic)).startTimer();
    const produced = this.producer.send(topic, messages);
    let result: 'acked' | 'timeout' | undefined;
    try {
      result = await new Promise<'acked' | 'timeout'>((resolve, reject) => {
        this.started(bytes, token, now, () => resolve('timeout'));
        receiverMetrics.inflightBytes.set(this.inflight);
        void produced.then(() => { this.settled(bytes, token, true); resolve('acked'); }, (err: unknown) => { this.settled(bytes, token, false); reject(err); })
          .finally(() => {
            receiverMetrics.inflightBytes.set(this.inflight);
            this.pool.release(lease);
          });
        handOff();
      });
    } catch (err) {
      rt?.endSend(err);
      this.health.markDown(err);
      refuse('kafka_error', 'Kafka did not accept the data; retry later');
    }
    if (result === 'timeout') {
      rt?.endSend(new Error('Kafka ack timeout'));
      produced.catch((err: unknown) => this.health.markDown(err));
      void this.health.probeNow();
      refuse('kafka_timeout', `Kafka did not acknowledge within ${this.opts.produceTimeoutMs} ms; retry later`);
    }
    endProduce();
    rt?.endSend();
    this.health.markUp();
    metricChild(recordsByTopic, topic, () => receiverMetrics.records.labels(topic)).inc(messages.length);
    metricChild(acceptedItems, `${signal.name}\0${tenant}`, () => receiverMetrics.items.labels(signal.name, tenant, 'accepted', '')).inc(prepared.accepted);
    return { accepted: prepared.accepted, rejected: prepared.rejected, message: prepared.message };
  }
}
