// Clean records packed per entry bundle (record-packs.ts, lib/cas.ts putPack): one CAS file per
// bundle's records, found by log index through the seal's pack index, every read verified against
// the record's own sha256; deterministic; blobs stored one per record before packs still read; an
// uncommitted pack index (a seal cut off before its commit record) removed by recovery.
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CasIntegrityError, FsBlobStore, packId } from '../../lib/cas.ts';
import { sha256Hex } from '../../processors/evidence/hash.ts';
import { PackedRecords, SealPacks, packIndexPath, packLabel, type PackIndexFile } from '../../processors/evidence/record-packs.ts';
import { Sealer } from '../../processors/evidence/sealer.ts';
import { ORIGIN, TENANT, items, tempStore, testSigner } from './helpers.ts';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
const tempCas = (): FsBlobStore => { const d = mkdtempSync(path.join(os.tmpdir(), 'stella-cas-packs-')); dirs.push(d); return new FsBlobStore(d); };
const rec = (i: number, n = 300): Buffer => Buffer.from(`record ${i} `.padEnd(n, String.fromCharCode(97 + (i % 26))));

/** Pack the records at these log indices (index -> bytes) as the runner does for one seal. */
async function packSeal(cas: FsBlobStore, from: number, records: [number, Buffer][]): Promise<Buffer | undefined> {
  const p = new SealPacks(TENANT, cas);
  for (const [i, b] of records) p.add(i, sha256Hex(b), b);
  return p.finish(from);
}

function packFiles(cas: FsBlobStore): string[] {
  const root = path.join(cas.root, TENANT, 'packs');
  return readdirSync(root, { recursive: true }).map(String).filter((n) => /^[0-9a-f]{2}[/\\][0-9a-f]{64}$/.test(n)).sort();
}

describe('record packs', () => {
  it('one pack per entry bundle, a repeat stored once, every record read back by index and verified; same inputs give the same bytes', async () => {
    const cas = tempCas();
    const evidence = tempStore();
    // Indices 250..259 cross the boundary of entry bundles 0 and 1; the record at 253 repeats 251's bytes.
    const records: [number, Buffer][] = [250, 251, 252, 253, 254, 255, 256, 257, 258, 259].map((i) => [i, i === 253 ? rec(251) : rec(i)]);
    const index = (await packSeal(cas, 250, records))!;
    await evidence.writeImmutable(TENANT, packIndexPath(250), index);
    const file = JSON.parse(index.toString('utf8')) as PackIndexFile;
    expect(file.from).toBe(250);
    expect(file.packs.map((p) => p.bundle)).toEqual([0, 1]);
    expect(file.packs[0]!.records.map((r) => r.index)).toEqual([250, 251, 252, 253, 254, 255]);
    const r251 = file.packs[0]!.records.find((r) => r.index === 251)!;
    expect(file.packs[0]!.records.find((r) => r.index === 253)).toEqual({ ...r251, index: 253 }); // same bytes, same place
    expect(file.packs[0]!.size).toBe(5 * 300); // six records, five distinct
    expect(packFiles(cas)).toHaveLength(2);
    // The pack id is the hash of its parts' digests and sizes, in order (no second pass over the bytes).
    expect(file.packs[1]!.pack).toBe(packId([256, 257, 258, 259].map((i) => ({ digest: `sha256:${sha256Hex(rec(i))}` as const, size: 300 })), packLabel(1)));
    // Scoped to its bundle: the same records in another bundle are another pack.
    expect(packId([{ digest: `sha256:${sha256Hex(rec(1))}`, size: 300 }], packLabel(0))).not.toBe(packId([{ digest: `sha256:${sha256Hex(rec(1))}`, size: 300 }], packLabel(1)));

    const source = new PackedRecords(evidence, cas);
    for (const [i, b] of records) expect(await source.record(TENANT, i, sha256Hex(b))).toEqual(b);
    // Bytes that do not hash to what the entry commits to are never served.
    await expect(source.record(TENANT, 252, sha256Hex(rec(999)))).rejects.toBeInstanceOf(CasIntegrityError);
    expect(await source.record(TENANT, 999, sha256Hex(rec(999)))).toBeUndefined(); // not packed, no blob

    // Deterministic: the same records again give the same index bytes and the same pack files.
    const cas2 = tempCas();
    expect(await packSeal(cas2, 250, records)).toEqual(index);
    for (const f of packFiles(cas)) expect(readFileSync(path.join(cas2.root, TENANT, 'packs', f))).toEqual(readFileSync(path.join(cas.root, TENANT, 'packs', f)));
    // Writing the same packs again is a no-op (write-once).
    expect(await packSeal(cas, 250, records)).toEqual(index);
    expect(packFiles(cas)).toHaveLength(2);
  });

  it('a pack altered on disk is refused on read (CasIntegrityError), never served', async () => {
    const cas = tempCas();
    const evidence = tempStore();
    const records: [number, Buffer][] = [[0, rec(0)], [1, rec(1)], [2, rec(2)]];
    await evidence.writeImmutable(TENANT, packIndexPath(0), (await packSeal(cas, 0, records))!);
    const f = path.join(cas.root, TENANT, 'packs', packFiles(cas)[0]!);
    const bytes = readFileSync(f);
    bytes[310] = bytes[310]! ^ 1; // inside record 1
    chmodSync(f, 0o644);
    writeFileSync(f, bytes);
    const source = new PackedRecords(evidence, cas);
    expect(await source.record(TENANT, 0, sha256Hex(rec(0)))).toEqual(rec(0));
    await expect(source.record(TENANT, 1, sha256Hex(rec(1)))).rejects.toBeInstanceOf(CasIntegrityError);
    // Truncated: the record past the end is refused too.
    writeFileSync(f, bytes.subarray(0, 700));
    await expect(source.record(TENANT, 2, sha256Hex(rec(2)))).rejects.toBeInstanceOf(CasIntegrityError);
  });

  it('records stored one blob per record (before packs) are still read', async () => {
    const cas = tempCas();
    const evidence = tempStore();
    const old = rec(7);
    await cas.put(TENANT, old);
    const source = new PackedRecords(evidence, cas);
    expect(await source.record(TENANT, 7, sha256Hex(old))).toEqual(old);
    // Packs of later seals do not hide them.
    await evidence.writeImmutable(TENANT, packIndexPath(8), (await packSeal(cas, 8, [[8, rec(8)]]))!);
    expect(await source.record(TENANT, 7, sha256Hex(old))).toEqual(old);
    expect(await source.record(TENANT, 8, sha256Hex(rec(8)))).toEqual(rec(8));
  });

  it('recovery removes the pack index of a seal that never reached its commit record, and keeps committed ones', async () => {
    const store = tempStore();
    const signer = testSigner('packs', ORIGIN);
    const s = await Sealer.recover({ store, tenant: TENANT, signer });
    await store.writeImmutable(TENANT, packIndexPath(0), Buffer.from('{"from":0,"packs":[]}'));
    s.append(items(0, 3));
    await s.seal(new Date('2026-12-03T10:00:00Z'));
    // The next seal wrote its pack index, then the process died before the envelope.
    await store.writeImmutable(TENANT, packIndexPath(3), Buffer.from('{"from":3,"packs":[]}'));
    await Sealer.recover({ store, tenant: TENANT, signer });
    expect(await store.list(TENANT, 'packs')).toEqual(['0.json']);
    // The re-seal (another interleave) can write its own index for the same seal.
    await store.writeImmutable(TENANT, packIndexPath(3), Buffer.from('{"from":3,"packs":[{"other":1}]}'));
  });
});
