// lib/cas.ts group commit: putManyFs / GroupCommitBlobStore store exactly what put stores (write-once,
// digest-named, read back verified), concurrent puts share batches, duplicates settle on one file, and
// one corrupt stored blob fails only its own put.
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CasIntegrityError, FsBlobStore, GroupCommitBlobStore, putManyFs } from '../../lib/cas.ts';

let dir: string;
let cas: FsBlobStore;
beforeEach(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'stella-casgc-')); cas = FsBlobStore.forDataDir(dir); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const hex = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const blobFile = (tenant: string, h: string) => path.join(dir, 'cas', tenant, h.slice(0, 2), h);
const allFiles = (d: string): string[] => readdirSync(d, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));

describe('CAS group commit', () => {
  it('concurrent puts share batches; every blob is stored once under its digest, duplicates included; no temp file is left', async () => {
    const gc = new GroupCommitBlobStore(cas);
    const blobs = Array.from({ length: 60 }, (_, i) => Buffer.from(`{"export":${i % 45}}`));
    const refs = await Promise.all(blobs.map((b) => gc.put('acme', b)));
    expect(gc.batches).toBeGreaterThan(0);
    expect(gc.batches).toBeLessThan(blobs.length);
    refs.forEach((r, i) => expect(r).toEqual({ digest: `sha256:${hex(blobs[i]!)}`, uri: `cas://acme/${hex(blobs[i]!)}`, size: blobs[i]!.length }));
    for (const b of blobs) {
      expect(readFileSync(blobFile('acme', hex(b)))).toEqual(b);
      expect(await gc.get('acme', `sha256:${hex(b)}`)).toEqual(b);
    }
    const files = allFiles(path.join(dir, 'cas'));
    expect(files).toHaveLength(45);
    expect(files.filter((f) => path.basename(f).startsWith('.tmp'))).toEqual([]);
    // Written once: read-only, and a later put of the same bytes leaves the file (inode) as it was.
    const f0 = blobFile('acme', hex(blobs[0]!));
    expect(statSync(f0).mode & 0o222).toBe(0);
    const ino = statSync(f0).ino;
    await putManyFs(cas, 'acme', [blobs[0]!, Buffer.from('new')]);
    expect(statSync(f0).ino).toBe(ino);
    expect(await cas.has('globex', `sha256:${hex(blobs[0]!)}`)).toBe(false);
  });

  it('a corrupt stored blob fails its own put only; the batch around it is stored', async () => {
    const bad = Buffer.from('stored, then altered on disk');
    await cas.put('acme', bad);
    const f = blobFile('acme', hex(bad));
    chmodSync(f, 0o644);
    writeFileSync(f, 'tampered');
    const gc = new GroupCommitBlobStore(cas);
    const good = Array.from({ length: 8 }, (_, i) => Buffer.from(`good ${i}`));
    const outs = await Promise.allSettled([...good.slice(0, 4), bad, ...good.slice(4)].map((b) => gc.put('acme', b)));
    expect(outs[4]!.status).toBe('rejected');
    expect((outs[4] as PromiseRejectedResult).reason).toBeInstanceOf(CasIntegrityError);
    expect(outs.filter((o) => o.status === 'fulfilled')).toHaveLength(8);
    for (const b of good) expect(await cas.get('acme', `sha256:${hex(b)}`)).toEqual(b);
  });

  it('refuses an invalid tenant', async () => {
    const gc = new GroupCommitBlobStore(cas);
    await expect(gc.put('../x', Buffer.from('a'))).rejects.toThrow(/tenant/);
    await expect(putManyFs(cas, '../x', [Buffer.from('a')])).rejects.toThrow(/tenant/);
  });
});
