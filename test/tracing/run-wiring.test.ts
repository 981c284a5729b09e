// Self-tracing off (the default): no spans, no system tenant, and the traceparent the receiver
// writes is today's: the caller's trace id with a fresh span id. Plus the config section's checks.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildConfig, ConfigError, type StellaConfig } from '../../lib/config.ts';
import { sha256Hex } from '../../lib/tenancy.ts';
import { startBatchTrace, startRequestTrace, tracingEnabled } from '../../lib/tracing.ts';
import { PARTS, runPipeline, type RunningPipeline } from '../../cli/run.ts';
import { brokers, readAllRecordsAt, uniq } from '../support/kafka.ts';
import { spanObject, tracesRequest } from '../support/otlp.ts';

const TOKEN = 'tracing-off-acme-token-0123456789';
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-traceoff-'));
let cfg: StellaConfig;
let pipeline: RunningPipeline;

beforeAll(async () => {
  const p = uniq('to');
  cfg = buildConfig({
    dataDir: dir,
    receiver: { grpcPort: 0, httpPort: 0 }, admin: { port: 0 }, api: { port: 0 },
    kafka: { partitions: 2, topics: Object.fromEntries(['spans', 'metrics', 'logs', 'spansClean', 'metricsClean', 'logsClean', 'dlq', 'sloEvents', 'timelineEvents'].map((k) => [k, `${p}_${k}`])) },
    tenants: [{ id: 'acme', tokens: [{ sha256: sha256Hex(TOKEN), scopes: ['otlp:write'] }] }],
  }, { KAFKA_BROKERS: brokers() });
  pipeline = await runPipeline(cfg, new Set(['receiver', 'scrub'] as const), () => {});
}, 180_000);

afterAll(async () => {
  await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('tracing off: no spans, no system-tenant records, and the traceparent keeps the caller trace with a fresh span id', async () => {
  expect(cfg.tracing.enabled).toBe(false);
  expect(tracingEnabled()).toBe(false);
  expect(startRequestTrace('traces', 'acme', undefined)).toBeUndefined();
  expect(startBatchTrace('scrub', 'g', 't', 0, [{ key: 'acme', headers: {} }])).toBeUndefined();

  const traceId = randomBytes(16).toString('hex');
  const callerSpan = randomBytes(8).toString('hex');
  const body = tracesRequest([{ scopes: [{ name: 'client', spans: [spanObject('GET /')] }] }]);
  for (const tp of [`00-${traceId}-${callerSpan}-01`, undefined]) {
    const res = await fetch(`http://127.0.0.1:${pipeline.ports.http}/v1/traces`, { method: 'POST', body,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-protobuf', ...(tp ? { traceparent: tp } : {}) } });
    expect(res.status).toBe(200);
  }
  const raw = await readAllRecordsAt(brokers(), cfg.kafka.topics.spans);
  expect(raw.map((r) => r.key)).toEqual(['acme', 'acme']);
  const [withCaller, without] = raw.sort((a, b) => Number(a.offset) - Number(b.offset));
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(withCaller!.headers.traceparent!);
  expect(m?.[1]).toBe(traceId);
  expect(m?.[2]).not.toBe(callerSpan);
  expect(without!.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  expect(without!.headers.traceparent!.slice(3, 35)).not.toBe(traceId);
  // Scrub passes the header on unchanged when tracing is off.
  const clean = await (async () => {
    for (let i = 0; i < 200; i++) {
      const recs = await readAllRecordsAt(brokers(), cfg.kafka.topics.spansClean);
      if (recs.length === 2) return recs;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error('clean records did not arrive');
  })();
  expect(clean.map((r) => r.headers.traceparent).sort()).toEqual(raw.map((r) => r.headers.traceparent).sort());
});

it('the tracing section is validated and read from the environment', () => {
  const env = { KAFKA_BROKERS: brokers() };
  const d = buildConfig({}, env).tracing;
  expect(d).toMatchObject({ enabled: false, endpoint: 'self', sampleRatio: 1, systemTenant: 'stella-system', token: null });
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
  const c = buildConfig({ dataDir: dir, tracing: { enabled: true } }, { KAFKA_BROKERS: brokers() });
  const parts = new Set(PARTS.filter((p) => p === 'scrub'));
  await expect(runPipeline(c, parts, () => {})).rejects.toThrow(/tracing.endpoint "self" needs the receiver.*STELLA_TRACING_TOKEN/s);
});
