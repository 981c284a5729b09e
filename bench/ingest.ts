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
// Knobs for looking inside the receiver: BENCH_PROFILE=<dir> (a --cpu-prof of it), BENCH_ONLY=grpc|http
// (warm-up plus that peak phase only; =fixed: the gRPC fixed-rate phase only), BENCH_RECEIVER_NODE_ARGS='--trace-gc ...' (more node flags for
// it) with BENCH_RECEIVER_STDOUT=<file> (where its stdout goes after startup).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { accessEnv } from '../lib/kafka/auth.ts';
import { startBroker, freePort } from '../lib/kafka/broker.ts';
import { buildConfig } from '../lib/config.ts';
import { NODE_FLAGS } from '../lib/node-flags.ts';
import { flushTracing, startRequestTrace, startTracing, stopTracing } from '../lib/tracing.ts';
import { signals, types } from '../lib/otlp/proto.ts';
import { sha256Hex } from '../lib/tenancy.ts';
import { prepareExport } from '../receiver/ingest.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
export const TOKEN = 'bench-token-0123456789';
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

export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime (fields 14, 15)
}
/** CPU seconds of a process and its descendants (receiver workers, receiver.workers > 1). */
export function treeCpuSeconds(pid: number): number {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch { /* exited meanwhile */ }
  }
  let total = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    try { total += cpuSeconds(p); } catch { continue; }
    stack.push(...(children.get(p) ?? []));
  }
  return total;
}
function rssMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}
export const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN; };

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

/** `topics`: kafka.topics overrides (bench:peer gives each receiver its own spans topic). */
export async function startReceiverProcess(brokers: string, dir: string, extraEnv: Record<string, string> = {}, receiverRoot = root,
  nodeFlags: readonly string[] = NODE_FLAGS, topics: Record<string, string> = {}): Promise<{ child: ChildProcess; grpcPort: number; httpPort: number }> {
  const cfgFile = path.join(dir, 'stella.yaml');
  writeFileSync(cfgFile, JSON.stringify({ tenants: [{ id: 'acme', tokens: [{ sha256: sha256Hex(TOKEN), scopes: ['otlp:write'] }] }],
    receiver: { maxInflightBytes: 64 * 1024 * 1024 },
    // BENCH_LINGER_MS: the receiver's kafka.lingerMs (default: the config's own)
    kafka: { topics, ...(process.env.BENCH_LINGER_MS ? { lingerMs: Number(process.env.BENCH_LINGER_MS) } : {}) } }));
  const [grpcPort, httpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  // The receiver runs as `stella run` does (lib/node-flags.ts), unless BENCH_RECEIVER_NODE_ARGS overrides a flag.
  const nodeArgs = [...nodeFlags, ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []),
    ...(process.env.BENCH_RECEIVER_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', path.join(receiverRoot, 'cli/stella.ts'), 'run', '--only', 'receiver'], {
    cwd: receiverRoot, stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, STELLA_CONFIG: cfgFile, KAFKA_BROKERS: brokers, STELLA_GRPC_PORT: String(grpcPort), STELLA_HTTP_PORT: String(httpPort),
      STELLA_ADMIN_PORT: String(adminPort), STELLA_DATA_DIR: path.join(dir, 'data'), STELLA_LOG_LEVEL: 'warn', ...extraEnv },
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    let ready = false;
    const log = process.env.BENCH_RECEIVER_STDOUT; // e.g. for --trace-gc output
    child.stdout!.on('data', (d: Buffer) => {
      if (ready) { if (log) appendFileSync(log, d); return; }
      out += d.toString();
      if (out.includes('Ready.')) { ready = true; resolve(); }
    });
    child.once('exit', (c) => reject(new Error(`receiver exited with ${c}: ${out}`)));
  });
  return { child, grpcPort, httpPort };
}

type Sender = () => Promise<boolean>;

/** `connections`: separate HTTP/2 connections (a grpc.Client each, own subchannel pool), used in
 * turn; with receiver workers each connection goes to one worker (BENCH_GRPC_CONNECTIONS, default 1). */
