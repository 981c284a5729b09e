// The export and runtime-facts hot paths made cheaper for bench:intake (BENCHMARKS.md "intake-perf 2")
// keep their results: the export record written from the export's canonical text is byte for byte
// canonicalBytes(record); canonical JSON still names the path of a value it refuses; the claim
// journal syncs before every answer but not for published markers alone; a route reading only its
// raw body gets no parsed copy; a gzip body inflates to exactly its bytes; new trace ids are 32 hex
// and distinct.
import { open } from 'node:fs/promises';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type http from 'node:http';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { bodyReader, INFLATE_CHUNK_BYTES, requestTraceId } from '../../api/server.ts';
import { CLAIM_JOURNAL_FILE, ExportClaims } from '../../lib/intake/export-claims.ts';
import { canonicalBytes, canonicalize } from '../../processors/evidence/jcs.ts';
import { checkExportSubmission, exportRecord, exportRecordBytes, type ExportRecord } from '../../processors/intake/exports.ts';
import { TENANT, testVerifier, validExport } from './exports-support.ts';

const dirs: string[] = [];
const tmp = () => { const d = mkdtempSync(path.join(os.tmpdir(), 'stella-hot-')); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
afterEach(() => { vi.restoreAllMocks(); });

const validated = (over: Record<string, unknown> = {}) => {
  const v = checkExportSubmission(Buffer.from(JSON.stringify(validExport(over))), { tenant: TENANT, verify: testVerifier({}) });
  if (!v.ok) throw new Error(v.message);
  return v;
};

describe('export record bytes', () => {
  it('are canonicalBytes(record) exactly, with and without body digest and trace id, and for a re-parsed record', () => {
    const cases: ExportRecord[] = [
      exportRecord(validated(), TENANT, 1_700_000_000_123_456_789n, null),
      exportRecord(validated({ runId: 'run-ünïcødé-€-😀', status: 'running', completedAt: null }), TENANT, 5n, `sha256:${'ab'.repeat(32)}`, 'cd'.repeat(16)),
      exportRecord(validated({ policyHash: null }), TENANT, 0n, `sha256:${'0f'.repeat(32)}`, 'not-a-trace-id'),
    ];
    for (const r of cases) {
      expect(exportRecordBytes(r).equals(canonicalBytes(r))).toBe(true);
      // A record that did not come from validateExport (JSON read back): the general path, same bytes.
      const back = JSON.parse(exportRecordBytes(r).toString('utf8')) as ExportRecord;
      expect(exportRecordBytes(back).equals(canonicalBytes(r))).toBe(true);
    }
  });

  it('a record with a member this writer does not know is serialized whole', () => {
    const r = { ...exportRecord(validated(), TENANT, 1n, null), extra: 'x' } as unknown as ExportRecord;
    expect(exportRecordBytes(r).toString('utf8')).toContain('"extra":"x"');
    expect(exportRecordBytes(r).equals(canonicalBytes(r))).toBe(true);
  });
});

describe('canonical JSON', () => {
  it('names the path of what it refuses', () => {
    expect(() => canonicalize({ a: [1, { b: NaN }] })).toThrow('$.a[1].b: NaN is not a JSON number');
    expect(() => canonicalize({ a: [{ c: 'x' }, { s: 'ok \ud83d\ude00', t: 'bad \udc00' }] })).toThrow('$.a[1].t: string holds a lone surrogate');
    expect(() => canonicalize({ k: { ['\ud800']: 1 } })).toThrow('$.k: string holds a lone surrogate');
    expect(() => canonicalize([new Map()])).toThrow('$[0]: only plain objects and arrays are JSON');
    expect(() => canonicalize({ f: () => 1 })).toThrow('$.f: function is not JSON');
  });

  it('keeps surrogate pairs, skips undefined members and sorts by UTF-16 code units', () => {
    expect(canonicalize({ b: '😀', a: undefined, 'é': 1, z: [null, true] })).toBe('{"b":"😀","z":[null,true],"é":1}');
  });
});

describe('claim journal syncs', () => {
  it('fdatasync before the answer of a claim, none for a published marker alone; the marker is still written', async () => {
    const root = tmp();
    const probe = await open(path.join(root, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const syncs = vi.spyOn(proto, 'datasync');
    const claims = new ExportClaims(root);
    const v = validated();
    const r = exportRecord(v, TENANT, 1n, null);
    const out = await claims.claim(r, exportRecordBytes(r));
    expect(out.kind).toBe('accepted');
    expect(syncs).toHaveBeenCalledTimes(1);
    await claims.markPublished(TENANT, r.id, 1);
    await claims.close(); // waits for the marker's cycle
    expect(syncs).toHaveBeenCalledTimes(1);
    expect(readFileSync(path.join(root, TENANT, CLAIM_JOURNAL_FILE)).includes(Buffer.from(`${r.id}.v1`))).toBe(true);
    // Read back: the version is published (a retry is answered without publishing again).
    const again = await new ExportClaims(root).claim(r, exportRecordBytes(r));
    expect(again).toMatchObject({ kind: 'replay', published: true });
  });
});

/** A request as the server's body reader sees it. */
function request(chunks: Buffer[], headers: Record<string, string>): http.IncomingMessage {
  const s = new PassThrough();
  for (const c of chunks) s.write(c);
  s.end();
  return Object.assign(s, { headers }) as unknown as http.IncomingMessage;
}

describe('request bodies', () => {
  it('a rawOnly route gets the bytes without a parsed copy; others get both', async () => {
    const raw = Buffer.from('{"a":1}');
    const only = await bodyReader(request([raw], { 'content-type': 'application/json' }), { maxBytes: 1024, rawOnly: true })();
    expect(only).toMatchObject({ ok: true, json: undefined });
    expect(only.ok && only.raw.equals(raw)).toBe(true);
    const both = await bodyReader(request([raw], { 'content-type': 'application/json' }), { maxBytes: 1024 })();
    expect(both).toMatchObject({ ok: true, json: { a: 1 } });
  });

  it('a gzip body of many inflate chunks inflates to exactly its bytes, in 64 KiB pieces as from a socket', async () => {
    const plain = Buffer.from(Array.from({ length: 60_000 }, (_, i) => `{"i":${i},"s":"${(i * 7919).toString(36)}"}\n`).join(''));
    expect(plain.length).toBeGreaterThan(4 * INFLATE_CHUNK_BYTES);
    const z = gzipSync(plain);
    const pieces: Buffer[] = [];
    for (let i = 0; i < z.length; i += 64 * 1024) pieces.push(z.subarray(i, i + 64 * 1024));
    const r = await bodyReader(request(pieces, { 'content-encoding': 'gzip' }), { maxBytes: 1 << 24, gunzipMaxBytes: plain.length })();
    expect(r.ok && r.inflated?.equals(plain)).toBe(true);
    const over = await bodyReader(request(pieces, { 'content-encoding': 'gzip' }), { maxBytes: 1 << 24, gunzipMaxBytes: plain.length - 1 })();
    expect(over).toMatchObject({ ok: false, over: 'inflated' });
  });
});

describe('trace ids', () => {
  it('new ones are 32 hex, distinct across pool refills; a valid traceparent is kept', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => requestTraceId(undefined)));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(requestTraceId(`00-${'1a'.repeat(16)}-${'2b'.repeat(8)}-01`)).toBe('1a'.repeat(16));
  });
});
