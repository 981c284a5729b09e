// bench:peer — stella's receiver against the OpenTelemetry Collector doing the same job (issue 16).
//
// One broker; stella's receiver (`stella run --only receiver`, as bench:ingest starts it) and the
// collector built from collector-config/builder-config.yaml running bench/peer-otelcol.yaml (the fair
// setup: OTLP receiver straight into the Kafka exporter, otlp_proto, acks=all, idempotent, 5 ms
// linger, no batch processor, no sending queue or retry: both answer only after Kafka acked). Both
// run side by side; the same telemetrygen load goes to one, then the other, alternating which goes
// first in each round. Per round and side: the spans that landed in Kafka (counted from the records'
// values), the process's CPU (utime+stime from /proc, children included) per landed span, and landed
// spans/s. Prints stella/collector ratios: medians over the paired rounds.
//
// Phases (telemetrygen traces, default spans; gRPC and HTTP/protobuf):
//   fixed: BENCH_PEER_FIXED_RATE spans/s in total (default 9000) over BENCH_PEER_FIXED_WORKERS workers (3);
//   max:   no rate limit, BENCH_PEER_MAX_WORKERS workers (4) in each of BENCH_PEER_MAX_CLIENTS telemetrygen processes (1).
// BENCH_PEER_ROUNDS (3) paired rounds of BENCH_PEER_SECONDS (8) per phase; BENCH_PEER_ONLY=grpc|http|fixed|max
// keeps the phases whose name contains it. BENCH_PEER_GRPC_IMPLS=h2,grpc-js runs one stella receiver per
// gRPC front end (receiver.grpcImpl), each into its own spans topic, all alternating with the collector
// in the same rounds (default: the configured one only). BENCH_PEER_STELLA_ROOTS=<dir>[,<dir>...] adds a stella
// receiver started from each of those trees (e.g. a `git archive` of the commit before a change), each into its
// own spans topic, in the same rounds: the "first / other" table is then an A/B of the trees.
// Warm-up: BENCH_PEER_WARMUP_SECONDS (default 20) of unthrottled load per side (half of it over each protocol) before the rounds.
// The receiver's CPU per span falls by ~2x over its first minute of load while V8 optimises its hot
// paths (at ~80 requests/s a function reaches TurboFan only after tens of seconds; the compiler threads
// were ~25% of its CPU in the first phases, ~2% after a minute); the collector is compiled ahead of time.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Consumer } from 'kafkajs';
import { buildCollector, installGoTool } from '../lib/go-peers.ts';
import { createKafka, ensureTopics } from '../lib/kafka/client.ts';
import { accessEnv, accessFromEnv } from '../lib/kafka/auth.ts';
import { freePort, startBroker } from '../lib/kafka/broker.ts';
import { defaultTopicNames } from '../lib/kafka/topics.ts';
import { parseExportRequest } from '../lib/otlp/wire.ts';
import { signals } from '../lib/otlp/proto.ts';
import { pct, startReceiverProcess, TOKEN, treeCpuSeconds } from './ingest.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const env = (name: string, d: number): number => { const v = Number(process.env[name] ?? d); if (!(v >= 0)) throw new Error(`${name} must be a number >= 0`); return v; };
const SECONDS = env('BENCH_PEER_SECONDS', 8);
const ROUNDS = env('BENCH_PEER_ROUNDS', 3);
const FIXED_RATE = env('BENCH_PEER_FIXED_RATE', 9000);
const FIXED_WORKERS = env('BENCH_PEER_FIXED_WORKERS', 9);
const MAX_WORKERS = env('BENCH_PEER_MAX_WORKERS', 1);
const MAX_CLIENTS = env('BENCH_PEER_MAX_CLIENTS', 4);
const WARMUP_SECONDS = env('BENCH_PEER_WARMUP_SECONDS', 20);
const PEER_TOPIC = 'peer_spans';
const PARTITIONS = 6; // = kafka.partitions' default, which otlp_spans gets

/** Spans in a record value (an ExportTraceServiceRequest), as the receiver's wire parser counts them. */
function spansIn(value: Uint8Array): number {
  const parsed = parseExportRequest(signals.traces, value, 'acme', { maxAttributeValueBytes: 1 << 30 });
  let n = parsed.accepted;
  for (const r of parsed.rejected.values()) n += r;
  return n;
}

