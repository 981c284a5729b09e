// Table names and the row shapes written to them (JSONEachRow). DateTime64(9) values are written as
// decimal nanosecond strings: exact, and independent of the server's time zone.
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
  await store.insertRows(TABLES.evidenceSegments, [{ ...row }]);
}
