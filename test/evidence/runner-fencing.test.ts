// Fencing of evidence writers (issue 15 item 15): a consumer-group member that lost a tenant in a
// rebalance but is still finishing a seal must not fork the tenant's log. Each process claims the
// tenant's writer epoch when it opens the tenant; every write re-checks it under the store's lock.
import { afterAll, describe, expect, it } from 'vitest';
import { buildBundle, verifyBundle } from '../../processors/evidence/bundle.ts';
import { verifyConsistency } from '../../processors/evidence/merkle.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { startEvidenceRunner, type RunningEvidence } from '../../processors/evidence/runner.ts';
import { Sealer } from '../../processors/evidence/sealer.ts';
import { FencedError, FsEvidenceStore, type EvidenceStore } from '../../processors/evidence/store.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { testStore } from '../timeline/support.ts';
import { items, snapshotDir, TENANT, tempStore, testSigner, trustRootOf } from './helpers.ts';
import { logEntries, produce, sealedSize, tenantSigner, testEvent, waitFor } from './runner-support.ts';

const running: RunningEvidence[] = [];
afterAll(async () => { for (const r of running) await r.abandon().catch(() => undefined); });

/** Every sealed checkpoint of the tenant is consistent with the one before it: one linear log. */
async function expectLinear(store: EvidenceStore, tenant: string): Promise<number[]> {
  const r = new LogReader(store, tenant);
  const sizes = await r.sealedSizes();
  for (let i = 1; i < sizes.length; i++) {
    const [m, n] = [sizes[i - 1]!, sizes[i]!];
    const old = (await r.checkpointAt(m))!.checkpoint.root;
    const cur = (await r.checkpointAt(n))!.checkpoint.root;
    expect(verifyConsistency(m, n, await r.consistencyProof(m, n), old, cur), `${tenant} ${m} -> ${n}`).toBe(true);
  }
  return sizes;
}

describe('evidence writer fencing', () => {
  it('a sealer whose writer epoch was superseded gets FencedError and changes nothing on disk; the new writer continues the log', async () => {
    const store = tempStore();
    const signer = testSigner();
    const oldWriter = await store.claimWriter(TENANT);
    const stale = await Sealer.recover({ store: oldWriter, tenant: TENANT, signer });
    stale.append(items(0, 5));
    await stale.seal('2026-12-03T10:00:00Z');
    stale.append(items(5, 12)); // pending when the rebalance moves the tenant

    // The new owner claims the tenant, recovers from the store and seals other records first.
    const newWriter = await store.claimWriter(TENANT);
    expect(newWriter.epoch).toBe(oldWriter.epoch + 1);
    const owner = await Sealer.recover({ store: newWriter, tenant: TENANT, signer });
    expect(owner.size).toBe(5);
    owner.append(items(5, 8));
    await owner.seal('2026-12-03T10:00:01Z');

    const before = snapshotDir(store.root);
    // Without the fence this seal would write checkpoints/12 over entries 5..11 next to the new
    // owner's checkpoints/8: two heads of one log.
    await expect(stale.seal('2026-12-03T10:00:02Z')).rejects.toBeInstanceOf(FencedError);
    await expect(oldWriter.writeMutable(TENANT, 'checkpoint', Buffer.from('forged'))).rejects.toThrow(/fenced out/);
    await expect(oldWriter.removeIncompleteWrites!(TENANT, () => false)).rejects.toBeInstanceOf(FencedError);
    expect(snapshotDir(store.root)).toEqual(before);

    owner.append(items(8, 12));
    await owner.seal('2026-12-03T10:00:03Z');
    expect(await expectLinear(store, TENANT)).toEqual([5, 8, 12]);
    expect((await new LogReader(store, TENANT).latest())!.checkpoint.size).toBe(12);
    // A second store object over the same directory (another process) sees the same epoch.
    expect(await new FsEvidenceStore(store.root).writerEpoch(TENANT)).toBe(newWriter.epoch);
  });

  it('two runners in one group over one store, members joining and leaving while records flow: one linear log per tenant, every record once', async () => {
    const timeline = uniq('ev_timeline');
    const clean = uniq('ev_spans_clean');
    await createTopics([timeline, clean], 4);
    const tenants = ['f-a', 'f-b', 'f-c', 'f-d', 'f-e', 'f-f'];
    const perWave = 12;
    const waves = 4;
    const evs = new Map(tenants.map((t) => [t, Array.from({ length: perWave * waves }, (_, i) => testEvent(t, i))]));
    const wave = async (w: number): Promise<void> => {
      await produce(timeline, tenants.flatMap((t) => evs.get(t)!.slice(w * perWave, (w + 1) * perWave).map((e) => ({ tenant: t, value: JSON.stringify(e) }))));
    };
    const store = tempStore();
    const group = uniq('evidence-fencing');
    const start = async (): Promise<RunningEvidence> => {
      const r = await startEvidenceRunner({ kafka: testKafka('evidence-fencing'), storeRoot: store.root, store: await testStore(), signer: tenantSigner,
        topics: { timelineEvents: timeline, clean: [clean] }, groupId: group, sealEverySeconds: 0.1, sealEveryEntries: 5 });
      running.push(r);
      return r;
    };

    const a = await start();
    await wave(0);
    await waitFor('first seals', async () => (await sealedSize(store, 'f-a')) > 0);
    const b = await start(); // rebalance: half the partitions move to b
    await wave(1);
    const c = await start(); // a third member joins: another rebalance
    await wave(2);
    await b.stop(); // a member leaves: its partitions move back
    await wave(3);
    const total = perWave * waves;
    for (const t of tenants) await waitFor(`${t} complete`, async () => (await sealedSize(store, t)) === total, 40_000);
    await c.stop();
    await a.stop();

    let moved = 0;
    for (const t of tenants) {
      const entries = await logEntries(store, t);
      // Every input record's entry exactly once, in offset order.
      expect(entries.map((e) => e.event_id)).toEqual(evs.get(t)!.map((e) => e.event_id));
      const sizes = await expectLinear(store, t);
      expect(sizes[sizes.length - 1]).toBe(total);
      expect(verifyBundle(await buildBundle(store, t, { caseId: 'fencing' }), { trustRoot: await trustRootOf(store, t) })).toMatchObject({ ok: true, treeSize: total });
      const epoch = await store.writerEpoch(t);
      expect(epoch).toBeGreaterThanOrEqual(1);
      if (epoch > 1) moved++;
    }
    expect(moved).toBeGreaterThan(0); // the rebalances did hand tenants over (each hand-over claims a new epoch)

    // A writer left over from before the last hand-over (an old epoch) cannot write.
    const t = tenants[0]!;
    const current = await store.writerEpoch(t);
    const staleEpoch = await store.claimWriter(t); // epoch current + 1 ...
    await store.claimWriter(t); // ... superseded by current + 2
    expect(staleEpoch.epoch).toBe(current + 1);
    const before = snapshotDir(store.root);
    const err = await staleEpoch.writeImmutable(t, 'index/999.json', Buffer.from('{}')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FencedError);
    expect(snapshotDir(store.root)).toEqual(before);
  }, 60_000);
});