function grpcSender(port: number, body: Buffer, connections = Number(process.env.BENCH_GRPC_CONNECTIONS ?? 1)): { send: Sender; close(): void } {
  const clients = Array.from({ length: Math.max(1, connections) }, () =>
    new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${TOKEN}`);
  let next = 0;
  const send = () => new Promise<boolean>((resolve) => clients[next++ % clients.length]!.makeUnaryRequest(signals.traces.grpcPath, (b: Buffer) => b, (b: Buffer) => b, body, md, (err) => resolve(!err)));
  return { send, close: () => { for (const c of clients) c.close(); } };
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

// Self-tracing overhead. In-process first: what one traced request adds (its receive + send spans,
// their batch export over OTLP/HTTP protobuf, and taking that export in again through the receiver
// core as the system tenant's request), per span of a 100-span request. Then end to end: one
// receiver process (bench/tracing-receiver.ts, wired as `stella run --only receiver` with tracing to
// itself) under the same gRPC load at a fixed request rate (open loop: the same work in both; a closed
// loop's CPU per span moves with the throughput it reaches), tracing switched off and on in
// alternating rounds, so both see the same JIT state, connections and neighbours (two processes
// differ by ±20% on a busy box). A round's CPU is read after its spans were exported and taken in.
async function tracingOverhead(brokers: string, body: Buffer): Promise<void> {
  const rounds = Number(process.env.BENCH_TRACING_ROUNDS ?? 8);
  if (!(rounds > 0)) return;
  const seconds = Number(process.env.BENCH_TRACING_SECONDS ?? 5);
  const ratio = process.env.BENCH_TRACING_RATIO ?? '0.1';
  const rps = Number(process.env.BENCH_TRACING_RPS ?? 100);
  const sink = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d)).on('end', () => {
      prepareExport(signals.traces, Buffer.concat(parts), 'stella-system', { maxRecordBytes: 1_000_000, maxAttributeValueBytes: 65536 });
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const tcfg = buildConfig({ tracing: { enabled: true, sampleRatio: Number(ratio) } }, {}).tracing;
  await startTracing(tcfg, { url: `http://127.0.0.1:${(sink.address() as AddressInfo).port}/v1/traces`, headers: {} });
  const traceOnce = () => { const rt = startRequestTrace('traces', 'acme', undefined)!; rt.startSend('otlp_spans', 1); rt.endSend(); rt.end(100, 0); };
  for (let i = 0; i < 2000; i++) { traceOnce(); if (i % 500 === 499) await flushTracing(); }
  const N = 20_000;
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) { traceOnce(); if (i % 500 === 499) await flushTracing(); } // stays under the queue bound
  await flushTracing();
  const c = process.cpuUsage(c0);
  await stopTracing();
  sink.close();
  process.stdout.write(`\nself-tracing, in-process: ${((c.user + c.system) / N).toFixed(1)} CPU-µs per traced request = ${((c.user + c.system) / (N * 100)).toFixed(3)} CPU-µs per span of a 100-span request\n`);

  const child = spawn(process.execPath, [...NODE_FLAGS, '--import', 'tsx', path.join(root, 'bench/tracing-receiver.ts'), brokers, TOKEN, ratio],
    { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, STELLA_LOG_LEVEL: 'warn' } });
  const next = () => new Promise<{ grpcPort?: number }>((resolve) => child.once('message', (m) => resolve(m as { grpcPort?: number })));
  const ask = (m: object) => { const answer = next(); child.send(m); return answer; };
  const { grpcPort } = await Promise.race([next(), new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`tracing receiver exited with ${code}`))))]);
  const s = grpcSender(grpcPort!, body);
  const us = { off: [] as number[], on: [] as number[] };
  try {
    await ask({ tracing: true });
    await closedLoop(s.send, 8, CONCURRENCY); // warm-up (JIT) with tracing on, so both paths are compiled
    for (let i = 0; i < rounds; i++) {
      const order: ('off' | 'on')[] = i % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
      for (const k of order) {
        await ask({ tracing: k === 'on' });
        const cpu0 = cpuSeconds(child.pid!);
        const r = await openLoop(s.send, seconds, rps);
        await ask({ flush: true });
        us[k].push(((cpuSeconds(child.pid!) - cpu0) * 1e6) / (r.ok * 100));
      }
    }
  } finally {
    s.close();
    child.send({ stop: true });
    await new Promise((r) => child.once('exit', r));
  }
  const ratios = us.on.map((v, i) => v / us.off[i]!);
  process.stdout.write(`\nself-tracing overhead (one receiver process, gRPC at ${rps} req/s, ${rounds} alternating rounds of ${seconds}s, sample ratio ${ratio}), receiver CPU-µs/span:\n\n| round | tracing off | tracing on | on/off |\n|---|---|---|---|\n`);
  ratios.forEach((q, i) => process.stdout.write(`| ${i + 1} | ${us.off[i]!.toFixed(2)} | ${us.on[i]!.toFixed(2)} | ${q.toFixed(3)} |\n`));
  process.stdout.write(`| median | ${pct(us.off, 50).toFixed(2)} | ${pct(us.on, 50).toFixed(2)} | **${pct(ratios, 50).toFixed(3)}** |\n`);
}

