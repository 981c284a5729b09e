// Graph registrations sealed like every intake (docs/intake.md "Graphs"), through `stella run` (API +
// timeline + evidence on the test broker and embedded chdb): POST /api/v1/reachability/graphs puts the
// bytes in the CAS, publishes an intake_graphs record and a reach.graph.registered timeline event
// (answered only after Kafka acked), and the evidence processor seals the event in the tenant's log.
// Registering the same graph again (also concurrently) is the same event: nothing visible changes.
// Another tenant sees neither the event nor its evidence entry. A registration cut off before its
// ack (pending file) publishes the first attempt's event on retry; a graph known from before
// registrations were published gets its event on re-registration; a published registration whose
// marker was never written is completed by the timeline's graph sink.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipeline, type RunningPipeline } from '../../cli/run.ts';
import { FsBlobStore } from '../../lib/cas.ts';
import { buildConfig } from '../../lib/config.ts';
import { GraphRegistry, graphIntakeRecord, graphRegisteredEvent, parseGraphIntakeRecord } from '../../lib/intake/graphs.ts';
import { publishIntake } from '../../lib/intake/publish.ts';
import { createKafka } from '../../lib/kafka/client.ts';
import { BatchingProducer } from '../../lib/kafka/producer.ts';
import { defaultTopicNames } from '../../lib/kafka/topics.ts';
import { sha256Hex } from '../../lib/tenancy.ts';
import { kafkaEnv, readAllRecordsAt, testAccess, uniq } from '../support/kafka.ts';
import { eventually } from '../timeline/support.ts';
import { readdirSync, readlinkSync } from 'node:fs';
import { validExport } from './exports-support.ts';

const ACME = 'graphs-acme-token-0123456789abcdef';
const GLOBEX = 'graphs-globex-token-0123456789abcdef';
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-graphs-'));
let pipeline: RunningPipeline;
let api: string;
let topics: Record<string, string>;

beforeAll(async () => {
  const p = uniq('grph');
  topics = Object.fromEntries(Object.keys(defaultTopicNames).map((k) => [k, `${p}_${k}`]));
  const scopes = ['runtime:write', 'timeline:read', 'evidence:read', 'orchestrator:exports:write'];
  const cfg = buildConfig({
    dataDir: dir,
    receiver: { grpcPort: 0, httpPort: 0 }, admin: { port: 0 }, api: { port: 0 },
    kafka: { partitions: 1, groupIdPrefix: `${p}-`, topics },
    tenants: [{ id: 'acme', tokens: [{ sha256: sha256Hex(ACME), scopes }] }, { id: 'globex', tokens: [{ sha256: sha256Hex(GLOBEX), scopes }] }],
    evidence: { sealEverySeconds: 1 },
  }, kafkaEnv());
  pipeline = await runPipeline(cfg, new Set(['api', 'timeline', 'evidence'] as const), () => {});
  api = `http://127.0.0.1:${pipeline.ports.api}`;
}, 180_000);

