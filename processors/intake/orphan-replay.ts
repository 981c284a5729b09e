// Replaying dead-lettered runtime-facts orphans, the pure core (docs/intake.md "Replaying expired
// orphans"): which DLQ records are a tenant's orphans, and what to do with each once we know which
// graphs are registered and which orphans were replayed already. The runner (orphan-replay-cli.ts)
// reads the DLQ, asks the graph registry and the replay markers, publishes and marks.
import { H } from '../../lib/kafka/topics.ts';
import { BadRuntimeRecord, parseRuntimeIntakeRecord } from './runtime-facts.ts';

/** The DLQ reasons of a runtime-facts record dropped for an unknown graph (runtime-sink.ts, orphans.ts). */
const ORPHAN_REASONS: { reason: OrphanDropReason; re: RegExp }[] = [
  { reason: 'expired', re: /^timeline intake: runtime facts orphan expired: / },
  { reason: 'queue_full', re: /^timeline intake: runtime facts orphan queue full / },
];
export type OrphanDropReason = 'expired' | 'queue_full';

export interface DlqRecord { partition: number; offset: string; key: string | null; value: Buffer; headers: Record<string, string>; timestamp: string }

export interface DeadOrphan {
  ingestId: string;
  graphHash: string;
  contentSha256: string;
  reason: OrphanDropReason;
  /** `<partition>/<offset>` of the DLQ record. */
  dlq: string;
  /** The intake record exactly as it was published (the DLQ keeps the value byte for byte). */
  value: Buffer;
}

/**
 * A DLQ record that is `tenant`'s runtime-facts orphan (dead-lettered from `intakeTopic` for an unknown
 * graph), or undefined. The tenant must agree three ways (record key, tenant header, the record's own
 * tenant field): another tenant's orphans are never seen, whatever their headers say.
 */
export function deadOrphanOf(r: DlqRecord, tenant: string, intakeTopic: string): DeadOrphan | undefined {
  if (r.headers[H.dlqSourceTopic] !== intakeTopic) return undefined;
  const why = ORPHAN_REASONS.find((x) => x.re.test(r.headers[H.dlqReason] ?? ''));
  if (!why) return undefined;
  if (r.key !== tenant || r.headers[H.tenant] !== tenant) return undefined;
  let rec;
  try { rec = parseRuntimeIntakeRecord(r.value, r.key); } catch (err) {
    if (err instanceof BadRuntimeRecord) return undefined;
    throw err;
  }
  if (rec.tenant !== tenant) return undefined;
  return { ingestId: rec.ingest_id, graphHash: rec.graph_hash, contentSha256: rec.content_sha256, reason: why.reason, dlq: `${r.partition}/${r.offset}`, value: r.value };
}

export type ReplayOutcome = 'replay' | 'already_replayed' | 'graph_unknown';
export interface PlannedOrphan extends DeadOrphan { outcome: ReplayOutcome }

/**
 * One decision per ingest (an orphan dead-lettered twice is one; its first DLQ record stands for it):
 * replay when its graph is known now and it was not replayed before; otherwise it is left in place.
 */
export function planReplay(orphans: readonly DeadOrphan[], graphKnown: ReadonlySet<string>, replayed: ReadonlySet<string>, graphFilter?: string): PlannedOrphan[] {
  const seen = new Set<string>();
  const out: PlannedOrphan[] = [];
  for (const o of orphans) {
    if (graphFilter !== undefined && o.graphHash !== graphFilter) continue;
    if (seen.has(o.ingestId)) continue;
    seen.add(o.ingestId);
    out.push({ ...o, outcome: replayed.has(o.ingestId) ? 'already_replayed' : graphKnown.has(o.graphHash) ? 'replay' : 'graph_unknown' });
  }
  return out;
}

export interface ReplaySummary { found: number; replayed: number; already_replayed: number; graph_unknown: number }

export function summarize(plan: readonly PlannedOrphan[]): ReplaySummary {
  const n = (k: ReplayOutcome) => plan.filter((p) => p.outcome === k).length;
  return { found: plan.length, replayed: n('replay'), already_replayed: n('already_replayed'), graph_unknown: n('graph_unknown') };
}

/** 0: nothing left waiting (every orphan found is replayed, or was); 1: some still wait for their graph (left in the DLQ). */
export const replayExitCode = (s: ReplaySummary): number => (s.graph_unknown > 0 ? 1 : 0);
