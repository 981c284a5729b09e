// Per-tenant signing keys on the real broker (issue 12 item 2): a log begun under the former shared
// key continues under the tenant's own key with a recorded rotation; a new tenant's log starts on
// its own key (file created 0600 on first use); `keys rotate --tenant T` (a pending key file)
// rotates only T. Bundles verify against each tenant's trust root, never against another's.
import { existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBundle, verifyBundle } from '../../processors/evidence/bundle.ts';
import { ensureDevSigningKey } from '../../processors/evidence/dev-key.ts';
import { KEY_ROTATION_TYPE, loadSigningKey, pendingKeyFile, writePendingKey } from '../../processors/evidence/keys.ts';
import { defaultOrigin } from '../../processors/evidence/layout.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { startEvidenceRunner, type RunningEvidence } from '../../processors/evidence/runner.ts';
import { FileTenantKeys, createKeyFileIfAbsent } from '../../processors/evidence/tenant-keys.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { testStore } from '../timeline/support.ts';
import { tempStore, trustRootOf } from './helpers.ts';
import { logEntries, produce, sealedSize, testEvent, waitFor } from './runner-support.ts';

const running: RunningEvidence[] = [];
afterAll(async () => { for (const r of running) await r.abandon().catch(() => undefined); });

const topKey = async (store: ReturnType<typeof tempStore>, tenant: string): Promise<string> => {
  const r = new LogReader(store, tenant);
  const s = await r.keySchedule((await r.latest())!.checkpoint.size);
  return s[s.length - 1]!.verifier.verifierKey;
};

