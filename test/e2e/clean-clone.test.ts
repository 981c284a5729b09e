// The newcomer's path, from a clean clone in a temp dir: `npm ci && npm start` reaches "Ready."
// with no KAFKA_BROKERS (the project starts its own broker), `npm run demo` produces a bundle that
// verifies offline, and SIGTERM to `npm start` exits 0 with nothing unsealed or uncommitted.
//
// It clones the committed HEAD of the repository the test runs in (uncommitted edits are not in
// it). Affordable on purpose: npm ci reads the npm cache (--prefer-offline), and the clone uses this
// checkout's Kafka jars (STELLA_CACHE_DIR=<root>/.cache, fetched by `npm run kafka:fetch` or by the
// test setup) instead of fetching them with Maven again.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createKafka } from '../../lib/kafka/client.ts';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stopLeftoverBroker } from '../../cli/local-broker.ts';
import { startBroker, type RunningBroker } from '../../lib/kafka/broker.ts';
import { groupLag } from '../../lib/kafka/drain.ts';
import { defaultTopicNames as T, H } from '../../lib/kafka/topics.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { cleanEnv, groupSignal, run, runToEnd, type Proc } from '../support/clean-clone.ts';
import { readRecordsAt } from '../support/kafka.ts';

const root = execFileSync('git', ['rev-parse', '--show-toplevel'], { cwd: import.meta.dirname, encoding: 'utf8' }).trim();
const work = mkdtempSync(path.join(os.tmpdir(), 'stella-clone-'));
const clone = path.join(work, 'repo');
const dataDir = path.join(work, 'data');
const say = (m: string) => process.stderr.write(`[clean-clone] ${m}\n`);

let env: NodeJS.ProcessEnv;
let start: Proc | undefined;
let ports = { grpc: 0, http: 0, api: 0, admin: 0 };
let token = '';
let checkBroker: RunningBroker | undefined;

// The consumer groups of `npm start` (no `slo` section: the SLO processor runs the default catalog) and what each consumes.
const GROUPS: Record<string, string[]> = {
  'stella-scrub': [T.spans, T.metrics, T.logs],
  'stella-timeline': [T.spansClean, T.logsClean, T.metricsClean, T.timelineEvents],
  'stella-evidence': [T.timelineEvents, T.spansClean, T.logsClean, T.metricsClean],
  // On by default since the default SLO catalog: its group must have committed everything too.
  'stella-slo': [T.spansClean, T.metricsClean],
};