let stopped = false;
afterAll(async () => {
  if (!stopped) await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const poll = <T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> =>
  eventually(fn, ms, 200).catch((err: unknown) => { throw new Error(`timed out waiting for ${what}: ${String(err)}`); });
const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const graphBytes = (s: string) => Buffer.from(JSON.stringify({ graph: s, nodes: ['a', 'b'], edges: [['a', 'b']] }));
const auth = (t: string) => ({ authorization: `Bearer ${t}` });
const registry = () => GraphRegistry.under(dir);
/** The timeline API's time of an event at `ns` epoch nanoseconds (RFC 3339, 9 digits). */
const isoNs = (ns: bigint) => `${new Date(Number(ns / 1_000_000n)).toISOString().slice(0, 19)}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}Z`;

async function register(token: string, body: Buffer): Promise<{ status: number; body: { graph_hash: string; replay: boolean; event_id: string } }> {
  const r = await fetch(`${api}/api/v1/reachability/graphs`, { method: 'POST', headers: { ...auth(token), 'content-type': 'application/octet-stream' }, body });
  return { status: r.status, body: await r.json() as { graph_hash: string; replay: boolean; event_id: string } };
}
interface Ev { event_id: string; kind: string; ts: string; digest: string; resource: { type: string; id: string }; details: Record<string, unknown> }
async function graphEvents(token: string): Promise<Ev[]> {
  const r = await fetch(`${api}/timeline?limit=1000&from=0&kind=reach.graph.registered`, { headers: auth(token) });
  expect(r.status).toBe(200);
  return ((await r.json()) as { events: Ev[] }).events;
}
async function allEvents(token: string): Promise<Ev[]> {
  return ((await (await fetch(`${api}/timeline?limit=1000&from=0`, { headers: auth(token) })).json()) as { events: Ev[] }).events;
}
const inclusion = async (token: string, eventId: string) => (await fetch(`${api}/evidence/proof/inclusion?event_id=${eventId}`, { headers: auth(token) })).status;
async function sealedSize(tenant: string, token: string): Promise<number | undefined> {
  const r = await fetch(`${api}/evidence/${tenant}/checkpoint`, { headers: auth(token) });
  return r.status === 200 ? Number((await r.text()).split('\n')[1]) : undefined;
}

describe('graph registrations on the timeline and in the evidence log', () => {
  it('a registration is one reach.graph.registered event, sealed; registering again changes nothing; another tenant sees neither', async () => {
    const g = graphBytes('sealed');
    const gh = `sha256:${hex(g)}`;
    const first = await register(ACME, g);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ graph_hash: gh, replay: false });
    expect(first.body.event_id).toMatch(/^[0-9a-f]{32}$/);
    // Again, and three at once: replays answering the same event.
    const again = await Promise.all([register(ACME, g), register(ACME, g), register(ACME, g)]);
    for (const a of again) expect([a.status, a.body.replay, a.body.event_id]).toEqual([200, true, first.body.event_id]);

    // Kafka had the record (key = tenant) and the event before the answer.
    const recs = (await readAllRecordsAt(testAccess(), topics.intakeGraphs!)).filter((r) => JSON.parse(r.value.toString()).graph_hash === gh);
    expect(recs.length).toBeGreaterThanOrEqual(1);
    expect(new Set(recs.map((r) => r.value.toString())).size).toBe(1); // every publication byte-identical
    expect(recs.every((r) => r.key === 'acme' && r.headers.tenant === 'acme')).toBe(true);
    expect(JSON.parse(recs[0]!.value.toString())).toMatchObject({ v: 1, tenant: 'acme', graph_hash: gh, cas_uri: `cas://acme/${gh.slice(7)}`, size: g.length, via: 'api' });

    const ev = await poll('the registration on the timeline', async () => (await graphEvents(ACME)).find((e) => e.resource.id === gh));
    expect(ev).toMatchObject({ event_id: first.body.event_id, kind: 'reach.graph.registered', digest: gh, resource: { type: 'reachability_graph', id: gh },
      details: { graph_hash: gh, cas_uri: `cas://acme/${gh.slice(7)}`, size: g.length, tenant: 'acme', via: 'api' } });
    await poll('the registration sealed', async () => ((await inclusion(ACME, ev.event_id)) === 200 ? true : undefined));
    // One event however often it was registered, and one evidence entry per distinct event.
    await new Promise((r) => setTimeout(r, 2500));
    expect((await graphEvents(ACME)).filter((e) => e.resource.id === gh)).toHaveLength(1);
    const all = await allEvents(ACME);
    expect(new Set(all.map((e) => e.event_id)).size).toBe(all.length);
    expect(await poll('the log to hold every acme event', async () => {
      const n = await sealedSize('acme', ACME);
      return n !== undefined && n >= all.length ? n : undefined;
    })).toBe(all.length);

    // globex: no such event on its timeline, no evidence entry for acme's event id, no acme checkpoint.
    expect((await graphEvents(GLOBEX)).filter((e) => e.resource.id === gh)).toEqual([]);
    expect(await inclusion(GLOBEX, ev.event_id)).toBe(404);
    expect(await sealedSize('acme', GLOBEX)).toBeUndefined();
    expect(await registry().isKnown('globex', gh)).toBe(false);
  }, 120_000);

  it('a retry after a registration cut off before its ack publishes the first attempt\'s event, then the graph is known', async () => {
    const g = graphBytes('cut-off');
    const gh = `sha256:${hex(g)}`;
    await new FsBlobStore(path.join(dir, 'cas')).put('acme', g);
    const firstAttemptNs = ((BigInt(Date.now()) - 60_000n) * 1_000_000n).toString();
    await registry().pending('acme', gh, { cas_uri: `cas://acme/${gh.slice(7)}`, size: g.length, registered_at_unix_nano: firstAttemptNs, actor: 'earlier', via: 'cli' });
    expect(await registry().isKnown('acme', gh)).toBe(false);
    const r = await register(ACME, g);
    expect([r.status, r.body.replay]).toEqual([201, false]);
    expect(await registry().isKnown('acme', gh)).toBe(true);
    expect(existsSync(path.join(dir, 'intake', 'graphs', 'acme', `${gh.slice(7)}.pending`))).toBe(false);
    const ev = await poll('the event', async () => (await graphEvents(ACME)).find((e) => e.resource.id === gh));
    expect(ev.ts).toBe(isoNs(BigInt(firstAttemptNs)));
    expect(ev.details.via).toBe('cli');
  }, 60_000);

  it('a graph known from before registrations were published is sealed when registered again', async () => {
    const g = graphBytes('legacy');
    const gh = `sha256:${hex(g)}`;
    await new FsBlobStore(path.join(dir, 'cas')).put('acme', g);
    const marker = path.join(dir, 'intake', 'graphs', 'acme', gh.slice(7));
    mkdirSync(path.dirname(marker), { recursive: true });
    writeFileSync(marker, `cas://acme/${gh.slice(7)}\n`); // the old marker: the CAS URI only
    const mtimeNs = statSync(marker, { bigint: true }).mtimeNs;
    const r = await register(ACME, g);
    expect([r.status, r.body.replay]).toEqual([200, true]);
    const ev = await poll('the event', async () => (await graphEvents(ACME)).find((e) => e.resource.id === gh));
    expect(ev.ts).toBe(isoNs(mtimeNs));
    await poll('the registration sealed', async () => ((await inclusion(ACME, ev.event_id)) === 200 ? true : undefined));
  }, 60_000);

  it('the graph sink completes a published registration whose marker was never written, and dead-letters a bad record', async () => {
    const g = graphBytes('acked-then-crashed');
    const gh = `sha256:${hex(g)}`;
    await new FsBlobStore(path.join(dir, 'cas')).put('acme', g);
    const producer = new BatchingProducer(createKafka({ ...testAccess(), clientId: 'graphs-test' }));
    await producer.connect();
    try {
      const rec = graphIntakeRecord('acme', gh, { cas_uri: `cas://acme/${gh.slice(7)}`, size: g.length, registered_at_unix_nano: (BigInt(Date.now()) * 1_000_000n).toString(), actor: '', via: 'api' });
      await publishIntake(producer, { topic: topics.intakeGraphs!, timelineTopic: topics.timelineEvents!, tenant: 'acme', value: Buffer.from(JSON.stringify(rec)), timelineEvent: graphRegisteredEvent(rec) });
      // A record claiming acme's graph for globex (a blob globex never stored).
      const forged = { ...rec, tenant: 'globex', cas_uri: `cas://globex/${gh.slice(7)}` };
      await producer.send(topics.intakeGraphs!, [{ key: 'globex', value: Buffer.from(JSON.stringify(forged)), headers: { tenant: 'globex' } }]);
    } finally { await producer.disconnect(); }
    await poll('the sink to write the marker', async () => ((await registry().isKnown('acme', gh)) ? true : undefined));
    const dead = await poll('the forged record dead-lettered', async () => (await readAllRecordsAt(testAccess(), topics.dlq!))
      .find((r) => /graph is missing from the CAS/.test(r.headers['dlq-reason'] ?? '')));
    expect(dead.headers['dlq-source-topic']).toBe(topics.intakeGraphs);
    expect(await registry().isKnown('globex', gh)).toBe(false);
  }, 60_000);
});

