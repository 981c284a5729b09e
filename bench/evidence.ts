// Evidence benchmark (npm run bench:evidence):
//   1. entries/s appended + sealed on one core, including tile/entry-bundle writes and fsync
//      (one fsync round per seal, not per entry);
//   2. inclusion-proof latency from tiles on disk (fresh LogReader per proof: tiles read each time);
//   3. building and verifying a whole-log bundle of N entries (default 1M) offline;
//   4. SHA-256 throughput: node:crypto (one-shot hash and createHash) vs @noble/hashes, same run;
//   5. append + seal with a witness (litewitness) and a TSA (openssl ts) asked about every checkpoint
//      (attest.ts, in the background) vs without, paired in each run (order alternating).
// Env: EVIDENCE_BENCH_N (entries, default 1_000_000), EVIDENCE_BENCH_RUNS (default 3),
//      EVIDENCE_BENCH_SEAL (entries per seal, default 100_000), EVIDENCE_BENCH_DIR (default os.tmpdir()),
//      EVIDENCE_BENCH_ATTEST_N (entries of phase 5, default 200_000; 0 skips it), EVIDENCE_BENCH_ATTEST_SEAL
//      (entries per seal in phase 5, default 10_000: twenty checkpoints to vouch for per pass).
//   6. append + seal through a fenced writer (store.claimWriter: writer-epoch check under the tenant's
//      lock file before every write) vs the plain store, paired in each run, many small seals (the
//      fence costs per write, not per entry). EVIDENCE_BENCH_FENCE_N (default 20_000; 0 skips it),
//      EVIDENCE_BENCH_FENCE_SEAL (entries per seal, default 20).
//   7. the runner's incident-mode check on every timeline event (retention.ts incidentFields on the
//      object timelineEntry already parsed) vs the per-record work it adds to (runner.ts
//      timelineEntry without it: parse + RFC 8785), same events, paired in each run.
//      EVIDENCE_BENCH_INCIDENT_N (events, default 200_000; 0 skips it).
//   8. custody from receipt (issue 12 item 5): append + seal of clean-batch v2 entries with the clean
//      records' bytes in the CAS, as packs per entry bundle (what the runner does) and as one blob per
//      record (before packs), and their trace ids read off the wire, vs the same entries without the
//      records; the three in each run, order rotating.
//      EVIDENCE_BENCH_RECORDS_N (records, default 5_000; 0 skips it), EVIDENCE_BENCH_RECORDS_SIZE (bytes of
//      span batch per record, default 16_384), EVIDENCE_BENCH_RECORDS_SEAL (records per seal, default 1_000).
// Phase 3 also verifies the 1M-entry bundle anchored by the full trust root and by the genesis key
// alone (--trusted-key), paired: the trust root's extra checks (pinned rotations, policies) vs the
// bare anchor. (An unanchored verify no longer exists: it is TRUST_ROOT_MISSING.)
import { createHash, hash as oneShot } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { buildBundle, verifyBundle } from '../processors/evidence/bundle.ts';
import { entryBytes } from '../processors/evidence/jcs.ts';
import { sha256, sha256Hex } from '../processors/evidence/hash.ts';
import { signerFromSeed } from '../processors/evidence/note.ts';
import { LogReader, readTile } from '../processors/evidence/reader.ts';
import { inclusionProofRanges, rangeHash } from '../processors/evidence/merkle.ts';
import { tileNodeSource, tilePath, tilesForRanges } from '../processors/evidence/tiles.ts';
import { Sealer, type AppendItem } from '../processors/evidence/sealer.ts';
import { FsEvidenceStore } from '../processors/evidence/store.ts';
import { exportTrustRoot } from '../processors/evidence/trust-root.ts';
import { Attestor, type AttestorOptions } from '../processors/evidence/attest.ts';
import { timelineEntry } from '../processors/evidence/runner.ts';
import { incidentFields } from '../processors/evidence/retention.ts';
import { startLitewitness, startOpensslTsa, type RunningTsa, type RunningWitness } from '../test/evidence/peers.ts';
import { FsBlobStore } from '../lib/cas.ts';
import { encode, types } from '../lib/otlp/proto.ts';
import { cleanBatchEntry } from '../processors/evidence/runner.ts';
import { traceIdsOfRecord } from '../processors/evidence/trace-index.ts';
import { SealPacks, packIndexPath } from '../processors/evidence/record-packs.ts';

