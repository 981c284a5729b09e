// Real gRPC clients against the receiver's node:http2 gRPC front end (receiver/grpc-h2.ts): grpc-go
// (the OpenTelemetry Collector's otlp_grpc exporter, telemetrygen), gRPC C-core (the OTel Python
// exporter) and grpc-js (the OTel JS exporter). Data lands; gzip; RetryInfo is honoured by the
// clients that read it (the collector, Python), and carried to the JS exporter (which does not retry gRPC).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metadata } from '@grpc/grpc-js';
import { OTLPTraceExporter as TraceGrpc } from '@opentelemetry/exporter-trace-otlp-grpc';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { buildCollector, installGoTool } from '../../lib/go-peers.ts';
import { freePort } from '../../lib/kafka/broker.ts';
import { registry } from '../../lib/metrics.ts';
import { decodeTraces, types } from '../../lib/otlp/proto.ts';
import type { StellaConfig } from '../../lib/config.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { readRecords } from '../support/kafka.ts';
import { spanObject, tracesRequest } from '../support/otlp.ts';
import { startTestReceiver, TOKENS } from '../support/receiver.ts';

const RETRY_AFTER = 3;
const MANIFEST = path.join(import.meta.dirname, 'fixtures', 'otelcol-grpc-client.yaml');
let cfg: StellaConfig;
let receiver: RunningReceiver;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stella-grpc-clients-'));
  ({ cfg, receiver } = await startTestReceiver({ receiver: { retryAfterSeconds: RETRY_AFTER } }));
}, 120_000);
afterAll(async () => {
  await receiver?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Span names by the service.name of their resource, from everything on the spans topic. */
async function spansOf(service: string, atLeast: number): Promise<string[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const names = (await readRecords([cfg.kafka.topics.spans], 100_000, 2000)).flatMap((r) => decodeTraces(r.value).resourceSpans
      .filter((rs) => rs.resource?.attributes.some((a) => a.key === 'service.name' && a.value?.stringValue === service))
      .flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans.map((x) => x.name))));
    if (names.length >= atLeast || Date.now() > deadline) return names;
  }
}

async function grpcAnswers(code: string): Promise<number> {
  const m = (await registry.getSingleMetric('stella_receiver_requests_total')?.get())?.values ?? [];
  return m.filter((v) => v.labels.protocol === 'grpc' && v.labels.code === code).reduce((a, v) => a + v.value, 0);
}

/**
 * Kafka reported down (its probe stopped, so only the test brings it back): the receiver answers
 * UNAVAILABLE with RetryInfo. Once the first such answer went out, Kafka is "back". Resolves with
 * the time of that first refusal.
 */
