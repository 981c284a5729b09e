// The export half of `npm run bench:intake` (also runnable alone: `tsx bench/intake-exports.ts`):
// orchestrator export submissions per second (issue #13 target ≥ 5k/s per core), in three layers so
// the cost of each shows:
//  1. core: checkExportSubmission (strict parse + contract + one Ed25519 DSSE verify through the real
//     IntakeTrust), signed and unsigned bodies;
//  2. durable: core + the claim with the body in the claim journal (lib/intake/export-claims.ts:
//     group-committed journal), per wall second and per CPU-second; and, in the same rounds, the
//     previous layout (body in its own CAS file through GroupCommitBlobStore, then the claim);
//  3. route: POST /internal/orchestrator/exports through the real HTTP server and Kafka (acks=all):
//     everything a client waits for; reported per wall second and per CPU-second of this process
//     (which also runs the HTTP client: an upper bound on the server's own cost); the body in the
//     claim journal (as `stella run` does) and, alternating with it, in the CAS (the previous layout).
// Each figure is the median of RUNS runs (default 3). Kafka: KAFKA_BROKERS, else a broker is started.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.STELLA_LOG_LEVEL ??= 'warn';
const { accessFromEnv } = await import('../lib/kafka/auth.ts');
const { createKafka, ensureTopics } = await import('../lib/kafka/client.ts');
const { startBroker } = await import('../lib/kafka/broker.ts');
const { sha256Hex, TokenRegistry } = await import('../lib/tenancy.ts');
const { FsBlobStore, GroupCommitBlobStore, sha256Digest } = await import('../lib/cas.ts');
const { ExportClaims } = await import('../lib/intake/export-claims.ts');
const { IntakeTrust } = await import('../lib/intake/trust.ts');
const { publishIntake } = await import('../lib/intake/publish.ts');
const { checkExportSubmission, exportRecord, exportRecordBytes, idempotencyKeyFor } = await import('../processors/intake/exports.ts');
const { startApiServer } = await import('../api/server.ts');
const { registerExportRoutes } = await import('../api/export-routes.ts');
const { openStore } = await import('../lib/store/index.ts');

