// Self-tracing on real parts: receiver, scrub and timeline on the test broker with tracing
// exporting to the receiver itself under the system tenant. A client traced request sent with
// the official OTel exporter comes back as the pipeline's own spans on the raw spans topic (key =
// system tenant): receive -> send -> process (scrub) -> scrub -> process (timeline) -> timeline
// write, all in the client's trace; and exporting those spans causes no further spans.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SpanKind } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import type { StellaConfig } from '../../lib/config.ts';
import { createKafka } from '../../lib/kafka/client.ts';
import { ensurePipelineTopics } from '../../lib/kafka/setup.ts';
import { decodeTraces, type KeyValue } from '../../lib/otlp/proto.ts';
import { sha256Hex } from '../../lib/tenancy.ts';
import { flushTracing, startTracing, stopTracing, tracingEnabled } from '../../lib/tracing.ts';
import { parseScrubConfig } from '../../processors/scrub/config.ts';
import { startScrub, type RunningScrub } from '../../processors/scrub/runner.ts';
import { startTimelineRunner, type RunningTimeline } from '../../processors/timeline/runner.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { brokers, kafkaEnv, testAccess, readAllRecordsAt, uniq } from '../support/kafka.ts';
import { startTestReceiver, testTenants, TOKENS } from '../support/receiver.ts';
import { testStore } from '../timeline/support.ts';

const SYSTEM = 'stella-system';
const SYSTEM_TOKEN = 'self-tracing-system-token-0123456789';
const scrubGroup = uniq('scrub');
let cfg: StellaConfig;
let receiver: RunningReceiver;
let scrub: RunningScrub;
let timeline: RunningTimeline;

// Wired as `stella run` wires it (cli/run.ts; that wiring is tested in run-wiring.test.ts), with
// consumer groups of this test's own so that no other test's processors share them.
beforeAll(async () => {
  ({ cfg, receiver } = await startTestReceiver({
    tenants: [...testTenants, { id: SYSTEM, tokens: [{ sha256: sha256Hex(SYSTEM_TOKEN), scopes: ['otlp:write'] }] }],
    tracing: { enabled: true, scheduledDelayMs: 100 },
  }));
  await ensurePipelineTopics(testAccess(), cfg.kafka);
  await startTracing(cfg.tracing, { url: `http://127.0.0.1:${receiver.httpPort}/v1/traces`, headers: { Authorization: `Bearer ${SYSTEM_TOKEN}` } });
  const t = cfg.kafka.topics;
  scrub = await startScrub({ kafka: createKafka({ ...testAccess(), clientId: 'selftrace-scrub' }), config: parseScrubConfig({}), topics: t, groupId: scrubGroup });
  timeline = await startTimelineRunner({ kafka: createKafka({ ...testAccess(), clientId: 'selftrace-timeline' }), store: await testStore(),
    topics: { spans: t.spansClean, logs: t.logsClean, metrics: t.metricsClean, timelineEvents: t.timelineEvents, dlq: t.dlq }, groupId: uniq('timeline') });
}, 180_000);

afterAll(async () => {
  await timeline?.stop();
  await scrub?.stop();
  await stopTracing();
  await receiver?.close();
});

interface SelfSpan {
  traceId: string; spanId: string; parentSpanId: string; name: string; kind: number;
  attrs: Record<string, string | number | boolean>; links: { traceId: string; spanId: string }[]; tenant: string | undefined;
}
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const attrs = (kvs: KeyValue[]): Record<string, string | number | boolean> =>
  Object.fromEntries(kvs.map((kv) => [kv.key, kv.value?.stringValue ?? (kv.value?.intValue !== undefined && kv.value?.intValue !== null ? Number(kv.value.intValue) : kv.value?.boolValue ?? '')]));

/** The spans in every raw-topic record keyed by the system tenant, and how many such records there are. */
async function selfSpans(): Promise<{ records: number; spans: SelfSpan[] }> {
  const recs = (await readAllRecordsAt(brokers(), cfg.kafka.topics.spans)).filter((r) => r.key === SYSTEM);
  const spans: SelfSpan[] = [];
  for (const r of recs) {
    expect(r.headers.tenant).toBe(SYSTEM);
    for (const rs of decodeTraces(r.value).resourceSpans) {
      const tenant = rs.resource?.attributes.find((a) => a.key === 'tenant.id')?.value?.stringValue ?? undefined;
      for (const ss of rs.scopeSpans) for (const s of ss.spans) {
        spans.push({ traceId: hex(s.traceId), spanId: hex(s.spanId), parentSpanId: hex(s.parentSpanId), name: s.name, kind: s.kind,
          attrs: attrs(s.attributes), links: s.links.map((l) => ({ traceId: hex(l.traceId), spanId: hex(l.spanId) })), tenant });
      }
    }
  }
  return { records: recs.length, spans };
}

async function poll<T>(fn: () => Promise<T | undefined>, ms = 60_000, seen: () => string = () => ''): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out; last seen: ${seen()}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

