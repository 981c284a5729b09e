// Live key rotation on the real broker: `stella keys rotate` (writePendingKey) puts `<keyFile>.next`
// next to the runner's key; the running runner rotates each tenant's log at its next seal tick,
// promotes the key once every log holds it, and a runner started with a key pending rotates on
// open. Old checkpoints verify with the old key only, new ones with the new key only, and a bundle
// spanning the rotation verifies offline.
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBundle, verifyBundle } from '../../processors/evidence/bundle.ts';
import { ensureDevSigningKey } from '../../processors/evidence/dev-key.ts';
import { KEY_ROTATION_TYPE, loadSigningKey, pendingKeyFile, promotePendingKey, writePendingKey, KeyRotationPendingError } from '../../processors/evidence/keys.ts';
import { defaultOrigin } from '../../processors/evidence/layout.ts';
import { verifyNote } from '../../processors/evidence/note.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { startEvidenceRunner, type RunningEvidence } from '../../processors/evidence/runner.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { testStore } from '../timeline/support.ts';
import { tempStore, testSigner, trustRootOf } from './helpers.ts';
import { logEntries, produce, sealedSize, testEvent, waitFor } from './runner-support.ts';

const running: RunningEvidence[] = [];
afterAll(async () => { for (const r of running) await r.abandon().catch(() => undefined); });

async function start(o: { timeline: string; clean: string; root: string; group: string; keyFile: string }): Promise<RunningEvidence> {
  const r = await startEvidenceRunner({ kafka: testKafka('evidence-rotation'), storeRoot: o.root, store: await testStore(), keyFile: o.keyFile,
    topics: { timelineEvents: o.timeline, clean: [o.clean] }, groupId: o.group, sealEverySeconds: 0.3, sealEveryEntries: 1000 });
  running.push(r);
  return r;
}

/** A dev signing key in a fresh data dir (its rotation leaves retired keys beside it). */
async function keyInTempDir(): Promise<{ dataDir: string; keyFile: string }> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'stella-rotation-'));
  return { dataDir, keyFile: (await ensureDevSigningKey(dataDir)).file };
}

/** Fresh input topics, signing key and evidence store for one runner. */
async function rotationFixture(prefix: string, partitions: number) {
  const timeline = uniq(`${prefix}_timeline`);
  const clean = uniq(`${prefix}_spans`);
  await createTopics([timeline, clean], partitions);
  return { timeline, clean, ...(await keyInTempDir()), store: tempStore() };
}

const checkpointAt = async (root: ReturnType<typeof tempStore>, tenant: string, size: number): Promise<string> =>
  Buffer.from((await new LogReader(root, tenant).checkpointAt(size))!.bytes).toString('utf8');

