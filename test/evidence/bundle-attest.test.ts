// Bundles carry the witness cosignatures and RFC 3161 tokens stored beside their checkpoints, and
// verify enforces the trusted witnesses' k-of-n policy and the TSA policy, each failure with its
// named cause. Tokens come from a real `openssl ts` TSA.
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosignaturePath, timestampPath, tsaId } from '../../processors/evidence/attest.ts';
import { buildBundle, verifyBundle } from '../../processors/evidence/bundle.ts';
import { causeExitCode } from '../../processors/evidence/causes.ts';
import { parseNote } from '../../processors/evidence/note.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { Sealer } from '../../processors/evidence/sealer.ts';
import { TsaClient } from '../../processors/evidence/tsa.ts';
import { cosign, makeCosignatureVerifier, rawEd25519Signer } from '../../processors/evidence/witness.ts';
import { TENANT, items, tempStore, testSigner } from './helpers.ts';
import { startOpensslTsa, type RunningTsa } from './peers.ts';

const witness = (name: string) => {
  const s = rawEd25519Signer(generateKeyPairSync('ed25519').privateKey);
  const v = makeCosignatureVerifier(name, s.publicKey);
  return { name, signer: s, vkey: v.verifierKey, kid: v.keyIdHex };
};
const w1 = witness('witness.example/w1');
const w2 = witness('witness.example/w2');
const stranger = witness('witness.example/stranger');

let tsa: RunningTsa;
let otherTsa: RunningTsa;
beforeAll(async () => { [tsa, otherTsa] = await Promise.all([startOpensslTsa('Bundle TSA'), startOpensslTsa('Other TSA')]); }, 60_000);
afterAll(async () => { await tsa?.stop(); await otherTsa?.stop(); });

/** A log sealed at 5 and 10, with what `vouch` adds beside its checkpoints. */
async function log(vouch: (s: { store: ReturnType<typeof tempStore>; text: (n: number) => Promise<string>; bytes: (n: number) => Promise<Uint8Array> }) => Promise<void>) {
  const store = tempStore();
  const sealer = await Sealer.recover({ store, tenant: TENANT, signer: testSigner() });
  for (const [a, b] of [[0, 5], [5, 10]] as const) { sealer.append(items(a, b)); await sealer.seal(new Date(Date.UTC(2026, 0, 1, 0, b))); }
  const reader = new LogReader(store, TENANT);
  await vouch({ store, text: async (n) => parseNote((await reader.checkpointAt(n))!.note).text, bytes: async (n) => (await reader.checkpointAt(n))!.bytes });
  return { store, bundle: await buildBundle(store, TENANT, { caseId: 'c1', indices: [2, 7] }) };
}
const addCosig = async (store: ReturnType<typeof tempStore>, w: ReturnType<typeof witness>, size: number, text: string, kid = w.kid) =>
  store.writeImmutable(TENANT, cosignaturePath(kid, size), Buffer.from(cosign(text, w.name, w.signer, BigInt(Math.floor(Date.now() / 1000)))));
const stamp = async (t: RunningTsa, data: Uint8Array) => (await new TsaClient({ url: t.url, certificates: [t.tsaCertPem] }).timestamp(data)).token;

/** The log's genesis key, pinned (verification needs an anchor; the policies come on top). */
const ANCHOR = { trustedKeys: [testSigner().verifierKey] };
const policy = (k: number, ...ws: ReturnType<typeof witness>[]) => ({ k, keys: ws.map((w) => ({ name: w.name, vkey: w.vkey })) });

