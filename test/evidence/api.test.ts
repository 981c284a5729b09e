// Evidence API routes over HTTP, with the runner on the real broker and embedded ClickHouse:
// every route per tenant, wrong-tenant tokens refused on every route, an inclusion proof that
// verifies against the signed checkpoint, deterministic snapshots, verify, legal hold, and the
// snapshotCreate CLI function.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEvidenceLinks, registerEvidenceRoutes } from '../../api/evidence-routes.ts';
import { TABLES, timelineInsertRow, type TimelineEventRow } from '../../lib/store/index.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { verifyBundle } from '../../processors/evidence/bundle.ts';
import { forensicVerify } from '../../processors/evidence/cli.ts';
import { parseTrustRootText } from '../../processors/evidence/trust-root.ts';
import { leafHash } from '../../processors/evidence/hash.ts';
import { canonicalBytes } from '../../processors/evidence/jcs.ts';
import { verifyConsistency, verifyInclusion } from '../../processors/evidence/merkle.ts';
import { parseCheckpoint, verifyNote } from '../../processors/evidence/note.ts';
import { LogReader, parseTlogProof } from '../../processors/evidence/reader.ts';
import { parseConsistencyProof } from '../../processors/evidence/bundle.ts';
import { startEvidenceRunner, type RunningEvidence } from '../../processors/evidence/runner.ts';
import { snapshotCreate } from '../../processors/evidence/snapshot-cli.ts';
import { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { eventMessageJson } from '../../processors/timeline/events.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { testStore } from '../timeline/support.ts';
import { startHarness } from './api-harness.ts';
import { tempStore } from './helpers.ts';
import { produce, sealedSize, tenantSigner, waitFor } from './runner-support.ts';

const TOK = { acme: 'ev-acme-all', globex: 'ev-globex-all', acmeRead: 'ev-acme-read-only', multi: 'ev-multi' };
const tokens = new TokenRegistry([
  { id: 'acme', tokens: [
    { sha256: sha256Hex(TOK.acme), scopes: ['evidence:read', 'evidence:create', 'evidence:export'] },
    { sha256: sha256Hex(TOK.acmeRead), scopes: ['evidence:read'] },
  ] },
  { id: 'globex', tokens: [
    { sha256: sha256Hex(TOK.globex), scopes: ['evidence:read', 'evidence:create', 'evidence:export'] },
    { sha256: sha256Hex(TOK.multi), scopes: ['evidence:read', 'evidence:read#tenant/initech'] },
  ] },
]);

let base: string;
let close: () => Promise<void>;
let runner: RunningEvidence;
const evidence = tempStore();
const cases = new FsEvidenceStore(path.join(evidence.root, 'cases'));
const rows: Record<'acme' | 'globex', TimelineEventRow[]> = { acme: [], globex: [] };
const traceId = randomBytes(16).toString('hex');

function row(tenant: string, i: number, service: string): TimelineEventRow {
  return { event_id: randomBytes(16).toString('hex'), ts: (BigInt(Date.now() - 60_000 + i) * 1_000_000n).toString(), tenant_id: tenant, project_id: 'p1',
    kind: i % 2 ? 'deploy.finished' : 'job.failed', actor: 'ci', resource_type: 'service', resource_id: service,
    trace_id: service === 'checkout' && i < 4 ? traceId : '', span_id: '', digest: '', details: `{"n":${i}}`, source: `t/0/${i}#0` };
}

const sizes = async (t: string): Promise<number[]> => (await evidence.list(t, 'envelopes')).map((n) => Number(n.split('.')[0])).sort((a, b) => a - b);
const req = (p: string, token: string, init: RequestInit = {}) => fetch(base + p, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });

beforeAll(async () => {
  const store = await testStore();
  for (const t of ['acme', 'globex'] as const) for (let i = 0; i < 24; i++) rows[t].push(row(t, i, i % 3 === 0 ? 'checkout' : 'search'));
  await store.insertRows(TABLES.timelineEvents, [...rows.acme, ...rows.globex].map(timelineInsertRow));
  const timeline = uniq('ev_api_timeline');
  const clean = uniq('ev_api_clean');
  await createTopics([timeline, clean], 2);
  await produce(timeline, [...rows.acme, ...rows.globex].map((r) => ({ tenant: r.tenant_id, value: eventMessageJson(r) })));
  runner = await startEvidenceRunner({ kafka: testKafka('evidence-api'), storeRoot: evidence.root, store, signer: tenantSigner,
    topics: { timelineEvents: timeline, clean: [clean] }, groupId: uniq('evidence-api'), sealEverySeconds: 0.2, sealEveryEntries: 10 });
  await waitFor('both logs sealed', async () => (await sealedSize(evidence, 'acme')) === 24 && (await sealedSize(evidence, 'globex')) === 24);
  ({ url: base, close } = await startHarness(tokens, [(r) => registerEvidenceRoutes(r, { evidence, cases, store })]));
});
afterAll(async () => { await runner?.stop(); await close?.(); });

