// `stella run`'s self-tracing wiring (receiver only, so no consumer group is shared with other
// tests): off by default — no spans, no system tenant, and the traceparent the receiver writes is
// today's (the caller's trace id, a fresh span id), passed on unchanged by scrub; on with the
// default endpoint `self` — the receiver's spans come back through the receiver itself under the
// system tenant, in the caller's trace. Plus the config section's checks.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { buildConfig, ConfigError, type StellaConfig } from '../../lib/config.ts';
import { createKafka } from '../../lib/kafka/client.ts';
import { ensurePipelineTopics } from '../../lib/kafka/setup.ts';
import { decodeTraces } from '../../lib/otlp/proto.ts';
import { sha256Hex } from '../../lib/tenancy.ts';
import { flushTracing, startBatchTrace, startRequestTrace, tracingEnabled } from '../../lib/tracing.ts';
import { parseScrubConfig } from '../../processors/scrub/config.ts';
import { startScrub } from '../../processors/scrub/runner.ts';
import { PARTS, runPipeline } from '../../cli/run.ts';
import { brokers, kafkaEnv, testAccess, readAllRecordsAt, uniq } from '../support/kafka.ts';
import { spanObject, tracesRequest } from '../support/otlp.ts';

const TOKEN = 'run-wiring-acme-token-0123456789';
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-tracewire-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(tracing: Record<string, unknown>): StellaConfig {
  const p = uniq('tw');
  return buildConfig({
    dataDir: dir, tracing,
    receiver: { grpcPort: 0, httpPort: 0 }, admin: { port: 0 }, api: { port: 0 },
    kafka: { partitions: 2, topics: Object.fromEntries(['spans', 'metrics', 'logs', 'spansClean', 'metricsClean', 'logsClean', 'dlq', 'sloEvents', 'timelineEvents'].map((k) => [k, `${p}_${k}`])) },
    tenants: [{ id: 'acme', tokens: [{ sha256: sha256Hex(TOKEN), scopes: ['otlp:write'] }] }],
  }, kafkaEnv());
}

