// npm run bench:timeline — the timeline's three figures (docs/timeline.md, BENCHMARKS.md):
//  1. events/s into the embedded engine: decode + derive (pure core) + batched insert of OTLP log
//     batches carrying events (also written to otel_logs, as the runner does);
//  2. accept-to-queryable latency at a steady 10k events/s end to end: produce to a clean topic
//     (accepted = Kafka acked), the real timeline runner stores it, a poller sees it in ClickHouse;
//  3. GET /timeline p95 for a one-day window of one tenant among 10M rows of 100 tenants, through
//     the real HTTP API (rows generated inside the engine with INSERT ... SELECT FROM numbers()).
// Each figure is the median of RUNS runs (default 3). Kafka: KAFKA_BROKERS, else a broker is started.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Long from 'long';
import type { Kafka } from 'kafkajs';
import { accessFromEnv } from '../lib/kafka/auth.ts';
import { createKafka } from '../lib/kafka/client.ts';
import type { Store } from '../lib/store/index.ts';

// Project modules create their loggers at import time: quiet them (stdout carries the result table)
// before importing them.
process.env.STELLA_LOG_LEVEL ??= 'warn';
const { encode } = await import('../lib/otlp/proto.ts');
const { sha256Hex, TokenRegistry } = await import('../lib/tenancy.ts');
const { startBroker } = await import('../lib/kafka/broker.ts');
const { BatchWriter, migrate, openStore, TABLES, timelineInsertRow } = await import('../lib/store/index.ts');
const { mergeTransformed, transformRecord } = await import('../processors/timeline/transform.ts');
const { startTimelineRunner } = await import('../processors/timeline/runner.ts');
const { startApiServer } = await import('../api/server.ts');
const { registerTimelineRoutes } = await import('../api/timeline-routes.ts');
type RunningBroker = Awaited<ReturnType<typeof startBroker>>;

const RUNS = Number(process.env.RUNS ?? 3);
const ROWS = Number(process.env.BENCH_ROWS ?? 10_000_000);
const TENANTS = 100;
const RATE = Number(process.env.BENCH_RATE ?? 10_000);
const STEADY_S = Number(process.env.BENCH_STEADY_S ?? 15);
const MS = 1_000_000n;
/** Comma-separated subset of ingest,latency,query (default all), for profiling one phase. */
const PHASES = new Set((process.env.BENCH_PHASES ?? 'ingest,latency,query').split(','));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!; };
const nowNs = () => BigInt(Date.now()) * MS;
const log = (m: string) => process.stderr.write(`[bench:timeline] ${m}\n`);

function logsRecord(tenant: string, batch: string, n: number, t0: bigint): Buffer {
  const kv = (key: string, v: string) => ({ key, value: { stringValue: v } });
  return Buffer.from(encode('logs', { resourceLogs: [{ resource: { attributes: [kv('service.name', 'bench'), kv('tenant.id', tenant)] },
    scopeLogs: [{ scope: { name: 'bench' }, logRecords: Array.from({ length: n }, (_, i) => ({
      timeUnixNano: Long.fromString((t0 + BigInt(i)).toString(), true), severityNumber: 9, severityText: 'INFO',
      body: { stringValue: `policy decision ${i}` }, eventName: i % 2 ? 'policy.decision' : 'job.note',
      attributes: [kv('stella.resource.type', 'batch'), kv('stella.resource.id', batch), kv('stella.actor', 'svc:bench'), kv('seq', String(i))],
    })) }] }] }));
}

const cpuSeconds = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;

