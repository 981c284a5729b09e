// lib/cas.ts: write-once content-addressed blobs per tenant on the real file system, digests checked
// on every read, concurrent puts of one blob, hostile tenants and URIs refused.
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CasIntegrityError, FsBlobStore, parseCasUri, sha256Digest, type CasDigest } from '../../lib/cas.ts';

let dir: string;
let cas: FsBlobStore;
beforeEach(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'stella-cas-')); cas = FsBlobStore.forDataDir(dir); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const hex = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const blobFile = (tenant: string, h: string) => path.join(dir, 'cas', tenant, h.slice(0, 2), h);

describe('FsBlobStore', () => {
  it('stores a blob under its sha256 per tenant and reads it back', async () => {
    const bytes = Buffer.from('{"symbol_id":"s1"}\n');
    const ref = await cas.put('acme', bytes);
    expect(ref).toEqual({ digest: `sha256:${hex(bytes)}`, uri: `cas://acme/${hex(bytes)}`, size: bytes.length });
    expect(readFileSync(blobFile('acme', hex(bytes)))).toEqual(bytes);
    expect(await cas.get('acme', ref.digest)).toEqual(bytes);
    expect(await cas.has('acme', ref.digest)).toBe(true);
    // Another tenant's namespace does not hold it.
    expect(await cas.has('globex', ref.digest)).toBe(false);
    expect(await cas.get('globex', ref.digest)).toBeUndefined();
    expect(await cas.getUri('acme', ref.uri)).toEqual(bytes);
    await expect(cas.getUri('globex', ref.uri)).rejects.toThrow(/another tenant/);
  });

  it('is write-once: a second put of the same bytes keeps the file (same inode), leaves no temp files', async () => {
    const bytes = Buffer.from('same bytes');
    const a = await cas.put('acme', bytes);
    const ino = statSync(blobFile('acme', hex(bytes))).ino;
    const b = await cas.put('acme', bytes);
    expect(b).toEqual(a);
    expect(statSync(blobFile('acme', hex(bytes))).ino).toBe(ino);
    expect(readdirSync(path.dirname(blobFile('acme', hex(bytes))))).toEqual([hex(bytes)]);
  });

  it('concurrent puts of one blob settle on one intact file', async () => {
    const bytes = Buffer.alloc(3 * 1024 * 1024, 7);
    const refs = await Promise.all(Array.from({ length: 16 }, () => cas.put('acme', bytes)));
    expect(new Set(refs.map((r) => r.digest)).size).toBe(1);
    const d = path.dirname(blobFile('acme', hex(bytes)));
    expect(readdirSync(d)).toEqual([hex(bytes)]);
    expect(hex(readFileSync(blobFile('acme', hex(bytes))))).toBe(hex(bytes));
  });

  it('verifies the digest on read: a blob altered on disk is refused, never returned', async () => {
    const bytes = Buffer.from('original');
    const ref = await cas.put('acme', bytes);
    const file = blobFile('acme', hex(bytes));
    chmodSync(file, 0o644);
    writeFileSync(file, 'tampered');
    await expect(cas.get('acme', ref.digest)).rejects.toBeInstanceOf(CasIntegrityError);
    // A put of the original bytes does not paper over the corruption either.
    await expect(cas.put('acme', bytes)).rejects.toBeInstanceOf(CasIntegrityError);
  });

  it('refuses path traversal and odd tenants, and malformed digests', async () => {
    for (const tenant of ['../acme', '..', 'acme/../../etc', 'ACME', '', '.', 'a b', '/abs', 'x'.repeat(64), 'acme\0']) {
      await expect(cas.put(tenant, Buffer.from('x')), tenant).rejects.toThrow(/tenant/);
      await expect(cas.get(tenant, sha256Digest(Buffer.from('x'))), tenant).rejects.toThrow(/tenant/);
    }
    for (const d of ['sha256:../../etc/passwd', `sha256:${'A'.repeat(64)}`, `sha512:${'a'.repeat(64)}`, 'a'.repeat(64), `sha256:${'a'.repeat(63)}`]) {
      await expect(cas.get('acme', d as CasDigest), d).rejects.toThrow(/sha256:<64 lowercase hex>/);
      await expect(cas.has('acme', d as CasDigest), d).rejects.toThrow(/sha256:<64 lowercase hex>/);
    }
    // Nothing was created outside the store's root.
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('parseCasUri', () => {
  const h = 'ab'.repeat(32);
  it('accepts cas://<tenant>/<64 lowercase hex>', () => {
    expect(parseCasUri(`cas://acme/${h}`)).toEqual({ namespace: 'acme', hex: h });
  });
  it('refuses every other scheme and shape', () => {
    for (const uri of [`http://acme/${h}`, `https://example.com/${h}`, `file:///${h}`, `s3://acme/${h}`, `CAS://acme/${h}`, `cas:acme/${h}`,
      `cas:///${h}`, `cas://acme/${h.toUpperCase()}`, `cas://acme/${h}/x`, `cas://acme/${h}?x=1`, `cas://acme/${h}#f`, `cas://acme/sha256:${h}`,
      `cas://../${h}`, `cas://Acme/${h}`, `cas://acme/${h.slice(1)}`, ` cas://acme/${h}`, `cas://acme/${h}\n`, `cas://user@acme/${h}`, '']) {
      expect(() => parseCasUri(uri), uri).toThrow(/cas:\/\//);
    }
    expect(() => parseCasUri(42 as unknown as string)).toThrow();
  });
});
