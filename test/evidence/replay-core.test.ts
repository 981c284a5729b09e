// The pure core of stella forensic replay (processors/evidence/replay.ts): which segments a range
// selects, and the entry-by-entry comparison (interleave from the log, de-duplicated events, key
// rotations from the key records, tampering, omissions and additions named at their entry).
import { describe, expect, it } from 'vitest';
import { EMPTY_EDGE, extendEdge, type LogEdge } from '../../processors/evidence/log-edge.ts';
import { leafHash, toHex } from '../../processors/evidence/hash.ts';
import { keyRotationEntry } from '../../processors/evidence/keys.ts';
import type { KeyRecord } from '../../processors/evidence/layout.ts';
import { recordEntry } from '../../processors/evidence/runner.ts';
import { kafkaRanges } from '../../processors/evidence/sealer.ts';
import { readRanges, replaySpan, selectSegments, type ReplayInput, type SegmentInfo, type SourceRecord } from '../../processors/evidence/replay.ts';
import { testSigner } from './helpers.ts';

const TL = 'timeline_events';
const SP = 'otlp_spans_clean';
const LG = 'otlp_logs_clean';

const rec = (topic: string, offset: number, value: string): SourceRecord => ({ topic, partition: 0, offset: String(offset), key: Buffer.from('acme'), value: Buffer.from(value), headers: { tenant: 'acme' } });
const event = (id: string, n: number): string => JSON.stringify({ event_id: id.padEnd(32, '0'), tenant_id: 'acme', kind: 'deploy', n });
const entryOf = (r: SourceRecord): Buffer => recordEntry(r.topic === TL, r.value, { topic: r.topic, partition: 0, offset: r.offset }, r.headers).entry;

/** A live log sealed from `order` (records or literal entries) at `sizes`, as the runner would seal it. */
function liveLog(order: (SourceRecord | Buffer)[], sizes: number[], start: LogEdge = EMPTY_EDGE): { segments: SegmentInfo[]; entries: Buffer[] } {
  const entries = order.map((x) => (Buffer.isBuffer(x) ? x : entryOf(x)));
  const segments: SegmentInfo[] = [];
  let edge = start;
  let prev = start.size;
  for (const size of sizes) {
    const part = order.slice(prev - start.size, size - start.size);
    const ext = extendEdge(edge, entries.slice(prev - start.size, size - start.size));
    segments.push({ previousSize: prev, size, root: toHex(ext.root), sealedAt: `2026-12-03T10:0${segments.length}:00.000Z`,
      kafka: kafkaRanges(part.filter((x): x is SourceRecord => !Buffer.isBuffer(x)).map((r) => ({ entry: entryOf(r), kafka: { topic: r.topic, partition: 0, offset: r.offset } }))) });
    edge = ext.edge;
    prev = size;
  }
  return { segments, entries };
}

const byTopic = (rs: SourceRecord[]): Map<string, SourceRecord[]> => {
  const m = new Map<string, SourceRecord[]>([[TL, []], [SP, []], [LG, []]]);
  for (const r of rs) m.get(r.topic)!.push(r);
  return m;
};

const input = (o: Partial<ReplayInput> & Pick<ReplayInput, 'segments' | 'liveEntries' | 'records'>): ReplayInput =>
  ({ timelineTopic: TL, cleanTopics: [SP, LG], startEdge: EMPTY_EDGE, eventsBefore: new Set(), keyRecords: [], ...o });

// Spans 0..3, logs 0..1, events e1, e2, and e1 published again (logged once); interleaved as a fetch might.
const spans = [0, 1, 2, 3].map((i) => rec(SP, i, `span-${i}`));
const logs = [0, 1].map((i) => rec(LG, i, `log-${i}`));
const events = [rec(TL, 0, event('e1', 1)), rec(TL, 1, event('e2', 2)), rec(TL, 2, event('e1', 1))];
const order = [spans[0]!, spans[1]!, events[0]!, logs[0]!, spans[2]!, events[1]!, logs[1]!, spans[3]!];

