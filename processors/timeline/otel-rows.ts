// Decoded OTLP requests -> rows of the OTel tables (clickhouse/0002..0004), value for value as the
// OpenTelemetry Collector ClickHouse exporter writes them, plus our TenantId / RecordId columns.
import { createHash } from 'node:crypto';
import { otlpRoot, toHex, type ExportLogsServiceRequest, type ExportMetricsServiceRequest,
  type ExportTraceServiceRequest, type InstrumentationScope, type KeyValue, type LogRecord, type Resource } from '../../lib/otlp/proto.ts';
import { dateTime64, TABLES, type Row } from '../../lib/store/index.ts';
import { anyValueString, attrMap } from './attributes.ts';

const SPAN_KINDS = ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'];
const STATUS_CODES = ['Unset', 'Ok', 'Error'];
const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
const ns = (v: unknown): string => (v === undefined || v === null ? '0' : String(v));
const dt = (v: unknown): string => dateTime64(ns(v));

export const LogRecordType = otlpRoot.lookupType('opentelemetry.proto.logs.v1.LogRecord');
export const SpanType = otlpRoot.lookupType('opentelemetry.proto.trace.v1.Span');
const ResourceType = otlpRoot.lookupType('opentelemetry.proto.resource.v1.Resource');

export const serviceName = (r: Resource | null | undefined): string => {
  for (const kv of r?.attributes ?? []) if (kv.key === 'service.name') return anyValueString(kv.value);
  return '';
};

/** sha256 of the canonical (protobuf re-encoded) bytes of a resource: identity of "who sent it". */
export function resourceDigest(r: Resource | null | undefined): string {
  return createHash('sha256').update(ResourceType.encode((r ?? { attributes: [] }) as never).finish()).digest('hex');
}

/** sha256 of a log record's canonical bytes (its protobuf encoding). */
// Memoised per decoded record: the OTel row (RecordId) and the timeline event (digest) both need it.
const digests = new WeakMap<LogRecord, string>();
export const logRecordDigest = (rec: LogRecord): string => {
  let d = digests.get(rec);
  if (d === undefined) digests.set(rec, (d = createHash('sha256').update(LogRecordType.encode(rec as never).finish()).digest('hex')));
  return d;
};

export function spanRows(req: ExportTraceServiceRequest, tenant: string): Row[] {
  const rows: Row[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resAttrs = attrMap(rs.resource?.attributes);
    const svc = serviceName(rs.resource);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        const start = BigInt(ns(s.startTimeUnixNano));
        const end = BigInt(ns(s.endTimeUnixNano));
        rows.push({
          Timestamp: dateTime64(start), TraceId: toHex(s.traceId), SpanId: toHex(s.spanId), ParentSpanId: toHex(s.parentSpanId),
          TraceState: s.traceState ?? '', SpanName: s.name ?? '', SpanKind: SPAN_KINDS[s.kind ?? 0] ?? 'Unspecified',
          ServiceName: svc, ResourceAttributes: resAttrs, ScopeName: ss.scope?.name ?? '', ScopeVersion: ss.scope?.version ?? '',
          SpanAttributes: attrMap(s.attributes), Duration: (end > start ? end - start : 0n).toString(),
          StatusCode: STATUS_CODES[s.status?.code ?? 0] ?? 'Unset', StatusMessage: s.status?.message ?? '',
          'Events.Timestamp': (s.events ?? []).map((e) => dt(e.timeUnixNano)),
          'Events.Name': (s.events ?? []).map((e) => e.name ?? ''),
          'Events.Attributes': (s.events ?? []).map((e) => attrMap(e.attributes)),
          'Links.TraceId': (s.links ?? []).map((l) => toHex(l.traceId)),
          'Links.SpanId': (s.links ?? []).map((l) => toHex(l.spanId)),
          'Links.TraceState': (s.links ?? []).map((l) => l.traceState ?? ''),
          'Links.Attributes': (s.links ?? []).map((l) => attrMap(l.attributes)),
          TenantId: tenant,
        });
      }
    }
  }
  return rows;
}

