// A processor stage: consume a batch from Kafka, hand it to the processor, and commit the offsets
// only after the processor resolved (its output is durable). A failing batch is retried with
// backoff from the same offsets, never skipped; poison records are the processor's to route to
// the DLQ. Each stage is its own consumer group, so it restarts and scales independently.
import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import { consumerGroupOptions, keepHeartbeating } from './group-timing.ts';
import { restartOnFatalCrash } from './restart.ts';
import { logger } from '../log.ts';
import { counter, gauge, histogram } from '../metrics.ts';
import { startBatchTrace, type Context } from '../tracing.ts';

export interface StageRecord {
  topic: string; partition: number; offset: string; key: string | null; value: Buffer;
  headers: Record<string, string>; timestamp: string;
}

export interface StageContext {
  topic: string;
  partition: number;
  /** The batch's `process <topic>` span (self-tracing); undefined when tracing is off or the batch is the system tenant's only. */
  trace?: Context;
}

export interface StageOptions {
  /** Names the consumer group (`stella-<name>` unless groupId is given) and the logger. */
  name: string;
  groupId?: string;
  kafka: Kafka;
  topics: string[];
  /** Must make its output durable before resolving; the batch's offsets are committed after. */
  handle: (records: StageRecord[], ctx: StageContext) => Promise<void>;
  fromBeginning?: boolean;
  partitionsConsumedConcurrently?: number;
  maxBytesPerPartition?: number;
  /** Called with this member's assignment (topic → partitions) after every group join, the first
   * one included (it happens before runStage returns, so a listener added later misses it). */
  onGroupJoin?: (memberAssignment: Record<string, number[]>) => void;
}

export interface RunningStage { consumer: Consumer; stop(): Promise<void> }

const batches = counter('stella_stage_batches_total', 'Batches handled by a processor stage', ['stage', 'outcome']);
const records = counter('stella_stage_records_total', 'Records handled by a processor stage', ['stage', 'topic']);
const lag = gauge('stella_stage_lag_records', 'High watermark minus the last handled offset', ['stage', 'topic', 'partition']);
const duration = histogram('stella_stage_batch_seconds', 'Time to handle one batch and commit it', ['stage']);

export function headerStrings(h: Record<string, Buffer | string | (Buffer | string)[] | undefined> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? String(v[0]) : String(v);
  }
  return out;
}

export async function runStage(opts: StageOptions): Promise<RunningStage> {
  const log = logger(opts.name);
  const groupId = opts.groupId ?? `stella-${opts.name}`;
  const consumer = opts.kafka.consumer({
    groupId,
    maxBytesPerPartition: opts.maxBytesPerPartition ?? 4 * 1024 * 1024,
    maxWaitTimeInMs: 200,
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 200, maxRetryTime: 5000 },
    ...consumerGroupOptions(),
  });
  let stopping = false;
  if (opts.onGroupJoin) { const cb = opts.onGroupJoin; consumer.on(consumer.events.GROUP_JOIN, (e) => cb(e.payload.memberAssignment)); }
  const start = async (): Promise<void> => {
    await consumer.connect();
    await consumer.subscribe({ topics: opts.topics, fromBeginning: opts.fromBeginning ?? true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently ?? 1,
      eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload) => {
        if (batch.messages.length === 0) return;
        const recs: StageRecord[] = batch.messages.map((m) => ({
          topic: batch.topic, partition: batch.partition, offset: m.offset, key: m.key?.toString() ?? null,
          value: m.value ?? Buffer.alloc(0), headers: headerStrings(m.headers), timestamp: m.timestamp,
        }));
        // One consumer span per batch, linked to each record's traceparent (lib/tracing.ts).
        const bt = startBatchTrace(opts.name, groupId, batch.topic, batch.partition, recs);
        try {
          const end = duration.startTimer({ stage: opts.name });
          for (let attempt = 0; ; attempt++) {
            if (!isRunning() || isStale()) return; // rebalance or shutdown: the next owner redoes it
            try {
              await keepHeartbeating(heartbeat, () => opts.handle(recs, { topic: batch.topic, partition: batch.partition, trace: bt?.ctx }));
              break;
            } catch (err) {
              batches.inc({ stage: opts.name, outcome: 'retry' });
              bt?.span.recordException(err instanceof Error ? err : String(err));
              log.warn({ topic: batch.topic, partition: batch.partition, error_message: String(err), attempt }, 'batch failed; retrying from the same offset');
              if (stopping) return;
              await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** attempt, 5000)));
              await heartbeat();
            }
          }
          const last = recs[recs.length - 1]!;
          const next = (BigInt(last.offset) + 1n).toString();
          // resolveOffset moves this consumer's fetch position past the batch; commitOffsets makes that
          // durable for the group (autoCommit is off, so nothing is committed before the output is).
          resolveOffset(last.offset);
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
          batches.inc({ stage: opts.name, outcome: 'ok' });
          records.inc({ stage: opts.name, topic: batch.topic }, recs.length);
          lag.set({ stage: opts.name, topic: batch.topic, partition: String(batch.partition) },
            Math.max(0, Number(BigInt(batch.highWatermark) - BigInt(next))));
          end();
          await heartbeat();
        } finally {
          bt?.end();
        }
      },
    });
  };
  restartOnFatalCrash(consumer, start, { log, stopping: () => stopping });
  await start();
  return {
    consumer,
    stop: async () => { stopping = true; await consumer.disconnect(); },
  };
}
