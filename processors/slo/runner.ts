// The SLO runner: Kafka (clean spans + metrics) → SloCore → slo_events, the tenant timeline,
// golden signals in ClickHouse, Alertmanager/webhooks, incident mode (docs/slo.md "Runner").
//
// One SloCore per source partition: a tenant's records share a partition (key = tenant), so the
// core of partition p owns the burn-rate state of every tenant that hashes to p, in both topics.
// Per batch: decode, tick every event-time minute that completed, ingest, then make the outputs
// durable (golden rows + timeline rows in ClickHouse, timeline_events + slo_events in Kafka), then
// write the core's checkpoint together with the next offsets it covers (ClickHouse
// `slo_checkpoints`), and only then let runStage commit. On restore, records below the
// checkpoint's offsets are skipped, so a crash between checkpoint and commit double-counts nothing.
import type { Kafka } from 'kafkajs';
import { Partitioners } from 'kafkajs';
import { BatchingProducer } from '../../lib/kafka/producer.ts';
import { runStage, type RunningStage, type StageContext, type StageRecord } from '../../lib/kafka/stage.ts';
import { inChildSpan } from '../../lib/tracing.ts';
import { defaultTopicNames, H } from '../../lib/kafka/topics.ts';
import { logger } from '../../lib/log.ts';
import { counter } from '../../lib/metrics.ts';
import { decodeMetrics, decodeTraces, type ExportMetricsServiceRequest, type ExportTraceServiceRequest } from '../../lib/otlp/proto.ts';
import { TABLES, timelineInsertRow, type Store, type TimelineEventRow } from '../../lib/store/index.ts';
import { validateTenantId } from '../../lib/tenancy.ts';
import { headSampler, probabilityFromThreshold, SAMPLING_TH_HEADER, type IncidentListener } from '../../receiver/sampling.ts';
import { eventMessage } from '../timeline/events.ts';
import { AlertDispatcher, type DispatcherOptions } from './alert-dispatcher.ts';
import type { SloConfig } from './config.ts';
import type { SloSummary } from './evaluator.ts';
import type { IncidentModeEvent, IncidentModeOptions } from './incident-mode.ts';
import { nanosToMs } from './samples.ts';
import { SloCore, type SloTick } from './slo-core.ts';
import { CHECKPOINT_TABLE, incidentTimelineEvent, incidentWebhookPayload, insertGoldenSignals } from './outputs.ts';

const MIN = 60_000;
/** A catch-up after a long pause evaluates at most this many minutes (the longest window, 3 days). */
const MAX_CATCH_UP_MINUTES = 4320;

export interface SloRunnerOptions {
  kafka: Kafka;
  /** Parsed SLO definitions (parseSloConfig). */
  config: SloConfig;
  store: Store;
  topics?: { spans?: string; metrics?: string; sloEvents?: string; timelineEvents?: string };
  /** Consumer group; also the checkpoint key. Default `stella-slo`. */
  groupId?: string;
  alertmanagerUrl?: string | string[];
  webhooks?: DispatcherOptions['webhooks'];
  /** Base of generatorURL links (this deployment's API). */
  externalURL?: string;
  resendIntervalMs?: number;
  sender?: DispatcherOptions['sender'];
  incident?: IncidentModeOptions;
  /** Receives incident-mode changes (the receiver's head sampler). Default: the process-wide `headSampler`. */
  sampler?: IncidentListener;
  /** Wall clock (ms). Used for idle ticks, manual incident TTLs and to clamp future event times. */
  now?: () => number;
  /** How often idle partitions are checked. Default 15 s. */
  idleTickMs?: number;
  /** A partition without new data for this long is evaluated at wall clock − lagMs. Default 120 s. */
  idleAfterMs?: number;
  /** Expected pipeline lag for idle ticks. Default 60 s. */
  lagMs?: number;
  goldenLatenessMs?: number;
  /**
   * How often the running totals of open golden-signal minutes are written (partial rows), so that
   * the current minute shows within seconds (`stella obs top`). 0 (default) = only closed minutes,
   * `goldenLatenessMs` after their end. `stella run` passes `slo.liveInterval` (default 1 s).
   */
  goldenLiveMs?: number;
  /**
   * Minimum wall time between two checkpoints of a partition (default 10 s; 0 = after every batch).
   * A checkpoint is also written at once after an alert transition or incident change, on the first
   * batch of a topic, and on stop(). Between checkpoints the committed offsets run ahead of it: a
   * restart rewinds the partition to the checkpoint's offsets (see docs/slo.md).
   */
  checkpointIntervalMs?: number;
  partitionsConsumedConcurrently?: number;
  /** Test hook: runs after the checkpoint is durable, before runStage commits. */
  beforeCommit?: (records: StageRecord[]) => Promise<void>;
}

