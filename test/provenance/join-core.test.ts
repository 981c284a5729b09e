// The join's pure core and its policy section: causes that the end-to-end test cannot reach
// through intake (a bundle whose bytes lie about the build-id, PDB bundles, a PIE frame with only
// an ip), deterministic top-N selection, and config validation.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ArtifactRow, SymbolBundleRow } from '../../processors/intake/lookup.ts';
import type { FrameRow } from '../../processors/provenance/frames-store.ts';
import { assembleJoin, type JoinFacts } from '../../processors/provenance/join.ts';
import { parseProvenanceSection, policyFor, ProvenanceSectionError } from '../../processors/provenance/policy.ts';
import { loadElfSymbols, ResolutionCache } from '../../processors/provenance/resolve.ts';

let dir: string;
let a: Buffer;
let b: Buffer;
let idA: string;
let idB: string;
let addA: bigint;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stella-join-core-'));
  writeFileSync(path.join(dir, 'a.c'), 'int add(int x, int y) { return x + y; }\nint main(void) { return add(1, 2); }\n');
  writeFileSync(path.join(dir, 'b.c'), 'int sub(int x, int y) { return x - y; }\nint main(void) { return sub(1, 2); }\n');
  execFileSync('gcc', ['-g', '-Wl,--build-id', '-o', 'a', 'a.c'], { cwd: dir });
  execFileSync('gcc', ['-g', '-Wl,--build-id', '-o', 'b', 'b.c'], { cwd: dir });
  a = readFileSync(path.join(dir, 'a'));
  b = readFileSync(path.join(dir, 'b'));
  const id = (f: string) => /Build ID: ([0-9a-f]+)/.exec(execFileSync('readelf', ['-n', path.join(dir, f)], { encoding: 'utf8' }))![1]!;
  idA = id('a');
  idB = id('b');
  addA = BigInt(`0x${/^([0-9a-f]+) T add$/m.exec(execFileSync('nm', [path.join(dir, 'a')], { encoding: 'utf8' }))![1]}`);
});
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

const frame = (over: Partial<FrameRow>): FrameRow => ({
  trace_id: 't'.repeat(32), span_id: 's', source: 'span_event', exception_id: 'e', service_name: 'svc', exception_type: 'X', runtime: 'native',
  frame_index: 0, function: '', module: '/app', file: '', line: 0, column: 0, ip: null, module_offset: null, build_id: '', pdb_guid: '', pdb_age: 0,
  dsym_uuid: '', resolved_symbol: '', ts_unix_nano: '0', ...over,
});
const bundle = (over: Partial<SymbolBundleRow>): SymbolBundleRow => ({
  tenant_id: 'acme', symbol_key: idA, kind: 'elf', bundle_sha256: 'b'.repeat(64), artifact_sha256: 'a'.repeat(64), build_id: idA, pdb_age: 0, size: '1',
  cas_uri: `cas://acme/${'b'.repeat(64)}`, key_verified: true, event_id: '1'.repeat(32), registered_at_unix_nano: '1', evidence: { event_id: '1'.repeat(32), event_kind: 'symbols.registered' }, ...over,
});
const artifact = { sha256: 'a'.repeat(64), evidence: { event_id: '2'.repeat(32), event_kind: 'artifact.registered' } } as unknown as ArtifactRow;
const policy = { topFrames: 20, minCompleteness: 0.95 };