const N = Number(process.env.EVIDENCE_BENCH_N ?? 1_000_000);
const RUNS = Number(process.env.EVIDENCE_BENCH_RUNS ?? 3);
const SEAL_EVERY = Number(process.env.EVIDENCE_BENCH_SEAL ?? 100_000);
const BASE = process.env.EVIDENCE_BENCH_DIR ?? os.tmpdir();
const TENANT = 'bench';
const ATTEST_N = Number(process.env.EVIDENCE_BENCH_ATTEST_N ?? 200_000);
const INCIDENT_N = Number(process.env.EVIDENCE_BENCH_INCIDENT_N ?? 200_000);
const ATTEST_SEAL = Number(process.env.EVIDENCE_BENCH_ATTEST_SEAL ?? 10_000);
const FENCE_N = Number(process.env.EVIDENCE_BENCH_FENCE_N ?? 20_000);
const FENCE_SEAL = Number(process.env.EVIDENCE_BENCH_FENCE_SEAL ?? 20);
const RECORDS_N = Number(process.env.EVIDENCE_BENCH_RECORDS_N ?? 5_000);
const RECORDS_SIZE = Number(process.env.EVIDENCE_BENCH_RECORDS_SIZE ?? 16_384);
const RECORDS_SEAL = Number(process.env.EVIDENCE_BENCH_RECORDS_SEAL ?? 1_000);
const signer = signerFromSeed(`stella-telemetry.example/tenants/${TENANT}`, createHash('sha256').update('bench-key').digest());

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!; };
const now = (): number => performance.now();

/** A timeline-event-shaped object (~250 bytes of canonical JSON). */
function event(i: number): Record<string, unknown> {
  return {
    event_id: `01J${i.toString(36).padStart(10, '0')}`, tenant: TENANT, kind: 'span.error', ts: 1_763_900_000_000 + i,
    service: 'checkout', trace_id: (i * 2654435761 % 2 ** 32).toString(16).padStart(32, '0'), severity: 'ERROR',
    attributes: { 'http.route': '/api/v1/orders/:id', 'http.status_code': 500, region: 'eu-west-1', retry: i % 3 },
  };
}

function sha256Bench(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [label, size, iters] of [['64B', 65, 400_000], ['1KiB', 1024, 100_000], ['1MiB', 1 << 20, 200]] as const) {
    const data = Buffer.alloc(size, 7);
    const impls: [string, () => void][] = [
      ['node:crypto hash() (as used)', () => { sha256(data); }],
      ['node:crypto hash() Buffer out', () => { oneShot('sha256', data, 'buffer'); }],
      ['node:crypto createHash', () => { createHash('sha256').update(data).digest(); }],
      ['@noble/hashes sha256', () => { nobleSha256(data); }],
    ];
    for (const [name, f] of impls) {
      for (let i = 0; i < iters / 10; i++) f(); // warm-up
      const t = now();
      for (let i = 0; i < iters; i++) f();
      const s = (now() - t) / 1000;
      out[`${name} ${label} MB/s`] = (size * iters) / s / 1e6;
      out[`${name} ${label} hashes/s`] = iters / s;
    }
  }
  return out;
}

interface RunResult { appendSealPerSec: number; appendSealPerCpuSec: number; proofWarmMedianMs: number; proofComputeMedianMs: number; canonicalizePerSec: number; proofMedianMs: number; proofP99Ms: number; bundleBuildS: number; bundleMB: number; verifyS: number; verifyCpuS: number; seals: number; verifyKeyS: number; verifyKeyCpuS: number }

