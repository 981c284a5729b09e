// The export half of `npm run bench:intake` (also runnable alone: `tsx bench/intake-exports.ts`):
// orchestrator export submissions per second (issue #13 target ≥ 5k/s per core), in three layers so
// the cost of each shows:
//  1. core: checkExportSubmission (strict parse + contract + one Ed25519 DSSE verify through the real
//     IntakeTrust), signed and unsigned bodies;
//  2. durable: core + the claim with the body in the claim journal (lib/intake/export-claims.ts:
//     group-committed journal), per wall second and per CPU-second; and, in the same rounds, the
//     previous layout (body in its own CAS file through GroupCommitBlobStore, then the claim);
//  3. route: POST /internal/orchestrator/exports through the real HTTP server and Kafka (acks=all):
//     everything a client waits for. The API runs in a child process (bench/intake-exports-server.ts,
//     wired as `stella run` wires it, logging at info), the load generator (HTTP client, 64 in flight)
//     here: "per core" = submissions per CPU-second (user + system) of the API server process alone,
//     Kafka broker not counted. Signed and unsigned bodies. BENCH_BASELINE_DIR=<another checkout with
//     this server script> runs that checkout's API in the same runs too, order alternating (A/B).
//     BENCH_SERVER_PROF=<dir>: the API processes write --cpu-prof profiles there.
// Each figure is the median of RUNS runs (default 3). Kafka: KAFKA_BROKERS, else a broker is started.
import { fork } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.STELLA_LOG_LEVEL ??= 'warn';
const { accessEnv, accessFromEnv } = await import('../lib/kafka/auth.ts');
const { createKafka, ensureTopics } = await import('../lib/kafka/client.ts');
const { startBroker } = await import('../lib/kafka/broker.ts');
const { sha256Hex, TokenRegistry } = await import('../lib/tenancy.ts');
const { FsBlobStore, GroupCommitBlobStore, sha256Digest } = await import('../lib/cas.ts');
const { ExportClaims } = await import('../lib/intake/export-claims.ts');
const { IntakeTrust } = await import('../lib/intake/trust.ts');
const { checkExportSubmission, exportRecord, exportRecordBytes, idempotencyKeyFor } = await import('../processors/intake/exports.ts');

const RUNS = Number(process.env.RUNS ?? 3);
const N = Number(process.env.BENCH_EXPORTS ?? 4000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
/** This checkout (its bench/intake-exports-server.ts is the API measured). */
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
/** Another checkout (e.g. a worktree at the commit before a change, with this bench's server script copied in): its API runs in the same runs, order alternating. */
const BASELINE = process.env.BENCH_BASELINE_DIR ? path.resolve(process.env.BENCH_BASELINE_DIR) : undefined;
const log = (m: string) => process.stderr.write(`[bench:intake exports] ${m}\n`);
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const cpuS = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;

const TENANT = 'bench';
/** Issue #13: export submissions per core, i.e. per CPU-second of the API server process. */
const TARGET = 5000;
const KEYID = 'bench-orchestrator';
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const trust = new IntakeTrust({ [TENANT]: { keys: [{ keyid: KEYID, publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() }] } });
const hex = (s: string) => sha256Hex(s);

function pae(type: string, body: Buffer): Buffer { return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} ${type} ${body.length} `), body]); }

/** A realistic export body (~1.4 KB signed): run i of the bench, signed when `signed`. */
function body(i: number, salt: string, signed: boolean): Buffer {
  const runId = `run-${salt}-${i}`;
  const artifactHash = `sha256:${hex(`artifact-${i}`)}`;
  const e: Record<string, unknown> = { runId, jobType: 'build', artifactHash, policyHash: `sha256:${hex('policy')}`,
    startedAt: '2026-12-01T10:00:00Z', completedAt: '2026-12-01T10:05:00.5Z', status: 'succeeded',
    manifestPath: `cas://${TENANT}/${hex(`m${i}`)}`, logsPath: `cas://${TENANT}/${hex(`l${i}`)}`, tenantId: TENANT, environment: 'prod',
    idempotencyKey: idempotencyKeyFor(runId, artifactHash, TENANT), signatures: [] };
  if (signed) {
    const { signatures: _s, ...predicate } = e;
    const st = Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: runId, digest: { sha256: artifactHash.slice(7) } }],
      predicateType: 'https://stella-telemetry.example/orchestrator-export/v1', predicate }));
    const type = 'application/vnd.in-toto+json';
    e.signatures = [{ payload: st.toString('base64'), payloadType: type, signatures: [{ keyid: KEYID, sig: sign(null, pae(type, st), privateKey).toString('base64') }] }];
  }
  return Buffer.from(JSON.stringify(e));
}

