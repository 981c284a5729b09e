import { chmodSync, mkdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LogReader } from '../../processors/evidence/reader.ts';
import { Sealer } from '../../processors/evidence/sealer.ts';
import { loadSigningKey, KeyFileError } from '../../processors/evidence/keys.ts';
import { leafHash, toHex } from '../../processors/evidence/hash.ts';
import { MemoryTree, verifyConsistency, verifyInclusion } from '../../processors/evidence/merkle.ts';
import { verifyNote } from '../../processors/evidence/note.ts';
import { ImmutableConflictError } from '../../processors/evidence/store.ts';
import { CrashingStore, ORIGIN, SimulatedCrash, TENANT, items, snapshotDir, tempStore, testSigner } from './helpers.ts';

const T1 = '2026-11-23T10:00:00.000Z';
const T2 = '2026-11-23T10:01:00.000Z';
const T3 = '2026-11-23T10:02:00.000Z';
// Seal boundaries chosen to cross tile edges (256) and leave partial tiles at each seal.
const PLAN: [number, number, string][] = [[0, 300, T1], [300, 513, T2], [513, 777, T3]];

async function uninterrupted() {
  const store = tempStore();
  let s = await Sealer.recover({ store, tenant: TENANT, signer: testSigner() });
  const rows = [];
  for (const [a, b, t] of PLAN) { s.append(items(a, b)); rows.push(await s.seal(t)); }
  return { store, rows, sealer: s };
}

