// Test helper: scrub a decoded request through the production wire path (encode -> scrubRequest ->
// decode) and, on every call, check it against the oracle (the former object path, oracle.ts):
// decode(wire(x)) must deep-equal the oracle's result and the summaries must agree. The scrubbed
// content replaces the request's resource list, so tests read the result from the same object.
import { expect } from 'vitest';
import { decodeLogs, decodeMetrics, decodeTraces, encode, signals, type ExportLogsServiceRequest, type ExportMetricsServiceRequest,
  type ExportTraceServiceRequest, type SignalName } from '../../lib/otlp/proto.ts';
import type { TenantScrubPolicy } from '../../processors/scrub/config.ts';
import { scrubRequest, type ScrubSummary } from '../../processors/scrub/wire.ts';
import * as oracle from './oracle.ts';

const decoders = { traces: decodeTraces, logs: decodeLogs, metrics: decodeMetrics } as const;
const oracles = { traces: oracle.scrubTraces, logs: oracle.scrubLogs, metrics: oracle.scrubMetrics } as const;
const resourceField = { traces: 'resourceSpans', logs: 'resourceLogs', metrics: 'resourceMetrics' } as const;

/** A decoded message in a comparable plain form (64-bit ints and bytes as strings). */
export const plain = (signal: SignalName, bytes: Uint8Array): unknown =>
  signals[signal].request.toObject(signals[signal].request.decode(bytes), { longs: String, bytes: String });

/** Wire-scrub `bytes`, run the oracle on a decoded copy, and assert they agree. Returns the wire result. */
export function checkAgainstOracle(signal: SignalName, bytes: Uint8Array, policy: TenantScrubPolicy, now: Date): { value: Uint8Array; summary: ScrubSummary } {
  const wire = scrubRequest(signal, bytes, policy, now);
  const copy = decoders[signal](bytes);
  const ref = oracles[signal](copy as never, policy, now);
  expect(plain(signal, wire.value)).toEqual(plain(signal, encode(signal, copy)));
  expect(wire.summary).toEqual(ref.summary);
  if (ref.summary.total === 0) expect(wire.value).toBe(bytes); // nothing redacted: the exact input bytes
  return wire;
}

function viaWire<T extends object>(signal: SignalName, req: T, policy: TenantScrubPolicy, now: Date): { message: T; summary: ScrubSummary } {
  const { value, summary } = checkAgainstOracle(signal, encode(signal, req), policy, now);
  const field = resourceField[signal];
  (req as Record<string, unknown>)[field] = (decoders[signal](value) as unknown as Record<string, unknown>)[field];
  return { message: req, summary };
}

export const scrubTraces = (req: ExportTraceServiceRequest, policy: TenantScrubPolicy, now: Date) => viaWire('traces', req, policy, now);
export const scrubLogs = (req: ExportLogsServiceRequest, policy: TenantScrubPolicy, now: Date) => viaWire('logs', req, policy, now);
export const scrubMetrics = (req: ExportMetricsServiceRequest, policy: TenantScrubPolicy, now: Date) => viaWire('metrics', req, policy, now);
