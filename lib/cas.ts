// Content-addressed store for intake payloads (runtime facts, symbol bundles, envelopes, ...).
// Blobs are addressed by `sha256:<hex>` and written once per tenant under `<dataDir>/cas/<tenant>/`
// (fan-out by the first two hex digits). Writes go to a temp file, are fsynced, then linked into
// place: link() fails on an existing name, so a stored blob is never rewritten, and concurrent puts
// of the same bytes settle on one file. Reads re-hash the bytes: a blob altered on disk is refused.
// `cas://<namespace>/<hex>` URIs resolve only inside this store (air gap: no other scheme anywhere).
// The interface is small so that an S3-compatible backend can implement it later.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { validateTenantId } from './tenancy.ts';

/** `sha256:` + 64 lowercase hex. */
export type CasDigest = `sha256:${string}`;

export interface CasRef {
  digest: CasDigest;
  /** `cas://<tenant>/<hex>` */
  uri: string;
  size: number;
}

export interface BlobStore {
  /** Store `bytes` for `tenant` (idempotent: the same bytes give the same ref, the file is not rewritten). */
  put(tenant: string, bytes: Uint8Array): Promise<CasRef>;
  /** The blob, or undefined when absent. Throws CasIntegrityError when the stored bytes do not hash to `digest`. */
  get(tenant: string, digest: CasDigest): Promise<Buffer | undefined>;
  has(tenant: string, digest: CasDigest): Promise<boolean>;
}

export class CasIntegrityError extends Error {
  constructor(readonly digest: CasDigest, actual: string) {
    super(`CAS blob ${digest} is corrupt: its bytes hash to sha256:${actual}`);
  }
}

