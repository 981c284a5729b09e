// Provenance benchmark (npm run bench:provenance): single-threaded, so figures are per core.
//  1. frame resolution from cache: ResolutionCache.resolve over a working set of (bundle, address)
//     pairs already cached, on the symbol table of a real ELF file (libc's .dynsym + this
//     machine's gcc-built fixture); also the uncached SymbolIndex lookup and the whole per-frame
//     join (assembleJoin) for comparison, as ratios within one run;
//  2. provenance query latency: the frames table filled with FRAMES rows (generated inside the
//     engine), then GET-equivalent ProvenanceService.traceProvenance for traces of 1,000 frames:
//     p50/p95 over QUERIES queries, after one untimed-in-the-percentiles first query per tenant (its
//     symbol table load from the CAS, reported apart as the cold median).
//     Then PAUSED queries each after a PAUSE_MS (1,500 ms) pause, in which the resolved-symbol write-back
//     (queued by the back-to-back queries, never run between them) does run.
// Each figure is the median of RUNS runs. Options: RUNS=5 LOOKUPS=2000000 FRAMES=10000000 QUERIES=50 PAUSED=10 PAUSE_MS=1500.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FsBlobStore } from '../lib/cas.ts';
import { parseElf, SymbolIndex } from '../lib/elf.ts';
import { migrate, openStore } from '../lib/store/index.ts';
import type { FrameRow } from '../processors/provenance/frames-store.ts';
import { assembleJoin, type JoinFacts } from '../processors/provenance/join.ts';
import { ProvenanceService } from '../processors/provenance/service.ts';
import { loadElfSymbols, ResolutionCache, type LoadedSymbols } from '../processors/provenance/resolve.ts';

const RUNS = Number(process.env.RUNS ?? 5);
const LOOKUPS = Number(process.env.LOOKUPS ?? 2_000_000);
const FRAMES = Number(process.env.FRAMES ?? 10_000_000);
const QUERIES = Number(process.env.QUERIES ?? 50);
const PAUSED = Number(process.env.PAUSED ?? 10);
const PAUSE_MS = Number(process.env.PAUSE_MS ?? 1500);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

function fixture(dir: string): Buffer {
  // 2,000 functions: a symbol table of realistic size for a service binary's own code.
  const fns = Array.from({ length: 2000 }, (_, i) => `__attribute__((noinline)) int f${i}(int x) { return x * ${i + 1} + ${i}; }`).join('\n');
  writeFileSync(path.join(dir, 'big.c'), `${fns}\nint main(int c, char **v) { (void)v; return f1(c); }\n`);
  execFileSync('gcc', ['-g', '-O0', '-Wl,--build-id', '-o', 'big', 'big.c'], { cwd: dir });
  return readFileSync(path.join(dir, 'big'));
}