/** The exporter's log timestamp: time_unix_nano, or observed_time_unix_nano when unset. */
export function logTimestamp(rec: LogRecord): string {
  const t = ns(rec.timeUnixNano);
  return t !== '0' ? t : ns(rec.observedTimeUnixNano);
}

/** Deterministic id of a log record: tenant, sender resource and the record's bytes. */
export function logRecordId(tenant: string, resDigest: string, recDigest: string): string {
  return createHash('sha256').update(`stella-log/v1\n${tenant}\n${resDigest}\n${recDigest}`).digest('hex').slice(0, 32);
}

export function logRows(req: ExportLogsServiceRequest, tenant: string): Row[] {
  const rows: Row[] = [];
  for (const rl of req.resourceLogs ?? []) {
    const resAttrs = attrMap(rl.resource?.attributes);
    const svc = serviceName(rl.resource);
    const resDigest = resourceDigest(rl.resource);
    for (const sl of rl.scopeLogs ?? []) {
      const scopeAttrs = attrMap(sl.scope?.attributes);
      for (const rec of sl.logRecords ?? []) {
        rows.push({
          Timestamp: dateTime64(logTimestamp(rec)), TraceId: toHex(rec.traceId), SpanId: toHex(rec.spanId), TraceFlags: (rec.flags ?? 0) & 0xff,
          SeverityText: rec.severityText ?? '', SeverityNumber: rec.severityNumber ?? 0, ServiceName: svc,
          Body: anyValueString(rec.body), ResourceSchemaUrl: rl.schemaUrl ?? '', ResourceAttributes: resAttrs,
          ScopeSchemaUrl: sl.schemaUrl ?? '', ScopeName: sl.scope?.name ?? '', ScopeVersion: sl.scope?.version ?? '',
          ScopeAttributes: scopeAttrs, LogAttributes: attrMap(rec.attributes), EventName: rec.eventName ?? '',
          TenantId: tenant, RecordId: logRecordId(tenant, resDigest, logRecordDigest(rec)),
        });
      }
    }
  }
  return rows;
}

// ---- metrics: the decoded Metric objects are protobufjs messages; typed loosely here.
interface Exemplar { filteredAttributes?: KeyValue[]; timeUnixNano?: unknown; asDouble?: number; asInt?: unknown; spanId?: Uint8Array; traceId?: Uint8Array }
interface DataPoint {
  attributes?: KeyValue[]; startTimeUnixNano?: unknown; timeUnixNano?: unknown; flags?: number; exemplars?: Exemplar[];
  asDouble?: number; asInt?: unknown; count?: unknown; sum?: number; min?: number; max?: number;
  bucketCounts?: unknown[]; explicitBounds?: number[]; scale?: number; zeroCount?: unknown;
  positive?: { offset?: number; bucketCounts?: unknown[] }; negative?: { offset?: number; bucketCounts?: unknown[] };
  quantileValues?: { quantile?: number; value?: number }[];
}
interface MetricMsg {
  name?: string; description?: string; unit?: string;
  gauge?: { dataPoints?: DataPoint[] }; sum?: { dataPoints?: DataPoint[]; aggregationTemporality?: number; isMonotonic?: boolean };
  histogram?: { dataPoints?: DataPoint[]; aggregationTemporality?: number };
  exponentialHistogram?: { dataPoints?: DataPoint[]; aggregationTemporality?: number };
  summary?: { dataPoints?: DataPoint[] };
}

const numberValue = (p: { asDouble?: number; asInt?: unknown }): number => (has(p, 'asInt') ? Number(p.asInt) : p.asDouble ?? 0);
const exemplarColumns = (ex: Exemplar[] | undefined): Row => ({
  'Exemplars.FilteredAttributes': (ex ?? []).map((e) => attrMap(e.filteredAttributes)),
  'Exemplars.TimeUnix': (ex ?? []).map((e) => dt(e.timeUnixNano)),
  'Exemplars.Value': (ex ?? []).map(numberValue),
  'Exemplars.SpanId': (ex ?? []).map((e) => toHex(e.spanId)),
  'Exemplars.TraceId': (ex ?? []).map((e) => toHex(e.traceId)),
});