describe('per-tenant signing keys', () => {
  it('createKeyFileIfAbsent makes a 0600 key once and never replaces it', async () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'stella-tk-')), 'keys', 'acme.pem');
    expect(await createKeyFileIfAbsent(file)).toBe(true);
    const first = (await loadSigningKey(file, defaultOrigin('acme'))).verifierKey;
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(await createKeyFileIfAbsent(file)).toBe(false);
    expect((await loadSigningKey(file, defaultOrigin('acme'))).verifierKey).toBe(first);
  });

  it('a shared-key log continues under its own key; new tenants start on theirs; rotate --tenant rotates one tenant', async () => {
    const timeline = uniq('tk_timeline');
    const clean = uniq('tk_spans');
    await createTopics([timeline, clean], 2);
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'stella-tk-'));
    const legacyKeyFile = (await ensureDevSigningKey(dataDir)).file;
    const keyDir = path.join(dataDir, 'evidence-keys');
    const store = tempStore();
    const base = { kafka: testKafka('evidence-tenant-keys'), storeRoot: store.root, topics: { timelineEvents: timeline, clean: [clean] },
      sealEverySeconds: 0.3, sealEveryEntries: 1000 };

    // Before: one shared key signs acme's log (today's deployments).
    const shared = await startEvidenceRunner({ ...base, store: await testStore(), keyFile: legacyKeyFile, groupId: uniq('tk-shared') });
    running.push(shared);
    await produce(timeline, [0, 1, 2].map((i) => ({ tenant: 'acme', value: JSON.stringify(testEvent('acme', i)) })));
    await waitFor('acme sealed under the shared key', async () => (await sealedSize(store, 'acme')) === 3);
    await shared.stop();
    running.splice(running.indexOf(shared), 1);
    const legacyAcme = await loadSigningKey(legacyKeyFile, defaultOrigin('acme'));
    expect(await topKey(store, 'acme')).toBe(legacyAcme.verifierKey);

    // After: per-tenant keys, the shared key kept as the legacy key to continue from.
    const keys = new FileTenantKeys(keyDir, legacyKeyFile);
    const group = uniq('tk-own');
    const r = await startEvidenceRunner({ ...base, store: await testStore(), keys, groupId: group });
    running.push(r);
    await produce(timeline, [...[3, 4].map((i) => testEvent('acme', i)), ...[0, 1].map((i) => testEvent('globex', i))]
      .map((e) => ({ tenant: e.tenant_id, value: JSON.stringify(e) })));
    // acme: events 3, 4 (sealed with the shared key, with the rotation entry last) → size 6, then on its own key.
    await waitFor('acme rotated to its own key, globex sealed', async () => (await sealedSize(store, 'acme')) === 6 && (await sealedSize(store, 'globex')) === 2);
    const acmeOwn = await loadSigningKey(keys.fileOf('acme'), defaultOrigin('acme'));
    const globexOwn = await loadSigningKey(keys.fileOf('globex'), defaultOrigin('globex'));
    for (const t of ['acme', 'globex']) expect(statSync(keys.fileOf(t)).mode & 0o777).toBe(0o600);
    expect(acmeOwn.publicKey).not.toEqual(globexOwn.publicKey); // distinct keys, not one key under two names
    expect(acmeOwn.publicKey).not.toEqual(legacyAcme.publicKey);
    // The rotation entry lands at the tick after the open: before or after events 3 and 4.
    const acmeLog = await logEntries(store, 'acme');
    const rot = acmeLog.findIndex((e) => e.type === KEY_ROTATION_TYPE);
    expect(rot).toBeGreaterThanOrEqual(3);
    expect(acmeLog[rot]).toEqual({ type: KEY_ROTATION_TYPE, previous_key: legacyAcme.verifierKey, new_key: acmeOwn.verifierKey, valid_from_size: rot + 2 });
    expect(await topKey(store, 'globex')).toBe(globexOwn.verifierKey); // no rotation: born on its own key
    expect((await logEntries(store, 'globex')).some((e) => e.type === KEY_ROTATION_TYPE)).toBe(false);

    await produce(timeline, [{ tenant: 'acme', value: JSON.stringify(testEvent('acme', 5)) }]);
    await waitFor('acme sealed under its own key', async () => (await sealedSize(store, 'acme')) === 7);
    expect(await topKey(store, 'acme')).toBe(acmeOwn.verifierKey);

    // stella keys rotate --tenant globex: only globex rotates; the pending file is promoted.
    await writePendingKey(keys.fileOf('globex'));
    const globexNext = await loadSigningKey(pendingKeyFile(keys.fileOf('globex')), defaultOrigin('globex'));
    await waitFor('globex rotated and promoted', async () => (await sealedSize(store, 'globex')) === 3 && !existsSync(pendingKeyFile(keys.fileOf('globex'))));
    expect((await loadSigningKey(keys.fileOf('globex'), defaultOrigin('globex'))).verifierKey).toBe(globexNext.verifierKey);
    expect(readdirSync(keyDir).filter((n) => n.startsWith('globex.pem.retired-'))).toHaveLength(1);
    expect(readdirSync(keyDir).some((n) => n.startsWith('acme.pem.'))).toBe(false); // acme untouched
    expect(await sealedSize(store, 'acme')).toBe(7);

    // Each tenant's bundle verifies against its own trust root only.
    const acmeRoot = await trustRootOf(store, 'acme');
    const globexRoot = await trustRootOf(store, 'globex');
    expect(acmeRoot.log_keys).toEqual([legacyAcme.verifierKey]);
    expect(acmeRoot.rotations).toEqual([{ previous_key: legacyAcme.verifierKey, new_key: acmeOwn.verifierKey, valid_from_size: rot + 2 }]);
    const acmeBundle = await buildBundle(store, 'acme', { caseId: 'own-keys', indices: [1, 6] });
    expect(verifyBundle(acmeBundle, { trustRoot: acmeRoot })).toMatchObject({ ok: true, treeSize: 7 });
    expect(verifyBundle(acmeBundle, { trustRoot: globexRoot })).toMatchObject({ ok: false, cause: 'ORIGIN_MISMATCH' });
    const globexBundle = await buildBundle(store, 'globex', { caseId: 'own-keys' });
    expect(verifyBundle(globexBundle, { trustRoot: globexRoot })).toMatchObject({ ok: true, treeSize: 3 });
    // globex's key under acme's name is just another key: not derivable from acme's trust root.
    expect(verifyBundle(acmeBundle, { trustedKeys: [(await loadSigningKey(keys.fileOf('globex'), defaultOrigin('acme'))).verifierKey] })).toMatchObject({ ok: false, cause: 'KEY_UNTRUSTED' });
    await r.stop();
    running.splice(running.indexOf(r), 1);

    // A restart keeps each tenant on its key (no further rotation entries).
    const r2 = await startEvidenceRunner({ ...base, store: await testStore(), keys: new FileTenantKeys(keyDir, legacyKeyFile), groupId: group });
    running.push(r2);
    await produce(timeline, [{ tenant: 'acme', value: JSON.stringify(testEvent('acme', 6)) }, { tenant: 'globex', value: JSON.stringify(testEvent('globex', 2)) }]);
    await waitFor('both sealed after the restart', async () => (await sealedSize(store, 'acme')) === 8 && (await sealedSize(store, 'globex')) === 4);
    expect((await logEntries(store, 'acme')).filter((e) => e.type === KEY_ROTATION_TYPE)).toHaveLength(1);
    expect(await topKey(store, 'globex')).toBe(globexNext.verifierKey);
    await r2.stop();
    running.splice(running.indexOf(r2), 1);
  });
});
