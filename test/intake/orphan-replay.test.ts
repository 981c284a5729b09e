// `stella intake orphans replay` (docs/intake.md "Replaying expired orphans") against `stella run`'s
// API and timeline on the test broker and embedded chdb, the CLI as a real child process: runtime
// facts of unregistered graphs expire to the DLQ; once acme registers one graph, the replay publishes
// that orphan again and the sink writes its facts; a second replay publishes nothing (already
// replayed); the orphan whose graph is still unknown is left in the DLQ and counted (exit 1); a
// dry run publishes nothing; another tenant's orphans are neither seen nor replayed, and acme's
// registration does not make the graph known for it.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipeline, type RunningPipeline } from '../../cli/run.ts';
import { buildConfig } from '../../lib/config.ts';
import { defaultTopicNames } from '../../lib/kafka/topics.ts';
import { sha256Hex } from '../../lib/tenancy.ts';
import { deadOrphanOf, planReplay, replayExitCode, summarize } from '../../processors/intake/orphan-replay.ts';
import { ingestIdFor } from '../../processors/intake/runtime-facts.ts';
import { kafkaEnv, readAllRecordsAt, testAccess, uniq } from '../support/kafka.ts';
import { runStellaCli } from '../support/stella.ts';
import { eventually } from '../timeline/support.ts';

const ACME = 'orphan-replay-acme-token-0123456789';
const GLOBEX = 'orphan-replay-globex-token-0123456789';
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-orphan-replay-'));
const LINES = 5;
let pipeline: RunningPipeline;
let api: string;
let topics: Record<string, string>;
let env: Record<string, string>;

beforeAll(async () => {
  const p = uniq('orpl');
  topics = Object.fromEntries(Object.keys(defaultTopicNames).map((k) => [k, `${p}_${k}`]));
  const scopes = ['runtime:write', 'obs:read', 'timeline:read'];
  const cfg = buildConfig({
    dataDir: path.join(dir, 'data'),
    receiver: { grpcPort: 0, httpPort: 0 }, admin: { port: 0 }, api: { port: 0 },
    kafka: { partitions: 1, groupIdPrefix: `${p}-`, topics },
    tenants: [{ id: 'acme', tokens: [{ sha256: sha256Hex(ACME), scopes }] }, { id: 'globex', tokens: [{ sha256: sha256Hex(GLOBEX), scopes }] }],
    intake: { runtimeFacts: { orphans: { maxQueued: 100, ttlSeconds: 2, retryInitialMs: 100, retryMaxMs: 400 } } },
  }, kafkaEnv());
  pipeline = await runPipeline(cfg, new Set(['api', 'timeline'] as const), () => {});
  api = `http://127.0.0.1:${pipeline.ports.api}`;
  writeFileSync(path.join(dir, 'stella.json'), JSON.stringify({ dataDir: path.join(dir, 'data'), kafka: { topics } }));
  env = { PATH: process.env.PATH ?? '', HOME: dir, STELLA_CONFIG: path.join(dir, 'stella.json'), ...kafkaEnv() };
}, 180_000);