export type MetricTable = typeof TABLES.metricsGauge | typeof TABLES.metricsSum | typeof TABLES.metricsHistogram
  | typeof TABLES.metricsExponentialHistogram | typeof TABLES.metricsSummary;

export function metricRows(req: ExportMetricsServiceRequest, tenant: string): Map<MetricTable, Row[]> {
  const out = new Map<MetricTable, Row[]>();
  const push = (t: MetricTable, r: Row) => { let l = out.get(t); if (!l) out.set(t, (l = [])); l.push(r); };
  for (const rm of req.resourceMetrics ?? []) {
    const resAttrs = attrMap(rm.resource?.attributes);
    const svc = serviceName(rm.resource);
    for (const sm of rm.scopeMetrics ?? []) {
      const scope = (sm.scope ?? {}) as Partial<InstrumentationScope> & { droppedAttributesCount?: number };
      for (const raw of sm.metrics ?? []) {
        const m = raw as MetricMsg;
        const base = (p: DataPoint): Row => ({
          ResourceAttributes: resAttrs, ResourceSchemaUrl: rm.schemaUrl ?? '', ScopeName: scope.name ?? '', ScopeVersion: scope.version ?? '',
          ScopeAttributes: attrMap(scope.attributes), ScopeDroppedAttrCount: scope.droppedAttributesCount ?? 0, ScopeSchemaUrl: sm.schemaUrl ?? '',
          ServiceName: svc, MetricName: m.name ?? '', MetricDescription: m.description ?? '', MetricUnit: m.unit ?? '',
          Attributes: attrMap(p.attributes), StartTimeUnix: dt(p.startTimeUnixNano), TimeUnix: dt(p.timeUnixNano),
          Flags: p.flags ?? 0, TenantId: tenant,
        });
        // Every point table but summary carries exemplars.
        const withEx = (p: DataPoint): Row => ({ ...base(p), ...exemplarColumns(p.exemplars) });
        if (m.gauge) for (const p of m.gauge.dataPoints ?? []) push(TABLES.metricsGauge, { ...withEx(p), Value: numberValue(p) });
        if (m.sum) {
          for (const p of m.sum.dataPoints ?? []) {
            push(TABLES.metricsSum, { ...withEx(p), Value: numberValue(p), AggregationTemporality: m.sum.aggregationTemporality ?? 0, IsMonotonic: Boolean(m.sum.isMonotonic) });
          }
        }
        if (m.histogram) {
          for (const p of m.histogram.dataPoints ?? []) {
            push(TABLES.metricsHistogram, { ...withEx(p), Count: ns(p.count), Sum: p.sum ?? 0, BucketCounts: (p.bucketCounts ?? []).map(ns),
              ExplicitBounds: p.explicitBounds ?? [], Min: p.min ?? 0, Max: p.max ?? 0, AggregationTemporality: m.histogram.aggregationTemporality ?? 0 });
          }
        }
        if (m.exponentialHistogram) {
          for (const p of m.exponentialHistogram.dataPoints ?? []) {
            push(TABLES.metricsExponentialHistogram, { ...withEx(p), Count: ns(p.count), Sum: p.sum ?? 0, Scale: p.scale ?? 0, ZeroCount: ns(p.zeroCount),
              PositiveOffset: p.positive?.offset ?? 0, PositiveBucketCounts: (p.positive?.bucketCounts ?? []).map(ns),
              NegativeOffset: p.negative?.offset ?? 0, NegativeBucketCounts: (p.negative?.bucketCounts ?? []).map(ns),
              Min: p.min ?? 0, Max: p.max ?? 0, AggregationTemporality: m.exponentialHistogram.aggregationTemporality ?? 0 });
          }
        }
        if (m.summary) {
          for (const p of m.summary.dataPoints ?? []) {
            push(TABLES.metricsSummary, { ...base(p), Count: ns(p.count), Sum: p.sum ?? 0,
              'ValueAtQuantiles.Quantile': (p.quantileValues ?? []).map((q) => q.quantile ?? 0),
              'ValueAtQuantiles.Value': (p.quantileValues ?? []).map((q) => q.value ?? 0) });
          }
        }
      }
    }
  }
  return out;
}
