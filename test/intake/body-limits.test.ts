// Per-route request-body limits of the intake routes, enforced while the bytes arrive (api/server.ts
// bodyReader, docs/intake.md "Body limits"): a body one byte over its route's limit is 413 with the
// route's named reason and stores nothing (no CAS blob, no export claim, no intake record on Kafka);
// a body at the limit is not refused for its size; the 413 comes before the client has finished
// sending (a request left open after limit+1 bytes is answered), a declared Content-Length over the
// limit is answered before any byte is sent, and a gzip bomb is stopped once its output passes
// maxDecompressedBytes, also while the compressed stream is still open. Real `stella run` API part on
// the test broker.
import http from 'node:http';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib, { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipeline, type RunningPipeline } from '../../cli/run.ts';
import { buildConfig } from '../../lib/config.ts';
import { defaultTopicNames } from '../../lib/kafka/topics.ts';
import { sha256Hex } from '../../lib/tenancy.ts';
import { MAX_ARTIFACT_BODY_BYTES, MAX_SYMBOL_BODY_BYTES } from '../../api/artifact-routes.ts';
import { MAX_EXPORT_BODY_BYTES } from '../../api/export-routes.ts';
import { kafkaEnv, readAllRecordsAt, testAccess, uniq } from '../support/kafka.ts';

const TOKEN = 'body-limits-acme-token-0123456789abcdef';
const RT_MAX_BODY = 64 * 1024;
const RT_MAX_INFLATED = 256 * 1024;
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-body-limits-'));
let pipeline: RunningPipeline;
let port: number;
let topics: Record<string, string>;
const GRAPH = `sha256:${'7'.repeat(64)}`;

beforeAll(async () => {
  const p = uniq('bl');
  topics = Object.fromEntries(Object.keys(defaultTopicNames).map((k) => [k, `${p}_${k}`]));
  const cfg = buildConfig({
    dataDir: dir,
    receiver: { grpcPort: 0, httpPort: 0 }, admin: { port: 0 }, api: { port: 0 },
    kafka: { partitions: 1, groupIdPrefix: `${p}-`, topics },
    tenants: [{ id: 'acme', tokens: [{ sha256: sha256Hex(TOKEN), scopes: ['runtime:write', 'orchestrator:exports:write', 'artifacts:write', 'symbols:write'] }] }],
    intake: { runtimeFacts: { maxBodyBytes: RT_MAX_BODY, maxDecompressedBytes: RT_MAX_INFLATED, maxLineBytes: 1024 } },
  }, kafkaEnv());
  pipeline = await runPipeline(cfg, new Set(['api'] as const), () => {});
  port = pipeline.ports.api!;
}, 180_000);

