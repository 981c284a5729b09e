// The timeline processor: consume clean spans, logs and metrics; write the OTel tables and
// timeline_events; publish each derived event as JSON on the timeline_events topic (key = tenant).
// A batch's offsets are committed (by runStage) only after ClickHouse and Kafka both acknowledged,
// so a crash replays the batch; deterministic ids + ReplacingMergeTree + FINAL make the replay
// invisible. Consumers of timeline_events get each event at least once and dedup by event_id.
import type { Kafka } from 'kafkajs';
import { BatchingProducer } from '../../lib/kafka/producer.ts';
import { runStage, type RunningStage, type StageContext, type StageRecord } from '../../lib/kafka/stage.ts';
import { defaultTopicNames, H, type IntakeTopicKey, type TopicNames } from '../../lib/kafka/topics.ts';
import { logger } from '../../lib/log.ts';
import { counter } from '../../lib/metrics.ts';
import { inChildSpan } from '../../lib/tracing.ts';
import { BatchWriter, TABLES, timelineInsertRow, type BatchWriterOptions, type Store, type TimelineEventRow } from '../../lib/store/index.ts';
import { eventMessageJson } from './events.ts';
import { IntakeRouting, type DeadIntakeRecord, type IntakeSink } from './intake-hook.ts';
import { eventRowFromMessage, PRODUCER_HEADER, TIMELINE_PRODUCER } from './external-events.ts';
import { mergeTransformed, PoisonRecord, transformRecord, type SignalKind, type Transformed } from './transform.ts';

export interface TimelineRunnerOptions {
  kafka: Kafka;
  store: Store;
  topics?: { spans?: string; logs?: string; metrics?: string; timelineEvents?: string; dlq?: string };
  groupId?: string;
  writer?: BatchWriterOptions;
  partitionsConsumedConcurrently?: number;
  /** The intake kinds' ClickHouse writers (processors/timeline/intake-sinks.ts); their topics are consumed too. */
  intakeSinks?: readonly IntakeSink[];
  /** Intake topic names (default: defaultTopicNames). */
  intakeTopics?: Partial<Pick<TopicNames, IntakeTopicKey>>;
  /** Runs after a batch's output is durable, before its offsets are committed (crash-injection point for tests). */
  beforeCommit?: (records: StageRecord[]) => Promise<void>;
}

export interface RunningTimeline { stop(): Promise<void>; stage: RunningStage }


const eventsOut = counter('stella_timeline_events_total', 'Timeline events derived and stored', ['kind_family']);
const poison = counter('stella_timeline_poison_records_total', 'Clean records the timeline could not decode (sent to the DLQ)');
const deadIntake = counter('stella_timeline_dead_intake_records_total', 'Intake records a sink refused (sent to the DLQ)', ['topic']);

