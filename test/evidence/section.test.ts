// The evidence config section's witness/TSA keys: valid values load, every problem is named.
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEvidenceSection } from '../../processors/evidence/section.ts';
import { makeCosignatureVerifier, rawEd25519Signer } from '../../processors/evidence/witness.ts';
import { testSigner } from './helpers.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-section-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const vkey = makeCosignatureVerifier('witness.example/w1', rawEd25519Signer(generateKeyPairSync('ed25519').privateKey).publicKey).verifierKey;

describe('evidence.witnesses / evidence.tsa', () => {
  it('loads witnesses, the TSA certificate file and the retry backoff', () => {
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-out', 'tsa.pem', '-subj', '/CN=t', '-days', '2'], { cwd: dir });
    expect(r.status, String(r.stderr)).toBe(0);
    const s = parseEvidenceSection({ witnesses: [{ name: 'witness.example/w1', url: 'http://127.0.0.1:7380', vkey }], tsa: { url: 'http://127.0.0.1:8318/tsr', certificateFile: path.join(dir, 'tsa.pem') }, attestRetry: { initialMs: 200, maxMs: 5000 } });
    expect(s.witnesses).toEqual([{ name: 'witness.example/w1', url: 'http://127.0.0.1:7380', vkey }]);
    expect(s.tsa?.certificates).toHaveLength(1);
    expect(s.tsa?.certificates[0]).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(s.attestRetry).toEqual({ initialMs: 200, maxMs: 5000 });
    expect(parseEvidenceSection(undefined)).toMatchObject({ witnesses: [], tsa: undefined });
  });

  it('names each problem: a log key (type 0x01) as witness key, a name that is not the key\'s, a bad URL, an unknown field, no certificate', () => {
    writeFileSync(path.join(dir, 'empty.pem'), 'not a certificate\n');
    let msg = '';
    try {
      parseEvidenceSection({
        witnesses: [
          { name: 'w0', url: 'http://127.0.0.1:1', vkey: testSigner().verifierKey },
          { name: 'witness.example/other', url: 'http://127.0.0.1:1', vkey },
          { name: 'witness.example/w1', url: 'ftp://x', vkey },
          { name: 'witness.example/w1', url: 'http://127.0.0.1:1', vkey, extra: 1 },
        ],
        tsa: { url: 'http://127.0.0.1:2/tsr', certificateFile: path.join(dir, 'empty.pem') },
        attestRetry: { initialMs: 5000, maxMs: 100 },
      });
    } catch (e) { msg = (e as Error).message; }
    expect(msg).toContain('evidence.witnesses[0].vkey: witness verifier key has signature type 0x01, expected 0x04');
    expect(msg).toContain('evidence.witnesses[1].vkey is named witness.example/w1, not witness.example/other');
    expect(msg).toContain('evidence.witnesses[2].url must be an http(s) URL');
    expect(msg).toContain('evidence.witnesses[3].extra is not a known field');
    expect(msg).toContain('holds no PEM certificate');
    expect(msg).toContain('evidence.attestRetry must be');
    expect(() => parseEvidenceSection({ tsa: { url: 'http://x/tsr', certificateFile: path.join(dir, 'missing.pem') } })).toThrow(/evidence.tsa.certificateFile: ENOENT/);
  });

  it('witnessK / tsaK: the trust policy the exported trust root carries (default: one configured witness and the TSA required)', () => {
    const w2 = makeCosignatureVerifier('witness.example/w2', rawEd25519Signer(generateKeyPairSync('ed25519').privateKey).publicKey).verifierKey;
    const witnesses = [{ name: 'witness.example/w1', url: 'http://127.0.0.1:7380', vkey }, { name: 'witness.example/w2', url: 'http://127.0.0.1:7381', vkey: w2 }];
    const tsa = { url: 'http://127.0.0.1:8318/tsr', certificateFile: path.join(dir, 'tsa.pem') };
    const d = parseEvidenceSection({ witnesses, tsa });
    expect(d.trustPolicy.witnesses).toEqual({ k: 1, keys: witnesses.map((w) => ({ name: w.name, vkey: w.vkey })) });
    expect(d.trustPolicy.tsa.k).toBe(1);
    expect(d.trustPolicy.tsa.certificates).toEqual(d.tsa!.certificates);
    expect(parseEvidenceSection({ witnesses, tsa, witnessK: 2, tsaK: 0 }).trustPolicy).toMatchObject({ witnesses: { k: 2 }, tsa: { k: 0 } });
    expect(parseEvidenceSection(undefined).trustPolicy).toEqual({ witnesses: { k: 0, keys: [] }, tsa: { k: 0, certificates: [] } });
    expect(() => parseEvidenceSection({ witnesses, witnessK: 3 })).toThrow('evidence.witnessK must be an integer from 0 to 2 (the number of witnesses configured; got 3)');
    expect(() => parseEvidenceSection({ tsaK: 1 })).toThrow('evidence.tsaK must be an integer from 0 to 0');
  });
});
