// Deterministic re-derivation (pure core of `stella forensic replay`, docs/evidence.md "Replay"):
// re-derive a contiguous span of sealed segments of a tenant's log from the Kafka records they
// cover, with the runner's own entry function (recordEntry) and tree code (extendEdge), and compare
// entry by entry and root by root with the live log.
//
// What the runner's output depends on besides the records, and how replay reproduces each from the
// log: the seal boundaries (time or count) are the log's checkpoint sizes; the interleave of the
// input topics (fetch batching) is read off the live entries, which name their source (a clean
// entry its topic, an event entry the timeline topic): every entry's bytes come from Kafka only,
// the log merely says which input stream the next entry was taken from; timeline de-duplication
// depends on the event ids logged before the span (the live event index); key-rotation entries come
// from the key records, not from Kafka. `sealed_at` is not part of entries or roots.
import { KEY_ROTATION_TYPE, keyRotationEntry } from './keys.ts';
import { leafHash, toHex } from './hash.ts';
import { extendEdge, type FileWrite, type LogEdge } from './log-edge.ts';
import { parseVerifierKey } from './note.ts';
import type { KeyRecord } from './layout.ts';
import { recordEntry } from './runner.ts';
import { kafkaRanges, type AppendItem } from './sealer.ts';
import type { KafkaRange } from './statement.ts';
import { CLEAN_BATCH_TYPE, CLEAN_BATCH_V2_TYPE } from './clean-entry.ts';

/** One sealed segment as its statement describes it. */
export interface SegmentInfo { previousSize: number; size: number; root: string; sealedAt: string; kafka: KafkaRange[] }

/** A Kafka record of the tenant, at its source position (for a copy: the position it was copied from). */
export interface SourceRecord { topic: string; partition: number; offset: string; key?: Buffer | null; value: Buffer; headers: Record<string, unknown> | undefined }

export interface ReadRange { topic: string; partition: number; from: bigint; to: bigint }

/**
 * The segments to re-derive: every sealed segment whose statement covers an offset of `topic` in
 * [from, to], widened to a contiguous span of the log (segments in between are included even when
 * they hold no record of `topic`). Empty when none does.
 */
export function selectSegments(segments: readonly SegmentInfo[], topic: string, from: bigint, to: bigint): SegmentInfo[] {
  const hit = (s: SegmentInfo): boolean => s.kafka.some((r) => r.topic === topic && BigInt(r.fromOffset) <= to && BigInt(r.toOffset) >= from);
  const first = segments.findIndex(hit);
  if (first < 0) return [];
  let last = first;
  for (let i = first; i < segments.length; i++) if (hit(segments[i]!)) last = i;
  return segments.slice(first, last + 1);
}

/** The Kafka offsets to read for a span of segments: per topic-partition, from the lowest to the highest covered offset. */
export function readRanges(segments: readonly SegmentInfo[]): ReadRange[] {
  const m = new Map<string, ReadRange>();
  for (const s of segments) {
    for (const r of s.kafka) {
      const k = `${r.topic}\u0000${r.partition}`;
      const from = BigInt(r.fromOffset);
      const to = BigInt(r.toOffset);
      const have = m.get(k);
      if (!have) m.set(k, { topic: r.topic, partition: r.partition, from, to });
      else { if (from < have.from) have.from = from; if (to > have.to) have.to = to; }
    }
  }
  return [...m.values()].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
}

/** The rotation entry at log index `index`, rebuilt from the key records (undefined when no record names that index). */
export function rotationEntryAt(records: readonly KeyRecord[], index: number): Buffer | undefined {
  const next = records.find((r) => r.rotation_index === index);
  if (!next) return undefined;
  const previous = records.filter((r) => r.valid_from_size < next.valid_from_size).sort((a, b) => b.valid_from_size - a.valid_from_size)[0];
  if (!previous) return undefined;
  return keyRotationEntry(parseVerifierKey(previous.verifier_key), parseVerifierKey(next.verifier_key), next.valid_from_size);
}

export interface ReplayInput {
  timelineTopic: string;
  cleanTopics: readonly string[];
  /** The live tree's right edge at the span's start (a sealed size). */
  startEdge: LogEdge;
  /** The span's segments, in order (startEdge.size = segments[0].previousSize). */
  segments: readonly SegmentInfo[];
  /** Live entries [startEdge.size, last segment's size), in order. */
  liveEntries: readonly Uint8Array[];
  /** Per input topic: the tenant's records in the read ranges, in offset order. */
  records: ReadonlyMap<string, readonly SourceRecord[]>;
  /** Event ids logged before the span (the runner does not log an event id twice). */
  eventsBefore: ReadonlySet<string>;
  keyRecords: readonly KeyRecord[];
}

export interface Position { topic: string; partition: number; offset: string }

export interface EntryDifference {
  index: number;
  /** Leaf hash of the entry re-derived from Kafka (null: no record left for it). */
  expected_leaf_hash: string | null;
  /** Leaf hash of the entry in the live log (null: the log has no entry for a record in the span). */
  actual_leaf_hash: string | null;
  /** Where the re-derived entry came from (null for a key rotation or a missing record). */
  source: Position | null;
  /** The position the live entry names, when it names one (clean entries, oversize/unparsable events). */
  live_source: Position | null;
  reason: string;
  expected_entry?: string;
  actual_entry?: string;
}

export interface CheckpointComparison { size: number; expected_root: string; actual_root: string; roots_identical: boolean; kafka_identical: boolean; sealed_at: string }