describe('evidence key rotation (stella keys rotate)', () => {
  it('a running runner rotates every tenant at its next seal tick, promotes the key, and bundles across the rotation verify', async () => {
    const { timeline, clean, dataDir, keyFile, store } = await rotationFixture('rot', 3);
    const group = uniq('evidence-rot');
    const r = await start({ timeline, clean, root: store.root, group, keyFile });

    const before = { acme: [0, 1, 2, 3, 4].map((i) => testEvent('acme', i)), globex: [0, 1, 2].map((i) => testEvent('globex', i)) };
    await produce(timeline, [...before.acme, ...before.globex].map((e) => ({ tenant: e.tenant_id, value: JSON.stringify(e) })));
    await waitFor('both tenants sealed', async () => (await sealedSize(store, 'acme')) === 5 && (await sealedSize(store, 'globex')) === 3);
    const old = { acme: await loadSigningKey(keyFile, defaultOrigin('acme')), globex: await loadSigningKey(keyFile, defaultOrigin('globex')) };
    expect(verifyNote(await checkpointAt(store, 'acme', 5), [old.acme]).ok).toBe(true);

    // stella keys rotate, while the runner runs.
    await writePendingKey(keyFile);
    await expect(writePendingKey(keyFile)).rejects.toBeInstanceOf(KeyRotationPendingError); // one pending rotation at a time
    const next = { acme: await loadSigningKey(pendingKeyFile(keyFile), defaultOrigin('acme')), globex: await loadSigningKey(pendingKeyFile(keyFile), defaultOrigin('globex')) };
    // Both tenants rotate at the next tick, with nothing else pending: the rotation entry is the seal's last entry.
    await waitFor('both logs rotated', async () => (await sealedSize(store, 'acme')) === 6 && (await sealedSize(store, 'globex')) === 4);
    const acmeEntries = await logEntries(store, 'acme');
    expect(acmeEntries[5]).toEqual({ type: KEY_ROTATION_TYPE, previous_key: old.acme.verifierKey, new_key: next.acme.verifierKey, valid_from_size: 7 });
    // The checkpoint that holds the rotation entry is signed by the old key.
    expect(verifyNote(await checkpointAt(store, 'acme', 6), [old.acme]).ok).toBe(true);
    // Promoted: the key file is now the new key (0600), the old one retired, nothing pending.
    await waitFor('key promoted', () => !existsSync(pendingKeyFile(keyFile)));
    expect((await loadSigningKey(keyFile, defaultOrigin('acme'))).verifierKey).toBe(next.acme.verifierKey);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const retired = readdirSync(dataDir).filter((n) => n.startsWith('evidence-signing-key.pem.retired-'));
    expect(retired).toHaveLength(1);
    expect(readFileSync(path.join(dataDir, retired[0]!), 'utf8')).not.toBe(readFileSync(keyFile, 'utf8'));

    // After: new checkpoints are signed by the new key, and not by the old one.
    const after = [5, 6, 7].map((i) => testEvent('acme', i));
    await produce(timeline, after.map((e) => ({ tenant: 'acme', value: JSON.stringify(e) })));
    await waitFor('acme sealed after the rotation', async () => (await sealedSize(store, 'acme')) === 9);
    const cp9 = await checkpointAt(store, 'acme', 9);
    expect(verifyNote(cp9, [next.acme]).ok).toBe(true);
    expect(verifyNote(cp9, [old.acme]).ok).toBe(false);

    // A bundle with events from before and after the rotation verifies offline, trusting the genesis key.
    const bundle = await buildBundle(store, 'acme', { caseId: 'rotation', indices: [1, 7] });
    const v = verifyBundle(bundle, { trustedKeys: [old.acme.verifierKey] });
    expect(v).toMatchObject({ ok: true, treeSize: 9 });
    // ...and against the tenant's exported trust root (genesis key + the pinned rotation);
    expect(verifyBundle(bundle, { trustRoot: await trustRootOf(store, 'acme') })).toMatchObject({ ok: true, treeSize: 9 });
    // the new key `keys rotate` printed vouches for the tree it signed (rotation entry included);
    expect(verifyBundle(bundle, { trustedKeys: [next.acme.verifierKey] })).toMatchObject({ ok: true });
    // any other key, or another tenant's, does not.
    expect(verifyBundle(bundle, { trustedKeys: [testSigner('unrelated', defaultOrigin('acme')).verifierKey] })).toMatchObject({ ok: false, cause: 'KEY_UNTRUSTED' });
    expect(verifyBundle(bundle, { trustedKeys: [next.globex.verifierKey] })).toMatchObject({ ok: false, cause: 'ORIGIN_MISMATCH' });
    await r.stop();
    running.splice(running.indexOf(r), 1);

    // A rotation requested while the processor is down happens when it next starts.
    await writePendingKey(keyFile);
    const third = await loadSigningKey(pendingKeyFile(keyFile), defaultOrigin('acme'));
    const r2 = await start({ timeline, clean, root: store.root, group, keyFile });
    await produce(timeline, [testEvent('acme', 8), testEvent('globex', 3)].map((e) => ({ tenant: e.tenant_id, value: JSON.stringify(e) })));
    // Opened with the current key, rotated at the first tick: event 8 and the rotation entry → size 11.
    await waitFor('acme rotated again', async () => (await sealedSize(store, 'acme')) === 11);
    expect(verifyNote(await checkpointAt(store, 'acme', 11), [next.acme]).ok).toBe(true);
    await produce(timeline, [{ tenant: 'acme', value: JSON.stringify(testEvent('acme', 9)) }]);
    await waitFor('acme sealed after the second rotation', async () => (await sealedSize(store, 'acme')) === 12);
    expect(verifyNote(await checkpointAt(store, 'acme', 12), [third]).ok).toBe(true);
    const rotationsInLog = (await logEntries(store, 'acme')).filter((e) => e.type === KEY_ROTATION_TYPE);
    expect(rotationsInLog.map((e) => e.new_key)).toEqual([next.acme.verifierKey, third.verifierKey]);
    await waitFor('third key promoted', () => !existsSync(pendingKeyFile(keyFile)));
    const all = await buildBundle(store, 'acme', { caseId: 'rotation-2' });
    expect(verifyBundle(all, { trustedKeys: [old.acme.verifierKey] })).toMatchObject({ ok: true });
    await r2.stop();
    running.splice(running.indexOf(r2), 1);
  });

  it('a pending key that does not load is never promoted, even with no log to rotate (empty store)', async () => {
    const { keyFile } = await keyInTempDir();
    const before = readFileSync(keyFile);
    await writePendingKey(keyFile);
    chmodSync(pendingKeyFile(keyFile), 0o644);
    await expect(promotePendingKey(keyFile)).rejects.toThrow(/mode 0644/);
    expect(readFileSync(keyFile).equals(before)).toBe(true); // the current key is kept
    expect(existsSync(pendingKeyFile(keyFile))).toBe(true);
    chmodSync(pendingKeyFile(keyFile), 0o600);
    await promotePendingKey(keyFile);
    expect(readFileSync(keyFile).equals(before)).toBe(false);
    expect((statSync(keyFile).mode & 0o077)).toBe(0);
  });

  it('a pending key that does not load (group-readable) does not stop intake; once fixed, the rotation happens', async () => {
    const { timeline, clean, keyFile, store } = await rotationFixture('rot2', 2);
    await writePendingKey(keyFile);
    chmodSync(pendingKeyFile(keyFile), 0o644); // an operator's copy with the wrong mode
    const r = await start({ timeline, clean, root: store.root, group: uniq('evidence-rot2'), keyFile });
    await produce(timeline, [0, 1, 2].map((i) => ({ tenant: 'acme', value: JSON.stringify(testEvent('acme', i)) })));
    await waitFor('sealed with the current key', async () => (await sealedSize(store, 'acme')) === 3);
    const old = await loadSigningKey(keyFile, defaultOrigin('acme'));
    expect(verifyNote(await checkpointAt(store, 'acme', 3), [old]).ok).toBe(true);
    expect(existsSync(pendingKeyFile(keyFile))).toBe(true); // still pending, not applied
    chmodSync(pendingKeyFile(keyFile), 0o600);
    const next = await loadSigningKey(pendingKeyFile(keyFile), defaultOrigin('acme'));
    await waitFor('rotated and promoted', async () => (await sealedSize(store, 'acme')) === 4 && !existsSync(pendingKeyFile(keyFile)));
    expect((await logEntries(store, 'acme'))[3]).toMatchObject({ type: KEY_ROTATION_TYPE, new_key: next.verifierKey });
    await r.stop();
    running.splice(running.indexOf(r), 1);
  });
});
