// One raw Kafka record -> one clean record (or a DLQ verdict). Pure: decoding, scrubbing, encoding
// and headers; the runner does the Kafka I/O.
import { createHash } from 'node:crypto';
import { H } from '../../lib/kafka/topics.ts';
import { decodeLogs, decodeMetrics, decodeTraces, encode, type SignalName } from '../../lib/otlp/proto.ts';
import { validateTenantId } from '../../lib/tenancy.ts';
import { policyFor, type ScrubConfig } from './config.ts';
import { scrubLogs, scrubMetrics, scrubTraces, type ScrubSummary } from './otlp.ts';

export interface RawRecord { key: string | null; value: Buffer; headers: Record<string, string> }

export type RecordVerdict =
  | { kind: 'clean'; tenant: string; value: Buffer; headers: Record<string, string>; summary: ScrubSummary }
  | { kind: 'dlq'; reason: string };

export const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The scrub-summary header: counts per rule id and the relaxed rules, never values. */
export function summaryHeader(s: ScrubSummary): string {
  return JSON.stringify({ v: 1, total: s.total, items: s.items, rules: s.rules, ...(s.relaxed.length ? { relaxed: s.relaxed } : {}) });
}

export function scrubDecoded(signal: SignalName, msg: unknown, config: ScrubConfig, tenant: string, now: Date): ScrubSummary {
  const policy = policyFor(config, tenant);
  switch (signal) {
    case 'traces': return scrubTraces(msg as Parameters<typeof scrubTraces>[0], policy, now).summary;
    case 'logs': return scrubLogs(msg as Parameters<typeof scrubLogs>[0], policy, now).summary;
    case 'metrics': return scrubMetrics(msg as Parameters<typeof scrubMetrics>[0], policy, now).summary;
  }
}

const decoders = { traces: decodeTraces, logs: decodeLogs, metrics: decodeMetrics } as const;

export function scrubRecord(signal: SignalName, rec: RawRecord, config: ScrubConfig, now: Date): RecordVerdict {
  const tenant = rec.key ?? '';
  if (validateTenantId(tenant)) return { kind: 'dlq', reason: 'scrub: record key is not a valid tenant id' };
  const headerTenant = rec.headers[H.tenant];
  if (headerTenant !== undefined && headerTenant !== tenant) return { kind: 'dlq', reason: 'scrub: tenant header does not match the record key' };
  const claimed = rec.headers[H.contentSha256];
  if (claimed !== undefined && claimed.toLowerCase() !== sha256Hex(rec.value)) return { kind: 'dlq', reason: 'scrub: content-sha256 header does not match the value' };
  let msg: unknown;
  try {
    msg = decoders[signal](rec.value);
  } catch (err) {
    // The decoder's message names the wire problem (offset, wire type), never payload content.
    return { kind: 'dlq', reason: `scrub: undecodable ${signal} request: ${String((err as Error).message).slice(0, 200)}` };
  }
  const summary = scrubDecoded(signal, msg, config, tenant, now);
  // Unchanged requests keep their exact bytes (a re-encode could reorder unknown fields).
  const value = summary.total === 0 ? rec.value : Buffer.from(encode(signal, msg));
  const headers = { ...rec.headers, [H.tenant]: tenant, [H.contentSha256]: sha256Hex(value), [H.scrubSummary]: summaryHeader(summary) };
  return { kind: 'clean', tenant, value, headers, summary };
}
