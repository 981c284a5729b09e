// The scrub stage: raw OTLP topics -> scrubbed clean topics (same key, same partition number,
// headers carried, content-sha256 recomputed, scrub-summary added), undecodable records -> DLQ
// (scrubbed, or only their digest: ./dlq.ts).
// A Kafka-direct collector's topics (`<raw>.direct.<tenant>`, lib/kafka/acls.ts) are pinned to their
// tenant: only that tenant's collector user may write them, so the topic, not the record, says whose
// data it is; a record there claiming another tenant (key or tenant header) is dead-lettered.
// Offsets are committed by runStage only after handle() resolved, and handle() resolves only after
// Kafka acked every clean/DLQ write (acks=all): a crash re-scrubs, never loses.
// Deep-debug grant starts/expiries are published as timeline events (JSON, key = tenant).
import type { Kafka } from 'kafkajs';
import { BatchingProducer, type OutMessage } from '../../lib/kafka/producer.ts';
import { logger } from '../../lib/log.ts';
import { counter } from '../../lib/metrics.ts';
import { runStage, type RunningStage, type StageContext, type StageRecord } from '../../lib/kafka/stage.ts';
import { endSpan, isSystemTenant, startChildSpan, traceparentOf } from '../../lib/tracing.ts';
import { defaultTopicNames, H, type TopicNames } from '../../lib/kafka/topics.ts';
import { directTopics } from '../../lib/kafka/acls.ts';
import type { SignalName } from '../../lib/otlp/proto.ts';
import type { ScrubConfig } from './config.ts';
import { GrantTracker, type TimelineEvent } from './grants.ts';
import { deadLetter } from './dlq.ts';
import { scrubRecord } from './record.ts';

export type ScrubTopics = Pick<TopicNames, 'spans' | 'metrics' | 'logs' | 'spansClean' | 'metricsClean' | 'logsClean' | 'dlq' | 'timelineEvents'>;

export interface ScrubRunnerOptions {
  kafka: Kafka;
  /** Per-tenant scrub policies (`parseScrubConfig`), grants included. */
  config: ScrubConfig;
  topics?: Partial<ScrubTopics>;
  /** Consumer group (default `stella-scrub`); tests pass unique ones. */
  groupId?: string;
  /** Clock for deep-debug grants (tests move it). */
  now?: () => Date;
  /** How often grant starts/expiries are checked without traffic (default 5 s). */
  grantTickMs?: number;
  partitionsConsumedConcurrently?: number;
  fromBeginning?: boolean;
  /** Tenants with a Kafka-direct collector (kafka.directTenants): their direct topics are consumed too. */
  directTenants?: readonly string[];
}

export interface RunningScrub {
  stage: RunningStage;
  /** Publish due grant events now (also runs on a timer and before each batch). Resolves when acked. */
  publishGrantEvents(): Promise<TimelineEvent[]>;
  /** Swap in a reloaded config (new grants included); batches already being handled finish with the old one. */
  setConfig(config: ScrubConfig): void;
  stop(): Promise<void>;
}

const redactions = counter('stella_scrub_redactions_total', 'Values redacted by the scrubber', ['tenant', 'rule']);
const recordsOut = counter('stella_scrub_records_total', 'Raw records handled by the scrubber', ['signal', 'outcome']);
const grantEvents = counter('stella_scrub_grant_events_total', 'Deep-debug grant events published', ['kind']);

