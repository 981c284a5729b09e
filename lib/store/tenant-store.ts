// The tenant-scoped query layer: the only read path the API has into ClickHouse. A TenantStore is
// bound to one validated tenant id and injects the tenant predicate into every statement itself;
// callers pass typed filters, never SQL, and every value travels as a query parameter.
import { validateTenantId } from '../tenancy.ts';
import type { QueryParams, Store } from './store.ts';

export interface TimelineEvent {
  event_id: string;
  /** Event time, nanoseconds since the Unix epoch (decimal string: exceeds 2^53). */
  ts_unix_nano: string;
  tenant_id: string;
  project_id: string;
  kind: string;
  actor: string;
  resource_type: string;
  resource_id: string;
  trace_id: string;
  span_id: string;
  digest: string;
  /** Canonical JSON object (processors/timeline/events.ts). */
  details: string;
  source: string;
}

export interface TimelineCursor { tsUnixNano: bigint; eventId: string }

export interface TimelineFilter {
  fromUnixNano: bigint;
  toUnixNano: bigint;
  /** Exact kinds (OR). */
  kinds?: string[];
  /** Kind prefixes, e.g. "policy." (OR with kinds). */
  kindPrefixes?: string[];
  resourceType?: string;
  resourceId?: string;
  projectId?: string;
  traceId?: string;
  /** Return events strictly after this (ts, event_id). */
  after?: TimelineCursor;
  limit: number;
}

export interface TraceSpan {
  Timestamp_unix_nano: string; TraceId: string; SpanId: string; ParentSpanId: string; SpanName: string; SpanKind: string;
  ServiceName: string; Duration: string; StatusCode: string; StatusMessage: string; SpanAttributes: Record<string, string>;
}

export interface EvidenceSegment {
  tenant_id: string; from_size: string; to_size: string; root_hex: string; statement_sha256: string; sealed_at_unix_nano: string;
}

// Duplicates of a row share its partition (the partition key is a function of the sort key), so
// FINAL may merge partition by partition and skip single-part partitions.
const FINAL_SETTINGS = 'SETTINGS do_not_merge_across_partitions_select_final = 1';

const EVENT_COLUMNS = `event_id, toString(toUnixTimestamp64Nano(ts)) AS ts_unix_nano, tenant_id, project_id, kind, actor,
  resource_type, resource_id, trace_id, span_id, digest, details, source`;

export const MAX_LIMIT = 1000;

export class TenantStore {
  readonly tenant: string;

  constructor(private readonly store: Store, tenant: string) {
    const bad = validateTenantId(tenant);
    if (bad) throw new Error(`invalid tenant id: ${bad}`);
    this.tenant = tenant;
  }

  /** Every statement must carry the tenant predicate; checked here so a new query cannot forget it. */
  protected rows<T>(sql: string, params: QueryParams): Promise<T[]> {
    if (!/\b(tenant_id|TenantId) = \{tenant:String\}/.test(sql)) throw new Error('tenant-scoped statement without tenant predicate');
    return this.store.selectRows<T>(sql, { ...params, tenant: this.tenant });
  }

  /**
   * A tenant-scoped SELECT for the query modules of tables owned elsewhere (processors/intake/lookup.ts):
   * the same tenant-predicate check and parameter binding as every statement here.
   */
  scopedRows<T>(sql: string, params: QueryParams = {}): Promise<T[]> {
    return this.rows<T>(sql, params);
  }

