// processors/scrub/dlq.ts, the pure part: what a dead letter keeps. Decodable values scrubbed (never
// under a deep-debug grant), undecodable ones as a digest only, producer headers and non-tenant keys
// dropped. The Kafka round trip is in test/lib/kafka-auth.test.ts ("the DLQ").
import Long from 'long';
import { describe, expect, it } from 'vitest';
import { H } from '../../lib/kafka/topics.ts';
import { decodeTraces, encode, types } from '../../lib/otlp/proto.ts';
import { parseScrubConfig } from '../../processors/scrub/config.ts';
import { deadLetter } from '../../processors/scrub/dlq.ts';
import { sha256Hex } from '../../processors/scrub/record.ts';

const now = new Date('2026-11-23T12:30:00Z');
const EMAIL = 'bob.secret@example.com';
// acme may see e-mails in clear right now (a deep-debug grant): the DLQ must not.
const config = parseScrubConfig({ tenants: { acme: { deepDebug: [{ id: 'INC-1', rules: ['email'], startsAt: '2026-11-23T12:00:00Z',
  expiresAt: '2026-11-23T13:00:00Z', actor: 'ops', reason: 'debug' }] } } });
const src = { topic: 'otlp_spans', partition: 2, offset: '41' };
const request = (name: string) => Buffer.from(encode('traces', types.ExportTraceServiceRequest.fromObject({ resourceSpans: [{ resource: { attributes: [] },
  scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 2), name, kind: 2,
    startTimeUnixNano: Long.fromString('1795436000000000000', true), endTimeUnixNano: Long.fromString('1795436000250000000', true) }] }] }] })));
const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('deadLetter', () => {
  it('keeps a decodable value scrubbed, with no grant applied, and only the pipeline\'s headers', () => {
    const value = request(`mail ${EMAIL}`);
    const d = deadLetter('traces', { key: 'acme', value, headers: { [H.tenant]: 'globex', [H.traceparent]: tp, 'x-leak': EMAIL } }, 'scrub: tenant header does not match the record key', src, config, now);
    const name = decodeTraces(d.value).resourceSpans[0]!.scopeSpans[0]!.spans[0]!.name;
    expect(name).not.toContain(EMAIL);
    expect(name).toMatch(/^mail \S+$/);
    expect(d.key).toBe('acme');
    expect(d.headers).toEqual({
      [H.dlqReason]: 'scrub: tenant header does not match the record key', [H.dlqSourceTopic]: 'otlp_spans', [H.dlqSourceOffset]: '41',
      'dlq-source-partition': '2', 'dlq-raw-sha256': sha256Hex(value), 'dlq-raw-bytes': String(value.length), 'dlq-content': 'scrubbed',
      [H.tenant]: 'globex', [H.traceparent]: tp, [H.contentSha256]: sha256Hex(d.value), [H.scrubSummary]: expect.stringContaining('"email":1'),
    });
  });

  it('keeps only the digest, length and reason of a value that does not decode', () => {
    const value = Buffer.concat([Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from(EMAIL)]);
    const d = deadLetter('traces', { key: 'acme', value, headers: { [H.tenant]: 'acme' } }, 'scrub: undecodable traces request: x', src, config, now);
    expect(d.value.length).toBe(0);
    expect(d.headers).toMatchObject({ 'dlq-content': 'digest-only', 'dlq-raw-sha256': sha256Hex(value), 'dlq-raw-bytes': String(value.length), [H.tenant]: 'acme' });
    expect(JSON.stringify(d.headers)).not.toContain('bob.secret');
  });

  it('drops a key or tenant header that is not a tenant id, and a malformed traceparent', () => {
    const d = deadLetter('traces', { key: EMAIL, value: Buffer.alloc(0), headers: { [H.tenant]: `x ${EMAIL}`, [H.traceparent]: `00-${EMAIL}` } }, 'scrub: record key is not a valid tenant id', src, config, now);
    expect(d.key).toBeNull();
    expect(d.headers![H.tenant]).toBeUndefined();
    expect(d.headers![H.traceparent]).toBeUndefined();
    expect(JSON.stringify(d)).not.toContain('bob.secret');
  });
});