export async function startTimelineRunner(opts: TimelineRunnerOptions): Promise<RunningTimeline> {
  const log = logger('timeline');
  const topics = {
    spans: opts.topics?.spans ?? defaultTopicNames.spansClean,
    logs: opts.topics?.logs ?? defaultTopicNames.logsClean,
    metrics: opts.topics?.metrics ?? defaultTopicNames.metricsClean,
    timelineEvents: opts.topics?.timelineEvents ?? defaultTopicNames.timelineEvents,
    dlq: opts.topics?.dlq ?? defaultTopicNames.dlq,
  };
  const intake = new IntakeRouting(opts.intakeSinks ?? [], { ...defaultTopicNames, ...opts.intakeTopics });
  const signalOf = new Map<string, SignalKind>([[topics.spans, 'traces'], [topics.logs, 'logs'], [topics.metrics, 'metrics']]);
  const writer = new BatchWriter(opts.store, opts.writer);
  const producer = new BatchingProducer(opts.kafka, { lingerMs: 2, maxBatchBytes: 900_000 });
  await producer.connect();

  // One Kafka batch can derive thousands of events; the producer splits them under the broker's
  // message.max.bytes (maxBatchBytes) itself.
  const publishEvents = async (events: TimelineEventRow[], traceparents: Map<TimelineEventRow, string>): Promise<void> => {
    await producer.send(topics.timelineEvents, events.map((e) => {
      const headers: Record<string, string> = { [H.tenant]: e.tenant_id, [PRODUCER_HEADER]: TIMELINE_PRODUCER };
      // W3C trace context flows on: the event carries its source record's traceparent.
      const tp = traceparents.get(e);
      if (tp) headers[H.traceparent] = tp;
      return { key: e.tenant_id, value: Buffer.from(eventMessageJson(e)), headers };
    }));
  };

  const deadLetterIntake = async (refused: DeadIntakeRecord[]): Promise<void> => {
    if (!refused.length) return;
    for (const d of refused) {
      deadIntake.inc({ topic: d.record.topic });
      log.warn({ topic: d.record.topic, partition: d.record.partition, offset: d.record.offset, error_code: 'BAD_INTAKE_RECORD' }, d.reason);
    }
    await producer.send(topics.dlq, refused.map(({ record: r, reason }) => ({ key: r.key ?? '', value: r.value, headers: {
      ...r.headers, [H.dlqReason]: `timeline intake: ${reason}`, [H.dlqSourceTopic]: r.topic, [H.dlqSourceOffset]: `${r.partition}/${r.offset}` } })));
  };
  // Sinks' background work (orphan retries) shares the writer and the DLQ; stopped before the writer drains.
  const sinkStops: (() => Promise<void>)[] = [];
  for (const s of opts.intakeSinks ?? []) if (s.start) sinkStops.push(await s.start({ writer, store: opts.store, deadLetter: deadLetterIntake }));

  const handle = async (records: StageRecord[], ctx: StageContext): Promise<void> => {
    const parts: Transformed[] = [];
    const dead: StageRecord[] = [];
    const traceparents = new Map<TimelineEventRow, string>();
    const external: TimelineEventRow[] = [];
    const intakeRecords: StageRecord[] = [];
    for (const r of records) {
      if (intake.handles(r.topic)) { intakeRecords.push(r); continue; }
      try {
        if (r.topic === topics.timelineEvents) {
          // Events other processors published; our own are already stored.
          if (r.headers[PRODUCER_HEADER] !== TIMELINE_PRODUCER) external.push(eventRowFromMessage(r.value, r.key));
          continue;
        }
        const part = transformRecord(signalOf.get(r.topic)!, r);
        const tp = r.headers[H.traceparent];
        if (tp) for (const e of part.events) traceparents.set(e, tp);
        parts.push(part);
      } catch (err) {
        if (!(err instanceof PoisonRecord)) throw err;
        dead.push(r);
        poison.inc();
        log.warn({ topic: r.topic, partition: r.partition, offset: r.offset, error_code: 'POISON_RECORD' }, err.message);
      }
    }
    const out = mergeTransformed(parts);
    const writes: Promise<void>[] = [];
    for (const [table, rows] of out.rows) writes.push(writer.write(table, rows));
    writes.push(writer.write(TABLES.timelineEvents, [...out.events, ...external].map(timelineInsertRow)));
    if (dead.length) {
      writes.push(producer.send(topics.dlq, dead.map((r) => ({ key: r.key ?? '', value: r.value, headers: {
        ...r.headers, [H.dlqReason]: 'timeline: undecodable record', [H.dlqSourceTopic]: r.topic, [H.dlqSourceOffset]: `${r.partition}/${r.offset}` } }))));
    }
    // Publishing overlaps the ClickHouse inserts (they run on the engine's threads while this one
    // encodes Kafka messages); the offsets are committed only after both are acknowledged. If the
    // insert fails, the whole batch is retried, so a published event's row always follows.
    if (out.events.length) writes.push(publishEvents(out.events, traceparents));
    if (intakeRecords.length) {
      writes.push(intake.write(intakeRecords, { writer, store: opts.store }).then(deadLetterIntake));
    }
    await inChildSpan(ctx.trace, 'timeline write', { 'stella.rows.events': out.events.length + external.length, 'stella.records.dlq': dead.length },
      () => Promise.all(writes));
    for (const e of [...out.events, ...external]) eventsOut.inc({ kind_family: e.kind.split('.')[0] ?? '' });
    await opts.beforeCommit?.(records);
  };

  const stage = await runStage({ name: 'timeline', groupId: opts.groupId, kafka: opts.kafka,
    topics: [topics.spans, topics.logs, topics.metrics, topics.timelineEvents, ...intake.topics], handle, partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently ?? 3 });
  return {
    stage,
    stop: async () => { await stage.stop(); for (const st of sinkStops) await st(); await writer.drain(); await producer.disconnect(); },
  };
}