async function pool<T>(items: T[], n: number, f: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => { while (next < items.length) await f(items[next++]!); }));
}

interface Figures { coreSigned: number; coreUnsigned: number; durable: number; durableCpu: number; durableCasCpu: number; route: RouteFigures; routeBase?: RouteFigures }

async function run(dir: string, kafkaAccess: ReturnType<typeof accessFromEnv>, r: number): Promise<Figures> {
  const salt = `${r}${randomBytes(3).toString('hex')}`;
  const verify = trust.verifyIntakeEnvelope;
  // 1. core
  const signedBodies = Array.from({ length: N }, (_, i) => body(i, salt, true));
  const unsignedBodies = Array.from({ length: N }, (_, i) => body(i, `${salt}u`, false));
  let t = process.hrtime.bigint();
  for (const b of signedBodies) if (!checkExportSubmission(b, { tenant: TENANT, verify }).ok) throw new Error('bench body refused');
  const coreSigned = N / (Number(process.hrtime.bigint() - t) / 1e9);
  t = process.hrtime.bigint();
  for (const b of unsignedBodies) if (!checkExportSubmission(b, { tenant: TENANT, verify }).ok) throw new Error('bench body refused');
  const coreUnsigned = N / (Number(process.hrtime.bigint() - t) / 1e9);

  // 2. durable: core + claim with the body in the journal (now) vs core + CAS file + claim (before),
  // CONCURRENCY at a time, order alternating by run
  const durableOnce = async (inCas: boolean): Promise<{ wall: number; cpu: number }> => {
    const cas = new GroupCommitBlobStore(new FsBlobStore(path.join(dir, `cas-${r}-${inCas}`)));
    const claims = new ExportClaims(path.join(dir, `claims-${r}-${inCas}`));
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await pool(signedBodies, CONCURRENCY, async (b) => {
      const v = checkExportSubmission(b, { tenant: TENANT, verify });
      if (!v.ok) throw new Error(v.message);
      const digest = inCas ? (await cas.put(TENANT, b)).digest : sha256Digest(b);
      const rec = exportRecord(v, TENANT, BigInt(Date.now()) * 1_000_000n, digest);
      if ((await claims.claim(rec, exportRecordBytes(rec), inCas ? undefined : b)).kind !== 'accepted') throw new Error('claim not accepted');
    });
    const out = { wall: N / (Number(process.hrtime.bigint() - t0) / 1e9), cpu: N / cpuS(process.cpuUsage(c0)) };
    await claims.close();
    return out;
  };
  const [dj, dc] = r % 2 === 0 ? [await durableOnce(false), await durableOnce(true)] : (([c, j]) => [j, c])([await durableOnce(true), await durableOnce(false)]);
  const durable = dj!.wall, durableCpu = dj!.cpu, durableCasCpu = dc!.cpu;

  // 3. the route over HTTP and Kafka, the API in a child process (bench/intake-exports-server.ts):
  // CPU counted is that process's only, the load generator (this process) is not in it.
  const topic = `orchestrator.export.created.bench${salt}`;
  const timelineTopic = `timeline_events.bench${salt}`;
  const kafka = createKafka({ ...kafkaAccess, clientId: 'bench-exports', quiet: true });
  await ensureTopics(kafka, [{ name: topic, partitions: 3, replicationFactor: 1 }, { name: timelineTopic, partitions: 3, replicationFactor: 1 }]);
  const token = `bench-token-${salt}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const sides: ('new' | 'base')[] = BASELINE ? (r % 2 === 0 ? ['new', 'base'] : ['base', 'new']) : ['new'];
  const out: Record<'new' | 'base', RouteFigures | undefined> = { new: undefined, base: undefined };
  for (const side of sides) {
    const server = await startServer(side === 'base' ? BASELINE! : ROOT, path.join(dir, `api-${r}-${side}`), kafkaAccess,
      { tenant: TENANT, token, topic, timelineTopic, profileTag: `${r}-${side}` });
    try {
      const post = (b: Buffer) => new Promise<void>((resolve, reject) => {
        const req = http.request(`${server.url}/internal/orchestrator/exports`, { method: 'POST', agent,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': String(b.length) } }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end(b);
      });
      // Connect the producer, open the journal, warm the paths (not counted).
      await pool(Array.from({ length: 200 }, (_, i) => body(i, `${salt}${side}warm`, i % 2 === 0)), CONCURRENCY, post);
      const measure = async (bodies: Buffer[]): Promise<{ wall: number; cpu: number }> => {
        const c0 = await server.cpu();
        const t0 = process.hrtime.bigint();
        await pool(bodies, CONCURRENCY, post);
        const wall = N / (Number(process.hrtime.bigint() - t0) / 1e9);
        return { wall, cpu: N / (cpuS(await server.cpu()) - cpuS(c0)) };
      };
      const signedBodies = Array.from({ length: N }, (_, i) => body(i, `${salt}${side}h`, true));
      const unsignedBodies = Array.from({ length: N }, (_, i) => body(i, `${salt}${side}hu`, false));
      await server.profile(true);
      const signed = await measure(signedBodies);
      const unsigned = await measure(unsignedBodies);
      await server.profile(false);
      out[side] = { wall: signed.wall, cpu: signed.cpu, unsignedWall: unsigned.wall, unsignedCpu: unsigned.cpu, load: os.loadavg()[0]! };
    } finally {
      await server.stop();
    }
  }
  agent.destroy();
  return { coreSigned, coreUnsigned, durable, durableCpu, durableCasCpu, route: out.new!, ...(out.base ? { routeBase: out.base } : {}) };
}

interface RouteFigures { wall: number; cpu: number; unsignedWall: number; unsignedCpu: number; load: number }

/** Start bench/intake-exports-server.ts of checkout `root` as a child process; resolves when it listens. */
async function startServer(root: string, dir: string, kafkaAccess: ReturnType<typeof accessFromEnv>,
  o: { tenant: string; token: string; topic: string; timelineTopic: string; profileTag: string }): Promise<{ url: string; cpu(): Promise<NodeJS.CpuUsage>; profile(on: boolean): Promise<void>; stop(): Promise<void> }> {
  const child = fork(path.join(root, 'bench', 'intake-exports-server.ts'), [], {
    cwd: root, execArgv: ['--max-semi-space-size=4', '--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: { ...process.env, ...accessEnv(kafkaAccess), BENCH_DIR: dir, BENCH_TENANT: o.tenant, BENCH_TOKEN: o.token, BENCH_KEYID: KEYID,
      BENCH_PUBLIC_KEY: publicKey.export({ type: 'spki', format: 'pem' }).toString(), BENCH_TOPIC: o.topic, BENCH_TIMELINE_TOPIC: o.timelineTopic },
  });
  let seq = 0;
  const waiting = new Map<number, (u: NodeJS.CpuUsage) => void>();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.on('message', (m: { type: string; url?: string; id?: number; usage?: NodeJS.CpuUsage }) => {
      if (m.type === 'ready') resolve(m.url!);
      if (m.type === 'cpu' || m.type === 'profiled') { waiting.get(m.id!)?.(m.usage!); waiting.delete(m.id!); }
    });
    void exited.then((code) => reject(new Error(`bench API server exited (${code}) before listening`)));
  });
  return {
    url,
    cpu: () => new Promise((resolve) => { const id = seq++; waiting.set(id, resolve); child.send({ type: 'cpu', id }); }),
    // BENCH_SERVER_PROF: the child profiles the measured part (Profiler over node:inspector), not its start-up.
    profile: async (on) => {
      if (!process.env.BENCH_SERVER_PROF) return;
      await new Promise((resolve) => { const id = seq++; waiting.set(id, resolve); child.send({ type: 'profile', id, on, tag: o.profileTag }); });
    },
    stop: async () => { child.send({ type: 'stop' }); await exited; },
  };
}

export async function runExportsBench(): Promise<{ rows: [string, string, string][] }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-exports-'));
  let broker: Awaited<ReturnType<typeof startBroker>> | undefined;
  try {
    if (!process.env.KAFKA_BROKERS) broker = await startBroker({ dataDir: path.join(dir, 'kafka'), heapMb: 512, log });
    const access = broker ? broker.access() : accessFromEnv();
    const results: Figures[] = [];
    for (let r = 0; r < RUNS; r++) {
      const f = await run(dir, access, r);
      log(`run ${r + 1}: core signed ${Math.round(f.coreSigned)}/s, unsigned ${Math.round(f.coreUnsigned)}/s; `
        + `core+claim(body in journal) ${Math.round(f.durable)}/s, ${Math.round(f.durableCpu)}/CPU-s vs body in CAS ${Math.round(f.durableCasCpu)}/CPU-s (${(f.durableCpu / f.durableCasCpu).toFixed(2)}x); `
        + `route signed ${Math.round(f.route.wall)}/s wall, ${Math.round(f.route.cpu)}/server-CPU-s, unsigned ${Math.round(f.route.unsignedWall)}/s wall, ${Math.round(f.route.unsignedCpu)}/server-CPU-s (load ${f.route.load.toFixed(1)})`
        + (f.routeBase ? `; baseline signed ${Math.round(f.routeBase.cpu)}/server-CPU-s (new/base ${(f.route.cpu / f.routeBase.cpu).toFixed(2)}x), unsigned ${Math.round(f.routeBase.unsignedCpu)} (${(f.route.unsignedCpu / f.routeBase.unsignedCpu).toFixed(2)}x)` : ''));
      results.push(f);
    }
    const m = (g: (f: Figures) => number) => Math.round(median(results.map(g))).toLocaleString('en');
    const met = (g: (f: Figures) => number) => (median(results.map(g)) >= TARGET ? 'MET' : 'NOT MET');
    const rows: [string, string, string][] = [
      ['export core: parse + validate + 1 Ed25519 DSSE verify (signed/s, 1 thread)', m((f) => f.coreSigned), '—'],
      ['export core: parse + validate, unsigned (/s, 1 thread)', m((f) => f.coreUnsigned), '—'],
      [`export core + claim with body in the journal, fdatasynced (/s, ${CONCURRENCY} concurrent)`, m((f) => f.durable), '—'],
      ['export core + claim with body in the journal per CPU-second', m((f) => f.durableCpu), '—'],
      ['before: core + body in its own CAS file + claim per CPU-second', m((f) => f.durableCasCpu), '—'],
      [`POST /internal/orchestrator/exports signed, Kafka-acked (/s wall, ${CONCURRENCY} concurrent; the API's own process)`, m((f) => f.route.wall), '—'],
      ['POST signed, per CPU-second of the API server process (user+sys; client not counted) = per core', m((f) => f.route.cpu), `≥ 5,000 per core: ${met((f) => f.route.cpu)}`],
      ['POST unsigned (signatures: []), per CPU-second of the API server process = per core', m((f) => f.route.unsignedCpu), `≥ 5,000 per core: ${met((f) => f.route.unsignedCpu)}`],
    ];
    if (BASELINE) {
      const ratio = (g: (f: Figures) => number) => `${median(results.map(g)).toFixed(2)}x (${results.map((f) => g(f).toFixed(2)).join(', ')})`;
      rows.push(['baseline API, POST signed per server CPU-second', m((f) => f.routeBase!.cpu), '—'],
        ['baseline API, POST unsigned per server CPU-second', m((f) => f.routeBase!.unsignedCpu), '—'],
        ['this / baseline, signed, per-run ratios', ratio((f) => f.route.cpu / f.routeBase!.cpu), '—'],
        ['this / baseline, unsigned, per-run ratios', ratio((f) => f.route.unsignedCpu / f.routeBase!.unsignedCpu), '—']);
    }
    rows.push(['load average during the route runs (1 min, per run)', results.map((f) => f.route.load.toFixed(1)).join(', '), '—']);
    return { rows };
  } finally {
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// Run alone when this file is the program.
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const { rows } = await runExportsBench();
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log(`\n${'metric'.padEnd(w)} | median of ${RUNS} | target`);
  for (const [k, v, t] of rows) console.log(`${k.padEnd(w)} | ${v.padStart(12)} | ${t}`);
  process.exit(0);
}
