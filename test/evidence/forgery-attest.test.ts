// Issue 12's remaining forgeries, through the real `stella` CLI process and the real API server,
// against the trust root as the operator's configuration exports it (evidence.witnesses with
// witnessK, evidence.tsa): a bundle without cosignatures under a 1-of-1 witness policy, a time-stamp
// token for another digest, and a token from another TSA key (tokens from real `openssl ts` TSAs).
// Each fails with its named cause and exit code. (A bundle re-signed with a retired key after
// rotation, a fresh key, and another tenant's bundle: forgery.test.ts.)
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerEvidenceRoutes } from '../../api/evidence-routes.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { cosignaturePath, timestampPath, tsaId } from '../../processors/evidence/attest.ts';
import { buildBundle, verifyBundle } from '../../processors/evidence/bundle.ts';
import { causeExitCode, type VerifyCause } from '../../processors/evidence/causes.ts';
import { parseNote } from '../../processors/evidence/note.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { Sealer } from '../../processors/evidence/sealer.ts';
import { parseEvidenceSection } from '../../processors/evidence/section.ts';
import { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { parseTrustRootText, type TrustRoot } from '../../processors/evidence/trust-root.ts';
import { TsaClient } from '../../processors/evidence/tsa.ts';
import { cosign, makeCosignatureVerifier, rawEd25519Signer } from '../../processors/evidence/witness.ts';
import { testStore } from '../timeline/support.ts';
import { startHarness } from './api-harness.ts';
import { items, testSigner } from './helpers.ts';
import { startOpensslTsa, type RunningTsa } from './peers.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'stella-forgery-attest-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
const file = (name: string, bytes: Uint8Array | string): string => { const p = path.join(dataDir, name); writeFileSync(p, bytes); return p; };

function stella(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cli/stella.ts'), ...args], {
      cwd: ROOT, env: { ...process.env, STELLA_LOG_LEVEL: 'silent', STELLA_DATA_DIR: dataDir, STELLA_TRUST_ROOT: '', STELLA_CONFIG: path.join(dataDir, 'stella.json'), ...env },
    });
    let stdout = ''; let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const wSigner = rawEd25519Signer(generateKeyPairSync('ed25519').privateKey);
const W = { name: 'witness.example/w1', signer: wSigner, ...(({ verifierKey, keyIdHex }) => ({ vkey: verifierKey, kid: keyIdHex }))(makeCosignatureVerifier('witness.example/w1', wSigner.publicKey)) };

let tsa: RunningTsa;
let otherTsa: RunningTsa;
let trustFile: string;
let exported: TrustRoot;
let api: { url: string; close(): Promise<void> };
const bundles: Record<'real' | 'noCosignature' | 'tokenForAnotherDigest' | 'tokenFromAnotherTsa', Buffer> = {} as never;

/** The operator's log (sealed at 5 and 10; same key and times, so every copy is byte-identical), with what `vouch` stores beside it. */
async function logWith(store: FsEvidenceStore, vouch: { cosign?: boolean; token?: 'own' | 'other-digest' | 'other-tsa' }): Promise<Buffer> {
  const sealer = await Sealer.recover({ store, tenant: 'acme', signer: testSigner() });
  for (const [a, b] of [[0, 5], [5, 10]] as const) { sealer.append(items(a, b)); await sealer.seal(new Date(Date.UTC(2026, 0, 1, 0, b))); }
  const reader = new LogReader(store, 'acme');
  const cp = async (n: number) => (await reader.checkpointAt(n))!;
  if (vouch.cosign) await store.writeImmutable('acme', cosignaturePath(W.kid, 10), Buffer.from(cosign(parseNote((await cp(10)).note).text, W.name, W.signer, BigInt(Math.floor(Date.now() / 1000)))));
  if (vouch.token) {
    const by = vouch.token === 'other-tsa' ? otherTsa : tsa;
    const over = vouch.token === 'other-digest' ? (await cp(5)).bytes : (await cp(10)).bytes;
    const token = (await new TsaClient({ url: by.url, certificates: [by.tsaCertPem] }).timestamp(over)).token;
    await store.writeImmutable('acme', timestampPath(tsaId(by.tsaCertPem), 10), token);
  }
  return buildBundle(store, 'acme', { caseId: 'c1', indices: [2, 7] });
}

