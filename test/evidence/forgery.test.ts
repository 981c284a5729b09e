// Issue 12's forgeries, each through the real `stella` CLI process and the real API server: a
// bundle sealed with a freshly generated key, another tenant's valid bundle, and a bundle re-signed
// with a key retired by a rotation. Each must fail with its own named cause, never "OK"; and a
// verify without any trust anchor must refuse to say anything but TRUST_ROOT_MISSING.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerEvidenceRoutes } from '../../api/evidence-routes.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { buildBundle, verifyBundle } from '../../processors/evidence/bundle.ts';
import { causeExitCode } from '../../processors/evidence/causes.ts';
import { entryBytes } from '../../processors/evidence/jcs.ts';
import { signerFromKeyObject, type Signer } from '../../processors/evidence/note.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { Sealer, type AppendItem } from '../../processors/evidence/sealer.ts';
import { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { parseTrustRootText, serializeTrustRoot, type TrustRoot } from '../../processors/evidence/trust-root.ts';
import { testStore } from '../timeline/support.ts';
import { startHarness } from './api-harness.ts';
import { ORIGIN, items, tempStore, testSigner, trustRootOf } from './helpers.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'stella-forgery-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
mkdirSync(path.join(dataDir, 'evidence', 'logs'), { recursive: true });
// The operator's store, where `stella forensic trust export` reads from (dataDir/evidence/logs).
const store = new FsEvidenceStore(path.join(dataDir, 'evidence', 'logs'));
const GLOBEX_ORIGIN = 'stella-telemetry.example/tenants/globex';

const k0 = testSigner('acme-k0');
const k1 = testSigner('acme-k1');
const file = (name: string, bytes: Uint8Array | string): string => { const p = path.join(dataDir, name); writeFileSync(p, bytes); return p; };

/** Run the real CLI process; resolves with its exit code and output. */
function stella(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cli/stella.ts'), ...args], {
      cwd: ROOT, env: { ...process.env, STELLA_LOG_LEVEL: 'silent', STELLA_DATA_DIR: dataDir, STELLA_TRUST_ROOT: '', ...env },
    });
    let stdout = ''; let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A log written by someone holding `signer`: the given entries, sealed at the given sizes. */
async function forgeLog(tenant: string, signer: Signer, entries: Uint8Array[], sealAt: number[]): Promise<FsEvidenceStore> {
  const st = tempStore();
  const s = await Sealer.recover({ store: st, tenant, signer, origin: signer.name });
  let at = 0;
  for (const size of sealAt) {
    s.append(entries.slice(at, size).map((entry): AppendItem => ({ entry })));
    await s.seal('2026-11-23T10:00:00Z');
    at = size;
  }
  return st;
}

let realBundle: Buffer;
let root: TrustRoot;
let trustFile: string;
const forged: Record<'freshKey' | 'otherTenant' | 'retiredKey' | 'unpinnedRotation', { bytes: Buffer; file: string; cause: keyof typeof causeExitCode }> = {} as never;
let api: { url: string; close(): Promise<void> };
const TOK = { acme: 'forgery-acme', globex: 'forgery-globex' };

