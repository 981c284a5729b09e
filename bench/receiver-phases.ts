// Where the receiver's CPU goes per request, phase by phase, in one receiver process (issue 16's
// low-rate cost). Not a benchmark of record: a tool for attribution (BENCHMARKS.md, "front end").
//   npx tsx bench/receiver-phases.ts      PROF_PHASES=gmax,g50,g1,hmax,h50,idle (any order, repeats allowed), PROF_SECONDS=8
// gmax/hmax: gRPC/HTTP protobuf, 16 clients back to back; g50/h50: 50 req/s open loop; g1: one gRPC
// client back to back; idle: nothing. 100-span requests (~89 KB). Per phase it prints the receiver's
// CPU per request and per thread (/proc/<pid>/task: "main" is the JS thread, "node" V8's workers:
// concurrent TurboFan compiles, GC helpers). Optional, per phase:
//   PROF_DIR=<dir>    --cpu-prof of the receiver plus <dir>/phases.json (monotonic µs boundaries, the
//                     profile's clock): node bench/profile-phases.mjs <dir> [rows] [regex] [column]
//                     prints inclusive µs per request of each function per phase
//   PERF_DIR=<dir>    perf record -e cpu-clock of the receiver per phase (with BENCH_RECEIVER_NODE_ARGS=--perf-basic-prof)
//   STRACE_DIR=<dir>  strace -c -f per phase (syscall and wakeup counts)
//   BENCH_RECEIVER_STDOUT=<file> BENCH_RECEIVER_NODE_ARGS='--trace-opt --trace-deopt': the phases
//                     file records each phase's byte range of that log (JIT activity per phase)
import { mkdtempSync, writeFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { accessEnv } from '../lib/kafka/auth.ts';
import { startBroker } from '../lib/kafka/broker.ts';
import { signals, types } from '../lib/otlp/proto.ts';
import { startReceiverProcess, TOKEN, treeCpuSeconds } from '../bench/ingest.ts';
import { randomBytes } from 'node:crypto';

function request(): Uint8Array {
  const now = BigInt(Date.now()) * 1_000_000n;
  const spans = Array.from({ length: 100 }, (_, i) => ({
    traceId: randomBytes(16), spanId: randomBytes(8), parentSpanId: randomBytes(8), name: `GET /api/v1/items/{id}#${i % 7}`, kind: 2,
    startTimeUnixNano: (now + BigInt(i) * 1000n).toString(), endTimeUnixNano: (now + BigInt(i) * 1000n + 2_500_000n).toString(),
    attributes: Array.from({ length: 20 }, (_, k) => ({ key: `attr.key.${k}`, value: k % 4 === 3 ? { intValue: 1000 + k * i } : { stringValue: `value-${k}-${i % 13}-${'x'.repeat(k % 5 * 6)}` } })),
    status: { code: i % 20 === 0 ? 2 : 0 },
  }));
  const msg = types.ExportTraceServiceRequest.fromObject({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'bench-svc' } }] }, scopeSpans: [{ scope: { name: 'bench', version: '1' }, spans }] }] });
  return types.ExportTraceServiceRequest.encode(msg).finish();
}
const body = Buffer.from(request());
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-prof-'));
const profDir = process.env.PROF_DIR!;
const broker = await startBroker({ dataDir: path.join(dir, 'kafka'), heapMb: 768 });
Object.assign(process.env, accessEnv(broker.access()));
if (profDir) process.env.BENCH_PROFILE = profDir;
const { child, grpcPort, httpPort } = await startReceiverProcess(broker.brokers, dir);
const pid = child.pid!;
const client = new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
const md = new grpc.Metadata(); md.set('authorization', `Bearer ${TOKEN}`);
const gsend = () => new Promise<boolean>((resolve) => client.makeUnaryRequest(signals.traces.grpcPath, (b: Buffer) => b, (b: Buffer) => b, body, md, (err) => resolve(!err)));
const headers = { 'content-type': 'application/x-protobuf', authorization: `Bearer ${TOKEN}` };
const hsend = async () => { const r = await fetch(`http://127.0.0.1:${httpPort}/v1/traces`, { method: 'POST', body, headers }); await r.arrayBuffer(); return r.ok; };
async function closed(send: () => Promise<boolean>, s: number, c: number) { let ok = 0; const end = performance.now() + s * 1000; await Promise.all(Array.from({ length: c }, async () => { while (performance.now() < end) if (await send()) ok++; })); return ok; }
async function open(send: () => Promise<boolean>, s: number, rate: number) { let ok = 0; const p: Promise<void>[] = []; const st = performance.now(); for (let i = 0; i < s * rate; i++) { const w = st + i * 1000 / rate - performance.now(); if (w > 0) await new Promise((r) => setTimeout(r, w)); p.push(send().then((g) => { if (g) ok++; })); } await Promise.all(p); return ok; }
const S = Number(process.env.PROF_SECONDS ?? 8);
const phases: { name: string; t0: number; t1: number; ok: number; cpu: number }[] = [];
import { readFileSync as rf } from 'node:fs';
function threads(): Map<string, number> { const m = new Map<string, number>(); for (const t of readdirSync(`/proc/${pid}/task`)) { try { const s = rf(`/proc/${pid}/task/${t}/stat`, 'utf8'); const name = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')); const f = s.split(') ')[1]!.split(' '); const k = t === String(pid) ? 'main' : name; m.set(k, (m.get(k) ?? 0) + (Number(f[11]) + Number(f[12])) / 100); } catch {} } return m; }
async function phase(name: string, run: () => Promise<number>) {
  const th0 = threads();
  const logAt0 = process.env.BENCH_RECEIVER_STDOUT ? (await import('node:fs')).statSync(process.env.BENCH_RECEIVER_STDOUT, { throwIfNoEntry: false })?.size ?? 0 : 0;
  const perf = process.env.PERF_DIR ? (await import('node:child_process')).spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-F', '2999', '--per-thread', '-p', String(pid), '-o', `${process.env.PERF_DIR}/${name.replace(/\W+/g, '_')}.data`], { stdio: 'ignore' }) : undefined;
  if (perf) await new Promise((r) => setTimeout(r, 300));
  const st = process.env.STRACE_DIR ? (await import('node:child_process')).spawn('strace', ['-c', '-f', '-p', String(pid), '-o', `${process.env.STRACE_DIR}/${name.replace(/\W+/g, '_')}.txt`], { stdio: 'ignore' }) : undefined;
  if (st) await new Promise((r) => setTimeout(r, 500));
  const c0 = treeCpuSeconds(pid); const t0 = Number(process.hrtime.bigint() / 1000n);
  const ok = await run();
  const t1 = Number(process.hrtime.bigint() / 1000n); const cpu = treeCpuSeconds(pid) - c0;
  if (st) { st.kill('SIGINT'); await new Promise((r) => st.once('exit', r)); }
  if (perf) { perf.kill('SIGINT'); await new Promise((r) => perf.once('exit', r)); }
  const logAt1 = process.env.BENCH_RECEIVER_STDOUT ? (await import('node:fs')).statSync(process.env.BENCH_RECEIVER_STDOUT, { throwIfNoEntry: false })?.size ?? 0 : 0;
  phases.push({ name, t0, t1, ok, cpu, logAt0, logAt1 } as never);
  const th1 = threads(); console.log('   threads µs/req: ' + [...th1].map(([k, v]) => [k, (v - (th0.get(k) ?? 0)) * 1e6 / ok] as const).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', '));
  console.log(`${name}: ${ok} req, ${(cpu * 1e6 / ok).toFixed(0)} CPU-µs/req = ${(cpu * 1e6 / ok / 100).toFixed(2)} µs/span, ${(ok / ((t1 - t0) / 1e6)).toFixed(0)} req/s`);
}
await closed(gsend, 3, 16); await closed(hsend, 2, 16);
const which = (process.env.PROF_PHASES ?? 'gmax,g50,g1,hmax,h50').split(',');
for (const w of which) {
  if (w === 'gmax') await phase('grpc max 16', () => closed(gsend, S, 16));
  if (w === 'g50') await phase('grpc 50/s', () => open(gsend, S, 50));
  if (w === 'g1') await phase('grpc 1 client', () => closed(gsend, S, 1));
  if (w === 'hmax') await phase('http max 16', () => closed(hsend, S, 16));
  if (w === 'h50') await phase('http 50/s', () => open(hsend, S, 50));
  if (w === 'idle') await phase('idle', async () => { await new Promise((r) => setTimeout(r, S * 1000)); return 1; });
}
client.close();
child.kill('SIGTERM'); await new Promise((r) => child.once('exit', r));
await broker.stop();
writeFileSync(process.env.PHASES_OUT ?? path.join(profDir ?? '/tmp', 'phases.json'), JSON.stringify(phases));
console.log(`load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
process.exit(0);
