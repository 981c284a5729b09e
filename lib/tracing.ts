// Self-tracing: the pipeline's own spans (receive -> send -> process -> scrub -> write / append /
// seal / evaluate) with the OpenTelemetry SDK, exported over OTLP/HTTP protobuf by a
// BatchSpanProcessor with a bounded queue. Off by default; while off every helper here returns
// undefined after one check and nothing of the SDK is loaded.
//
// Context travels in the Kafka `traceparent` header (W3C Trace Context). Consumers handle records
// in batches, so a stage's `process <topic>` span links to every record's context (the OTel
// messaging convention for batches) and is additionally the child of that context when the batch
// holds records of one context only. Explicit contexts are passed around (no async-hooks context
// manager: it would tax every promise in the process).
//
// Feedback loop: the spans are telemetry of the system tenant. Requests and records of that
// tenant are never traced, and a batch holding nothing else starts no span, so exporting spans
// never causes more spans.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Link, type Span, type SpanContext, type Tracer } from '@opentelemetry/api';
import type { TracingConfig } from './config.ts';
import { H } from './kafka/topics.ts';
import { INSTANCE_ID, logger, VERSION } from './log.ts';

export type { Context, Span };

interface State { tracer: Tracer; systemTenant: string; shutdown(): Promise<void>; flush(): Promise<void> }
let state: State | undefined;

/** Messaging attribute names of the OTel semantic conventions (messaging spans, Kafka). */
export const MSG = {
  system: 'messaging.system',
  operationName: 'messaging.operation.name',
  operationType: 'messaging.operation.type',
  destination: 'messaging.destination.name',
  partition: 'messaging.destination.partition.id',
  consumerGroup: 'messaging.consumer.group.name',
  batchCount: 'messaging.batch.message_count',
  key: 'messaging.kafka.message.key',
  offset: 'messaging.kafka.offset',
} as const;
/** Our own attributes: the tenant (an id, never a secret) and the OTLP signal. */
export const ATTR = { tenant: 'stella.tenant.id', signal: 'stella.signal', accepted: 'stella.items.accepted', rejected: 'stella.items.rejected' } as const;

export interface ExportTarget { url: string; headers: Record<string, string> }

/** Start the process-wide tracer provider (replacing a running one). */
export async function startTracing(cfg: TracingConfig, target: ExportTarget): Promise<void> {
  await stopTracing();
  const [{ BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler }, { OTLPTraceExporter }, { resourceFromAttributes }] =
    await Promise.all([import('@opentelemetry/sdk-trace-base'), import('@opentelemetry/exporter-trace-otlp-proto'), import('@opentelemetry/resources')]);
  const exporter = new OTLPTraceExporter({ url: target.url, headers: target.headers, timeoutMillis: 10_000 });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': cfg.serviceName, 'service.version': VERSION, 'service.instance.id': INSTANCE_ID }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(cfg.sampleRatio) }),
    spanProcessors: [new BatchSpanProcessor(exporter, {
      maxQueueSize: cfg.maxQueueSize, maxExportBatchSize: cfg.maxExportBatchSize, scheduledDelayMillis: cfg.scheduledDelayMs, exportTimeoutMillis: 10_000,
    })],
  });
  state = {
    tracer: provider.getTracer('stella-telemetry', VERSION),
    systemTenant: cfg.systemTenant,
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
  logger('tracing').info({ endpoint: target.url, tenant_id: cfg.systemTenant, sample_ratio: cfg.sampleRatio }, 'self-tracing on');
}

/** Export what is queued and stop; tracing is off afterwards. */
export async function stopTracing(): Promise<void> {
  const s = state;
  state = undefined;
  if (s) await s.shutdown().catch((err: unknown) => logger('tracing').warn({ error_message: String(err) }, 'self-trace export at shutdown failed'));
}

/** Export what is queued now (tests, shutdown). */
export async function flushTracing(): Promise<void> { await state?.flush(); }

export const tracingEnabled = (): boolean => state !== undefined;

/** True for the system tenant while tracing is on: its requests and records are never traced. */
export const isSystemTenant = (tenant: string | null | undefined): boolean => state !== undefined && tenant === state.systemTenant;

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** A remote span context from a W3C traceparent (version 00), or undefined when absent or invalid. */
export function parseTraceparent(tp: string | undefined): SpanContext | undefined {
  const m = tp ? TRACEPARENT.exec(tp.trim()) : null;
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return undefined;
  return { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16) & 1, isRemote: true };
}