beforeAll(async () => {
  say(`cloning ${root} (HEAD) into ${clone}`);
  execFileSync('git', ['clone', '--quiet', root, clone], { stdio: ['ignore', 'ignore', 'inherit'] });
  // One setting off the defaults: seal every 2 s, not 60 s, so the demo's wait for a seal is short.
  writeFileSync(path.join(work, 'stella.yaml'), 'evidence:\n  sealEverySeconds: 2\n');
  env = cleanEnv({
    STELLA_CACHE_DIR: path.join(root, '.cache'),
    STELLA_DATA_DIR: dataDir,
    STELLA_CONFIG: path.join(work, 'stella.yaml'),
    // Ports 0: the pipeline binds free ports itself and prints them (read below). Ports picked free
    // here first could be taken by another test before npm start bound them (EADDRINUSE).
    STELLA_GRPC_PORT: '0', STELLA_HTTP_PORT: '0', STELLA_API_PORT: '0', STELLA_ADMIN_PORT: '0',
  });
  const ci = await runToEnd('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: clone, env, timeoutMs: 240_000 });
  say(`npm ci in the clone: exit ${ci.code} in ${(ci.ms / 1000).toFixed(1)} s`);
  if (ci.code !== 0) throw new Error(`npm ci failed (${ci.code}):\n${ci.stdout}\n${ci.stderr}`);
}, 300_000);

afterAll(async () => {
  start?.killGroup();
  // The broker runs in a process group of its own (a terminal's Ctrl-C reaches only stella): stop it if a failed test left it.
  await stopLeftoverBroker(path.join(dataDir, 'kafka'), say);
  await checkBroker?.stop();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

it('npm start reaches Ready, with its own Kafka broker and a demo token printed once', async () => {
  const t0 = Date.now();
  start = run('npm', ['start'], { cwd: clone, env });
  await start.waitFor(/^Ready\. /m, 180_000);
  say(`npm start ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  expect(start.stdout).toMatch(/^Kafka: 127\.0\.0\.1:\d+ \(local broker started by stella\)$/m);
  const receiver = /^OTLP receiver: gRPC 127\.0\.0\.1:(\d+), HTTP http:\/\/127\.0\.0\.1:(\d+)$/m.exec(start.stdout);
  const api = /^API: http:\/\/127\.0\.0\.1:(\d+) /m.exec(start.stdout);
  const admin = /^Self-telemetry: http:\/\/127\.0\.0\.1:(\d+)\/metrics/m.exec(start.stdout);
  expect(receiver && api && admin, start.stdout).toBeTruthy();
  ports = { grpc: Number(receiver![1]), http: Number(receiver![2]), api: Number(api![1]), admin: Number(admin![1]) };
  const m = start.stdout.match(/^ {2}STELLA_TOKEN=(stella_demo_\S+)$/m);
  expect(m).not.toBeNull();
  token = m![1]!;
  expect(start.stdout.split(token).length - 1).toBe(1); // printed once
  expect(existsSync(path.join(dataDir, 'kafka', 'identity.json'))).toBe(true); // broker data under STELLA_DATA_DIR
  expect((await fetch(`http://127.0.0.1:${ports.admin}/readyz`)).status).toBe(200);
}, 200_000);

it('npm run demo: the bundle it writes verifies offline, also with `stella forensic verify`', async () => {
  expect(token).not.toBe('');
  const demo = await runToEnd('npm', ['run', 'demo'], { cwd: clone, timeoutMs: 150_000,
    env: { ...env, STELLA_TOKEN: token, STELLA_OTLP_HTTP: `http://127.0.0.1:${ports.http}`, STELLA_API_URL: `http://127.0.0.1:${ports.api}` } });
  say(`npm run demo: exit ${demo.code} in ${(demo.ms / 1000).toFixed(1)} s`);
  expect(demo.code, demo.stdout + demo.stderr).toBe(0);
  expect(demo.stdout).toMatch(/^Offline verification: OK /m);
  // No silent wait: the default SLO catalog is listed (no slo section in the config) and the seal wait is reported.
  expect(demo.stdout).toMatch(/^SLOs \(GET \S+\/obs\/slo; stella slo list\): 8, /m);
  expect(demo.stdout).toMatch(/^ {2}policy-evaluation-availability +policy-evaluation +objective 99\.9%$/m);
  expect(demo.stdout).toMatch(/^Sealed after \d+ s of waiting\.$/m);
  expect(demo.stdout).toMatch(/^ {2}stella-telemetry\.example\/tenants\/demo\n {2}[1-9]\d*\n/m); // the signed checkpoint
  const [, bundle, trust] = demo.stdout.match(/^verify offline: stella forensic verify (\S+\.tar\.gz) --trust (\S+\.json)$/m) ?? [];
  expect(bundle).toBeDefined();
  const verify = await runToEnd('npm', ['run', '--silent', 'stella', '--', 'forensic', 'verify', bundle!, '--trust', trust!], { cwd: clone, env, timeoutMs: 60_000 });
  expect(verify.code, verify.stdout + verify.stderr).toBe(0);
}, 200_000);

let acked = 0;
let stopped = false;

it('SIGTERM to npm start right after a burst of telemetry: "Stopped.", exit 0, no process left behind', async () => {
  expect(start).toBeDefined();
  // Telemetry the receiver acknowledged (so it is in Kafka) just before the signal: the drain must
  // carry it through scrub, timeline and evidence before the pipeline exits.
  const now = BigInt(Date.now()) * 1_000_000n;
  // As an OTLP exporter does: a 503 (the receiver's backpressure on a loaded box) is retried after its Retry-After.
  const post = async (body: string): Promise<number> => {
    for (let attempt = 0; ; attempt++) {
      const r = await fetch(`http://127.0.0.1:${ports.http}/v1/logs`, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
      await r.arrayBuffer();
      if (r.status !== 503 || attempt === 10) return r.status;
      await new Promise((res) => setTimeout(res, Math.min(2, Number(r.headers.get('retry-after') ?? 1)) * 1000));
    }
  };
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => post(
    JSON.stringify({ resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: `burst-${i % 4}` } }] },
      scopeLogs: [{ logRecords: Array.from({ length: 5 }, (_, j) => ({ timeUnixNano: `${now + BigInt(i * 5 + j)}`, eventName: 'policy.changed',
        body: { stringValue: `change ${i}.${j}` },
        attributes: [{ key: 'stella.resource.type', value: { stringValue: 'policy' } }, { key: 'stella.resource.id', value: { stringValue: `p-${i}-${j}` } }] })) }] }] }))));
  expect(results.every((s) => s === 200)).toBe(true);
  acked = results.length;

  const pid = start!.child.pid!;
  process.kill(pid, 'SIGTERM'); // to npm alone, as a supervisor does; npm must pass it on
  const t0 = Date.now();
  const code = await Promise.race([start!.exited, new Promise((r) => setTimeout(() => r('timeout'), 120_000))]);
  say(`npm start after SIGTERM: exit ${String(code)} in ${((Date.now() - t0) / 1000).toFixed(1)} s; stderr tail: ${start!.stderr.slice(-1500)}`);
  expect(start!.stdout).toContain('SIGTERM: stopping intake, draining, committing...');
  expect(start!.stdout).toMatch(/^Stopped\.$/m);
  expect(code, start!.stderr.slice(-4000)).toBe(0);
  // Nothing of the pipeline (tsx, node, the Kafka broker) outlives npm.
  let left = groupSignal(pid, 0);
  for (let i = 0; left && i < 50; i++) { await new Promise((r) => setTimeout(r, 100)); left = groupSignal(pid, 0); }
  expect(left, 'processes of npm start still running after it exited').toBe(false);
  // The broker (its own process group) was stopped too: stella removes its pid file once it has exited.
  expect(existsSync(path.join(dataDir, 'kafka', 'broker.pid')), 'the local broker outlived npm start').toBe(false);
  stopped = true;
}, 150_000);

