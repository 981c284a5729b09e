// SLO core benchmark (npm run bench:slo): single-threaded, so figures are per core.
//  1. samples per CPU-second (and per wall second) through SloEvaluator.ingest + a per-minute evaluate (200 (tenant, SLO) states,
//     every span matching an availability and a latency SLO), and samples/s through GoldenSignals;
//  2. bytes per (tenant, SLO) state holding a full 3-day window (typed-array size and measured heap);
//  3. alert dispatch latency: from the evaluate() call that crosses the page threshold to the
//     POST arriving at a local HTTP receiver.
//  4. head-sampling cost in the receiver: prepareExport with and without a sampling ratio (ns per span);
//  5. with KAFKA_BROKERS set: the runner end to end (clean-spans topic → SloCore → chdb golden
//     signals + checkpoints), spans per wall second and per CPU-second of this process.
// Each figure is the median of RUNS runs. Options: RUNS=5 SAMPLES=2000000 RUNNER_RECORDS=300.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import os from 'node:os';
import { AlertDispatcher } from '../processors/slo/alert-dispatcher.ts';
import { parseSloConfig, type SloConfig } from '../processors/slo/config.ts';
import { SloEvaluator } from '../processors/slo/evaluator.ts';
import { GoldenSignals } from '../processors/slo/golden-signals.ts';
import { samplesFromTraces, type SpanSample } from '../processors/slo/samples.ts';
import Long from 'long';
import { decodeTraces, signals, types } from '../lib/otlp/proto.ts';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { accessFromEnv } from '../lib/kafka/auth.ts';
import { createKafka, ensureTopics } from '../lib/kafka/client.ts';
import { BatchingProducer } from '../lib/kafka/producer.ts';
import { parseExportRequest } from '../lib/otlp/wire.ts';
import { migrate, openStore, type Store } from '../lib/store/index.ts';
import { startSloRunner } from '../processors/slo/runner.ts';
import { SloCore } from '../processors/slo/slo-core.ts';
import { prepareExport } from '../receiver/ingest.ts';
import { HeadSampler, keepSpan } from '../receiver/sampling.ts';

const RUNS = Number(process.env.RUNS ?? 3);
const SAMPLES = Number(process.env.SAMPLES ?? 2_000_000);
const MIN = 60_000;
const TENANTS = 100;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function config(tenants: number): SloConfig {
  const slos: string[] = [];
  for (let t = 0; t < tenants; t++) {
    slos.push(`  - { name: avail, tenant: t${t}, service: checkout, objective: 0.999, sli: { type: availability, spans: { name: "POST /checkout" } } }`);
    slos.push(`  - { name: latency, tenant: t${t}, service: checkout, objective: 0.99, sli: { type: latency, threshold: 300ms, spans: { name: "POST /checkout", kind: any } } }`);
  }
  return parseSloConfig(`slos:\n${slos.join('\n')}\n`);
}

/** 2M spans over ~3 days of event time, 0.5% errors, ~1% slow, slight disorder, plus 10% spans matching nothing. */
function makeSamples(n: number, startMs: number): SpanSample[] {
  const out: SpanSample[] = new Array(n);
  const spanMs = (3 * 1440 * MIN) / n;
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let i = 0; i < n; i++) {
    const r = rand();
    out[i] = {
      tenant: `t${i % TENANTS}`,
      service: 'checkout',
      spanName: r < 0.1 ? 'GET /health' : 'POST /checkout',
      kind: 2,
      eventTimeMs: Math.floor(startMs + i * spanMs - rand() * 30_000),
      durationMs: r > 0.99 ? 800 : 20 + r * 100,
      isError: r > 0.995,
      traceId: '0af7651916cd43dd8448eb211c80319c',
    };
  }
  return out;
}

/** Rate per CPU-second of this process (user + system): on a shared, oversubscribed machine the
 * wall clock measures the neighbours too, CPU time measures what one core did for us. */
function cpuRate(n: number, c0: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(c0);
  return n / ((c.user + c.system) / 1e6);
}

interface Throughput { evaluatorPerSec: number; evaluatorPerCpuSec: number; goldenPerSec: number; goldenPerCpuSec: number; transitions: number }