afterAll(async () => {
  await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const poll = <T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> =>
  eventually(fn, ms, 200).catch((err: unknown) => { throw new Error(`timed out waiting for ${what}: ${String(err)}`); });
const hashOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const graphBytes = (s: string) => Buffer.from(JSON.stringify({ graph: s, nodes: ['a'], edges: [] }));
const auth = (t: string) => ({ authorization: `Bearer ${t}` });
function facts(seed: string): Buffer {
  return Buffer.from(Array.from({ length: LINES }, (_, i) => JSON.stringify({ symbol_id: `${seed}!f${i}`, purl: 'pkg:deb/debian/openssl@3.0.11-1',
    timestamp: new Date(Date.now() - 60_000 + i).toISOString(), pid: 7, container: '', count: 1 })).join('\n') + '\n');
}
async function postFacts(token: string, graph: string, body: Buffer): Promise<string> {
  const r = await fetch(`${api}/api/v1/runtime-facts?graph_hash=${graph}`, { method: 'POST', headers: { ...auth(token), 'content-type': 'application/x-ndjson' }, body });
  expect(r.status).toBe(202);
  return ((await r.json()) as { ingest_id: string }).ingest_id;
}
const stored = async (token: string, id: string) => {
  const r = await fetch(`${api}/api/v1/runtime-facts/${id}`, { headers: auth(token) });
  return r.status === 200 ? ((await r.json()) as { stored_facts: number }).stored_facts : r.status === 404 ? 0 : undefined;
};
const intakeCount = async () => (await readAllRecordsAt(testAccess(), topics.intakeRuntimeFacts!)).length;
const replay = async (...args: string[]) => {
  const r = await runStellaCli(['intake', 'orphans', 'replay', ...args, '--output', 'json'], env);
  return { ...r, report: r.stdout ? JSON.parse(r.stdout) as Record<string, unknown> & { orphans: { ingest_id: string; outcome: string }[] } : undefined };
};

describe('stella intake orphans replay', () => {
  it('replays the tenant\'s expired orphans whose graph is known now, once; leaves the others in the DLQ and says so', async () => {
    const g1 = graphBytes('arrives-late');
    const g2 = hashOf(graphBytes('never-registered'));
    const a1 = await postFacts(ACME, hashOf(g1), facts('acme-g1'));
    const a2 = await postFacts(ACME, g2, facts('acme-g2'));
    const x1 = await postFacts(GLOBEX, hashOf(g1), facts('globex-g1'));
    await poll('three orphans expired to the DLQ', async () => ((await readAllRecordsAt(testAccess(), topics.dlq!))
      .filter((r) => /orphan expired/.test(r.headers['dlq-reason'] ?? '')).length >= 3 ? true : undefined));

    // A usage error: exit 2, nothing read.
    const bad = await replay('--tenant', 'acme', '--graph-hash', 'nope');
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringContaining('--graph-hash must be sha256')]);

    // The graph of a1 is registered by acme only.
    const reg = await fetch(`${api}/api/v1/reachability/graphs`, { method: 'POST', headers: { ...auth(ACME), 'content-type': 'application/octet-stream' }, body: g1 });
    expect(reg.status).toBe(201);
    const before = await intakeCount();

    const dry = await replay('--tenant', 'acme', '--dry-run');
    expect(dry.code, dry.stderr).toBe(1); // a2's graph is still unknown
    expect(dry.report).toMatchObject({ tenant: 'acme', dry_run: true, found: 2, replayed: 1, already_replayed: 0, graph_unknown: 1 });
    expect(Object.fromEntries(dry.report!.orphans.map((o) => [o.ingest_id, o.outcome]))).toEqual({ [a1]: 'would_replay', [a2]: 'graph_unknown' });
    expect(dry.stderr).toContain('still wait for their graph');
    expect(await intakeCount()).toBe(before);

    // Narrowed to g1: everything found is replayed: exit 0; the facts are written.
    const first = await replay('--tenant', 'acme', '--graph-hash', hashOf(g1));
    expect(first.code, first.stderr).toBe(0);
    expect(first.report).toMatchObject({ found: 1, replayed: 1, graph_unknown: 0 });
    expect(first.report!.orphans).toEqual([expect.objectContaining({ ingest_id: a1, outcome: 'replayed', reason: 'expired' })]);
    await poll('the replayed facts written', async () => ((await stored(ACME, a1)) === LINES ? true : undefined));
    expect(await intakeCount()).toBe(before + 1);
    const ev = await poll('the replay on the timeline', async () => ((await (await fetch(`${api}/timeline?limit=100&kind=reach.runtime.orphan.replayed`, { headers: auth(ACME) })).json()) as
      { events: { resource: { id: string } }[] }).events.find((e) => e.resource.id === a1));
    expect(ev).toBeDefined();

    // Again: nothing published; the orphan of the unknown graph is counted and left (exit 1).
    const second = await replay('--tenant', 'acme');
    expect(second.code).toBe(1);
    expect(second.report).toMatchObject({ found: 2, replayed: 0, already_replayed: 1, graph_unknown: 1 });
    await new Promise((r) => setTimeout(r, 1500));
    expect(await intakeCount()).toBe(before + 1);
    expect(await stored(ACME, a1)).toBe(LINES);
    expect(await stored(ACME, a2)).toBe(0);

    // globex: its orphan of the same graph bytes is its own; acme's registration does not make it known.
    const g = await replay('--tenant', 'globex');
    expect(g.code).toBe(1);
    expect(g.report).toMatchObject({ tenant: 'globex', found: 1, replayed: 0, graph_unknown: 1 });
    expect(g.report!.orphans.map((o) => o.ingest_id)).toEqual([x1]);
    expect(await stored(GLOBEX, x1)).toBe(0);
    expect(await stored(GLOBEX, a1)).toBe(0); // acme's replayed ingest does not exist for globex
    expect(await intakeCount()).toBe(before + 1);
  }, 240_000);
});