/** Wall-clock events/s, and events per CPU-second of this process (all threads: JS, GC, chdb). */
async function ingestThroughput(store: Store): Promise<{ wall: number; perCpu: number }> {
  const tenant = `ingest${randomBytes(3).toString('hex')}`;
  const records = 400; const perRecord = 500; // 200k events
  const t0 = nowNs();
  const bufs = Array.from({ length: records }, (_, i) => logsRecord(tenant, `b${i}`, perRecord, t0 + BigInt(i * perRecord)));
  const writer = new BatchWriter(store, { maxRows: 50_000, maxDelayMs: 25 });
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  let transformMs = 0;
  const pending: Promise<void>[] = [];
  for (let i = 0; i < records; i += 20) {
    // One Kafka-batch-sized chunk at a time, as the runner would see them.
    const tt = performance.now();
    const out = mergeTransformed(bufs.slice(i, i + 20).map((value, k) => transformRecord('logs', { topic: 'b', partition: 0, offset: String(i + k), key: tenant, value, headers: { tenant } })));
    transformMs += performance.now() - tt;
    pending.push(writer.write(TABLES.timelineEvents, out.events.map(timelineInsertRow)));
    for (const [t, rows] of out.rows) pending.push(writer.write(t, rows));
    if (pending.length > 8) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  const secs = (performance.now() - start) / 1000;
  const cpu = cpuSeconds(process.cpuUsage(cpu0));
  log(`ingest: ${(transformMs / 1000).toFixed(1)} s of ${secs.toFixed(1)} s in decode + derive`);
  const n = Number((await store.selectRows<{ n: string }>('SELECT count() AS n FROM timeline_events WHERE tenant_id = {t:String}', { t: tenant }))[0]!.n);
  if (n !== records * perRecord) throw new Error(`expected ${records * perRecord} rows, found ${n}`);
  return { wall: (records * perRecord) / secs, perCpu: (records * perRecord) / cpu };
}

async function steadyLatency(store: Store, kafka: Kafka): Promise<{ p50: number; p99: number; achieved: number; cpuCores: number }> {
  const suffix = randomBytes(4).toString('hex');
  const topics = { spans: `b_spans_${suffix}`, logs: `b_logs_${suffix}`, metrics: `b_metrics_${suffix}`, timelineEvents: `b_tl_${suffix}`, dlq: `b_dlq_${suffix}` };
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: Object.values(topics).map((topic) => ({ topic, numPartitions: 3, replicationFactor: 1 })), waitForLeaders: true });
  await admin.disconnect();
  const runner = await startTimelineRunner({ kafka, store, topics, groupId: `bench-${suffix}`, ...(process.env.BENCH_WRITER_DELAY_MS ? { writer: { maxDelayMs: Number(process.env.BENCH_WRITER_DELAY_MS) } } : {}) });
  // Pipelined (non-idempotent) producer: ordering across records does not matter to the measurement.
  const producer = kafka.producer({ maxInFlightRequests: 5 });
  await producer.connect();
  const tenant = `lat${suffix}`;
  const perRecord = 200; // 50 records/s x 200 events = 10k events/s
  const intervalMs = (perRecord / RATE) * 1000;
  const accepted = new Map<string, number>();
  const createdNs = new Map<string, bigint>(); // batch -> event time of its first event
  const latencies: number[] = [];
  let stop = false;
  const poller = (async () => {
    while (!stop || accepted.size > 0) {
      // Scan only from the oldest batch still pending (event time = creation time), so the
      // poller's own cost stays flat instead of growing with the table.
      let since: bigint | undefined;
      for (const b of accepted.keys()) { const c = createdNs.get(b)!; if (since === undefined || c < since) since = c; }
      if (since !== undefined) {
        const rows = await store.selectRows<{ r: string }>(
          'SELECT DISTINCT resource_id AS r FROM timeline_events WHERE tenant_id = {t:String} AND ts >= fromUnixTimestamp64Nano({s:Int64})', { t: tenant, s: since.toString() });
        const now = performance.now();
        for (const { r } of rows) { const a = accepted.get(r); if (a !== undefined) { latencies.push(now - a); accepted.delete(r); } }
      }
      await new Promise((res) => setTimeout(res, 20));
    }
  })();
  // The load is encoded before the clock starts (in production the receiver, another process,
  // does that); each record's event times are its planned send time.
  const total = Math.ceil((STEADY_S * 1000) / intervalMs);
  const planStartNs = nowNs() + 2000n * MS;
  const planned = Array.from({ length: total }, (_, i) => {
    const created = planStartNs + BigInt(Math.round(i * intervalMs)) * MS;
    createdNs.set(`s${i}`, created);
    return logsRecord(tenant, `s${i}`, perRecord, created);
  });
  while (nowNs() < planStartNs) await new Promise((r) => setTimeout(r, 5));
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  let sent = 0;
  const inFlight: Promise<unknown>[] = [];
  while (sent < total) {
    const due = start + sent * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const batch = `s${sent}`;
    const value = planned[sent]!;
    inFlight.push(producer.send({ topic: topics.logs, acks: -1, messages: [{ key: tenant, value, headers: { tenant } }] })
      .then(() => accepted.set(batch, performance.now())));
    sent++;
    if (inFlight.length > 200) await Promise.all(inFlight.splice(0, 100));
  }
  await Promise.all(inFlight);
  const elapsed = (performance.now() - start) / 1000;
  const cpuCores = cpuSeconds(process.cpuUsage(cpu0)) / elapsed;
  const deadline = Date.now() + 30_000;
  while (accepted.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  stop = true;
  accepted.clear();
  await poller;
  await producer.disconnect();
  await runner.stop();
  return { p50: pct(latencies, 50), p99: pct(latencies, 99), achieved: (sent * perRecord) / elapsed, cpuCores };
}

