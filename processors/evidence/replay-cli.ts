// `stella forensic replay` (docs/evidence.md "Replay"): the I/O around replay.ts. Reads the live
// log's sealed segments and the Kafka records they cover (the configured topics, or a copy of the
// range topic), re-derives the span into a scratch directory with the runner's own code, and says
// whether it is identical or names the first differing entry.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import kafkajs, { type Kafka } from 'kafkajs';
import { EventIndex } from './event-index.ts';
import { toHex, bytesEqual } from './hash.ts';
import { canonicalBytes } from './jcs.ts';
import type { KeyRecord } from './layout.ts';
import { EMPTY_EDGE, edgeRoot, type LogEdge } from './log-edge.ts';
import { parseEnvelope } from './dsse.ts';
import { LogReader } from './reader.ts';
import { loadEdge } from './sealer.ts';
import type { SegmentStatement } from './statement.ts';
import { FsEvidenceStore, type EvidenceStore } from './store.ts';
import { recordTenant } from './runner.ts';
import { EntryPrunedError } from './causes.ts';
import { readRanges, replaySpan, selectSegments, type CheckpointComparison, type EntryDifference, type SegmentInfo, type SourceRecord } from './replay.ts';

const { ConfigResourceTypes } = kafkajs;

export const REPLAY_EXIT = { IDENTICAL: 0, NOT_FOUND: 1, USAGE: 2, RUNTIME: 4, DIVERGED: 40, UNAVAILABLE: 41 } as const;

export type RangeBound = { offset: bigint } | { time: number };

/** `--from` / `--to`: a decimal offset or an RFC 3339 time (a Kafka record timestamp); undefined when neither. */
export function parseRangeBound(s: string): RangeBound | undefined {
  if (/^(0|[1-9]\d{0,18})$/.test(s)) return { offset: BigInt(s) };
  if (!/^\d{4}-\d{2}-\d{2}T/.test(s)) return undefined;
  const t = Date.parse(s);
  return Number.isFinite(t) ? { time: t } : undefined;
}

export interface ReplayOptions {
  kafka: Kafka;
  evidence: EvidenceStore;
  tenant: string;
  timelineTopic: string;
  cleanTopics: readonly string[];
  /** The clean topic `from` / `to` are offsets (or record times) of. */
  rangeTopic: string;
  from: RangeBound;
  to: RangeBound;
  /** Only segments sealed at or before this time are compared (default: every segment sealed when replay starts). */
  freeze?: number;
  /** Read the range topic's records from this copy: same partition number, copy offset k holds source offset base + k. */
  copy?: { topic: string; base: bigint };
  /** Must be absent or empty; default a new directory under the system temp dir. */
  scratch?: string;
  /** How long to wait for the records of one topic-partition (default 60 s). */
  readTimeoutMs?: number;
}

export interface SourceRead { topic: string; partition: number; from: string; to: string; records: number; read_from: { topic: string; partition: number; from: string; to: string } }

export interface ReplayReport {
  outcome: 'identical' | 'diverged' | 'unavailable' | 'not_found';
  exit_code: number;
  tenant: string;
  /** The newest live checkpoint considered (pass its sealed_at as --freeze to repeat this replay exactly). */
  frozen_at?: { size: number; sealed_at: string };
  range?: { topic: string; partition: number; from: string; to: string };
  log?: { from_size: number; to_size: number };
  sources?: SourceRead[];
  entries?: number;
  checkpoints?: CheckpointComparison[];
  first_difference?: EntryDifference;
  unavailable?: { cause: 'RETENTION' | 'NOT_IN_TOPIC' | 'OFFSETS_MISSING' | 'ENTRY_PRUNED'; detail: string };
  detail?: string;
  scratch?: string;
}

class Unavailable extends Error {
  constructor(readonly reason: NonNullable<ReplayReport["unavailable"]>["cause"], readonly detail: string) { super(`${reason}: ${detail}`); }
}

async function liveSegments(reader: LogReader): Promise<SegmentInfo[]> {
  const out: SegmentInfo[] = [];
  for (const size of await reader.sealedSizes()) {
    const env = parseEnvelope((await reader.envelopeAt(size))!);
    const p = (JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as SegmentStatement).predicate;
    const cp = await reader.checkpointAt(size);
    // The signed checkpoint's root is what the log commits to; the statement repeats it.
    out.push({ previousSize: p.previous.size, size, root: cp ? toHex(cp.checkpoint.root) : p.new.root, sealedAt: p.sealed_at, kafka: p.kafka });
  }
  return out;
}