// BENCH_COMPARE_ROOT=<another checkout of this repository>: a receiver started from that tree runs
// beside ours, and BENCH_COMPARE_ROUNDS rounds (default 4) alternate the same phases on both (gRPC
// and HTTP peaks, gRPC at a fixed rate): both see the same neighbours, so the ratios hold on a busy box.
async function compareWith(otherRoot: string, brokers: string, dir: string, body: Buffer, ours: { pid: number; grpcPort: number; httpPort: number }): Promise<void> {
  const rounds = Number(process.env.BENCH_COMPARE_ROUNDS ?? 4);
  const fixed = Number(process.env.BENCH_FIXED_RPS ?? 50);
  const otherDir = path.join(dir, 'compare');
  mkdirSync(otherDir, { recursive: true });
  // BENCH_COMPARE_NODE_FLAGS: node flags for the other tree's receiver instead of ours (lib/node-flags.ts),
  // e.g. '' for a tree from before those flags existed.
  const otherFlags = process.env.BENCH_COMPARE_NODE_FLAGS;
  // BENCH_COMPARE_WORKERS=<n>: the other receiver runs with receiver.workers = n (from either tree).
  // BENCH_COMPARE_GRPC_IMPL: the other receiver's receiver.grpcImpl (e.g. BENCH_COMPARE_ROOT=. BENCH_COMPARE_GRPC_IMPL=grpc-js
  // compares this tree's gRPC front ends).
  const otherEnv: Record<string, string> = {
    ...(process.env.BENCH_COMPARE_WORKERS ? { STELLA_RECEIVER_WORKERS: process.env.BENCH_COMPARE_WORKERS } : {}),
    ...(process.env.BENCH_COMPARE_GRPC_IMPL ? { STELLA_GRPC_IMPL: process.env.BENCH_COMPARE_GRPC_IMPL } : {}),
  };
  const other = await startReceiverProcess(brokers, otherDir, otherEnv, otherRoot, otherFlags === undefined ? NODE_FLAGS : otherFlags.split(' ').filter(Boolean));
  const side = (pid: number, grpcPort: number, httpPort: number) => ({ pid, g: grpcSender(grpcPort, body), h: httpSender(httpPort, body) });
  const sides = { ours: side(ours.pid, ours.grpcPort, ours.httpPort), other: side(other.child.pid!, other.grpcPort, other.httpPort) };
  type Stat = Record<'grpcUs' | 'httpUs' | 'fixedUs' | 'grpcRate' | 'httpRate' | 'fixedP99', number[]>;
  const stats: Record<'ours' | 'other', Stat> = {
    ours: { grpcUs: [], httpUs: [], fixedUs: [], grpcRate: [], httpRate: [], fixedP99: [] },
    other: { grpcUs: [], httpUs: [], fixedUs: [], grpcRate: [], httpRate: [], fixedP99: [] },
  };
  const measure = async (pid: number, run: () => Promise<{ ok: number; lat: number[] }>) => {
    const cpu0 = treeCpuSeconds(pid);
    const t0 = performance.now();
    const r = await run();
    return { us: ((treeCpuSeconds(pid) - cpu0) * 1e6) / Math.max(1, r.ok * 100), rate: (r.ok * 100) / ((performance.now() - t0) / 1000), p99: pct(r.lat, 99) };
  };
  try {
    await closedLoop(sides.other.g.send, SECONDS, CONCURRENCY); // the other receiver's warm-up
    for (let i = 0; i < rounds; i++) {
      for (const k of (i % 2 === 0 ? ['ours', 'other'] : ['other', 'ours']) as ('ours' | 'other')[]) {
        const s = sides[k], st = stats[k];
        const g = await measure(s.pid, () => closedLoop(s.g.send, SECONDS, CONCURRENCY));
        const h = await measure(s.pid, () => closedLoop(s.h.send, SECONDS, CONCURRENCY));
        const f = await measure(s.pid, () => openLoop(s.g.send, SECONDS, fixed));
        st.grpcUs.push(g.us); st.grpcRate.push(g.rate); st.httpUs.push(h.us); st.httpRate.push(h.rate); st.fixedUs.push(f.us); st.fixedP99.push(f.p99);
      }
    }
  } finally {
    sides.other.g.close();
    sides.ours.g.close();
    other.child.kill('SIGTERM');
    await new Promise((r) => other.child.once('exit', r));
  }
  const med = (xs: number[]) => pct(xs, 50);
  const line = (label: string, key: keyof Stat, digits: number) => {
    const a = stats.ours[key], b = stats.other[key];
    const ratios = a.map((x, j) => (x / b[j]!).toFixed(2)).join(', ');
    return `| ${label} | ${med(a).toFixed(digits)} | ${med(b).toFixed(digits)} | ${(med(a) / med(b)).toFixed(2)} (${ratios}) |\n`;
  };
  process.stdout.write(`\ncompared with ${otherRoot}: ${rounds} alternating rounds of ${SECONDS} s phases, medians\n\n`
    + '| phase | this tree | other tree | ratio (per round) |\n|---|---|---|---|\n'
    + line('gRPC peak, receiver CPU-µs/span', 'grpcUs', 2) + line('gRPC peak, spans/s', 'grpcRate', 0)
    + line('HTTP protobuf peak, receiver CPU-µs/span', 'httpUs', 2) + line('HTTP protobuf peak, spans/s', 'httpRate', 0)
    + line(`gRPC at ${fixed} req/s, receiver CPU-µs/span`, 'fixedUs', 2) + line(`gRPC at ${fixed} req/s, p99 ms`, 'fixedP99', 1));
}