const HEX64 = /^[0-9a-f]{64}$/;
const CAS_URI = /^cas:\/\/([^/?#\s]+)\/([0-9a-f]{64})$/;

export const sha256Digest = (bytes: Uint8Array): CasDigest => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Throws unless `d` is `sha256:<64 lowercase hex>`; returns the hex. */
export function digestHex(d: string): string {
  const hex = d.startsWith('sha256:') ? d.slice(7) : '';
  if (!HEX64.test(hex)) throw new Error('CAS digest must be sha256:<64 lowercase hex>');
  return hex;
}

export const isCasDigest = (d: unknown): d is CasDigest => typeof d === 'string' && d.startsWith('sha256:') && HEX64.test(d.slice(7));

export const casUri = (namespace: string, digest: CasDigest): string => `cas://${namespace}/${digestHex(digest)}`;

/**
 * `cas://<namespace>/<64 lowercase hex>` -> its parts. Throws on anything else: another scheme
 * (http, https, file, s3, ...), a query, a fragment, a further path, uppercase hex, an invalid namespace.
 */
export function parseCasUri(uri: string): { namespace: string; hex: string } {
  const m = typeof uri === 'string' ? CAS_URI.exec(uri) : null;
  if (!m) throw new Error('must be a cas://<namespace>/<64 lowercase hex> URI (no other scheme)');
  if (validateTenantId(m[1]!)) throw new Error('cas:// namespace must be a tenant id');
  return { namespace: m[1]!, hex: m[2]! };
}

function checkTenant(tenant: string): void {
  // The tenant becomes a directory name: only ids that cannot traverse or collide (lib/tenancy.ts).
  if (typeof tenant !== 'string' || validateTenantId(tenant)) throw new Error('CAS tenant must be a valid tenant id');
}

export class FsBlobStore implements BlobStore {
  /** `root` is `<dataDir>/cas`. */
  constructor(readonly root: string) {}

  static forDataDir(dataDir: string): FsBlobStore { return new FsBlobStore(path.join(dataDir, 'cas')); }

  private pathOf(tenant: string, hex: string): string {
    checkTenant(tenant);
    return path.join(this.root, tenant, hex.slice(0, 2), hex);
  }

  async put(tenant: string, bytes: Uint8Array): Promise<CasRef> {
    checkTenant(tenant);
    const digest = sha256Digest(bytes);
    const hex = digest.slice(7);
    const ref: CasRef = { digest, uri: `cas://${tenant}/${hex}`, size: bytes.length };
    const file = this.pathOf(tenant, hex);
    if (await this.verifiedExisting(file, digest)) return ref;
    const dir = path.dirname(file);
    await fsp.mkdir(dir, { recursive: true });
    const tmp = path.join(dir, `.tmp-${hex.slice(0, 16)}-${randomBytes(8).toString('hex')}`);
    const fh = await fsp.open(tmp, 'wx', 0o444);
    try { await fh.writeFile(bytes); await fh.sync(); } finally { await fh.close(); }
    try {
      await fsp.link(tmp, file);
    } catch (err) {
      // Someone (a concurrent put of the same bytes) linked it first: keep theirs, after checking it.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!(await this.verifiedExisting(file, digest))) throw new CasIntegrityError(digest, 'a different value (the stored file is corrupt)');
    } finally {
      await fsp.unlink(tmp).catch(() => undefined);
    }
    // The new name is durable once its directory is synced.
    const dh = await fsp.open(dir, 'r');
    try { await dh.sync(); } finally { await dh.close(); }
    return ref;
  }

  /** True when `file` exists and holds `digest`'s bytes; throws when it exists with other bytes. */
  private async verifiedExisting(file: string, digest: CasDigest): Promise<boolean> {
    let bytes: Buffer;
    try { bytes = await fsp.readFile(file); } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    const actual = sha256Digest(bytes);
    if (actual !== digest) throw new CasIntegrityError(digest, actual.slice(7));
    return true;
  }

  async get(tenant: string, digest: CasDigest): Promise<Buffer | undefined> {
    const hex = digestHex(digest);
    let bytes: Buffer;
    try { bytes = await fsp.readFile(this.pathOf(tenant, hex)); } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const actual = sha256Digest(bytes);
    if (actual !== digest) throw new CasIntegrityError(digest, actual.slice(7));
    return bytes;
  }

  async has(tenant: string, digest: CasDigest): Promise<boolean> {
    const hex = digestHex(digest);
    try { await fsp.access(this.pathOf(tenant, hex)); return true; } catch { return false; }
  }

  /** Resolve a `cas://` URI inside this store: the namespace is the tenant, which must be `tenant`. */
  async getUri(tenant: string, uri: string): Promise<Buffer | undefined> {
    const { namespace, hex } = parseCasUri(uri);
    if (namespace !== tenant) throw new Error('cas:// URI names another tenant\'s namespace');
    return this.get(tenant, `sha256:${hex}`);
  }
}

// Group commit (additive): many blobs, one fsync pass, one fsync per directory touched.
export interface BatchBlobStore extends BlobStore {
  /** Store several blobs of one tenant; each ref once its file and directory entry are durable. */
  putMany(tenant: string, blobs: readonly Uint8Array[]): Promise<CasRef[]>;
}

/**
 * FsBlobStore.putMany: write every new blob to a temp file, fsync them together, link each into place
 * (EEXIST: someone stored the same bytes first; theirs is checked), then fsync each directory touched
 * once. Same write-once guarantees as put; fewer operations per blob (no read before the write, no
 * directory fsync per blob).
 */
export async function putManyFs(store: FsBlobStore, tenant: string, blobs: readonly Uint8Array[]): Promise<CasRef[]> {
  checkTenant(tenant);
  const refs = blobs.map((b): CasRef => { const digest = sha256Digest(b); return { digest, uri: `cas://${tenant}/${digest.slice(7)}`, size: b.length }; });
  const todo = new Map<string, Uint8Array>();
  refs.forEach((r, i) => todo.set(r.digest.slice(7), blobs[i]!));
  const dirs = new Set<string>();
  for (const hex of todo.keys()) dirs.add(path.join(store.root, tenant, hex.slice(0, 2)));
  await Promise.all([...dirs].map((d) => fsp.mkdir(d, { recursive: true })));
  const tmpOf = (hex: string) => path.join(store.root, tenant, hex.slice(0, 2), `.tmp-${hex.slice(0, 16)}-${randomBytes(8).toString('hex')}`);
  const staged = await Promise.all([...todo].map(async ([hex, bytes]) => {
    const tmp = tmpOf(hex);
    const fh = await fsp.open(tmp, 'wx', 0o444);
    try { await fh.writeFile(bytes); await fh.sync(); } finally { await fh.close(); }
    return { hex, tmp };
  }));
  try {
    await Promise.all(staged.map(async ({ hex, tmp }) => {
      const file = path.join(store.root, tenant, hex.slice(0, 2), hex);
      try { await fsp.link(tmp, file); } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const have = await fsp.readFile(file);
        const actual = sha256Digest(have);
        if (actual !== `sha256:${hex}`) throw new CasIntegrityError(`sha256:${hex}`, actual.slice(7));
      }
    }));
  } finally {
    await Promise.all(staged.map(({ tmp }) => fsp.unlink(tmp).catch(() => undefined)));
  }
  // The new names are durable once their directories are synced: once per directory, not per blob.
  await Promise.all([...dirs].map(async (d) => { const dh = await fsp.open(d, 'r'); try { await dh.sync(); } finally { await dh.close(); } }));
  return refs;
}

/**
 * A BlobStore whose put() calls arriving together are committed together: the first put of a
 * tenant starts a batch (after the current tick), puts arriving while it is written join the next
 * one. Each put resolves only once its blob is durable, exactly as FsBlobStore.put.
 */
export class GroupCommitBlobStore implements BatchBlobStore {
  private readonly pending = new Map<string, { blobs: Uint8Array[]; waiters: { resolve: (r: CasRef) => void; reject: (e: unknown) => void }[] }>();
  private readonly running = new Set<string>();
  /** Batches committed so far (observability, tests). */
  batches = 0;

  constructor(readonly store: FsBlobStore, private readonly maxBatch = 256) {}

  put(tenant: string, bytes: Uint8Array): Promise<CasRef> {
    try { checkTenant(tenant); } catch (err) { return Promise.reject(err); }
    return new Promise((resolve, reject) => {
      let p = this.pending.get(tenant);
      if (!p) { p = { blobs: [], waiters: [] }; this.pending.set(tenant, p); }
      p.blobs.push(bytes);
      p.waiters.push({ resolve, reject });
      if (!this.running.has(tenant)) { this.running.add(tenant); setImmediate(() => void this.drain(tenant)); }
    });
  }

  putMany(tenant: string, blobs: readonly Uint8Array[]): Promise<CasRef[]> { return putManyFs(this.store, tenant, blobs); }
  get(tenant: string, digest: CasDigest): Promise<Buffer | undefined> { return this.store.get(tenant, digest); }
  has(tenant: string, digest: CasDigest): Promise<boolean> { return this.store.has(tenant, digest); }

  private async drain(tenant: string): Promise<void> {
    for (;;) {
      const p = this.pending.get(tenant);
      if (!p || p.blobs.length === 0) { this.pending.delete(tenant); this.running.delete(tenant); return; }
      const n = Math.min(p.blobs.length, this.maxBatch);
      const blobs = p.blobs.splice(0, n);
      const waiters = p.waiters.splice(0, n);
      let refs: CasRef[] | undefined;
      this.batches++;
      try { refs = await putManyFs(this.store, tenant, blobs); } catch { refs = undefined; }
      if (refs) { waiters.forEach((w, i) => w.resolve(refs[i]!)); continue; }
      // One blob's failure (a corrupt stored file, ...) is its own: the others are put one by one.
      await Promise.all(waiters.map((w, i) => this.store.put(tenant, blobs[i]!).then(w.resolve, w.reject)));
    }
  }
}