export function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-0${sc.traceFlags & 1}`;
}

export const traceparentOf = (span: Span): string => formatTraceparent(span.spanContext());

function endWith(span: Span, err?: unknown): void {
  if (err !== undefined) {
    span.recordException(err instanceof Error ? err : String(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  }
  span.end();
}

/** The receiver's side of one export request: a `receive` server span and its `send <topic>` child. */
export interface RequestTrace {
  /** Start the producer span; its context is what the records' traceparent header carries. */
  startSend(topic: string, records: number): string;
  endSend(err?: unknown): void;
  end(accepted: number, rejected: number, err?: unknown): void;
}

/** undefined when tracing is off or the tenant is the system tenant. `incoming`: the client's traceparent. */
export function startRequestTrace(signal: string, tenant: string, incoming: string | undefined): RequestTrace | undefined {
  if (!state || tenant === state.systemTenant) return undefined;
  const { tracer } = state;
  const parent = parseTraceparent(incoming);
  const receive = tracer.startSpan('receive', { kind: SpanKind.SERVER, attributes: { [ATTR.signal]: signal, [ATTR.tenant]: tenant } },
    parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT);
  let send: Span | undefined;
  return {
    startSend(topic, records) {
      send = tracer.startSpan(`send ${topic}`, { kind: SpanKind.PRODUCER, attributes: {
        [MSG.system]: 'kafka', [MSG.operationName]: 'send', [MSG.operationType]: 'send', [MSG.destination]: topic,
        [MSG.key]: tenant, [MSG.batchCount]: records,
      } }, trace.setSpan(ROOT_CONTEXT, receive));
      return traceparentOf(send);
    },
    endSend(err) { if (send) endWith(send, err); send = undefined; },
    end(accepted, rejected, err) {
      receive.setAttributes({ [ATTR.accepted]: accepted, [ATTR.rejected]: rejected });
      endWith(receive, err);
    },
  };
}

/** A record as a consumer sees it: headers as kafkajs gives them or already as strings. */
export interface TracedRecord { key: string | Buffer | null; headers?: Record<string, unknown> }

const headerString = (v: unknown): string | undefined => {
  const x = Array.isArray(v) ? v[0] : v;
  return x === undefined || x === null ? undefined : String(x);
};

export interface BatchTrace { ctx: Context; span: Span; end(err?: unknown): void }

/**
 * A `process <topic>` consumer span for one batch, linked to every record's traceparent; the
 * child of that context when all records share one. undefined when tracing is off or the batch
 * holds only system-tenant records.
 */
export function startBatchTrace(stage: string, group: string, topic: string, partition: number, records: readonly TracedRecord[]): BatchTrace | undefined {
  if (!state) return undefined;
  const links: Link[] = [];
  const seen = new Set<string>();
  let traced = 0;
  for (const r of records) {
    const tenant = headerString(r.headers?.[H.tenant]) ?? (r.key === null ? undefined : String(r.key));
    if (tenant === state.systemTenant) continue;
    traced++;
    const tp = headerString(r.headers?.[H.traceparent]);
    if (!tp || seen.has(tp)) continue;
    const sc = parseTraceparent(tp);
    if (!sc) continue;
    seen.add(tp);
    links.push({ context: sc });
  }
  if (traced === 0) return undefined;
  const parent = links.length === 1 ? trace.setSpanContext(ROOT_CONTEXT, links[0]!.context) : ROOT_CONTEXT;
  const span = state.tracer.startSpan(`process ${topic}`, { kind: SpanKind.CONSUMER, links, attributes: {
    [MSG.system]: 'kafka', [MSG.operationName]: 'process', [MSG.operationType]: 'process', [MSG.destination]: topic,
    [MSG.partition]: String(partition), [MSG.consumerGroup]: group, [MSG.batchCount]: records.length, 'stella.stage': stage,
  } }, parent);
  return { ctx: trace.setSpan(ROOT_CONTEXT, span), span, end: (err) => endWith(span, err) };
}

/** A child span of a batch's context (undefined when there is none: tracing off, or a system-only batch). */
export function startChildSpan(parent: Context | undefined, name: string, attributes?: Attributes): Span | undefined {
  if (!state || !parent) return undefined;
  return state.tracer.startSpan(name, { attributes }, parent);
}

/** Run `fn` inside a child span of `parent` (or without one); the span records a thrown error. */
export async function inChildSpan<T>(parent: Context | undefined, name: string, attributes: Attributes, fn: (span: Span | undefined) => Promise<T>): Promise<T> {
  const span = startChildSpan(parent, name, attributes);
  if (!span) return fn(undefined);
  try {
    const out = await fn(span);
    span.end();
    return out;
  } catch (err) {
    endWith(span, err);
    throw err;
  }
}

/** A root span for work no record caused (e.g. a timed seal); undefined when off or for the system tenant. */
export function startRootSpan(name: string, tenant: string, attributes?: Attributes): Span | undefined {
  if (!state || tenant === state.systemTenant) return undefined;
  return state.tracer.startSpan(name, { attributes: { [ATTR.tenant]: tenant, ...attributes } }, ROOT_CONTEXT);
}

export const endSpan = (span: Span | undefined, err?: unknown): void => { if (span) endWith(span, err); };

/** Attributes of the read API's spans beyond the HTTP ones: the authN/Z outcome (lib/audit.ts). */
export const API_ATTR = { authOutcome: 'stella.auth.outcome', authScope: 'stella.auth.scope', tokenName: 'stella.auth.token_name', tokenId: 'stella.auth.token_id', requestId: 'stella.request.id' } as const;

/** The read API's side of one request: an `api.<METHOD> <route>` server span. */
export interface ApiSpan {
  /** The span's trace id: the client's (from its traceparent) or a new one; the API returns it as x-trace-id. */
  traceId: string;
  end(status: number, attributes: Attributes, err?: unknown): void;
}

/**
 * undefined when tracing is off. Unlike intake, a request of the system tenant is traced too: the
 * tenant is known only after auth, and a read causes no telemetry of its own (the exported span is
 * system-tenant intake, which is never traced), so there is no loop.
 */
export function startApiSpan(method: string, route: string, incoming: string | undefined): ApiSpan | undefined {
  if (!state) return undefined;
  const parent = parseTraceparent(incoming);
  const span = state.tracer.startSpan(`api.${method} ${route}`, { kind: SpanKind.SERVER, attributes: { 'http.request.method': method, 'http.route': route } },
    parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT);
  return {
    traceId: span.spanContext().traceId,
    end(status, attributes, err) {
      span.setAttributes({ ...attributes, 'http.response.status_code': status });
      if (err === undefined && status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      endWith(span, err);
    },
  };
}