/** A retriable Kafka error (e.g. the coordinator still loading offsets after a restart) reads as "no groups yet". */
function retriableAsEmpty(err: { retriable?: boolean }): { groups: { groupId: string }[] } {
  if (err.retriable) return { groups: [] };
  throw err;
}

it('after SIGTERM: every consumer group committed up to the high watermark, every evidence input is sealed', async () => {
  expect(acked).toBeGreaterThan(0);
  expect(stopped, 'npm start did not stop cleanly (its broker may still hold the data dir)').toBe(true);
  // The pipeline's broker, started again from its data dir (same identity, same port).
  checkBroker = await startBroker({ dataDir: path.join(dataDir, 'kafka') });
  const kafka = createKafka({ ...checkBroker.access(), clientId: 'clean-clone-check', quiet: true });
  const admin = kafka.admin();
  await admin.connect();
  try {
    // After a restart the broker lists groups once it has loaded __consumer_offsets: wait for them.
    // Until then it answers COORDINATOR_LOAD_IN_PROGRESS (retriable), which counts as "not yet".
    let groups: string[] = [];
    for (const until = Date.now() + 60_000; groups.length < Object.keys(GROUPS).length && Date.now() < until;) {
      groups = (await admin.listGroups().catch(retriableAsEmpty)).groups.map((g) => g.groupId).filter((g) => g.startsWith('stella-')).sort();
      if (groups.length < Object.keys(GROUPS).length) await new Promise((r) => setTimeout(r, 500));
    }
    expect(groups).toEqual(Object.keys(GROUPS).sort());
    for (const [group, topics] of Object.entries(GROUPS)) {
      let lag = await groupLag(admin, group, topics).catch(() => undefined);
      for (const until = Date.now() + 30_000; !lag && Date.now() < until;) {
        await new Promise((r) => setTimeout(r, 500));
        lag = await groupLag(admin, group, topics).catch((err: { retriable?: boolean }) => { if (err.retriable) return undefined; throw err; });
      }
      if (!lag) throw new Error(`${group}: committed offsets not readable within 30 s of the broker's restart`);
      expect(lag.reduce((s, p) => s + p.high, 0n), `${group} read nothing`).toBeGreaterThan(0n);
      expect(lag.filter((p) => p.lag > 0n).map((p) => `${p.topic}/${p.partition}: committed ${p.committed} < high ${p.high}`), group).toEqual([]);
    }

    // The evidence log's entries: one per clean record and one per distinct timeline event, per tenant.
    const inputs = [T.spansClean, T.logsClean, T.metricsClean, T.timelineEvents];
    let total = 0;
    for (const t of inputs) for (const p of await admin.fetchTopicOffsets(t)) total += Number(BigInt(p.high) - BigInt(p.low));
    const records = await readRecordsAt(checkBroker.access(), inputs, total, 60_000);
    expect(records.length).toBe(total);
    const expected = new Map<string, { clean: number; events: Set<string> }>();
    for (const r of records) {
      const tenant = r.headers[H.tenant] ?? r.key ?? '';
      let e = expected.get(tenant);
      if (!e) expected.set(tenant, (e = { clean: 0, events: new Set() }));
      if (r.topic === T.timelineEvents) e.events.add((JSON.parse(r.value.toString('utf8')) as { event_id: string }).event_id);
      else e.clean++;
    }
    expect([...expected.keys()]).toContain('demo');
    const logs = new FsEvidenceStore(path.join(dataDir, 'evidence', 'logs'));
    expect(readdirSync(path.join(logs.root, 'tenants')).sort()).toEqual([...expected.keys()].sort());
    for (const [tenant, e] of expected) {
      const reader = new LogReader(logs, tenant);
      const latest = (await reader.latest())?.checkpoint.size;
      const sealed = (await reader.sealedSizes()).at(-1);
      say(`tenant ${tenant}: ${e.clean} clean records + ${e.events.size} timeline events; sealed size ${sealed}, checkpoint size ${latest}`);
      expect({ tenant, checkpoint: latest, sealed }).toEqual({ tenant, checkpoint: e.clean + e.events.size, sealed: e.clean + e.events.size });
    }
  } finally {
    await admin.disconnect();
  }
}, 180_000);
