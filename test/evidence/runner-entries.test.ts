// The entries the runner builds from Kafka records: canonical JSON of timeline events, digest
// summaries for oversize or unparsable events, and clean-batch digests.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CLEAN_BATCH_TYPE, OVERSIZE_EVENT_TYPE, UNPARSABLE_EVENT_TYPE, cleanBatchEntry, timelineEntry } from '../../processors/evidence/runner.ts';
import { entryEventId, indexFileBytes } from '../../processors/evidence/event-index.ts';

const pos = { topic: 'timeline_events', partition: 2, offset: '41' };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('runner entries', () => {
  it('a timeline event becomes its RFC 8785 canonical JSON', () => {
    const v = Buffer.from('{"z":1,"event_id":"ab","details":{"b":2.50,"a":"é"},"n":1e21}');
    const { entry, eventId } = timelineEntry(v, pos);
    expect(entry.toString()).toBe('{"details":{"a":"é","b":2.5},"event_id":"ab","n":1e+21,"z":1}');
    expect(eventId).toBe('ab');
    expect(entryEventId(entry)).toBe('ab');
  });

  it('an event over 65,535 bytes is summarized by digest, never truncated', () => {
    const v = Buffer.from(JSON.stringify({ event_id: 'cd', details: { blob: 'x'.repeat(70_000) } }));
    const { entry, eventId } = timelineEntry(v, pos);
    expect(eventId).toBe('cd');
    expect(JSON.parse(entry.toString())).toEqual({ type: OVERSIZE_EVENT_TYPE, event_id: 'cd', topic: pos.topic, partition: 2, offset: '41', sha256: sha(v), size: v.length });
  });

  it('a record that is not a JSON object is logged as a digest', () => {
    for (const v of [Buffer.from('not json'), Buffer.from('[1,2]'), Buffer.alloc(0)]) {
      const { entry, eventId } = timelineEntry(v, pos);
      expect(eventId).toBeUndefined();
      expect(JSON.parse(entry.toString())).toMatchObject({ type: UNPARSABLE_EVENT_TYPE, sha256: sha(v), size: v.length });
      expect(entryEventId(entry)).toBeUndefined();
    }
  });

  it('a clean batch becomes its position and SHA-256', () => {
    const v = Buffer.from([0x0a, 0x01, 0xff]);
    const e = cleanBatchEntry(v, { topic: 'otlp_spans_clean', partition: 0, offset: '9007199254740993' });
    expect(e.toString()).toBe(`{"offset":"9007199254740993","partition":0,"sha256":"${sha(v)}","size":3,"topic":"otlp_spans_clean","type":"${CLEAN_BATCH_TYPE}"}`);
    expect(entryEventId(e)).toBeUndefined();
  });

  it('index files list only the events of their range, canonically', () => {
    expect(indexFileBytes(10, 12, [['b', 11], ['a', 10], ['c', 12], ['d', 3]]).toString()).toBe('{"events":{"a":10,"b":11},"from":10,"to":12}');
  });
});
