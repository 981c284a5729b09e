// Retention and the stored clean records (real FsEvidenceStore, real Sealer, real FsBlobStore; the
// seals written as the runner writes them: packs and pack index before the seal, trace index after):
// a hold by trace id keeps the bundles holding that trace's clean records (their entries carry no
// trace_id), and its trace bundle with records still verifies; the records of pruned bundles go
// from disk (packs, and blobs stored one per record before packs), except a blob a held entry
// shares; a prune interrupted before or after deleting records finishes on the next run.
import { mkdtempSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FsBlobStore, putManyFs } from '../../lib/cas.ts';
import { encode, types } from '../../lib/otlp/proto.ts';
import { buildBundle, verifyBundle } from '../../processors/evidence/bundle.ts';
import { sha256Hex } from '../../processors/evidence/hash.ts';
import { checkStoredLog, pruneTenant } from '../../processors/evidence/prune.ts';
import { PackedRecords, SealPacks, packIndexFiles, packIndexPath } from '../../processors/evidence/record-packs.ts';
import type { HoldCover } from '../../processors/evidence/retention.ts';
import { cleanBatchEntry } from '../../processors/evidence/runner.ts';
import { Sealer } from '../../processors/evidence/sealer.ts';
import type { EvidenceStore } from '../../processors/evidence/store.ts';
import { traceIdsOfRecord, traceIndexFileBytes, traceRecordIndices, tracesPath } from '../../processors/evidence/trace-index.ts';
import { TENANT, tempStore, testSigner, trustRootOf } from './helpers.ts';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 3, 12, 0, 0);
const traceOf = (bundle: number): string => createHash('sha256').update(`trace-${bundle}`).digest('hex').slice(0, 32);
const SHARED_TRACE = 'feed'.repeat(8);
const custody = { rawSha256: 'ab'.repeat(32), scrubPolicy: `sha256:${'cd'.repeat(32)}` };
const spanBatch = (traceId: string, name: string): Buffer => Buffer.from(encode('traces', types.ExportTraceServiceRequest.fromObject({ resourceSpans: [{
  scopeSpans: [{ spans: [{ traceId: Buffer.from(traceId, 'hex'), spanId: Buffer.alloc(8, 1), name, kind: 2 }] }] }] })));

/** Bundle b's 256 span batches, all of trace traceOf(b); bundles 3 and 4 each hold one identical batch of SHARED_TRACE. */
function recordsOf(b: number): Buffer[] {
  return Array.from({ length: 256 }, (_, k) => (k === 9 && (b === 3 || b === 4) ? spanBatch(SHARED_TRACE, 'shared') : spanBatch(traceOf(b), `op ${b}/${k}`)));
}

/**
 * 12 bundles of clean records, one seal each: 0..9 sealed 60 days ago, 10 and 11 a day ago. Bundles
 * 0..5 were stored one blob per record (before packs), 6..11 as packs; a trace index file per seal,
 * after the records-on marker at size 0.
 */
async function recordLog(): Promise<{ store: EvidenceStore; cas: FsBlobStore }> {
  const store = tempStore();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-prune-records-'));
  dirs.push(dir);
  const cas = new FsBlobStore(dir);
  const s = await Sealer.recover({ store, tenant: TENANT, signer: testSigner() });
  await store.writeImmutable(TENANT, tracesPath(0), traceIndexFileBytes(0, 0, []));
  for (let b = 0; b < 12; b++) {
    const from = s.size;
    const packs = b >= 6 ? new SealPacks(TENANT, cas) : undefined;
    const pairs: [string, number][] = [];
    const values = recordsOf(b);
    if (!packs) await putManyFs(cas, TENANT, values); // one blob per record, as stored before packs (group-committed: a faster test)
    const items = values.map((v, k) => {
      const digest = sha256Hex(v);
      if (packs) packs.add(from + k, digest, v);
      for (const id of traceIdsOfRecord('traces', v)) pairs.push([id, from + k]);
      return { entry: cleanBatchEntry(v, { topic: 'otlp_spans_clean', partition: 0, offset: String(from + k) }, custody, digest), kafka: { topic: 'otlp_spans_clean', partition: 0, offset: from + k } };
    });
    const index = await packs?.finish(from);
    if (index) await store.writeImmutable(TENANT, packIndexPath(from), index);
    s.append(items);
    await s.seal(new Date(NOW - (b < 10 ? 60 : 1) * DAY + b * 1000));
    await store.writeImmutable(TENANT, tracesPath(s.size), traceIndexFileBytes(from, s.size, pairs));
  }
  return { store, cas };
}

const cover = (o: Partial<HoldCover> & { case_id: string }): HoldCover => ({ trace_ids: [], entries: [], sealed: null, ...o });
const holds = [cover({ case_id: 'case-legacy', trace_ids: [traceOf(3)] }), cover({ case_id: 'case-packed', trace_ids: [traceOf(7).toUpperCase()] })];
const blobsOf = (b: number): string[] => recordsOf(b).map((v) => `sha256:${sha256Hex(v)}`);
async function packsOfBundle(store: EvidenceStore, b: number): Promise<string[]> {
  return (await packIndexFiles(store, TENANT)).flatMap((f) => f.packs.filter((p) => p.bundle === b).map((p) => p.pack));
}

/** The held traces' bundles with their records verify against the trust root. */
async function expectHeldTracesVerify(store: EvidenceStore, cas: FsBlobStore): Promise<void> {
  const root = await trustRootOf(store);
  const size = 12 * 256;
  for (const b of [3, 7]) {
    const indices = await traceRecordIndices(store, TENANT, traceOf(b), size);
    expect(indices).toHaveLength(b === 3 ? 255 : 256);
    const bundle = await buildBundle(store, TENANT, { caseId: `case-${b}`, indices, atSize: size, records: new PackedRecords(store, cas) });
    expect(verifyBundle(bundle, { trustRoot: root })).toMatchObject({ ok: true, records: indices.length });
  }
}