function phase1(bytes: Buffer): void {
  const elf = parseElf(bytes);
  const loaded = loadElfSymbols(bytes, elf.buildId!, 'bench/big');
  if (!loaded.ok) throw new Error(loaded.detail);
  const symbols: LoadedSymbols = loaded.symbols;
  const funcs = elf.symbols.filter((s) => s.type === 'FUNC' && s.size > 0n);
  // 10,000 distinct addresses inside functions (a large trace set's working set).
  const addrs: bigint[] = Array.from({ length: 10_000 }, (_, i) => { const f = funcs[(i * 7919) % funcs.length]!; return f.value + BigInt(i % Number(f.size)); });
  const index = SymbolIndex.fromElf(elf);
  const rate = { cached: [] as number[], uncached: [] as number[], join: [] as number[] };
  for (let run = 0; run < RUNS; run++) {
    const cache = new ResolutionCache();
    for (const a of addrs) cache.resolve(symbols, a); // warm
    let sink = 0;
    let c0 = cpuMs();
    for (let i = 0; i < LOOKUPS; i++) sink += cache.resolve(symbols, addrs[i % addrs.length]!)!.offset > 0n ? 1 : 0;
    rate.cached.push(LOOKUPS / ((cpuMs() - c0) / 1000));
    c0 = cpuMs();
    for (let i = 0; i < LOOKUPS; i++) sink += index.lookup(addrs[i % addrs.length]!) ? 1 : 0;
    rate.uncached.push(LOOKUPS / ((cpuMs() - c0) / 1000));
    // The whole per-frame join (chain objects, counting, top-N) for 100,000 frames from the cache.
    const n = 100_000;
    const frames: FrameRow[] = Array.from({ length: n }, (_, i) => ({
      trace_id: 't', span_id: 's', source: 'span_event', exception_id: `e${i >> 5}`, service_name: 'svc', exception_type: 'X', runtime: 'native',
      frame_index: i & 31, function: '', module: '/srv/big', file: '', line: 0, column: 0, ip: null, module_offset: (addrs[i % addrs.length]! + (i & 31 ? 1n : 0n)).toString(),
      build_id: elf.buildId!, pdb_guid: '', pdb_age: 0, dsym_uuid: '', resolved_symbol: '', ts_unix_nano: '0',
    }));
    const facts: JoinFacts = {
      bundles: new Map([[elf.buildId!, [{ tenant_id: 'b', symbol_key: elf.buildId!, kind: 'elf', bundle_sha256: 'b'.repeat(64), artifact_sha256: 'a'.repeat(64), build_id: elf.buildId!,
        pdb_age: 0, size: '0', cas_uri: '', key_verified: true, event_id: '', registered_at_unix_nano: '0', evidence: { event_id: '1'.repeat(32), event_kind: 'symbols.registered' } }]]]),
      symbols: new Map([['b'.repeat(64), loaded]]),
      artifacts: new Map([['a'.repeat(64), [{ sha256: 'a'.repeat(64), evidence: { event_id: '2'.repeat(32), event_kind: 'artifact.registered' }, flags: [] } as never]]]),
      evidence: new Map(),
    };
    const cache2 = new ResolutionCache();
    assembleJoin('t', frames.slice(0, 20_000), facts, { topFrames: 20, minCompleteness: 0.95 }, cache2); // warm the cache
    c0 = cpuMs();
    const r = assembleJoin('t', frames, facts, { topFrames: 20, minCompleteness: 0.95 }, cache2);
    rate.join.push(n / ((cpuMs() - c0) / 1000));
    if (r.completeness.gate !== 'pass' || sink === 0) throw new Error('bench fixture did not join');
  }
  const m = { cached: median(rate.cached), uncached: median(rate.uncached), join: median(rate.join) };
  console.log(`phase 1: resolution (${funcs.length} functions, 10,000 distinct addresses, ${LOOKUPS.toLocaleString()} lookups, median of ${RUNS} runs, per CPU-second)`);
  console.log(`  from cache (ResolutionCache hit):      ${(m.cached / 1e6).toFixed(2)} M frames/s`);
  console.log(`  uncached (SymbolIndex binary search):  ${(m.uncached / 1e6).toFixed(2)} M frames/s  (cache = ${(m.cached / m.uncached).toFixed(2)}x)`);
  console.log(`  whole join per frame (assembleJoin):   ${(m.join / 1e6).toFixed(2)} M frames/s  (cache hit = ${(m.cached / m.join).toFixed(1)}x of it)`);
}

