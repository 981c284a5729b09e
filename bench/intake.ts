// npm run bench:intake — signed intake throughput per core.
// Runtime facts: MB of NDJSON per CPU-second through the route's whole verify-and-store path
// (processors/intake/runtime-ingest.ts: sha256 of the body, every line parsed and validated, the
// CAS write with its fsyncs, the intake record and event built), plain and gzip (the gzip body fed
// in 64 KiB chunks through api/server.ts bodyReader, which inflates it as the route does; MB
// counted decompressed), "per core" = per CPU-second (user + system, all threads) of this process,
// which runs nothing else meanwhile. The gzip path as it was (zlib.gunzip, 16 KiB chunks) and
// inflating alone (both chunk sizes) run in the same rounds,
// against two references measured in the same rounds: sha256 alone and JSON.parse of every line
// alone. Kafka is left out (a producer that acks at once): the broker's cost is not ours to measure.
// Prints the median of ROUNDS rounds and a markdown block for BENCHMARKS.md.
// Then orchestrator export submissions/s (bench/intake-exports.ts: RUNS, BENCH_EXPORTS, BENCH_CONCURRENCY).
//   INTAKE_BENCH_ROUNDS (default 5), INTAKE_BENCH_MB per body (default 8), INTAKE_BENCH_BODIES per round (default 4)
import './quiet-logs.ts'; // before anything that makes a logger
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type http from 'node:http';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import zlib, { gzipSync } from 'node:zlib';
import { bodyReader } from '../api/server.ts';
import { FsBlobStore } from '../lib/cas.ts';
import { defaultIntakeConfig } from '../lib/intake/trust.ts';
import { forEachRuntimeFact } from '../processors/intake/runtime-facts.ts';
import { ingestRuntimeFacts, type RuntimeIngestDeps } from '../processors/intake/runtime-ingest.ts';

/** Issue #13: runtime facts NDJSON per core, i.e. MB per CPU-second, hashing and CAS write included. */
const TARGET_MB_PER_CPU_S = 50;
const gunzipDefault = promisify(zlib.gunzip);

/** A request as api/server.ts bodyReader sees it: the gzip body arriving in 64 KiB chunks, as from a socket. */
function gzipRequest(z: Buffer): http.IncomingMessage {
  const chunks: Buffer[] = [];
  for (let i = 0; i < z.length; i += 64 * 1024) chunks.push(z.subarray(i, i + 64 * 1024));
  let next = 0;
  const r = new Readable({ read() { this.push(next < chunks.length ? chunks[next++] : null); } });
  return Object.assign(r, { headers: { 'content-encoding': 'gzip', 'content-length': String(z.length) } }) as unknown as http.IncomingMessage;
}

/** What the route gets for a gzip body: bodyReader's inflated bytes. */
async function inflateAsRoute(z: Buffer, max: number): Promise<Buffer> {
  const r = await bodyReader(gzipRequest(z), { maxBytes: 64 * 1024 * 1024, gunzipMaxBytes: max })();
  if (!r.ok || !r.inflated) throw new Error('bench gzip body not inflated');
  return r.inflated;
}

const ROUNDS = Number(process.env.INTAKE_BENCH_ROUNDS ?? 5);
const MB = Number(process.env.INTAKE_BENCH_MB ?? 8);
const BODIES = Number(process.env.INTAKE_BENCH_BODIES ?? 4);

let seed = 7;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
const PKGS = ['pkg:deb/debian/openssl@3.0.11-1?arch=amd64', 'pkg:golang/github.com/grpc/grpc-go@v1.60.1', 'pkg:npm/express@4.18.2', 'pkg:maven/org.apache.logging.log4j/log4j-core@2.17.1'];