function benchThroughput(samples: SpanSample[], startMs: number): Throughput {
  const ev = new SloEvaluator(config(TENANTS));
  let transitions = 0;
  let nextEval = startMs + MIN;
  const batch = 1000;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < samples.length; i += batch) {
    const slice = samples.slice(i, i + batch);
    ev.ingest(slice);
    const last = slice[slice.length - 1]!.eventTimeMs;
    while (last >= nextEval) { // one evaluation per minute of event time, as the runner would
      transitions += ev.evaluate(nextEval).transitions.length;
      nextEval += MIN;
    }
  }
  const evaluatorPerSec = samples.length / ((performance.now() - t0) / 1000);
  const evaluatorPerCpuSec = cpuRate(samples.length, c0);

  const g = new GoldenSignals();
  const c1 = process.cpuUsage();
  const t1 = performance.now();
  let flushAt = startMs + MIN;
  for (const s of samples) {
    g.add(s);
    if (s.eventTimeMs >= flushAt + MIN) { g.flush(flushAt); flushAt += MIN; }
  }
  const goldenPerSec = samples.length / ((performance.now() - t1) / 1000);
  return { evaluatorPerSec, evaluatorPerCpuSec, goldenPerSec, goldenPerCpuSec: cpuRate(samples.length, c1), transitions };
}

async function settleHeap(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setImmediate(r)); // let finalizers and pending sockets go before measuring
  }
}

async function benchStateBytes(): Promise<{ typedBytes: number; heapBytesPerState: number }> {
  const n = 200;
  await settleHeap();
  const before = process.memoryUsage();
  const ev = new SloEvaluator(config(n / 2));
  const start = 1_700_000_000_000;
  // Fill every minute of 3 days for every state: the worst case for the ring (all slots non-empty).
  for (let m = 0; m < 4320; m++) {
    for (let t = 0; t < n / 2; t++) ev.ingestOne({ tenant: `t${t}`, service: 'checkout', spanName: 'POST /checkout', kind: 2, eventTimeMs: start + m * MIN, durationMs: 10, isError: m % 97 === 0, traceId: 'ab' });
  }
  ev.evaluate(start + 4320 * MIN - 1);
  await settleHeap();
  const after = process.memoryUsage();
  const used = (after.heapUsed + after.arrayBuffers) - (before.heapUsed + before.arrayBuffers);
  const typedBytes = ev.sortedStates()[0]!.byteSize();
  if (ev.summaries().length !== n) throw new Error('unexpected state count');
  return { typedBytes, heapBytesPerState: used / n };
}

/** OTLP bytes → decodeTraces → samplesFromTraces (the runner's per-record cost before the core). */
function benchDecodeAndMap(): number {
  const t0ns = Long.fromString('1700000000000000000');
  const spans = Array.from({ length: 1000 }, (_, i) => ({
    traceId: Buffer.alloc(16, i % 251), spanId: Buffer.alloc(8, i % 251), name: 'POST /checkout', kind: 2,
    startTimeUnixNano: t0ns.add(i * 1_000_000), endTimeUnixNano: t0ns.add(i * 1_000_000 + 20_000_000),
    status: { code: i % 200 === 0 ? 2 : 1 },
    attributes: [{ key: 'http.response.status_code', value: { intValue: 200 } }, { key: 'http.route', value: { stringValue: '/checkout' } }],
  }));
  const bytes = types.ExportTraceServiceRequest.encode(types.ExportTraceServiceRequest.fromObject({
    resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] }, scopeSpans: [{ spans }] }],
  })).finish();
  const rounds = 300;
  let n = 0;
  const c0 = process.cpuUsage();
  for (let r = 0; r < rounds; r++) n += samplesFromTraces('t0', decodeTraces(bytes)).length;
  return cpuRate(n, c0);
}

