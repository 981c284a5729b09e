// Where an orchestrator export's uniqueness is decided (docs/intake.md "Orchestrator exports").
//
// Each accepted version of an export (one per status step) is a write-once claim file
// `<root>/<tenant>/<exportId>.v<N>.json` holding the exact Kafka record that was (or will be)
// published. A new version is created with link(2), which fails with EEXIST when the name exists:
// of two concurrent submissions for the same step exactly one wins, in one process or several
// sharing the data dir, and the decision is on disk before anything is published, so it holds across
// restarts. The loser re-reads and is answered as a replay (same export digest) or a 409.
//
// The claim precedes the publish, so a crash between them leaves a claim that was never published
// (and never acknowledged to the client). A `.published` marker is written after Kafka acked; a
// replay of a claim without one publishes the stored record again: the same bytes, the same event
// id, which the table (ReplacingMergeTree), the timeline and the evidence log de-duplicate.
import { randomBytes } from 'node:crypto';
import { mkdir, open, link, readFile, unlink, writeFile, access } from 'node:fs/promises';
import path from 'node:path';
import { validateTenantId } from '../tenancy.ts';
import { STATUS_RANK, transitionAllowed, type ExportRecord, type ExportStatus } from '../../processors/intake/exports.ts';

/** At most one claim per status rank: pending, running, a terminal status. */
const MAX_VERSIONS = 3;

export type ClaimOutcome =
  | { kind: 'accepted'; version: number; record: ExportRecord; bytes: Buffer }
  | { kind: 'replay'; version: number; record: ExportRecord; bytes: Buffer; published: boolean }
  | { kind: 'conflict'; reason: 'DUPLICATE_CONFLICT' | 'INVALID_STATUS_TRANSITION'; message: string; current: ExportRecord };

interface Stored { version: number; record: ExportRecord; bytes: Buffer }

const isEexist = (e: unknown) => (e as NodeJS.ErrnoException).code === 'EEXIST';
const isEnoent = (e: unknown) => (e as NodeJS.ErrnoException).code === 'ENOENT';

export class ExportClaims {
  /** Claims known published by this process (the marker files carry it across restarts). */
  private readonly published = new Set<string>();
  /** Directory fsyncs in flight per tenant: claims arriving meanwhile share the next one (group commit). */
  private readonly dirSyncs = new Map<string, { running: Promise<void>; next: Promise<void> | undefined }>();
  private readonly madeDirs = new Set<string>();

  constructor(readonly root: string) {}

  private dir(tenant: string): string {
    const bad = validateTenantId(tenant);
    if (bad) throw new Error(`invalid tenant id: ${bad}`);
    return path.join(this.root, tenant);
  }

  private file(tenant: string, exportId: string, version: number, suffix = '.json'): string {
    if (!/^[0-9a-f]{32}$/.test(exportId)) throw new Error('export id must be 32 hex characters');
    return path.join(this.dir(tenant), `${exportId}.v${version}${suffix}`);
  }

  /** The stored versions of an export, in order. */
  async versions(tenant: string, exportId: string): Promise<Stored[]> {
    const out: Stored[] = [];
    for (let v = 1; v <= MAX_VERSIONS; v++) {
      let bytes: Buffer;
      try { bytes = await readFile(this.file(tenant, exportId, v)); } catch (e) { if (isEnoent(e)) break; throw e; }
      out.push({ version: v, record: JSON.parse(bytes.toString('utf8')) as ExportRecord, bytes });
    }
    return out;
  }

  /**
   * Decide a submission: a replay of a stored version (same export digest), a conflict, or a new
   * version written durably (file and directory entry synced) before this resolves.
   */
  async claim(record: ExportRecord, bytes: Buffer): Promise<ClaimOutcome> {
    const { tenant, id } = record;
    for (;;) {
      const have = await this.versions(tenant, id);
      const same = have.find((s) => s.record.exportDigest === record.exportDigest);
      if (same) {
        return { kind: 'replay', version: same.version, record: same.record, bytes: same.bytes, published: await this.isPublished(tenant, id, same.version) };
      }
      const latest = have[have.length - 1];
      if (latest) {
        const from = latest.record.export.status, to = record.export.status;
        const sameStep = have.find((s) => STATUS_RANK[s.record.export.status] === STATUS_RANK[to]);
        if (sameStep) {
          return { kind: 'conflict', reason: 'DUPLICATE_CONFLICT', current: latest.record,
            message: `export ${id} already has a ${sameStep.record.export.status} submission with a different body` };
        }
        if (!transitionAllowed(from, to)) {
          return { kind: 'conflict', reason: 'INVALID_STATUS_TRANSITION', current: latest.record,
            message: `export ${id} is ${from}; allowed transitions are pending → running → succeeded | failed | canceled` };
        }
        for (const f of ['jobType', 'environment'] as const) {
          if (latest.record.export[f] !== record.export[f]) {
            return { kind: 'conflict', reason: 'DUPLICATE_CONFLICT', current: latest.record, message: `export ${id} was submitted with another ${f}` };
          }
        }
      }
      const version = have.length + 1;
      if (await this.create(tenant, this.file(tenant, id, version), bytes)) return { kind: 'accepted', version, record, bytes };
      // Another submission took this version first: decide again against it.
    }
  }

  /** After Kafka acked the publish of a version. */
  async markPublished(tenant: string, exportId: string, version: number): Promise<void> {
    const key = `${tenant}/${exportId}/${version}`;
    if (this.published.has(key)) return;
    // No fsync: losing the marker only means one more (idempotent) publish on a later replay.
    await writeFile(this.file(tenant, exportId, version, '.published'), '', { flag: 'w' });
    this.published.add(key);
  }

  private async isPublished(tenant: string, exportId: string, version: number): Promise<boolean> {
    const key = `${tenant}/${exportId}/${version}`;
    if (this.published.has(key)) return true;
    try { await access(this.file(tenant, exportId, version, '.published')); } catch { return false; }
    this.published.add(key);
    return true;
  }

  /** Write-once create: tmp file, fsync, link (EEXIST = lost the race), directory fsync. */
  private async create(tenant: string, target: string, bytes: Buffer): Promise<boolean> {
    const dir = this.dir(tenant);
    if (!this.madeDirs.has(dir)) { await mkdir(dir, { recursive: true, mode: 0o700 }); this.madeDirs.add(dir); }
    const tmp = path.join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
    const fh = await open(tmp, 'wx', 0o600);
    try { await fh.writeFile(bytes); await fh.sync(); } finally { await fh.close(); }
    try {
      await link(tmp, target);
    } catch (e) {
      if (isEexist(e)) return false;
      throw e;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
    await this.syncDir(dir);
    return true;
  }

  /** fsync a directory; callers arriving while one runs share the one after it (which sees their entries). */
  private syncDir(dir: string): Promise<void> {
    const s = this.dirSyncs.get(dir);
    if (s) {
      s.next ??= s.running.then(() => this.startSync(dir), () => this.startSync(dir));
      return s.next;
    }
    return this.startSync(dir);
  }

  private startSync(dir: string): Promise<void> {
    const running = (async () => {
      const fh = await open(dir, 'r');
      try { await fh.sync(); } finally { await fh.close(); }
    })();
    const entry = { running, next: undefined as Promise<void> | undefined };
    this.dirSyncs.set(dir, entry);
    void running.finally(() => { if (this.dirSyncs.get(dir) === entry && entry.next === undefined) this.dirSyncs.delete(dir); }).catch(() => undefined);
    return running;
  }
}

