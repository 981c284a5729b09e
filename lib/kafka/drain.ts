// How far a consumer group is behind on its topics (committed offset vs high watermark), and waiting
// for it to catch up: graceful shutdown drains each processor this way, in pipeline order, before
// stopping it, so what the receiver acknowledged is processed and committed, not left for a restart.
import type { Admin } from 'kafkajs';

export interface PartitionLag { topic: string; partition: number; committed: bigint; high: bigint; lag: bigint }

/** One topic's lag per partition from the group's `committed` offsets and the partitions' watermarks;
 *  a partition the group never committed on (no offset, or -1) counts from its low watermark. */
export function partitionLags(topic: string, committed: readonly { partition: number; offset: string }[],
  marks: readonly { partition: number; high: string; low: string }[]): PartitionLag[] {
  const at = new Map(committed.map((p) => [p.partition, BigInt(p.offset)]));
  return marks.map((m) => {
    const c = at.get(m.partition);
    const from = c === undefined || c < 0n ? BigInt(m.low) : c;
    const high = BigInt(m.high);
    return { topic, partition: m.partition, committed: from, high, lag: high > from ? high - from : 0n };
  });
}

/** Per partition of `topics`: the group's committed offset (the low watermark when it never
 *  committed there, i.e. nothing to read) and the high watermark. */
export async function groupLag(admin: Admin, groupId: string, topics: readonly string[]): Promise<PartitionLag[]> {
  const committed = await admin.fetchOffsets({ groupId, topics: [...topics] });
  const out: PartitionLag[] = [];
  for (const topic of topics) {
    const mine = committed.find((c) => c.topic === topic)?.partitions ?? [];
    out.push(...partitionLags(topic, mine, await admin.fetchTopicOffsets(topic)));
  }
  return out;
}

export interface DrainOptions {
  groupId: string;
  topics: readonly string[];
  timeoutMs: number;
  /** Called while the group is behind, before the next look (e.g. the evidence runner seals, which is what commits its offsets). */
  nudge?: () => Promise<void>;
  pollMs?: number;
}

/** Wait until the group's committed offsets reach the high watermarks the topics had when the drain
 *  began (records written later, e.g. by a producer outside this process, are not waited for);
 *  returns the partitions still short of them when `timeoutMs` ran out (empty = drained). */
export async function drainGroup(admin: Admin, o: DrainOptions): Promise<PartitionLag[]> {
  const deadline = Date.now() + o.timeoutMs;
  const target = new Map<string, bigint>();
  for (;;) {
    const now = await groupLag(admin, o.groupId, o.topics);
    const behind: PartitionLag[] = [];
    for (const p of now) {
      const k = `${p.topic}\u0000${p.partition}`;
      if (!target.has(k)) target.set(k, p.high);
      const high = target.get(k)!;
      if (p.committed < high) behind.push({ ...p, high, lag: high - p.committed });
    }
    if (behind.length === 0 || Date.now() >= deadline) return behind;
    await o.nudge?.();
    await new Promise((r) => setTimeout(r, o.pollMs ?? 200));
  }
}