describe('shutdown', () => {
  it('stopping the pipeline closes the export claim journals it opened (no FileHandle left for GC to close)', async () => {
    const r = await fetch(`${api}/internal/orchestrator/exports`, { method: 'POST', headers: { ...auth(ACME), 'content-type': 'application/json' }, body: JSON.stringify(validExport({ runId: 'run-shutdown' })) });
    expect(r.status).toBe(201);
    const journals = () => readdirSync('/proc/self/fd').map((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`); } catch { return ''; } })
      .filter((p) => p.startsWith(path.join(dir, 'intake', 'exports')));
    expect(journals().length).toBeGreaterThanOrEqual(1);
    stopped = true;
    await pipeline.stop();
    expect(journals()).toEqual([]);
  }, 60_000);
});

describe('parseGraphIntakeRecord', () => {
  const gh = `sha256:${'a'.repeat(64)}`;
  const good = graphIntakeRecord('acme', gh, { cas_uri: `cas://acme/${'a'.repeat(64)}`, size: 3, registered_at_unix_nano: '1', actor: 'x', via: 'api' });
  const parse = (o: unknown, key: string | null = 'acme') => parseGraphIntakeRecord(Buffer.from(JSON.stringify(o)), key);
  it('takes a good record and refuses each broken rule', () => {
    expect(parse(good)).toEqual(good);
    expect(parse(good, 'globex')).toMatch(/key is not its tenant/);
    expect(parse({ ...good, cas_uri: `cas://globex/${'a'.repeat(64)}` })).toMatch(/cas_uri/);
    expect(parse({ ...good, cas_uri: `cas://acme/${'b'.repeat(64)}` })).toMatch(/cas_uri/);
    expect(parse({ ...good, cas_uri: `https://x/${'a'.repeat(64)}` })).toMatch(/cas_uri/);
    expect(parse({ ...good, graph_hash: 'sha256:AA' })).toMatch(/graph_hash/);
    expect(parse({ ...good, v: 2 })).toMatch(/version/);
    expect(parse({ ...good, size: -1 })).toMatch(/size/);
    expect(parse({ ...good, registered_at_unix_nano: 1 })).toMatch(/registered_at/);
    expect(parseGraphIntakeRecord(Buffer.from('nope'), 'acme')).toMatch(/not JSON/);
  });
});
