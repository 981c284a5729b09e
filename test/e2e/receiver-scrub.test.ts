// End to end on real Kafka: the official OTel exporter -> receiver -> raw topic -> scrub -> clean
// topic. The clean record equals the raw one except for the redactions (and the redaction.*
// summary attributes), with the same key and partition; no PII reaches the clean topic.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import type { StellaConfig } from '../../lib/config.ts';
import { createKafka } from '../../lib/kafka/client.ts';
import { ensurePipelineTopics } from '../../lib/kafka/setup.ts';
import { types } from '../../lib/otlp/proto.ts';
import { parseScrubConfig } from '../../processors/scrub/config.ts';
import { startScrub, type RunningScrub } from '../../processors/scrub/runner.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { brokers, kafkaEnv, testAccess, readRecords, uniq } from '../support/kafka.ts';
import { startTestReceiver, TOKENS } from '../support/receiver.ts';

let cfg: StellaConfig;
let receiver: RunningReceiver;
let scrub: RunningScrub;

beforeAll(async () => {
  ({ cfg, receiver } = await startTestReceiver());
  await ensurePipelineTopics(testAccess(), cfg.kafka);
  scrub = await startScrub({ kafka: createKafka({ ...testAccess(), clientId: 'e2e-scrub' }), config: parseScrubConfig({}),
    topics: cfg.kafka.topics, groupId: uniq('scrub') });
});
afterAll(async () => { await scrub?.stop(); await receiver?.close(); });

const PII = ['alice@example.com', 'AKIAIOSFODNN7EXAMPLE', 'hunter2-secret', '4111111111111111'];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const asPlain = (b: Buffer): Json => types.ExportTraceServiceRequest.toObject(types.ExportTraceServiceRequest.decode(b), { longs: String, bytes: String, defaults: true }) as Json;

/** Paths where two decoded requests differ, after dropping redaction.* summary attributes from the clean one. */
function diff(a: Json, b: Json, at = '', out: { path: string; raw: Json; clean: Json }[] = []) {
  if (Array.isArray(a) && Array.isArray(b)) {
    const bb = b.filter((x) => !(x && typeof x === 'object' && !Array.isArray(x) && typeof x.key === 'string' && x.key.startsWith('redaction.')));
    if (a.length !== bb.length) out.push({ path: at, raw: a, clean: bb });
    else a.forEach((x, i) => diff(x, bb[i]!, `${at}[${i}]`, out));
  } else if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) diff(a[k] ?? null, b[k] ?? null, `${at}.${k}`, out);
  } else if (a !== b) out.push({ path: at, raw: a, clean: b });
  return out;
}

it('OTel exporter -> receiver -> raw -> scrub -> clean: equal except the redactions', async () => {
  const exporter = new OTLPTraceExporter({ url: `http://127.0.0.1:${receiver.httpPort}/v1/traces`, headers: { Authorization: `Bearer ${TOKENS.acme}` } });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'checkout', 'host.name': 'ip-10-1-2-3' }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  const span = provider.getTracer('e2e').startSpan('login alice@example.com', {
    kind: SpanKind.SERVER,
    attributes: {
      'http.route': '/api/v1/login', 'user.email': 'alice@example.com', 'aws.key': 'AKIAIOSFODNN7EXAMPLE',
      'url.full': 'https://shop.example/cb?password=hunter2-secret&x=1', 'payment.card': '4111111111111111',
      'trace.note': 'span 5b8aa5a2d2c872e8321cf37308d69df2 ok',
    },
  });
  span.addEvent('auth.failed', { 'enduser.id': 'alice@example.com' });
  span.setStatus({ code: SpanStatusCode.ERROR, message: 'bad password for alice@example.com' });
  span.end();
  await provider.forceFlush();
  await provider.shutdown();

  const [raw] = await readRecords([cfg.kafka.topics.spans], 1);
  const [clean] = await readRecords([cfg.kafka.topics.spansClean], 1);
  expect(raw).toBeDefined();
  expect(clean).toBeDefined();
  expect(clean!.key).toBe(raw!.key);
  expect(clean!.partition).toBe(raw!.partition);
  expect(clean!.headers.tenant).toBe('acme');
  expect(clean!.headers.traceparent).toBe(raw!.headers.traceparent);
  const cleanText = JSON.stringify(asPlain(clean!.value));
  for (const secret of PII) {
    expect(raw!.value.includes(Buffer.from(secret))).toBe(true);
    expect(cleanText).not.toContain(secret);
  }
  const differences = diff(asPlain(raw!.value), asPlain(clean!.value));
  expect(differences.length).toBeGreaterThanOrEqual(PII.length);
  for (const d of differences) {
    // Every difference is a string that held PII and now holds a redaction in its place.
    expect(typeof d.raw, d.path).toBe('string');
    expect(PII.some((p) => (d.raw as string).includes(p)), d.path).toBe(true);
    expect(d.clean as string, d.path).toMatch(/\[REDACTED:|\[[a-z_-]+:[0-9a-f]+\]/);
  }
  // Values without PII are untouched: trace ids in free text, routes, the service name.
  expect(cleanText).toContain('5b8aa5a2d2c872e8321cf37308d69df2');
  expect(cleanText).toContain('/api/v1/login');
});
