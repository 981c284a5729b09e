// Table names and the row shapes written to them (JSONEachRow). DateTime64(9) values are written as
// 'YYYY-MM-DD hh:mm:ss.nnnnnnnnn' in UTC (the store pins session_timezone to UTC): exact, whereas
// bare digit strings are parsed by length heuristics (seconds, ms or ns) and are therefore unsafe.
import { validateTenantId } from '../tenancy.ts';
import type { Store } from './store.ts';

export const TABLES = {
  timelineEvents: 'timeline_events',
  traces: 'otel_traces',
  logs: 'otel_logs',
  metricsGauge: 'otel_metrics_gauge',
  metricsSum: 'otel_metrics_sum',
  metricsHistogram: 'otel_metrics_histogram',
  metricsExponentialHistogram: 'otel_metrics_exponential_histogram',
  metricsSummary: 'otel_metrics_summary',
  evidenceSegments: 'evidence_segments',
} as const;

const MAX_NS = 9_214_646_400_000_000_000n; // 2261-12-31, the end of DateTime64(9)

/** Decimal epoch nanoseconds -> DateTime64(9) text in UTC (clamped to the type's range). */
export function dateTime64(nsText: string | bigint): string {
  let n = typeof nsText === 'bigint' ? nsText : BigInt(nsText || '0');
  if (n < 0n) n = 0n;
  if (n > MAX_NS) n = MAX_NS;
  const secs = n / 1_000_000_000n;
  const frac = (n % 1_000_000_000n).toString().padStart(9, '0');
  // Batches are mostly within one second: reuse the formatted second (formatting dominates otherwise).
  if (secs !== lastSecs) { lastSecs = secs; lastSecsText = new Date(Number(secs) * 1000).toISOString().slice(0, 19).replace('T', ' '); }
  return `${lastSecsText}.${frac}`;
}
let lastSecs = -1n;
let lastSecsText = '';

/** A derived event as stored: `ts` converted for DateTime64(9). */
export function timelineInsertRow(e: TimelineEventRow): Record<string, unknown> {
  return { ...e, ts: dateTime64(e.ts) };
}

/** A derived timeline event; `ts` is decimal epoch nanoseconds. */
export interface TimelineEventRow {
  event_id: string; ts: string; tenant_id: string; project_id: string; kind: string; actor: string;
  resource_type: string; resource_id: string; trace_id: string; span_id: string; digest: string; details: string; source: string;
}

export interface EvidenceSegmentRow {
  tenant_id: string; from_size: number | string; to_size: number | string; root_hex: string; statement_sha256: string;
  /** Nanoseconds since the epoch, decimal string. */
  sealed_at: string;
}

/** For the evidence processor: record a sealed segment (idempotent on (tenant_id, to_size)). */
export async function insertEvidenceSegment(store: Store, row: EvidenceSegmentRow): Promise<void> {
  const bad = validateTenantId(row.tenant_id);
  if (bad) throw new Error(`invalid tenant id: ${bad}`);
  await store.insertRows(TABLES.evidenceSegments, [{ ...row, sealed_at: dateTime64(row.sealed_at) }]);
}
