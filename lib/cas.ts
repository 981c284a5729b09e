// Content-addressed store for intake payloads (runtime facts, symbol bundles, envelopes, ...).
// Blobs are addressed by `sha256:<hex>` and written once per tenant under `<dataDir>/cas/<tenant>/`
// (fan-out by the first two hex digits). Writes go to a temp file, are fsynced, then linked into
// place: link() fails on an existing name, so a stored blob is never rewritten, and concurrent puts
// of the same bytes settle on one file. Reads re-hash the bytes: a blob altered on disk is refused.
// `cas://<namespace>/<hex>` URIs resolve only inside this store (air gap: no other scheme anywhere).
// The interface is small so that an S3-compatible backend can implement it later.
import { createHash, hash, randomBytes } from 'node:crypto';
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

/** One part of a pack: its bytes and their SHA-256 (which the caller has already computed). */
export interface PackPart { digest: CasDigest; bytes: Uint8Array }

/** Where each part of a pack is: `pack` = packId of the parts, offsets in the order given. */
export interface PackRef { pack: string; size: number; parts: { digest: CasDigest; offset: number; size: number }[] }

const PACK_ID_DOMAIN = 'stella-cas-pack/v1\n';

/**
 * A pack's id: SHA-256 of the domain line, the caller's `label` line and `<digest> <size>\n` per
 * part, in order. The label scopes a pack (e.g. to one evidence entry bundle), so that equal parts
 * written for two owners are two packs and each owner can delete its own without a reference check.
 */
export function packId(parts: readonly { digest: CasDigest; size: number }[], label = ''): string {
  if (/[\n\r]/.test(label)) throw new Error('CAS pack label must be one line');
  const h = createHash('sha256').update(PACK_ID_DOMAIN).update(`${label}\n`);
  for (const p of parts) { digestHex(p.digest); h.update(`${p.digest} ${p.size}\n`); }
  return h.digest('hex');
}

/** The pack id and each part's offset, without writing anything. */
export function packRef(parts: readonly PackPart[], label = ''): PackRef {
  let offset = 0;
  const out = parts.map((p) => { const r = { digest: p.digest, offset, size: p.bytes.length }; offset += p.bytes.length; return r; });
  return { pack: packId(out, label), size: offset, parts: out };
}

/** The buffers left after `n` bytes of `bufs` were written. */
function remaining(bufs: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const b of bufs) {
    if (n >= b.length) { n -= b.length; continue; }
    out.push(n > 0 ? b.subarray(n) : b);
    n = 0;
  }
  return out;
}

const HEX64 = /^[0-9a-f]{64}$/;
const CAS_URI = /^cas:\/\/([^/?#\s]+)\/([0-9a-f]{64})$/;

export const sha256Digest = (bytes: Uint8Array): CasDigest => `sha256:${hash('sha256', bytes, 'hex')}`;

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

  // ---- packs: many blobs in one file (one fsync and one directory fsync for all of them) ----------
  // A pack is the concatenation of parts whose SHA-256 the caller already holds (e.g. the evidence
  // runner, whose log entries commit to each clean record's digest). Its name is `packId(parts)`, a
  // hash of the parts' digests and sizes in order, so the bytes are not hashed a second time; it lives
  // in its own namespace (`<tenant>/packs/..`), apart from the blobs, and is written once like them.
  // A part is read back by (pack, offset, size) and verified against its own digest on every read, so
  // a wrong digest claimed at write time, or a pack altered on disk, is refused, never served.

  private packPathOf(tenant: string, packHex: string): string {
    checkTenant(tenant);
    if (!HEX64.test(packHex)) throw new Error('CAS pack id must be 64 lowercase hex');
    return path.join(this.root, tenant, 'packs', packHex.slice(0, 2), packHex);
  }

  /** Store `parts` concatenated, in order, as one pack (idempotent by pack id; see packId for `label`). */
  async putPack(tenant: string, parts: readonly PackPart[], label = ''): Promise<PackRef> {
    const ref = packRef(parts, label);
    const file = this.packPathOf(tenant, ref.pack);
    const st = await fsp.stat(file).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return undefined; throw err; });
    if (st) {
      if (st.size !== ref.size) throw new CasIntegrityError(`sha256:${ref.pack}`, `a pack of ${st.size} bytes, not ${ref.size}`);
      return ref;
    }
    const dir = path.dirname(file);
    await fsp.mkdir(dir, { recursive: true });
    const tmp = path.join(dir, `.tmp-${ref.pack.slice(0, 16)}-${randomBytes(8).toString('hex')}`);
    const fh = await fsp.open(tmp, 'wx', 0o444);
    try {
      // writev without concatenating (no copy of the parts); in slices, as writev takes at most IOV_MAX buffers.
      for (let i = 0; i < parts.length; i += 512) {
        const chunk = parts.slice(i, i + 512).map((p) => p.bytes);
        let want = chunk.reduce((n, b) => n + b.length, 0);
        let bufs = chunk;
        while (want > 0) {
          const { bytesWritten } = await fh.writev(bufs);
          want -= bytesWritten;
          if (want > 0) bufs = remaining(bufs, bytesWritten);
        }
      }
      await fh.sync();
    } finally { await fh.close(); }
    try {
      await fsp.link(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await fsp.unlink(tmp).catch(() => undefined);
    }
    const dh = await fsp.open(dir, 'r');
    try { await dh.sync(); } finally { await dh.close(); }
    return ref;
  }

  /**
   * The part of pack `packHex` at [offset, offset + size), verified against `digest`; undefined when
   * the pack is absent. Throws CasIntegrityError when the bytes there do not hash to `digest`.
   */
  async getPacked(tenant: string, packHex: string, offset: number, size: number, digest: CasDigest): Promise<Buffer | undefined> {
    digestHex(digest);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(size) || size < 0) throw new Error('pack offset and size must be non-negative integers');
    let fh: fsp.FileHandle;
    try { fh = await fsp.open(this.packPathOf(tenant, packHex), 'r'); } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const out = Buffer.alloc(size);
    try {
      let got = 0;
      while (got < size) {
        const { bytesRead } = await fh.read(out, got, size - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got < size) throw new CasIntegrityError(digest, `a pack too short for [${offset}, ${offset + size})`);
    } finally { await fh.close(); }
    const actual = sha256Digest(out);
    if (actual !== digest) throw new CasIntegrityError(digest, actual.slice(7));
    return out;
  }

  async hasPack(tenant: string, packHex: string): Promise<boolean> {
    try { await fsp.access(this.packPathOf(tenant, packHex)); return true; } catch { return false; }
  }

  /**
   * Delete packs and blobs (retention). Only the caller knows that nothing references them any more
   * (blobs deduplicate: a reference check comes first). Absent ones are not an error (a resumed
   * deletion). One directory fsync per directory touched.
   */
  async remove(tenant: string, what: { packs?: readonly string[]; blobs?: readonly CasDigest[] }): Promise<void> {
    const files = [...(what.packs ?? []).map((h) => this.packPathOf(tenant, h)), ...(what.blobs ?? []).map((d) => this.pathOf(tenant, digestHex(d)))];
    const dirs = new Set<string>();
    await Promise.all(files.map(async (f) => {
      await fsp.unlink(f).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err; });
      dirs.add(path.dirname(f));
    }));
    await Promise.all([...dirs].map(async (d) => {
      const dh = await fsp.open(d, 'r').catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return undefined; throw err; });
      if (dh) try { await dh.sync(); } finally { await dh.close(); }
    }));
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