async function generateRows(store: Store, rows: number): Promise<{ start: bigint; seconds: number }> {
  // 100 tenants (bt000..bt099), 7 days ending now, kinds and resources drawn from small sets.
  const end = nowNs();
  const start = end - 7n * 86_400_000n * MS;
  const t0 = performance.now();
  await store.command(`INSERT INTO timeline_events (event_id, ts, tenant_id, project_id, kind, actor, resource_type, resource_id, trace_id, span_id, digest, details, source)
    SELECT lower(hex(MD5(toString(number)))) AS event_id,
      fromUnixTimestamp64Nano(toInt64({start:Int64} + intDiv(number, ${TENANTS}) * intDiv({span:Int64}, {per:Int64}) + (number % 997))) AS ts,
      concat('bt', leftPad(toString(number % ${TENANTS}), 3, '0')) AS tenant_id,
      concat('proj-', toString(number % 7)) AS project_id,
      ['policy.changed','policy.decision','job.started','job.finished','job.failed','sbom.generated','advisory.linked','export.completed'][(intDiv(number, 100) % 8) + 1] AS kind,
      concat('user:', toString(number % 13)) AS actor, 'component' AS resource_type, concat('pkg:npm/c', toString(number % 5000)) AS resource_id,
      lower(hex(MD5(toString(intDiv(number, 10))))) AS trace_id, substring(lower(hex(MD5(toString(number + 1)))), 1, 16) AS span_id,
      lower(hex(SHA256(toString(number)))) AS digest, '{"body":"generated"}' AS details, 'bench' AS source
    FROM numbers({rows:UInt64})`, { start: start.toString(), span: (end - start).toString(), per: String(rows / TENANTS), rows });
  return { start, seconds: (performance.now() - t0) / 1000 };
}