async function resolveBound(kafka: Kafka, topic: string, partition: number, b: RangeBound, end: 'from' | 'to'): Promise<bigint> {
  if ('offset' in b) return b.offset;
  const admin = kafka.admin();
  await admin.connect();
  try {
    const high = BigInt((await admin.fetchTopicOffsets(topic)).find((o) => o.partition === partition)?.high ?? '0');
    // The first offset whose timestamp is >= t (the high watermark when none is).
    const at = async (t: number): Promise<bigint> => {
      const o = (await admin.fetchTopicOffsetsByTimestamp(topic, t)).find((x) => x.partition === partition)?.offset;
      return o === undefined || o === '-1' ? high : BigInt(o);
    };
    return end === 'from' ? at(b.time) : (await at(b.time + 1)) - 1n;
  } finally { await admin.disconnect(); }
}

/** The records of one topic-partition in [from, to] (all of them, whatever their tenant), in offset order. */
async function readPartition(kafka: Kafka, topic: string, partition: number, from: bigint, to: bigint, timeoutMs: number): Promise<SourceRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  let low: bigint; let high: bigint;
  try {
    const o = (await admin.fetchTopicOffsets(topic)).find((x) => x.partition === partition);
    if (!o) throw new Unavailable('NOT_IN_TOPIC', `${topic} has no partition ${partition}`);
    low = BigInt(o.low); high = BigInt(o.high);
  } finally { await admin.disconnect(); }
  if (from < low) throw new Unavailable('RETENTION', `${topic}/${partition} starts at offset ${low} now; offsets ${from}..${low - 1n} were deleted (retention)`);
  if (to >= high) throw new Unavailable('NOT_IN_TOPIC', `${topic}/${partition} ends before offset ${to} (high watermark ${high})`);

  const groupId = `stella-replay-${randomBytes(6).toString('hex')}`;
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200, allowAutoTopicCreation: false });
  const out: SourceRecord[] = [];
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  let last = from - 1n;
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({ autoCommit: false, eachBatch: async ({ batch }) => {
      if (batch.partition !== partition || last >= to) return;
      for (const m of batch.messages) {
        const off = BigInt(m.offset);
        if (off < from || off <= last) continue;
        if (off > to) { last = to; break; }
        out.push({ topic, partition, offset: m.offset, key: m.key, value: m.value ?? Buffer.alloc(0), headers: m.headers });
        last = off;
      }
      if (last >= to) finish();
    } });
    consumer.seek({ topic, partition, offset: from.toString() });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([finished.then(() => false), new Promise<boolean>((r) => { timer = setTimeout(() => r(true), timeoutMs); })]);
    clearTimeout(timer);
    if (timedOut) throw new Error(`reading ${topic}/${partition} offsets ${from}..${to}: only up to ${last} within ${timeoutMs} ms`);
  } finally {
    await consumer.disconnect().catch(() => undefined);
    const a = kafka.admin();
    await a.connect().then(() => a.deleteGroups([groupId])).catch(() => undefined).finally(() => a.disconnect().catch(() => undefined));
  }
  // Offsets without a record inside the range: transaction markers (or aborted records) in a topic
  // that only deletes from its start; in a compacted topic they may be records compaction removed,
  // and then the range cannot be re-derived exactly.
  const missing: bigint[] = [];
  let expect = from;
  for (const r of out) { for (let o = expect; o < BigInt(r.offset) && missing.length < 5; o++) missing.push(o); expect = BigInt(r.offset) + 1n; }
  for (let o = expect; o <= to && missing.length < 5; o++) missing.push(o);
  if (missing.length && await compacted(kafka, topic)) {
    throw new Unavailable('OFFSETS_MISSING', `${topic}/${partition} is compacted and has no record at offset(s) ${missing.join(', ')}${missing.length === 5 ? ', ...' : ''}`);
  }
  return out;
}

async function compacted(kafka: Kafka, topic: string): Promise<boolean> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const r = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['cleanup.policy'] }] });
    const v = r.resources[0]?.configEntries.find((e) => e.configName === 'cleanup.policy')?.configValue ?? 'delete';
    return v.split(',').map((x) => x.trim()).includes('compact');
  } finally { await admin.disconnect(); }
}