export interface IncidentStatus { tenant: string; on: boolean; sinceMs?: number; untilMs?: number; reason?: string; by?: string }

export interface RunningSloRunner {
  stage: RunningStage;
  dispatcher: AlertDispatcher;
  /** SLOs of one tenant with current burn rates and budget left. */
  summaries(tenant: string): Promise<SloSummary[]>;
  incidentStatus(tenant: string): Promise<IncidentStatus>;
  /** Manual incident mode (API / CLI); the change is checkpointed before this resolves. */
  setIncident(tenant: string, on: boolean, o: { ttlMs: number; by: string }): Promise<{ status: IncidentStatus; events: IncidentModeEvent[] }>;
  /** Runs the idle check now (tests). */
  idleTick(): Promise<void>;
  /** Stops consuming and writes a final checkpoint per partition; `{checkpoint: false}` skips it (crash simulation in tests). */
  stop(o?: { checkpoint?: boolean }): Promise<void>;
}

interface Checkpointed { offsets: Record<string, string>; lastTickMinute: number | null; watermarkMs: number | null }

interface PartitionCore {
  partition: number;
  core: SloCore;
  offsets: Record<string, string>;
  version: number;
  /** Last minute whose end was evaluated. */
  lastTickMinute: number;
  /** Max event time seen (clamped to wall clock + 5 min). */
  watermarkMs: number;
  lastDataWallMs: number;
  /** Tenants whose incident mode this core last reported to the sampler. */
  reported: Set<string>;
  lastCheckpointWallMs: number;
  /** State or offsets changed since the last checkpoint. */
  dirty: boolean;
  /** Spans ingested since the open golden-signal minutes were last written live. */
  liveDirty: boolean;
}

/** Thrown after seeking a partition back to its checkpoint: runStage drops the (now stale) batch. */
class RewoundToCheckpoint extends Error {}

const recordsCounter = () => counter('stella_slo_records_total', 'Clean records consumed by the SLO runner', ['topic', 'outcome']);
const rewindsCounter = () => counter('stella_slo_rewinds_total', 'Partitions sought back to their SLO checkpoint after a restart or rebalance', ['topic']);
const checkpointsCounter = () => counter('stella_slo_checkpoints_total', 'SLO state checkpoints written', ['reason']);
const ticksCounter = () => counter('stella_slo_ticks_total', 'SLO evaluations (one per event-time minute per partition)', ['trigger']);