describe('assembleJoin', () => {
  it('refuses a bundle whose ELF build-id is not the frame\'s (BUILD_ID_MISMATCH), resolves the right one', () => {
    const wrong = loadElfSymbols(b, idA, 'acme/b');
    expect(wrong).toMatchObject({ ok: false, cause: 'BUILD_ID_MISMATCH' });
    const right = loadElfSymbols(a, idA, 'acme/a');
    expect(right.ok).toBe(true);
    const f = frame({ build_id: idA, module_offset: addA.toString() });
    const facts = (s: typeof wrong): JoinFacts => ({ bundles: new Map([[idA, [bundle({})]]]), symbols: new Map([['b'.repeat(64), s]]),
      artifacts: new Map([['a'.repeat(64), [artifact]]]), evidence: new Map() });
    const bad = assembleJoin('t', [f], facts(wrong), policy, new ResolutionCache());
    expect(bad.frames[0]).toMatchObject({ status: 'failed', cause: 'BUILD_ID_MISMATCH' });
    expect(bad.frames[0]!.detail).toContain(idB);
    const good = assembleJoin('t', [f], facts(right), policy, new ResolutionCache());
    expect(good.frames[0]).toMatchObject({ status: 'joined', symbol: { name: 'add', offset: '0x0' } });
    expect(good.frames[0]!.provenance!.evidence).toEqual({ status: 'unknown' });
    expect(readFileSync(path.join(dir, 'a')).length).toBeGreaterThan(0);
  });

  it('a PIE frame with only an ip cannot be placed (NO_ADDRESS); PDB bundles are SYMBOLS_UNSUPPORTED', () => {
    const right = loadElfSymbols(a, idA, 'acme/a');
    const facts: JoinFacts = { bundles: new Map([[idA, [bundle({})]], ['0123456789ABCDEF0123456789ABCDEF1', [bundle({ kind: 'pdb', symbol_key: '0123456789ABCDEF0123456789ABCDEF1' })]]]),
      symbols: new Map([['b'.repeat(64), right]]), artifacts: new Map([['a'.repeat(64), [artifact]]]), evidence: new Map() };
    const r = assembleJoin('t', [frame({ build_id: idA, ip: '93824992235849' }), frame({ pdb_guid: '0123456789ABCDEF0123456789ABCDEF', pdb_age: 1, module_offset: '4096' })],
      facts, policy, new ResolutionCache());
    expect(r.frames.map((f) => f.cause)).toEqual(['NO_ADDRESS', 'SYMBOLS_UNSUPPORTED']);
    // The PDB frame still reaches its bundle and artifact: only the symbol is missing.
    expect(r.frames[1]!.artifact?.sha256).toBe('a'.repeat(64));
  });

  it('takes the top-N by count, ties by key, the same way every time; interpreted frames are not counted', () => {
    const frames = [
      ...[1, 2, 3].map((i) => frame({ build_id: 'cc'.repeat(20), module_offset: String(0x100 * i), exception_id: 'e1', frame_index: i - 1 })),
      ...[1, 2].map((i) => frame({ build_id: 'cc'.repeat(20), module_offset: String(0x100 * i), exception_id: 'e2', frame_index: i - 1 })),
      frame({ runtime: 'python', function: 'handler', file: 'x.py', line: 3, exception_id: 'e3' }),
    ];
    const facts: JoinFacts = { bundles: new Map(), symbols: new Map(), artifacts: new Map(), evidence: new Map() };
    const r1 = assembleJoin('t', frames, facts, { topFrames: 2, minCompleteness: 0.5 }, new ResolutionCache());
    const r2 = assembleJoin('t', [...frames].reverse(), facts, { topFrames: 2, minCompleteness: 0.5 }, new ResolutionCache());
    expect(r1.completeness.failed.map((f) => [f.key, f.count])).toEqual([[`${'cc'.repeat(20)}@0x100`, 2], [`${'cc'.repeat(20)}@0x200`, 2]]);
    expect(r2.completeness).toEqual(r1.completeness);
    expect(r1.frames.find((f) => f.runtime === 'python')!.status).toBe('not_native');
    const py = assembleJoin('t', [frames[5]!], facts, policy, new ResolutionCache());
    expect(py.completeness).toMatchObject({ ratio: null, gate: 'no_native_frames' });
  });
});

describe('provenance config section', () => {
  it('defaults to the top 20 frames and 95%, per-tenant overrides inherit the defaults', () => {
    const d = parseProvenanceSection(undefined);
    expect(policyFor(d, 'acme')).toEqual({ topFrames: 20, minCompleteness: 0.95 });
    const s = parseProvenanceSection({ topFrames: 10, tenants: { acme: { minCompleteness: 1 } } });
    expect(policyFor(s, 'acme')).toEqual({ topFrames: 10, minCompleteness: 1 });
    expect(policyFor(s, 'globex')).toEqual({ topFrames: 10, minCompleteness: 0.95 });
  });
  it('lists every problem', () => {
    expect(() => parseProvenanceSection({ topFrames: 0, minCompleteness: 2, colour: 'x', tenants: { 'Bad Tenant': {}, acme: { tenants: {} } } }))
      .toThrow(ProvenanceSectionError);
    try { parseProvenanceSection({ topFrames: 0, minCompleteness: 2, colour: 'x', tenants: { 'Bad Tenant': {}, acme: { tenants: {} } } }); } catch (e) {
      const m = (e as Error).message;
      for (const part of ['provenance.topFrames', 'provenance.minCompleteness', 'provenance.colour', 'Bad Tenant', 'provenance.tenants.acme.tenants']) expect(m).toContain(part);
    }
  });
});