async function phase2(bytes: Buffer, dir: string): Promise<void> {
  const store = await openStore({ dataPath: path.join(dir, 'chdb') });
  await migrate(store, { timelineTtlDays: 180, otelTtlDays: 30 });
  const buildId = parseElf(bytes).buildId!;
  const t0 = Date.now();
  // FRAMES rows over 10,000 traces x 1,000 frames per trace (per 10M), 8 tenants, spread over the last 7 days (inside the TTL),
  // generated by the engine (a JSON client insert of 10M rows would measure the client instead).
  const traces = Math.max(1, Math.floor(FRAMES / 1000));
  await store.command(`INSERT INTO frames (tenant_id, ts, trace_id, span_id, source, exception_id, service_name, exception_type, runtime, frame_index,
      function, module, file, line, column, ip, module_offset, build_id, pdb_guid, pdb_age, dsym_uuid, resolved_symbol)
    SELECT concat('t', toString(intDiv(number, 1000) % 8)), now64(9) - toIntervalMillisecond(intDiv(number, 1000) * 60),
      lower(hex(MD5(toString(intDiv(number, 1000))))), lower(hex(substring(MD5(toString(intDiv(number, 32))), 1, 8))), 'span_event',
      lower(hex(substring(MD5(concat('e', toString(intDiv(number, 32)))), 1, 16))), 'svc', 'SIGSEGV', 'native', number % 32,
      '', '/srv/big', '', 0, 0, 0x555555554000 + 0x1139 + (number % 997) * 16, 0x1139 + (number % 997) * 16, '${buildId}', '', 0, '', ''
    FROM numbers(${FRAMES})`);
  const loadMs = Date.now() - t0;
  const cas = new FsBlobStore(path.join(dir, 'cas'));
  // Every tenant registered the fixture's symbols and an attested artifact: the query does the whole chain.
  for (let t = 0; t < 8; t++) {
    const ref = await cas.put(`t${t}`, bytes);
    const now = '2026-01-01 00:00:00.000000000';
    await store.insertRows('symbol_bundles', [{ tenant_id: `t${t}`, symbol_key: buildId, kind: 'elf', bundle_sha256: ref.digest.slice(7), artifact_sha256: 'a'.repeat(64),
      build_id: buildId, pdb_age: 0, size: bytes.length, cas_uri: ref.uri, key_verified: 1, event_id: '1'.repeat(32), registered_at: now }]);
    await store.insertRows('artifacts', [{ tenant_id: `t${t}`, sha256: 'a'.repeat(64), envelope_sha256: 'e'.repeat(64), subject_name: 'big', builder_commit: 'c'.repeat(40),
      compiler: 'gcc 12', flags: ['-g'], signer_keyid: 'ci', event_id: '2'.repeat(32), registered_at: now }]);
  }
  const service = new ProvenanceService({ store, cas, policy: () => ({ topFrames: 20, minCompleteness: 0.95 }) });
  // The first query of each tenant also reads its symbol bundle from the CAS and parses the ELF
  // symbol table (cached after): timed apart, so the percentiles below are of warm queries.
  const cold: number[] = [];
  for (let t = 0; t < 8 && t < traces; t++) {
    const k = t + 8 * Math.floor((traces - 1 - t) / 8); // the last trace of tenant t (outside the timed set, mostly)
    const traceId = (await store.selectRows<{ h: string }>(`SELECT lower(hex(MD5(toString(${k})))) AS h`))[0]!.h;
    const s = performance.now();
    await service.traceProvenance(`t${k % 8}`, traceId);
    cold.push(performance.now() - s);
  }
  const lat: number[] = [];
  for (let q = 0; q < QUERIES; q++) {
    const k = (q * 7919) % traces;
    const traceId = (await store.selectRows<{ h: string }>(`SELECT lower(hex(MD5(toString(${k})))) AS h`))[0]!.h;
    const s = performance.now();
    const r = await service.traceProvenance(`t${k % 8}`, traceId);
    lat.push(performance.now() - s);
    if (r.frames.length !== 1000 || r.completeness.gate !== 'pass') throw new Error(`trace ${traceId}: ${r.frames.length} frames, gate ${r.completeness.gate}`);
  }
  // Back to back, the resolved-symbol write-back never ran (it waits for a pause between
  // queries): what it queued, then queries each after a pause in which it does run.
  const pending = service.writeBackPending;
  const paused: number[] = [];
  for (let q = 0; q < PAUSED; q++) {
    await new Promise((r) => setTimeout(r, PAUSE_MS));
    const k = ((QUERIES + q) * 7919) % traces;
    const traceId = (await store.selectRows<{ h: string }>(`SELECT lower(hex(MD5(toString(${k})))) AS h`))[0]!.h;
    const s = performance.now();
    await service.traceProvenance(`t${k % 8}`, traceId);
    paused.push(performance.now() - s);
  }
  const written = service.writtenBack;
  console.log(`phase 2: provenance query, ${FRAMES.toLocaleString()} frames in chdb (generated in ${(loadMs / 1000).toFixed(1)} s), ${QUERIES} traces of 1,000 frames`);
  console.log(`  first query per tenant (symbol table load): median ${median(cold).toFixed(1)} ms of ${cold.length}`);
  console.log(`  traceProvenance: p50 ${pct(lat, 0.5).toFixed(1)} ms, p95 ${pct(lat, 0.95).toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms`);
  if (PAUSED) {
    console.log(`  write-back: ${pending.toLocaleString()} frames queued after the back-to-back queries; ${written.toLocaleString()} written during ${PAUSED} pauses of ${PAUSE_MS} ms`);
    console.log(`  traceProvenance after a ${PAUSE_MS} ms pause (write-back running in the pauses): p50 ${pct(paused, 0.5).toFixed(1)} ms, max ${Math.max(...paused).toFixed(1)} ms`);
  }
  await store.close();
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-bench-provenance-'));
try {
  const bytes = fixture(dir);
  phase1(bytes);
  if (FRAMES > 0) await phase2(bytes, dir);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
