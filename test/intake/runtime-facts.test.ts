// POST /api/v1/runtime-facts through `stella run` as wired (every part in one process, the test
// broker, embedded chdb): the happy path ends as rows in ClickHouse, a reach.runtime.ingested event
// on the tenant's timeline and an entry sealed in its evidence log; every refusal answers its named
// reason and stores nothing (no CAS blob, no ingest) but a runtime.ingest.failed event; the same
// body twice (and concurrently) is one ingest; DSSE envelopes come from an independent signer
// (Python `cryptography`, dsse_sign.py); another tenant neither reads nor writes acme's facts.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARTS, runPipeline, type RunningPipeline } from '../../cli/run.ts';
import { buildConfig } from '../../lib/config.ts';
import { GraphRegistry } from '../../lib/intake/graphs.ts';
import { defaultTopicNames } from '../../lib/kafka/topics.ts';
import { sha256Hex } from '../../lib/tenancy.ts';
import { ingestIdFor, runtimeFactsStatement } from '../../processors/intake/runtime-facts.ts';
import { kafkaEnv, uniq } from '../support/kafka.ts';
import { pythonSign, type Envelope } from './sign.ts';

const ACME = 'runtime-facts-acme-token-0123456789';
const GLOBEX = 'runtime-facts-globex-token-0123456789';
const READER = 'runtime-facts-acme-read-only-token';
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-runtime-'));
let pipeline: RunningPipeline;
let api: string;
const GRAPH = `sha256:${'9'.repeat(64)}`;
const t0 = BigInt(Date.now() - 60_000) * 1_000_000n;

function iso(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, `.${(ns % 1_000_000_000n).toString().padStart(9, '0')}Z`);
}
function facts(n: number, seed: string): Buffer {
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ symbol_id: `${seed}!fn_${i}`, purl: 'pkg:deb/debian/openssl@3.0.11-1?arch=amd64',
    timestamp: iso(t0 + BigInt(i) * 1000n), pid: 1000 + i, container: i % 2 ? 'c0ffee' : '', count: i + 1 }));
  return Buffer.from(lines.join('\n') + '\n');
}
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const signedBody = facts(5, 'signed');
const otherBody = facts(3, 'other');
let keys: Record<string, string>;
let env: Record<'good' | 'untrusted' | 'forged' | 'otherDigest' | 'otherGraph' | 'otherTenant', Envelope>;

beforeAll(async () => {
  const stmt = (tenant: string, graph: string, body: Buffer) => JSON.stringify(runtimeFactsStatement(tenant, graph, sha(body)));
  const s = pythonSign(['trusted', 'stranger'], [
    { key: 'trusted', keyid: 'acme-ci', payload: stmt('acme', GRAPH, signedBody) },
    { key: 'stranger', keyid: 'stranger', payload: stmt('acme', GRAPH, signedBody) },
    { key: 'stranger', keyid: 'acme-ci', payload: stmt('acme', GRAPH, signedBody) },
    { key: 'trusted', keyid: 'acme-ci', payload: stmt('acme', GRAPH, otherBody) },
    { key: 'trusted', keyid: 'acme-ci', payload: stmt('acme', `sha256:${'8'.repeat(64)}`, signedBody) },
    { key: 'trusted', keyid: 'acme-ci', payload: stmt('globex', GRAPH, signedBody) },
  ]);
  keys = s.keys;
  const [good, untrusted, forged, otherDigest, otherGraph, otherTenant] = s.envelopes as [Envelope, Envelope, Envelope, Envelope, Envelope, Envelope];
  env = { good, untrusted, forged, otherDigest, otherGraph, otherTenant };
  const p = uniq('rt');
  const cfg = buildConfig({
    dataDir: dir,
    receiver: { grpcPort: 0, httpPort: 0 }, admin: { port: 0 }, api: { port: 0 },
    kafka: { partitions: 2, groupIdPrefix: `${p}-`, topics: Object.fromEntries(Object.keys(defaultTopicNames).map((k) => [k, `${p}_${k}`])) },
    tenants: [
      { id: 'acme', tokens: [{ sha256: sha256Hex(ACME), scopes: ['runtime:write', 'obs:read', 'timeline:read', 'evidence:read'], name: 'acme-agent' },
        { sha256: sha256Hex(READER), scopes: ['obs:read'] }] },
      { id: 'globex', tokens: [{ sha256: sha256Hex(GLOBEX), scopes: ['runtime:write', 'obs:read', 'timeline:read'] }] },
    ],
    intake: { trust: { acme: { keys: [{ keyid: 'acme-ci', publicKey: keys.trusted }] }, globex: { keys: [{ keyid: 'globex-ci', publicKey: keys.stranger }] } },
      runtimeFacts: { maxBodyBytes: 256 * 1024, maxDecompressedBytes: 1024 * 1024, maxLineBytes: 1024 } },
    evidence: { sealEverySeconds: 1 },
  }, kafkaEnv());
  // GRAPH is a registered graph for both tenants (facts of an unknown graph are orphans: runtime-orphans.test.ts).
  for (const t of ['acme', 'globex']) await GraphRegistry.under(dir).register(t, GRAPH, `cas://${t}/${GRAPH.slice(7)}`);
  pipeline = await runPipeline(cfg, new Set(PARTS), () => {});
  api = `http://127.0.0.1:${pipeline.ports.api}`;
}, 180_000);

