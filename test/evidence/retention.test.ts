// Retention and legal hold at the store level (real FsEvidenceStore, real Sealer; no Kafka needed):
// a held case survives a prune that removes its neighbours, what remains verifies, a bundle needing
// a pruned entry fails with ENTRY_PRUNED, release then prune removes it, retention follows the
// environment default and a per-tenant override, incident mode extends it, an interrupted prune
// leaves a verifying store and resumes, and a fenced-out pruner changes nothing.
import { describe, expect, it } from 'vitest';
import { buildConfig, ConfigError } from '../../lib/config.ts';
import { buildBundle, verifyBundle } from '../../processors/evidence/bundle.ts';
import { causeExitCode, VerifyFailure } from '../../processors/evidence/causes.ts';
import { leafHash } from '../../processors/evidence/hash.ts';
import { pruneCommand } from '../../processors/evidence/hold-cli.ts';
import { entryBytes } from '../../processors/evidence/jcs.ts';
import { verifyInclusion } from '../../processors/evidence/merkle.ts';
import { canonicalBytes } from '../../processors/evidence/jcs.ts';
import { checkStoredLog, incidentMarkPath, pruneTenant, prunedSet } from '../../processors/evidence/prune.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { planPrune, retentionMs, type HoldCover } from '../../processors/evidence/retention.ts';
import { Sealer, type AppendItem } from '../../processors/evidence/sealer.ts';
import { FencedError, FsEvidenceStore, type EvidenceStore } from '../../processors/evidence/store.ts';
import { entryBundlePath } from '../../processors/evidence/tiles.ts';
import { TENANT, tempStore, testSigner, trustRootOf } from './helpers.ts';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 3, 12, 0, 0);
const traceOf = (bundle: number) => bundle.toString(16).padStart(32, 'c');

/** Timeline-event-like entries; each bundle of 256 is one trace (trace id = traceOf(bundle)). */
function events(from: number, to: number): AppendItem[] {
  const out: AppendItem[] = [];
  for (let i = from; i < to; i++) {
    out.push({ entry: entryBytes({ event_id: i.toString(16).padStart(32, '0'), kind: 'job.finished', tenant_id: TENANT, trace_id: traceOf(Math.floor(i / 256)), seq: i }),
      kafka: { topic: 'stella.timeline', partition: 0, offset: String(i) } });
  }
  return out;
}

/** 12 bundles sealed one segment each: bundles 0..9 sealed 60 days ago, 10 and 11 a day ago. */
async function log12(store: EvidenceStore = tempStore()): Promise<EvidenceStore> {
  const s = await Sealer.recover({ store, tenant: TENANT, signer: testSigner() });
  for (let b = 0; b < 12; b++) {
    s.append(events(b * 256, (b + 1) * 256));
    await s.seal(new Date(NOW - (b < 10 ? 60 : 1) * DAY + b * 1000));
  }
  return store;
}

const cover = (o: Partial<HoldCover> & { case_id: string }): HoldCover => ({ trace_ids: [], entries: [], sealed: null, ...o });
const thirty = 30 * DAY;