describe('retention and the stored clean records', () => {
  it('a trace hold keeps the bundles of its records; pruned bundles\' packs and blobs leave the disk; a blob a held entry shares stays', async () => {
    const { store, cas } = await recordLog();
    const gonePacks = [...await packsOfBundle(store, 6), ...await packsOfBundle(store, 8), ...await packsOfBundle(store, 9)];
    const heldPack = await packsOfBundle(store, 7);
    expect(gonePacks).toHaveLength(3);
    for (const p of [...gonePacks, ...heldPack]) expect(await cas.hasPack(TENANT, p)).toBe(true);

    const r = await pruneTenant({ store, tenant: TENANT, holds, nowMs: NOW, retentionMs: 30 * DAY, records: cas, batch: 3 });
    // The trace holds cover bundles whose entries are only clean records (no trace_id field): the trace index says where.
    expect(r.pruned).toEqual([0, 1, 2, 4, 5, 6, 8, 9]);
    expect(r.held).toEqual(expect.arrayContaining([{ bundle: 3, case_id: 'case-legacy' }, { bundle: 7, case_id: 'case-packed' }]));

    // Neighbours' records are gone from disk: packs of bundles 6, 8, 9 and the blobs of 0, 1, 2, 4, 5 ...
    for (const p of gonePacks) expect(await cas.hasPack(TENANT, p)).toBe(false);
    for (const b of [0, 1, 2, 4, 5]) for (const d of blobsOf(b)) if (d !== blobsOf(3)[9]) expect(await cas.has(TENANT, d as `sha256:${string}`)).toBe(false);
    // ... except the blob bundle 4 shared with the held bundle 3; the held bundles' records all stay.
    expect(blobsOf(4)[9]).toBe(blobsOf(3)[9]);
    expect(await cas.has(TENANT, blobsOf(3)[9] as `sha256:${string}`)).toBe(true);
    for (const d of blobsOf(3)) expect(await cas.has(TENANT, d as `sha256:${string}`)).toBe(true);
    for (const p of heldPack) expect(await cas.hasPack(TENANT, p)).toBe(true);
    for (const b of [10, 11]) for (const p of await packsOfBundle(store, b)) expect(await cas.hasPack(TENANT, p)).toBe(true);
    expect(r.records).toEqual({ packs: 3, blobs: 5 * 256 - 1 });

    expect(await checkStoredLog(store, TENANT)).toMatchObject({ ok: true, bundles_pruned: 8 });
    await expectHeldTracesVerify(store, cas);
  });

  it('a hold on a trace whose trace index file is missing keeps the bundles that file would cover (fail closed)', async () => {
    const { store } = await recordLog();
    // The trace index of the seal of bundle 5 lost (a crash before its write; the runner rebuilds it when it next opens the tenant).
    rmSync(path.join((store as unknown as { root: string }).root, 'tenants', TENANT, 'traces', `${6 * 256}.json`));
    const r = await pruneTenant({ store, tenant: TENANT, holds: [cover({ case_id: 'c', trace_ids: [traceOf(3)] })], nowMs: NOW, retentionMs: 30 * DAY, dryRun: true });
    expect(r.pruned).toEqual([0, 1, 2, 4, 6, 7, 8, 9]);
    expect(r.held).toEqual(expect.arrayContaining([{ bundle: 3, case_id: 'c' }, { bundle: 5, case_id: 'c' }]));
  });

  it('a prune stopped before or after deleting a batch\'s records finishes on the next run, keeping what holds keep', async () => {
    for (const stopAt of ['before-records', 'after-records'] as const) {
      const { store, cas } = await recordLog();
      let first = true;
      const failing = {
        remove: async (t: string, what: Parameters<FsBlobStore['remove']>[1]) => {
          if (stopAt === 'before-records' && first) { first = false; throw new Error('killed before deleting records'); }
          return cas.remove(t, what);
        },
      };
      const stopped = await pruneTenant({ store, tenant: TENANT, holds, nowMs: NOW, retentionMs: 30 * DAY, records: failing, batch: 3,
        onRecordsSwept: () => { if (stopAt === 'after-records' && first) { first = false; throw new Error('killed after deleting records'); } } }).then(() => undefined, (e: unknown) => e);
      expect(stopped).toBeInstanceOf(Error);
      // Marked, entry bundles still there: what remains verifies.
      expect(await checkStoredLog(store, TENANT)).toMatchObject({ ok: true });
      const r = await pruneTenant({ store, tenant: TENANT, holds, nowMs: NOW, retentionMs: 30 * DAY, records: cas, batch: 3 });
      expect(r.resumed).toEqual([0, 1, 2]);
      expect([...r.resumed, ...r.pruned].sort((a, b) => a - b)).toEqual([0, 1, 2, 4, 5, 6, 8, 9]);
      for (const b of [0, 1, 2, 4, 5]) for (const d of blobsOf(b)) if (d !== blobsOf(3)[9]) expect(await cas.has(TENANT, d as `sha256:${string}`)).toBe(false);
      for (const b of [6, 8, 9]) for (const p of await packsOfBundle(store, b)) expect(await cas.hasPack(TENANT, p)).toBe(false);
      expect(await checkStoredLog(store, TENANT)).toMatchObject({ ok: true, bundles_pruned: 8 });
      await expectHeldTracesVerify(store, cas);
    }
  });
});