beforeAll(async () => {
  // acme: sizes 10 (k0), 21 (k0, its last entry rotates to k1, valid from 22), 31 (k1).
  const acme = await Sealer.recover({ store, tenant: 'acme', signer: k0 });
  acme.append(items(0, 10)); await acme.seal('2026-11-23T10:00:00Z');
  acme.append(items(10, 20)); await acme.rotateKey(k1, '2026-11-23T10:01:00Z');
  acme.append(items(20, 30)); await acme.seal('2026-11-23T10:02:00Z');
  const globex = await Sealer.recover({ store, tenant: 'globex', signer: testSigner('globex-k0', GLOBEX_ORIGIN) });
  globex.append(items(0, 12)); await globex.seal('2026-11-23T10:00:00Z');

  realBundle = await buildBundle(store, 'acme', { caseId: 'real', indices: [3, 25] });
  root = await trustRootOf(store, 'acme');
  trustFile = file('acme.trust-root.json', serializeTrustRoot(root));
  file('real.tar.gz', realBundle);

  // The real entries, one of them changed (what a forger wants a bundle to claim).
  const reader = new LogReader(store, 'acme');
  const real = await Promise.all(Array.from({ length: 31 }, (_, i) => reader.entry(i, 31)));
  const altered = real.map((e, i) => (i === 3 ? entryBytes({ event_id: 'ev-3', kind: 'timeline', tenant: 'acme', seq: 3, body: { msg: 'nothing happened', n: 0 } }) : e));
  const fresh = signerFromKeyObject(ORIGIN, generateKeyPairSync('ed25519').privateKey);
  const withoutRotation = altered.filter((_, i) => i !== 20);

  const forgedFresh = await forgeLog('acme', fresh, altered, [10, 31]);
  // The retired key k0 signs a log past its retirement (size 22+), leaving the rotation out.
  const forgedRetired = await forgeLog('acme', k0, withoutRotation, [10, 30]);
  // The retired key k0 rotates to a key of the forger's at another size than the real rotation.
  const mine = testSigner('forger');
  const unpinned = tempStore();
  const s = await Sealer.recover({ store: unpinned, tenant: 'acme', signer: k0 });
  s.append(withoutRotation.slice(0, 10).map((entry) => ({ entry }))); await s.seal('2026-11-23T10:00:00Z');
  s.append(withoutRotation.slice(10, 14).map((entry) => ({ entry }))); await s.rotateKey(mine, '2026-11-23T10:01:00Z');
  s.append(withoutRotation.slice(14, 30).map((entry) => ({ entry }))); await s.seal('2026-11-23T10:02:00Z');

  const add = (k: keyof typeof forged, bytes: Buffer, cause: keyof typeof causeExitCode) => { forged[k] = { bytes, file: file(`${k}.tar.gz`, bytes), cause }; };
  add('freshKey', await buildBundle(forgedFresh, 'acme', { caseId: 'real', indices: [3, 25] }), 'KEY_UNTRUSTED');
  add('otherTenant', await buildBundle(store, 'globex', { caseId: 'real', indices: [3] }), 'ORIGIN_MISMATCH');
  add('retiredKey', await buildBundle(forgedRetired, 'acme', { caseId: 'real', indices: [3, 25] }), 'KEY_UNTRUSTED');
  add('unpinnedRotation', await buildBundle(unpinned, 'acme', { caseId: 'real', indices: [3, 25] }), 'KEY_UNTRUSTED');

  const tokens = new TokenRegistry([
    { id: 'acme', tokens: [{ sha256: sha256Hex(TOK.acme), scopes: ['evidence:read'] }] },
    { id: 'globex', tokens: [{ sha256: sha256Hex(TOK.globex), scopes: ['evidence:read'] }] },
  ]);
  const cases = new FsEvidenceStore(path.join(dataDir, 'evidence', 'cases'));
  const ch = await testStore();
  api = await startHarness(tokens, [(r) => registerEvidenceRoutes(r, { evidence: store, cases, store: ch })]);
});
afterAll(async () => { await api?.close(); });