async function main(): Promise<void> {
  const body = Buffer.from(request());
  const core = benchCore(body);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-bench-ingest-'));
  const broker = await startBroker({ dataDir: path.join(dir, 'kafka'), heapMb: 768 });
  // Receivers started below (children inherit this environment) log in as the broker's super user.
  Object.assign(process.env, accessEnv(broker.access()));
  const { child, grpcPort, httpPort } = await startReceiverProcess(broker.brokers, dir);
  const pid = child.pid!;
  const rows: string[][] = [];
  try {
    const g = grpcSender(grpcPort, body);
    const h = httpSender(httpPort, body);
    await closedLoop(g.send, 2, CONCURRENCY); // warm-up (JIT, connections, producer)
    if (process.env.BENCH_COMPARE_ROOT || process.env.BENCH_COMPARE_WORKERS) {
      await compareWith(path.resolve(process.env.BENCH_COMPARE_ROOT ?? root), broker.brokers, dir, body, { pid, grpcPort, httpPort });
      g.close();
      return;
    }
    let grpcPeak = 0;
    // BENCH_ONLY=grpc|http: that peak phase alone (e.g. for a profile of one transport), then stop;
    // BENCH_ONLY=fixed: the gRPC fixed-rate phase alone.
    const only = process.env.BENCH_ONLY;
    const phases = ([['OTLP/gRPC', g], ['OTLP/HTTP protobuf', h]] as const).filter(([n]) => !only || n.toLowerCase().includes(only));
    for (const [name, s] of phases) {
      const cpu0 = treeCpuSeconds(pid);
      const t0 = performance.now();
      const r = await closedLoop(s.send, SECONDS, CONCURRENCY);
      const wall = (performance.now() - t0) / 1000;
      const cpu = treeCpuSeconds(pid) - cpu0;
      const spans = r.ok * 100;
      if (name === 'OTLP/gRPC') grpcPeak = r.ok / wall;
      rows.push([`${name} peak (${CONCURRENCY} clients)`, (spans / wall).toFixed(0), ((cpu * 1e6) / spans).toFixed(2), pct(r.lat, 50).toFixed(1), pct(r.lat, 99).toFixed(1), String(r.failed)]);
    }
    if (only === 'fixed') {
      const rate = Number(process.env.BENCH_FIXED_RPS ?? 50);
      const cpu0 = treeCpuSeconds(pid);
      const r = await openLoop(g.send, SECONDS, rate);
      rows.push([`OTLP/gRPC at a fixed rate (${rate} req/s)`, ((r.ok * 100) / SECONDS).toFixed(0), (((treeCpuSeconds(pid) - cpu0) * 1e6) / Math.max(1, r.ok * 100)).toFixed(2),
        pct(r.lat, 50).toFixed(1), pct(r.lat, 99).toFixed(1), String(r.failed)]);
    }
    if (only) {
      process.stdout.write(`\n| phase | spans/s | receiver CPU-µs/span | p50 ms | p99 ms | failed |\n|---|---|---|---|---|---|\n`);
      for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
      g.close();
      return;
    }
    // Open loop: at half of the measured peak, and at a fixed rate (BENCH_FIXED_RPS, default 50
    // requests/s) whose CPU per span compares across runs and machines whatever peak they reach.
    const open = async (name: string, s: Sender, rate: number) => {
      const cpu0 = treeCpuSeconds(pid);
      const r = await openLoop(s, SECONDS, rate);
      const us = r.ok ? ((treeCpuSeconds(pid) - cpu0) * 1e6) / (r.ok * 100) : NaN;
      rows.push([`${name} (${rate} req/s)`, ((r.ok * 100) / SECONDS).toFixed(0), us.toFixed(2), pct(r.lat, 50).toFixed(1), pct(r.lat, 99).toFixed(1), String(r.failed)]);
    };
    await open('OTLP/gRPC at half peak', g.send, Math.max(1, Math.floor(grpcPeak / 2)));
    const fixed = Number(process.env.BENCH_FIXED_RPS ?? 50);
    await open('OTLP/gRPC at a fixed rate', g.send, fixed);
    await open('OTLP/HTTP protobuf at a fixed rate', h.send, fixed);
    const peakRssUp = rssMb(pid, 'VmHWM');
    await tracingOverhead(broker.brokers, body);

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

// bench/peer.ts imports the receiver machinery above; run the benchmark only as the entry point.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
