// One raw Kafka record -> one clean record (or a DLQ verdict). Pure: the wire-level scrub of the
// request bytes (wire.ts) and the headers; the runner does the Kafka I/O.
import { createHash } from 'node:crypto';
import { CARRIED_HEADERS, H } from '../../lib/kafka/topics.ts';
import type { SignalName } from '../../lib/otlp/proto.ts';
import { validateTenantId } from '../../lib/tenancy.ts';
import { policyFor, type ScrubConfig } from './config.ts';
import { scrubberFor } from './engine.ts';
import { policyVersionOf } from './policy-version.ts';
import { WireError, scrubRequest, type ScrubSummary } from './wire.ts';

export interface RawRecord { key: string | null; value: Buffer; headers: Record<string, string> }

export type RecordVerdict =
  | { kind: 'clean'; tenant: string; value: Buffer; headers: Record<string, string>; summary: ScrubSummary }
  | { kind: 'dlq'; reason: string };

export const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The scrub-summary header: counts per rule id and the relaxed rules, never values. */
export function summaryHeader(s: ScrubSummary): string {
  return JSON.stringify({ v: 1, total: s.total, items: s.items, rules: s.rules, ...(s.relaxed.length ? { relaxed: s.relaxed } : {}), ...(s.dropped ? { dropped: s.dropped } : {}) });
}

export function scrubRecord(signal: SignalName, rec: RawRecord, config: ScrubConfig, now: Date): RecordVerdict {
  const tenant = rec.key ?? '';
  if (validateTenantId(tenant)) return { kind: 'dlq', reason: 'scrub: record key is not a valid tenant id' };
  const headerTenant = rec.headers[H.tenant];
  if (headerTenant !== undefined && headerTenant !== tenant) return { kind: 'dlq', reason: 'scrub: tenant header does not match the record key' };
  const claimed = rec.headers[H.contentSha256];
  const rawDigest = claimed === undefined ? undefined : sha256Hex(rec.value);
  if (claimed !== undefined && claimed.toLowerCase() !== rawDigest) return { kind: 'dlq', reason: 'scrub: content-sha256 header does not match the value' };
  const policy = policyFor(config, tenant);
  const scrubber = scrubberFor(policy, now);
  let scrubbed: ReturnType<typeof scrubRequest>;
  try {
    scrubbed = scrubRequest(signal, rec.value, policy, now, { scrubber });
  } catch (err) {
    // The walker's message names the wire problem (field, message type), never payload content.
    if (err instanceof WireError) return { kind: 'dlq', reason: `scrub: undecodable ${signal} request: ${err.message.slice(0, 200)}` };
    throw err;
  }
  const { summary } = scrubbed;
  // Unchanged requests keep their exact bytes; changed ones differ only in the rewritten fields.
  const same = scrubbed.value === rec.value;
  const value = same ? rec.value : Buffer.from(scrubbed.value.buffer, scrubbed.value.byteOffset, scrubbed.value.byteLength);
  // Custody from receipt: the raw record's digest as received (the receiver's header, just checked
  // against the bytes; computed here for a producer that sent none) travels with the clean record.
  const rawSha = rawDigest ?? sha256Hex(rec.value);
  const digest = same ? rawSha : sha256Hex(value); // unchanged bytes: the raw digest
  const headers: Record<string, string> = {};
  for (const k of CARRIED_HEADERS) { const v = rec.headers[k]; if (v !== undefined) headers[k] = v; }
  headers[H.tenant] = tenant;
  headers[H.contentSha256] = digest;
  headers[H.scrubSummary] = summaryHeader(summary);
  headers[H.rawContentSha256] = rawSha;
  headers[H.scrubPolicy] = policyVersionOf(policy, scrubber.relaxed);
  return { kind: 'clean', tenant, value, headers, summary };
}
