// Evidence runner throughput on a real broker (not a vitest file; run with
// `KAFKA_BROKERS=host:port npx tsx test/evidence/runner-bench.ts`). Produces N timeline events and
// N/5 clean batches over 8 tenants, then measures the runner consuming, appending, sealing (fsync),
// writing segment rows and committing; then inclusion-proof latency over HTTP.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Partitioners } from 'kafkajs';
import { accessFromEnv } from '../../lib/kafka/auth.ts';
import { createKafka } from '../../lib/kafka/client.ts';
import { registerEvidenceRoutes } from '../../api/evidence-routes.ts';
import { migrate, openStore } from '../../lib/store/index.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { defaultOrigin } from '../../processors/evidence/layout.ts';
import { signerFromSeed } from '../../processors/evidence/note.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { startEvidenceRunner } from '../../processors/evidence/runner.ts';
import { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { startHarness } from './api-harness.ts';

const N = Number(process.env.BENCH_EVENTS ?? 100_000);
const TENANTS = Array.from({ length: 8 }, (_, i) => `bench-${i}`);
const kafka = createKafka({ ...accessFromEnv({ KAFKA_BROKERS: '127.0.0.1:9092', ...process.env }), clientId: 'evidence-bench', quiet: true });
const suffix = randomBytes(3).toString('hex');
const topics = { timeline: `bench_ev_timeline_${suffix}`, clean: `bench_ev_clean_${suffix}` };
const admin = kafka.admin();
await admin.connect();
await admin.createTopics({ topics: [topics.timeline, topics.clean].map((topic) => ({ topic, numPartitions: 3, replicationFactor: 1 })), waitForLeaders: true });
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
await producer.connect();
const expected = new Map<string, number>(TENANTS.map((t) => [t, 0]));
const ids: string[] = [];
for (let off = 0; off < N; off += 5000) {
  const msgs = [];
  for (let i = off; i < Math.min(N, off + 5000); i++) {
    const t = TENANTS[i % TENANTS.length]!;
    const id = randomBytes(16).toString('hex');
    if (t === TENANTS[0]) ids.push(id);
    msgs.push({ key: t, headers: { tenant: t }, value: JSON.stringify({ event_id: id, ts: new Date().toISOString(), ts_unix_nano: String(BigInt(Date.now()) * 1_000_000n),
      tenant_id: t, project_id: 'p', kind: 'job.finished', actor: 'svc:ci', resource_type: 'component', resource_id: `pkg:npm/x@${i}`,
      trace_id: randomBytes(16).toString('hex'), span_id: randomBytes(8).toString('hex'), digest: '', details: { n: i, ok: true }, source: `s/0/${i}#0` }) });
    expected.set(t, expected.get(t)! + 1);
  }
  await producer.send({ topic: topics.timeline, acks: -1, messages: msgs });
  const batches = msgs.slice(0, msgs.length / 5).map((m) => ({ key: m.key, headers: m.headers, value: randomBytes(2048) }));
  for (const b of batches) expected.set(b.key, expected.get(b.key)! + 1);
  await producer.send({ topic: topics.clean, acks: -1, messages: batches });
}
await producer.disconnect();
const total = [...expected.values()].reduce((a, b) => a + b, 0);

const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-ev-bench-'));
const store = await openStore({ dataPath: path.join(dir, 'chdb') });
await migrate(store, { timelineTtlDays: 180, otelTtlDays: 30 });
const evidence = new FsEvidenceStore(path.join(dir, 'evidence'));
const signer = (t: string) => signerFromSeed(defaultOrigin(t), Buffer.alloc(32, 7));
// Baseline: the same records through a bare kafkajs consumer doing nothing (decode cost only).
const bare = kafka.consumer({ groupId: `bench-bare-${suffix}`, maxWaitTimeInMs: 200 });
const cpuB = process.cpuUsage();
await bare.connect();
await bare.subscribe({ topics: [topics.timeline, topics.clean], fromBeginning: true });
let seen = 0;
await new Promise<void>((resolve) => { void bare.run({ eachBatch: async ({ batch }) => { seen += batch.messages.length; if (seen >= total) resolve(); } }); });
const bareCpu = process.cpuUsage(cpuB);
await bare.disconnect();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const runner = await startEvidenceRunner({ kafka, evidenceStore: evidence, store, signer, topics: { timelineEvents: topics.timeline, clean: [topics.clean] },
  groupId: `bench-evidence-${suffix}`, sealEveryEntries: 10_000, sealEverySeconds: 1 });
for (;;) {
  let done = true;
  for (const [t, n] of expected) if (((await new LogReader(evidence, t).latest())?.checkpoint.size ?? 0) < n) { done = false; break; }
  if (done) break;
  await new Promise((r) => setTimeout(r, 50));
}
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const cpuS = (cpu.user + cpu.system) / 1e6;
await runner.stop();

const tok = 'bench-token';
const api = await startHarness(new TokenRegistry([{ id: TENANTS[0]!, tokens: [{ sha256: sha256Hex(tok), scopes: ['evidence:read'] }] }]),
  [(r) => registerEvidenceRoutes(r, { evidence, cases: new FsEvidenceStore(path.join(dir, 'cases')), store })]);
const lat: number[] = [];
for (let i = 0; i < 2000; i++) {
  const id = ids[Math.floor(Math.random() * ids.length)]!;
  const s = performance.now();
  const res = await fetch(`${api.url}/evidence/proof/inclusion?event_id=${id}`, { headers: { authorization: `Bearer ${tok}` } });
  await res.text();
  if (res.status !== 200) throw new Error(`proof ${res.status}`);
  lat.push(performance.now() - s);
}
await api.close();
lat.sort((a, b) => a - b);
const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!.toFixed(3);
console.log(JSON.stringify({ entries: total, bare_consume_cpu_s: ((bareCpu.user + bareCpu.system) / 1e6).toFixed(2), wall_s: wall.toFixed(2), cpu_s: cpuS.toFixed(2), entries_per_wall_s: Math.round(total / wall),
  entries_per_cpu_s: Math.round(total / cpuS), proof_http_p50_ms: q(0.5), proof_http_p99_ms: q(0.99), loadavg: os.loadavg().map((x) => x.toFixed(1)).join(' ') }));
await admin.deleteTopics({ topics: [topics.timeline, topics.clean] }).catch(() => undefined);
await admin.disconnect();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