describe('sealer', () => {
  it('seals tiles, checkpoint and envelope that agree with an in-memory tree; proofs from the store verify', async () => {
    const { store, rows, sealer } = await uninterrupted();
    expect(rows.map((r) => [r!.from_size, r!.to_size])).toEqual([[0, 300], [300, 513], [513, 777]]);
    const tree = new MemoryTree(items(0, 777).map((i) => leafHash(i.entry)));
    expect(rows[2]!.root_hex).toBe(toHex(tree.root()));
    expect(toHex(sealer.root)).toBe(toHex(tree.root()));
    const reader = new LogReader(store, TENANT);
    const cp = (await reader.latest())!;
    expect(cp.checkpoint).toMatchObject({ origin: ORIGIN, size: 777 });
    expect(verifyNote(cp.note, [testSigner()]).ok).toBe(true);
    for (const i of [0, 255, 256, 299, 300, 512, 776]) {
      const p = await reader.inclusionProof(i, 777);
      expect(verifyInclusion(tree.levels[0]![i]!, i, 777, p, cp.checkpoint.root)).toBe(true);
      expect(Buffer.from(await reader.entry(i, 777)).equals(items(i, i + 1)[0]!.entry)).toBe(true);
    }
    // A long-lived reader with a tile cache and memoized node hashes gives the same proofs, at
    // every size the log had, including sizes whose partial tiles are since superseded.
    const cached = new LogReader(store, TENANT, { tileCache: 8 });
    for (const size of [300, 513, 777, 300]) {
      for (const i of [0, 17, 255, 256, size - 1]) {
        const want = (await reader.inclusionProof(i, size)).map(toHex);
        expect((await cached.inclusionProof(i, size)).map(toHex)).toEqual(want);
        expect(want).toEqual(tree.inclusionProof(i, size).map(toHex));
      }
    }
    const c = await reader.consistencyProof(300, 777);
    expect(verifyConsistency(300, 777, c, tree.root(300), tree.root(777))).toBe(true);
    expect(sealer.highWater()).toEqual([{ topic: 'stella.timeline', partition: 0, offset: '776' }]);
    expect(await sealer.seal(T3)).toBeUndefined(); // nothing pending, nothing sealed
  });

  it('is deterministic: the same entries, key and sealed_at give byte-identical stores', async () => {
    const a = await uninterrupted();
    const b = await uninterrupted();
    expect(snapshotDir(b.store.root)).toEqual(snapshotDir(a.store.root));
    expect(b.rows).toEqual(a.rows);
  });

  it('skips Kafka records at or below the sealed high water (re-delivery after a crash)', async () => {
    const { store } = await uninterrupted();
    const s = await Sealer.recover({ store, tenant: TENANT, signer: testSigner() });
    expect(s.size).toBe(777);
    const r = s.append(items(700, 800));
    expect(r).toMatchObject({ accepted: 23, skipped: 77 });
    expect(r.indices.slice(75, 79)).toEqual([-1, -1, 777, 778]);
    expect(s.append(items(790, 800))).toMatchObject({ accepted: 0, skipped: 10 });
  });

  describe('crash matrix: a crash at any point, recover, re-append, gives the uninterrupted log', () => {
    const cases: [string, RegExp][] = [
      ['before tiles', /^tile\//],
      ['between tiles and checkpoint', /^checkpoints\//],
      ['between checkpoint and envelope (commit record)', /^envelopes\//],
      ['after envelope, before the checkpoint pointer', /^checkpoint$/],
    ];
    for (const [name, at] of cases) {
      it(name, async () => {
        const want = snapshotDir((await uninterrupted()).store.root);
        const fs = tempStore();
        const crashing = new CrashingStore(fs, undefined);
        let s = await Sealer.recover({ store: fs, tenant: TENANT, signer: testSigner() });
        s.append(items(0, 300));
        await s.seal(T1);
        // Second seal crashes at the chosen point.
        const s2 = await Sealer.recover({ store: new CrashingStore(fs, at), tenant: TENANT, signer: testSigner() });
        s2.append(items(300, 513));
        await expect(s2.seal(T2)).rejects.toBeInstanceOf(SimulatedCrash);
        // Restart: Kafka re-delivers from the last committed offset (300) on.
        s = await Sealer.recover({ store: crashing, tenant: TENANT, signer: testSigner() });
        s.append(items(300, 513));
        if (s.pendingCount > 0) await s.seal(T2);
        s.append(items(513, 777));
        await s.seal(T3);
        expect(snapshotDir(fs.root)).toEqual(want);
      });
    }
    it('re-delivery in another order after a crash before the commit record (uncommitted tiles are dropped)', async () => {
      // Two partitions: the interleave after a restart need not match the one before it.
      const mixed = (order: 'ab' | 'ba') => {
        const a = items(300, 420, 'stella.timeline', 0);
        const b = items(420, 513, 'stella.timeline', 1);
        return order === 'ab' ? [...a, ...b] : [...b, ...a];
      };
      const run = async (store: ReturnType<typeof tempStore>, order: 'ab' | 'ba', crashAt?: RegExp) => {
        let s = await Sealer.recover({ store, tenant: TENANT, signer: testSigner() });
        s.append(items(0, 300)); await s.seal(T1);
        if (crashAt) {
          const c = await Sealer.recover({ store: new CrashingStore(store, crashAt), tenant: TENANT, signer: testSigner() });
          c.append(mixed('ab'));
          await expect(c.seal(T2)).rejects.toBeInstanceOf(SimulatedCrash);
          s = await Sealer.recover({ store, tenant: TENANT, signer: testSigner() });
        }
        s.append(mixed(order)); await s.seal(T2);
      };
      const want = tempStore();
      await run(want, 'ba');
      for (const at of [/^envelopes\//, /^checkpoints\//]) {
        const got = tempStore();
        await run(got, 'ba', at);
        expect(snapshotDir(got.root)).toEqual(snapshotDir(want.root));
      }
    });

    it('a first seal that never committed leaves no key behind (the restart may use another key)', async () => {
      const fs = tempStore();
      const c = await Sealer.recover({ store: new CrashingStore(fs, /^envelopes\//), tenant: TENANT, signer: testSigner('first') });
      c.append(items(0, 10));
      await expect(c.seal(T1)).rejects.toBeInstanceOf(SimulatedCrash);
      expect(await fs.list(TENANT, 'keys')).toEqual([`${testSigner('first').keyIdHex}.json`]);
      const s = await Sealer.recover({ store: fs, tenant: TENANT, signer: testSigner() });
      expect(await fs.list(TENANT, 'keys')).toEqual([]);
      s.append(items(0, 10)); await s.seal(T1);
      expect(await fs.list(TENANT, 'keys')).toEqual([`${testSigner().keyIdHex}.json`]);
      expect((await new LogReader(fs, TENANT).keySchedule(10)).map((k) => k.verifier.keyIdHex)).toEqual([testSigner().keyIdHex]);
    });

    it('a process killed mid-write: its temp files are removed on recovery', async () => {
      const want = snapshotDir((await uninterrupted()).store.root);
      const fs = tempStore();
      let s = await Sealer.recover({ store: fs, tenant: TENANT, signer: testSigner() });
      s.append(items(0, 300)); await s.seal(T1);
      // What a kill -9 during writeImmutableMany leaves: a half-written temp file next to the tiles.
      mkdirSync(path.join(fs.tenantDir(TENANT), 'tile', '0'), { recursive: true });
      writeFileSync(path.join(fs.tenantDir(TENANT), 'tile', '0', '.tmp-0123456789ab'), Buffer.alloc(100));
      s = await Sealer.recover({ store: fs, tenant: TENANT, signer: testSigner() });
      s.append(items(300, 513)); await s.seal(T2);
      s.append(items(513, 777)); await s.seal(T3);
      expect(snapshotDir(fs.root)).toEqual(want);
    });

    it('after the checkpoint, before the Kafka offset commit', async () => {
      const want = snapshotDir((await uninterrupted()).store.root);
      const fs = tempStore();
      let s = await Sealer.recover({ store: fs, tenant: TENANT, signer: testSigner() });
      s.append(items(0, 300)); await s.seal(T1);
      s.append(items(300, 513)); await s.seal(T2);
      // The runner dies before committing offset 512: everything from 300 comes again.
      s = await Sealer.recover({ store: fs, tenant: TENANT, signer: testSigner() });
      expect(s.append(items(300, 777))).toMatchObject({ accepted: 264, skipped: 213 });
      await s.seal(T3);
      expect(snapshotDir(fs.root)).toEqual(want);
    });
  });

  it('refuses entries over 65,535 bytes with a clear error, before queuing anything', async () => {
    const s = await Sealer.recover({ store: tempStore(), tenant: TENANT, signer: testSigner() });
    expect(() => s.append([{ entry: Buffer.from('{}') }, { entry: Buffer.alloc(65_536) }])).toThrow(/65536 bytes exceeds the 65535-byte limit/);
    expect(s.pendingCount).toBe(0);
    expect(s.append([{ entry: Buffer.alloc(65_535, 0x20) }])).toMatchObject({ accepted: 1 });
    expect((await s.seal(T1))!.to_size).toBe(1);
  });

  it('refuses to overwrite a sealed file with different bytes', async () => {
    const { store } = await uninterrupted();
    await expect(store.writeImmutable(TENANT, 'tile/0/000', Buffer.alloc(8192))).rejects.toBeInstanceOf(ImmutableConflictError);
    await expect(store.writeImmutable(TENANT, '../other/x', Buffer.alloc(1))).rejects.toThrow(/invalid evidence path/);
    await expect(store.read('../etc', 'checkpoint')).rejects.toThrow(/tenant id/);
  });

  it('rotates keys through a rotation entry in the log; recovery insists on the current key', async () => {
    const { store } = await uninterrupted();
    const k1 = testSigner();
    const k2 = testSigner('key-2');
    let s = await Sealer.recover({ store, tenant: TENANT, signer: k1 });
    s.append(items(777, 800));
    const row = await s.rotateKey(k2, '2026-11-23T11:00:00.000Z');
    expect(row.to_size).toBe(801); // 23 entries + the rotation entry, signed by the old key
    const reader = new LogReader(store, TENANT);
    expect(verifyNote((await reader.latest())!.note, [k1]).ok).toBe(true);
    const rot = JSON.parse(Buffer.from(await reader.entry(800, 801)).toString());
    expect(rot).toEqual({ type: 'stella.evidence.key-rotation/v1', previous_key: k1.verifierKey, new_key: k2.verifierKey, valid_from_size: 802 });
    s.append(items(800, 810));
    await s.seal('2026-11-23T11:01:00.000Z');
    expect(verifyNote((await reader.latest())!.note, [k2]).ok).toBe(true);
    expect(verifyNote((await reader.latest())!.note, [k1]).ok).toBe(false);
    await expect(Sealer.recover({ store, tenant: TENANT, signer: k1 })).rejects.toThrow(/current key/);
    s = await Sealer.recover({ store, tenant: TENANT, signer: k2 });
    expect(s.size).toBe(811);
    const sched = await reader.keySchedule(811);
    expect(sched.map((k) => [k.verifier.keyIdHex, k.validFrom, k.validUntil])).toEqual([[k1.keyIdHex, 1, 802], [k2.keyIdHex, 802, null]]);
  });
});

describe('signing key files', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-keys-'));
  const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  it('loads a 0600 PKCS#8 PEM key', async () => {
    const f = path.join(dir, 'ok.pem');
    writeFileSync(f, pem, { mode: 0o600 });
    chmodSync(f, 0o600);
    const s = await loadSigningKey(f, ORIGIN);
    expect(s.name).toBe(ORIGIN);
    expect(JSON.stringify(s)).not.toContain(pem.slice(30, 50));
  });
  it('refuses group/other-readable key files (0644, 0640)', async () => {
    for (const mode of [0o644, 0o640, 0o604]) {
      const f = path.join(dir, `bad-${mode.toString(8)}.pem`);
      writeFileSync(f, pem);
      chmodSync(f, mode);
      await expect(loadSigningKey(f, ORIGIN)).rejects.toBeInstanceOf(KeyFileError);
      await expect(loadSigningKey(f, ORIGIN)).rejects.toThrow(/chmod 600/);
    }
  });
  it('refuses non-key content without echoing it', async () => {
    const f = path.join(dir, 'junk.pem');
    writeFileSync(f, 'secret-looking-junk', { mode: 0o600 });
    chmodSync(f, 0o600);
    const err = await loadSigningKey(f, ORIGIN).catch((e: Error) => e);
    expect(err).toBeInstanceOf(KeyFileError);
    expect((err as Error).message).not.toContain('secret-looking-junk');
  });
});