export async function startSloRunner(opts: SloRunnerOptions): Promise<RunningSloRunner> {
  const log = logger('slo');
  const now = opts.now ?? Date.now;
  const groupId = opts.groupId ?? 'stella-slo';
  const topics = {
    spans: opts.topics?.spans ?? defaultTopicNames.spansClean,
    metrics: opts.topics?.metrics ?? defaultTopicNames.metricsClean,
    sloEvents: opts.topics?.sloEvents ?? defaultTopicNames.sloEvents,
    timelineEvents: opts.topics?.timelineEvents ?? defaultTopicNames.timelineEvents,
  };
  const sampler = opts.sampler ?? headSampler;
  const idleAfterMs = opts.idleAfterMs ?? 120_000;
  const lagMs = opts.lagMs ?? 60_000;
  const ams = opts.alertmanagerUrl === undefined ? [] : Array.isArray(opts.alertmanagerUrl) ? opts.alertmanagerUrl : [opts.alertmanagerUrl];
  const externalURL = (opts.externalURL ?? 'http://localhost').replace(/\/+$/, '');
  const dispatcher = new AlertDispatcher({ alertmanagers: ams, webhooks: opts.webhooks, externalURL, resendIntervalMs: opts.resendIntervalMs, sender: opts.sender });
  const producer = new BatchingProducer(opts.kafka, { lingerMs: 2, maxBatchBytes: 900_000 });
  await producer.connect();

  // Partition count of the spans topic: where a tenant not seen yet lives (murmur2, as producers key it).
  const admin = opts.kafka.admin();
  await admin.connect();
  const meta = await admin.fetchTopicMetadata({ topics: [topics.spans] });
  const partitionCount = meta.topics[0]?.partitions.length ?? 1;
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: partitionCount }, (_, i) => ({ partitionId: i, leader: 0, replicas: [0], isr: [0], partitionErrorCode: 0, offlineReplicas: [] as number[] }));
  const tenantPartition = new Map<string, number>();
  const partitionOf = (tenant: string): number => tenantPartition.get(tenant)
    ?? partitioner({ topic: topics.spans, partitionMetadata, message: { key: tenant, value: null } });

  const cores = new Map<number, PartitionCore>();
  const locks = new Map<number, Promise<unknown>>();
  const withLock = <T>(p: number, fn: () => Promise<T>): Promise<T> => {
    const prev = locks.get(p) ?? Promise.resolve();
    const run = prev.catch(() => {}).then(fn);
    locks.set(p, run);
    return run;
  };

  const loadCore = async (p: number): Promise<PartitionCore> => {
    const existing = cores.get(p);
    if (existing) return existing;
    const core = new SloCore(opts.config, { dispatcher, incident: opts.incident, goldenLatenessMs: opts.goldenLatenessMs });
    const pc: PartitionCore = { partition: p, core, offsets: {}, version: 0, lastTickMinute: Number.NEGATIVE_INFINITY,
      watermarkMs: Number.NEGATIVE_INFINITY, lastDataWallMs: now(), reported: new Set(), lastCheckpointWallMs: now(), dirty: false, liveDirty: false };
    const rows = await opts.store.selectRows<{ version: string; offsets: string; state: string }>(
      // Only the newest version's (large) state column is read, whatever older versions await a merge.
      `SELECT version, offsets, state FROM ${CHECKPOINT_TABLE} WHERE group_id = {g:String} AND partition = {p:UInt32}
         AND version = (SELECT max(version) FROM ${CHECKPOINT_TABLE} WHERE group_id = {g:String} AND partition = {p:UInt32}) LIMIT 1`,
      { g: groupId, p });
    if (rows[0]) {
      const cp = JSON.parse(rows[0].offsets) as Checkpointed;
      const report = core.restore(Buffer.from(rows[0].state, 'base64'));
      pc.version = Number(rows[0].version);
      pc.offsets = cp.offsets;
      pc.lastTickMinute = cp.lastTickMinute ?? Number.NEGATIVE_INFINITY;
      pc.watermarkMs = cp.watermarkMs ?? Number.NEGATIVE_INFINITY;
      log.info({ partition: p, version: pc.version, restored: report.restored.length, discarded: report.discarded }, 'SLO state restored');
    }
    cores.set(p, pc);
    syncSampler(pc);
    // Alerts that were firing when the previous process stopped: refresh them now, before the
    // endsAt it gave them passes (the next evaluation may be minutes away with little traffic).
    const resent = dispatcher.refresh(core.evaluator.firingNow());
    if (resent) log.info({ partition: p, alerts: resent }, 'restored firing alerts re-sent');
    return pc;
  };

  /** Tell the receiver's sampler which tenants of this core are in incident mode (and until when). */
  const syncSampler = (pc: PartitionCore): void => {
    const active = pc.core.incidents.list(Number.NEGATIVE_INFINITY);
    const seen = new Set<string>();
    for (const a of active) { sampler.setIncident(a.tenant, a.untilMs); seen.add(a.tenant); }
    for (const t of pc.reported) if (!seen.has(t)) sampler.clearIncident(t);
    pc.reported = seen;
  };

  /** Evaluate every minute that ended before `watermarkMs`'s minute. */
  const advance = (pc: PartitionCore, watermarkMs: number, trigger: 'data' | 'idle'): SloTick[] => {
    const lastComplete = Math.floor(watermarkMs / MIN) - 1;
    if (!(lastComplete > pc.lastTickMinute)) return [];
    const from = pc.lastTickMinute === Number.NEGATIVE_INFINITY ? lastComplete : Math.max(pc.lastTickMinute + 1, lastComplete - MAX_CATCH_UP_MINUTES + 1);
    const out: SloTick[] = [];
    for (let m = from; m <= lastComplete; m++) out.push(pc.core.tick(m * MIN + MIN - 1));
    pc.lastTickMinute = lastComplete;
    ticksCounter().inc({ trigger }, out.length);
    return out;
  };

  const publishTimeline = async (events: TimelineEventRow[]): Promise<void> => {
    if (!events.length) return;
    await opts.store.insertRows(TABLES.timelineEvents, events.map(timelineInsertRow));
    // Published after the rows are stored, like the timeline processor: a reader following the topic finds the row.
    await producer.send(topics.timelineEvents, events.map((e) => ({ key: e.tenant_id, value: Buffer.from(JSON.stringify(eventMessage(e))),
      headers: { [H.tenant]: e.tenant_id, 'event-id': e.event_id } })));
  };

  const checkpointIntervalMs = opts.checkpointIntervalMs ?? 10_000;
  const writeCheckpoint = async (pc: PartitionCore, reason: string): Promise<void> => {
    const cp: Checkpointed = { offsets: pc.offsets, lastTickMinute: Number.isFinite(pc.lastTickMinute) ? pc.lastTickMinute : null,
      watermarkMs: Number.isFinite(pc.watermarkMs) ? pc.watermarkMs : null };
    await opts.store.insertRows(CHECKPOINT_TABLE, [{ group_id: groupId, partition: pc.partition, version: pc.version + 1,
      offsets: JSON.stringify(cp), state: Buffer.from(pc.core.checkpoint()).toString('base64') }]);
    pc.version++;
    pc.lastCheckpointWallMs = now();
    pc.dirty = false;
    checkpointsCounter().inc({ reason });
  };

  /** Make a step's outputs durable, then (when due) the checkpoint with the offsets it covers. */
  const persist = async (pc: PartitionCore, ticks: SloTick[], extraIncidents: IncidentModeEvent[] = [], force?: string): Promise<void> => {
    const incidents = [...ticks.flatMap((t) => t.incidentEvents), ...extraIncidents];
    const timeline = [...ticks.flatMap((t) => t.timelineEvents), ...incidents.map(incidentTimelineEvent)];
    // slo_events and timeline rows both come from the transitions, in the same order: the record
    // carries the timeline event id as header `event-id`, so consumers can deduplicate replays.
    const sloEvents = ticks.flatMap((t) => t.sloEvents.map((r, i) => ({ ...r, eventId: t.timelineEvents[i]?.event_id ?? '' })));
    const golden = ticks.flatMap((t) => t.goldenSignals);
    await Promise.all([
      insertGoldenSignals(opts.store, golden),
      publishTimeline(timeline),
      sloEvents.length ? producer.send(topics.sloEvents, sloEvents.map((r) => ({ key: r.key, value: Buffer.from(r.value),
        headers: { ...r.headers, 'event-id': r.eventId } }))) : Promise.resolve(),
    ]);
    for (const e of incidents) {
      for (const w of dispatcher.webhooks) w.poster.enqueue(incidentWebhookPayload(e, w.receiver, externalURL));
      log.info({ tenant_id: e.tenant, kind: e.kind, reason: e.reason }, 'incident mode changed');
    }
    syncSampler(pc);
    pc.dirty = true;
    // Transitions and incident changes are checkpointed at once: a restart must not fire them again.
    const reason = force ?? (sloEvents.length || incidents.length ? 'transition' : now() - pc.lastCheckpointWallMs >= checkpointIntervalMs ? 'interval' : undefined);
    if (reason) await writeCheckpoint(pc, reason);
  };

  const handle = async (records: StageRecord[], ctx: StageContext): Promise<void> => {
    await withLock(ctx.partition, async () => {
      const pc = await loadCore(ctx.partition);
      try {
        await inChildSpan(ctx.trace, 'slo evaluate', { 'messaging.batch.message_count': records.length }, () => applyBatch(pc, records, ctx.topic));
      } catch (err) {
        // The core already holds part of this batch: drop it, so the retry (from the batch's first
        // offset) starts from the last durable checkpoint instead of counting records twice.
        cores.delete(ctx.partition);
        // A rewind throws too: runStage must not commit this batch; it finds the batch stale
        // (the fetch position moved) and drops it, and the next fetch starts at the checkpoint.
        throw err;
      }
      await opts.beforeCommit?.(records);
    });
  };

  const applyBatch = async (pc: PartitionCore, records: StageRecord[], topic: string): Promise<void> => {
    const next = pc.offsets[topic];
    // The group's committed offset may be ahead of the checkpoint (checkpoints are throttled; a
    // crash or rebalance loses what came after): replay from the checkpoint's offset instead.
    if (next !== undefined && BigInt(records[0]!.offset) > BigInt(next)) {
      rewindsCounter().inc({ topic });
      log.info({ topic, partition: pc.partition, from: records[0]!.offset, to: next }, 'rewinding to the SLO checkpoint');
      consumerRef!.seek({ topic, partition: pc.partition, offset: next });
      throw new RewoundToCheckpoint(`partition ${pc.partition} of ${topic} rewound to ${next}`);
    }
    const ticks: SloTick[] = [];
    const isSpans = topic === topics.spans;
    const clampMs = now() + 5 * MIN;
    let fresh = 0;
    for (const r of records) {
      if (next !== undefined && BigInt(r.offset) < BigInt(next)) { recordsCounter().inc({ topic, outcome: 'already_applied' }); continue; }
      const tenant = r.headers[H.tenant] ?? r.key ?? '';
      if (validateTenantId(tenant)) { recordsCounter().inc({ topic, outcome: 'no_tenant' }); continue; }
      tenantPartition.set(tenant, pc.partition);
      let req: ExportTraceServiceRequest | ExportMetricsServiceRequest;
      try {
        req = isSpans ? decodeTraces(r.value) : decodeMetrics(r.value);
      } catch {
        recordsCounter().inc({ topic, outcome: 'undecodable' }); // the timeline processor routes it to the DLQ
        continue;
      }
      const maxMs = Math.min(clampMs, isSpans ? maxSpanEndMs(req as ExportTraceServiceRequest) : maxPointTimeMs(req as ExportMetricsServiceRequest));
      // Minutes before this record's latest event time are complete (a partition is ordered): evaluate them first.
      if (maxMs > pc.watermarkMs) {
        pc.watermarkMs = maxMs;
        ticks.push(...advance(pc, maxMs, 'data'));
      }
      if (isSpans) {
        pc.core.ingestTraces(tenant, req as ExportTraceServiceRequest, receiverKeepProbability(r.headers[SAMPLING_TH_HEADER], topic));
        pc.liveDirty = true;
      }
      else pc.core.ingestMetrics(tenant, req as ExportMetricsServiceRequest);
      fresh++;
      recordsCounter().inc({ topic, outcome: 'applied' });
    }
    if (fresh) pc.lastDataWallMs = now();
    pc.offsets[topic] = (BigInt(records[records.length - 1]!.offset) + 1n).toString();
    // The first batch of a topic pins its offsets in a checkpoint, so a later gap is always detectable.
    await persist(pc, ticks, [], next === undefined ? 'first_batch' : undefined);
  };

  /** Partitions with records not consumed yet (offset below the high watermark): not idle, only slow. */
  const backlogged = async (): Promise<Set<number> | undefined> => {
    try {
      const out = new Set<number>();
      for (const topic of [topics.spans, topics.metrics]) {
        for (const o of await admin.fetchTopicOffsets(topic)) {
          const next = cores.get(o.partition)?.offsets[topic];
          if (next !== undefined && BigInt(next) < BigInt(o.high)) out.add(o.partition);
        }
      }
      return out;
    } catch (err) {
      log.warn({ error_message: String(err) }, 'cannot read high watermarks; idle evaluation skipped this round');
      return undefined;
    }
  };

  const idleTick = async (): Promise<void> => {
    // A partition only looks idle while its records wait behind others (catch-up after an outage):
    // evaluating it at the wall clock would make its backlog late. Ask Kafka.
    const behind = cores.size ? await backlogged() : undefined;
    for (const p of [...cores.keys()]) {
      await withLock(p, async () => {
        const pc = cores.get(p);
        if (!pc) return;
        const wall = now();
        const ticks: SloTick[] = [];
        if (behind && !behind.has(p) && wall - pc.lastDataWallMs >= idleAfterMs) {
          const target = wall - lagMs;
          if (target > pc.watermarkMs) pc.watermarkMs = target;
          ticks.push(...advance(pc, pc.watermarkMs, 'idle'));
        }
        // Manual incident TTLs are wall-clock times.
        const expired = pc.core.incidents.expire(wall);
        if (ticks.length || expired.length) await persist(pc, ticks, expired);
      }).catch((err: unknown) => log.warn({ partition: p, error_message: String(err) }, 'idle evaluation failed; retrying on the next tick'));
    }
  };

  const status = (pc: PartitionCore, tenant: string): IncidentStatus => {
    const a = pc.core.incidents.list(now()).find((x) => x.tenant === tenant);
    return a ? { tenant, on: true, sinceMs: a.sinceMs, untilMs: a.untilMs, reason: a.reason, by: a.by } : { tenant, on: false };
  };

  let consumerRef: RunningStage['consumer'] | undefined;
  // Partitions this member no longer owns: forget their cores, so a later re-assignment reloads the
  // checkpoint another member may have advanced meanwhile. Registered through runStage: the first
  // join happens before runStage returns.
  const onGroupJoin = (memberAssignment: Record<string, number[]>): void => {
    const owned = new Set<number>();
    for (const list of Object.values(memberAssignment)) for (const p of list) owned.add(p);
    for (const p of [...cores.keys()]) if (!owned.has(p)) void withLock(p, async () => { cores.delete(p); });
    // Load the owned partitions' checkpoints now, not at their first record: incident modes reach
    // the sampler and idle partitions keep being evaluated (and their TTLs expire) after a restart.
    for (const p of owned) {
      void withLock(p, () => loadCore(p)).catch((err: unknown) => log.warn({ partition: p, error_message: String(err) }, 'loading the SLO checkpoint failed; retried at the first record'));
    }
  };
  const stage = await runStage({ name: 'slo', groupId, kafka: opts.kafka, topics: [topics.spans, topics.metrics], handle,
    partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently ?? 2, onGroupJoin });
  consumerRef = stage.consumer;
  const timer = setInterval(() => { void idleTick(); }, opts.idleTickMs ?? 15_000);
  timer.unref();
  // Live golden signals: the open minutes of each core that took spans since the last round, as
  // partial rows. Advisory only (outside the checkpoint protocol): each minute's closed row, written
  // later by persist(), replaces them. Inserted under the partition's lock, so a partial row never
  // lands after the closed row of its minute (the table keeps the last inserted row of a key).
  let liveRound: Promise<void> = Promise.resolve();
  const writeLive = async (): Promise<void> => {
    for (const p of [...cores.keys()]) {
      await withLock(p, async () => {
        const pc = cores.get(p);
        if (!pc?.liveDirty) return;
        pc.liveDirty = false;
        try { await insertGoldenSignals(opts.store, pc.core.golden.openRows()); } catch (err) { pc.liveDirty = true; throw err; }
      });
    }
  };
  const liveTimer = opts.goldenLiveMs ? setInterval(() => {
    liveRound = liveRound.then(writeLive).catch((err: unknown) => log.warn({ error_message: String(err) }, 'writing live golden signals failed; retried next round'));
  }, opts.goldenLiveMs) : undefined;
  liveTimer?.unref();
  // Firing alerts are refreshed on their own timer, whatever the traffic: Alertmanager resolves an
  // alert whose endsAt (4 resend intervals after a send) passes. Reads only the latest evaluation
  // of each owned core (synchronous, so no lock is needed); cores of revoked partitions are gone.
  const resendTimer = setInterval(() => {
    for (const pc of cores.values()) dispatcher.refresh(pc.core.evaluator.firingNow());
  }, Math.max(250, Math.floor(dispatcher.resendInterval / 2)));
  resendTimer.unref();

  return {
    stage,
    dispatcher,
    summaries: async (tenant) => {
      const p = partitionOf(tenant);
      const pc = await withLock(p, () => loadCore(p));
      return pc.core.evaluator.summaries(tenant);
    },
    incidentStatus: async (tenant) => {
      const p = partitionOf(tenant);
      return withLock(p, async () => status(await loadCore(p), tenant));
    },
    setIncident: async (tenant, on, o) => {
      const p = partitionOf(tenant);
      return withLock(p, async () => {
        const pc = await loadCore(p);
        const wall = now();
        const events = on ? pc.core.incidents.on(tenant, { nowMs: wall, ttlMs: o.ttlMs, reason: 'manual', by: o.by })
          : pc.core.incidents.off(tenant, wall, o.by);
        await persist(pc, [], events, 'manual');
        return { status: status(pc, tenant), events };
      });
    },
    idleTick,
    stop: async (o) => {
      clearInterval(timer);
      clearInterval(resendTimer);
      if (liveTimer) clearInterval(liveTimer);
      await liveRound;
      await stage.stop();
      await Promise.allSettled([...locks.values()]);
      if (o?.checkpoint !== false) {
        for (const p of [...cores.keys()]) {
          await withLock(p, async () => { const pc = cores.get(p); if (pc?.dirty) await writeCheckpoint(pc, 'stop'); })
            .catch((err: unknown) => log.warn({ partition: p, error_message: String(err) }, 'final SLO checkpoint failed; the next start rewinds further'));
        }
      }
      await dispatcher.idle().catch(() => {});
      dispatcher.close();
      await admin.disconnect().catch(() => {});
      await producer.disconnect();
    },
  };
}

/** The receiver's keep probability from a record's `sampling-th` header; 1 without one (or an invalid one, counted). */
function receiverKeepProbability(th: string | undefined, topic: string): number {
  if (th === undefined) return 1;
  const p = probabilityFromThreshold(th);
  if (p === undefined) { recordsCounter().inc({ topic, outcome: 'bad_sampling_header' }); return 1; }
  return p;
}

function maxSpanEndMs(req: ExportTraceServiceRequest): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const rs of req.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) {
    const t = nanosToMs(s.endTimeUnixNano as never);
    if (t > max) max = t;
  }
  return max;
}

function maxPointTimeMs(req: ExportMetricsServiceRequest): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const rm of req.resourceMetrics ?? []) for (const sm of rm.scopeMetrics ?? []) for (const m of sm.metrics ?? []) {
    const body = (m.histogram ?? m.sum ?? m.gauge ?? m.exponentialHistogram ?? m.summary) as { dataPoints?: { timeUnixNano?: unknown }[] } | undefined;
    for (const dp of body?.dataPoints ?? []) {
      const t = nanosToMs(dp.timeUnixNano as never);
      if (t > max) max = t;
    }
  }
  return max;
}