/** Counts the spans written to a topic: paused while a round runs, caught up to the end offsets after it. */
class LandedSpans {
  spans = 0;
  private next = new Map<number, bigint>();
  private constructor(private readonly consumer: Consumer, readonly topic: string) {}
  static async start(brokers: string, topic: string): Promise<LandedSpans> {
    const consumer = createKafka({ ...accessFromEnv(), brokers: [brokers], clientId: 'bench-peer' }).consumer({ groupId: `bench-peer-${topic}-${process.pid}`, maxBytes: 64 << 20 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const c = new LandedSpans(consumer, topic);
    await consumer.run({ autoCommit: false, eachBatch: async ({ batch }) => {
      for (const m of batch.messages) { if (m.value) c.spans += spansIn(m.value); c.next.set(batch.partition, BigInt(m.offset) + 1n); }
    } });
    return c;
  }
  pause(): void { this.consumer.pause([{ topic: this.topic }]); }
  /** Resume and wait until everything up to the topic's current end offsets is counted; returns the running total. */
  async catchUp(brokers: string): Promise<number> {
    const admin = createKafka({ ...accessFromEnv(), brokers: [brokers], clientId: 'bench-peer-admin' }).admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(this.topic);
    await admin.disconnect();
    this.consumer.resume([{ topic: this.topic }]);
    const deadline = Date.now() + 120_000;
    while (!ends.every((e) => (this.next.get(e.partition) ?? 0n) >= BigInt(e.high) || BigInt(e.high) === BigInt(e.low))) {
      if (Date.now() > deadline) throw new Error(`counting ${this.topic}: not caught up with ${JSON.stringify(ends)} after 120 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return this.spans;
  }
  stop(): Promise<void> { return this.consumer.disconnect(); }
}

interface Side { name: string; pid: number; grpc: string; http: string; landed: LandedSpans; child: ChildProcess }
interface Phase { name: string; http: boolean; rate: number; workers: number; clients: number }

/** Run telemetrygen processes against an OTLP endpoint for SECONDS; resolves when all exited. */
async function telemetrygen(bin: string, endpoint: string, p: Phase, seconds: number): Promise<void> {
  const args = ['traces', '--otlp-endpoint', endpoint, '--otlp-insecure', '--duration', `${seconds}s`, '--workers', String(p.workers),
    '--rate', String(p.rate ? p.rate / (p.workers * p.clients) : 0), '--otlp-header', `authorization="Bearer ${TOKEN}"`,
    '--allow-export-failures', ...(p.http ? ['--otlp-http'] : [])];
  await Promise.all(Array.from({ length: p.clients }, () => new Promise<void>((resolve, reject) => {
    const c = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-4000); });
    c.once('error', reject);
    c.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`telemetrygen exited with ${code}: ${err}`))));
  })));
}

async function startCollector(bin: string, brokers: string, dir: string): Promise<Omit<Side, 'landed'>> {
  const [grpcPort, httpPort, healthPort] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(bin, ['--config', path.join(root, 'bench/peer-otelcol.yaml')], {
    cwd: dir, stdio: ['ignore', 'inherit', 'inherit'],
    env: { PATH: process.env.PATH, HOME: dir, PEER_BROKERS: brokers, PEER_TOPIC,
      PEER_KAFKA_USERNAME: process.env.KAFKA_SASL_USERNAME, PEER_KAFKA_PASSWORD: process.env.KAFKA_SASL_PASSWORD, PEER_GRPC_ENDPOINT: `127.0.0.1:${grpcPort}`,
      PEER_HTTP_ENDPOINT: `127.0.0.1:${httpPort}`, PEER_HEALTH_ENDPOINT: `127.0.0.1:${healthPort}` },
  });
  let exited: number | null = null;
  child.once('exit', (c) => { exited = c ?? -1; });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== null) throw new Error(`the collector exited with ${exited} during startup`);
    if (Date.now() > deadline) throw new Error('the collector did not report healthy within 60 s');
    const ok = await fetch(`http://127.0.0.1:${healthPort}/`).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  return { name: 'collector', pid: child.pid!, grpc: `127.0.0.1:${grpcPort}`, http: `127.0.0.1:${httpPort}`, child };
}

interface Sample { spans: number; cpuUsPerSpan: number; spansPerSec: number }

async function round(tg: string, brokers: string, side: Side, p: Phase): Promise<Sample> {
  const before = await side.landed.catchUp(brokers);
  side.landed.pause();
  const cpu0 = treeCpuSeconds(side.pid);
  const t0 = performance.now();
  await telemetrygen(tg, p.http ? side.http : side.grpc, p, SECONDS);
  const wall = (performance.now() - t0) / 1000;
  const cpu = treeCpuSeconds(side.pid) - cpu0;
  const spans = (await side.landed.catchUp(brokers)) - before;
  if (spans === 0) throw new Error(`${side.name}, ${p.name}: no span landed in Kafka`);
  return { spans, cpuUsPerSpan: (cpu * 1e6) / spans, spansPerSec: spans / wall };
}

async function main(): Promise<void> {
  const say = (m: string) => process.stderr.write(`[bench:peer] ${m}\n`);
  const otelcol = buildCollector(say);
  const tg = installGoTool('telemetrygen', say);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-bench-peer-'));
  const broker = await startBroker({ dataDir: path.join(dir, 'kafka'), heapMb: 768 });
  // Both sides (and our own consumers) log in as the broker's super user; children inherit this.
  Object.assign(process.env, accessEnv(broker.access()));
  const started: ChildProcess[] = [];
  const counters: LandedSpans[] = [];
  try {
    await ensureTopics(createKafka({ ...broker.access(), clientId: 'bench-peer-admin' }), [{ name: PEER_TOPIC, partitions: PARTITIONS, replicationFactor: 1 }]);
    const stellaDir = path.join(dir, 'stella');
    const collectorDir = path.join(dir, 'collector');
    mkdirSync(stellaDir);
    mkdirSync(collectorDir);
    const impls = (process.env.BENCH_PEER_GRPC_IMPLS ?? '').split(',').map((x) => x.trim()).filter(Boolean);
    const sides: Side[] = [];
    const receivers: { topic: string; side: Omit<Side, 'landed'> }[] = [];
    const otherRoots = (process.env.BENCH_PEER_STELLA_ROOTS ?? '').split(',').map((x) => x.trim()).filter(Boolean).map((x) => path.resolve(x));
    const stellas = [...(impls.length ? impls : ['']).map((impl) => ({ impl, tree: undefined as string | undefined })),
      ...otherRoots.map((tree) => ({ impl: '', tree }))];
    for (const [i, { impl, tree }] of stellas.entries()) {
      const tag = tree ? `tree${i}` : impl.replace(/[^a-z0-9]/g, '');
      const topic = tag ? `${defaultTopicNames.spans}_${tag}` : defaultTopicNames.spans;
      if (tag) await ensureTopics(createKafka({ ...broker.access(), clientId: 'bench-peer-admin' }), [{ name: topic, partitions: PARTITIONS, replicationFactor: 1 }]);
      const d = path.join(stellaDir, tag || 'default');
      mkdirSync(d);
      const r = await startReceiverProcess(broker.brokers, d, impl ? { STELLA_GRPC_IMPL: impl } : {}, tree, undefined, { spans: topic });
      started.push(r.child);
      const name = tree ? `stella ${path.basename(tree)}` : impl ? `stella ${impl}` : 'stella';
      receivers.push({ topic, side: { name, pid: r.child.pid!, grpc: `127.0.0.1:${r.grpcPort}`, http: `127.0.0.1:${r.httpPort}`, child: r.child } });
    }
    const c = await startCollector(otelcol, broker.brokers, collectorDir);
    started.push(c.child);
    // The counters' consumer groups after every side started (a fresh broker needs a while for its group coordinator).
    for (const { topic, side } of [...receivers, { topic: PEER_TOPIC, side: c }]) {
      const landed = await LandedSpans.start(broker.brokers, topic);
      counters.push(landed);
      sides.push({ ...side, landed });
    }
    const phases: Phase[] = [
      { name: `gRPC, fixed ${FIXED_RATE} spans/s`, http: false, rate: FIXED_RATE, workers: FIXED_WORKERS, clients: 1 },
      { name: 'gRPC, max', http: false, rate: 0, workers: MAX_WORKERS, clients: MAX_CLIENTS },
      { name: `HTTP/protobuf, fixed ${FIXED_RATE} spans/s`, http: true, rate: FIXED_RATE, workers: FIXED_WORKERS, clients: 1 },
      { name: 'HTTP/protobuf, max', http: true, rate: 0, workers: MAX_WORKERS, clients: MAX_CLIENTS },
    ].filter((p) => !process.env.BENCH_PEER_ONLY || p.name.toLowerCase().includes(process.env.BENCH_PEER_ONLY.toLowerCase()));
    // Warm-up: JIT, connections and producers on both sides, both protocols.
    for (const s of sides) for (const http of [false, true]) await telemetrygen(tg, http ? s.http : s.grpc, { name: 'warm-up', http, rate: 0, workers: 2, clients: 1 }, WARMUP_SECONDS / 2);
    const load0 = os.loadavg();
    const results: { phase: Phase; by: Map<string, Sample[]> }[] = [];
    for (const p of phases) {
      const res = { phase: p, by: new Map<string, Sample[]>(sides.map((s) => [s.name, []])) };
      for (let i = 0; i < ROUNDS; i++) {
        // Each round starts with a different side (rotation), so no side always goes first.
        const order = sides.map((_, j) => sides[(i + j) % sides.length]!);
        for (const s of order) {
          const sample = await round(tg, broker.brokers, s, p);
          res.by.get(s.name)!.push(sample);
          say(`${p.name}, round ${i + 1}, ${s.name}: ${sample.spans} spans, ${sample.cpuUsPerSpan.toFixed(2)} CPU-µs/span, ${sample.spansPerSec.toFixed(0)} spans/s`);
        }
      }
      results.push(res);
    }
    const load1 = os.loadavg();
    const med = (xs: number[]) => pct(xs, 50);
    const ratios = (k: keyof Sample, a: Sample[], b: Sample[]) => a.map((x, j) => x[k] / b[j]![k]);
    process.stdout.write(`\nbench:peer — ${os.cpus().length} cores, one Kafka broker; stella's receiver vs the OpenTelemetry Collector ${path.basename(path.dirname(otelcol))} `
      + `(bench/peer-otelcol.yaml); telemetrygen ${path.basename(path.dirname(tg))} traces; ${ROUNDS} paired rounds of ${SECONDS} s per phase after ${WARMUP_SECONDS} s of warm-up per side\n`
      + `load: fixed = ${FIXED_RATE} spans/s offered by ${FIXED_WORKERS} telemetrygen workers; max = ${MAX_CLIENTS} telemetrygen processes of ${MAX_WORKERS} unthrottled worker(s), each exporting 100-span batches one at a time\n`
      + `CPU = the process's utime+stime (/proc) per span that landed in Kafka; spans/s = landed spans / wall time of the load\n`
      + `load averages (1/5/15 min) at the first round: ${load0.map((x) => x.toFixed(2)).join(' ')}; after the last: ${load1.map((x) => x.toFixed(2)).join(' ')}\n\n`
      + '| protocol, load | CPU-µs/span stella | CPU-µs/span collector | CPU/span stella/collector (per round) | spans/s stella | spans/s collector | spans/s stella/collector (per round) |\n'
      + '|---|---|---|---|---|---|---|\n');
    const stellaSides = sides.filter((x) => x.name !== 'collector').map((x) => x.name);
    for (const name of stellaSides) {
      if (stellaSides.length > 1) process.stdout.write(`| **${name}** vs collector | | | | | | |\n`);
      for (const { phase, by } of results) {
        const stella = by.get(name)!, collector = by.get('collector')!;
        const cpuR = ratios('cpuUsPerSpan', stella, collector), rateR = ratios('spansPerSec', stella, collector);
        process.stdout.write(`| ${phase.name} | ${med(stella.map((x) => x.cpuUsPerSpan)).toFixed(2)} | ${med(collector.map((x) => x.cpuUsPerSpan)).toFixed(2)} | `
          + `**${med(cpuR).toFixed(2)}×** (${cpuR.map((x) => x.toFixed(2)).join(', ')}) | ${med(stella.map((x) => x.spansPerSec)).toFixed(0)} | `
          + `${med(collector.map((x) => x.spansPerSec)).toFixed(0)} | **${med(rateR).toFixed(2)}** (${rateR.map((x) => x.toFixed(2)).join(', ')}) |\n`);
      }
    }
    // Between stella's front ends, same rounds: the first listed over each other one.
    for (const other of stellaSides.slice(1)) {
      process.stdout.write(`\n${stellaSides[0]} / ${other}, same rounds (CPU-µs/span and spans/s ratios, per round):\n\n| protocol, load | CPU/span | spans/s |\n|---|---|---|\n`);
      for (const { phase, by } of results) {
        const a = by.get(stellaSides[0]!)!, b = by.get(other)!;
        const cpuR = ratios('cpuUsPerSpan', a, b), rateR = ratios('spansPerSec', a, b);
        process.stdout.write(`| ${phase.name} | **${med(cpuR).toFixed(2)}×** (${cpuR.map((x) => x.toFixed(2)).join(', ')}) | **${med(rateR).toFixed(2)}** (${rateR.map((x) => x.toFixed(2)).join(', ')}) |\n`);
      }
    }
  } finally {
    for (const c of counters) await c.stop().catch(() => {});
    for (const c of started) { c.kill('SIGTERM'); await new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r))); }
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