  /** Events in [from, to) matching the filter, ordered by (ts, event_id). */
  listEvents(f: TimelineFilter): Promise<TimelineEvent[]> {
    const where = ['tenant_id = {tenant:String}', 'ts >= fromUnixTimestamp64Nano({from:Int64})', 'ts < fromUnixTimestamp64Nano({to:Int64})'];
    const params: QueryParams = { from: f.fromUnixNano.toString(), to: f.toUnixNano.toString(), limit: Math.min(Math.max(1, f.limit), MAX_LIMIT + 1) };
    const kindTerms: string[] = [];
    if (f.kinds?.length) { kindTerms.push('kind IN {kinds:Array(String)}'); params.kinds = f.kinds; }
    if (f.kindPrefixes?.length) {
      f.kindPrefixes.forEach((p, i) => { kindTerms.push(`startsWith(kind, {kp${i}:String})`); params[`kp${i}`] = p; });
    }
    if (kindTerms.length) where.push(`(${kindTerms.join(' OR ')})`);
    if (f.resourceType !== undefined) { where.push('resource_type = {rtype:String}'); params.rtype = f.resourceType; }
    if (f.resourceId !== undefined) { where.push('resource_id = {rid:String}'); params.rid = f.resourceId; }
    if (f.projectId !== undefined) { where.push('project_id = {project:String}'); params.project = f.projectId; }
    if (f.traceId !== undefined) { where.push('trace_id = {trace:String}'); params.trace = f.traceId; }
    if (f.after) {
      where.push('(ts, event_id) > (fromUnixTimestamp64Nano({after_ts:Int64}), {after_id:String})');
      params.after_ts = f.after.tsUnixNano.toString();
      params.after_id = f.after.eventId;
    }
    // FINAL: redelivered (duplicate) rows never show, even before the background merge.
    return this.rows<TimelineEvent>(`SELECT ${EVENT_COLUMNS} FROM timeline_events FINAL
      WHERE ${where.join(' AND ')} ORDER BY ts, event_id LIMIT {limit:UInt32} ${FINAL_SETTINGS}`, params);
  }

  async getEvent(eventId: string): Promise<TimelineEvent | undefined> {
    const rows = await this.rows<TimelineEvent>(`SELECT ${EVENT_COLUMNS} FROM timeline_events FINAL
      WHERE tenant_id = {tenant:String} AND event_id = {id:String} LIMIT 1 ${FINAL_SETTINGS}`, { id: eventId });
    return rows[0];
  }

  /** Timeline events correlated with one trace, in order. */
  eventsForTrace(traceId: string, limit = MAX_LIMIT): Promise<TimelineEvent[]> {
    return this.rows<TimelineEvent>(`SELECT ${EVENT_COLUMNS} FROM timeline_events FINAL
      WHERE tenant_id = {tenant:String} AND trace_id = {trace:String} ORDER BY ts, event_id LIMIT {limit:UInt32} ${FINAL_SETTINGS}`,
    { trace: traceId, limit });
  }

  /** The spans of one trace, in start order. The lookup table bounds the scan to the trace's time range. */
  async spansForTrace(traceId: string, limit = MAX_LIMIT): Promise<TraceSpan[]> {
    const range = await this.rows<{ start: string; end: string }>(`SELECT toString(toUnixTimestamp(min(Start))) AS start,
      toString(toUnixTimestamp(max(End))) AS end, count() AS n FROM otel_traces_trace_id_ts
      WHERE TenantId = {tenant:String} AND TraceId = {trace:String} HAVING n > 0`, { trace: traceId });
    if (range.length === 0) return [];
    return this.rows<TraceSpan>(`SELECT toString(toUnixTimestamp64Nano(Timestamp)) AS Timestamp_unix_nano, TraceId, SpanId,
      ParentSpanId, SpanName, SpanKind, ServiceName, toString(Duration) AS Duration, StatusCode, StatusMessage, SpanAttributes
      FROM otel_traces FINAL
      WHERE TenantId = {tenant:String} AND TraceId = {trace:String}
        AND Timestamp >= toDateTime({start:UInt32}) AND Timestamp <= toDateTime({end:UInt32}) + 1
      ORDER BY Timestamp, SpanId LIMIT {limit:UInt32} ${FINAL_SETTINGS}`, { trace: traceId, start: range[0]!.start, end: range[0]!.end, limit });
  }

  /** Sealed evidence segments, oldest first (for links from events to their segment). */
  listEvidenceSegments(limit = MAX_LIMIT): Promise<EvidenceSegment[]> {
    return this.rows<EvidenceSegment>(`SELECT tenant_id, toString(from_size) AS from_size, toString(to_size) AS to_size,
      root_hex, statement_sha256, toString(toUnixTimestamp64Nano(sealed_at)) AS sealed_at_unix_nano
      FROM evidence_segments FINAL WHERE tenant_id = {tenant:String} ORDER BY to_size LIMIT {limit:UInt32}`, { limit });
  }
}

export function forTenant(store: Store, tenant: string): TenantStore {
  return new TenantStore(store, tenant);
}