afterAll(async () => {
  await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function poll<T>(fn: () => Promise<T | undefined>, ms = 45_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface PostOpts { token?: string; graph?: string | null; headers?: Record<string, string>; envelope?: Envelope | string; query?: string }
function post(body: Buffer, o: PostOpts = {}): Promise<Response> {
  const q = new URLSearchParams();
  if (o.graph !== null) q.set('graph_hash', o.graph ?? GRAPH);
  const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? ACME}`, 'content-type': 'application/x-ndjson', ...o.headers };
  if (o.envelope !== undefined) headers['x-stella-dsse-envelope'] = typeof o.envelope === 'string' ? o.envelope : Buffer.from(JSON.stringify(o.envelope)).toString('base64');
  return fetch(`${api}/api/v1/runtime-facts?${q}${o.query ?? ''}`, { method: 'POST', headers, body });
}

const casFiles = (tenant: string): string[] => {
  const root = path.join(dir, 'cas', tenant);
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((d) => readdirSync(path.join(root, d)).map((f) => `${d}/${f}`)).sort();
};

type Ev = { event_id: string; kind: string; resource: { type: string; id: string }; digest: string; details: Record<string, unknown> };
async function events(token: string, kind: string): Promise<Ev[]> {
  const r = await fetch(`${api}/timeline?kind=${kind}&limit=1000`, { headers: { authorization: `Bearer ${token}` } });
  expect(r.status).toBe(200);
  return ((await r.json()) as { events: Ev[] }).events;
}
async function ingest(token: string, id: string): Promise<{ status: number; body: { ingest?: Record<string, string>; facts?: Record<string, unknown>[]; stored_facts?: number } }> {
  const r = await fetch(`${api}/api/v1/runtime-facts/${id}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, body: await r.json() as never };
}

describe('accepted runtime facts', () => {
  it('gzip NDJSON: 202 after Kafka acked, CAS blob, rows in ClickHouse, timeline event, sealed evidence entry', async () => {
    const body = facts(40, 'happy');
    const res = await post(gzipSync(body), { headers: { 'content-encoding': 'gzip', 'content-sha256': sha(body).slice(7), 'x-stella-tenant': 'acme' } });
    expect(res.status).toBe(202);
    const ingestId = ingestIdFor('acme', GRAPH, sha(body));
    expect(res.headers.get('content-sha256')).toBe(sha(body).slice(7));
    expect(res.headers.get('x-graph-hash')).toBe(GRAPH);
    expect(res.headers.get('x-ingest-id')).toBe(ingestId);
    expect(await res.json()).toEqual({ ingest_id: ingestId, graph_hash: GRAPH, content_sha256: sha(body), cas_uri: `cas://acme/${sha(body).slice(7)}`,
      records: 40, size: body.length, signed_by: null, graph_known: true });
    // The CAS holds the decompressed NDJSON under its digest.
    expect(readFileSync(path.join(dir, 'cas', 'acme', sha(body).slice(7, 9), sha(body).slice(7)))).toEqual(body);

    const stored = await poll(async () => { const r = await ingest(ACME, ingestId); return r.status === 200 && r.body.stored_facts === 40 ? r.body : undefined; });
    expect(stored.ingest).toMatchObject({ ingest_id: ingestId, tenant_id: 'acme', graph_hash: GRAPH, content_sha256: sha(body), records: '40', signed_by: '', via: 'api' });
    expect(stored.facts![0]).toEqual({ line: 1, ts_unix_nano: t0.toString(), symbol_id: 'happy!fn_0', purl: 'pkg:deb/debian/openssl@3.0.11-1?arch=amd64', pid: 1000, container: '', count: '1' });

    const ev = await poll(async () => (await events(ACME, 'reach.runtime.ingested')).find((e) => e.resource.id === ingestId));
    expect(ev.digest).toBe(sha(body));
    expect(ev.details).toMatchObject({ ingest_id: ingestId, graph_hash: GRAPH, content_sha256: sha(body), tenant: 'acme', records: 40 });
    // The receipt is in acme's evidence log: an inclusion proof against a signed checkpoint.
    const proof = await poll(async () => {
      const r = await fetch(`${api}/evidence/proof/inclusion?event_id=${ev.event_id}`, { headers: { authorization: `Bearer ${ACME}` } });
      return r.status === 200 ? r.text() : undefined;
    });
    expect(proof.startsWith('c2sp.org/tlog-proof@v1\n')).toBe(true);

    // Another tenant: no read of acme's ingest, nothing on its timeline.
    expect((await ingest(GLOBEX, ingestId)).status).toBe(404);
    expect((await events(GLOBEX, 'reach.runtime.ingested')).filter((e) => e.resource.id === ingestId)).toEqual([]);
  }, 120_000);

  it('the same body twice, and five times at once, is one ingest with its facts once', async () => {
    const body = facts(25, 'dup');
    const ingestId = ingestIdFor('acme', GRAPH, sha(body));
    const first = await post(body);
    expect(first.status).toBe(202);
    const again = await Promise.all(Array.from({ length: 5 }, () => post(body)));
    for (const r of again) { expect(r.status).toBe(202); expect(r.headers.get('x-ingest-id')).toBe(ingestId); }
    await poll(async () => { const r = await ingest(ACME, ingestId); return r.status === 200 && r.body.stored_facts === 25 ? true : undefined; });
    // Let every redelivery land, then check nothing doubled.
    await poll(async () => ((await events(ACME, 'reach.runtime.ingested')).filter((e) => e.resource.id === ingestId).length === 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 1500));
    expect((await ingest(ACME, ingestId)).body.stored_facts).toBe(25);
    expect((await events(ACME, 'reach.runtime.ingested')).filter((e) => e.resource.id === ingestId)).toHaveLength(1);
    expect(casFiles('acme').filter((f) => f.endsWith(sha(body).slice(7)))).toHaveLength(1);
  }, 90_000);

  it('a DSSE envelope from an independent signer (Python cryptography) over the facts\' digest, trusted for acme', async () => {
    const res = await post(signedBody, { envelope: env.good });
    expect(res.status).toBe(202);
    const out = await res.json() as { ingest_id: string; signed_by: string };
    expect(out.signed_by).toBe('acme-ci');
    const stored = await poll(async () => { const r = await ingest(ACME, out.ingest_id); return r.status === 200 ? r.body : undefined; });
    expect(stored.ingest!.signed_by).toBe('acme-ci');
    const envDigest = createHash('sha256').update(JSON.stringify(env.good)).digest('hex');
    expect(stored.ingest!.envelope_cas_uri).toBe(`cas://acme/${envDigest}`);
  }, 60_000);
});

describe('refusals store nothing and say why', () => {
  const cases: [string, () => Promise<Response>, number, string, Record<string, unknown>?][] = [
    ['no graph_hash', () => post(facts(2, 'r1'), { graph: null }), 400, 'GRAPH_HASH_INVALID'],
    ['a malformed graph_hash', () => post(facts(2, 'r2'), { graph: 'sha256:xyz' }), 400, 'GRAPH_HASH_INVALID'],
    ['a tenant header naming another tenant', () => post(facts(2, 'r3'), { headers: { 'x-stella-tenant': 'globex' } }), 403, 'TENANT_MISMATCH'],
    ['JSON instead of NDJSON', () => post(facts(2, 'r4'), { headers: { 'content-type': 'application/json' } }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['an unknown encoding', () => post(facts(2, 'r5'), { headers: { 'content-encoding': 'br' } }), 415, 'UNSUPPORTED_ENCODING'],
    ['a declared Content-SHA256 that does not match', () => post(facts(2, 'r6'), { headers: { 'content-sha256': 'a'.repeat(64) } }), 400, 'CONTENT_SHA256_MISMATCH'],
    ['a malformed Content-SHA256', () => post(facts(2, 'r7'), { headers: { 'content-sha256': 'nope' } }), 400, 'CONTENT_SHA256_INVALID'],
    ['gzip that is not gzip', () => post(Buffer.from('not gzip at all'), { headers: { 'content-encoding': 'gzip' } }), 400, 'GZIP_INVALID'],
    ['a zip bomb (inflates past maxDecompressedBytes)', () => post(gzipSync(Buffer.alloc(8 * 1024 * 1024, 0x20)), { headers: { 'content-encoding': 'gzip' } }), 413, 'DECOMPRESSED_TOO_LARGE'],
    ['a body over maxBodyBytes', () => post(Buffer.alloc(300 * 1024, 0x20)), 413, 'BODY_TOO_LARGE'],
    ['an empty body', () => post(Buffer.alloc(0)), 400, 'EMPTY_BODY'],
    ['a record missing count, on line 3', () => post(Buffer.concat([facts(2, 'r8'), Buffer.from(JSON.stringify({ symbol_id: 's', purl: 'pkg:npm/x@1', timestamp: '2026-12-03T12:00:00Z', pid: 1, container: '' }) + '\n')])),
      400, 'RECORD_INVALID', { line: 3, field: 'count' }],
    ['a line that is not JSON, on line 2', () => post(Buffer.concat([facts(1, 'r9'), Buffer.from('{"symbol_id":\n')])), 400, 'LINE_NOT_JSON', { line: 2 }],
    ['a duplicated key', () => post(Buffer.from('{"symbol_id":"a","purl":"pkg:npm/x@1","timestamp":"2026-12-03T12:00:00Z","pid":1,"container":"","count":1,"count":2}\n')),
      400, 'DUPLICATE_KEY', { line: 1 }],
    ['a line over maxLineBytes', () => post(Buffer.from(JSON.stringify({ symbol_id: 'x'.repeat(2000), purl: 'pkg:npm/x@1', timestamp: '2026-12-03T12:00:00Z', pid: 1, container: '', count: 1 }) + '\n')),
      400, 'LINE_TOO_LONG', { line: 1 }],
    ['an envelope signed by a key acme does not trust', () => post(signedBody, { envelope: env.untrusted }), 403, 'SIGNATURE_UNTRUSTED'],
    ['an envelope whose signature is not the trusted key\'s', () => post(signedBody, { envelope: env.forged }), 403, 'SIGNATURE_INVALID'],
    ['an envelope over other facts', () => post(signedBody, { envelope: env.otherDigest }), 400, 'ENVELOPE_SUBJECT_MISMATCH'],
    ['an envelope for another graph', () => post(signedBody, { envelope: env.otherGraph }), 400, 'ENVELOPE_SUBJECT_MISMATCH'],
    ['an envelope for another tenant', () => post(signedBody, { envelope: env.otherTenant }), 400, 'ENVELOPE_SUBJECT_MISMATCH'],
    ['an envelope header that is not base64 JSON', () => post(signedBody, { envelope: '%%%' }), 400, 'ENVELOPE_MALFORMED'],
    ['acme\'s valid envelope sent by globex (globex trusts other keys)', () => post(signedBody, { token: GLOBEX, envelope: env.good }), 403, 'SIGNATURE_UNTRUSTED'],
  ];

  it.each(cases)('%s', async (_name, send, status, reason, extra) => {
    const before = { acme: casFiles('acme'), globex: casFiles('globex') };
    const res = await send();
    expect(res.status).toBe(status);
    const body = await res.json() as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ code: reason, reason, ...extra });
    expect(typeof body.error.message).toBe('string');
    expect(res.headers.get('x-ingest-id')).toBeNull();
    // Nothing stored: no CAS blob appeared in either tenant's namespace.
    expect({ acme: casFiles('acme'), globex: casFiles('globex') }).toEqual(before);
  }, 30_000);

  it('each refusal is on the tenant\'s timeline as runtime.ingest.failed with its reason, and no ingest exists for it', async () => {
    const failed = await poll(async () => {
      const evs = await events(ACME, 'runtime.ingest.failed');
      return evs.length >= cases.length - 1 ? evs : undefined; // one case is globex's
    });
    const reasons = new Set(failed.map((e) => e.details.reason));
    for (const [, , , reason] of cases) expect(reasons.has(reason), reason).toBe(true);
    const lineEvent = failed.find((e) => e.details.reason === 'RECORD_INVALID')!;
    expect(lineEvent.details).toMatchObject({ line: 3, field: 'count', graph_hash: GRAPH, via: 'api' });
    // The refused facts never became an ingest.
    const refusedBody = facts(2, 'r6');
    expect((await ingest(ACME, ingestIdFor('acme', GRAPH, sha(refusedBody)))).status).toBe(404);
    const globex = await poll(async () => { const evs = await events(GLOBEX, 'runtime.ingest.failed'); return evs.length ? evs : undefined; });
    expect(globex.map((e) => e.details.reason)).toEqual(['SIGNATURE_UNTRUSTED']);
  }, 60_000);

  it('auth: no token 401, a read-only token 403, another tenant via ?tenant= 403; nothing published for them', async () => {
    const res = await fetch(`${api}/api/v1/runtime-facts?graph_hash=${GRAPH}`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: facts(1, 'a1') });
    expect(res.status).toBe(401);
    expect((await post(facts(1, 'a2'), { token: READER })).status).toBe(403);
    const cross = await post(facts(1, 'a3'), { query: '&tenant=globex' });
    expect(cross.status).toBe(403);
    expect(((await cross.json()) as { error: { required_scope: string } }).error.required_scope).toBe('runtime:write#tenant/globex');
    expect(casFiles('globex')).toEqual([]);
  }, 30_000);
});
