// GET /attestations and POST /attestations/verify (scope attest:read) over the real pipeline: the
// evidence runner consumes a real Kafka topic, seals into per-tenant logs, writes its segment rows
// to the embedded ClickHouse, and rotates acme's and globex's key (stella keys rotate) midway. The
// API lists each tenant's statements only, pages through them, and verifies envelopes against the
// tenant's trust root from the server's key schedule; forged envelopes fail with their cause, over
// HTTP and through `stella forensic attest list|verify`.
import { createHash, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { registerAttestationRoutes } from '../../api/attestation-routes.ts';
import { forTenant } from '../../lib/store/index.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { ensureDevSigningKey } from '../../processors/evidence/dev-key.ts';
import { IN_TOTO_PAYLOAD_TYPE, serializeEnvelope, signEnvelope, type DsseEnvelope } from '../../processors/evidence/dsse.ts';
import { loadSigningKey, pendingKeyFile, writePendingKey } from '../../processors/evidence/keys.ts';
import { defaultOrigin } from '../../processors/evidence/layout.ts';
import { signerFromKeyObject } from '../../processors/evidence/note.ts';
import { startEvidenceRunner, type RunningEvidence } from '../../processors/evidence/runner.ts';
import { canonicalBytes } from '../../processors/evidence/jcs.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { runStellaCli } from '../support/stella.ts';
import { testStore } from '../timeline/support.ts';
import { startHarness } from './api-harness.ts';
import { tempStore } from './helpers.ts';
import { produce, sealedSize, testEvent, waitFor } from './runner-support.ts';

const TOK = { acme: 'att-acme-reader', globex: 'att-globex-reader', acmeEvidenceOnly: 'att-acme-evidence-only' };
const tokens = new TokenRegistry([
  { id: 'acme', tokens: [
    { sha256: sha256Hex(TOK.acme), scopes: ['attest:read'], name: 'acme-auditor' },
    { sha256: sha256Hex(TOK.acmeEvidenceOnly), scopes: ['evidence:read'] },
  ] },
  { id: 'globex', tokens: [{ sha256: sha256Hex(TOK.globex), scopes: ['attest:read'] }] },
]);

interface Item { type: string; size: number; previous_size: number; sealed_at: string; signed_by: string; statement_sha256: string; subject: { name: string }[];
  rotation?: { previous_key: string; new_key: string; valid_from_size: number }; envelope: DsseEnvelope }
interface ListBody { tenant: string; attestations: Item[]; next_cursor: string | null }

const evidence = tempStore();
let runner: RunningEvidence;
let base: string;
let close: () => Promise<void>;
let keyFile: string;
let dataDir: string;
const work = mkdtempSync(path.join(os.tmpdir(), 'stella-attest-'));

const get = (p: string, token: string | null = TOK.acme) => fetch(base + p, { headers: token !== null ? { authorization: `Bearer ${token}` } : {} });
const list = async (p = '/attestations', token = TOK.acme): Promise<ListBody> => {
  const res = await get(p, token);
  expect(res.status).toBe(200);
  return (await res.json()) as ListBody;
};
const verify = async (body: Buffer | string, token = TOK.acme, q = '') => {
  const res = await fetch(`${base}/attestations/verify${q}`, { method: 'POST', body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
  return { status: res.status, body: (await res.json()) as { tenant: string; exit_code: number; result: { ok: boolean; cause?: string; detail?: string; type?: string; size?: number } } };
};
const envelopeBytes = (e: DsseEnvelope): Buffer => serializeEnvelope(e);
const stella = (args: string[], token = TOK.acme) => runStellaCli(args, { ...process.env as Record<string, string>, STELLA_LOG_LEVEL: 'silent', STELLA_API_URL: base, STELLA_TOKEN: token, STELLA_DATA_DIR: work });

beforeAll(async () => {
  const timeline = uniq('att_timeline');
  const clean = uniq('att_clean');
  await createTopics([timeline, clean], 2);
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'stella-attest-key-'));
  keyFile = (await ensureDevSigningKey(dataDir)).file;
  const store = await testStore();
  runner = await startEvidenceRunner({ kafka: testKafka('attest-api'), storeRoot: evidence.root, store, keyFile,
    topics: { timelineEvents: timeline, clean: [clean] }, groupId: uniq('attest-api'), sealEverySeconds: 0.2, sealEveryEntries: 3 });
  await produce(timeline, [0, 1, 2, 3, 4].map((i) => testEvent('acme', i)).concat([0, 1].map((i) => testEvent('globex', i))).map((e) => ({ tenant: e.tenant_id, value: JSON.stringify(e) })));
  await waitFor('both tenants sealed', async () => (await sealedSize(evidence, 'acme')) === 5 && (await sealedSize(evidence, 'globex')) === 2);
  // stella keys rotate: the running runner rotates both logs (a seal whose last entry is the rotation) and promotes the key.
  await writePendingKey(keyFile);
  await waitFor('logs rotated, key promoted', async () => (await sealedSize(evidence, 'acme')) === 6 && (await sealedSize(evidence, 'globex')) === 3 && !existsSync(pendingKeyFile(keyFile)));
  await produce(timeline, [5, 6].map((i) => ({ tenant: 'acme', value: JSON.stringify(testEvent('acme', i)) })));
  await waitFor('acme sealed after the rotation', async () => (await sealedSize(evidence, 'acme')) === 8);
  ({ url: base, close } = await startHarness(tokens, [(r) => registerAttestationRoutes(r, { evidence })]));
}, 120_000);
afterAll(async () => { await runner?.stop(); await close?.(); });

describe('GET /attestations', () => {
  it('lists every seal statement of the token tenant, newest first, the rotation seal typed key_rotation, matching ClickHouse segments', async () => {
    const b = await list();
    expect(b.tenant).toBe('acme');
    const sizes = b.attestations.map((a) => a.size);
    expect(sizes).toEqual([...sizes].sort((x, y) => y - x));
    expect(sizes[0]).toBe(8);
    expect(b.next_cursor).toBeNull();
    // Chained: each statement starts where the one before it (in log order) ended.
    const asc = [...b.attestations].reverse();
    asc.forEach((a, i) => expect(a.previous_size).toBe(i === 0 ? 0 : asc[i - 1]!.size));
    const rotations = b.attestations.filter((a) => a.type === 'key_rotation');
    expect(rotations.map((a) => a.size)).toEqual([6]);
    const oldKey = await loadSigningKey(path.join(dataDir, readdirSync(dataDir).find((n) => n.includes('.retired-'))!), defaultOrigin('acme'));
    const newKey = await loadSigningKey(keyFile, defaultOrigin('acme'));
    expect(rotations[0]!.rotation).toEqual({ previous_key: oldKey.verifierKey, new_key: newKey.verifierKey, valid_from_size: 7 });
    // The rotation seal is the old key's last; the seal after it is the new key's.
    expect(rotations[0]!.signed_by).toBe(`${oldKey.name}+${oldKey.keyIdHex}`);
    expect(b.attestations[0]!.signed_by).toBe(`${newKey.name}+${newKey.keyIdHex}`);
    for (const a of b.attestations) {
      expect(a.subject[0]!.name).toBe(`${defaultOrigin('acme')}/checkpoints/${a.size}`);
      expect(a.statement_sha256).toBe(createHash('sha256').update(Buffer.from(a.envelope.payload, 'base64')).digest('hex'));
    }
    // The runner's segment rows in ClickHouse name the same statements.
    const segments = await waitFor('segment rows', async () => {
      const s = await forTenant(await testStore(), 'acme').listEvidenceSegments();
      return s.length === b.attestations.length ? s : false;
    });
    expect(new Map(segments.map((s) => [Number(s.to_size), s.statement_sha256]))).toEqual(new Map(b.attestations.map((a) => [a.size, a.statement_sha256])));
    expect((await list('/attestations?type=key_rotation')).attestations.map((a) => a.size)).toEqual([6]);
    expect((await list('/attestations?type=seal')).attestations.every((a) => a.type === 'seal')).toBe(true);
  });

  it('pages with an opaque cursor through exactly the full list; a foreign cursor or limit is a 400 naming the parameter', async () => {
    const all = (await list()).attestations.map((a) => a.size);
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const b: ListBody = await list(`/attestations?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(b.attestations.length).toBeLessThanOrEqual(2);
      seen.push(...b.attestations.map((a) => a.size));
      cursor = b.next_cursor;
      pages++;
    } while (cursor && pages < 20);
    expect(seen).toEqual(all);
    expect(pages).toBe(Math.ceil(all.length / 2));
    for (const q of ['cursor=djE6MTIz', 'limit=0', 'limit=501', 'type=intake']) {
      const res = await get(`/attestations?${q}`);
      expect(res.status, q).toBe(400);
      expect(((await res.json()) as { error: { parameter: string } }).error.parameter).toBe(q.split('=')[0]);
    }
  });

  it('never serves another tenant: each token sees its own log; asking for another tenant is 403; no attest:read is 403; no token is 401', async () => {
    const g = await list('/attestations', TOK.globex);
    expect(g.tenant).toBe('globex');
    expect(g.attestations.map((a) => a.size)).toEqual([3, 2, 1].filter((s) => g.attestations.some((a) => a.size === s)));
    expect(g.attestations.every((a) => a.subject[0]!.name.startsWith(defaultOrigin('globex') + '/'))).toBe(true);
    const a = await list();
    expect(a.attestations.every((x) => x.subject[0]!.name.startsWith(defaultOrigin('acme') + '/'))).toBe(true);
    expect((await get('/attestations?tenant=globex', TOK.acme)).status).toBe(403);
    expect((await get('/attestations?tenant=acme', TOK.globex)).status).toBe(403);
    const noScope = await get('/attestations', TOK.acmeEvidenceOnly);
    expect(noScope.status).toBe(403);
    expect(await noScope.text()).toContain('attest:read');
    expect((await get('/attestations', null)).status).toBe(401);
    expect((await verify('{}', TOK.acme, '?tenant=globex')).status).toBe(403);
  });
});

describe('POST /attestations/verify', () => {
  it('verifies every listed envelope (before, at and after the rotation) against the tenant trust root', async () => {
    for (const a of (await list()).attestations) {
      const v = await verify(envelopeBytes(a.envelope));
      expect(v.status).toBe(200);
      expect(v.body, String(a.size)).toMatchObject({ tenant: 'acme', exit_code: 0, result: { ok: true, size: a.size, type: a.type } });
    }
  });

  it('fails closed with named causes: fresh key, borrowed key id, tampered payload, another tenant, retired key, a size the log never sealed, garbage', async () => {
    const genuine = (await list()).attestations[0]!.envelope;
    const payload = Buffer.from(genuine.payload, 'base64');
    const statement = JSON.parse(payload.toString('utf8')) as { predicate: { new: { size: number; root: string }; sealed_at: string } };
    const fresh = signerFromKeyObject(defaultOrigin('acme'), generateKeyPairSync('ed25519').privateKey);
    const cases: [string, Buffer | string, string, number][] = [];
    // A fresh key signs the genuine statement: its key is no key of acme's trust root.
    cases.push(['fresh key', envelopeBytes(signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, fresh)), 'KEY_UNTRUSTED', 20]);
    // ...and claims the real key's id: the signature does not verify under the real key.
    const borrowed = signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, fresh);
    borrowed.signatures[0]!.keyid = genuine.signatures[0]!.keyid;
    cases.push(['borrowed key id', envelopeBytes(borrowed), 'SIGNATURE_INVALID', 16]);
    // The genuine signature over an edited statement.
    const edited = { ...genuine, payload: canonicalBytes({ ...statement, predicate: { ...statement.predicate, sealed_at: '2020-01-01T00:00:00.000Z' } }).toString('base64') };
    cases.push(['tampered payload', envelopeBytes(edited), 'SIGNATURE_INVALID', 16]);
    // globex's genuine statement, sent with acme's token.
    cases.push(['another tenant', envelopeBytes((await list('/attestations', TOK.globex)).attestations[0]!.envelope), 'KEY_UNTRUSTED', 20]);
    // The retired key, still on disk, signs a statement for a size past its retirement.
    const retired = await loadSigningKey(path.join(dataDir, readdirSync(dataDir).find((n) => n.includes('.retired-'))!), defaultOrigin('acme'));
    cases.push(['retired key', envelopeBytes(signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, retired)), 'KEY_UNTRUSTED', 20]);
    // The current key (stolen) signs a statement for a size the log never sealed.
    const current = await loadSigningKey(keyFile, defaultOrigin('acme'));
    const unsealed = { ...statement, subject: [{ name: `${defaultOrigin('acme')}/checkpoints/999`, digest: { sha256: 'ab'.repeat(32) } }],
      predicate: { ...statement.predicate, new: { ...statement.predicate.new, size: 999 } } };
    cases.push(['unsealed size', envelopeBytes(signEnvelope(IN_TOTO_PAYLOAD_TYPE, canonicalBytes(unsealed), current)), 'CHECKPOINT_INCONSISTENT', 15]);
    cases.push(['not an envelope', '{"hello":"world"}', 'BUNDLE_CORRUPT', 10]);
    for (const [what, body, cause, code] of cases) {
      const v = await verify(body);
      expect(v.status, what).toBe(200);
      expect(v.body, what).toMatchObject({ tenant: 'acme', exit_code: code, result: { ok: false, cause } });
    }
    expect((await verify('')).status).toBe(400);
  });
});

describe('stella forensic attest list|verify', () => {
  it('lists as table, json and yaml; verifies a genuine envelope (exit 0) and fails a forged one with its cause and exit code', async () => {
    const [table, json, yaml, foreign] = await Promise.all([
      stella(['forensic', 'attest', 'list']), stella(['forensic', 'attest', 'list', '--output', 'json', '--limit', '3']),
      stella(['forensic', 'attest', 'list', '--output', 'yaml', '--type', 'key_rotation']), stella(['forensic', 'attest', 'list', '--tenant', 'globex'])]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^tenant acme: \d+ attestations \(newest first/);
    expect(table.stdout).toMatch(/\n6\s+key_rotation\s+5\s/);
    expect(table.stderr).toMatch(/^trace_id: [0-9a-f]{32}$/m);
    expect(json.code, json.stderr).toBe(0);
    const page = JSON.parse(json.stdout) as ListBody;
    expect(page.attestations.map((a) => a.size)).toEqual([8, ...page.attestations.slice(1).map((a) => a.size)]);
    expect(page.attestations).toHaveLength(3);
    expect(json.stderr).toContain(`more: --cursor ${page.next_cursor}`);
    expect(yaml.code, yaml.stderr).toBe(0);
    expect((YAML.parse(yaml.stdout) as ListBody).attestations.map((a) => a.size)).toEqual([6]);
    expect(foreign.code).toBe(3);
    expect(foreign.stdout).toBe('');

    const genuineFile = path.join(work, 'genuine.dsse.json');
    writeFileSync(genuineFile, envelopeBytes(page.attestations[0]!.envelope));
    const forgedFile = path.join(work, 'forged.dsse.json');
    const fresh = signerFromKeyObject(defaultOrigin('acme'), generateKeyPairSync('ed25519').privateKey);
    writeFileSync(forgedFile, envelopeBytes(signEnvelope(IN_TOTO_PAYLOAD_TYPE, Buffer.from(page.attestations[0]!.envelope.payload, 'base64'), fresh)));
    const [ok, forged, forgedJson, missing] = await Promise.all([
      stella(['forensic', 'attest', 'verify', genuineFile]), stella(['forensic', 'attest', 'verify', forgedFile]),
      stella(['forensic', 'attest', 'verify', forgedFile, '--output', 'json']), stella(['forensic', 'attest', 'verify', path.join(work, 'nope.json')])]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^OK: seal statement for size 8 of tenant acme/);
    expect(forged.code).toBe(20);
    expect(forged.stdout).toMatch(/^FAILED: KEY_UNTRUSTED: /);
    expect(forgedJson.code).toBe(20);
    expect(JSON.parse(forgedJson.stdout)).toMatchObject({ exit_code: 20, result: { ok: false, cause: 'KEY_UNTRUSTED' } });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no such envelope file');
  }, 120_000);
});