async function benchDispatchLatency(iterations: number): Promise<{ medianMs: number; p99Ms: number }> {
  let resolveHit: (() => void) | undefined;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => { res.writeHead(200).end(); resolveHit?.(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const latencies: number[] = [];
  const cfg = parseSloConfig('slos:\n  - { name: a, tenant: t0, service: checkout, objective: 0.999, sli: { type: availability, spans: {} } }\n');
  for (let it = 0; it < iterations; it++) {
    const ev = new SloEvaluator(cfg);
    const dispatcher = new AlertDispatcher({ alertmanagers: [url] });
    const start = 1_700_000_000_000 + it * 10 * MIN;
    for (let m = 0; m < 60; m++) {
      for (let i = 0; i < 100; i++) ev.ingestOne({ tenant: 't0', service: 'checkout', spanName: 'x', kind: 2, eventTimeMs: start + m * MIN + i, durationMs: 5, isError: m === 59, traceId: 'ab' }); // 1h: 100/6000 > 1.44%
      if (m < 59) dispatcher.handle(ev.evaluate(start + (m + 1) * MIN - 1));
    }
    const hit = new Promise<void>((r) => (resolveHit = r));
    const t0 = performance.now();
    const result = ev.evaluate(start + 60 * MIN - 1); // crosses the page threshold
    dispatcher.handle(result);
    await hit;
    latencies.push(performance.now() - t0);
    if (!result.transitions.some((t) => t.windows === '1h/5m')) throw new Error('benchmark burst did not cross the page threshold');
    await dispatcher.idle();
    dispatcher.close();
  }
  server.close();
  latencies.sort((a, b) => a - b);
  return { medianMs: median(latencies), p99Ms: latencies[Math.floor(latencies.length * 0.99)]! };
}

/** Receiver hot path with and without head sampling: CPU-ns per span of prepareExport (1000-span requests). */
function benchSampling(): { plainNs: number; sampledNs: number; keepNs: number } {
  const spans = Array.from({ length: 1000 }, (_, i) => ({
    traceId: randomBytes(16), spanId: randomBytes(8), name: 'POST /checkout', kind: 2,
    startTimeUnixNano: Long.fromString('1700000000000000000'), endTimeUnixNano: Long.fromString('1700000000020000000'),
    status: { code: i % 200 === 0 ? 2 : 1 },
    attributes: Array.from({ length: 10 }, (_, k) => ({ key: `attr.${k}`, value: { stringValue: `value-${k}-${i}` } })),
  }));
  const body = types.ExportTraceServiceRequest.encode(types.ExportTraceServiceRequest.fromObject({
    resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] }, scopeSpans: [{ spans }] }],
  })).finish();
  const limits = { maxRecordBytes: 1_000_000, maxAttributeValueBytes: 65_536 };
  const threshold = new HeadSampler({ defaultRatio: 0.1, tenants: {} }).thresholdFor('t0')!;
  const rounds = 400;
  const time = (fn: () => void) => { for (let i = 0; i < 20; i++) fn(); const c0 = process.cpuUsage(); for (let r = 0; r < rounds; r++) fn(); const c = process.cpuUsage(c0); return ((c.user + c.system) * 1000) / (rounds * 1000); };
  const plainNs = time(() => prepareExport(signals.traces, body, 't0', limits));
  const sampledNs = time(() => prepareExport(signals.traces, body, 't0', limits, threshold));
  const parsed = parseExportRequest(signals.traces, body, 't0', limits);
  const items = parsed.resources[0]!.scopes[0]!.items;
  let kept = 0;
  const keepNs = time(() => { for (const it of items) if (keepSpan(it.bytes, threshold)) kept++; });
  if (kept === 0) throw new Error('sampling kept nothing');
  return { plainNs, sampledNs, keepNs };
}