async function scratchDir(dir: string | undefined): Promise<string> {
  if (!dir) return fsp.mkdtemp(path.join(os.tmpdir(), 'stella-replay-'));
  const abs = path.resolve(dir);
  const names = await fsp.readdir(abs).catch((e: NodeJS.ErrnoException) => { if (e.code === 'ENOENT') return undefined; throw e; });
  if (names === undefined) await fsp.mkdir(abs, { recursive: true });
  else if (names.length) throw new ReplayUsageError(`--scratch ${dir} is not empty (replay writes a fresh tree there)`);
  return abs;
}

export class ReplayUsageError extends Error {}

/** Re-derive the span of `opts.tenant`'s log that covers the range and compare it with the live log. */
export async function forensicReplay(opts: ReplayOptions): Promise<ReplayReport> {
  const { tenant } = opts;
  const reader = new LogReader(opts.evidence, tenant);
  const all = await liveSegments(reader);
  const frozen = opts.freeze === undefined ? all : all.filter((s) => Date.parse(s.sealedAt) <= opts.freeze!);
  const notFound = (detail: string): ReplayReport => ({ outcome: 'not_found', exit_code: REPLAY_EXIT.NOT_FOUND, tenant, detail });
  if (frozen.length === 0) return notFound(all.length ? 'no segment was sealed at or before --freeze' : `tenant ${tenant} has no sealed evidence log here`);
  const top = frozen[frozen.length - 1]!;
  const frozenAt = { size: top.size, sealed_at: top.sealedAt };
  const partition = frozen.flatMap((s) => s.kafka).find((r) => r.topic === opts.rangeTopic)?.partition;
  if (partition === undefined) return { ...notFound(`no sealed segment holds a record of ${opts.rangeTopic}`), frozen_at: frozenAt };

  const from = await resolveBound(opts.kafka, opts.rangeTopic, partition, opts.from, 'from');
  const to = await resolveBound(opts.kafka, opts.rangeTopic, partition, opts.to, 'to');
  const range = { topic: opts.rangeTopic, partition, from: from.toString(), to: to.toString() };
  const base: ReplayReport = { outcome: 'not_found', exit_code: REPLAY_EXIT.NOT_FOUND, tenant, frozen_at: frozenAt, range };
  if (to < from) return { ...base, detail: 'the range is empty' };
  const segments = selectSegments(frozen, opts.rangeTopic, from, to);
  if (segments.length === 0) return { ...base, detail: `no sealed segment covers ${opts.rangeTopic}/${partition} offsets ${from}..${to}` };
  const startSize = segments[0]!.previousSize;
  const endSize = segments[segments.length - 1]!.size;
  const logSpan = { from_size: startSize, to_size: endSize };
  const reads = readRanges(segments);

  try {
    // The inputs: every topic-partition the span's statements cover.
    const records = new Map<string, SourceRecord[]>();
    const sources: SourceRead[] = [];
    for (const r of reads) {
      const copied = opts.copy && r.topic === opts.rangeTopic ? opts.copy : undefined;
      const readFrom = copied ? { topic: copied.topic, from: r.from - copied.base, to: r.to - copied.base } : { topic: r.topic, from: r.from, to: r.to };
      if (readFrom.from < 0n) throw new Unavailable('NOT_IN_TOPIC', `the copy ${copied!.topic} starts at source offset ${copied!.base}; the span needs ${r.topic}/${r.partition} from offset ${r.from}`);
      const got = await readPartition(opts.kafka, readFrom.topic, r.partition, readFrom.from, readFrom.to, opts.readTimeoutMs ?? 60_000);
      // A copy's records are re-derived at the position they were copied from.
      const mine = got.map((x) => (copied ? { ...x, topic: r.topic, offset: (BigInt(x.offset) + copied.base).toString() } : x)).filter((x) => recordTenant(x.headers, x.key) === tenant);
      records.set(r.topic, [...(records.get(r.topic) ?? []), ...mine]);
      sources.push({ topic: r.topic, partition: r.partition, from: r.from.toString(), to: r.to.toString(), records: mine.length,
        read_from: { topic: readFrom.topic, partition: r.partition, from: readFrom.from.toString(), to: readFrom.to.toString() } });
    }

    // The live side: the entries of the span, the tree's edge before it, the events logged before it.
    const liveEntries = await reader.entriesIn(startSize, endSize, endSize);
    let startEdge: LogEdge = EMPTY_EDGE;
    if (startSize > 0) {
      startEdge = await loadEdge(opts.evidence, tenant, startSize).catch((e: unknown) => { throw new Unavailable('ENTRY_PRUNED', `the log's edge at size ${startSize}: ${String(e)}`); });
      const cp = await reader.checkpointAt(startSize);
      if (!cp || !bytesEqual(edgeRoot(startEdge), cp.checkpoint.root)) throw new Error(`the live tiles at size ${startSize} do not give its checkpoint's root; run stella forensic prune's check or verify a whole-log bundle first`);
    }
    const index = new EventIndex(opts.evidence, tenant);
    await index.refresh(startSize);
    const eventsBefore = new Set([...index.events].filter(([, i]) => i < startSize).map(([id]) => id));
    const keyRecords: KeyRecord[] = [];
    for (const n of (await opts.evidence.list(tenant, 'keys')).filter((x) => x.endsWith('.json'))) {
      const b = await opts.evidence.read(tenant, `keys/${n}`);
      if (b) keyRecords.push(JSON.parse(Buffer.from(b).toString('utf8')) as KeyRecord);
    }

    const result = replaySpan({ timelineTopic: opts.timelineTopic, cleanTopics: opts.cleanTopics, startEdge, segments, liveEntries, records, eventsBefore, keyRecords });
    const scratch = await scratchDir(opts.scratch);
    const report: ReplayReport = {
      outcome: result.identical ? 'identical' : 'diverged', exit_code: result.identical ? REPLAY_EXIT.IDENTICAL : REPLAY_EXIT.DIVERGED,
      tenant, frozen_at: frozenAt, range, log: logSpan, sources, entries: result.entries, checkpoints: result.checkpoints,
      ...(result.first_difference ? { first_difference: result.first_difference } : {}), scratch,
    };
    // The re-derived tiles and entry bundles (tlog-tiles layout, like the live log's), and the report.
    await new FsEvidenceStore(scratch).writeImmutableMany(tenant, result.files);
    await fsp.writeFile(path.join(scratch, 'replay.json'), canonicalBytes(JSON.parse(JSON.stringify(report)) as object));
    return report;
  } catch (err) {
    const cause = err instanceof EntryPrunedError ? new Unavailable('ENTRY_PRUNED', err.detail) : err;
    if (cause instanceof Unavailable) {
      return { outcome: 'unavailable', exit_code: REPLAY_EXIT.UNAVAILABLE, tenant, frozen_at: frozenAt, range, log: logSpan, unavailable: { cause: cause.reason, detail: cause.detail } };
    }
    throw err;
  }
}