beforeAll(async () => {
  [tsa, otherTsa] = await Promise.all([startOpensslTsa('Trusted TSA'), startOpensslTsa('Other TSA')]);
  // The operator's configuration: one witness (1 of 1 by default) and the TSA (its CA certificate).
  const config = { evidence: { witnesses: [{ name: W.name, url: 'http://127.0.0.1:9/witness', vkey: W.vkey }], tsa: { url: tsa.url, certificateFile: file('tsa-ca.pem', tsa.caCertPem) } } };
  file('stella.json', JSON.stringify(config));
  mkdirSync(path.join(dataDir, 'evidence', 'logs'), { recursive: true });
  const store = new FsEvidenceStore(path.join(dataDir, 'evidence', 'logs'));
  bundles.real = await logWith(store, { cosign: true, token: 'own' });
  const copy = () => new FsEvidenceStore(mkdtempSync(path.join(dataDir, 'copy-')));
  bundles.noCosignature = await logWith(copy(), { token: 'own' });
  bundles.tokenForAnotherDigest = await logWith(copy(), { cosign: true, token: 'other-digest' });
  bundles.tokenFromAnotherTsa = await logWith(copy(), { cosign: true, token: 'other-tsa' });
  for (const [k, b] of Object.entries(bundles)) file(`${k}.tar.gz`, b);

  const tokens = new TokenRegistry([{ id: 'acme', tokens: [{ sha256: sha256Hex('fa-acme'), scopes: ['evidence:read'] }] }]);
  const policy = parseEvidenceSection(config.evidence).trustPolicy; // what `stella run` hands the routes
  const ch = await testStore();
  api = await startHarness(tokens, [(r) => registerEvidenceRoutes(r, { evidence: store, cases: new FsEvidenceStore(path.join(dataDir, 'cases')), store: ch, trustPolicy: () => policy })]);
}, 120_000);
afterAll(async () => { await api?.close(); await tsa?.stop(); await otherTsa?.stop(); });

const postVerify = async (b: Buffer) => (await (await fetch(`${api.url}/evidence/verify`, { method: 'POST', body: b,
  headers: { authorization: 'Bearer fa-acme', 'content-type': 'application/gzip' } })).json()) as { exit_code: number; result: { ok: boolean; cause?: VerifyCause; detail?: string } };

describe('witness and TSA forgeries against the configured trust root', () => {
  it('stella forensic trust export and GET /evidence/:tenant/trust-root carry the configured witness keys (1 of 1) and TSA certificate', async () => {
    const r = await stella(['forensic', 'trust', 'export', '--tenant', 'acme']);
    expect(r.code, r.stderr).toBe(0);
    exported = parseTrustRootText(r.stdout);
    expect(exported.witnesses).toEqual({ k: 1, keys: [{ name: W.name, vkey: W.vkey }] });
    expect(exported.tsa).toEqual({ k: 1, certificates: [tsa.caCertPem] });
    trustFile = file('acme.trust-root.json', r.stdout);
    const served = await fetch(`${api.url}/evidence/acme/trust-root`, { headers: { authorization: 'Bearer fa-acme' } });
    expect(parseTrustRootText(await served.text())).toEqual(exported);
  });

  it('the real bundle (cosigned by the witness, stamped by the TSA) verifies through the CLI and the API', async () => {
    expect(verifyBundle(bundles.real, { trustRoot: exported })).toMatchObject({ ok: true, cosignedBy: [{ name: W.name }] });
    const cli = await stella(['forensic', 'verify', path.join(dataDir, 'real.tar.gz'), '--trust', trustFile]);
    expect(cli.code, cli.stdout + cli.stderr).toBe(0);
    expect(await postVerify(bundles.real)).toMatchObject({ exit_code: 0, result: { ok: true } });
  });

  const cases: [keyof typeof bundles, VerifyCause, RegExp][] = [
    ['noCosignature', 'WITNESS_POLICY_UNMET', /no witness cosignatures; the trust root requires 1 of 1/],
    ['tokenForAnotherDigest', 'TIMESTAMP_INVALID', /imprint|digest/i],
    ['tokenFromAnotherTsa', 'TIMESTAMP_INVALID', /certificate|signer|trusted/i],
  ];
  for (const [name, cause, detail] of cases) {
    it(`${name}: ${cause} (exit ${causeExitCode[cause]}) from the CLI and the API`, async () => {
      // Under k = 0 the uncosigned bundle verifies: the 1-of-1 policy is what catches it. (A token
      // present must verify whatever k is, so the token forgeries fail under k = 0 too.)
      if (name === 'noCosignature') expect(verifyBundle(bundles[name], { trustRoot: { ...exported, witnesses: { ...exported.witnesses, k: 0 } } }).ok).toBe(true);
      else expect(verifyBundle(bundles[name], { trustRoot: { ...exported, tsa: { ...exported.tsa, k: 0 } } })).toMatchObject({ ok: false, cause });
      const cli = await stella(['forensic', 'verify', path.join(dataDir, `${name}.tar.gz`), '--trust', trustFile, '--output', 'json']);
      expect(cli.code, cli.stdout + cli.stderr).toBe(causeExitCode[cause]);
      const out = JSON.parse(cli.stdout) as { ok: boolean; cause: string; detail: string };
      expect(out).toMatchObject({ ok: false, cause });
      expect(out.detail).toMatch(detail);
      const r = await postVerify(bundles[name]);
      expect(r).toMatchObject({ exit_code: causeExitCode[cause], result: { ok: false, cause } });
    });
  }
});