async function unavailableOnce(): Promise<number> {
  await receiver.health.stop();
  receiver.health.markDown(new Error('test: Kafka reported down'));
  const before = await grpcAnswers('UNAVAILABLE');
  const deadline = Date.now() + 30_000;
  while ((await grpcAnswers('UNAVAILABLE')) === before) {
    if (Date.now() > deadline) throw new Error('no UNAVAILABLE answer within 30 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  const at = Date.now();
  receiver.health.markUp();
  await receiver.health.start();
  return at;
}

describe('grpc-go: the OpenTelemetry Collector otlp_grpc exporter', () => {
  let collector: ReturnType<typeof spawn> | undefined;
  let httpIn = 0;
  beforeAll(async () => {
    const bin = buildCollector(() => {}, MANIFEST);
    httpIn = await freePort();
    const conf = path.join(dir, 'otelcol.yaml');
    writeFileSync(conf, JSON.stringify({
      receivers: { otlp: { protocols: { http: { endpoint: `127.0.0.1:${httpIn}` } } } },
      exporters: { otlp_grpc: {
        endpoint: `127.0.0.1:${receiver.grpcPort}`, tls: { insecure: true }, compression: 'gzip', timeout: '10s',
        headers: { authorization: `Bearer ${TOKENS.acme}` },
        // No queue: the collector answers its HTTP client after our receiver answered it.
        sending_queue: { enabled: false },
        retry_on_failure: { enabled: true, initial_interval: '100ms', max_interval: '10s', max_elapsed_time: '30s' },
      } },
      service: { telemetry: { logs: { level: 'warn' }, metrics: { level: 'none' } }, pipelines: { traces: { receivers: ['otlp'], exporters: ['otlp_grpc'] } } },
    }));
    collector = spawn(bin, ['--config', conf], { stdio: ['ignore', 'inherit', 'inherit'] });
    const deadline = Date.now() + 60_000;
    while (!(await fetch(`http://127.0.0.1:${httpIn}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: new Uint8Array() }).then(() => true, () => false))) {
      if (Date.now() > deadline) throw new Error('the collector did not listen within 60 s');
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 20 * 60_000);
  afterAll(async () => {
    if (collector && collector.exitCode === null) { collector.kill('SIGTERM'); await new Promise((r) => collector!.once('exit', r)); }
  });

  const send = (service: string, n: number) => fetch(`http://127.0.0.1:${httpIn}/v1/traces`, {
    method: 'POST', headers: { 'content-type': 'application/x-protobuf' },
    body: tracesRequest([{ attrs: { 'service.name': service }, scopes: [{ name: 'go', spans: Array.from({ length: n }, (_, i) => spanObject(`${service}-${i}`)) }] }]),
  });

  it('forwards spans (gzip) that land in Kafka', async () => {
    const service = `otelcol-${Date.now()}`;
    const res = await send(service, 30);
    expect(res.status).toBe(200);
    expect((await spansOf(service, 30)).sort()).toEqual(Array.from({ length: 30 }, (_, i) => `${service}-${i}`).sort());
  });

  it('waits the RetryInfo delay after UNAVAILABLE, then delivers', async () => {
    const service = `otelcol-retry-${Date.now()}`;
    const refused = unavailableOnce();
    const res = await send(service, 5);
    const answeredAt = Date.now();
    expect(res.status).toBe(200);
    // Its own backoff would retry after ~100 ms; RetryInfo says RETRY_AFTER seconds.
    expect(answeredAt - (await refused)).toBeGreaterThanOrEqual(RETRY_AFTER * 1000 - 300);
    expect(await spansOf(service, 5)).toHaveLength(5);
  }, 60_000);
});

describe('grpc-go: telemetrygen', () => {
  it('sends traces that land', async () => {
    const bin = installGoTool('telemetrygen');
    const service = `telemetrygen-${Date.now()}`;
    // Not spawnSync: the receiver runs in this process and must keep serving meanwhile.
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(bin, ['traces', '--otlp-endpoint', `127.0.0.1:${receiver.grpcPort}`, '--otlp-insecure', '--traces', '25', '--rate', '0',
        '--service', service, '--otlp-header', `authorization="Bearer ${TOKENS.acme}"`], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '', stderr = '';
      p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      p.once('exit', (status) => resolve({ status, stdout, stderr }));
    });
    expect(r.status, r.stderr).toBe(0);
    // 25 traces of a parent and one child span each.
    // telemetrygen exits 0 whatever its exports did: its log says.
    const errors = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /error|fail/i.test(l)).join('\n');
    expect(await spansOf(service, 50), errors).toHaveLength(50);
  }, 120_000);
});

describe('gRPC C-core: the OTel Python exporter', () => {
  const script = `
import sys, time
from grpc import Compression
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
port, token, service, gz = sys.argv[1:5]
mem = InMemorySpanExporter()
tp = TracerProvider(resource=Resource.create({"service.name": service}))
tp.add_span_processor(SimpleSpanProcessor(mem))
tracer = tp.get_tracer("py-conformance")
for i in range(7):
    with tracer.start_as_current_span(f"{service}-{i}"):
        pass
exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, headers=(("authorization", f"Bearer {token}"),),
    compression=Compression.Gzip if gz == "gzip" else None, timeout=20)
t0 = time.time()
result = exporter.export(mem.get_finished_spans())
print(result.name, round(time.time() - t0, 3))
exporter.shutdown()
`;
  const runPython = (service: string, gz: 'gzip' | 'none') => new Promise<{ result: string; seconds: number }>((resolve, reject) => {
    const p = spawn('python3', ['-c', script, String(receiver.grpcPort), TOKENS.acme, service, gz], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.once('exit', (code) => {
      const m = /^(\w+) ([\d.]+)$/m.exec(out);
      if (code !== 0 || !m) reject(new Error(`python exited ${code}: ${out} ${err}`));
      else resolve({ result: m[1]!, seconds: Number(m[2]) });
    });
  });

  it.each(['none', 'gzip'] as const)('exports spans (compression %s) that land', async (gz) => {
    const service = `python-${gz}-${Date.now()}`;
    expect((await runPython(service, gz)).result).toBe('SUCCESS');
    expect((await spansOf(service, 7)).sort()).toEqual(Array.from({ length: 7 }, (_, i) => `${service}-${i}`).sort());
  }, 60_000);

  it('waits the RetryInfo delay after UNAVAILABLE, then delivers', async () => {
    const service = `python-retry-${Date.now()}`;
    const refused = unavailableOnce();
    const run = await runPython(service, 'gzip');
    await refused;
    expect(run.result).toBe('SUCCESS');
    // Its own first backoff is 0.8–1.2 s; RetryInfo (google.rpc.retryinfo-bin, which it reads) says RETRY_AFTER.
    expect(run.seconds).toBeGreaterThanOrEqual(RETRY_AFTER - 0.3);
    expect(await spansOf(service, 7)).toHaveLength(7);
  }, 60_000);
});

describe('grpc-js: the OTel JS exporter', () => {
  const exportWith = async (service: string, compression?: 'gzip') => {
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${TOKENS.acme}`);
    const exporter = new TraceGrpc({ url: `http://127.0.0.1:${receiver.grpcPort}`, metadata, ...(compression && { compression: compression as never }) });
    const mem = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': service }), spanProcessors: [new SimpleSpanProcessor(mem)] });
    const tracer = provider.getTracer('js-conformance');
    for (let i = 0; i < 4; i++) tracer.startSpan(`${service}-${i}`).end();
    const result = await new Promise<{ code: number; error?: Error & { code?: number; metadata?: Metadata } }>((resolve) => exporter.export(mem.getFinishedSpans(), resolve));
    await exporter.shutdown();
    await provider.shutdown();
    return result;
  };

  it('exports with gzip; the spans land', async () => {
    const service = `js-gzip-${Date.now()}`;
    expect((await exportWith(service, 'gzip')).code).toBe(0);
    expect(await spansOf(service, 4)).toHaveLength(4);
  });

  it('gets UNAVAILABLE with RetryInfo in grpc-status-details-bin (this exporter version does not retry gRPC)', async () => {
    await receiver.health.stop();
    receiver.health.markDown(new Error('test: Kafka reported down'));
    try {
      const r = await exportWith(`js-unavailable-${Date.now()}`);
      expect(r.code).toBe(1); // ExportResultCode.FAILED
      expect(r.error?.code).toBe(14);
      const bin = r.error?.metadata?.get('grpc-status-details-bin')[0] as Buffer;
      const st = types.Status.toObject(types.Status.decode(bin), { longs: Number }) as { code: number; details: { type_url: string; value: Uint8Array }[] };
      expect(st.code).toBe(14);
      const ri = types.RetryInfo.toObject(types.RetryInfo.decode(st.details.find((d) => d.type_url === 'type.googleapis.com/google.rpc.RetryInfo')!.value), { longs: Number }) as { retryDelay: { seconds: number } };
      expect(ri.retryDelay.seconds).toBe(RETRY_AFTER);
    } finally {
      receiver.health.markUp();
      await receiver.health.start();
    }
  });
});