/** The runner end to end on a real broker and embedded ClickHouse. */
async function benchRunner(records: number): Promise<{ wallPerSec: number; cpuPerSec: number; spans: number }> {
  const kafka = createKafka({ ...accessFromEnv(), clientId: 'bench-slo' });
  const id = randomBytes(4).toString('hex');
  const topics = { spans: `bench_slo_spans_${id}`, metrics: `bench_slo_metrics_${id}`, sloEvents: `bench_slo_events_${id}`, timelineEvents: `bench_slo_tl_${id}` };
  await ensureTopics(kafka, Object.values(topics).map((name) => ({ name, partitions: 3, replicationFactor: 1 })));
  storeP ??= (async () => { const st = await openStore({ dataPath: mkdtempSync(path.join(os.tmpdir(), 'bench-slo-chdb-')) }); await migrate(st, { timelineTtlDays: 180, otelTtlDays: 30 }); return st; })();
  const store = await storeP;
  // 100 tenants × 2 SLOs; each record = 1000 spans of one tenant within one event-time minute.
  const startMs = Math.floor((Date.now() - records * MIN) / MIN) * MIN;
  const values = Array.from({ length: records }, (_, r) => {
    const tenant = `t${r % TENANTS}`;
    const t0 = startMs + Math.floor(r / TENANTS) * MIN;
    const spans = Array.from({ length: 1000 }, (_, i) => ({
      traceId: randomBytes(16), spanId: randomBytes(8), name: 'POST /checkout', kind: 2,
      startTimeUnixNano: Long.fromNumber(t0 + i * 50).multiply(1_000_000), endTimeUnixNano: Long.fromNumber(t0 + i * 50 + 20).multiply(1_000_000),
      status: { code: i % 200 === 0 ? 2 : 1 },
      attributes: [{ key: 'http.response.status_code', value: { intValue: 200 } }, { key: 'http.route', value: { stringValue: '/checkout' } }],
    }));
    return { tenant, value: Buffer.from(types.ExportTraceServiceRequest.encode(types.ExportTraceServiceRequest.fromObject({
      resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] }, scopeSpans: [{ spans }] }] })).finish()) };
  });
  const producer = new BatchingProducer(kafka, { maxBatchBytes: 900_000 });
  await producer.connect();
  await Promise.all(values.map((v) => producer.send(topics.spans, [{ key: v.tenant, value: v.value, headers: { tenant: v.tenant } }])));
  await producer.disconnect();
  // Timed from the end of the first batch (group join and chdb warm-up excluded) to the last.
  let handled = 0;
  let first = 0;
  let c0 = process.cpuUsage();
  let t0 = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const runner = await startSloRunner({ kafka, config: config(TENANTS), store, topics, groupId: `bench-slo-${id}`, sampler: new HeadSampler(), idleTickMs: 3_600_000,
    beforeCommit: async (recs) => {
      handled += recs.length;
      if (!t0) { t0 = performance.now(); c0 = process.cpuUsage(); first = handled; }
      if (handled >= records) done();
    } });
  await finished;
  const wall = (performance.now() - t0) / 1000;
  const spans = (records - first) * 1000;
  const cpu = process.cpuUsage(c0);
  await runner.stop();
  return { wallPerSec: spans / wall, cpuPerSec: spans / ((cpu.user + cpu.system) / 1e6), spans };
}
let storeP: Promise<Store> | undefined;

/** Size and time of one partition checkpoint (SloCore.checkpoint + base64) with 200 states holding 3 full days. */
function benchCheckpoint(): { bytes: number; base64Bytes: number; ms: number } {
  const core = new SloCore(config(TENANTS));
  const start = 1_700_000_000_000;
  for (let m = 0; m < 4320; m++) {
    for (let t = 0; t < TENANTS; t++) {
      core.evaluator.ingestOne({ tenant: `t${t}`, service: 'checkout', spanName: 'POST /checkout', kind: 2, eventTimeMs: start + m * MIN, durationMs: m % 50 === 0 ? 900 : 10, isError: m % 97 === 0, traceId: 'ab' });
    }
  }
  core.tick(start + 4320 * MIN - 1);
  const t0 = performance.now();
  const bytes = core.checkpoint();
  const b64 = Buffer.from(bytes).toString('base64');
  return { bytes: bytes.length, base64Bytes: b64.length, ms: performance.now() - t0 };
}

