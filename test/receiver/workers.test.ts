// receiver.workers = 2: `stella run --only receiver` as a Node cluster (receiver/workers.ts), against
// the real broker. Spans sent over gRPC and HTTP through both workers land in Kafka exactly once under
// the sender's tenant; /metrics is the sum over the workers; a worker killed with SIGKILL under load
// costs only the requests it had in flight (none of them acked) and is restarted; SIGTERM drains
// every worker: everything acked is in Kafka. Token reloads and incident mode reach every worker.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig, ConfigError } from '../../lib/config.ts';
import { decodeTraces, signals } from '../../lib/otlp/proto.ts';
import { readAllRecordsAt, kafkaEnv, testAccess, uniq } from '../support/kafka.ts';
import { grpcExport, httpExport, spanObject, tracesRequest } from '../support/otlp.ts';
import { testTenants, TOKENS } from '../support/receiver.ts';
import { runStellaCli } from '../support/stella.ts';

const root = path.resolve(import.meta.dirname, '../..');
const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

interface Stella { child: ChildProcess; grpcPort: number; httpPort: number; adminPort: number; spans: string; env: Record<string, string>; output: () => string; exited: Promise<number | null> }

/** `stella run --only receiver` with two receiver workers and topics of its own. */
async function startStella(): Promise<Stella> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-workers-'));
  dirs.push(dir);
  const prefix = uniq('w');
  const topics = Object.fromEntries(['spans', 'metrics', 'logs', 'spansClean', 'metricsClean', 'logsClean', 'dlq', 'sloEvents', 'timelineEvents',
    'intakeRuntimeFacts', 'orchestratorExports', 'intakeArtifacts', 'intakeSymbols'].map((k) => [k, `${prefix}_${k}`]));
  writeFileSync(path.join(dir, 'stella.json'), JSON.stringify({ tenants: testTenants, receiver: { workers: 2, grpcPort: 0, httpPort: 0 },
    admin: { port: 0 }, kafka: { partitions: 3, topics } }));
  const env: Record<string, string> = { PATH: process.env.PATH!, ...kafkaEnv(), STELLA_CONFIG: path.join(dir, 'stella.json'), STELLA_DATA_DIR: path.join(dir, 'data'), STELLA_LOG_LEVEL: 'info' };
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'cli/stella.ts'), 'run', '--only', 'receiver'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => { out += c.toString('utf8'); });
  child.stderr!.on('data', (c: Buffer) => { out += c.toString('utf8'); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 90_000;
  while (!out.includes('Ready.')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`stella did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const m = /OTLP receiver: gRPC [^:]+:(\d+), HTTP http:\/\/[^:]+:(\d+)/.exec(out)!;
  const admin = /Self-telemetry: http:\/\/[^:]+:(\d+)\/metrics/.exec(out)!;
  return { child, grpcPort: Number(m[1]), httpPort: Number(m[2]), adminPort: Number(admin[1]), spans: topics.spans!, env, output: () => out, exited };
}

/** The primary's receiver workers: its child processes running receiver/worker.ts. */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((d) => {
    try {
      if (Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]) !== pid) return [];
      return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('receiver/worker.ts') ? [Number(d)] : [];
    } catch { return []; }
  });
}

/** Span name -> [tenant of each record it is in], read back from the topic. */
async function landed(topic: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const rec of await readAllRecordsAt(testAccess(), topic)) {
    for (const rs of decodeTraces(rec.value).resourceSpans) {
      const stamped = rs.resource?.attributes?.find((a) => a.key === 'tenant.id')?.value?.stringValue;
      expect(stamped, 'the receiver stamps tenant.id').toBe(rec.key);
      expect(rec.headers.tenant).toBe(rec.key);
      for (const ss of rs.scopeSpans) for (const s of ss.spans) out.set(s.name, [...(out.get(s.name) ?? []), rec.key!]);
    }
  }
  return out;
}

const body = (names: string[]) => tracesRequest([{ scopes: [{ name: 'w', spans: names.map((n) => spanObject(n, { pad: 'x'.repeat(200) })) }] }]);
const metricValue = (text: string, name: string, labels: Record<string, string>): number => {
  const line = text.split('\n').find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line ? Number(line.split(' ').pop()) : 0;
};

/** A client that keeps one connection (so the cluster hands it to one worker) and sends requests one after another. */
function loadClient(kind: 'grpc' | 'http', port: number, token: string) {
  const grpcClient = kind === 'grpc' ? new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) : undefined;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  const send = (b: Uint8Array): Promise<string> => new Promise((resolve) => {
    if (grpcClient) {
      grpcClient.makeUnaryRequest(signals.traces.grpcPath, (x: Buffer) => x, (x: Buffer) => x, Buffer.from(b), md, { deadline: Date.now() + 10_000 },
        (err) => resolve(err ? `grpc ${grpc.status[err.code]}: ${err.details}` : 'ok'));
      return;
    }
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/traces', method: 'POST', agent, timeout: 10_000,
      headers: { 'content-type': 'application/x-protobuf', authorization: `Bearer ${token}`, 'content-length': b.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? 'ok' : `http ${res.statusCode}`));
      res.on('error', (err) => resolve(`http response ${err.message}`));
    });
    req.on('error', (err) => resolve(`http ${err.message}`));
    req.on('timeout', () => req.destroy());
    req.end(b);
  });
  return { send, close: () => { grpcClient?.close(); agent.destroy(); } };
}

/** `refused`: a retryable refusal the receiver answered (503 / UNAVAILABLE: backpressure on a busy box);
 * `dropped`: no answer at all (the connection died under the request). */
interface LoadResult { acked: Map<string, string>; refused: number; dropped: { client: string; at: number; error: string }[]; sent: number }
const isRefusal = (answer: string) => answer === 'http 503' || /^grpc UNAVAILABLE: .*retry later/.test(answer);

/** Clients over both protocols and both tenants, each sending 10-span requests back to back until `until()`. */
async function runLoad(s: Stella, clients: number, until: () => boolean): Promise<LoadResult> {
  const result: LoadResult = { acked: new Map(), refused: 0, dropped: [], sent: 0 };
  const run = uniq('load');
  await Promise.all(Array.from({ length: clients }, async (_, i) => {
    const kind = i % 2 === 0 ? 'grpc' : 'http';
    const tenant = i % 4 < 2 ? 'acme' : 'globex';
    const c = loadClient(kind, kind === 'grpc' ? s.grpcPort : s.httpPort, TOKENS[tenant]);
    try {
      for (let n = 0; !until(); n++) {
        const names = Array.from({ length: 10 }, (_, k) => `${run}-c${i}-${kind}-${tenant}-r${n}-s${k}`);
        result.sent++;
        const answer = await c.send(body(names));
        if (answer === 'ok') for (const name of names) result.acked.set(name, tenant);
        else {
          if (isRefusal(answer)) result.refused++;
          else result.dropped.push({ client: `c${i}`, at: Date.now(), error: answer });
          await new Promise((r) => setTimeout(r, 50)); // as an exporter backs off
        }
      }
    } finally {
      c.close();
    }
  }));
  return result;
}

describe('receiver.workers', () => {
  it('is validated at startup: an integer from 1 to 64 or "auto"', () => {
    expect(buildConfig({}, {}).receiver.workers).toBe(1);
    expect(buildConfig({ receiver: { workers: 3 } }, {}).receiver.workers).toBe(3);
    expect(buildConfig({}, { STELLA_RECEIVER_WORKERS: '2' }).receiver.workers).toBe(2);
    expect(buildConfig({ receiver: { workers: 'auto' } }, {}).receiver.workers).toBe(Math.min(64, os.availableParallelism()));
    for (const bad of [0, 65, 1.5, 'many', -1]) {
      expect(() => buildConfig({ receiver: { workers: bad } }, {})).toThrow(ConfigError);
      expect(() => buildConfig({ receiver: { workers: bad } }, {})).toThrow(/receiver\.workers must be an integer from 1 to 64 or "auto"/);
    }
  });
});

describe('stella run with two receiver workers', () => {
  let s: Stella;
  beforeAll(async () => { s = await startStella(); }, 120_000);
  afterAll(async () => {
    if (s && s.child.exitCode === null) { s.child.kill('SIGTERM'); await s.exited; }
  }, 60_000);

  it('spreads connections over both workers; every span lands once under its tenant; /metrics is the sum; ready', async () => {
    expect(childrenOf(s.child.pid!)).toHaveLength(2);
    const sent = new Map<string, string>();
    let grpcOk = 0;
    let httpOk = 0;
    // A fresh connection per request: the cluster hands them to the workers in turn.
    for (let i = 0; i < 12; i++) {
      const tenant = i % 3 === 0 ? 'globex' : 'acme';
      const names = Array.from({ length: 5 }, (_, k) => `m${i}-${k}`);
      for (const n of names) sent.set(n, tenant);
      if (i % 2 === 0) {
        const a = await grpcExport(s.grpcPort, 'traces', body(names), TOKENS[tenant]);
        expect(a.code).toBe(0);
        grpcOk++;
      } else {
        const r = await httpExport(s.httpPort, '/v1/traces', body(names), { 'content-type': 'application/x-protobuf', authorization: `Bearer ${TOKENS[tenant]}`, connection: 'close' });
        expect(r.status).toBe(200);
        httpOk++;
      }
    }
    const got = await landed(s.spans);
    for (const [name, tenant] of sent) expect(got.get(name), name).toEqual([tenant]);

    const ready = await fetch(`http://127.0.0.1:${s.adminPort}/readyz`);
    expect(ready.status).toBe(200);
    const text = await (await fetch(`http://127.0.0.1:${s.adminPort}/metrics`)).text();
    expect(metricValue(text, 'stella_receiver_requests_total', { protocol: 'grpc', signal: 'traces', code: 'OK' })).toBe(grpcOk);
    expect(metricValue(text, 'stella_receiver_requests_total', { protocol: 'http', signal: 'traces', code: '200' })).toBe(httpOk);
    expect(metricValue(text, 'stella_receiver_items_total', { signal: 'traces', tenant: 'acme', outcome: 'accepted' })).toBe([...sent.values()].filter((t) => t === 'acme').length);
    expect(metricValue(text, 'stella_receiver_items_total', { signal: 'traces', tenant: 'globex', outcome: 'accepted' })).toBe([...sent.values()].filter((t) => t === 'globex').length);
    expect(metricValue(text, 'stella_receiver_workers', {})).toBe(2);
    expect(metricValue(text, 'stella_kafka_up', {})).toBe(1);
    // One series per name and label set: the workers' samples were merged, not listed side by side.
    expect(text.split('\n').filter((l) => l.startsWith('stella_receiver_requests_total{protocol="grpc",signal="traces",code="OK"}'))).toHaveLength(1);
  });

  it('a token created with `stella tokens` while running is accepted by every worker', async () => {
    const created = await runStellaCli(['tokens', 'create', '--tenant', 'globex', '--scopes', 'otlp:write', '--output', 'json'], { ...s.env, STELLA_LOG_LEVEL: 'silent' });
    expect(created.code, created.stderr).toBe(0);
    const { token } = JSON.parse(created.stdout) as { token: string };
    // Fresh connections alternate between the workers: four in a row must all be accepted.
    const deadline = Date.now() + 15_000;
    let streak = 0;
    while (streak < 4) {
      const r = await httpExport(s.httpPort, '/v1/traces', body([uniq('tok')]), { 'content-type': 'application/x-protobuf', authorization: `Bearer ${token}`, connection: 'close' });
      streak = r.status === 200 ? streak + 1 : 0;
      if (streak === 0) {
        expect(r.status).toBe(401);
        if (Date.now() > deadline) throw new Error('the new token was not accepted by every worker within 15 s');
        await new Promise((res) => setTimeout(res, 100));
      }
    }
  });

  it('SIGKILL of one worker under load: only requests in flight fail, no acked span is lost, the worker is restarted', async () => {
    const [victim, survivor] = childrenOf(s.child.pid!);
    let stop = false;
    let killedAt = 0;
    const load = runLoad(s, 8, () => stop);
    await new Promise((r) => setTimeout(r, 1500));
    process.kill(victim!, 'SIGKILL');
    killedAt = Date.now();
    // Not ready while a worker is missing.
    let sawNotReady = false;
    for (let i = 0; i < 20 && !sawNotReady; i++) {
      const r = await fetch(`http://127.0.0.1:${s.adminPort}/readyz`);
      if (r.status === 503) { sawNotReady = true; expect(await r.text()).toMatch(/worker \d: not listening/); }
      else await new Promise((res) => setTimeout(res, 20));
    }
    expect(sawNotReady).toBe(true);
    // Restarted: two workers again (a new pid beside the survivor), ready.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const pids = childrenOf(s.child.pid!);
      if (pids.length === 2 && pids.includes(survivor!) && (await fetch(`http://127.0.0.1:${s.adminPort}/readyz`)).status === 200) break;
      if (Date.now() > deadline) throw new Error(`the killed worker was not replaced:\n${s.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1000)); // load through the replacement too
    stop = true;
    const r = await load;
    expect(r.acked.size).toBeGreaterThan(0);
    // Each client had one request in flight at the kill: those on the killed worker's connections got
    // no answer, once each, at the kill; then they reconnected (to the survivor or the replacement).
    const dropped = JSON.stringify(r.dropped.map((f) => [f.client, f.at - killedAt, f.error]));
    expect(r.dropped.length, dropped).toBeGreaterThan(0);
    for (const f of r.dropped) expect(f.at - killedAt, dropped).toBeGreaterThanOrEqual(0);
    for (const f of r.dropped) expect(f.at - killedAt, dropped).toBeLessThan(2000);
    const perClient = new Map<string, number>();
    for (const f of r.dropped) perClient.set(f.client, (perClient.get(f.client) ?? 0) + 1);
    for (const n of perClient.values()) expect(n, dropped).toBe(1);
    const got = await landed(s.spans);
    for (const [name, tenant] of r.acked) expect(got.get(name), `acked span ${name}`).toEqual([tenant]);
    expect(s.output()).toMatch(/receiver worker died; restarting it/);
  }, 120_000);

  it('SIGTERM under load: every worker drains, everything acked is in Kafka, exit 0', async () => {
    const pids = childrenOf(s.child.pid!);
    let stop = false;
    const load = runLoad(s, 6, () => stop);
    await new Promise((r) => setTimeout(r, 1500));
    s.child.kill('SIGTERM');
    const code = await s.exited;
    stop = true;
    const r = await load;
    expect(code, s.output().slice(-3000)).toBe(0);
    // Drained, not cut off: busy keep-alive connections were closed after their answer.
    expect(s.output()).not.toMatch(/did not drain in time/);
    for (const pid of pids) expect(() => process.kill(pid, 0), `worker ${pid} exited`).toThrow();
    expect(r.acked.size).toBeGreaterThan(0);
    const got = await landed(s.spans);
    for (const [name, tenant] of r.acked) expect(got.get(name), `acked span ${name}`).toEqual([tenant]);
  }, 120_000);
});

describe('startReceiverWorkers in a test process', () => {
  it('incident mode from the SLO runner reaches the head sampler of every worker', async () => {
    const { testConfig } = await import('../support/receiver.ts');
    const { ensurePipelineTopics } = await import('../../lib/kafka/setup.ts');
    const { startReceiverWorkers } = await import('../../receiver/workers.ts');
    const cfg = testConfig({ sampling: { defaultRatio: 0 } });
    await ensurePipelineTopics(testAccess(), cfg.kafka, ['spans']);
    const workers = await startReceiverWorkers({ cfg, access: testAccess(), tenants: cfg.tenants, workers: 2 });
    try {
      expect(workers.pids()).toHaveLength(2);
      // Fresh connections alternate between the workers; ratio 0 drops every non-error span.
      const sendFour = async (tag: string) => {
        for (let i = 0; i < 4; i++) {
          const a = await grpcExport(workers.grpcPort, 'traces', body([`${tag}-${i}`]), TOKENS.acme);
          expect(a.code).toBe(0);
        }
      };
      await sendFour('before');
      workers.incidents.setIncident('acme', Date.now() + 600_000);
      await new Promise((r) => setTimeout(r, 200)); // the message reaches the workers
      await sendFour('during');
      workers.incidents.clearIncident('acme');
      await new Promise((r) => setTimeout(r, 200));
      await sendFour('after');
      const got = await landed(cfg.kafka.topics.spans);
      expect([...got.keys()].sort()).toEqual(['during-0', 'during-1', 'during-2', 'during-3']);
    } finally {
      await workers.close();
    }
  }, 120_000);
});
