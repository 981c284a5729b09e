// The evidence store: one directory tree per tenant (`<root>/tenants/<tenant>/...`), written
// append-only. Immutable files (tiles, entry bundles, checkpoints/<size>, envelopes, keys) are
// written new-then-linked with fsync and never overwritten; only `checkpoint` (the latest) is
// mutable. The interface is small so an object store with WORM retention can implement it.
import { randomBytes } from 'node:crypto';
import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { acquireFileLock, breakStaleLock, FileLockTimeout } from '../../lib/file-lock.ts';
import { validateTenantId } from '../../lib/tenancy.ts';
import { bytesEqual } from './hash.ts';
import { parseTilePath } from './tiles.ts';

export class ImmutableConflictError extends Error {
  override readonly name = 'ImmutableConflictError';
  constructor(readonly tenant: string, readonly file: string) {
    super(`refusing to overwrite sealed file ${file} of tenant ${tenant} with different bytes`);
  }
}

/** A write by a tenant's writer whose epoch was superseded: another evidence process took the tenant over. */
export class FencedError extends Error {
  override readonly name = 'FencedError';
  constructor(readonly tenant: string, readonly epoch: number, readonly current: number) {
    super(`evidence writer of tenant ${tenant} at epoch ${epoch} is fenced out (the tenant's writer epoch is now ${current})`);
  }
}

export interface StoreFile { path: string; bytes: Uint8Array }

export interface EvidenceStore {
  /** Bytes of a file, or undefined when it does not exist. */
  read(tenant: string, file: string): Promise<Uint8Array | undefined>;
  /** Write a file that must never change: identical bytes are a no-op, different bytes throw ImmutableConflictError. */
  writeImmutable(tenant: string, file: string, bytes: Uint8Array): Promise<void>;
  /** The same for many files with one durability barrier (one fsync round per batch, not per file). */
  writeImmutableMany(tenant: string, files: readonly StoreFile[]): Promise<void>;
  /** Replace a mutable file (only `checkpoint`) atomically and durably. */
  writeMutable(tenant: string, file: string, bytes: Uint8Array): Promise<void>;
  /** Names (relative to `dir`) of the files directly in `dir`; empty when it does not exist. */
  list(tenant: string, dir: string): Promise<string[]>;
  /**
   * Remove leftovers of an interrupted seal: temp files, and files the commit record never covered
   * (`isCommitted(path)` false). Only the sealer calls it, on recovery, as the tenant's only writer.
   * Optional: a WORM backend cannot delete, and then a re-seal of differently ordered entries
   * fails loudly with ImmutableConflictError instead.
   */
  removeIncompleteWrites?(tenant: string, isCommitted: (file: string) => boolean): Promise<string[]>;
  /** The tenants that have a log here (optional; key rotation needs it to know when every log rotated). */
  listTenants?(): Promise<string[]>;
  /**
   * Become the tenant's only writer (optional; a backend without it relies on the consumer group
   * alone): bump the tenant's writer epoch and return a view of the store whose writes fail with
   * FencedError once a later claim superseded this one.
   */
  claimWriter?(tenant: string): Promise<FencedWriter>;
  /**
   * Delete entry bundles (`tile/entries/...`) past retention (optional; a WORM backend expires
   * objects by itself). Refuses any other path: tiles, checkpoints and envelopes are never pruned.
   * A missing file is not an error (a resumed prune deletes again). One durability barrier per call.
   */
  removeEntryBundles?(tenant: string, files: readonly string[]): Promise<void>;
}

export interface FencedWriter extends EvidenceStore { readonly epoch: number }

export const MUTABLE_FILES: ReadonlySet<string> = new Set(['checkpoint']);

/** Reject tenant ids and file paths that could escape the tenant's directory. */
export function checkTenantPath(tenant: string, file: string): void {
  const bad = validateTenantId(tenant);
  if (bad) throw new Error(bad);
  if (file === '' || file.startsWith('/') || file.split('/').some((p) => p === '' || p === '.' || p === '..') || file.includes('\\') || file.includes('\0')) {
    throw new Error(`invalid evidence path "${file}"`);
  }
}

const TMP_PREFIX = '.tmp-';
/** Per tenant: the current writer epoch, and the lock file held while reading/bumping it and while a fenced write runs. */
export const WRITER_EPOCH_FILE = '.writer-epoch';
const WRITER_LOCK_FILE = '.writer-lock';
/** lib/file-lock.ts' guard beside the lock, present for a few syscalls while a contender checks or releases it. */
const WRITER_LOCK_GUARD = `${WRITER_LOCK_FILE}.break`;
const LOCK_WAIT_MS = 30_000;