describe('retention: prune with legal holds', () => {
  it('a held case survives a prune that removes its neighbours; what remains verifies; ENTRY_PRUNED for the rest; release then prune removes it', async () => {
    const store = await log12();
    const root = await trustRootOf(store);
    const holds = [cover({ case_id: 'case-trace', trace_ids: [traceOf(3)] }), cover({ case_id: 'case-range', entries: [{ from: 5 * 256 + 7, to: 5 * 256 + 8 }] })];
    const r = await pruneTenant({ store, tenant: TENANT, holds, nowMs: NOW, retentionMs: thirty, batch: 3 });
    expect(r.pruned).toEqual([0, 1, 2, 4, 6, 7, 8, 9]);
    expect(r.held).toEqual(expect.arrayContaining([{ bundle: 3, case_id: 'case-trace' }, { bundle: 5, case_id: 'case-range' }]));
    for (const n of r.pruned) expect(await store.read(TENANT, entryBundlePath(n, 256))).toBeUndefined();
    for (const n of [3, 5, 10, 11]) expect(await store.read(TENANT, entryBundlePath(n, 256))).toBeDefined();

    // What remains verifies: signatures, every checkpoint root from the kept tiles, every kept bundle against its tile.
    const check = await checkStoredLog(store, TENANT);
    expect(check).toMatchObject({ ok: true, size: 12 * 256, checkpoints: 12, bundles_checked: 4, bundles_pruned: 8 });

    // The held case's bundle still builds and verifies against the trust root.
    const held = await buildBundle(store, TENANT, { caseId: 'case-trace', indices: [3 * 256, 3 * 256 + 100] });
    expect(verifyBundle(held, { trustRoot: root })).toMatchObject({ ok: true, entries: 2 });
    // A pruned neighbour: its own cause, not MERKLE_MISMATCH or a missing file.
    const pruned = await buildBundle(store, TENANT, { caseId: 'neighbour', indices: [4 * 256 + 1] }).then(() => undefined, (e: unknown) => e);
    expect(pruned).toBeInstanceOf(VerifyFailure);
    expect((pruned as VerifyFailure).code).toBe('ENTRY_PRUNED');
    expect(causeExitCode.ENTRY_PRUNED).toBe(26);
    await expect(buildBundle(store, TENANT, { caseId: 'whole-log' })).rejects.toMatchObject({ code: 'ENTRY_PRUNED' });
    // Proofs of a pruned entry still come from the tiles: its leaf hash is still committed.
    const reader = new LogReader(store, TENANT);
    const cp = (await reader.latest())!.checkpoint;
    const gone = events(4 * 256 + 1, 4 * 256 + 2)[0]!.entry;
    expect(verifyInclusion(leafHash(gone), 4 * 256 + 1, cp.size, await reader.inclusionProof(4 * 256 + 1, cp.size), cp.root)).toBe(true);

    // The log goes on: recovery after a prune, a new seal, still verifying.
    const s = await Sealer.recover({ store, tenant: TENANT, signer: testSigner() });
    s.append(events(12 * 256, 12 * 256 + 10));
    await s.seal(new Date(NOW));
    expect(await checkStoredLog(store, TENANT)).toMatchObject({ ok: true, size: 12 * 256 + 10 });

    // Release the trace hold: the next prune removes bundle 3, keeps bundle 5 (still held).
    const r2 = await pruneTenant({ store, tenant: TENANT, holds: [holds[1]!], nowMs: NOW, retentionMs: thirty });
    expect(r2.pruned).toEqual([3]);
    await expect(buildBundle(store, TENANT, { caseId: 'case-trace', indices: [3 * 256] })).rejects.toMatchObject({ code: 'ENTRY_PRUNED' });
    expect(await checkStoredLog(store, TENANT)).toMatchObject({ ok: true, bundles_pruned: 9 });
  });

  it('the store check fails closed: a bundle deleted without a prune record, or altered, is named', async () => {
    const store = await log12();
    await pruneTenant({ store, tenant: TENANT, holds: [], nowMs: NOW, retentionMs: thirty });
    const fs = store as FsEvidenceStore;
    await fs.removeEntryBundles(TENANT, [entryBundlePath(10, 256)]);
    expect(await checkStoredLog(store, TENANT)).toMatchObject({ ok: false, cause: 'ENTRY_MISSING' });
    const other = await log12();
    const b = Buffer.from((await other.read(TENANT, entryBundlePath(11, 256)))!);
    b[b.length - 3]! ^= 1;
    const { unlinkSync, writeFileSync } = await import('node:fs');
    const p = `${(other as FsEvidenceStore).tenantDir(TENANT)}/${entryBundlePath(11, 256)}`;
    unlinkSync(p);
    writeFileSync(p, b);
    expect(await checkStoredLog(other, TENANT)).toMatchObject({ ok: false, cause: 'MERKLE_MISMATCH' });
    // Tiles, checkpoints and envelopes can never be pruned.
    await expect(fs.removeEntryBundles(TENANT, ['tile/0/000'])).rejects.toThrow(/only entry bundles/);
    await expect(fs.removeEntryBundles(TENANT, ['checkpoints/256'])).rejects.toThrow(/only entry bundles/);
  });

  it('holds by sealing-time range keep every bundle sealed in it', async () => {
    const store = await log12();
    const from = new Date(NOW - 60 * DAY + 2000).toISOString(); // bundles 2 and 3 were sealed at +2 s and +3 s
    const to = new Date(NOW - 60 * DAY + 3000).toISOString();
    const r = await pruneTenant({ store, tenant: TENANT, holds: [cover({ case_id: 'by-time', sealed: { from, to } })], nowMs: NOW, retentionMs: thirty });
    expect(r.pruned).toEqual([0, 1, 4, 5, 6, 7, 8, 9]);
    expect(r.held.map((h) => h.bundle)).toEqual([2, 3]);
  });

  it('a prune interrupted after its markers and before the deletes leaves a verifying store; the next prune finishes it', async () => {
    const store = await log12();
    // A store that dies in removeEntryBundles (after the markers were written durably).
    const dying: EvidenceStore = {
      read: (t, f) => store.read(t, f), list: (t, d) => store.list(t, d),
      writeImmutable: (t, f, b) => store.writeImmutable(t, f, b), writeImmutableMany: (t, f) => store.writeImmutableMany(t, f),
      writeMutable: (t, f, b) => store.writeMutable(t, f, b),
      removeEntryBundles: async () => { throw new Error('killed'); },
    };
    await expect(pruneTenant({ store: dying, tenant: TENANT, holds: [], nowMs: NOW, retentionMs: thirty, batch: 4 })).rejects.toThrow('killed');
    expect([...await prunedSet(store, TENANT)].sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
    expect(await store.read(TENANT, entryBundlePath(0, 256))).toBeDefined(); // marked, not deleted yet
    expect(await checkStoredLog(store, TENANT)).toMatchObject({ ok: true, bundles_pruned: 0, bundles_checked: 12 });
    const r = await pruneTenant({ store, tenant: TENANT, holds: [], nowMs: NOW, retentionMs: thirty });
    expect(r.resumed).toEqual([0, 1, 2, 3]);
    expect(r.pruned).toEqual([4, 5, 6, 7, 8, 9]);
    expect(await checkStoredLog(store, TENANT)).toMatchObject({ ok: true, bundles_pruned: 10 });
  });

  it('respects the writer fencing: a pruner whose epoch was superseded deletes nothing', async () => {
    const store = (await log12()) as FsEvidenceStore;
    const stale = await store.claimWriter(TENANT);
    await store.claimWriter(TENANT); // another process took the tenant over
    await expect(pruneTenant({ store: stale, tenant: TENANT, holds: [], nowMs: NOW, retentionMs: thirty })).rejects.toBeInstanceOf(FencedError);
    expect((await prunedSet(store, TENANT)).size).toBe(0);
    for (let n = 0; n < 12; n++) expect(await store.read(TENANT, entryBundlePath(n, 256))).toBeDefined();
  });

  it('never prunes the bundle holding a key rotation entry (every key schedule reads it)', async () => {
    const store = tempStore();
    const s = await Sealer.recover({ store, tenant: TENANT, signer: testSigner() });
    s.append(events(0, 300));
    await s.seal(new Date(NOW - 90 * DAY));
    await s.rotateKey(testSigner('key-2'), new Date(NOW - 90 * DAY)); // rotation entry at index 300 (bundle 1)
    s.append(events(301, 1024));
    await s.seal(new Date(NOW - 80 * DAY));
    s.append(events(1024, 1030));
    await s.seal(new Date(NOW));
    const r = await pruneTenant({ store, tenant: TENANT, holds: [], nowMs: NOW, retentionMs: thirty });
    expect(r.pruned).toEqual([0, 2, 3]);
    expect(await checkStoredLog(store, TENANT)).toMatchObject({ ok: true });
    const root = await trustRootOf(store);
    expect(verifyBundle(await buildBundle(store, TENANT, { caseId: 'late', indices: [1025] }), { trustRoot: root })).toMatchObject({ ok: true });
  });
});

describe('retention: configuration and incident mode', () => {
  it('follows the environment default (prod 7 years, staging 90 days, dev 30 days) and a per-tenant override', () => {
    expect(buildConfig({}, {}).evidenceRetention.days).toBe(30);
    expect(buildConfig({ env: 'staging' }, {}).evidenceRetention.days).toBe(90);
    expect(buildConfig({}, { STELLA_ENV: 'prod' }).evidenceRetention.days).toBe(2557);
    const cfg = buildConfig({ env: 'staging', evidenceRetention: { tenants: { acme: 400 } } }, {}).evidenceRetention;
    expect(retentionMs(cfg, 'acme', false)).toBe(400 * DAY);
    expect(retentionMs(cfg, 'globex', false)).toBe(90 * DAY);
    expect(retentionMs(cfg, 'globex', true)).toBe(120 * DAY); // + incidentExtensionDays (30)
    expect(() => buildConfig({ env: 'qa' }, {})).toThrow(/evidenceRetention.days must be set: env "qa"/);
    expect(buildConfig({ env: 'qa', evidenceRetention: { days: 14 } }, {}).evidenceRetention.days).toBe(14);
    for (const bad of [{ days: 0 }, { tenants: { 'Bad Tenant': 3 } }, { incidentExtensionDays: -1 }, { prune: 1 }, { tenants: { acme: 'x' } }]) {
      expect(() => buildConfig({ evidenceRetention: bad }, {}), JSON.stringify(bad)).toThrow(ConfigError);
    }
  });

  it('the plan follows the retention given: a per-tenant override keeps what the default would prune', () => {
    const segments = Array.from({ length: 6 }, (_, b) => ({ from: b * 256, to: (b + 1) * 256, sealedAtMs: NOW - (60 - b) * DAY }));
    const plan = (days: number) => planPrune({ size: 6 * 256 + 1, segments, keep: [], holds: [], pruned: new Set(), nowMs: NOW, retentionMs: days * DAY }).candidates;
    expect(plan(30)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(plan(57)).toEqual([0, 1, 2]); // bundles 3.. sealed 57, 56, 55 days ago
    expect(plan(400)).toEqual([]);
  });

  it('incident mode extends retention while on (the latest sealed incident mark), and not once it lapsed', async () => {
    const env = { evidenceRetention: { tenants: { [TENANT]: 45 }, incidentExtensionDays: 30 } };
    const retention = buildConfig(env, {}).evidenceRetention;
    const run = async (mark: Record<string, unknown> | undefined) => {
      const logs = (await log12()) as FsEvidenceStore;
      if (mark) await logs.writeImmutable(TENANT, incidentMarkPath(2000), canonicalBytes(mark));
      const r = await pruneCommand({ logs, cases: tempStore(), retention, tenants: [TENANT], nowMs: NOW });
      return r.tenants[0]!;
    };
    // 60-day-old bundles: past 45 days, within 45 + 30 while the incident is on.
    const off = await run(undefined);
    expect(off).toMatchObject({ retention_days: 45, incident_mode: false });
    expect(off.pruned).toHaveLength(10);
    const on = await run({ kind: 'incident.mode.started', at_ms: NOW - DAY, until_ms: NOW + 3_600_000, index: 2000 });
    expect(on).toMatchObject({ retention_days: 75, incident_mode: true, pruned: [] });
    expect(on.check.ok).toBe(true);
    const lapsed = await run({ kind: 'incident.mode.started', at_ms: NOW - DAY, until_ms: NOW - 1, index: 2000 });
    expect(lapsed.incident_mode).toBe(false);
    expect(lapsed.pruned).toHaveLength(10);
    const stopped = await run({ kind: 'incident.mode.stopped', at_ms: NOW - 1000, until_ms: 0, index: 2000 });
    expect(stopped.incident_mode).toBe(false);
  });
});
