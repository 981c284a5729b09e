// Tenant-scoped reads of the OTel tables for GET /obs/logs and GET /obs/metrics. Every statement
// goes through TenantStore.scopedRows, which binds the tenant and refuses a statement without the
// tenant predicate; callers pass typed filters, never SQL. What these tables hold was written from
// the clean (scrubbed) topics, so only scrubbed values are ever returned.
import type { QueryParams } from './store.ts';
import type { TenantStore } from './tenant-store.ts';

export const SEVERITY_MIN: Record<string, number> = { trace: 1, debug: 5, info: 9, warn: 13, error: 17, fatal: 21 };

export interface LogFilter {
  fromUnixNano: bigint;
  toUnixNano: bigint;
  service?: string;
  /** Lowest SeverityNumber returned (SEVERITY_MIN). */
  minSeverity?: number;
  traceId?: string;
  /** Case-insensitive substring of the body. */
  text?: string;
  /** Records strictly before this (newest first). */
  before?: { tsUnixNano: bigint; recordId: string };
  limit: number;
}

export interface LogRow {
  ts_unix_nano: string; record_id: string; service: string; severity_text: string; severity_number: number;
  body: string; trace_id: string; span_id: string; event_name: string; attributes: Record<string, string>;
}

/** Log records in [from, to), newest first, ordered by (Timestamp, RecordId) descending: a stable order for cursors. */
export function listLogs(ts: TenantStore, f: LogFilter): Promise<LogRow[]> {
  const where = ['TenantId = {tenant:String}', 'Timestamp >= fromUnixTimestamp64Nano({from:Int64})', 'Timestamp < fromUnixTimestamp64Nano({to:Int64})'];
  const params: QueryParams = { from: f.fromUnixNano.toString(), to: f.toUnixNano.toString(), limit: f.limit };
  if (f.service !== undefined) { where.push('ServiceName = {service:String}'); params.service = f.service; }
  if (f.minSeverity !== undefined) { where.push('SeverityNumber >= {sev:UInt8}'); params.sev = f.minSeverity; }
  if (f.traceId !== undefined) { where.push('TraceId = {trace:String}'); params.trace = f.traceId; }
  if (f.text !== undefined) { where.push('positionCaseInsensitiveUTF8(Body, {text:String}) > 0'); params.text = f.text; }
  if (f.before) {
    where.push('(Timestamp, RecordId) < (fromUnixTimestamp64Nano({b_ts:Int64}), {b_id:String})');
    params.b_ts = f.before.tsUnixNano.toString();
    params.b_id = f.before.recordId;
  }
  // FINAL: a redelivered batch's duplicate rows never show (the table is a ReplacingMergeTree on RecordId).
  return ts.scopedRows<LogRow>(`SELECT toString(toUnixTimestamp64Nano(Timestamp)) AS ts_unix_nano, RecordId AS record_id, ServiceName AS service,
      SeverityText AS severity_text, SeverityNumber AS severity_number, Body AS body, TraceId AS trace_id, SpanId AS span_id,
      EventName AS event_name, LogAttributes AS attributes
    FROM otel_logs FINAL WHERE ${where.join(' AND ')}
    ORDER BY Timestamp DESC, RecordId DESC LIMIT {limit:UInt32}`, params);
}

export interface MetricFilter {
  name: string;
  fromUnixNano: bigint;
  toUnixNano: bigint;
  stepSeconds: number;
  service?: string;
  /** Data-point attributes that must be equal. */
  attributes: Record<string, string>;
  /** Rows returned at most (series × steps); one more is asked for to tell truncation. */
  limit: number;
}

export interface MetricPoint { kind: 'gauge' | 'sum'; service: string; attributes: Record<string, string>; step_unix: string; avg: number; min: number; max: number; last: number; samples: number }

/** Gauge and sum points of one metric, per series (service + attributes) and time step. */
export function metricSeries(ts: TenantStore, f: MetricFilter): Promise<MetricPoint[]> {
  const params: QueryParams = { name: f.name, from: f.fromUnixNano.toString(), to: f.toUnixNano.toString(), step: f.stepSeconds, limit: f.limit };
  const extra: string[] = [];
  if (f.service !== undefined) { extra.push('ServiceName = {service:String}'); params.service = f.service; }
  Object.entries(f.attributes).forEach(([k, v], i) => { extra.push(`Attributes[{ak${i}:String}] = {av${i}:String}`); params[`ak${i}`] = k; params[`av${i}`] = v; });
  const part = (kind: string, table: string) => `SELECT '${kind}' AS kind, ServiceName AS service, Attributes AS attributes,
      toString(toUnixTimestamp(toStartOfInterval(TimeUnix, toIntervalSecond({step:UInt32})))) AS step_unix,
      avg(Value) AS avg, min(Value) AS min, max(Value) AS max, argMax(Value, TimeUnix) AS last, count() AS samples
    FROM ${table} WHERE TenantId = {tenant:String} AND MetricName = {name:String}
      AND TimeUnix >= fromUnixTimestamp64Nano({from:Int64}) AND TimeUnix < fromUnixTimestamp64Nano({to:Int64})
      ${extra.map((e) => `AND ${e}`).join(' ')}
    GROUP BY service, attributes, step_unix`;
  return ts.scopedRows<MetricPoint>(`SELECT * FROM (${part('gauge', 'otel_metrics_gauge')} UNION ALL ${part('sum', 'otel_metrics_sum')})
    ORDER BY kind, service, toString(attributes), step_unix LIMIT {limit:UInt32}`, params);
}
