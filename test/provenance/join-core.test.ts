// The join's pure core and its policy section: causes that the end-to-end test cannot reach
// through intake (a bundle whose bytes lie about the build-id, PDB / dSYM bundles and PDB ages, a PIE frame with only
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
import { loadElfSymbols, loadKeyOnly, ResolutionCache } from '../../processors/provenance/resolve.ts';
import { writeFat, writeMachO, writePdb } from '../intake/symbol-fixtures.ts';

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

  it('a PIE frame with only an ip cannot be placed (NO_ADDRESS)', () => {
    const right = loadElfSymbols(a, idA, 'acme/a');
    const facts: JoinFacts = { bundles: new Map([[idA, [bundle({})]]]), symbols: new Map([['b'.repeat(64), right]]), artifacts: new Map([['a'.repeat(64), [artifact]]]), evidence: new Map() };
    const r = assembleJoin('t', [frame({ build_id: idA, ip: '93824992235849' })], facts, policy, new ResolutionCache());
    expect(r.frames.map((f) => f.cause)).toEqual(['NO_ADDRESS']);
  });

  it('PDB and dSYM frames join to their bundle and attested artifact (key read from the bytes, no function name); another PDB age is PDB_AGE_MISMATCH', () => {
    const GUID = '0123ABCD456789EF0123456789ABCDEF';
    const pdb = writePdb({ guid: '0123ABCD-4567-89EF-0123-456789ABCDEF', infoAge: 9, dbiAge: 2 });
    const dsym = writeFat([writeMachO({ cputype: 0x01000007, uuid: '11'.repeat(16) }), writeMachO({ cputype: 0x0100000c, uuid: '22'.repeat(16) })]);
    const pdbRow = bundle({ kind: 'pdb', symbol_key: `${GUID}2`, build_id: GUID, pdb_age: 2, bundle_sha256: 'c'.repeat(64) });
    const dsymRow = bundle({ kind: 'dsym', symbol_key: '22'.repeat(16), build_id: '22'.repeat(16), bundle_sha256: 'd'.repeat(64) });
    const facts = (pdbBytes: Buffer): JoinFacts => ({
      bundles: new Map([[`${GUID}2`, [pdbRow]], [`${GUID}3`, []], ['22'.repeat(16), [dsymRow]]]),
      symbols: new Map([['c'.repeat(64), loadKeyOnly('pdb', pdbBytes, `${GUID}2`)], ['d'.repeat(64), loadKeyOnly('dsym', dsym, '22'.repeat(16))]]),
      artifacts: new Map([['a'.repeat(64), [artifact]]]), evidence: new Map(), pdbAges: new Map([[GUID, [2]]]),
    });
    const frames = [
      frame({ pdb_guid: '{0123ABCD-4567-89EF-0123-456789ABCDEF}', pdb_age: 2, module_offset: '4096', function: 'CrashHere' }),
      frame({ pdb_guid: '0123ABCD-4567-89EF-0123-456789ABCDEF', pdb_age: 3, module_offset: '4096', frame_index: 1 }),
      frame({ dsym_uuid: '22222222-2222-2222-2222-222222222222', module_offset: '8192', frame_index: 2 }),
    ];
    const r = assembleJoin('t', frames, facts(pdb), policy, new ResolutionCache());
    expect(r.frames.map((f) => [f.status, f.cause])).toEqual([['joined', undefined], ['failed', 'PDB_AGE_MISMATCH'], ['joined', undefined]]);
    expect(r.frames[0]).toMatchObject({ function: 'CrashHere', symbol_bundle: { sha256: 'c'.repeat(64), kind: 'pdb' }, artifact: { sha256: 'a'.repeat(64) } });
    expect(r.frames[0]!.symbol).toBeUndefined();
    expect(r.frames[0]!.symbol_unresolved).toMatch(/PDB symbol tables are not read/);
    expect(r.frames[1]!.detail).toContain('age is 3, the registered bundles have age 2');
    expect(r.frames[2]).toMatchObject({ symbol_bundle: { kind: 'dsym' }, artifact: { sha256: 'a'.repeat(64) } });
    expect(r.completeness).toMatchObject({ considered: 3, joined: 2 });
    // Bytes in the CAS that carry another age (or are not a PDB) are not this bundle.
    const other = assembleJoin('t', frames.slice(0, 1), facts(writePdb({ guid: '0123ABCD-4567-89EF-0123-456789ABCDEF', infoAge: 9, dbiAge: 5 })), policy, new ResolutionCache());
    expect(other.frames[0]).toMatchObject({ status: 'failed', cause: 'BUILD_ID_MISMATCH' });
    const junk = assembleJoin('t', frames.slice(0, 1), facts(Buffer.from('not a pdb')), policy, new ResolutionCache());
    expect(junk.frames[0]).toMatchObject({ status: 'failed', cause: 'SYMBOLS_UNREADABLE' });
    // Unattested: still named as such.
    const un = assembleJoin('t', frames.slice(2), { ...facts(pdb), artifacts: new Map() }, policy, new ResolutionCache());
    expect(un.frames[0]).toMatchObject({ status: 'failed', cause: 'ARTIFACT_UNATTESTED' });
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