describe('bundles with witness cosignatures and time-stamp tokens', () => {
  it('carry them and verify under k-of-n witness and TSA policies; same store, same bytes', async () => {
    const { store, bundle } = await log(async ({ store, text, bytes }) => {
      await addCosig(store, w1, 10, await text(10));
      await addCosig(store, w2, 10, await text(10));
      await addCosig(store, stranger, 10, await text(10));
      await addCosig(store, w1, 5, await text(5));
      for (const n of [5, 10]) await store.writeImmutable(TENANT, timestampPath(tsaId(tsa.tsaCertPem), n), await stamp(tsa, await bytes(n)));
    });
    const v = verifyBundle(bundle, { ...ANCHOR, witnesses: policy(2, w1, w2), tsa: { k: 1, certificates: [tsa.caCertPem] } });
    expect(v.ok, JSON.stringify(v)).toBe(true);
    if (!v.ok) return;
    expect(v.cosignedBy.map((c) => c.name).sort()).toEqual([w1.name, w2.name]);
    expect(v.timestampedAt).toHaveLength(1);
    expect(Math.abs(Date.parse(v.timestampedAt[0]!) - Date.now())).toBeLessThan(120_000);
    expect(await buildBundle(store, TENANT, { caseId: 'c1', indices: [2, 7] })).toEqual(bundle);
    // Without policies they are carried and the rest verifies as before.
    expect(verifyBundle(bundle, ANCHOR).ok).toBe(true);
    // A trust root exported before any TSA was configured pins none ({k: 0, certificates: []}):
    // the tokens prove nothing to it and do not fail it.
    const noTsa = verifyBundle(bundle, { ...ANCHOR, tsa: { k: 0, certificates: [] } });
    expect(noTsa.ok, JSON.stringify(noTsa)).toBe(true);
    if (noTsa.ok) expect(noTsa.timestampedAt).toEqual([]);
    // 2 of 3 trusted witnesses, the third never asked: still met.
    expect(verifyBundle(bundle, { ...ANCHOR, witnesses: policy(2, w1, w2, witness('witness.example/w3')) }).ok).toBe(true);
  });

  it('a bundle without cosignatures under a 1-of-1 policy: WITNESS_POLICY_UNMET (exit 22)', async () => {
    const { bundle } = await log(async () => undefined);
    expect(verifyBundle(bundle, { ...ANCHOR, witnesses: policy(1, w1) })).toMatchObject({ ok: false, cause: 'WITNESS_POLICY_UNMET' });
    expect(causeExitCode.WITNESS_POLICY_UNMET).toBe(22);
    expect(verifyBundle(bundle, ANCHOR).ok).toBe(true);
  });

  it('cosignatures only from an untrusted witness, or only on an older checkpoint: WITNESS_POLICY_UNMET', async () => {
    const a = await log(async ({ store, text }) => { await addCosig(store, stranger, 10, await text(10)); });
    expect(verifyBundle(a.bundle, { ...ANCHOR, witnesses: policy(1, w1) })).toMatchObject({ ok: false, cause: 'WITNESS_POLICY_UNMET' });
    const b = await log(async ({ store, text }) => { await addCosig(store, w1, 5, await text(5)); });
    expect(verifyBundle(b.bundle, { ...ANCHOR, witnesses: policy(1, w1) })).toMatchObject({ ok: false, cause: 'WITNESS_POLICY_UNMET', detail: expect.stringContaining('checkpoint 10') });
  });

  it('a trusted witness line that does not verify (cosigns another checkpoint, or signed by another key): COSIGNATURE_INVALID', async () => {
    const a = await log(async ({ store, text }) => { await addCosig(store, w1, 10, await text(5)); });
    expect(verifyBundle(a.bundle, { ...ANCHOR, witnesses: policy(1, w1) })).toMatchObject({ ok: false, cause: 'COSIGNATURE_INVALID' });
    // w2's name and key id, stranger's signature.
    const b = await log(async ({ store, text }) => {
      const line = cosign(await text(10), w2.name, stranger.signer, 1_800_000_000n);
      const blob = Buffer.from(line.trim().split(' ')[2]!, 'base64');
      Buffer.from(w2.kid, 'hex').copy(blob, 0);
      await store.writeImmutable(TENANT, cosignaturePath(w2.kid, 10), Buffer.from(`— ${w2.name} ${blob.toString('base64')}\n`));
      await addCosig(store, w1, 10, await text(10));
    });
    expect(verifyBundle(b.bundle, { ...ANCHOR, witnesses: policy(1, w1, w2) })).toMatchObject({ ok: false, cause: 'COSIGNATURE_INVALID' });
  });

  it('a token for another digest, or from another TSA key: TIMESTAMP_INVALID (25); none under k=1: TIMESTAMP_POLICY_UNMET (24)', async () => {
    const other = await log(async ({ store, bytes }) => { await store.writeImmutable(TENANT, timestampPath(tsaId(tsa.tsaCertPem), 10), await stamp(tsa, await bytes(5))); });
    expect(verifyBundle(other.bundle, { ...ANCHOR, tsa: { k: 1, certificates: [tsa.tsaCertPem] } })).toMatchObject({ ok: false, cause: 'TIMESTAMP_INVALID', detail: expect.stringContaining('imprint') });
    const foreign = await log(async ({ store, bytes }) => { await store.writeImmutable(TENANT, timestampPath(tsaId(otherTsa.tsaCertPem), 10), await stamp(otherTsa, await bytes(10))); });
    expect(verifyBundle(foreign.bundle, { ...ANCHOR, tsa: { k: 1, certificates: [tsa.tsaCertPem] } })).toMatchObject({ ok: false, cause: 'TIMESTAMP_INVALID' });
    expect(verifyBundle(foreign.bundle, { ...ANCHOR, tsa: { k: 1, certificates: [otherTsa.tsaCertPem] } }).ok).toBe(true);
    // A bad token on an older checkpoint fails too, even when the newest one is fine.
    const older = await log(async ({ store, bytes }) => {
      await store.writeImmutable(TENANT, timestampPath(tsaId(tsa.tsaCertPem), 10), await stamp(tsa, await bytes(10)));
      await store.writeImmutable(TENANT, timestampPath(tsaId(tsa.tsaCertPem), 5), await stamp(tsa, await bytes(10)));
    });
    expect(verifyBundle(older.bundle, { ...ANCHOR, tsa: { k: 1, certificates: [tsa.tsaCertPem] } })).toMatchObject({ ok: false, cause: 'TIMESTAMP_INVALID', detail: expect.stringContaining('checkpoint 5') });
    const none = await log(async () => undefined);
    expect(verifyBundle(none.bundle, { ...ANCHOR, tsa: { k: 1, certificates: [tsa.tsaCertPem] } })).toMatchObject({ ok: false, cause: 'TIMESTAMP_POLICY_UNMET' });
    expect([causeExitCode.TIMESTAMP_INVALID, causeExitCode.TIMESTAMP_POLICY_UNMET]).toEqual([25, 24]);
  });
});