describe('evidence API', () => {
  it('serves each tenant its own signed checkpoint and tiles', async () => {
    for (const t of ['acme', 'globex'] as const) {
      const tok = TOK[t];
      const res = await req(`/evidence/${t}/checkpoint`, tok);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      const note = await res.text();
      expect(verifyNote(note, [tenantSigner(t)]).ok).toBe(true);
      const cp = parseCheckpoint(note.slice(0, note.indexOf('\n\n') + 1));
      expect(cp).toMatchObject({ origin: `stella-telemetry.example/tenants/${t}`, size: 24 });
      const tile = await req(`/evidence/${t}/tile/0/000.p/24`, tok);
      expect(tile.status).toBe(200);
      expect((await tile.arrayBuffer()).byteLength).toBe(24 * 32);
      expect(tile.headers.get('cache-control')).toContain('immutable');
      const bundle = Buffer.from(await (await req(`/evidence/${t}/tile/entries/000.p/24`, tok)).arrayBuffer());
      const first = bundle.subarray(2, 2 + bundle.readUInt16BE(0));
      expect(JSON.parse(first.toString()).tenant_id).toBe(t);
    }
    expect((await req('/evidence/acme/tile/0/000.p/999', TOK.acme)).status).toBe(404);
    expect((await req('/evidence/acme/tile/0/..', TOK.acme)).status).toBe(404);
  });

  it('gives an inclusion proof for an event that verifies against the signed checkpoint, and consistency proofs', async () => {
    const e = rows.acme[7]!;
    const res = await req(`/evidence/proof/inclusion?event_id=${e.event_id}`, TOK.acme);
    expect(res.status).toBe(200);
    const p = parseTlogProof(await res.text());
    expect(verifyNote(p.checkpointNote, [tenantSigner('acme')]).ok).toBe(true);
    const cp = parseCheckpoint(p.checkpointNote.slice(0, p.checkpointNote.indexOf('\n\n') + 1));
    const entry = canonicalBytes(JSON.parse(eventMessageJson(e)));
    expect(verifyInclusion(leafHash(entry), p.index, cp.size, p.proof, cp.root)).toBe(true);
    // A different entry does not verify with this proof.
    expect(verifyInclusion(leafHash(canonicalBytes(JSON.parse(eventMessageJson(rows.acme[8]!)))), p.index, cp.size, p.proof, cp.root)).toBe(false);
    // Unknown and another tenant's events are both 404 for this tenant.
    expect((await req(`/evidence/proof/inclusion?event_id=${rows.globex[0]!.event_id}`, TOK.acme)).status).toBe(404);
    expect((await req('/evidence/proof/inclusion?event_id=xyz', TOK.acme)).status).toBe(400);

    // Seal boundaries depend on how the broker batched the records: take the first sealed size.
    const m = (await sizes('acme'))[0]!;
    expect(m).toBeLessThan(24);
    const c = await req(`/evidence/proof/consistency?from=${m}&to=24`, TOK.acme);
    expect(c.status).toBe(200);
    const cpf = parseConsistencyProof(await c.text());
    const ckpt = async (n: number) => parseCheckpoint(Buffer.from((await evidence.read('acme', `checkpoints/${n}`))!).toString().split('\n\n')[0]! + '\n');
    expect(verifyConsistency(m, 24, cpf.proof, (await ckpt(m)).root, (await ckpt(24)).root)).toBe(true);
    expect(verifyConsistency(m, 24, cpf.proof, (await ckpt(24)).root, (await ckpt(24)).root)).toBe(false);
    const sealedNow = await sizes('acme');
    const notSealed = [...Array(23).keys()].map((x) => x + 1).find((x) => !sealedNow.includes(x))!;
    expect((await req(`/evidence/proof/consistency?from=${notSealed}&to=24`, TOK.acme)).status).toBe(404); // not a sealed size
    expect((await req(`/evidence/proof/consistency?from=24&to=${m}`, TOK.acme)).status).toBe(400);
  });

  it('snapshots a case into a deterministic bundle, serves it, verifies it, holds it', async () => {
    const body = JSON.stringify({ kind: 'service', resource_id: 'checkout', case_id: 'case-42' });
    const post = () => req('/evidence/snapshot', TOK.acme, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    const r1 = await post();
    expect(r1.status).toBe(201);
    const s1 = await r1.json() as { bundle_id: string; events: number; tree_size: number };
    expect(s1).toMatchObject({ events: 8, tree_size: 24 });
    const s2 = await (await post()).json() as { bundle_id: string };
    expect(s2.bundle_id).toBe(s1.bundle_id); // same case, same log → same bytes
    const dl = await req(`/evidence/bundles/${s1.bundle_id}`, TOK.acme);
    expect(dl.status).toBe(200);
    const bytes = Buffer.from(await dl.arrayBuffer());
    expect(sha256Hex(bytes)).toBe(s1.bundle_id);
    const trustRoot = parseTrustRootText(await (await req('/evidence/acme/trust-root', TOK.acmeRead)).text());
    expect(verifyBundle(bytes, { trustRoot })).toMatchObject({ ok: true, tenant: 'acme', caseId: 'case-42', entries: 8 });
    expect(verifyBundle(bytes)).toMatchObject({ ok: false, cause: 'TRUST_ROOT_MISSING' });

    const trace = await req('/evidence/snapshot', TOK.acme, { method: 'POST', body: JSON.stringify({ kind: 'trace', resource_id: traceId, case_id: 'case-trace' }) });
    expect(await trace.json()).toMatchObject({ events: 2 }); // events 0 and 3 of checkout carry the trace id

    const v = await req('/evidence/verify', TOK.acme, { method: 'POST', body: bytes });
    expect(await v.json()).toMatchObject({ exit_code: 0, result: { ok: true } });
    const bad = Buffer.from(bytes);
    bad[bad.length - 20]! ^= 0xff; // inside the gzip stream: corrupt
    const vb = await (await req('/evidence/verify', TOK.acme, { method: 'POST', body: bad })).json() as { exit_code: number; result: { ok: boolean; cause: string } };
    expect(vb.result.ok).toBe(false);
    expect(vb.exit_code).toBeGreaterThanOrEqual(10);

    const h1 = await req('/evidence/hold/case-42', TOK.acme, { method: 'POST' });
    expect(h1.status).toBe(201);
    expect(await h1.json()).toMatchObject({ created: true, hold: { case_id: 'case-42', bundles: [s1.bundle_id] } });
    const h2 = await req('/evidence/hold/case-42', TOK.acme, { method: 'POST' });
    expect(await h2.json()).toMatchObject({ created: false });

    expect((await req('/evidence/snapshot', TOK.acme, { method: 'POST', body: JSON.stringify({ kind: 'service', resource_id: 'nope', case_id: 'c' }) })).status).toBe(404);
    expect((await req('/evidence/snapshot', TOK.acme, { method: 'POST', body: JSON.stringify({ kind: 'service', resource_id: 'checkout', case_id: '../x' }) })).status).toBe(400);
  });

  it('refuses every route to a token of another tenant, and to a token without the scope', async () => {
    const id = (await (await req('/evidence/snapshot', TOK.acme, { method: 'POST', body: JSON.stringify({ kind: 'service', resource_id: 'search', case_id: 'iso' }) })).json() as { bundle_id: string }).bundle_id;
    const bundle = Buffer.from(await (await req(`/evidence/bundles/${id}`, TOK.acme)).arrayBuffer());
    const ev = rows.acme[2]!.event_id;
    const routes: [string, string, NonNullable<RequestInit['body']>?][] = [
      ['GET', '/evidence/acme/checkpoint'], ['GET', '/evidence/acme/trust-root'], ['GET', '/evidence/acme/tile/0/000.p/24'], ['GET', '/evidence/acme/tile/entries/000.p/24'],
      ['GET', `/evidence/proof/inclusion?event_id=${ev}&tenant=acme`], ['GET', '/evidence/proof/consistency?from=10&to=24&tenant=acme'],
      ['POST', '/evidence/snapshot?tenant=acme', JSON.stringify({ kind: 'service', resource_id: 'search', case_id: 'x' })],
      ['GET', `/evidence/bundles/${id}?tenant=acme`], ['POST', '/evidence/verify?tenant=acme', bundle], ['POST', '/evidence/hold/iso?tenant=acme'],
    ];
    for (const [method, p, body] of routes) {
      const r = await req(p, TOK.globex, { method, ...(body ? { body } : {}) });
      expect(r.status, `${method} ${p}`).toBe(403);
      expect(await r.text(), `${method} ${p}`).not.toContain('stella-telemetry.example/tenants/acme\n');
      expect((await fetch(base + p, { method, ...(body ? { body } : {}) })).status, `${method} ${p} without token`).toBe(401);
    }
    // Acting for its own tenant, globex still sees nothing of acme's.
    expect((await req(`/evidence/bundles/${id}`, TOK.globex)).status).toBe(404);
    expect((await req(`/evidence/proof/inclusion?event_id=${ev}`, TOK.globex)).status).toBe(404);
    // Verified against globex's own trust root, acme's bundle is another log's: a named cause, nothing of acme's revealed.
    const other = await req('/evidence/verify', TOK.globex, { method: 'POST', body: bundle });
    expect(other.status).toBe(200);
    expect(await other.json()).toMatchObject({ exit_code: 21, result: { ok: false, cause: 'ORIGIN_MISMATCH' } });
    // A read-only acme token cannot create or export.
    expect((await req('/evidence/snapshot', TOK.acmeRead, { method: 'POST', body: JSON.stringify({ kind: 'service', resource_id: 'search', case_id: 'x' }) })).status).toBe(403);
    expect((await req(`/evidence/bundles/${id}`, TOK.acmeRead)).status).toBe(403);
    expect((await req('/evidence/hold/iso', TOK.acmeRead, { method: 'POST' })).status).toBe(403);
    expect((await req('/evidence/acme/checkpoint', TOK.acmeRead)).status).toBe(200);
    // ?tenant= contradicting the path tenant is refused.
    expect((await req('/evidence/acme/checkpoint?tenant=globex', TOK.globex)).status).toBe(400);
  });

  it('snapshotCreate writes a bundle that forensicVerify accepts; auth failures exit 3', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-snap-'));
    const out = path.join(dir, 'case.tar.gz');
    const r = await snapshotCreate({ baseUrl: base, token: TOK.acme, caseId: 'case-cli', scope: 'service', id: 'checkout', out });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('8 events');
    const trustRoot = parseTrustRootText(await (await req('/evidence/acme/trust-root', TOK.acme)).text());
    const v = await forensicVerify(out, { trustRoot });
    expect(v.exitCode).toBe(0);
    const b = readFileSync(out);
    const flipped = path.join(dir, 'bad.tar.gz');
    b[b.length - 30]! ^= 1;
    writeFileSync(flipped, b);
    expect((await forensicVerify(flipped, { trustRoot })).exitCode).not.toBe(0);
    expect((await snapshotCreate({ baseUrl: base, token: TOK.globex, tenant: 'acme', caseId: 'c', scope: 'service', id: 'checkout', out })).exitCode).toBe(3);
    expect((await snapshotCreate({ baseUrl: base, token: TOK.acmeRead, caseId: 'c', scope: 'service', id: 'checkout', out })).exitCode).toBe(3);
    expect((await snapshotCreate({ baseUrl: base, token: TOK.acme, caseId: 'c', scope: 'service', id: 'missing', out })).exitCode).toBe(1);
  });

  it('createEvidenceLinks tells the timeline API where an event is sealed', async () => {
    const links = createEvidenceLinks(evidence);
    const sealed = await sizes('acme');
    expect(sealed[sealed.length - 1]).toBe(24);
    const l = await links('acme', rows.acme[23]!);
    const i = Number(l.index);
    const to = sealed.find((x) => x > i)!;
    const from = sealed[sealed.indexOf(to) - 1] ?? 0;
    expect(l).toEqual({ status: 'sealed', index: String(i), segment: `${from}..${to}`, checkpoint: '/evidence/acme/checkpoint',
      inclusion_proof: `/evidence/proof/inclusion?event_id=${rows.acme[23]!.event_id}` });
    // The entry at that index is the event.
    expect(JSON.parse(Buffer.from(await new LogReader(evidence, 'acme').entry(i, 24)).toString()).event_id).toBe(rows.acme[23]!.event_id);
    expect(await links('acme', rows.globex[12]!)).toEqual({ status: 'pending' }); // another tenant's event: not in acme's log
  });
});