async function main(): Promise<void> {
  const startMs = 1_700_000_000_000;
  const samples = makeSamples(SAMPLES, startMs);
  const thr: Throughput[] = [];
  const mem: Awaited<ReturnType<typeof benchStateBytes>>[] = [];
  const lat: Awaited<ReturnType<typeof benchDispatchLatency>>[] = [];
  const dec: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    thr.push(benchThroughput(samples, startMs));
    mem.push(await benchStateBytes());
    lat.push(await benchDispatchLatency(50));
    dec.push(benchDecodeAndMap());
    const t = thr[r]!;
    const m = mem[r]!;
    const l = lat[r]!;
    console.log(`run ${r + 1}: evaluator ${Math.round(t.evaluatorPerCpuSec).toLocaleString('en')}/cpu-s (${Math.round(t.evaluatorPerSec).toLocaleString('en')}/wall-s), ` +
      `golden ${Math.round(t.goldenPerCpuSec).toLocaleString('en')}/cpu-s (${Math.round(t.goldenPerSec).toLocaleString('en')}/wall-s), ` +
      `decode+map ${Math.round(dec[r]!).toLocaleString('en')} spans/s, state ${m.typedBytes} B typed / ${Math.round(m.heapBytesPerState)} B heap, dispatch median ${l.medianMs.toFixed(2)} ms p99 ${l.p99Ms.toFixed(2)} ms`);
  }
  console.log('\nmedians of', RUNS, 'runs on', `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}:`);
  const fmt = (x: number) => Math.round(x).toLocaleString('en');
  console.log(`  evaluator throughput:  ${fmt(median(thr.map((t) => t.evaluatorPerCpuSec)))} samples per CPU-second (wall: ${fmt(median(thr.map((t) => t.evaluatorPerSec)))}/s; ${SAMPLES.toLocaleString('en')} spans, 200 states, 2 SLOs per span)`);
  console.log(`  golden signals:        ${fmt(median(thr.map((t) => t.goldenPerCpuSec)))} samples per CPU-second (wall: ${fmt(median(thr.map((t) => t.goldenPerSec)))}/s)`);
  console.log(`  load average at end:   ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`  OTLP decode + map:     ${Math.round(median(dec)).toLocaleString('en')} spans per CPU-second (decodeTraces + samplesFromTraces, runner side)`);
  console.log(`  state size (3 days):   ${median(mem.map((m) => m.typedBytes)).toLocaleString('en')} B typed arrays, ${Math.round(median(mem.map((m) => m.heapBytesPerState))).toLocaleString('en')} B measured heap per (tenant, SLO)`);
  const cps = Array.from({ length: RUNS }, () => benchCheckpoint());
  console.log(`  runner checkpoint:     ${cps[0]!.bytes.toLocaleString('en')} B (${cps[0]!.base64Bytes.toLocaleString('en')} B base64) for 200 (tenant, SLO) states with 3 full days, ${median(cps.map((c) => c.ms)).toFixed(1)} ms to serialise`);
  const smp = Array.from({ length: RUNS }, () => benchSampling());
  console.log(`  head sampling:         prepareExport ${median(smp.map((x) => x.plainNs)).toFixed(0)} ns/span without, ${median(smp.map((x) => x.sampledNs)).toFixed(0)} ns/span at ratio 0.1 (keep decision alone ${median(smp.map((x) => x.keepNs)).toFixed(0)} ns/span; 10 attributes per span)`);
  if (process.env.KAFKA_BROKERS) {
    const rr: Awaited<ReturnType<typeof benchRunner>>[] = [];
    for (let r = 0; r < RUNS; r++) rr.push(await benchRunner(Number(process.env.RUNNER_RECORDS ?? 300)));
    console.log(`  runner end to end:     ${fmt(median(rr.map((x) => x.cpuPerSec)))} spans per CPU-second, ${fmt(median(rr.map((x) => x.wallPerSec)))} spans/wall-s (${rr[0]!.spans.toLocaleString('en')} spans in 1000-span records, 100 tenants × 2 SLOs, chdb golden signals, checkpoints throttled to 10 s)`);
  } else {
    console.log('  runner end to end:     skipped (set KAFKA_BROKERS to include it)');
  }
  console.log(`  dispatch latency:      median ${median(lat.map((l) => l.medianMs)).toFixed(2)} ms, p99 ${median(lat.map((l) => l.p99Ms)).toFixed(2)} ms (threshold-crossing evaluate → local HTTP receiver)`);
}

await main();
process.exit(0);