const body = tracesRequest([{ scopes: [{ name: 'client', spans: [spanObject('GET /')] }] }]);
async function send(port: number, traceparent?: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/traces`, { method: 'POST', body,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-protobuf', ...(traceparent ? { traceparent } : {}) } });
  expect(res.status).toBe(200);
}

async function poll<T>(fn: () => Promise<T | undefined>, ms = 45_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 200));
  }
}

it('tracing off: no spans, no system-tenant records, and the traceparent keeps the caller trace with a fresh span id', async () => {
  const cfg = config({});
  expect(cfg.tracing.enabled).toBe(false);
  const pipeline = await runPipeline(cfg, new Set(['receiver'] as const), () => {});
  await ensurePipelineTopics(testAccess(), cfg.kafka);
  const scrub = await startScrub({ kafka: createKafka({ ...testAccess(), clientId: 'tw-scrub' }), config: parseScrubConfig({}), topics: cfg.kafka.topics, groupId: uniq('scrub') });
  try {
    expect(tracingEnabled()).toBe(false);
    expect(startRequestTrace('traces', 'acme', undefined)).toBeUndefined();
    expect(startBatchTrace('scrub', 'g', 't', 0, [{ key: 'acme', headers: {} }])).toBeUndefined();

    const traceId = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    await send(pipeline.ports.http!, `00-${traceId}-${callerSpan}-01`);
    await send(pipeline.ports.http!);
    const raw = await readAllRecordsAt(brokers(), cfg.kafka.topics.spans);
    expect(raw.map((r) => r.key)).toEqual(['acme', 'acme']);
    const [withCaller, without] = raw.sort((a, b) => Number(a.offset) - Number(b.offset));
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(withCaller!.headers.traceparent!);
    expect(m?.[1]).toBe(traceId);
    expect(m?.[2]).not.toBe(callerSpan);
    expect(without!.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(without!.headers.traceparent!.slice(3, 35)).not.toBe(traceId);
    // Scrub passes the header on unchanged when tracing is off.
    const clean = await poll(async () => {
      const recs = await readAllRecordsAt(brokers(), cfg.kafka.topics.spansClean);
      return recs.length === 2 ? recs : undefined;
    });
    expect(clean.map((r) => r.headers.traceparent).sort()).toEqual(raw.map((r) => r.headers.traceparent).sort());
  } finally {
    await scrub.stop();
    await pipeline.stop();
  }
});

it('tracing on, endpoint "self": the receiver\'s spans come back through it under the system tenant, in the caller\'s trace', async () => {
  const cfg = config({ enabled: true, scheduledDelayMs: 100 });
  const lines: string[] = [];
  const pipeline = await runPipeline(cfg, new Set(['receiver'] as const), (l) => lines.push(l));
  try {
    expect(tracingEnabled()).toBe(true);
    expect(lines).toContain('Self-tracing: to this receiver under tenant "stella-system" (sample ratio 0.1)');
    expect(lines.join('\n')).not.toMatch(/stella_self_/); // the per-process token is never printed
    const traceId = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    await send(pipeline.ports.http!, `00-${traceId}-${callerSpan}-01`);
    const spans = await poll(async () => {
      await flushTracing();
      const recs = (await readAllRecordsAt(brokers(), cfg.kafka.topics.spans)).filter((r) => r.key === 'stella-system');
      const all = recs.flatMap((r) => decodeTraces(r.value).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
      // Both spans, however the export was split into records (or a record read twice).
      return all.some((s) => s.name === 'receive') && all.some((s) => s.name.startsWith('send ')) ? all : undefined;
    });
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    const receive = spans.find((s) => s.name === 'receive')!;
    const sendSpan = spans.find((s) => s.name === `send ${cfg.kafka.topics.spans}`)!;
    expect(hex(receive.traceId)).toBe(traceId);
    expect(hex(receive.parentSpanId)).toBe(callerSpan);
    expect(hex(sendSpan.parentSpanId)).toBe(hex(receive.spanId));
    const acme = (await readAllRecordsAt(brokers(), cfg.kafka.topics.spans)).find((r) => r.key === 'acme')!;
    expect(acme.headers.traceparent).toBe(`00-${traceId}-${hex(sendSpan.spanId)}-01`);
  } finally {
    await pipeline.stop();
  }
  expect(tracingEnabled()).toBe(false); // stop() flushed and shut the provider down
});

it('the tracing section is validated and read from the environment', () => {
  const env = kafkaEnv();
  const d = buildConfig({}, env).tracing;
  expect(d).toMatchObject({ enabled: false, endpoint: 'self', sampleRatio: 0.1, systemTenant: 'stella-system', token: null });
  const fromEnv = buildConfig({ tracing: { endpoint: 'https://file.example/v1/traces' } }, { ...env, STELLA_TRACING_ENABLED: 'true',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/', STELLA_TRACING_SAMPLE_RATIO: '0.25', STELLA_TRACING_TOKEN: 'tok', OTEL_SERVICE_NAME: 'stella-eu1' }).tracing;
  expect(fromEnv).toMatchObject({ enabled: true, endpoint: 'http://collector:4318/v1/traces', sampleRatio: 0.25, token: 'tok', serviceName: 'stella-eu1' });
  expect(buildConfig({ tracing: { enabled: true } }, { ...env, OTEL_SDK_DISABLED: 'true' }).tracing.enabled).toBe(false);
  const problems = (() => {
    try {
      buildConfig({ tracing: { enabled: 'maybe', endpoint: 'ftp://x', sampleRatio: 2, systemTenant: '_system', headers: { Authorization: 'Bearer x' }, maxQueueSize: 10, maxExportBatchSize: 20 } }, env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems.join('\n');
    }
    return '';
  })();
  for (const key of ['tracing.enabled', 'tracing.endpoint', 'tracing.sampleRatio', 'tracing.systemTenant', 'tracing.headers.Authorization', 'tracing.maxExportBatchSize']) {
    expect(problems).toContain(key);
  }
});

it('tracing to "self" without the receiver in the process is a configuration error naming what to set', async () => {
  const c = buildConfig({ dataDir: dir, tracing: { enabled: true } }, kafkaEnv());
  const parts = new Set(PARTS.filter((p) => p === 'scrub'));
  await expect(runPipeline(c, parts, () => {})).rejects.toThrow(/tracing.endpoint "self" needs the receiver.*STELLA_TRACING_TOKEN/s);
});