/** A realistic body: eBPF-style symbol hits, ~190 bytes a line. `salt` makes each body unique (a new CAS blob). */
function body(bytes: number, salt: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  const t0 = Date.UTC(2026, 11, 3, 12) * 1_000_000;
  for (let i = 0; size < bytes; i++) {
    const ns = t0 + i * 1000 + salt;
    const l = JSON.stringify({ symbol_id: `libfoo.so.${salt}!fn_${Math.floor(rand() * 50_000)}+0x${Math.floor(rand() * 4096).toString(16)}`,
      purl: PKGS[i % PKGS.length], timestamp: new Date(Math.floor(ns / 1_000_000)).toISOString().replace('Z', `${String(ns % 1_000_000).padStart(6, '0')}Z`),
      pid: 1000 + (i % 300), container: `c${(i % 40).toString(16).padStart(12, '0')}`, count: 1 + Math.floor(rand() * 100) });
    lines.push(l);
    size += l.length + 1;
  }
  return Buffer.from(lines.join('\n') + '\n');
}

// A full GC before each measure: the garbage of making the round's bodies (~100 MB of strings) is
// collected outside the measures instead of in whichever measure happens to run first.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

const cpuSeconds = (f: () => void | Promise<void>) => async (): Promise<number> => {
  collectGarbage();
  const c = process.cpuUsage();
  await f();
  const d = process.cpuUsage(c);
  return (d.user + d.system) / 1e6;
};
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-bench-intake-'));
  const limits = { ...defaultIntakeConfig(dir).runtimeFacts, maxDecompressedBytes: 1024 * 1024 * 1024 };
  const deps: RuntimeIngestDeps = { cas: new FsBlobStore(path.join(dir, 'cas')), producer: { send: async () => {} },
    verify: () => ({ ok: false, reason: 'unused' }), topics: { intakeRuntimeFacts: 'x', timelineEvents: 'y' }, limits };
  const graphHash = `sha256:${'ab'.repeat(32)}`;
  type Measure = 'plain' | 'gzip' | 'gzipBefore' | 'inflate' | 'inflateBefore' | 'general' | 'sha256' | 'parse';
  const rows: Record<Measure, number[]> = { plain: [], gzip: [], gzipBefore: [], inflate: [], inflateBefore: [], general: [], sha256: [], parse: [] };
  let salt = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const plain = Array.from({ length: BODIES }, () => body(MB * 1024 * 1024, ++salt));
      const gzBodies = () => Array.from({ length: BODIES }, () => { const b = body(MB * 1024 * 1024, ++salt); return { b, z: gzipSync(b, { level: 6 }) }; });
      const gz = gzBodies();
      const gzBefore = gzBodies();
      const general = Array.from({ length: BODIES }, () => body(MB * 1024 * 1024, ++salt));
      const bytes = plain.reduce((a, b) => a + b.length, 0);
      const generalBytes = general.reduce((a, b) => a + b.length, 0);
      const gzBytes = gz.reduce((a, x) => a + x.b.length, 0);
      const gzBeforeBytes = gzBefore.reduce((a, x) => a + x.b.length, 0);
      const measures: [Measure, () => Promise<number>, number][] = [
        ['plain', cpuSeconds(async () => {
          for (const b of plain) { const r = await ingestRuntimeFacts(deps, { tenant: 'bench', graphHash, ndjson: b, actor: '', via: 'api' }); if (!r.ok) throw new Error(r.message); }
        }), bytes],
        ['gzip', cpuSeconds(async () => {
          for (const { z } of gz) {
            const b = await inflateAsRoute(z, limits.maxDecompressedBytes);
            const r = await ingestRuntimeFacts(deps, { tenant: 'bench', graphHash, ndjson: b, actor: '', via: 'api' });
            if (!r.ok) throw new Error(r.message);
          }
        }), gzBytes],
        // As before this change: zlib.gunzip with its default 16 KiB output chunks, then the same ingest.
        ['gzipBefore', cpuSeconds(async () => {
          for (const { z } of gzBefore) {
            const b = await gunzipDefault(z, { maxOutputLength: limits.maxDecompressedBytes });
            const r = await ingestRuntimeFacts(deps, { tenant: 'bench', graphHash, ndjson: b, actor: '', via: 'api' });
            if (!r.ok) throw new Error(r.message);
          }
        }), gzBeforeBytes],
        ['inflate', cpuSeconds(async () => { for (const { z } of gz) await inflateAsRoute(z, limits.maxDecompressedBytes); }), gzBytes],
        ['inflateBefore', cpuSeconds(async () => { for (const { z } of gz) await gunzipDefault(z, { maxOutputLength: limits.maxDecompressedBytes }); }), gzBytes],
        // The path before the byte-level fast path: sha256, every line through JSON.parse + checkRecord, the CAS write.
        ['general', cpuSeconds(async () => {
          for (const b of general) {
            createHash('sha256').update(b).digest();
            const r = forEachRuntimeFact(b, limits, undefined, false);
            if (!r.ok) throw new Error(r.message);
            await deps.cas.put('bench', b);
          }
        }), generalBytes],
        ['sha256', cpuSeconds(() => { for (const b of plain) createHash('sha256').update(b).digest(); }), bytes],
        ['parse', cpuSeconds(() => { for (const b of plain) for (const l of b.toString('utf8').split('\n')) if (l) JSON.parse(l); }), bytes],
      ];
      // Alternate the order each round so that warm-up and GC do not favour one measure.
      if (round % 2) measures.reverse();
      for (const [name, run, n] of measures) rows[name].push(n / 1024 / 1024 / (await run()));
      process.stderr.write(`round ${round + 1}/${ROUNDS}: ${Object.entries(rows).map(([k, v]) => `${k} ${v[v.length - 1]!.toFixed(1)}`).join(', ')} MB/CPU-s\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)])) as Record<Measure, number>;
  const ratios = rows.plain.map((v, i) => v / rows.general[i]!);
  const gzRatios = rows.gzip.map((v, i) => v / rows.gzipBefore[i]!);
  const fmt = (v: number) => v.toFixed(1);
  const met = (v: number) => (v >= TARGET_MB_PER_CPU_S ? 'MET' : 'NOT MET');
  const row = (label: string, k: Measure, target = '') =>
    `| ${label} | **${fmt(m[k])}** | ${rows[k].map(fmt).join(', ')} | ${(m[k] / m.sha256).toFixed(2)}x | ${(m[k] / m.parse).toFixed(2)}x | ${target} |`;
  process.stdout.write(`
MB/CPU-s = MB of NDJSON (decompressed) per CPU-second (user + system, all threads) of this process = per core.

| runtime facts (${ROUNDS} rounds x ${BODIES} bodies of ${MB} MiB) | MB/CPU-s (median) | per round | vs sha256 alone | vs JSON.parse alone | target ${TARGET_MB_PER_CPU_S} MB/s per core |
|---|---|---|---|---|---|
${row('ingest, plain NDJSON (hash + validate + CAS write)', 'plain', met(m.plain))}
${row('ingest, gzip (route inflate, 256 KiB chunks + the same)', 'gzip', met(m.gzip))}
${row('before: gzip through zlib.gunzip (16 KiB chunks) + the same', 'gzipBefore')}
${row('inflate alone, as the route does it', 'inflate')}
${row('inflate alone, zlib.gunzip 16 KiB chunks (before)', 'inflateBefore')}
${row('before: general path only (sha256 + JSON.parse/checkRecord per line + CAS write)', 'general')}
| sha256 alone | ${fmt(m.sha256)} | ${rows.sha256.map(fmt).join(', ')} | | | |
| JSON.parse of each line alone | ${fmt(m.parse)} | ${rows.parse.map(fmt).join(', ')} | | | |

plain ingest / general path, per round (same round, alternating order): ${ratios.map((r) => r.toFixed(2)).join(', ')}; median ${median(ratios).toFixed(2)}x.
gzip ingest / gzip before, per round: ${gzRatios.map((r) => r.toFixed(2)).join(', ')}; median ${median(gzRatios).toFixed(2)}x. Load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}.
`);
}

await main();

// Phase 2: orchestrator export submissions (bench/intake-exports.ts; INTAKE_BENCH_EXPORTS=0 skips it).
if (process.env.INTAKE_BENCH_EXPORTS !== '0') {
  const { runExportsBench } = await import('./intake-exports.ts');
  const { rows } = await runExportsBench();
  process.stdout.write(`\n| orchestrator exports | median | target |\n|---|---|---|\n${rows.map(([k, v, t]) => `| ${k} | **${v}** | ${t} |`).join('\n')}\n`);
  process.exit(0);
}