/** The report as a short table (stdout of `--output table`). */
export function replayTable(r: ReplayReport): string {
  const lines = [`outcome: ${r.outcome} (exit ${r.exit_code})`, `tenant: ${r.tenant}`];
  if (r.frozen_at) lines.push(`frozen at: size ${r.frozen_at.size}, sealed ${r.frozen_at.sealed_at}`);
  if (r.range) lines.push(`range: ${r.range.topic}/${r.range.partition} offsets ${r.range.from}..${r.range.to}`);
  if (r.log) lines.push(`log span: entries ${r.log.from_size}..${r.log.to_size - 1}`);
  for (const s of r.sources ?? []) lines.push(`read: ${s.topic}/${s.partition} ${s.from}..${s.to} (${s.records} records of the tenant${s.read_from.topic !== s.topic ? `, from ${s.read_from.topic} ${s.read_from.from}..${s.read_from.to}` : ''})`);
  for (const c of r.checkpoints ?? []) lines.push(`checkpoint ${c.size}: ${c.roots_identical ? 'root identical' : `root DIFFERS (re-derived ${c.expected_root}, live ${c.actual_root})`}${c.kafka_identical ? '' : ', Kafka ranges differ from the statement'}`);
  const d = r.first_difference;
  if (d) {
    lines.push(`first differing entry: ${d.index} (${d.reason})`, `  expected leaf hash: ${d.expected_leaf_hash ?? '-'}`, `  actual leaf hash:   ${d.actual_leaf_hash ?? '-'}`);
    if (d.source) lines.push(`  from record: ${d.source.topic}/${d.source.partition} offset ${d.source.offset}`);
    if (d.live_source) lines.push(`  live entry names: ${d.live_source.topic}/${d.live_source.partition} offset ${d.live_source.offset}`);
  }
  if (r.unavailable) lines.push(`unavailable: ${r.unavailable.cause}: ${r.unavailable.detail}`);
  if (r.detail) lines.push(r.detail);
  if (r.scratch) lines.push(`scratch: ${r.scratch}`);
  return lines.join('\n') + '\n';
}
