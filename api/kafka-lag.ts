// Consumer lag of the pipeline's processors for GET /obs/top: per consumer group, committed offsets
// (admin.fetchOffsets) against each partition's high watermark (admin.fetchTopicOffsets). Cheap and
// bounded: a fixed list of groups, one admin connection, at most one refresh in flight, answers
// cached for `cacheMs`, and a refresh that takes longer than `timeoutMs` reports lag unknown.
import type { Admin, Kafka } from 'kafkajs';
import { partitionLags } from '../lib/kafka/drain.ts';
import { logger } from '../lib/log.ts';

const log = logger('api');

/** The processors' default consumer group ids (lib/kafka/stage.ts `stella-<name>`, evidence, slo). */
export const DEFAULT_LAG_GROUPS: Readonly<Record<string, string>> = {
  scrub: 'stella-scrub', timeline: 'stella-timeline', evidence: 'stella-evidence', slo: 'stella-slo',
};

export interface GroupLag {
  processor: string;
  group: string;
  /** Records not yet committed over every partition the group has committed offsets for; null when
   *  the group has committed nothing (not running, or not started yet). */
  lag: number | null;
  topics: { topic: string; lag: number; partitions: number }[];
}

export type LagReport =
  | { status: 'ok'; checked_at: string; groups: GroupLag[] }
  | { status: 'unknown'; reason: string; checked_at: string | null };

export interface LagSource { report(): Promise<LagReport>; close(): Promise<void> }

export interface KafkaLagOptions {
  kafka: Kafka;
  /** processor name → consumer group id; default DEFAULT_LAG_GROUPS. */
  groups?: Readonly<Record<string, string>>;
  cacheMs?: number;
  timeoutMs?: number;
}

/** Lag from `committed` offsets and `high` watermarks of one topic. No committed offset counts from the log start. */
export function topicLag(committed: { partition: number; offset: string }[], offsets: { partition: number; high: string; low: string }[]): number {
  return Number(partitionLags('', committed, offsets).reduce((n, p) => n + p.lag, 0n));
}

export function kafkaLag(opts: KafkaLagOptions): LagSource {
  const groups = opts.groups ?? DEFAULT_LAG_GROUPS;
  const cacheMs = opts.cacheMs ?? 2000;
  const timeoutMs = opts.timeoutMs ?? 3000;
  let admin: Admin | undefined;
  let connected: Promise<void> | undefined;
  let cached: { at: number; report: LagReport } | undefined;
  let inflight: Promise<LagReport> | undefined;

  const fetchReport = async (): Promise<LagReport> => {
    if (!admin) admin = opts.kafka.admin();
    connected ??= admin.connect().catch((e: unknown) => { connected = undefined; throw e; });
    await connected;
    const a = admin;
    const out: GroupLag[] = [];
    const highs = new Map<string, Promise<{ partition: number; high: string; low: string }[]>>();
    for (const [processor, group] of Object.entries(groups)) {
      const committed = await a.fetchOffsets({ groupId: group });
      const topics: GroupLag['topics'] = [];
      for (const t of committed) {
        if (t.partitions.every((p) => Number(p.offset) < 0)) continue; // subscribed, nothing committed: not this group's topic yet
        let h = highs.get(t.topic);
        if (!h) highs.set(t.topic, (h = a.fetchTopicOffsets(t.topic)));
        topics.push({ topic: t.topic, lag: topicLag(t.partitions, await h), partitions: t.partitions.length });
      }
      topics.sort((x, y) => (x.topic < y.topic ? -1 : 1));
      out.push({ processor, group, lag: topics.length ? topics.reduce((n, t) => n + t.lag, 0) : null, topics });
    }
    return { status: 'ok', checked_at: new Date().toISOString(), groups: out };
  };

  return {
    async report() {
      if (cached && Date.now() - cached.at < cacheMs) return cached.report;
      inflight ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        try {
          const timeout = new Promise<LagReport>((resolve) => {
            timer = setTimeout(() => resolve({ status: 'unknown', reason: `Kafka did not answer within ${timeoutMs} ms`, checked_at: null }), timeoutMs);
          });
          const r = await Promise.race([fetchReport().catch((e: unknown): LagReport => {
            log.warn({ error_message: String(e) }, 'consumer lag unavailable');
            return { status: 'unknown', reason: 'Kafka unreachable', checked_at: null };
          }), timeout]);
          cached = { at: Date.now(), report: r };
          return r;
        } finally {
          clearTimeout(timer);
          inflight = undefined;
        }
      })();
      return inflight;
    },
    async close() {
      await inflight?.catch(() => undefined);
      if (admin && connected) await admin.disconnect().catch(() => undefined);
    },
  };
}