export class FsEvidenceStore implements EvidenceStore {
  constructor(readonly root: string) {}

  async listTenants(): Promise<string[]> {
    const names = await fsp.readdir(path.join(this.root, 'tenants')).catch((e: NodeJS.ErrnoException) => { if (e.code === 'ENOENT') return []; throw e; });
    return names.filter((n) => !validateTenantId(n)).sort();
  }

  tenantDir(tenant: string): string {
    const bad = validateTenantId(tenant);
    if (bad) throw new Error(bad);
    return path.join(this.root, 'tenants', tenant);
  }

  private abs(tenant: string, file: string): string {
    checkTenantPath(tenant, file);
    return path.join(this.tenantDir(tenant), ...file.split('/'));
  }

  async read(tenant: string, file: string): Promise<Uint8Array | undefined> {
    try {
      return await fsp.readFile(this.abs(tenant, file));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async list(tenant: string, dir: string): Promise<string[]> {
    try {
      const names = await fsp.readdir(this.abs(tenant, dir));
      return names.filter((n) => !n.startsWith(TMP_PREFIX)).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  writeImmutable(tenant: string, file: string, bytes: Uint8Array): Promise<void> {
    return this.writeImmutableMany(tenant, [{ path: file, bytes }]);
  }

  async writeImmutableMany(tenant: string, files: readonly StoreFile[]): Promise<void> {
    for (const f of files) if (MUTABLE_FILES.has(f.path)) throw new Error(`${f.path} is mutable; use writeMutable`);
    const targets = files.map((f) => ({ ...f, abs: this.abs(tenant, f.path) }));
    const dirs = new Set(targets.map((t) => path.dirname(t.abs)));
    await Promise.all([...dirs].map((d) => fsp.mkdir(d, { recursive: true })));
    // 1. Write every temp file and fsync it (concurrently: the kernel batches the journal commits).
    const staged = await Promise.all(targets.map(async (t) => {
      const tmp = path.join(path.dirname(t.abs), `${TMP_PREFIX}${randomBytes(6).toString('hex')}`);
      const fh = await fsp.open(tmp, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o644);
      try { await fh.writeFile(t.bytes); await fh.sync(); } finally { await fh.close(); }
      return { ...t, tmp };
    }));
    // 2. Link each into place: link() fails on an existing name, so a sealed file is never replaced.
    try {
      await Promise.all(staged.map(async (s) => {
        try {
          await fsp.link(s.tmp, s.abs);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          const existing = await fsp.readFile(s.abs);
          if (!bytesEqual(existing, s.bytes)) throw new ImmutableConflictError(tenant, s.path);
        }
      }));
    } finally {
      await Promise.all(staged.map((s) => fsp.unlink(s.tmp).catch(() => undefined)));
    }
    // 3. One fsync per directory makes the new names durable.
    await Promise.all([...dirs].map((d) => syncDir(d)));
  }

  async removeIncompleteWrites(tenant: string, isCommitted: (file: string) => boolean): Promise<string[]> {
    const dir = this.tenantDir(tenant);
    let names: string[];
    try {
      names = (await fsp.readdir(dir, { recursive: true })) as string[];
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const removed: string[] = [];
    await Promise.all(names.map(async (n) => {
      const rel = n.split(path.sep).join('/');
      const temp = path.basename(n).startsWith(TMP_PREFIX);
      if (rel === WRITER_EPOCH_FILE || rel === WRITER_LOCK_FILE || rel === WRITER_LOCK_GUARD) return;
      if (!temp && (rel === 'checkpoint' || rel.startsWith('envelopes/') || isCommitted(rel))) return;
      const st = await fsp.stat(path.join(dir, n)).catch(() => undefined);
      if (!st?.isFile()) return;
      await fsp.unlink(path.join(dir, n));
      removed.push(rel);
    }));
    return removed.sort();
  }

  async writeMutable(tenant: string, file: string, bytes: Uint8Array): Promise<void> {
    if (!MUTABLE_FILES.has(file)) throw new Error(`${file} is not a mutable evidence file`);
    const abs = this.abs(tenant, file);
    await fsp.mkdir(path.dirname(abs), { recursive: true });
    const tmp = path.join(path.dirname(abs), `${TMP_PREFIX}${randomBytes(6).toString('hex')}`);
    const fh = await fsp.open(tmp, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o644);
    try { await fh.writeFile(bytes); await fh.sync(); } finally { await fh.close(); }
    await fsp.rename(tmp, abs);
    await syncDir(path.dirname(abs));
  }

  async removeEntryBundles(tenant: string, files: readonly string[]): Promise<void> {
    for (const f of files) if (!parseTilePath(f)?.entries) throw new Error(`refusing to prune ${f}: only entry bundles (tile/entries/...) are pruned`);
    const dirs = new Set<string>();
    await Promise.all(files.map(async (f) => {
      const abs = this.abs(tenant, f);
      await fsp.unlink(abs).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
      dirs.add(path.dirname(abs));
    }));
    await Promise.all([...dirs].map((d) => syncDir(d).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; })));
  }

  /** The tenant's writer epoch on disk (0 when never claimed). */
  async writerEpoch(tenant: string): Promise<number> {
    const b = await fsp.readFile(path.join(this.tenantDir(tenant), WRITER_EPOCH_FILE), 'utf8').catch((e: NodeJS.ErrnoException) => { if (e.code === 'ENOENT') return '0'; throw e; });
    const n = Number(b.trim());
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`tenant ${tenant}: corrupt ${WRITER_EPOCH_FILE}`);
    return n;
  }

  /**
   * Run `fn` holding the tenant's writer lock (lib/file-lock.ts): a lock whose holder process is
   * gone (crash while holding it) is broken, by one contender only. One host's filesystem only.
   */
  async withWriterLock<T>(tenant: string, fn: () => Promise<T>): Promise<T> {
    const dir = this.tenantDir(tenant);
    await fsp.mkdir(dir, { recursive: true });
    const held = await acquireFileLock(path.join(dir, WRITER_LOCK_FILE), { waitMs: LOCK_WAIT_MS }).catch((e: unknown) => {
      throw e instanceof FileLockTimeout ? new Error(`tenant ${tenant}: writer lock held for over ${LOCK_WAIT_MS} ms by ${e.holder}`) : e;
    });
    try { return await fn(); } finally { await held.release(); }
  }

  async claimWriter(tenant: string): Promise<FencedWriter> {
    const epoch = await this.withWriterLock(tenant, async () => {
      const next = (await this.writerEpoch(tenant)) + 1;
      const dir = this.tenantDir(tenant);
      const tmp = path.join(dir, `${TMP_PREFIX}${randomBytes(6).toString('hex')}`);
      const fh = await fsp.open(tmp, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o644);
      try { await fh.writeFile(`${next}\n`); await fh.sync(); } finally { await fh.close(); }
      await fsp.rename(tmp, path.join(dir, WRITER_EPOCH_FILE));
      await syncDir(dir);
      return next;
    });
    return new FencedFsWriter(this, tenant, epoch);
  }
}

/** One writer's view of one tenant: every write re-checks, under the writer lock, that its epoch is still current. */
class FencedFsWriter implements FencedWriter {
  constructor(private readonly fs: FsEvidenceStore, private readonly tenant: string, readonly epoch: number) {}

  private fenced<T>(tenant: string, fn: () => Promise<T>): Promise<T> {
    if (tenant !== this.tenant) throw new Error(`writer for tenant ${this.tenant} cannot write tenant ${tenant}`);
    return this.fs.withWriterLock(tenant, async () => {
      const current = await this.fs.writerEpoch(tenant);
      if (current !== this.epoch) throw new FencedError(tenant, this.epoch, current);
      return fn();
    });
  }

  read(tenant: string, file: string): Promise<Uint8Array | undefined> { return this.fs.read(tenant, file); }
  list(tenant: string, dir: string): Promise<string[]> { return this.fs.list(tenant, dir); }
  listTenants(): Promise<string[]> { return this.fs.listTenants(); }
  writeImmutable(tenant: string, file: string, bytes: Uint8Array): Promise<void> { return this.fenced(tenant, () => this.fs.writeImmutable(tenant, file, bytes)); }
  writeImmutableMany(tenant: string, files: readonly StoreFile[]): Promise<void> { return this.fenced(tenant, () => this.fs.writeImmutableMany(tenant, files)); }
  writeMutable(tenant: string, file: string, bytes: Uint8Array): Promise<void> { return this.fenced(tenant, () => this.fs.writeMutable(tenant, file, bytes)); }
  removeIncompleteWrites(tenant: string, isCommitted: (file: string) => boolean): Promise<string[]> { return this.fenced(tenant, () => this.fs.removeIncompleteWrites(tenant, isCommitted)); }
  removeEntryBundles(tenant: string, files: readonly string[]): Promise<void> { return this.fenced(tenant, () => this.fs.removeEntryBundles(tenant, files)); }
}

/** Remove `lock` if its holder process is gone (the writer lock's policy); true if it was removed. */
export async function breakDeadLock(lock: string): Promise<boolean> {
  return breakStaleLock(lock) !== undefined;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}