describe('orphan replay core', () => {
  const C = `sha256:${'c'.repeat(64)}`;
  const idOf = (tenant: string, graph: string) => ingestIdFor(tenant, graph, C);
  const rec = (tenant: string, graph: string) => Buffer.from(JSON.stringify({ v: 1, ingest_id: idOf(tenant, graph), tenant, graph_hash: graph,
    content_sha256: `sha256:${'c'.repeat(64)}`, cas_uri: `cas://${tenant}/${'c'.repeat(64)}`, size: 1, records: 1, first_ts_unix_nano: '1', last_ts_unix_nano: '1',
    signed_by: '', envelope_cas_uri: '', received_at_unix_nano: '1', via: 'api' }));
  const G = `sha256:${'a'.repeat(64)}`;
  const dlq = (o: { key?: string; tenantHeader?: string; reason?: string; source?: string; value?: Buffer; offset?: string }) => ({
    partition: 0, offset: o.offset ?? '1', key: o.key ?? 'acme', timestamp: '1', value: o.value ?? rec('acme', G),
    headers: { tenant: o.tenantHeader ?? 'acme', 'dlq-source-topic': o.source ?? 'rt', 'dlq-reason': o.reason ?? 'timeline intake: runtime facts orphan expired: graph unknown after 2 s' } });
  it('takes only the tenant\'s orphan records, three ways agreed', () => {
    expect(deadOrphanOf(dlq({}), 'acme', 'rt')).toMatchObject({ ingestId: idOf('acme', G), graphHash: G, reason: 'expired', dlq: '0/1' });
    expect(deadOrphanOf(dlq({ reason: 'timeline intake: runtime facts orphan queue full (2 held; x): graph unknown, not queued' }), 'acme', 'rt')?.reason).toBe('queue_full');
    expect(deadOrphanOf(dlq({ reason: 'timeline intake: the CAS blob is missing' }), 'acme', 'rt')).toBeUndefined();
    expect(deadOrphanOf(dlq({ source: 'other' }), 'acme', 'rt')).toBeUndefined();
    expect(deadOrphanOf(dlq({}), 'globex', 'rt')).toBeUndefined();
    expect(deadOrphanOf(dlq({ tenantHeader: 'globex' }), 'acme', 'rt')).toBeUndefined();
    expect(deadOrphanOf(dlq({ key: 'globex', tenantHeader: 'globex' }), 'globex', 'rt')).toBeUndefined(); // the record says acme
    expect(deadOrphanOf(dlq({ value: Buffer.from('nope') }), 'acme', 'rt')).toBeUndefined();
  });
  it('plans one decision per ingest and exits 1 while any waits', () => {
    const o1 = deadOrphanOf(dlq({}), 'acme', 'rt')!;
    const o1again = deadOrphanOf(dlq({ offset: '9' }), 'acme', 'rt')!;
    const G2 = `sha256:${'b'.repeat(64)}`;
    const o2 = deadOrphanOf(dlq({ value: rec('acme', G2), offset: '5' }), 'acme', 'rt')!;
    const plan = planReplay([o1, o1again, o2], new Set([G]), new Set());
    expect(plan.map((p) => [p.ingestId, p.outcome, p.dlq])).toEqual([[idOf('acme', G), 'replay', '0/1'], [idOf('acme', G2), 'graph_unknown', '0/5']]);
    expect(replayExitCode(summarize(plan))).toBe(1);
    expect(planReplay([o1, o2], new Set([G]), new Set([o1.ingestId]), G).map((p) => p.outcome)).toEqual(['already_replayed']);
    expect(replayExitCode(summarize(planReplay([o1], new Set([G]), new Set())))).toBe(0);
  });
});
