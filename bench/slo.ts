// SLO core benchmark (npm run bench:slo): single-threaded, so figures are per core.
//  1. samples/s through SloEvaluator.ingest + a per-minute evaluate (200 (tenant, SLO) states,
//     every span matching an availability and a latency SLO), and samples/s through GoldenSignals;
//  2. bytes per (tenant, SLO) state holding a full 3-day window (typed-array size and measured heap);
//  3. alert dispatch latency: from the evaluate() call that crosses the page threshold to the
//     POST arriving at a local HTTP receiver.
// Each figure is the median of RUNS runs. Options: RUNS=5 SAMPLES=2000000.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import os from 'node:os';
import { AlertDispatcher } from '../processors/slo/alert-dispatcher.ts';
import { parseSloConfig, type SloConfig } from '../processors/slo/config.ts';
import { SloEvaluator } from '../processors/slo/evaluator.ts';
import { GoldenSignals } from '../processors/slo/golden-signals.ts';
import type { SpanSample } from '../processors/slo/samples.ts';

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

function benchThroughput(samples: SpanSample[], startMs: number): { evaluatorPerSec: number; goldenPerSec: number; transitions: number } {
  const ev = new SloEvaluator(config(TENANTS));
  let transitions = 0;
  let nextEval = startMs + MIN;
  const batch = 1000;
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

  const g = new GoldenSignals();
  const t1 = performance.now();
  let flushAt = startMs + MIN;
  for (const s of samples) {
    g.add(s);
    if (s.eventTimeMs >= flushAt + MIN) { g.flush(flushAt); flushAt += MIN; }
  }
  const goldenPerSec = samples.length / ((performance.now() - t1) / 1000);
  return { evaluatorPerSec, goldenPerSec, transitions };
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

async function main(): Promise<void> {
  const startMs = 1_700_000_000_000;
  const samples = makeSamples(SAMPLES, startMs);
  const thr: ReturnType<typeof benchThroughput>[] = [];
  const mem: Awaited<ReturnType<typeof benchStateBytes>>[] = [];
  const lat: Awaited<ReturnType<typeof benchDispatchLatency>>[] = [];
  for (let r = 0; r < RUNS; r++) {
    thr.push(benchThroughput(samples, startMs));
    mem.push(await benchStateBytes());
    lat.push(await benchDispatchLatency(50));
    const t = thr[r]!;
    const m = mem[r]!;
    const l = lat[r]!;
    console.log(`run ${r + 1}: evaluator ${Math.round(t.evaluatorPerSec).toLocaleString('en')} samples/s, golden ${Math.round(t.goldenPerSec).toLocaleString('en')} samples/s, ` +
      `state ${m.typedBytes} B typed / ${Math.round(m.heapBytesPerState)} B heap, dispatch median ${l.medianMs.toFixed(2)} ms p99 ${l.p99Ms.toFixed(2)} ms`);
  }
  console.log('\nmedians of', RUNS, 'runs on', `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}:`);
  console.log(`  evaluator throughput:  ${Math.round(median(thr.map((t) => t.evaluatorPerSec))).toLocaleString('en')} samples/s per core (${SAMPLES.toLocaleString('en')} spans, 200 states, 2 SLOs per span)`);
  console.log(`  golden signals:        ${Math.round(median(thr.map((t) => t.goldenPerSec))).toLocaleString('en')} samples/s per core`);
  console.log(`  state size (3 days):   ${median(mem.map((m) => m.typedBytes)).toLocaleString('en')} B typed arrays, ${Math.round(median(mem.map((m) => m.heapBytesPerState))).toLocaleString('en')} B measured heap per (tenant, SLO)`);
  console.log(`  dispatch latency:      median ${median(lat.map((l) => l.medianMs)).toFixed(2)} ms, p99 ${median(lat.map((l) => l.p99Ms)).toFixed(2)} ms (threshold-crossing evaluate → local HTTP receiver)`);
}

await main();