async function run(r: number): Promise<RunResult> {
  const dir = mkdtempSync(path.join(BASE, 'stella-evidence-bench-'));
  try {
    const store = new FsEvidenceStore(dir);
    // Canonicalization is measured separately: the runner does it as records arrive.
    let t = now();
    const entries: AppendItem[] = new Array(N);
    for (let i = 0; i < N; i++) entries[i] = { entry: entryBytes(event(i)), kafka: { topic: 'stella.timeline', partition: 0, offset: i } };
    const canonicalizeS = (now() - t) / 1000;

    const sealer = await Sealer.recover({ store, tenant: TENANT, signer });
    let seals = 0;
    t = now();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < N; i += SEAL_EVERY) {
      sealer.append(entries.slice(i, i + SEAL_EVERY));
      await sealer.seal(new Date(1_763_900_000_000 + i));
      seals++;
    }
    const sealS = (now() - t) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const sealCpuS = (cpu.user + cpu.system) / 1e6;

    const lat: number[] = [];
    let x = 12345 + r;
    for (let k = 0; k < 2000; k++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const idx = x % N;
      const reader = new LogReader(store, TENANT);
      const t0 = now();
      await reader.inclusionProof(idx, N);
      lat.push(now() - t0);
    }

    // Warm: one long-lived reader with a tile cache (what the API server holds).
    const warmReader = new LogReader(store, TENANT, { tileCache: 4096 });
    const warm: number[] = [];
    for (let k = 0; k < 2000; k++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const t0 = now();
      await warmReader.inclusionProof(x % N, N);
      warm.push(now() - t0);
    }
    // Compute only: tiles already in memory, no I/O, no cache of computed hashes.
    const tiles = new Map<string, Uint8Array>();
    const compute: number[] = [];
    for (let k = 0; k < 2000; k++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const idx = x % N;
      const ranges = inclusionProofRanges(idx, N);
      for (const tc of tilesForRanges(ranges, N)) if (!tiles.has(tilePath(tc))) tiles.set(tilePath(tc), (await readTile(store, TENANT, tc))!);
      const t0 = now();
      const node = tileNodeSource(N, (tc) => tiles.get(tilePath(tc)));
      for (const [a, b] of ranges) rangeHash(a, b, node);
      compute.push(now() - t0);
    }

    t = now();
    const bundle = await buildBundle(store, TENANT, { caseId: 'bench-export' });
    const buildS = (now() - t) / 1000;
    // Against the tenant's trust root (issue 12): the anchored path is the only one that says OK.
    // Paired with the bare genesis-key anchor, order alternating per run.
    const trustRoot = (await exportTrustRoot(store, TENANT))!;
    const timed = (opts: Parameters<typeof verifyBundle>[1]): { s: number; cpuS: number } => {
      const c0 = process.cpuUsage();
      const t0 = now();
      const res = verifyBundle(bundle, opts);
      const wall = (now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      if (!res.ok) throw new Error(`bundle failed to verify: ${res.cause} ${res.detail}`);
      return { s: wall, cpuS: (c.user + c.system) / 1e6 };
    };
    let byRoot: { s: number; cpuS: number };
    let byKey: { s: number; cpuS: number };
    if (r % 2 === 0) { byRoot = timed({ trustRoot }); byKey = timed({ trustedKeys: [signer.verifierKey] }); }
    else { byKey = timed({ trustedKeys: [signer.verifierKey] }); byRoot = timed({ trustRoot }); }
    const verifyS = byRoot.s;
    const verifyCpuS = byRoot.cpuS;
    const verifyKeyS = byKey.s;
    const kcpu = { user: byKey.cpuS * 1e6, system: 0 };
    return {
      appendSealPerSec: N / sealS, appendSealPerCpuSec: N / sealCpuS, proofWarmMedianMs: median(warm), proofComputeMedianMs: median(compute), canonicalizePerSec: N / canonicalizeS, proofMedianMs: median(lat), proofP99Ms: pct(lat, 99),
      bundleBuildS: buildS, bundleMB: bundle.length / 1e6, verifyS, verifyCpuS, seals,
      verifyKeyS, verifyKeyCpuS: (kcpu.user + kcpu.system) / 1e6,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface AttestResult { plainPerSec: number; attestedPerSec: number; plainCpuPerSec: number; attestedCpuPerSec: number; settleS: number; checkpoints: number }

/** One pass of append + seal over ATTEST_N entries, with or without an attestor told about each seal. */
async function sealPass(tenant: string, attest: Omit<AttestorOptions, 'store'> | undefined,
  { n = ATTEST_N, sealEvery = ATTEST_SEAL, fenced = false }: { n?: number; sealEvery?: number; fenced?: boolean } = {}): Promise<{ perSec: number; perCpuSec: number; settleS: number; checkpoints: number }> {
  const dir = mkdtempSync(path.join(BASE, 'stella-evidence-bench-attest-'));
  try {
    const fsStore = new FsEvidenceStore(dir);
    const store = fenced ? await fsStore.claimWriter(tenant) : fsStore;
    const ATTEST_N = n;
    const ATTEST_SEAL = sealEvery;
    const entries: AppendItem[] = new Array(ATTEST_N);
    for (let i = 0; i < ATTEST_N; i++) entries[i] = { entry: entryBytes(event(i)), kafka: { topic: 'stella.timeline', partition: 0, offset: i } };
    const signerT = signerFromSeed(`stella-telemetry.example/tenants/${tenant}`, createHash('sha256').update('bench-key').digest());
    const sealer = await Sealer.recover({ store, tenant, signer: signerT });
    const a = attest ? new Attestor({ store, ...attest }) : undefined;
    let checkpoints = 0;
    const t = now();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < ATTEST_N; i += ATTEST_SEAL) {
      sealer.append(entries.slice(i, i + ATTEST_SEAL));
      const row = await sealer.seal(new Date(1_763_900_000_000 + i));
      a?.sealed(tenant, row!.to_size);
      checkpoints++;
    }
    const s = (now() - t) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const t1 = now();
    await a?.settled(120_000);
    const settleS = (now() - t1) / 1000;
    a?.stop();
    return { perSec: ATTEST_N / s, perCpuSec: ATTEST_N / ((cpu.user + cpu.system) / 1e6), settleS, checkpoints };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function attestBench(peers: { lw: RunningWitness; tsa: RunningTsa }, r: number): Promise<AttestResult> {
  // Each attested pass is a fresh log of its own origin (the witness knows one origin per run).
  const attest = { witnesses: [{ name: peers.lw.name, url: peers.lw.url, vkey: peers.lw.vkey }], tsa: { url: peers.tsa.url, certificates: [peers.tsa.tsaCertPem] } };
  const order = r % 2 === 0 ? ['plain', 'attested'] : ['attested', 'plain'];
  const out: Partial<AttestResult> = {};
  for (const mode of order) {
    const res = await sealPass(mode === 'plain' ? `bench-plain-${r}` : `bench-attest-${r}`, mode === 'plain' ? undefined : attest);
    if (mode === 'plain') { out.plainPerSec = res.perSec; out.plainCpuPerSec = res.perCpuSec; }
    else { out.attestedPerSec = res.perSec; out.attestedCpuPerSec = res.perCpuSec; out.settleS = res.settleS; out.checkpoints = res.checkpoints; }
  }
  return out as AttestResult;
}

/**
 * Phase 8: one pass of RECORDS_N clean records (v2 entries): `plain` seals digests only; `blobs` also
 * puts each record's bytes into the CAS as its own blob (the path before packs: at most 32 puts in
 * flight, each a temp write, fsync, link and directory fsync); `packs` is what the runner does now:
 * the records of each entry bundle as one CAS pack (SealPacks), the seal's pack index written before
 * the seal. Both record modes also read the trace ids off the wire.
 */
type RecordsMode = 'plain' | 'blobs' | 'packs';

/** The runner's record puts before packs: one FsBlobStore.put per record, at most `limit` in flight. */
function boundedPut(cas: FsBlobStore, limit = 32): (tenant: string, bytes: Uint8Array) => Promise<void> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (tenant, bytes) => {
    while (running >= limit) await new Promise<void>((r) => waiting.push(r));
    running++;
    try { await cas.put(tenant, bytes); } finally { running--; waiting.shift()?.(); }
  };
}
async function recordsPass(mode: RecordsMode, r: number): Promise<{ perSec: number; perCpuSec: number }> {
  const dir = mkdtempSync(path.join(BASE, 'stella-evidence-bench-records-'));
  try {
    const store = new FsEvidenceStore(path.join(dir, 'logs'));
    const cas = new FsBlobStore(path.join(dir, 'cas'));
    const put = boundedPut(cas);
    const sealer = await Sealer.recover({ store, tenant: TENANT, signer });
    // Distinct span batches of ~RECORDS_SIZE bytes (distinct trace ids, so no CAS dedup).
    const pad = 'x'.repeat(Math.max(0, RECORDS_SIZE - 200));
    const values = Array.from({ length: RECORDS_N }, (_, i) => Buffer.from(encode('traces', types.ExportTraceServiceRequest.fromObject({ resourceSpans: [{ scopeSpans: [{ spans: [{
      traceId: createHash('sha256').update(`${r}/${i}`).digest().subarray(0, 16), spanId: Buffer.alloc(8, 1), name: 'GET /cart', kind: 2,
      attributes: [{ key: 'pad', value: { stringValue: pad } }] }] }] }] }))));
    const custody = { rawSha256: 'ab'.repeat(32), scrubPolicy: `sha256:${'cd'.repeat(32)}` };
    const c0 = process.cpuUsage();
    const t0 = now();
    for (let i = 0; i < RECORDS_N; i += RECORDS_SEAL) {
      const puts: Promise<void>[] = [];
      const packs = mode === 'packs' ? new SealPacks(TENANT, cas) : undefined;
      const from = sealer.size;
      const batch = values.slice(i, i + RECORDS_SEAL).map((v, k) => {
        const pos = { topic: 'otlp_spans_clean', partition: 0, offset: String(i + k) };
        const digest = sha256Hex(v); // the runner hashes each record once: the entry's sha256 and its pack address
        if (mode === 'blobs') { puts.push(put(TENANT, v)); traceIdsOfRecord('traces', v); }
        if (packs) { packs.add(from + k, digest, v); traceIdsOfRecord('traces', v); }
        return { entry: cleanBatchEntry(v, pos, custody, digest), kafka: { topic: 'otlp_spans_clean', partition: 0, offset: i + k } };
      });
      sealer.append(batch);
      await Promise.all(puts);
      const index = await packs?.finish(from);
      if (index) await store.writeImmutable(TENANT, packIndexPath(from), index);
      await sealer.seal(new Date(1_763_900_000_000 + i));
    }
    const s = (now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    return { perSec: RECORDS_N / s, perCpuSec: RECORDS_N / ((c.user + c.system) / 1e6) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(`evidence bench: N=${N} entries, ${RUNS} runs, seal every ${SEAL_EVERY}, store under ${BASE}, node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load ${os.loadavg().map((l) => l.toFixed(1)).join('/')}`);
  const results: RunResult[] = [];
  const shas: Record<string, number>[] = [];
  for (let r = 0; r < RUNS; r++) {
    shas.push(sha256Bench());
    const res = await run(r);
    results.push(res);
    console.log(`run ${r + 1}: ${Math.round(res.appendSealPerSec).toLocaleString('en')} entries/s sealed (${Math.round(res.appendSealPerCpuSec).toLocaleString('en')} per CPU-s, ${res.seals} seals), proof p50 ${res.proofMedianMs.toFixed(3)} ms (warm ${res.proofWarmMedianMs.toFixed(3)}, hashing ${res.proofComputeMedianMs.toFixed(3)}) p99 ${res.proofP99Ms.toFixed(3)} ms, bundle ${res.bundleMB.toFixed(1)} MB built ${res.bundleBuildS.toFixed(2)} s, verified ${res.verifyS.toFixed(2)} s (${res.verifyCpuS.toFixed(2)} CPU-s)`);
  }
  const med = (k: keyof RunResult): number => median(results.map((x) => x[k]));
  const rows: [string, string, string][] = [
    ['append + seal (tiles, bundles, checkpoint, envelope, fsync), entries/s, 1 core', Math.round(med('appendSealPerSec')).toLocaleString('en'), '≥ 100,000'],
    ['append + seal, entries per CPU-second of this process (load-independent)', Math.round(med('appendSealPerCpuSec')).toLocaleString('en'), '≥ 100,000'],
    ['canonical JSON (RFC 8785) of ~250-byte events, entries/s', Math.round(med('canonicalizePerSec')).toLocaleString('en'), '—'],
    ['inclusion proof from tiles on disk, p50 ms', med('proofMedianMs').toFixed(3), '< 1'],
    ['inclusion proof from tiles on disk, p99 ms', med('proofP99Ms').toFixed(3), '—'],
    ['inclusion proof, long-lived reader with tile cache, p50 ms', med('proofWarmMedianMs').toFixed(3), '< 1'],
    ['inclusion proof, hashing only (tiles in memory), p50 ms', med('proofComputeMedianMs').toFixed(3), '—'],
    [`build whole-log bundle of ${N.toLocaleString('en')} entries, s`, med('bundleBuildS').toFixed(2), '—'],
    [`verify that bundle offline, wall s (${med('bundleMB').toFixed(1)} MB)`, med('verifyS').toFixed(2), '< 10'],
    ['verify that bundle offline, CPU s of this process (load-independent)', med('verifyCpuS').toFixed(2), '< 10'],
    ['same bundle anchored by the genesis key alone (--trusted-key), wall s', med('verifyKeyS').toFixed(2), '—'],
    ['same, CPU s', med('verifyKeyCpuS').toFixed(2), '—'],
  ];
  const shaKeys = Object.keys(shas[0]!);
  for (const k of shaKeys) if (k.endsWith('MB/s') && !k.includes('64B')) rows.push([`SHA-256 ${k}`, median(shas.map((s) => s[k]!)).toFixed(0), '—']);
  for (const k of shaKeys) if (k.endsWith('hashes/s') && k.includes('64B')) rows.push([`SHA-256 ${k} (node hash size)`, Math.round(median(shas.map((s) => s[k]!))).toLocaleString('en'), '—']);
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log(`\n${'metric'.padEnd(w)} | median of ${RUNS} | target`);
  console.log(`${'-'.repeat(w)}-|-----------|-------`);
  for (const [a, b, c] of rows) console.log(`${a.padEnd(w)} | ${b.padStart(9)} | ${c}`);
  const ratio = (a: string, b: string): string => (median(shas.map((s) => s[a]!)) / median(shas.map((s) => s[b]!))).toFixed(2);
  console.log(`\nSHA-256 ratios (node:crypto hash() / @noble/hashes): 64B ${ratio('node:crypto hash() (as used) 64B hashes/s', '@noble/hashes sha256 64B hashes/s')}x, 1KiB ${ratio('node:crypto hash() (as used) 1KiB MB/s', '@noble/hashes sha256 1KiB MB/s')}x, 1MiB ${ratio('node:crypto hash() (as used) 1MiB MB/s', '@noble/hashes sha256 1MiB MB/s')}x`);
  const vr = results.map((x) => x.verifyS / x.verifyKeyS);
  const vcr = results.map((x) => x.verifyCpuS / x.verifyKeyCpuS);
  console.log(`1M-entry verify, trust root / genesis key only: median ${median(vr).toFixed(3)} wall (runs ${vr.map((x) => x.toFixed(3)).join(' / ')}), ${median(vcr).toFixed(3)} CPU (runs ${vcr.map((x) => x.toFixed(3)).join(' / ')}); target ≤ 1.2`);
  console.log(`append+seal vs target: ${(med('appendSealPerSec') / 100_000).toFixed(2)}x; proof p50 vs 1 ms: ${(med('proofMedianMs')).toFixed(3)}x; verify vs 10 s: ${(med('verifyS') / 10).toFixed(2)}x`);

  if (ATTEST_N > 0) {
    const origins = [...Array.from({ length: RUNS }, (_, r) => `stella-telemetry.example/tenants/bench-attest-${r}`), 'stella-telemetry.example/tenants/bench-attest-warm'];
    const lw = await startLitewitness('bench.local/witness', origins.map((o) => ({ origin: o, vkey: signerFromSeed(o, createHash('sha256').update('bench-key').digest()).verifierKey })));
    const tsa = await startOpensslTsa('Bench TSA');
    try {
      // Warm-up (not measured): the first fetch, ASN.1 and certificate parsing load and JIT once per
      // process, which a long-running runner pays once, not per seal.
      await sealPass('bench-attest-warm', { witnesses: [{ name: lw.name, url: lw.url, vkey: lw.vkey }], tsa: { url: tsa.url, certificates: [tsa.tsaCertPem] } });
      const att: AttestResult[] = [];
      for (let r = 0; r < RUNS; r++) {
        const a = await attestBench({ lw, tsa }, r);
        att.push(a);
        console.log(`attest run ${r + 1}: plain ${Math.round(a.plainPerSec).toLocaleString('en')} entries/s, with witness + TSA ${Math.round(a.attestedPerSec).toLocaleString('en')} entries/s (ratio ${(a.attestedPerSec / a.plainPerSec).toFixed(3)}; per CPU-s ${Math.round(a.plainCpuPerSec).toLocaleString('en')} / ${Math.round(a.attestedCpuPerSec).toLocaleString('en')}); ${a.checkpoints} checkpoints cosigned and stamped ${a.settleS.toFixed(2)} s after the last seal`);
      }
      const ratios = att.map((a) => a.attestedPerSec / a.plainPerSec);
      const cpuRatios = att.map((a) => a.attestedCpuPerSec / a.plainCpuPerSec);
      console.log(`\nseal throughput with witness + TSA / without (${ATTEST_N.toLocaleString('en')} entries, a checkpoint every ${ATTEST_SEAL.toLocaleString('en')}): median ratio ${median(ratios).toFixed(3)} wall (runs ${ratios.map((x) => x.toFixed(3)).join(' / ')}), ${median(cpuRatios).toFixed(3)} per CPU-second of this process (runs ${cpuRatios.map((x) => x.toFixed(3)).join(' / ')}); target ≥ 0.90`);
    } finally {
      await lw.stop();
      await tsa.stop();
    }
  }

  if (RECORDS_N > 0) {
    await recordsPass('packs', -1); // warm-up, not measured
    await recordsPass('blobs', -2);
    const modes: RecordsMode[] = ['plain', 'blobs', 'packs'];
    const ratios: Record<string, number[]> = { blobsWall: [], blobsCpu: [], packsWall: [], packsCpu: [], packsVsBlobs: [] };
    for (let r = 0; r < RUNS; r++) {
      const res: Partial<Record<RecordsMode, { perSec: number; perCpuSec: number }>> = {};
      const order = [...modes.slice(r % 3), ...modes.slice(0, r % 3)]; // each mode first, second and last in turn
      for (const mode of order) res[mode] = await recordsPass(mode, r);
      const { plain, blobs, packs } = res as Record<RecordsMode, { perSec: number; perCpuSec: number }>;
      ratios.blobsWall!.push(blobs.perSec / plain.perSec); ratios.blobsCpu!.push(blobs.perCpuSec / plain.perCpuSec);
      ratios.packsWall!.push(packs.perSec / plain.perSec); ratios.packsCpu!.push(packs.perCpuSec / plain.perCpuSec);
      ratios.packsVsBlobs!.push(packs.perSec / blobs.perSec);
      const f = (x: { perSec: number; perCpuSec: number }): string => `${Math.round(x.perSec).toLocaleString('en')}/s (${Math.round(x.perCpuSec).toLocaleString('en')} per CPU-s)`;
      console.log(`records run ${r + 1} (order ${order.join(', ')}, load ${os.loadavg()[0]!.toFixed(1)}): digests only ${f(plain)}, a blob per record ${f(blobs)}, packs ${f(packs)}; packs/digests ${ratios.packsWall![r]!.toFixed(3)} wall ${ratios.packsCpu![r]!.toFixed(3)} CPU, blobs/digests ${ratios.blobsWall![r]!.toFixed(3)} wall ${ratios.blobsCpu![r]!.toFixed(3)} CPU`);
    }
    const m = (k: string): string => `${median(ratios[k]!).toFixed(3)} (runs ${ratios[k]!.map((x) => x.toFixed(3)).join(' / ')})`;
    console.log(`\nclean records sealed with their bytes / digests only (${RECORDS_N.toLocaleString('en')} records of ~${RECORDS_SIZE.toLocaleString('en')} B, a seal every ${RECORDS_SEAL.toLocaleString('en')}), medians:`);
    console.log(`  packs (now):          wall ${m('packsWall')}, CPU ${m('packsCpu')}`);
    console.log(`  a blob per record:    wall ${m('blobsWall')}, CPU ${m('blobsCpu')}`);
    console.log(`  packs / blob per record, wall: ${m('packsVsBlobs')}`);
  }

  if (FENCE_N > 0) {
    await sealPass('bench-fence-warm', undefined, { n: FENCE_N, sealEvery: FENCE_SEAL, fenced: true });
    const ratios: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const res: Record<string, number> = {};
      for (const mode of r % 2 === 0 ? ['plain', 'fenced'] : ['fenced', 'plain']) {
        res[mode] = (await sealPass(`bench-${mode}-${r}`, undefined, { n: FENCE_N, sealEvery: FENCE_SEAL, fenced: mode === 'fenced' })).perSec;
      }
      ratios.push(res.fenced! / res.plain!);
      console.log(`fence run ${r + 1}: plain ${Math.round(res.plain!).toLocaleString('en')} entries/s, fenced ${Math.round(res.fenced!).toLocaleString('en')} entries/s (ratio ${ratios[r]!.toFixed(3)})`);
    }
    console.log(`\nseal throughput through a fenced writer / plain store (${FENCE_N.toLocaleString('en')} entries, a seal every ${FENCE_SEAL}): median ratio ${median(ratios).toFixed(3)} (runs ${ratios.map((x) => x.toFixed(3)).join(' / ')})`);
  }

  if (INCIDENT_N > 0) {
    // Timeline events as the timeline processor publishes them (~400 bytes), one in 1,000 an incident event.
    const values = Array.from({ length: INCIDENT_N }, (_, i) => Buffer.from(JSON.stringify({
      event_id: i.toString(16).padStart(32, '0'), ts: '2026-12-03T10:00:00.000000000Z', ts_unix_nano: '1796292000000000000', tenant_id: 'acme', project_id: 'p1',
      kind: i % 1000 === 0 ? 'incident.mode.started' : 'job.finished', actor: 'service:checkout', resource_type: 'job', resource_id: `job-${i}`,
      trace_id: 'ab'.repeat(16), span_id: 'cd'.repeat(8), digest: 'ef'.repeat(32), details: { service: 'checkout', span_name: 'charge', at_ms: i, until_ms: i + 1, duration_ns: '1200000' },
      source: `stella.otlp_spans_clean/0/${i}#0` })));
    const pos = { topic: 't', partition: 0, offset: '0' };
    const ratios: number[] = [];
    const perEntry: number[] = [];
    for (let r = 0; r < RUNS + 1; r++) {
      const parsed = values.map((v) => JSON.parse(v.toString('utf8')) as Record<string, unknown>);
      const timeEntries = (): number => { const t0 = performance.now(); for (const v of values) timelineEntry(v, pos); return performance.now() - t0; };
      let marks = 0;
      const timeMarks = (): number => { const t0 = performance.now(); marks = 0; for (const o of parsed) if (incidentFields(o)) marks++; return performance.now() - t0; };
      const entryMs = timeEntries();
      const markMs = timeMarks();
      if (marks !== Math.ceil(INCIDENT_N / 1000)) throw new Error(`expected ${Math.ceil(INCIDENT_N / 1000)} incident marks, got ${marks}`);
      if (r === 0) continue; // warm-up
      ratios.push(markMs / entryMs);
      perEntry.push((markMs * 1e6) / INCIDENT_N);
      console.log(`incident-mark run ${r}: timelineEntry ${(entryMs * 1e6 / INCIDENT_N).toFixed(0)} ns/event, incidentFields ${(markMs * 1e6 / INCIDENT_N).toFixed(0)} ns/event (ratio ${(markMs / entryMs).toFixed(4)})`);
    }
    console.log(`\nincident-mode check (incidentFields) / timelineEntry per timeline event (${INCIDENT_N.toLocaleString('en')} events, 0.1% incident events): median ratio ${median(ratios).toFixed(4)} (runs ${ratios.map((x) => x.toFixed(4)).join(' / ')}), ${median(perEntry).toFixed(0)} ns/event`);
  }
}

await main();
