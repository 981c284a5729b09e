// What the scrubber writes to the DLQ (pure). The DLQ is read by operators and kept apart from
// tenants' data, so it must not become the place where unscrubbed values survive:
//  - a record whose value decodes (it was refused for its key, tenant header or digest) is
//    dead-lettered in scrubbed form, under the default rules with no deep-debug relaxation;
//  - a record that does not decode cannot be scrubbed field by field: only its SHA-256, its length
//    and the reason are kept (an empty value). The raw record stays in the raw topic, under that
//    topic's retention, for whoever is allowed to read raw topics.
// Headers are reduced to the ones the pipeline itself sets (a producer's own headers could carry
// anything), and a key or tenant header that is not a valid tenant id is dropped.
import { H } from '../../lib/kafka/topics.ts';
import type { OutMessage } from '../../lib/kafka/producer.ts';
import type { SignalName } from '../../lib/otlp/proto.ts';
import { validateTenantId } from '../../lib/tenancy.ts';
import { policyFor, type ScrubConfig } from './config.ts';
import { sha256Hex, summaryHeader, type RawRecord } from './record.ts';
import { scrubRequest } from './wire.ts';

/** `scrubbed`: the value is the scrubbed request; `digest-only`: the value is empty, see dlq-raw-sha256. */
export const DLQ_CONTENT = 'dlq-content';
export const DLQ_RAW_SHA256 = 'dlq-raw-sha256';
export const DLQ_RAW_BYTES = 'dlq-raw-bytes';
export const DLQ_SOURCE_PARTITION = 'dlq-source-partition';

export interface DeadLetterSource { topic: string; partition: number; offset: string }

const validTenant = (s: string | null | undefined): s is string => typeof s === 'string' && validateTenantId(s) === undefined;

export function deadLetter(signal: SignalName, rec: RawRecord, reason: string, src: DeadLetterSource, config: ScrubConfig, now: Date): OutMessage {
  const tenant = validTenant(rec.key) ? rec.key : null;
  const headers: Record<string, string> = {
    [H.dlqReason]: reason, [H.dlqSourceTopic]: src.topic, [H.dlqSourceOffset]: src.offset, [DLQ_SOURCE_PARTITION]: String(src.partition),
    [DLQ_RAW_SHA256]: sha256Hex(rec.value), [DLQ_RAW_BYTES]: String(rec.value.length),
  };
  const headerTenant = rec.headers[H.tenant];
  if (validTenant(headerTenant)) headers[H.tenant] = headerTenant;
  const tp = rec.headers[H.traceparent];
  if (tp !== undefined && /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(tp)) headers[H.traceparent] = tp;
  // The tenant's own rules (they may add to the defaults), never its deep-debug grants.
  const policy = { ...policyFor(config, tenant ?? ''), grants: [] };
  try {
    const out = scrubRequest(signal, rec.value, policy, now);
    const value = out.value === rec.value ? rec.value : Buffer.from(out.value.buffer, out.value.byteOffset, out.value.byteLength);
    return { key: tenant, value, headers: { ...headers, [DLQ_CONTENT]: 'scrubbed', [H.contentSha256]: sha256Hex(value), [H.scrubSummary]: summaryHeader(out.summary) } };
  } catch {
    // Undecodable (WireError), or anything else the walker refused: nothing of the value is kept.
    return { key: tenant, value: Buffer.alloc(0), headers: { ...headers, [DLQ_CONTENT]: 'digest-only' } };
  }
}
