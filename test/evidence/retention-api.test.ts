// Retention and legal hold end to end: the evidence runner on the real broker and embedded
// ClickHouse, the real API server, the real `stella` CLI. Holds are placed and released with the
// CLI; their timeline events go through Kafka and are sealed into the log; the runner's prune
// removes a held case's neighbours and keeps the case; the case still snapshots and verifies; a
// case needing a pruned entry fails with ENTRY_PRUNED through the API (410) and the CLI (exit 26);
// after release the next prune removes it; another tenant's token can neither place nor see holds.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerEvidenceRoutes } from '../../api/evidence-routes.ts';
import { BatchingProducer } from '../../lib/kafka/producer.ts';
import { TABLES, timelineInsertRow, type TimelineEventRow } from '../../lib/store/index.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { causeExitCode } from '../../processors/evidence/causes.ts';
import { checkStoredLog, latestIncident } from '../../processors/evidence/prune.ts';
import { incidentTimelineEvent } from '../../processors/slo/outputs.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { startEvidenceRunner, type RunningEvidence } from '../../processors/evidence/runner.ts';
import { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { exportTrustRoot, serializeTrustRoot } from '../../processors/evidence/trust-root.ts';
import { eventMessageJson } from '../../processors/timeline/events.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { runStellaCli } from '../support/stella.ts';
import { testStore } from '../timeline/support.ts';
import { startHarness } from './api-harness.ts';
import { tempStore } from './helpers.ts';
import { produce, sealedSize, tenantSigner, waitFor } from './runner-support.ts';

const TOK = { acme: 'ret-acme-all', acmeAdmin: 'ret-acme-admin', globex: 'ret-globex-all' };
const tokens = new TokenRegistry([
  { id: 'acme', tokens: [
    { sha256: sha256Hex(TOK.acme), scopes: ['evidence:read', 'evidence:create', 'evidence:export'], name: 'investigator' },
    { sha256: sha256Hex(TOK.acmeAdmin), scopes: ['evidence:read', 'admin'], name: 'counsel' },
  ] },
  { id: 'globex', tokens: [{ sha256: sha256Hex(TOK.globex), scopes: ['evidence:read', 'evidence:create', 'evidence:export', 'admin'] }] },
]);

const DAY = 86_400_000;
const traceCase = randomBytes(16).toString('hex'); // events 10..13: entry bundle 0
const traceNeighbour = randomBytes(16).toString('hex'); // events 300..303: entry bundle 1
let clockOffsetMs = -100 * DAY;
let base: string;
let close: () => Promise<void>;
let runner: RunningEvidence;
let producer: BatchingProducer;
let timelineTopic: string;
const evidence = tempStore();
const cases = new FsEvidenceStore(path.join(evidence.root, 'cases'));
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-retention-'));

function row(tenant: string, i: number): TimelineEventRow {
  const trace = i >= 10 && i < 14 ? traceCase : i >= 300 && i < 304 ? traceNeighbour : '';
  return { event_id: randomBytes(16).toString('hex'), ts: (BigInt(Date.now() - 100 * DAY + i) * 1_000_000n).toString(), tenant_id: tenant, project_id: 'p1',
    kind: 'job.finished', actor: 'ci', resource_type: 'job', resource_id: `job-${i}`, trace_id: trace, span_id: '', digest: '', details: `{"n":${i}}`, source: `t/0/${i}#0` };
}

const stella = (args: string[], token: string, env: Record<string, string> = {}) =>
  runStellaCli(args, { ...process.env as Record<string, string>, STELLA_LOG_LEVEL: 'silent', STELLA_API_URL: base, STELLA_TOKEN: token, STELLA_DATA_DIR: dir, ...env });
const req = (p: string, token: string, init: RequestInit = {}) => fetch(base + p, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
/** Whether acme's log holds the hold event (read from index 768 on: the entries before may be pruned). */
async function hasEntry(kind: string, caseId: string): Promise<boolean> {
  const r = new LogReader(evidence, 'acme');
  const n = await sealedSize(evidence, 'acme');
  for (let i = 768; i < n; i++) {
    const e = JSON.parse(Buffer.from(await r.entry(i, n)).toString('utf8')) as { kind?: string; resource_id?: string };
    if (e.kind === kind && e.resource_id === caseId) return true;
  }
  return false;
}

beforeAll(async () => {
  const store = await testStore();
  const acme = Array.from({ length: 768 }, (_, i) => row('acme', i));
  const globex = Array.from({ length: 12 }, (_, i) => row('globex', i));
  await store.insertRows(TABLES.timelineEvents, [...acme, ...globex].map(timelineInsertRow));
  const timeline = (timelineTopic = uniq('ret_timeline'));
  const clean = uniq('ret_clean');
  await createTopics([timeline, clean], 2);
  await produce(timeline, [...acme, ...globex].map((r) => ({ tenant: r.tenant_id, value: eventMessageJson(r) })));
  runner = await startEvidenceRunner({ kafka: testKafka('evidence-retention'), storeRoot: evidence.root, store, signer: tenantSigner,
    topics: { timelineEvents: timeline, clean: [clean] }, groupId: uniq('evidence-retention'), sealEverySeconds: 0.2, sealEveryEntries: 256,
    now: () => new Date(Date.now() + clockOffsetMs),
    retention: { config: { days: 30, tenants: {}, incidentExtensionDays: 30, pruneEverySeconds: 0 }, cases } });
  await waitFor('logs sealed', async () => (await sealedSize(evidence, 'acme')) === 768 && (await sealedSize(evidence, 'globex')) === 12);
  clockOffsetMs = 0; // from here on: today; the 768 entries were sealed 100 days ago
  // Hold events are published as `stella run` does: a batching producer onto timeline_events.
  producer = new BatchingProducer(testKafka('retention-api-events'), { lingerMs: 2 });
  await producer.connect();
  const publishTimelineEvent = (e: TimelineEventRow) => producer.send(timeline, [{ key: e.tenant_id, value: Buffer.from(eventMessageJson(e)), headers: { tenant: e.tenant_id } }]);
  ({ url: base, close } = await startHarness(tokens, [(r) => registerEvidenceRoutes(r, { evidence, cases, store, publishTimelineEvent })]));
  writeFileSync(path.join(dir, 'acme-trust.json'), serializeTrustRoot((await exportTrustRoot(evidence, 'acme'))!));
});
afterAll(async () => { await runner?.stop(); await producer?.disconnect(); await close?.(); });

describe('retention and legal hold through Kafka, the API and the CLI', () => {
  it('a held case survives the prune that removes its neighbours, verifies, and goes after release', async () => {
    // Cross-tenant: globex can neither place a hold on acme nor see acme's holds.
    const [foreign, placed] = await Promise.all([
      stella(['forensic', 'hold', 'place', 'case-1', '--trace-id', traceCase, '--tenant', 'acme'], TOK.globex),
      stella(['forensic', 'hold', 'place', 'case-1', '--trace-id', traceCase, '--reason', 'litigation 42', '--output', 'json'], TOK.acme)]);
    expect(foreign.code, foreign.stderr).toBe(3);
    expect((await req('/evidence/hold/case-1?tenant=acme', TOK.globex, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ trace_ids: [traceCase] }) })).status).toBe(403);

    expect(placed.code, placed.stderr).toBe(0);
    expect(JSON.parse(placed.stdout)).toMatchObject({ tenant: 'acme', created: true, event_published: true,
      hold: { case_id: 'case-1', action: 'placed', by: 'token:investigator', reason: 'litigation 42', cover: { trace_ids: [traceCase] } } });
    const post = (c: string, body: unknown, tok = TOK.acme) => req(`/evidence/hold/${c}`, tok, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(await (await post('case-1', { trace_ids: [traceCase] })).json()).toMatchObject({ created: false });
    const bad = await post('case-2', {});
    expect(bad.status).toBe(400); // a hold must name what it covers
    expect(JSON.stringify(await bad.json())).toMatch(/must name what it covers/);
    expect((await post('case-3', { entries: [{ from: 5, to: 2 }] })).status).toBe(400);
    // The placement is a timeline event sealed into acme's log (and only acme's).
    await waitFor('hold placement sealed', () => hasEntry('evidence.hold.placed', 'case-1'));
    expect(await (await req('/evidence/holds', TOK.globex)).json()).toEqual({ tenant: 'globex', holds: [] });
    const list = await stella(['forensic', 'hold', 'list'], TOK.acme);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/case-1\s+held/);

    // The runner's prune: bundles 1 and 2 (100 days old) go, bundle 0 (the held trace) stays.
    const [acme] = (await runner.pruneAll()).filter((r) => r.tenant === 'acme');
    expect(acme!.pruned).toEqual([1, 2]);
    expect(acme!.held).toEqual([{ bundle: 0, case_id: 'case-1' }]);
    expect(await checkStoredLog(evidence, 'acme')).toMatchObject({ ok: true, bundles_pruned: 2 });
    expect(await checkStoredLog(evidence, 'globex')).toMatchObject({ ok: true, bundles_pruned: 0 });

    // The held case still snapshots and verifies against the pinned trust root.
    const out = path.join(dir, 'case-1.tar.gz');
    const snap = await stella(['forensic', 'snapshot', 'create', '--case', 'case-1', '--scope', 'trace', '--id', traceCase, '--out', out], TOK.acme);
    expect(snap.code, snap.stderr).toBe(0);
    const verified = await stella(['forensic', 'verify', out, '--trust', path.join(dir, 'acme-trust.json')], TOK.acme);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/^OK: bundle verified/);

    // The neighbour's trace needs pruned entries: ENTRY_PRUNED, through the API and the CLI.
    const api = await req('/evidence/snapshot', TOK.acme, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'trace', resource_id: traceNeighbour, case_id: 'case-n' }) });
    expect(api.status).toBe(410);
    expect(await api.json()).toMatchObject({ error: { code: 'entry_pruned', cause: 'ENTRY_PRUNED', exit_code: causeExitCode.ENTRY_PRUNED } });
    const [cli, notAdmin] = await Promise.all([
      stella(['forensic', 'snapshot', 'create', '--case', 'case-n', '--scope', 'trace', '--id', traceNeighbour, '--out', path.join(dir, 'n.tar.gz')], TOK.acme),
      stella(['forensic', 'hold', 'release', 'case-1'], TOK.acme)]);
    expect(cli.code).toBe(causeExitCode.ENTRY_PRUNED);
    expect(cli.stderr).toMatch(/ENTRY_PRUNED: entry 30\d was pruned past retention/);

    // Release needs admin; then the next prune removes the case's bundle.
    expect(notAdmin.code).toBe(3);
    expect((await req('/evidence/hold/case-1', TOK.globex, { method: 'DELETE' })).status).toBe(404); // globex has no such hold
    const released = await stella(['forensic', 'hold', 'release', 'case-1', '--reason', 'settled', '--output', 'json'], TOK.acmeAdmin);
    expect(released.code, released.stderr).toBe(0);
    expect(JSON.parse(released.stdout)).toMatchObject({ released: true, hold: { action: 'released', by: 'token:counsel', seq: 2 } });
    await waitFor('hold release sealed', () => hasEntry('evidence.hold.released', 'case-1'));
    const [after] = (await runner.pruneAll()).filter((r) => r.tenant === 'acme');
    expect(after!.pruned).toEqual([0]);
    expect(await checkStoredLog(evidence, 'acme')).toMatchObject({ ok: true, bundles_pruned: 3 });
    // The history stays: list --all shows the release; the plain list is empty.
    const [gone, all] = await Promise.all([
      stella(['forensic', 'snapshot', 'create', '--case', 'case-1b', '--scope', 'trace', '--id', traceCase, '--out', path.join(dir, 'b.tar.gz')], TOK.acme),
      stella(['forensic', 'hold', 'list', '--all', '--output', 'yaml'], TOK.acme)]);
    expect(gone.code).toBe(causeExitCode.ENTRY_PRUNED);
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/action: released/);
    expect(((await (await req('/evidence/holds', TOK.acme)).json()) as { holds: unknown[] }).holds).toEqual([]);
  }, 120_000);

  it('incident mode extends retention while on: the runner records incident.mode.* events from Kafka and its prune honours them', async () => {
    // initech: 600 events sealed 45 days ago, with incident mode switched on (by the SLO processor's own event format).
    clockOffsetMs = -45 * DAY;
    const at = Date.now() - 45 * DAY;
    const events = Array.from({ length: 600 }, (_, i) => ({ ...row('initech', i), ts: (BigInt(at + i) * 1_000_000n).toString() }));
    const started = incidentTimelineEvent({ kind: 'incident.mode.started', tenant: 'initech', atMs: at, sinceMs: at, untilMs: Date.now() + 3_600_000, reason: 'manual', by: 'oncall' });
    await produce(timelineTopic, [...events, started].map((r) => ({ tenant: 'initech', value: eventMessageJson(r) })));
    await waitFor('initech sealed', async () => (await sealedSize(evidence, 'initech')) === 601);
    clockOffsetMs = 0;
    // The mark is written right after the seal that holds the event.
    expect(await waitFor('incident mark recorded', () => latestIncident(evidence, 'initech'))).toMatchObject({ kind: 'incident.mode.started', index: 600 });
    // 45 days old: past the 30 days, within 30 + 30 while the incident is on.
    const on = (await runner.pruneAll()).find((r) => r.tenant === 'initech')!;
    expect(on.pruned).toEqual([]);
    expect(Date.now() - Date.parse(on.cutoff)).toBeGreaterThan(59 * DAY);
    const stopped = incidentTimelineEvent({ kind: 'incident.mode.stopped', tenant: 'initech', atMs: Date.now(), sinceMs: at, untilMs: 0, reason: 'manual', by: 'oncall' });
    await produce(timelineTopic, [{ tenant: 'initech', value: eventMessageJson(stopped) }]);
    await waitFor('incident stop recorded', async () => (await latestIncident(evidence, 'initech'))?.kind === 'incident.mode.stopped');
    const off = (await runner.pruneAll()).find((r) => r.tenant === 'initech')!;
    expect(off.pruned).toEqual([0, 1]);
    expect(await checkStoredLog(evidence, 'initech')).toMatchObject({ ok: true, bundles_pruned: 2 });
  }, 90_000);
});
