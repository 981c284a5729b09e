// The project's OTLP protobuf types, compiled at load time by protobufjs from `proto/`.
// 64-bit integers decode as Long (never lossy JS numbers): nanosecond timestamps exceed 2^53.
import path from 'node:path';
import Long from 'long';
import protobuf from 'protobufjs';
import { projectRoot } from '../paths.ts';

protobuf.util.Long = Long as unknown as protobuf.Long extends never ? never : typeof protobuf.util.Long;
protobuf.configure();

export const protoDir = path.join(projectRoot, 'proto');

const files = [
  'opentelemetry/proto/collector/trace/v1/trace_service.proto',
  'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
  'opentelemetry/proto/collector/logs/v1/logs_service.proto',
  'google/rpc/status.proto',
  'google/rpc/error_details.proto',
];

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(protoDir, target));
  root.loadSync(files, { keepCase: false });
  root.resolveAll();
  return root;
}

export const otlpRoot = loadRoot();
const t = (name: string) => otlpRoot.lookupType(name);

export const types = {
  ExportTraceServiceRequest: t('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest'),
  ExportTraceServiceResponse: t('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse'),
  ExportMetricsServiceRequest: t('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest'),
  ExportMetricsServiceResponse: t('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse'),
  ExportLogsServiceRequest: t('opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest'),
  ExportLogsServiceResponse: t('opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse'),
  Resource: t('opentelemetry.proto.resource.v1.Resource'),
  KeyValue: t('opentelemetry.proto.common.v1.KeyValue'),
  AnyValue: t('opentelemetry.proto.common.v1.AnyValue'),
  Status: t('google.rpc.Status'),
  RetryInfo: t('google.rpc.RetryInfo'),
};

export type SignalName = 'traces' | 'metrics' | 'logs';

/** Everything that differs between the three OTLP signals, in one place. */
export interface Signal {
  name: SignalName;
  /** gRPC method path, e.g. /opentelemetry.proto.collector.trace.v1.TraceService/Export */
  grpcPath: string;
  httpPath: string;
  request: protobuf.Type;
  response: protobuf.Type;
  /** JSON (camelCase) name of the request's top-level repeated field. */
  resourceField: 'resourceSpans' | 'resourceMetrics' | 'resourceLogs';
  scopeField: 'scopeSpans' | 'scopeMetrics' | 'scopeLogs';
  itemField: 'spans' | 'metrics' | 'logRecords';
  /** partial_success counter name (camelCase), e.g. rejectedSpans */
  rejectedField: 'rejectedSpans' | 'rejectedDataPoints' | 'rejectedLogRecords';
  /** Raw Kafka topic config key. */
  topicKey: 'spans' | 'metrics' | 'logs';
}

export const signals: Record<SignalName, Signal> = {
  traces: {
    name: 'traces', grpcPath: '/opentelemetry.proto.collector.trace.v1.TraceService/Export', httpPath: '/v1/traces',
    request: types.ExportTraceServiceRequest, response: types.ExportTraceServiceResponse,
    resourceField: 'resourceSpans', scopeField: 'scopeSpans', itemField: 'spans', rejectedField: 'rejectedSpans', topicKey: 'spans',
  },
  metrics: {
    name: 'metrics', grpcPath: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export', httpPath: '/v1/metrics',
    request: types.ExportMetricsServiceRequest, response: types.ExportMetricsServiceResponse,
    resourceField: 'resourceMetrics', scopeField: 'scopeMetrics', itemField: 'metrics', rejectedField: 'rejectedDataPoints', topicKey: 'metrics',
  },
  logs: {
    name: 'logs', grpcPath: '/opentelemetry.proto.collector.logs.v1.LogsService/Export', httpPath: '/v1/logs',
    request: types.ExportLogsServiceRequest, response: types.ExportLogsServiceResponse,
    resourceField: 'resourceLogs', scopeField: 'scopeLogs', itemField: 'logRecords', rejectedField: 'rejectedLogRecords', topicKey: 'logs',
  },
};

// ---- Decoded shapes (protobufjs objects, camelCase). Only what consumers commonly touch is typed;
// every field of the spec is present on the decoded objects.
export interface AnyValue {
  stringValue?: string; boolValue?: boolean; intValue?: Long | number; doubleValue?: number;
  arrayValue?: { values: AnyValue[] }; kvlistValue?: { values: KeyValue[] }; bytesValue?: Uint8Array;
}
export interface KeyValue { key: string; value?: AnyValue | null }
export interface Resource { attributes: KeyValue[]; droppedAttributesCount?: number }
export interface InstrumentationScope { name: string; version: string; attributes: KeyValue[] }
export interface SpanEvent { timeUnixNano: Long; name: string; attributes: KeyValue[] }
export interface SpanLink { traceId: Uint8Array; spanId: Uint8Array; traceState: string; attributes: KeyValue[]; flags: number }
export interface Span {
  traceId: Uint8Array; spanId: Uint8Array; parentSpanId: Uint8Array; traceState: string; flags: number;
  name: string; kind: number; startTimeUnixNano: Long; endTimeUnixNano: Long; attributes: KeyValue[];
  events: SpanEvent[]; links: SpanLink[]; status?: { message: string; code: number } | null;
}
export interface ScopeSpans { scope?: InstrumentationScope | null; spans: Span[]; schemaUrl: string }
export interface ResourceSpans { resource?: Resource | null; scopeSpans: ScopeSpans[]; schemaUrl: string }
export interface ExportTraceServiceRequest { resourceSpans: ResourceSpans[] }
export interface LogRecord {
  timeUnixNano: Long; observedTimeUnixNano: Long; severityNumber: number; severityText: string;
  body?: AnyValue | null; attributes: KeyValue[]; flags: number; traceId: Uint8Array; spanId: Uint8Array; eventName: string;
}
export interface ScopeLogs { scope?: InstrumentationScope | null; logRecords: LogRecord[]; schemaUrl: string }
export interface ResourceLogs { resource?: Resource | null; scopeLogs: ScopeLogs[]; schemaUrl: string }
export interface ExportLogsServiceRequest { resourceLogs: ResourceLogs[] }
export interface ScopeMetrics { scope?: InstrumentationScope | null; metrics: Record<string, unknown>[]; schemaUrl: string }
export interface ResourceMetrics { resource?: Resource | null; scopeMetrics: ScopeMetrics[]; schemaUrl: string }
export interface ExportMetricsServiceRequest { resourceMetrics: ResourceMetrics[] }

export function decodeTraces(buf: Uint8Array): ExportTraceServiceRequest {
  return types.ExportTraceServiceRequest.decode(buf) as unknown as ExportTraceServiceRequest;
}
export function decodeLogs(buf: Uint8Array): ExportLogsServiceRequest {
  return types.ExportLogsServiceRequest.decode(buf) as unknown as ExportLogsServiceRequest;
}
export function decodeMetrics(buf: Uint8Array): ExportMetricsServiceRequest {
  return types.ExportMetricsServiceRequest.decode(buf) as unknown as ExportMetricsServiceRequest;
}
export function encode(signal: SignalName, msg: unknown): Uint8Array {
  const type = signals[signal].request;
  return type.encode(msg as protobuf.Message).finish();
}

/** Read an attribute's string value by key (first match), or undefined. */
export function attrString(attrs: readonly KeyValue[] | undefined | null, key: string): string | undefined {
  if (!attrs) return undefined;
  for (const kv of attrs) if (kv.key === key) return kv.value?.stringValue ?? undefined;
  return undefined;
}

export const toHex = (b: Uint8Array | null | undefined): string => (b && b.length ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') : '');