export async function startScrub(opts: ScrubRunnerOptions): Promise<RunningScrub> {
  const log = logger('scrub');
  const topics: ScrubTopics = { ...pickScrubTopics(defaultTopicNames), ...opts.topics };
  const route = new Map<string, { signal: SignalName; clean: string; pinned?: string }>([
    [topics.spans, { signal: 'traces', clean: topics.spansClean }],
    [topics.metrics, { signal: 'metrics', clean: topics.metricsClean }],
    [topics.logs, { signal: 'logs', clean: topics.logsClean }],
  ]);
  for (const tenant of opts.directTenants ?? []) {
    const d = directTopics(topics, tenant);
    route.set(d.spans, { signal: 'traces', clean: topics.spansClean, pinned: tenant });
    route.set(d.metrics, { signal: 'metrics', clean: topics.metricsClean, pinned: tenant });
    route.set(d.logs, { signal: 'logs', clean: topics.logsClean, pinned: tenant });
  }
  const now = opts.now ?? (() => new Date());
  // The shared producer (idempotent, acks=all; it renews its session after a failed produce, which
  // a raw kafkajs producer does not). Clean records name their source partition explicitly.
  const producer = new BatchingProducer(opts.kafka, { lingerMs: 0 });
  await producer.connect();
  let sending: Promise<unknown> = Promise.resolve();
  const send = (topicMessages: { topic: string; messages: OutMessage[] }[]): Promise<void> => {
    const p = Promise.all(topicMessages.map((t) => producer.send(t.topic, t.messages)));
    sending = p;
    return p.then(() => {});
  };

  let config = opts.config;
  const tracker = new GrantTracker(config);
  let publishing: Promise<TimelineEvent[]> | undefined;
  const publishGrantEvents = (): Promise<TimelineEvent[]> => {
    publishing ??= (async () => {
      const due = tracker.due(now());
      if (due.length === 0) return due;
      await send([{ topic: topics.timelineEvents, messages: due.map((e) => ({
        key: e.tenant_id, value: Buffer.from(JSON.stringify(e)), headers: { [H.tenant]: e.tenant_id } })) }]);
      tracker.ack(due);
      for (const e of due) {
        grantEvents.inc({ kind: e.kind });
        log.info({ tenant_id: e.tenant_id, kind: e.kind, grant_id: e.resource_id, rules: e.details.rules }, 'deep-debug grant event');
      }
      return due;
    })().finally(() => { publishing = undefined; });
    return publishing;
  };

  const handle = async (records: StageRecord[], ctx: StageContext): Promise<void> => {
    const r = route.get(ctx.topic);
    if (!r) throw new Error(`scrub: no route for topic ${ctx.topic}`);
    // Grant events go out before data scrubbed under the grant, so the timeline shows the grant first.
    await publishGrantEvents();
    const at = now();
    // Self-tracing: a clean record carries the `scrub` span's context (its raw traceparent when off).
    const span = startChildSpan(ctx.trace, 'scrub', { 'messaging.batch.message_count': records.length });
    const tp = span && traceparentOf(span);
    const current = config;
    const clean: OutMessage[] = [];
    const dead: OutMessage[] = [];
    const counts = new Map<string, { tenant: string; rule: string; n: number }>();
    for (const raw of records) {
      // Pinned: the record's own claims must agree with its topic's tenant (absent ones are filled in).
      const pinned = r.pinned;
      const foreign = pinned !== undefined && ((raw.key !== null && raw.key !== pinned) || (raw.headers[H.tenant] !== undefined && raw.headers[H.tenant] !== pinned));
      const rec = pinned === undefined || foreign ? raw : { ...raw, key: pinned, headers: { ...raw.headers, [H.tenant]: pinned } };
      const v = foreign ? { kind: 'dlq' as const, reason: `scrub: record on tenant ${pinned}'s direct topic claims another tenant` } : scrubRecord(r.signal, rec, current, at);
      if (v.kind === 'clean') {
        // A direct topic's records go where the receiver's records of that tenant go (murmur2 of the key).
        clean.push({ key: rec.key, value: v.value, headers: tp && !isSystemTenant(v.tenant) ? { ...v.headers, [H.traceparent]: tp } : v.headers,
          partition: pinned === undefined ? rec.partition : undefined });
        for (const [rule, n] of Object.entries(v.summary.rules)) {
          const k = `${v.tenant}\u0000${rule}`;
          const c = counts.get(k);
          if (c) c.n += n; else counts.set(k, { tenant: v.tenant, rule, n });
        }
      } else {
        dead.push(deadLetter(r.signal, rec, v.reason, { topic: rec.topic, partition: rec.partition, offset: rec.offset }, current, at));
        log.warn({ topic: rec.topic, partition: rec.partition, offset: rec.offset, error_code: 'POISON_RECORD', error_message: v.reason }, 'raw record sent to the DLQ');
      }
    }
    const out: { topic: string; messages: OutMessage[] }[] = [];
    if (clean.length) out.push({ topic: r.clean, messages: clean });
    if (dead.length) out.push({ topic: topics.dlq, messages: dead });
    await send(out).catch((err: unknown) => { endSpan(span, err); throw err; }); // acks=all: resolves only when every clean and DLQ record is durable
    endSpan(span);
    // Counted once the batch is durable, so a retried batch is not counted twice.
    for (const c of counts.values()) redactions.inc({ tenant: c.tenant, rule: c.rule }, c.n);
    recordsOut.inc({ signal: r.signal, outcome: 'clean' }, clean.length);
    if (dead.length) recordsOut.inc({ signal: r.signal, outcome: 'dlq' }, dead.length);
  };

  const stage = await runStage({ name: 'scrub', groupId: opts.groupId, kafka: opts.kafka, handle,
    topics: [...route.keys()], fromBeginning: opts.fromBeginning,
    partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently });
  const timer = setInterval(() => {
    publishGrantEvents().catch((err: unknown) => log.warn({ error_message: String(err) }, 'grant events not published; retrying'));
  }, opts.grantTickMs ?? 5000);
  timer.unref();
  await publishGrantEvents().catch((err: unknown) => log.warn({ error_message: String(err) }, 'grant events not published; retrying'));

  return {
    stage, publishGrantEvents,
    setConfig: (next) => { config = next; tracker.setConfig(next); },
    stop: async () => {
      clearInterval(timer);
      await stage.stop();
      await publishing?.catch(() => {});
      await sending.catch(() => {});
      await producer.disconnect();
    },
  };
}

function pickScrubTopics(t: TopicNames): ScrubTopics {
  const { spans, metrics, logs, spansClean, metricsClean, logsClean, dlq, timelineEvents } = t;
  return { spans, metrics, logs, spansClean, metricsClean, logsClean, dlq, timelineEvents };
}
