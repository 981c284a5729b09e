// bench:ingest — OTLP into Kafka (acks=all) through the real receiver process.
//
// The receiver runs as its own process (`stella run --only receiver`) so its CPU time and RSS are
// read from /proc in isolation from the load generator and the broker. Phases:
//   1. core: the receiver's pure core (validate + stamp + split) vs a protobufjs decode+encode of the
//      same request, in this process: CPU-µs per span and their ratio.
//   2. gRPC and HTTP/protobuf at peak (closed loop, N concurrent clients): spans/s, receiver
//      CPU-µs per span, p50/p99 request latency.
//   3. gRPC at half of the measured peak (open loop): p50/p99 latency.
//   4. Kafka stopped while the clients keep sending: the receiver's peak RSS.
// Requests hold 100 spans of 20 attributes each.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { startBroker, freePort } from '../lib/kafka/broker.ts';
import { signals, types } from '../lib/otlp/proto.ts';
import { sha256Hex } from '../lib/tenancy.ts';
import { prepareExport } from '../receiver/ingest.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const TOKEN = 'bench-token-0123456789';
const CLK_TCK = 100; // Linux USER_HZ

function request(): Uint8Array {
  const now = BigInt(Date.now()) * 1_000_000n;
  const spans = Array.from({ length: 100 }, (_, i) => ({
    traceId: randomBytes(16), spanId: randomBytes(8), parentSpanId: randomBytes(8), name: `GET /api/v1/items/{id}#${i % 7}`, kind: 2,
    startTimeUnixNano: (now + BigInt(i) * 1000n).toString(), endTimeUnixNano: (now + BigInt(i) * 1000n + 2_500_000n).toString(),
    attributes: Array.from({ length: 20 }, (_, k) => ({
      key: ['http.request.method', 'http.route', 'url.path', 'server.address', 'user_agent.original', 'http.response.status_code',
        'network.protocol.version', 'client.address', 'app.tenant.plan', 'app.feature', 'db.system.name', 'db.operation.name',
        'messaging.system', 'rpc.service', 'thread.name', 'code.function.name', 'code.file.path', 'app.request.bytes', 'app.retry', 'app.region'][k]!,
      value: k % 4 === 3 ? { intValue: 1000 + k * i } : { stringValue: `value-${k}-${i % 13}-${'x'.repeat(k % 5 * 6)}` },
    })),
    status: { code: i % 20 === 0 ? 2 : 0 },
  }));
  const msg = types.ExportTraceServiceRequest.fromObject({
    resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'bench-svc' } }, { key: 'service.version', value: { stringValue: '1.2.3' } }] },
      scopeSpans: [{ scope: { name: 'bench', version: '1' }, spans }] }],
  });
  return types.ExportTraceServiceRequest.encode(msg).finish();
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime (fields 14, 15)
}
function rssMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}
const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN; };

function benchCore(body: Uint8Array): { coreUs: number; decodeEncodeUs: number } {
  const sig = signals.traces;
  const limits = { maxRecordBytes: 1_000_000, maxAttributeValueBytes: 65536 };
  const time = (fn: () => void, iters: number) => {
    for (let i = 0; i < 50; i++) fn();
    const t0 = process.cpuUsage();
    for (let i = 0; i < iters; i++) fn();
    const d = process.cpuUsage(t0);
    return (d.user + d.system) / iters / 100; // µs per span
  };
  const coreUs = time(() => { prepareExport(sig, body, 'acme', limits); }, 2000);
  const decodeEncodeUs = time(() => { sig.request.encode(sig.request.decode(body)).finish(); }, 500);
  return { coreUs, decodeEncodeUs };
}

async function startReceiverProcess(brokers: string, dir: string): Promise<{ child: ChildProcess; grpcPort: number; httpPort: number }> {
  const cfgFile = path.join(dir, 'stella.yaml');
  writeFileSync(cfgFile, JSON.stringify({ tenants: [{ id: 'acme', tokens: [{ sha256: sha256Hex(TOKEN), scopes: ['otlp:write'] }] }],
    receiver: { maxInflightBytes: 64 * 1024 * 1024 } }));
  const [grpcPort, httpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(process.execPath, [...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []), '--import', 'tsx', path.join(root, 'cli/stella.ts'), 'run', '--only', 'receiver'], {
    cwd: root, stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, STELLA_CONFIG: cfgFile, KAFKA_BROKERS: brokers, STELLA_GRPC_PORT: String(grpcPort), STELLA_HTTP_PORT: String(httpPort),
      STELLA_ADMIN_PORT: String(adminPort), STELLA_DATA_DIR: path.join(dir, 'data'), STELLA_LOG_LEVEL: 'warn' },
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('Ready.')) resolve(); });
    child.once('exit', (c) => reject(new Error(`receiver exited with ${c}: ${out}`)));
  });
  return { child, grpcPort, httpPort };
}

