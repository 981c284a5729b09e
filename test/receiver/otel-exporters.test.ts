// The official OpenTelemetry JS exporters (gRPC, HTTP/protobuf, HTTP/JSON) send all three signals to
// the receiver; a kafkajs consumer proves that what arrived equals what was sent, field for field
// (plus the stamped tenant.id), with the right key and headers.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metadata } from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, trace, type Link } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { MeterProvider, PeriodicExportingMetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { LoggerProvider, BatchLogRecordProcessor, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { OTLPTraceExporter as TraceGrpc } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as TraceProto } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as TraceJson } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPMetricExporter as MetricGrpc } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as MetricProto } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPMetricExporter as MetricJson } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPLogExporter as LogGrpc } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPLogExporter as LogProto } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPLogExporter as LogJson } from '@opentelemetry/exporter-logs-otlp-http';
import { ProtobufLogsSerializer, ProtobufMetricsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { signals, type SignalName } from '../../lib/otlp/proto.ts';
import type { StellaConfig } from '../../lib/config.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { readRecords, type ReadRecord } from '../support/kafka.ts';
import { startTestReceiver, TOKENS } from '../support/receiver.ts';

type Protocol = 'grpc' | 'http/protobuf' | 'http/json';
const protocols: Protocol[] = ['grpc', 'http/protobuf', 'http/json'];

let cfg: StellaConfig;
let receiver: RunningReceiver;
const seen = new Map<string, number>(); // topic -> records already consumed by earlier tests

beforeAll(async () => {
  ({ cfg, receiver } = await startTestReceiver());
});
afterAll(async () => { await receiver?.close(); });

function exporterConfig(protocol: Protocol, path: string) {
  if (protocol === 'grpc') {
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${TOKENS.acme}`);
    return { url: `http://127.0.0.1:${receiver.grpcPort}`, metadata };
  }
  return { url: `http://127.0.0.1:${receiver.httpPort}${path}`, headers: { Authorization: `Bearer ${TOKENS.acme}` } };
}

/** Capture what the SDK hands the exporter, and the exporter's result codes. */
function capture<T>(exporter: { export(items: T, cb: (r: { code: number; error?: Error }) => void): void }) {
  const sent: T[] = [];
  const results: { code: number; error?: Error }[] = [];
  const orig = exporter.export.bind(exporter);
  exporter.export = (items: T, cb) => { sent.push(items); orig(items, (r) => { results.push(r); cb(r); }); };
  return { sent, results };
}

const resource = resourceFromAttributes({ 'service.name': 'policy-engine', 'service.version': '1.4.2', 'deployment.environment.name': 'test' });

/** Read the topic's new records (those after earlier tests'). */
async function newRecords(topic: string, n: number): Promise<ReadRecord[]> {
  const before = seen.get(topic) ?? 0;
  const all = await readRecords([topic], before + n);
  seen.set(topic, all.length);
  return all.slice(before);
}

/** Decode to plain objects with every 64-bit value as a string; strip the stamped tenant.id (checked separately). */
function normalized(signal: SignalName, bytes: Uint8Array, stripTenant: boolean): Record<string, unknown> {
  const type = signals[signal].request;
  const obj = type.toObject(type.decode(bytes), { longs: String, enums: Number, bytes: String, defaults: true }) as Record<string, unknown>;
  const rs = obj[signals[signal].resourceField] as { resource: { attributes: { key: string; value: unknown }[] } }[];
  if (stripTenant) {
    for (const r of rs) {
      const tenantAttrs = r.resource.attributes.filter((a) => a.key === 'tenant.id');
      expect(tenantAttrs).toEqual([{ key: 'tenant.id', value: { stringValue: 'acme' } }]);
      r.resource.attributes = r.resource.attributes.filter((a) => a.key !== 'tenant.id');
    }
  }
  return obj;
}

function checkEnvelope(rec: ReadRecord): void {
  expect(rec.key).toBe('acme');
  expect(rec.headers.tenant).toBe('acme');
  expect(rec.headers['content-sha256']).toBe(createHash('sha256').update(rec.value).digest('hex'));
  expect(rec.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/);
}

describe.each(protocols)('official OTel exporter over %s', (protocol) => {
  it('delivers spans to otlp_spans field for field', async () => {
    const exporter = protocol === 'grpc' ? new TraceGrpc(exporterConfig(protocol, '/v1/traces'))
      : protocol === 'http/protobuf' ? new TraceProto(exporterConfig(protocol, '/v1/traces')) : new TraceJson(exporterConfig(protocol, '/v1/traces'));
    const cap = capture<ReadableSpan[]>(exporter);
    const provider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: 512 })] });
    const tracer = provider.getTracer('stella-test', '2.0.0');
    const parent = tracer.startSpan('policy.evaluate', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'POST', 'http.response.status_code': 200, 'policy.id': 'p-17', 'risk.score': 0.73, 'flags': ['a', 'b'], 'retry': false } });
    parent.addEvent('rule.matched', { 'rule.id': 'r-9', 'weight': 3 });
    const ctx = trace.setSpan((await import('@opentelemetry/api')).context.active(), parent);
    const link: Link = { context: parent.spanContext(), attributes: { 'link.kind': 'follows' } };
    const child = tracer.startSpan('advisory.lookup', { kind: SpanKind.CLIENT, links: [link], attributes: { 'db.system.name': 'postgresql' } }, ctx);
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'advisory feed timed out' });
    child.end();
    parent.end();
    await provider.forceFlush();
    await provider.shutdown();
    expect(cap.results.map((r) => r.code)).toEqual([0]);
    const [rec] = await newRecords(cfg.kafka.topics.spans, 1);
    checkEnvelope(rec!);
    const expected = normalized('traces', ProtobufTraceSerializer.serializeRequest(cap.sent[0]!)!, false);
    expect(normalized('traces', rec!.value, true)).toEqual(expected);
    const spans = (expected.resourceSpans as { scopeSpans: { spans: unknown[] }[] }[])[0]!.scopeSpans[0]!.spans;
    expect(spans).toHaveLength(2);
  });

  it('delivers metrics to otlp_metrics field for field', async () => {
    const exporter = protocol === 'grpc' ? new MetricGrpc(exporterConfig(protocol, '/v1/metrics'))
      : protocol === 'http/protobuf' ? new MetricProto(exporterConfig(protocol, '/v1/metrics')) : new MetricJson(exporterConfig(protocol, '/v1/metrics'));
    const cap = capture<ResourceMetrics>(exporter);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ resource, readers: [reader] });
    const meter = provider.getMeter('stella-test', '2.0.0');
    meter.createCounter('decisions', { description: 'policy decisions', unit: '1' }).add(5, { outcome: 'allow' });
    meter.createHistogram('evaluate.duration', { unit: 's' }).record(0.42, { route: '/evaluate' });
    meter.createUpDownCounter('queue.depth').add(-3);
    meter.createGauge('risk.level').record(7, { region: 'eu' });
    await reader.forceFlush();
    await provider.shutdown();
    const ok = cap.results.filter((r) => r.code === 0);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    const recs = await newRecords(cfg.kafka.topics.metrics, cap.sent.length);
    expect(recs).toHaveLength(cap.sent.length);
    recs.forEach(checkEnvelope);
    expect(normalized('metrics', recs[0]!.value, true)).toEqual(normalized('metrics', ProtobufMetricsSerializer.serializeRequest(cap.sent[0]!)!, false));
  });

  it('delivers log records (with event_name) to otlp_logs field for field', async () => {
    const exporter = protocol === 'grpc' ? new LogGrpc(exporterConfig(protocol, '/v1/logs'))
      : protocol === 'http/protobuf' ? new LogProto(exporterConfig(protocol, '/v1/logs')) : new LogJson(exporterConfig(protocol, '/v1/logs'));
    const cap = capture<ReadableLogRecord[]>(exporter);
    const provider = new LoggerProvider({ resource, processors: [new BatchLogRecordProcessor({ exporter })] });
    const logger = provider.getLogger('stella-test', '2.0.0');
    logger.emit({ severityNumber: SeverityNumber.INFO, severityText: 'INFO', body: 'policy p-17 evaluated', attributes: { 'policy.id': 'p-17' } });
    logger.emit({ severityNumber: SeverityNumber.WARN, eventName: 'policy.changed', body: { before: 'v1', after: 'v2', rules: [1, 2, 3] }, attributes: { 'stella.actor': 'svc-deployer' } });
    await provider.forceFlush();
    await provider.shutdown();
    expect(cap.results.map((r) => r.code)).toEqual([0]);
    const [rec] = await newRecords(cfg.kafka.topics.logs, 1);
    checkEnvelope(rec!);
    const got = normalized('logs', rec!.value, true);
    expect(got).toEqual(normalized('logs', ProtobufLogsSerializer.serializeRequest(cap.sent[0]!)!, false));
    const records = (got.resourceLogs as { scopeLogs: { logRecords: { eventName: string }[] }[] }[])[0]!.scopeLogs[0]!.logRecords;
    expect(records.map((r) => r.eventName)).toEqual(['', 'policy.changed']);
  });
});
