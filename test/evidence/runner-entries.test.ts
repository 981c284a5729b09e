// The entries the runner builds from Kafka records: canonical JSON of timeline events, digest
// summaries for oversize or unparsable events, and clean-batch digests.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CLEAN_BATCH_TYPE, CLEAN_BATCH_V2_TYPE, OVERSIZE_EVENT_TYPE, UNPARSABLE_EVENT_TYPE, cleanBatchEntry, custodyOf, timelineEntry } from '../../processors/evidence/runner.ts';
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

  it('a clean record with custody headers becomes a v2 entry: raw digest as received, clean digest, scrub policy version', () => {
    const v = Buffer.from([0x0a, 0x01, 0xff]);
    const raw = 'ab'.repeat(32);
    const policy = `sha256:${'cd'.repeat(32)}`;
    const custody = custodyOf({ 'raw-content-sha256': Buffer.from(raw), 'scrub-policy': policy, tenant: Buffer.from('acme') });
    expect(custody).toEqual({ rawSha256: raw, scrubPolicy: policy });
    const e = cleanBatchEntry(v, { topic: 'otlp_spans_clean', partition: 1, offset: '7' }, custody);
    expect(e.toString()).toBe(`{"offset":"7","partition":1,"raw_sha256":"${raw}","scrub_policy":"${policy}","sha256":"${sha(v)}","size":3,"topic":"otlp_spans_clean","type":"${CLEAN_BATCH_V2_TYPE}"}`);
    // Missing or malformed custody headers (an older scrubber): the v1 entry, never a half-filled v2.
    for (const h of [{}, { 'raw-content-sha256': raw }, { 'raw-content-sha256': raw.toUpperCase(), 'scrub-policy': policy }, { 'raw-content-sha256': raw, 'scrub-policy': 'v1' }]) {
      expect(custodyOf(h)).toBeUndefined();
    }
    expect(JSON.parse(cleanBatchEntry(v, { topic: 't', partition: 0, offset: '1' }, undefined).toString()).type).toBe(CLEAN_BATCH_TYPE);
  });

  it('index files list only the events of their range, canonically', () => {
    expect(indexFileBytes(10, 12, [['b', 11], ['a', 10], ['c', 12], ['d', 3]]).toString()).toBe('{"events":{"a":10,"b":11},"from":10,"to":12}');
  });
});
