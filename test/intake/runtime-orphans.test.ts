// Runtime-facts orphans (docs/intake.md "Orphans") through `stella run` (API + timeline on the test
// broker and embedded chdb): facts whose graph_hash no graph registration names are acked (Kafka
// has them) but parked, durably, in the timeline sink's bounded orphan queue, not written; once the
// graph is registered (POST /api/v1/reachability/graphs) the next backoff retry writes them; an
// orphan whose graph never comes expires to the DLQ; with the queue full a NEW orphan is refused
// (dead-lettered, "queue full") while the held ones stay held. stella_reachability_orphan_traces
// counts each outcome.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipeline, type RunningPipeline } from '../../cli/run.ts';
import { buildConfig } from '../../lib/config.ts';
import { defaultTopicNames } from '../../lib/kafka/topics.ts';
import { registry } from '../../lib/metrics.ts';
import { sha256Hex } from '../../lib/tenancy.ts';
import { kafkaEnv, readAllRecordsAt, testAccess, uniq } from '../support/kafka.ts';

const TOKEN = 'runtime-orphans-acme-token-0123456789';
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-orphans-'));
const TTL_S = 8;
const MAX_QUEUED = 2;
let pipeline: RunningPipeline;
let api: string;
let topics: Record<string, string>;

beforeAll(async () => {
  const p = uniq('orph');
  topics = Object.fromEntries(Object.keys(defaultTopicNames).map((k) => [k, `${p}_${k}`]));
  const cfg = buildConfig({
    dataDir: dir,
    receiver: { grpcPort: 0, httpPort: 0 }, admin: { port: 0 }, api: { port: 0 },
    kafka: { partitions: 1, groupIdPrefix: `${p}-`, topics },
    tenants: [{ id: 'acme', tokens: [{ sha256: sha256Hex(TOKEN), scopes: ['runtime:write', 'obs:read'] }] }],
    intake: { runtimeFacts: { orphans: { maxQueued: MAX_QUEUED, ttlSeconds: TTL_S, retryInitialMs: 100, retryMaxMs: 400 } } },
  }, kafkaEnv());
  pipeline = await runPipeline(cfg, new Set(['api', 'timeline'] as const), () => {});
  api = `http://127.0.0.1:${pipeline.ports.api}`;
}, 180_000);

afterAll(async () => {
  await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function poll<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const auth = { authorization: `Bearer ${TOKEN}` };
function facts(seed: string): Buffer {
  return Buffer.from(`${JSON.stringify({ symbol_id: `${seed}!main`, purl: 'pkg:deb/debian/openssl@3.0.11-1', timestamp: new Date().toISOString(), pid: 7, container: '', count: 1 })}\n`);
}
async function postFacts(graph: string, body: Buffer): Promise<{ ingest_id: string; graph_known: boolean }> {
  const r = await fetch(`${api}/api/v1/runtime-facts?graph_hash=${graph}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/x-ndjson' }, body });
  expect(r.status).toBe(202);
  return await r.json() as { ingest_id: string; graph_known: boolean };
}
const orphanFiles = (): string[] => {
  const d = path.join(dir, 'intake', 'orphans', 'acme');
  return existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort() : [];
};
async function ingestStatus(id: string): Promise<number> {
  return (await fetch(`${api}/api/v1/runtime-facts/${id}`, { headers: auth })).status;
}
async function orphanCount(outcome: string): Promise<number> {
  const m = (await registry.getSingleMetric('stella_reachability_orphan_traces')?.get())?.values ?? [];
  return m.filter((v) => v.labels.outcome === outcome).reduce((a, v) => a + v.value, 0);
}
async function dlqReasons(): Promise<string[]> {
  return (await readAllRecordsAt(testAccess(), topics.dlq!)).map((r) => r.headers['dlq-reason'] ?? '');
}
const graphBytes = (s: string) => Buffer.from(JSON.stringify({ graph: s, nodes: ['a', 'b'], edges: [['a', 'b']] }));
const hashOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('runtime-facts orphans', () => {
  it('facts of an unknown graph are kept (not written) and written once the graph is registered', async () => {
    const g = graphBytes('resolved');
    const a = await postFacts(hashOf(g), facts('resolved'));
    expect(a.graph_known).toBe(false);
    // The file is durable before the counter moves (the sink counts after the fsyncs): wait for both.
    await poll('the orphan to be queued', async () => (orphanFiles().includes(a.ingest_id) && (await orphanCount('queued')) >= 1 ? true : undefined));
    // Several retries (100-400 ms backoff) pass without the graph: still held, still not written.
    await new Promise((r) => setTimeout(r, 1500));
    expect(orphanFiles()).toContain(a.ingest_id);
    expect(await ingestStatus(a.ingest_id)).toBe(404);

    const reg = await fetch(`${api}/api/v1/reachability/graphs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: g });
    expect(reg.status).toBe(201);
    expect(((await reg.json()) as { graph_hash: string }).graph_hash).toBe(hashOf(g));
    const again = await fetch(`${api}/api/v1/reachability/graphs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: g });
    expect(again.status).toBe(200); // registering twice is a replay

    await poll('the orphan to be written', async () => ((await ingestStatus(a.ingest_id)) === 200 ? true : undefined));
    expect(orphanFiles()).not.toContain(a.ingest_id);
    expect(await orphanCount('resolved')).toBeGreaterThanOrEqual(1);
    // Facts of a graph already known are written directly, never queued.
    const b = await postFacts(hashOf(g), facts('known-graph'));
    expect(b.graph_known).toBe(true);
    await poll('facts of a known graph to be written', async () => ((await ingestStatus(b.ingest_id)) === 200 ? true : undefined));
    expect(orphanFiles()).not.toContain(b.ingest_id);
  }, 60_000);

  it(`the queue holds ${MAX_QUEUED}: a new orphan past that is refused (dead-lettered), the held ones are kept; unresolved ones expire after ${TTL_S} s`, async () => {
    const graph = hashOf(graphBytes('never-registered'));
    const refusedBefore = await orphanCount('refused');
    const expiredBefore = await orphanCount('expired');
    const first = await postFacts(graph, facts('held-1'));
    const second = await postFacts(graph, facts('held-2'));
    await poll('two orphans held', async () => (orphanFiles().length === 2 ? true : undefined));
    expect(orphanFiles()).toEqual([first.ingest_id, second.ingest_id].sort());

    // Full: the third (newest) is the one refused, with the reason on its DLQ record.
    const third = await postFacts(graph, facts('over-the-bound'));
    await poll('the third orphan refused', async () => ((await orphanCount('refused')) > refusedBefore ? true : undefined));
    expect(orphanFiles()).toEqual([first.ingest_id, second.ingest_id].sort());
    expect(orphanFiles()).not.toContain(third.ingest_id);
    expect((await dlqReasons()).some((r) => /orphan queue full/.test(r))).toBe(true);

    // Expiry: the graph never comes; after the TTL both are dropped to the DLQ and never written.
    await poll('the held orphans to expire', async () => (orphanFiles().length === 0 ? true : undefined), (TTL_S + 20) * 1000);
    expect(await orphanCount('expired')).toBe(expiredBefore + 2);
    expect((await dlqReasons()).filter((r) => /orphan expired/.test(r))).toHaveLength(2);
    for (const id of [first.ingest_id, second.ingest_id, third.ingest_id]) expect(await ingestStatus(id)).toBe(404);
  }, 90_000);
});