it('a traced client request becomes one trace: receive -> send -> process/scrub -> process/timeline write, under the system tenant', async () => {
  expect(tracingEnabled()).toBe(true);

  // The client: an application span, and its export request carrying that span's traceparent.
  const app = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'checkout' }) });
  const clientSpan = app.getTracer('client').startSpan('POST /checkout', { kind: SpanKind.CLIENT });
  const { traceId, spanId } = clientSpan.spanContext();
  const exporter = new OTLPTraceExporter({ url: `http://127.0.0.1:${receiver.httpPort}/v1/traces`,
    headers: { Authorization: `Bearer ${TOKENS.acme}`, traceparent: `00-${traceId}-${spanId}-01` } });
  const sender = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'checkout' }), spanProcessors: [new SimpleSpanProcessor(exporter)] });
  sender.getTracer('client').startSpan('charge card', {}).end();
  clientSpan.end();
  await sender.forceFlush();
  await sender.shutdown();

  const t = cfg.kafka.topics;
  let inTrace: SelfSpan[] = [];
  const chain = await poll(async () => {
    await flushTracing();
    const { spans } = await selfSpans();
    inTrace = spans.filter((s) => s.traceId === traceId);
    const receive = inTrace.find((s) => s.name === 'receive' && s.parentSpanId === spanId);
    const send = receive && inTrace.find((s) => s.name === `send ${t.spans}` && s.parentSpanId === receive.spanId);
    const scrubProcess = send && inTrace.find((s) => s.name === `process ${t.spans}` && s.parentSpanId === send.spanId);
    const scrub = scrubProcess && inTrace.find((s) => s.name === 'scrub' && s.parentSpanId === scrubProcess.spanId);
    const tlProcess = scrub && inTrace.find((s) => s.name === `process ${t.spansClean}` && s.parentSpanId === scrub.spanId);
    const write = tlProcess && inTrace.find((s) => s.name === 'timeline write' && s.parentSpanId === tlProcess.spanId);
    return write ? { receive: receive!, send: send!, scrubProcess: scrubProcess!, scrub: scrub!, tlProcess: tlProcess!, write } : undefined;
  }, 60_000, () => JSON.stringify(inTrace.map((s) => [s.name, s.spanId, s.parentSpanId])));
  // The client's trace id is the pipeline's; the Kafka hop is parent/child (one record per batch) and a link.
  expect(chain.receive.kind).toBe(2); // SERVER
  expect(chain.receive.attrs['stella.tenant.id']).toBe('acme');
  expect(chain.send.kind).toBe(4); // PRODUCER
  expect(chain.send.attrs).toMatchObject({ 'messaging.system': 'kafka', 'messaging.operation.type': 'send', 'messaging.destination.name': t.spans, 'messaging.kafka.message.key': 'acme' });
  expect(chain.scrubProcess.kind).toBe(5); // CONSUMER
  expect(chain.scrubProcess.attrs).toMatchObject({ 'messaging.system': 'kafka', 'messaging.operation.type': 'process', 'messaging.destination.name': t.spans });
  expect(chain.scrubProcess.attrs['messaging.consumer.group.name']).toBe(scrubGroup);
  expect(chain.scrubProcess.links).toContainEqual({ traceId, spanId: chain.send.spanId });
  expect(chain.tlProcess.links).toContainEqual({ traceId, spanId: chain.scrub.spanId });
  // The raw record carried the send span's context; the clean record the scrub span's.
  const raw = (await readAllRecordsAt(brokers(), t.spans)).find((r) => r.key === 'acme')!;
  expect(raw.headers.traceparent).toBe(`00-${traceId}-${chain.send.spanId}-01`);
  const clean = (await readAllRecordsAt(brokers(), t.spansClean)).find((r) => r.key === 'acme')!;
  expect(clean.headers.traceparent).toBe(`00-${traceId}-${chain.scrub.spanId}-01`);
  // Every self-span is stamped with the system tenant, and none traces a system-tenant request or batch.
  const { spans } = await selfSpans();
  expect(new Set(spans.map((s) => s.tenant))).toEqual(new Set([SYSTEM]));
  expect(spans.filter((s) => s.attrs['stella.tenant.id'] === SYSTEM)).toEqual([]);
  expect(spans.filter((s) => s.name === 'receive').map((s) => s.attrs['stella.tenant.id'])).toEqual(['acme']);
}, 120_000);

it('exporting the self-traces does not trace itself: the count of self-trace records settles and stays', async () => {
  // Each export of self-spans is a system-tenant request and batch: no span. With a loop, every
  // export would cause another one and the count would never settle.
  let last = -1;
  const settled = await poll(async () => {
    await flushTracing();
    const { records } = await selfSpans();
    if (records === last) return records;
    last = records;
    await new Promise((r) => setTimeout(r, 1500));
    return undefined;
  });
  await new Promise((r) => setTimeout(r, 3000)); // 30 export intervals of idle
  await flushTracing();
  const after = await selfSpans();
  expect(after.records).toBe(settled);
  expect(settled).toBeGreaterThan(0);
}, 120_000);