describe('replay core', () => {
  it('selects the segments covering a range, widened to a contiguous span, and the offsets to read', () => {
    const seg = (previousSize: number, size: number, kafka: [string, number, number][]): SegmentInfo =>
      ({ previousSize, size, root: '', sealedAt: '', kafka: kafka.map(([topic, a, b]) => ({ topic, partition: 0, fromOffset: String(a), toOffset: String(b) })) });
    const segs = [seg(0, 4, [[SP, 0, 3]]), seg(4, 6, [[TL, 0, 1]]), seg(6, 9, [[SP, 4, 6], [TL, 2, 2]]), seg(9, 12, [[SP, 7, 9]])];
    expect(selectSegments(segs, SP, 3n, 5n).map((s) => s.size)).toEqual([4, 6, 9]); // the events-only segment between is kept
    expect(selectSegments(segs, SP, 8n, 8n).map((s) => s.size)).toEqual([12]);
    expect(selectSegments(segs, SP, 10n, 20n)).toEqual([]);
    expect(selectSegments(segs, LG, 0n, 99n)).toEqual([]);
    expect(readRanges(selectSegments(segs, SP, 3n, 5n))).toEqual([{ topic: SP, partition: 0, from: 0n, to: 6n }, { topic: TL, partition: 0, from: 0n, to: 2n }]);
  });

  it('re-derives the interleave the log has, de-duplicates a republished event, and finds identical roots', () => {
    const live = liveLog(order, [3, 6, 8]);
    const r = replaySpan(input({ segments: live.segments, liveEntries: live.entries, records: byTopic([...spans, ...logs, ...events]) }));
    expect(r.first_difference).toBeUndefined();
    expect(r.checkpoints.map((c) => [c.size, c.roots_identical, c.kafka_identical])).toEqual([[3, true, true], [6, true, true], [8, true, true]]);
    expect(r.identical).toBe(true);
    expect(r.entries).toBe(8);
  });

  it('names the first entry whose record was changed, with both leaf hashes and the record position', () => {
    const live = liveLog(order, [3, 6, 8]);
    const changed = rec(TL, 1, event('e2', 999));
    const r = replaySpan(input({ segments: live.segments, liveEntries: live.entries, records: byTopic([...spans, ...logs, events[0]!, changed, events[2]!]) }));
    expect(r.identical).toBe(false);
    expect(r.first_difference).toMatchObject({ index: 5, source: { topic: TL, partition: 0, offset: '1' },
      expected_leaf_hash: toHex(leafHash(entryOf(changed))), actual_leaf_hash: toHex(leafHash(live.entries[5]!)) });
    expect(r.checkpoints.map((c) => c.roots_identical)).toEqual([true, false, false]);
  });

  it('a record the log left out shows at the entry that took its place; a logged entry without a record is named', () => {
    const without = order.filter((x) => x !== spans[2]);
    const live = liveLog(without, [3, 7]);
    const r = replaySpan(input({ segments: live.segments, liveEntries: live.entries, records: byTopic([...spans, ...logs, ...events]) }));
    // The live entry of span 3 (index 6) is where the re-derived log has span 2.
    expect(without.indexOf(spans[3]!)).toBe(6);
    expect(r.first_difference).toMatchObject({ index: 6, source: { offset: '2' }, live_source: { topic: SP, offset: '3' } });

    const live2 = liveLog(order, [8]);
    const r2 = replaySpan(input({ segments: live2.segments, liveEntries: live2.entries, records: byTopic([...spans.slice(0, 3), ...logs, ...events]) }));
    expect(r2.first_difference).toMatchObject({ index: 7, expected_leaf_hash: null, live_source: { topic: SP, offset: '3' } });

    // And a record past the log's last entry (the log stopped short of the span's records).
    const live3 = liveLog(order.slice(0, 7), [7]);
    const r3 = replaySpan(input({ segments: live3.segments, liveEntries: live3.entries, records: byTopic([...spans, ...logs, ...events]) }));
    expect(r3.first_difference).toMatchObject({ index: 7, actual_leaf_hash: null, source: { topic: SP, offset: '3' } });
  });

  it('an event logged before the span is not expected again; a key rotation entry comes from the key records', () => {
    const a = testSigner('replay-a', 'stella-telemetry.example/tenants/acme');
    const b = testSigner('replay-b', 'stella-telemetry.example/tenants/acme');
    const prefix = liveLog([events[0]!], [1]);
    const startEdge = extendEdge(EMPTY_EDGE, prefix.entries).edge;
    const rotation = keyRotationEntry(a, b, 5);
    const keyRecords: KeyRecord[] = [{ verifier_key: a.verifierKey, valid_from_size: 1, rotation_index: null }, { verifier_key: b.verifierKey, valid_from_size: 5, rotation_index: 3 }];
    const live = liveLog([spans[0]!, events[1]!, rotation, spans[1]!], [4, 5], startEdge);
    const r = replaySpan(input({ startEdge, segments: live.segments, liveEntries: live.entries, keyRecords, eventsBefore: new Set(['e1'.padEnd(32, '0')]),
      records: byTopic([spans[0]!, spans[1]!, events[1]!, events[2]!]) }));
    expect(r.first_difference).toBeUndefined();
    expect(r.identical).toBe(true);
    // Without the key record the rotation entry cannot be re-derived: named, not assumed.
    const r2 = replaySpan(input({ startEdge, segments: live.segments, liveEntries: live.entries, keyRecords: keyRecords.slice(0, 1), eventsBefore: new Set(['e1'.padEnd(32, '0')]),
      records: byTopic([spans[0]!, spans[1]!, events[1]!, events[2]!]) }));
    expect(r2.first_difference).toMatchObject({ index: 3, expected_leaf_hash: null, reason: 'no key record names this key rotation' });
  });
});