const RUNS = Number(process.env.RUNS ?? 3);
const N = Number(process.env.BENCH_EXPORTS ?? 4000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const log = (m: string) => process.stderr.write(`[bench:intake exports] ${m}\n`);
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const cpuS = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;

const TENANT = 'bench';
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

interface Figures { coreSigned: number; coreUnsigned: number; durable: number; durableCpu: number; durableCasCpu: number; routeWall: number; routeCpu: number;
  routeCasWall: number; routeCasCpu: number; routeUnsignedCpu: number }

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

  // 3. the route over HTTP and Kafka
  const routeBodies = Array.from({ length: N }, (_, i) => body(i, `${salt}h`, true));
  const topic = `orchestrator.export.created.bench${salt}`;
  const timelineTopic = `timeline_events.bench${salt}`;
  const kafka = createKafka({ ...kafkaAccess, clientId: 'bench-exports', quiet: true });
  await ensureTopics(kafka, [{ name: topic, partitions: 3, replicationFactor: 1 }, { name: timelineTopic, partitions: 3, replicationFactor: 1 }]);
  const store = await openStore({ dataPath: path.join(dir, 'chdb') });
  const token = `bench-token-${salt}`;
  const routeCas = new GroupCommitBlobStore(new FsBlobStore(path.join(dir, `cas-route-${r}`)));
  // Two APIs in one process: bodies in the claim journal (exportRouteDeps' wiring) and, before, in the CAS.
  const routeClaims: InstanceType<typeof ExportClaims>[] = [];
  const startRoute = (inCas: boolean) => startApiServer({ tokens: new TokenRegistry([{ id: TENANT, tokens: [{ sha256: sha256Hex(token), scopes: ['orchestrator:exports:write'] }] }]),
    port: 0, kafka, register: [(router, ctx) => registerExportRoutes(router, { store, claims: (routeClaims[routeClaims.length] = new ExportClaims(path.join(dir, `claims-route-${r}-${inCas}`))), verify,
      ...(inCas ? { putBody: async (tn: string, b: Buffer) => (await routeCas.put(tn, b)).digest } : {}),
      publish: async (p) => { await publishIntake(ctx.producer!, { topic, tenant: p.tenant, value: p.value, timelineEvent: p.timelineEvent, timelineTopic }); } })] });
  const api = await startRoute(false);
  const apiCas = await startRoute(true);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const postTo = (url: string) => (b: Buffer) => new Promise<void>((resolve, reject) => {
    const req = http.request(`${url}/internal/orchestrator/exports`, { method: 'POST', agent,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': String(b.length) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(b);
  });
  const post = postTo(api.url), postCas = postTo(apiCas.url);
  await post(body(0, `${salt}warm`, true)); // connect the producers, warm the paths
  await postCas(body(1, `${salt}warm`, true));
  const routeOnce = async (inCas: boolean): Promise<{ wall: number; cpu: number }> => {
    const bodies = inCas ? routeBodies.map((_, i) => body(i, `${salt}hc`, true)) : routeBodies;
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await pool(bodies, CONCURRENCY, inCas ? postCas : post);
    return { wall: N / (Number(process.hrtime.bigint() - t0) / 1e9), cpu: N / cpuS(process.cpuUsage(c0)) };
  };
  const [rj, rc] = r % 2 === 0 ? [await routeOnce(false), await routeOnce(true)] : (([c, j]) => [j, c])([await routeOnce(true), await routeOnce(false)]);
  // The same with unsigned bodies (signatures: []): the route without the Ed25519 verify.
  const unsignedRoute = Array.from({ length: N }, (_, i) => body(i, `${salt}hu`, false));
  const ucpu0 = process.cpuUsage();
  await pool(unsignedRoute, CONCURRENCY, post);
  const routeUnsignedCpu = N / cpuS(process.cpuUsage(ucpu0));
  agent.destroy();
  await api.close();
  await apiCas.close();
  for (const c of routeClaims) await c.close();
  await store.close();
  return { coreSigned, coreUnsigned, durable, durableCpu, durableCasCpu, routeWall: rj!.wall, routeCpu: rj!.cpu, routeCasWall: rc!.wall, routeCasCpu: rc!.cpu, routeUnsignedCpu };
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
      log(`run ${r + 1} (${r % 2 === 0 ? 'journal first' : 'CAS first'}): core signed ${Math.round(f.coreSigned)}/s, unsigned ${Math.round(f.coreUnsigned)}/s; `
        + `core+claim(body in journal) ${Math.round(f.durable)}/s, ${Math.round(f.durableCpu)}/CPU-s vs body in CAS ${Math.round(f.durableCasCpu)}/CPU-s (${(f.durableCpu / f.durableCasCpu).toFixed(2)}x); `
        + `route ${Math.round(f.routeWall)}/s wall, ${Math.round(f.routeCpu)}/CPU-s vs body in CAS ${Math.round(f.routeCasWall)}/s wall, ${Math.round(f.routeCasCpu)}/CPU-s (${(f.routeCpu / f.routeCasCpu).toFixed(2)}x); `
        + `unsigned ${Math.round(f.routeUnsignedCpu)}/CPU-s`);
      results.push(f);
    }
    const m = (k: keyof Figures) => Math.round(median(results.map((x) => x[k]))).toLocaleString('en');
    return { rows: [
      ['export core: parse + validate + 1 Ed25519 DSSE verify (signed/s, 1 thread)', m('coreSigned'), '—'],
      ['export core: parse + validate, unsigned (/s, 1 thread)', m('coreUnsigned'), '—'],
      [`export core + claim with body in the journal, fdatasynced (/s, ${CONCURRENCY} concurrent)`, m('durable'), '—'],
      ['export core + claim with body in the journal per CPU-second', m('durableCpu'), '—'],
      ['before: core + body in its own CAS file + claim per CPU-second', m('durableCasCpu'), '—'],
      ['durable layer, journal / CAS file (median of per-run CPU ratios)', median(results.map((x) => x.durableCpu / x.durableCasCpu)).toFixed(2) + 'x', '—'],
      [`POST /internal/orchestrator/exports, Kafka-acked (/s wall, ${CONCURRENCY} concurrent)`, m('routeWall'), '≥ 5,000 per core'],
      ['POST ... per CPU-second of the API + client process', m('routeCpu'), '≥ 5,000 per core'],
      ['before: POST with the body in its own CAS file, per CPU-second', m('routeCasCpu'), '—'],
      ['POST, journal / CAS file (median of per-run CPU ratios)', median(results.map((x) => x.routeCpu / x.routeCasCpu)).toFixed(2) + 'x', '—'],
      ['POST ... unsigned bodies, per CPU-second of the API + client process', m('routeUnsignedCpu'), '≥ 5,000 per core'],
    ] };
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