const post = async (bytes: Buffer, token = TOK.acme) => {
  const res = await fetch(`${api.url}/evidence/verify`, { method: 'POST', body: bytes, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/gzip' } });
  return { status: res.status, body: await res.json() as { exit_code: number; result: { ok: boolean; cause?: string; detail?: string } } };
};

describe('forged bundles fail with their named cause', () => {
  it('the real bundle verifies against the trust root (library, CLI, API, STELLA_TRUST_ROOT)', async () => {
    expect(verifyBundle(realBundle, { trustRoot: root })).toMatchObject({ ok: true, treeSize: 31 });
    const cli = await stella(['forensic', 'verify', path.join(dataDir, 'real.tar.gz'), '--trust', trustFile]);
    expect(cli).toMatchObject({ code: 0 });
    expect(cli.stdout).toMatch(/^OK: bundle verified/);
    expect((await stella(['forensic', 'verify', path.join(dataDir, 'real.tar.gz')], { STELLA_TRUST_ROOT: trustFile })).code).toBe(0);
    // The current key, as `keys rotate` printed it, is an anchor too: it signed the tree holding the rotation.
    expect((await stella(['forensic', 'verify', path.join(dataDir, 'real.tar.gz'), '--trusted-key', testSigner('x').verifierKey, '--trusted-key', k1.verifierKey])).code).toBe(0);
    const r = await post(realBundle);
    expect(r).toMatchObject({ status: 200, body: { exit_code: 0, result: { ok: true } } });
  });

  for (const k of ['freshKey', 'otherTenant', 'retiredKey', 'unpinnedRotation'] as const) {
    it(`${k}: the CLI and the API name the cause`, async () => {
      const f = forged[k];
      // Internally consistent: each forgery verifies against its own keys, which is why trusting them is wrong.
      const cli = await stella(['forensic', 'verify', f.file, '--trust', trustFile, '--output', 'json']);
      expect(cli.code).toBe(causeExitCode[f.cause]);
      expect(JSON.parse(cli.stdout)).toMatchObject({ ok: false, cause: f.cause, exit_code: causeExitCode[f.cause] });
      const r = await post(f.bytes);
      expect(r).toMatchObject({ status: 200, body: { exit_code: causeExitCode[f.cause], result: { ok: false, cause: f.cause } } });
    });
  }

  it('says why: a fresh key is not derivable, the retired key was retired at 22, another log is another origin', () => {
    expect(verifyBundle(forged.freshKey.bytes, { trustRoot: root })).toMatchObject({ detail: expect.stringMatching(/not derivable from the trust root of tenant acme/) });
    expect(verifyBundle(forged.retiredKey.bytes, { trustRoot: root })).toMatchObject({ detail: expect.stringMatching(new RegExp(`key ${ORIGIN}\\+${k0.keyIdHex} was retired at size 22`)) });
    expect(verifyBundle(forged.unpinnedRotation.bytes, { trustRoot: root })).toMatchObject({ cause: 'KEY_UNTRUSTED' });
    expect(verifyBundle(forged.otherTenant.bytes, { trustRoot: root })).toMatchObject({ detail: expect.stringMatching(/from log stella-telemetry\.example\/tenants\/globex; the trust root of tenant acme is for stella-telemetry\.example\/tenants\/acme/) });
    // Trusting only the current key also refuses the retired key's log.
    expect(verifyBundle(forged.retiredKey.bytes, { trustedKeys: [k1.verifierKey] })).toMatchObject({ ok: false, cause: 'KEY_UNTRUSTED' });
    expect(verifyBundle(forged.freshKey.bytes, { trustedKeys: [k0.verifierKey, k1.verifierKey] })).toMatchObject({ ok: false, cause: 'KEY_UNTRUSTED' });
  });

  it('without any anchor, verify says TRUST_ROOT_MISSING and how to get one', async () => {
    const cli = await stella(['forensic', 'verify', path.join(dataDir, 'real.tar.gz')]);
    expect(cli.code).toBe(causeExitCode.TRUST_ROOT_MISSING);
    expect(cli.stdout).toMatch(/^FAILED: TRUST_ROOT_MISSING: /);
    expect(cli.stdout).toContain('stella forensic trust export --tenant');
    expect(cli.stdout).toContain('GET /evidence/<tenant>/trust-root');
    expect(cli.stdout).toContain('evidence:read');
    expect(cli.stdout).not.toContain('OK');
    expect((await stella(['forensic', 'verify', forged.freshKey.file])).code).toBe(causeExitCode.TRUST_ROOT_MISSING);
  });

  it('a trust root file that is not one is a usage error naming the file and the rule', async () => {
    const bad = file('bad.json', JSON.stringify({ ...root, witnesses: { k: 2, keys: [] } }));
    const r = await stella(['forensic', 'verify', path.join(dataDir, 'real.tar.gz'), '--trust', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--trust: ${bad}: trust root.witnesses.k is 2 but only 0 keys are listed`);
    const badKey = await stella(['forensic', 'verify', path.join(dataDir, 'real.tar.gz'), '--trusted-key', k1.verifierKey, '--trusted-key', 'nonsense+00000000+AAAA']);
    expect(badKey).toMatchObject({ code: 2, stderr: expect.stringContaining('--trusted-key "nonsense+00000000+AAAA": verifier key must be base64') });
    expect((await stella(['forensic', 'verify', path.join(dataDir, 'real.tar.gz')], { STELLA_TRUST_ROOT: path.join(dataDir, 'nope.json') })).stderr).toMatch(/STELLA_TRUST_ROOT: cannot read trust root .*nope\.json: ENOENT/);
  });

  it('trust export (CLI) and GET /evidence/:tenant/trust-root give the same canonical document; tenants only get their own', async () => {
    const cli = await stella(['forensic', 'trust', 'export', '--tenant', 'acme']);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toBe(`${serializeTrustRoot(root).toString()}\n`);
    expect(parseTrustRootText(cli.stdout)).toMatchObject({ tenant: 'acme', origin: ORIGIN, log_keys: [k0.verifierKey], rotations: [{ previous_key: k0.verifierKey, new_key: k1.verifierKey, valid_from_size: 22 }] });
    const res = await fetch(`${api.url}/evidence/acme/trust-root`, { headers: { authorization: `Bearer ${TOK.acme}` } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(cli.stdout);
    expect((await fetch(`${api.url}/evidence/acme/trust-root`, { headers: { authorization: `Bearer ${TOK.globex}` } })).status).toBe(403);
    expect((await fetch(`${api.url}/evidence/acme/trust-root`)).status).toBe(401);
    expect((await stella(['forensic', 'trust', 'export', '--tenant', 'initech'])).code).toBe(1);
    // The API verifies against the token tenant's root: globex's token accepts globex's bundle, not acme's.
    expect((await post(forged.otherTenant.bytes, TOK.globex)).body).toMatchObject({ exit_code: 0 });
    expect((await post(realBundle, TOK.globex)).body).toMatchObject({ result: { cause: 'ORIGIN_MISMATCH' } });
  });
});
