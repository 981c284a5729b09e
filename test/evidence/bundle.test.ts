import { writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildBundle, verifyBundle, type VerifyResult } from '../../processors/evidence/bundle.ts';
import { VERIFY_CAUSES, causeExitCode } from '../../processors/evidence/causes.ts';
import { attestShow, forensicVerify } from '../../processors/evidence/cli.ts';
import { parseEnvelope, serializeEnvelope, signEnvelope } from '../../processors/evidence/dsse.ts';
import { canonicalBytes } from '../../processors/evidence/jcs.ts';
import { parseNote, signNote } from '../../processors/evidence/note.ts';
import { Sealer } from '../../processors/evidence/sealer.ts';
import { gzipDeterministic, gunzip, readTar, writeTar } from '../../processors/evidence/tar.ts';
import type { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { TENANT, items, tempStore, testSigner, trustRootOf } from './helpers.ts';
import type { TrustRoot } from '../../processors/evidence/trust-root.ts';

const CASE_ENTRIES = [5, 299, 300, 600];
let store: FsEvidenceStore;
let bundle: Buffer;
let logBundle: Buffer;
let root: TrustRoot;

beforeAll(async () => {
  store = tempStore();
  const s = await Sealer.recover({ store, tenant: TENANT, signer: testSigner() });
  s.append(items(0, 300)); await s.seal('2026-11-23T10:00:00Z');
  s.append(items(300, 513)); await s.seal('2026-11-23T10:01:00Z');
  s.append(items(513, 777)); await s.seal('2026-11-23T10:02:00Z');
  bundle = await buildBundle(store, TENANT, { caseId: 'case-42', indices: CASE_ENTRIES });
  logBundle = await buildBundle(store, TENANT, { caseId: 'export-1' });
  root = await trustRootOf(store);
});

type Files = Map<string, Buffer>;
const unpack = (b: Uint8Array): Files => new Map(readTar(gunzip(b)).map((f) => [f.path, Buffer.from(f.bytes)]));
const pack = (f: Files): Buffer => gzipDeterministic(writeTar([...f].map(([p, bytes]) => ({ path: p, bytes }))));
function tamper(b: Uint8Array, edit: (f: Files) => void, trustRoot: TrustRoot = root): VerifyResult {
  const f = unpack(b);
  const before = pack(f);
  edit(f);
  const after = pack(f);
  if (Buffer.compare(before, after) === 0) throw new Error('the tamper edit changed nothing');
  return verifyBundle(after, { trustRoot });
}
const flipByte = (b: Buffer, at: number): Buffer => { const c = Buffer.from(b); c[at]! ^= 0x01; return c; };
const text = (f: Files, p: string): string => f.get(p)!.toString('utf8');
/** Replace a base64 hash with the same hash, one bit flipped (stays valid base64). */
const flipB64Hash = (s: string): string => { const b = Buffer.from(s, 'base64'); b[3]! ^= 0x10; return b.toString('base64'); };

describe('bundles', () => {
  it('verify offline; the same inputs twice give identical bytes', async () => {
    const r = verifyBundle(bundle, { trustRoot: root });
    expect(r).toMatchObject({ ok: true, tenant: TENANT, caseId: 'case-42', kind: 'entries', treeSize: 777, entries: 4, checkpoints: [300, 513, 777] });
    expect(Buffer.compare(await buildBundle(store, TENANT, { caseId: 'case-42', indices: CASE_ENTRIES }), bundle)).toBe(0);
    expect(Buffer.compare(await buildBundle(store, TENANT, { caseId: 'export-1' }), logBundle)).toBe(0);
    expect(bundle.subarray(4, 8).readUInt32LE()).toBe(0); // gzip mtime
    expect(bundle[9]).toBe(255); // gzip OS byte pinned
    const paths = [...unpack(bundle).keys()];
    expect(paths).toEqual([...paths].sort());
    expect(paths).toContain('proofs/299.tlog-proof');
    expect(text(unpack(bundle), 'proofs/299.tlog-proof').startsWith('c2sp.org/tlog-proof@v1\nindex 299\n')).toBe(true);
    const tarHeader = readTar(gunzip(bundle))[0];
    expect(tarHeader).toBeDefined();
  });

  it('verifies a whole-log export by recomputing the tree', () => {
    expect(verifyBundle(logBundle, { trustRoot: root })).toMatchObject({ ok: true, kind: 'log', treeSize: 777, entries: 777, checkpoints: [300, 513, 777] });
    expect(tamper(logBundle, (f) => f.set('tile/entries/001', flipByte(f.get('tile/entries/001')!, 40)))).toMatchObject({ ok: false, cause: 'MERKLE_MISMATCH' });
    // Reorder: swap the first two entries inside an entry bundle (both length-prefixed, same length).
    expect(tamper(logBundle, (f) => {
      const b = f.get('tile/entries/000')!;
      const l0 = b.readUInt16BE(0); const l1 = b.readUInt16BE(2 + l0);
      const e0 = b.subarray(0, 2 + l0); const e1 = b.subarray(2 + l0, 4 + l0 + l1);
      f.set('tile/entries/000', Buffer.concat([e1, e0, b.subarray(4 + l0 + l1)]));
    })).toMatchObject({ ok: false, cause: 'MERKLE_MISMATCH' });
    expect(tamper(logBundle, (f) => f.delete('tile/entries/003.p/9'))).toMatchObject({ ok: false, cause: 'ENTRY_MISSING' });
  });

  describe('tamper matrix: each alteration fails with its named cause', () => {
    const cases: [string, (f: Files) => void, string][] = [
      ['flip a byte in an entry', (f) => f.set('entries/299.json', flipByte(f.get('entries/299.json')!, 10)), 'MERKLE_MISMATCH'],
      ['flip a hash in a tile-derived inclusion proof', (f) => {
        const lines = text(f, 'proofs/300.tlog-proof').split('\n');
        lines[3] = flipB64Hash(lines[3]!);
        f.set('proofs/300.tlog-proof', Buffer.from(lines.join('\n')));
      }, 'MERKLE_MISMATCH'],
      ['reorder entries (swap two entries\' contents)', (f) => {
        const a = f.get('entries/5.json')!; f.set('entries/5.json', f.get('entries/299.json')!); f.set('entries/299.json', a);
      }, 'MERKLE_MISMATCH'],
      ['flip a checkpoint root', (f) => {
        const lines = text(f, 'checkpoints/777').split('\n');
        lines[2] = flipB64Hash(lines[2]!);
        f.set('checkpoints/777', Buffer.from(lines.join('\n')));
      }, 'SIGNATURE_INVALID'],
      ['flip a byte of a checkpoint signature', (f) => {
        const note = text(f, 'checkpoints/513');
        const sigLine = note.split('\n')[4]!;
        const [dash, name, b64] = sigLine.split(' ') as [string, string, string];
        const sig = Buffer.from(b64, 'base64'); sig[20]! ^= 1;
        f.set('checkpoints/513', Buffer.from(note.replace(sigLine, `${dash} ${name} ${sig.toString('base64')}`)));
      }, 'SIGNATURE_INVALID'],
      ['flip a byte of a DSSE signature', (f) => {
        const e = parseEnvelope(f.get('envelopes/513.dsse.json')!);
        e.signatures[0]!.sig = flipB64Hash(e.signatures[0]!.sig);
        f.set('envelopes/513.dsse.json', serializeEnvelope(e));
      }, 'SIGNATURE_INVALID'],
      ['flip a byte in a statement (not re-signed)', (f) => {
        const e = parseEnvelope(f.get('envelopes/300.dsse.json')!);
        e.payload = Buffer.from(Buffer.from(e.payload, 'base64').toString().replace('2026-11-23T10:00:00', '2026-11-23T09:00:00')).toString('base64');
        f.set('envelopes/300.dsse.json', serializeEnvelope(e));
      }, 'SIGNATURE_INVALID'],
      ['a statement validly signed but naming another root', (f) => {
        const e = parseEnvelope(f.get('envelopes/777.dsse.json')!);
        const st = JSON.parse(Buffer.from(e.payload, 'base64').toString());
        st.predicate.new.root = '00'.repeat(32);
        f.set('envelopes/777.dsse.json', serializeEnvelope(signEnvelope(e.payloadType, canonicalBytes(st), testSigner())));
      }, 'STATEMENT_MISMATCH'],
      ['statements swapped between checkpoints', (f) => {
        const a = f.get('envelopes/300.dsse.json')!; f.set('envelopes/300.dsse.json', f.get('envelopes/513.dsse.json')!); f.set('envelopes/513.dsse.json', a);
      }, 'STATEMENT_MISMATCH'],
      ['a consistency proof altered', (f) => {
        const lines = text(f, 'consistency/300.777').split('\n');
        lines[3] = flipB64Hash(lines[3]!);
        f.set('consistency/300.777', Buffer.from(lines.join('\n')));
      }, 'CHECKPOINT_INCONSISTENT'],
      ['a checkpoint re-signed by an unknown key of the same name', (f) => {
        const body = parseNote(text(f, 'checkpoints/777')).text;
        f.set('checkpoints/777', Buffer.from(signNote(body, [testSigner('attacker')])));
      }, 'KEY_UNKNOWN'],
      ['flip a hex digit of a digest in the manifest', (f) => {
        f.set('manifest.json', Buffer.from(text(f, 'manifest.json').replace(/"sha256":"(.)/, (_m, c: string) => `"sha256":"${c === 'a' ? 'b' : 'a'}`)));
      }, 'MANIFEST_MISMATCH'],
      ['flip a byte that breaks the manifest\'s JSON', (f) => f.set('manifest.json', flipByte(f.get('manifest.json')!, 0)), 'BUNDLE_CORRUPT'],
      ['drop the manifest', (f) => f.delete('manifest.json'), 'MANIFEST_MISSING'],
      ['drop an entry', (f) => f.delete('entries/600.json'), 'ENTRY_MISSING'],
      ['drop a proof', (f) => f.delete('proofs/5.tlog-proof'), 'ENTRY_MISSING'],
      ['drop a key', (f) => { for (const p of [...f.keys()]) if (p.startsWith('keys/')) f.delete(p); }, 'KEY_UNKNOWN'],
      ['add a file the manifest does not list', (f) => f.set('entries/7.json', Buffer.from('{}')), 'MANIFEST_MISMATCH'],
    ];
    for (const [name, edit, cause] of cases) {
      it(`${name} → ${cause}`, () => {
        const r = tamper(bundle, edit);
        expect(r.ok).toBe(false);
        expect(r).toMatchObject({ cause });
      });
    }
    it('truncated or non-gzip bytes → BUNDLE_CORRUPT', () => {
      expect(verifyBundle(bundle.subarray(0, bundle.length - 20), { trustRoot: root })).toMatchObject({ ok: false, cause: 'BUNDLE_CORRUPT' });
      expect(verifyBundle(Buffer.from('not a bundle'), { trustRoot: root })).toMatchObject({ ok: false, cause: 'BUNDLE_CORRUPT' });
    });
    it('an untrusted genesis key → KEY_UNTRUSTED; the trusted one passes', () => {
      expect(verifyBundle(bundle, { trustedKeys: [testSigner('other').verifierKey] })).toMatchObject({ ok: false, cause: 'KEY_UNTRUSTED' });
      expect(verifyBundle(bundle, { trustedKeys: [testSigner().verifierKey] })).toMatchObject({ ok: true });
    });
  });

  it('keys are accepted only for the checkpoints they were valid for', async () => {
    const st = tempStore();
    const k1 = testSigner();
    const k2 = testSigner('key-2');
    const s = await Sealer.recover({ store: st, tenant: TENANT, signer: k1 });
    s.append(items(0, 10)); await s.seal('2026-11-23T10:00:00Z');
    s.append(items(10, 20)); await s.rotateKey(k2, '2026-11-23T10:01:00Z');
    s.append(items(20, 30)); await s.seal('2026-11-23T10:02:00Z');
    const b = await buildBundle(st, TENANT, { caseId: 'rot', indices: [3, 25] });
    const stRoot = await trustRootOf(st);
    const ok = verifyBundle(b, { trustRoot: stRoot });
    expect(ok).toMatchObject({ ok: true, treeSize: 31, keys: [{ keyId: k1.keyIdHex, validFrom: 1, validUntil: 22 }, { keyId: k2.keyIdHex, validFrom: 22, validUntil: null }] });
    const f = unpack(b);
    expect([...f.keys()].filter((p) => p.startsWith('entries/'))).toEqual(['entries/20.json', 'entries/25.json', 'entries/3.json']);
    // The newest checkpoint re-signed with the old (rotated-out) key: a known key, but not for size 31.
    expect(tamper(b, (x) => x.set('checkpoints/31', Buffer.from(signNote(parseNote(text(x, 'checkpoints/31')).text, [k1]))), stRoot)).toMatchObject({ ok: false, cause: 'KEY_UNKNOWN' });
    // Dropping the rotation entry leaves the new key unexplained.
    expect(tamper(b, (x) => x.delete('entries/20.json'), stRoot)).toMatchObject({ ok: false, cause: 'ENTRY_MISSING' });
    const logB = await buildBundle(st, TENANT, { caseId: 'rot-log' });
    expect(verifyBundle(logB, { trustRoot: stRoot })).toMatchObject({ ok: true, treeSize: 31 });
  });

  it('forensicVerify gives exit codes per cause and reports progress; attestShow says who signed what when', async () => {
    expect(new Set(Object.values(causeExitCode)).size).toBe(VERIFY_CAUSES.length);
    for (const c of VERIFY_CAUSES) expect(causeExitCode[c]).toBeGreaterThan(1);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-bundle-'));
    const good = path.join(dir, 'case.tar.gz');
    writeFileSync(good, bundle);
    const phases: string[] = [];
    const r = await forensicVerify(good, { onProgress: (p) => phases.push(p.phase), trustRoot: root });
    expect(r.exitCode).toBe(0);
    expect(phases).toContain('entries');
    expect(phases[phases.length - 1]).toBe('done');
    const bad = path.join(dir, 'bad.tar.gz');
    const f = unpack(bundle); f.delete('manifest.json'); writeFileSync(bad, pack(f));
    expect((await forensicVerify(bad, { trustRoot: root })).exitCode).toBe(causeExitCode.MANIFEST_MISSING);
    expect((await forensicVerify(good)).exitCode).toBe(causeExitCode.TRUST_ROOT_MISSING);
    expect((await forensicVerify(path.join(dir, 'nope.tar.gz'))).exitCode).toBe(causeExitCode.BUNDLE_CORRUPT);
    const shown = await attestShow(good);
    expect(shown.attestations.map((a) => [a.size, a.sealedAt, a.signatureVerified])).toEqual([
      [300, '2026-11-23T10:00:00.000Z', true], [513, '2026-11-23T10:01:00.000Z', true], [777, '2026-11-23T10:02:00.000Z', true]]);
    expect(shown.text).toContain(`signed by   ${testSigner().name}+${testSigner().keyIdHex}`);
    const env = path.join(dir, '513.dsse.json');
    writeFileSync(env, unpack(bundle).get('envelopes/513.dsse.json')!);
    expect((await attestShow(env)).attestations[0]).toMatchObject({ size: 513, previousSize: 300, signatureVerified: true, kafka: [{ topic: 'stella.timeline', partition: 0, fromOffset: '300', toOffset: '512' }] });
  });
});
