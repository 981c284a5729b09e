// `stella intake orphans replay --tenant T [--graph-hash G] [--dry-run]` (docs/intake.md "Replaying
// expired orphans"): runtime facts dead-lettered because their graph was unknown (orphan expired, or
// the orphan queue was full) are published again to the runtime-facts intake topic once their graph
// is registered, so the timeline's sink writes them like any ingest. Idempotent: each replayed
// ingest gets a write-once marker `<dataDir>/intake/orphans-replayed/<tenant>/<ingest_id>` after
// Kafka acked, and a later run skips it (a crash between the ack and the marker replays it once
// more, which the sink's idempotent rows and the deterministic event make invisible).
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Kafka } from 'kafkajs';
import { GraphRegistry } from '../../lib/intake/graphs.ts';
import { publishIntake, type IntakeProducer } from '../../lib/intake/publish.ts';
import { validateTenantId } from '../../lib/tenancy.ts';
import { deadOrphanOf, planReplay, summarize, type DeadOrphan, type DlqRecord, type PlannedOrphan, type ReplaySummary } from './orphan-replay.ts';

export interface OrphanReplayDeps {
  kafka: Kafka;
  producer: IntakeProducer;
  dataDir: string;
  topics: { dlq: string; intakeRuntimeFacts: string; timelineEvents: string };
  /** How long reading the DLQ up to its end may take (default 60 s). */
  readTimeoutMs?: number;
}

export interface OrphanReplayReport extends ReplaySummary {
  tenant: string;
  graph_hash: string | null;
  dry_run: boolean;
  orphans: { ingest_id: string; graph_hash: string; reason: string; dlq: string; outcome: string }[];
}

/** Every record in the DLQ up to its end as of now (all partitions), through a throwaway consumer group. */
export async function readDlq(kafka: Kafka, topic: string, timeoutMs: number): Promise<DlqRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  let ends: Map<number, { low: bigint; high: bigint }>;
  try {
    ends = new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, { low: BigInt(o.low), high: BigInt(o.high) }]));
  } finally { await admin.disconnect(); }
  const pending = new Set([...ends].filter(([, e]) => e.high > e.low).map(([p]) => p));
  if (pending.size === 0) return [];
  const out: DlqRecord[] = [];
  const groupId = `stella-orphan-replay-${randomBytes(6).toString('hex')}`;
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200, allowAutoTopicCreation: false });
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({ autoCommit: false, eachBatch: async ({ batch }) => {
      const end = ends.get(batch.partition);
      if (!end || !pending.has(batch.partition)) return;
      for (const m of batch.messages) {
        const off = BigInt(m.offset);
        if (off >= end.high) break;
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(m.headers ?? {})) if (v !== undefined) headers[k] = Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
        out.push({ partition: batch.partition, offset: m.offset, key: m.key ? m.key.toString('utf8') : null, value: m.value ?? Buffer.alloc(0), headers, timestamp: m.timestamp });
        if (off >= end.high - 1n) { pending.delete(batch.partition); break; }
      }
      if (pending.size === 0) finish();
    } });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([finished.then(() => false), new Promise<boolean>((r) => { timer = setTimeout(() => r(true), timeoutMs); })]);
    clearTimeout(timer);
    if (timedOut) throw new Error(`reading ${topic} to its end took over ${timeoutMs} ms`);
  } finally {
    await consumer.disconnect().catch(() => undefined);
    const a = kafka.admin();
    await a.connect().then(() => a.deleteGroups([groupId])).catch(() => undefined).finally(() => a.disconnect().catch(() => undefined));
  }
  return out.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
}

const markerDir = (dataDir: string, tenant: string) => path.join(dataDir, 'intake', 'orphans-replayed', tenant);

async function replayedIds(dataDir: string, tenant: string): Promise<Set<string>> {
  try { return new Set((await fs.readdir(markerDir(dataDir, tenant))).filter((f) => /^[0-9a-f]{32}$/.test(f))); } catch { return new Set(); }
}

async function markReplayed(dataDir: string, tenant: string, o: DeadOrphan): Promise<void> {
  const dir = markerDir(dataDir, tenant);
  await fs.mkdir(dir, { recursive: true });
  let h;
  try { h = await fs.open(path.join(dir, o.ingestId), 'wx', 0o444); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw err;
  }
  try { await h.writeFile(`${JSON.stringify({ ingest_id: o.ingestId, graph_hash: o.graphHash, dlq: o.dlq })}\n`); await h.sync(); } finally { await h.close(); }
  const d = await fs.open(dir, 'r');
  try { await d.sync(); } finally { await d.close(); }
}

/** Publishes one orphan's intake record again with its reach.runtime.orphan.replayed event; resolves after Kafka acked both. */
async function republish(deps: OrphanReplayDeps, tenant: string, o: PlannedOrphan, dlqTimestampMs: string): Promise<void> {
  await publishIntake(deps.producer, {
    topic: deps.topics.intakeRuntimeFacts, timelineTopic: deps.topics.timelineEvents, tenant, value: o.value, headers: { 'orphan-replay-of': `${deps.topics.dlq}/${o.dlq}` },
    timelineEvent: {
      kind: 'reach.runtime.orphan.replayed', resourceType: 'runtime_facts', resourceId: o.ingestId, digest: o.contentSha256, actor: 'stella-cli',
      // The DLQ record's time: a replay repeated after a crash is the same event.
      tsUnixNano: (BigInt(dlqTimestampMs) * 1_000_000n).toString(), idSeed: o.ingestId,
      details: { ingest_id: o.ingestId, graph_hash: o.graphHash, content_sha256: o.contentSha256, tenant, dlq: `${deps.topics.dlq}/${o.dlq}`, dropped: o.reason },
    },
  });
}

export async function replayOrphans(deps: OrphanReplayDeps, opts: { tenant: string; graphHash?: string; dryRun: boolean }): Promise<OrphanReplayReport> {
  if (validateTenantId(opts.tenant)) throw new Error('invalid tenant id');
  const records = await readDlq(deps.kafka, deps.topics.dlq, deps.readTimeoutMs ?? 60_000);
  const timestamps = new Map<string, string>();
  const orphans: DeadOrphan[] = [];
  for (const r of records) {
    const o = deadOrphanOf(r, opts.tenant, deps.topics.intakeRuntimeFacts);
    if (!o) continue;
    orphans.push(o);
    timestamps.set(o.dlq, r.timestamp);
  }
  const graphs = GraphRegistry.under(deps.dataDir);
  const known = new Set<string>();
  for (const g of new Set(orphans.map((o) => o.graphHash))) if (await graphs.isKnown(opts.tenant, g)) known.add(g);
  const plan = planReplay(orphans, known, await replayedIds(deps.dataDir, opts.tenant), opts.graphHash);
  if (!opts.dryRun) {
    for (const o of plan) {
      if (o.outcome !== 'replay') continue;
      await republish(deps, opts.tenant, o, timestamps.get(o.dlq)!);
      await markReplayed(deps.dataDir, opts.tenant, o);
    }
  }
  return {
    tenant: opts.tenant, graph_hash: opts.graphHash ?? null, dry_run: opts.dryRun, ...summarize(plan),
    orphans: plan.map((o) => ({ ingest_id: o.ingestId, graph_hash: o.graphHash, reason: o.reason, dlq: o.dlq,
      outcome: o.outcome === 'replay' ? (opts.dryRun ? 'would_replay' : 'replayed') : o.outcome })),
  };
}