afterAll(async () => {
  await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Answer { status: number; code: string | undefined; headers: http.IncomingHttpHeaders; endedBeforeAnswer: boolean }

/**
 * One POST over a raw socket: `chunks` are written in order; with `keepOpen` the request is never
 * ended, so an answer proves the server decided before the body was complete.
 */
function rawPost(p: string, chunks: Buffer[], headers: Record<string, string>, o: { keepOpen?: boolean; token?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let ended = false;
    const req = http.request({ host: '127.0.0.1', port, path: p, method: 'POST', agent: false,
      headers: { authorization: `Bearer ${o.token ?? TOKEN}`, ...headers } }, (res) => {
      const got: Buffer[] = [];
      res.on('data', (c: Buffer) => got.push(c));
      res.on('end', () => {
        const text = Buffer.concat(got).toString('utf8');
        let code: string | undefined;
        try { code = (JSON.parse(text) as { error?: { code?: string } }).error?.code; } catch { code = undefined; }
        req.destroy();
        resolve({ status: res.statusCode ?? 0, code, headers: res.headers, endedBeforeAnswer: ended });
      });
    });
    req.on('error', (e) => reject(e));
    req.flushHeaders(); // the headers go out even when no body byte is written
    for (const c of chunks) req.write(c);
    if (!o.keepOpen) { req.end(); ended = true; }
  });
}

const casFiles = (): string[] => {
  const root = path.join(dir, 'cas', 'acme');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((d) => readdirSync(path.join(root, d)));
};
const claimFiles = (): string[] => {
  const root = path.join(dir, 'intake', 'exports', 'acme');
  return existsSync(root) ? readdirSync(root) : [];
};
async function intakeRecords(): Promise<number> {
  let n = 0;
  for (const t of [topics.intakeRuntimeFacts!, topics.orchestratorExports!, topics.intakeArtifacts!, topics.intakeSymbols!]) {
    n += (await readAllRecordsAt(testAccess(), t)).filter((r) => r.value.length > 0).length;
  }
  return n;
}

const RT = `/api/v1/runtime-facts?graph_hash=${GRAPH}`;
const ndjson = { 'content-type': 'application/x-ndjson' };
const symbolsPath = `/api/v1/symbols?kind=elf&build_id=${'ab'.repeat(20)}&artifact_sha256=${'c'.repeat(64)}`;

describe('each intake route refuses a body one byte over its limit, with its named reason', () => {
  // [route, path, headers, limit, reason]: one byte over is 413 + reason; at the limit it is judged on content (not 413).
  const cases: [string, string, Record<string, string>, number, string][] = [
    ['runtime facts (intake.runtimeFacts.maxBodyBytes)', RT, ndjson, RT_MAX_BODY, 'BODY_TOO_LARGE'],
    ['orchestrator exports (1 MiB, the contract)', '/internal/orchestrator/exports', { 'content-type': 'application/json' }, MAX_EXPORT_BODY_BYTES, 'BODY_TOO_LARGE'],
    ['artifacts (2 MiB)', '/api/v1/artifacts', { 'content-type': 'application/json' }, MAX_ARTIFACT_BODY_BYTES, 'BODY_TOO_LARGE'],
    ['symbols (64 MiB)', symbolsPath, { 'content-type': 'application/octet-stream' }, MAX_SYMBOL_BODY_BYTES, 'BODY_TOO_LARGE'],
  ];
  it.each(cases)('%s', async (_name, p, headers, limit, reason) => {
    const over = await rawPost(p, [Buffer.alloc(limit + 1, 0x20)], headers);
    expect(over.status).toBe(413);
    expect(over.code).toBe(reason);
    const at = await rawPost(p, [Buffer.alloc(limit, 0x20)], headers);
    expect(at.status).not.toBe(413);
    expect(at.status).toBeGreaterThanOrEqual(400); // spaces are no valid payload: refused for that, not its size
  }, 60_000);
});

describe('the limit holds while the body arrives', () => {
  it.each([
    ['runtime facts', RT, ndjson, RT_MAX_BODY],
    ['orchestrator exports', '/internal/orchestrator/exports', { 'content-type': 'application/json' }, MAX_EXPORT_BODY_BYTES],
    ['artifacts', '/api/v1/artifacts', { 'content-type': 'application/json' }, MAX_ARTIFACT_BODY_BYTES],
  ] as [string, string, Record<string, string>, number][])('%s: answered 413 after limit+1 bytes of a chunked body the client never ends', async (_n, p, headers, limit) => {
    const a = await rawPost(p, [Buffer.alloc(limit, 0x20), Buffer.from(' ')], headers, { keepOpen: true });
    expect(a.status).toBe(413);
    expect(a.code).toBe('BODY_TOO_LARGE');
    expect(a.endedBeforeAnswer).toBe(false);
    expect(a.headers.connection).toBe('close'); // the rest is not read: the connection ends with the answer
  });

  it('a Content-Length over the limit is answered before any body byte is sent', async () => {
    const a = await rawPost('/internal/orchestrator/exports', [], { 'content-type': 'application/json', 'content-length': String(MAX_EXPORT_BODY_BYTES + 1) }, { keepOpen: true });
    expect(a.status).toBe(413);
    expect(a.code).toBe('BODY_TOO_LARGE');
  });

  it('no token, no body read: an unauthenticated oversized request is 401, not 413', async () => {
    const a = await rawPost(RT, [Buffer.alloc(RT_MAX_BODY + 1, 0x20)], ndjson, { token: 'not-a-token-of-anyone-0123456789' });
    expect(a.status).toBe(401);
  });
});

describe('gzip bombs (runtime facts: intake.runtimeFacts.maxDecompressedBytes)', () => {
  it('a small gzip body inflating past the ceiling is 413 DECOMPRESSED_TOO_LARGE', async () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024)); // 64 MiB of zeros in ~64 KiB: under maxBodyBytes as sent
    expect(bomb.length).toBeLessThan(RT_MAX_BODY);
    const a = await rawPost(RT, [bomb], { ...ndjson, 'content-encoding': 'gzip' });
    expect(a.status).toBe(413);
    expect(a.code).toBe('DECOMPRESSED_TOO_LARGE');
  });

  it('inflation stops while the compressed stream is still open: answered before the client ends it', async () => {
    // A gzip stream (no trailer: it is never finished) whose first part already inflates past the ceiling.
    const z = zlib.createGzip();
    const parts: Buffer[] = [];
    z.on('data', (c: Buffer) => parts.push(c));
    z.write(Buffer.alloc(RT_MAX_INFLATED * 4));
    await new Promise<void>((r) => z.flush(() => r()));
    const a = await rawPost(RT, [Buffer.concat(parts)], { ...ndjson, 'content-encoding': 'gzip' }, { keepOpen: true });
    z.close();
    expect(a.status).toBe(413);
    expect(a.code).toBe('DECOMPRESSED_TOO_LARGE');
    expect(a.endedBeforeAnswer).toBe(false);
  });

  it('gzip inflating to exactly the ceiling is not refused for its size', async () => {
    const a = await rawPost(RT, [gzipSync(Buffer.alloc(RT_MAX_INFLATED, 0x20))], { ...ndjson, 'content-encoding': 'gzip' });
    expect(a.status).toBe(400); // spaces are not NDJSON
    expect(a.code).not.toBe('DECOMPRESSED_TOO_LARGE');
  });

  it('bytes that are not gzip are still GZIP_INVALID', async () => {
    const a = await rawPost(RT, [Buffer.from('{"not":"gzip"}\n')], { ...ndjson, 'content-encoding': 'gzip' });
    expect(a.status).toBe(400);
    expect(a.code).toBe('GZIP_INVALID');
  });
});

describe('nothing refused was stored', () => {
  it('no CAS blob, no export claim, no intake record on any intake topic', async () => {
    expect(casFiles()).toEqual([]);
    expect(claimFiles()).toEqual([]);
    expect(await intakeRecords()).toBe(0);
  }, 60_000);

  it('a body under every limit still goes through (the limits refuse only what is over)', async () => {
    const line = JSON.stringify({ symbol_id: 'libssl!ok', purl: 'pkg:deb/debian/openssl@3.0.11-1', timestamp: new Date().toISOString(), pid: 1, container: '', count: 1 });
    const a = await rawPost(RT, [gzipSync(Buffer.from(line + '\n'))], { ...ndjson, 'content-encoding': 'gzip' });
    expect(a.status).toBe(202);
    expect(casFiles()).toHaveLength(1);
  });
});