type Sender = () => Promise<boolean>;

function grpcSender(port: number, body: Buffer): { send: Sender; close(): void } {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${TOKEN}`);
  const send = () => new Promise<boolean>((resolve) => client.makeUnaryRequest(signals.traces.grpcPath, (b: Buffer) => b, (b: Buffer) => b, body, md, (err) => resolve(!err)));
  return { send, close: () => client.close() };
}

function httpSender(port: number, body: Buffer): { send: Sender; close(): void } {
  const headers = { 'content-type': 'application/x-protobuf', authorization: `Bearer ${TOKEN}` };
  const send = async () => { const r = await fetch(`http://127.0.0.1:${port}/v1/traces`, { method: 'POST', body, headers }); await r.arrayBuffer(); return r.ok; };
  return { send, close: () => {} };
}

async function closedLoop(send: Sender, seconds: number, concurrency: number) {
  const lat: number[] = [];
  let ok = 0, failed = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      if (await send()) { ok++; lat.push(performance.now() - t); } else failed++;
    }
  }));
  return { ok, failed, lat };
}

async function openLoop(send: Sender, seconds: number, ratePerSec: number) {
  const lat: number[] = [];
  let ok = 0, failed = 0;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < seconds * ratePerSec; i++) {
    const due = start + (i * 1000) / ratePerSec;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const t = performance.now();
    pending.push(send().then((good) => { if (good) { ok++; lat.push(performance.now() - t); } else failed++; }));
  }
  await Promise.all(pending);
  return { ok, failed, lat };
}

async function main(): Promise<void> {
  const body = Buffer.from(request());
  const core = benchCore(body);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-bench-ingest-'));
  const broker = await startBroker({ dataDir: path.join(dir, 'kafka'), heapMb: 768 });
  const { child, grpcPort, httpPort } = await startReceiverProcess(broker.brokers, dir);
  const pid = child.pid!;
  const rows: string[][] = [];
  try {
    const g = grpcSender(grpcPort, body);
    const h = httpSender(httpPort, body);
    await closedLoop(g.send, 2, CONCURRENCY); // warm-up (JIT, connections, producer)
    let grpcPeak = 0;
    for (const [name, s] of [['OTLP/gRPC', g], ['OTLP/HTTP protobuf', h]] as const) {
      const cpu0 = cpuSeconds(pid);
      const t0 = performance.now();
      const r = await closedLoop(s.send, SECONDS, CONCURRENCY);
      const wall = (performance.now() - t0) / 1000;
      const cpu = cpuSeconds(pid) - cpu0;
      const spans = r.ok * 100;
      if (name === 'OTLP/gRPC') grpcPeak = r.ok / wall;
      rows.push([`${name} peak (${CONCURRENCY} clients)`, (spans / wall).toFixed(0), ((cpu * 1e6) / spans).toFixed(2), pct(r.lat, 50).toFixed(1), pct(r.lat, 99).toFixed(1), String(r.failed)]);
    }
    const half = await openLoop(g.send, SECONDS, Math.max(1, Math.floor(grpcPeak / 2)));
    rows.push([`OTLP/gRPC at half peak (${Math.floor(grpcPeak / 2)} req/s)`, ((half.ok * 100) / SECONDS).toFixed(0), '', pct(half.lat, 50).toFixed(1), pct(half.lat, 99).toFixed(1), String(half.failed)]);
    const peakRssUp = rssMb(pid, 'VmHWM');

    await broker.stop();
    let maxRssDown = 0;
    const sampler = setInterval(() => { maxRssDown = Math.max(maxRssDown, rssMb(pid, 'VmRSS')); }, 100);
    const down = await closedLoop(async () => (await Promise.all([g.send(), h.send()])).every(Boolean), 10, CONCURRENCY);
    clearInterval(sampler);
    g.close();

    process.stdout.write(`\nbench:ingest — ${os.cpus().length} cores, ${SECONDS}s per phase, 100 spans x 20 attributes per request\n\n`);
    process.stdout.write(`core (in-process, CPU-µs per span): receiver core ${core.coreUs.toFixed(3)}, protobufjs decode+encode ${core.decodeEncodeUs.toFixed(3)}, ratio ${(core.coreUs / core.decodeEncodeUs).toFixed(2)}\n\n`);
    process.stdout.write('| phase | spans/s | receiver CPU-µs/span | p50 ms | p99 ms | failed |\n|---|---|---|---|---|---|\n');
    for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
    process.stdout.write(`\nreceiver peak RSS with Kafka up: ${peakRssUp.toFixed(0)} MB; max RSS during 10 s of Kafka down under load: ${maxRssDown.toFixed(0)} MB (${down.failed} requests refused retryably, ${down.ok} accepted)\n`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