async function apiP95(url: string, token: string, start: bigint, requests: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < requests; i++) {
    const tenant = `bt${String(i % TENANTS).padStart(3, '0')}`;
    const day = BigInt(i % 6);
    const from = start + day * 86_400_000n * MS + 3_600_000n * MS;
    const to = from + 86_400_000n * MS;
    const t = performance.now();
    const res = await fetch(`${url}/timeline?tenant=${tenant}&from=${from}&to=${to}&limit=100`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { events: unknown[] };
    times.push(performance.now() - t);
    if (res.status !== 200 || body.events.length !== 100) throw new Error(`unexpected answer ${res.status} with ${body.events?.length} events`);
  }
  return pct(times, 95);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-bench-timeline-'));
  let broker: RunningBroker | undefined;
  try {
    const store = await openStore({ dataPath: path.join(dir, 'chdb') });
    await migrate(store, { timelineTtlDays: 180, otelTtlDays: 30 });
    if (!process.env.KAFKA_BROKERS) broker = await startBroker({ dataDir: path.join(dir, 'kafka'), heapMb: 512, log });
    const kafka = createKafka({ ...(broker ? broker.access() : accessFromEnv()), clientId: 'bench-timeline', quiet: true });

    const ingest: { wall: number; perCpu: number }[] = [];
    for (let r = 0; r < RUNS && PHASES.has('ingest'); r++) { ingest.push(await ingestThroughput(store)); log(`ingest run ${r + 1}: ${ingest[r]!.wall.toFixed(0)} events/s, ${ingest[r]!.perCpu.toFixed(0)} per CPU-second`); }
    const lat: { p50: number; p99: number; achieved: number; cpuCores: number }[] = [];
    for (let r = 0; r < RUNS && PHASES.has('latency'); r++) {
      lat.push(await steadyLatency(store, kafka));
      log(`latency run ${r + 1}: p50 ${lat[r]!.p50.toFixed(0)} ms, p99 ${lat[r]!.p99.toFixed(0)} ms at ${lat[r]!.achieved.toFixed(0)} events/s using ${lat[r]!.cpuCores.toFixed(2)} cores`);
    }

    if (!PHASES.has('query')) { log(JSON.stringify({ ingest, lat })); return; }
    const gen = await generateRows(store, ROWS);
    const parts = (await store.selectRows<{ n: string }>("SELECT count() AS n FROM system.parts WHERE active AND table = 'timeline_events'"))[0]!.n;
    log(`generated ${ROWS} rows of ${TENANTS} tenants in ${gen.seconds.toFixed(1)} s (${parts} active parts)`);
    const token = 'bench-admin-token';
    const tokens = new TokenRegistry([{ id: 'bt000', tokens: [{ sha256: sha256Hex(token), name: 'bench',
      scopes: Array.from({ length: TENANTS }, (_, i) => `timeline:read#tenant/bt${String(i).padStart(3, '0')}`) }] }]);
    const api = await startApiServer({ tokens, port: 0, register: [(r) => registerTimelineRoutes(r, { store })] });
    await apiP95(api.url, token, gen.start, 20); // warm-up
    const p95s: number[] = [];
    for (let r = 0; r < RUNS; r++) { p95s.push(await apiP95(api.url, token, gen.start, 200)); log(`GET /timeline run ${r + 1}: p95 ${p95s[r]!.toFixed(1)} ms`); }
    await api.close();

    const m = { ingest: median(ingest.map((i) => i.wall)), ingestCpu: median(ingest.map((i) => i.perCpu)), cores: median(lat.map((l) => l.cpuCores)), p50: median(lat.map((l) => l.p50)), p99: median(lat.map((l) => l.p99)), rate: median(lat.map((l) => l.achieved)), p95: median(p95s) };
    process.stdout.write([
      `| figure | median of ${RUNS} runs | target |`, '|---|---|---|',
      `| events/s into the embedded engine (decode + derive + insert timeline_events and otel_logs), wall clock | ${m.ingest.toFixed(0)} | - |`,
      `| the same, per CPU-second of the process (all threads) | ${m.ingestCpu.toFixed(0)} | - |`,
      `| accept-to-queryable p50 at ${m.rate.toFixed(0)} events/s steady (${STEADY_S} s) | ${m.p50.toFixed(0)} ms | - |`,
      `| accept-to-queryable p99 at ${m.rate.toFixed(0)} events/s steady | ${m.p99.toFixed(0)} ms | < 2000 ms |`,
      `| CPU used by the whole pipeline process at that rate (producer, runner, engine, poller) | ${m.cores.toFixed(2)} cores | - |`,
      `| GET /timeline p95, one-day window of one tenant, ${ROWS.toLocaleString('en')} rows of ${TENANTS} tenants (200 requests/run) | ${m.p95.toFixed(1)} ms | < 100 ms |`,
      '',
    ].join('\n'));
  } finally {
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}

await main().catch((err) => { process.stderr.write(`${(err as Error).stack ?? String(err)}\n`); process.exit(1); });