export interface ReplayResult {
  identical: boolean;
  entries: number;
  checkpoints: CheckpointComparison[];
  first_difference: EntryDifference | undefined;
  /** Tiles and entry bundles of the re-derived span (C2SP tlog-tiles paths), per segment in order. */
  files: FileWrite[];
}

const liveSourceOf = (v: Record<string, unknown> | undefined): Position | null =>
  v && typeof v.topic === 'string' && typeof v.partition === 'number' && typeof v.offset === 'string' ? { topic: v.topic, partition: v.partition, offset: v.offset } : null;

/** Which input stream the live entry at this position was taken from: a clean topic, the timeline, or a key rotation. */
function streamOf(v: Record<string, unknown> | undefined, input: ReplayInput): string | typeof KEY_ROTATION_TYPE {
  if (v?.type === KEY_ROTATION_TYPE) return KEY_ROTATION_TYPE;
  if ((v?.type === CLEAN_BATCH_TYPE || v?.type === CLEAN_BATCH_V2_TYPE) && typeof v.topic === 'string' && input.cleanTopics.includes(v.topic)) return v.topic;
  return input.timelineTopic;
}

function parseObject(entry: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(Buffer.from(entry).toString('utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : undefined;
  } catch { return undefined; }
}

const rangesKey = (rs: readonly KafkaRange[]): string => rs.map((r) => `${r.topic}/${r.partition}:${r.fromOffset}-${r.toOffset}`).join(',');

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

/** Re-derive the span and compare it with the live log (pure: everything it reads is in `input`). */
export function replaySpan(input: ReplayInput): ReplayResult {
  const cursors = new Map<string, number>([...input.records.keys()].map((t) => [t, 0]));
  const seen = new Set(input.eventsBefore);
  let edge = input.startEdge;
  let index = edge.size;
  let first: EntryDifference | undefined;
  const checkpoints: CheckpointComparison[] = [];
  const files: FileWrite[] = [];
  const note = (d: EntryDifference): void => { first ??= d; };

  /** The next record of a stream that the runner would log (timeline: not an event id already logged). */
  const take = (topic: string): { record: SourceRecord; entry: Buffer } | undefined => {
    const list = input.records.get(topic) ?? [];
    let i = cursors.get(topic) ?? 0;
    for (; i < list.length; i++) {
      const r = list[i]!;
      const built = recordEntry(topic === input.timelineTopic, r.value, { topic: r.topic, partition: r.partition, offset: r.offset }, r.headers);
      if (built.eventId !== undefined) {
        if (seen.has(built.eventId)) continue;
        seen.add(built.eventId);
      }
      cursors.set(topic, i + 1);
      return { record: r, entry: built.entry };
    }
    cursors.set(topic, i);
    return undefined;
  };

  for (const seg of input.segments) {
    const items: AppendItem[] = [];
    for (; index < seg.size; index++) {
      const live = input.liveEntries[index - input.startEdge.size]!;
      const liveObj = parseObject(live);
      const stream = streamOf(liveObj, input);
      let entry: Buffer | undefined;
      let source: Position | null = null;
      if (stream === KEY_ROTATION_TYPE) {
        entry = rotationEntryAt(input.keyRecords, index);
        items.push({ entry: entry ?? live });
      } else {
        const got = take(stream);
        if (got) {
          entry = got.entry;
          source = { topic: got.record.topic, partition: got.record.partition, offset: got.record.offset };
          items.push({ entry, kafka: source });
        } else items.push({ entry: live }); // nothing to re-derive it from: the tree keeps the live leaf, the difference is named
      }
      const liveLeaf = toHex(leafHash(live));
      const expectedLeaf = entry ? toHex(leafHash(entry)) : null;
      if (expectedLeaf !== liveLeaf) {
        note({ index, expected_leaf_hash: expectedLeaf, actual_leaf_hash: liveLeaf, source, live_source: liveSourceOf(liveObj),
          reason: entry === undefined
            ? (stream === KEY_ROTATION_TYPE ? 'no key record names this key rotation' : `the log has an entry from ${stream} that no record in the span re-derives`)
            : 'the entry re-derived from the record differs from the logged entry',
          ...(entry ? { expected_entry: text(entry) } : {}), actual_entry: text(live) });
      }
    }
    const ext = extendEdge(edge, items.map((i) => i.entry));
    edge = ext.edge;
    files.push(...ext.files);
    const expectedRoot = toHex(ext.root);
    const ranges = kafkaRanges(items.filter((i) => i.kafka));
    checkpoints.push({ size: seg.size, expected_root: expectedRoot, actual_root: seg.root, roots_identical: expectedRoot === seg.root,
      kafka_identical: rangesKey(ranges) === rangesKey(seg.kafka), sealed_at: seg.sealedAt });
  }

  // Records of the span the log never took (beyond de-duplicated events): an omission.
  for (const topic of input.records.keys()) {
    const got = take(topic);
    if (got) {
      note({ index, expected_leaf_hash: toHex(leafHash(got.entry)), actual_leaf_hash: null,
        source: { topic: got.record.topic, partition: got.record.partition, offset: got.record.offset }, live_source: null,
        reason: 'a record in the span re-derives an entry the log does not have', expected_entry: text(got.entry) });
    }
  }

  const identical = first === undefined && checkpoints.every((c) => c.roots_identical && c.kafka_identical);
  return { identical, entries: index - input.startEdge.size, checkpoints, first_difference: first, files };
}
