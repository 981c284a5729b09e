// The trace -> symbol -> artifact -> provenance join (pure; no I/O): from a trace's frames and the
// facts looked up for them (symbol bundles, their loaded symbols, artifacts, evidence status),
// each frame's chain of custody and the join's completeness against the tenant's policy.
// docs/provenance.md "The join".
import type { JoinArtifactRow, SymbolBundleRow } from '../intake/lookup.ts';
import { dsymKey, elfKey, pdbKey } from '../intake/artifacts.ts';
import type { FrameRow } from './frames-store.ts';
import type { CompletenessPolicy } from './policy.ts';
import { frameVaddr, lookupAddress, type LoadedSymbols, type LoadFailure, type ResolutionCache } from './resolve.ts';

export const JOIN_CAUSES = [
  'NO_BUILD_ID',          // a native frame without build-id / PDB GUID+age / dSYM UUID
  'SYMBOLS_MISSING',      // no symbol bundle registered for its key (or its bytes are not in the CAS)
  'SYMBOLS_UNREADABLE',   // the bundle is not a readable ELF / PDB / Mach-O file
  'PDB_AGE_MISMATCH',     // bundles exist for the frame's PDB GUID, but none with its age
  'BUILD_ID_MISMATCH',    // the bundle's bytes carry another key (ELF build-id, PDB GUID+age, dSYM UUID) than the frame's
  'NO_ADDRESS',           // no module offset, and the ip of a relocatable module cannot be placed
  'SYMBOL_NOT_FOUND',     // no symbol covers the address
  'ARTIFACT_UNATTESTED',  // the bundle's artifact has no valid attestation (no artifact row)
] as const;
export type JoinCause = (typeof JOIN_CAUSES)[number];

export type EvidenceStatus = { status: 'sealed'; index: string; segment: string; checkpoint: string; inclusion_proof: string } | { status: 'pending' } | { status: 'unknown' };

/**
 * What a bundle's bytes gave: ELF symbols, or for PDB / dSYM bundles only the verified key (their
 * symbol tables are not read: such frames join to bundle and artifact, not to a function name).
 */
export type SymbolsFact = { ok: true; symbols: LoadedSymbols } | { ok: true; keyOnly: true } | LoadFailure | { ok: false; cause: 'SYMBOLS_MISSING'; detail: string };

export interface JoinFacts {
  /** Symbol key (elfKey / pdbKey / dsymKey) -> bundles registered for it. */
  bundles: ReadonlyMap<string, readonly SymbolBundleRow[]>;
  /** `<bundle_sha256>` -> its loaded symbols or why not. */
  symbols: ReadonlyMap<string, SymbolsFact>;
  /** Artifact sha256 -> its attestations (empty / absent = unattested). */
  artifacts: ReadonlyMap<string, readonly JoinArtifactRow[]>;
  /** Evidence event_id -> where it stands in the tenant's log. */
  evidence: ReadonlyMap<string, EvidenceStatus>;
  /** PDB GUID (32 uppercase hex) -> ages of the tenant's PDB bundles for it (to name PDB_AGE_MISMATCH). */
  pdbAges?: ReadonlyMap<string, readonly number[]>;
}

export interface FrameLink {
  span_id: string; exception_id: string; exception_type: string; frame_index: number; runtime: string;
  function: string; file: string; line: number; module: string;
  ip: string; module_offset: string; build_id: string; pdb_guid: string; pdb_age: number; dsym_uuid: string;
  /** Identity used for the top-N count, and how often it occurs in the trace. */
  key: string;
  count: number;
  status: 'joined' | 'failed' | 'not_native';
  cause?: JoinCause;
  detail?: string;
  symbol?: { name: string; address: string; offset: string };
  /** A joined PDB / dSYM frame: why there is no `symbol` (their symbol tables are not read). */
  symbol_unresolved?: string;
  symbol_bundle?: { sha256: string; kind: string; cas_uri: string; registered_at_unix_nano: string; evidence_event_id: string; evidence: EvidenceStatus };
  artifact?: { sha256: string; subject_name: string; builder_commit: string; compiler: string; flags: string[]; oci_digest: string };
  provenance?: {
    envelope_sha256: string; predicate_type: string; build_type: string; builder_id: string; signer_keyid: string;
    build_finished_on: string; registered_at_unix_nano: string; envelope_cas_uri: string; evidence_event_id: string; evidence: EvidenceStatus;
  };
}

export interface Completeness {
  top_frames: number;
  considered: number;
  joined: number;
  /** joined / considered; null when the trace has no native frames. */
  ratio: number | null;
  min: number;
  gate: 'pass' | 'fail' | 'no_native_frames';
  failed: { key: string; count: number; cause: JoinCause; detail: string }[];
}

export interface ProvenanceReport {
  trace_id: string;
  frames: FrameLink[];
  completeness: Completeness;
}

const hex = (v: string | null): string => (v === null || v === '' ? '' : `0x${BigInt(v).toString(16)}`);

/** The symbol-bundle key a frame joins on: ELF build-id, else PDB GUID+age, else dSYM UUID. */
export function frameSymbolKey(f: Pick<FrameRow, 'build_id' | 'pdb_guid' | 'pdb_age' | 'dsym_uuid'>): { key: string; kind: 'elf' | 'pdb' | 'dsym' } | undefined {
  const elf = f.build_id ? elfKey(f.build_id) : undefined;
  if (elf) return { key: elf, kind: 'elf' };
  const pdb = f.pdb_guid ? pdbKey(f.pdb_guid, f.pdb_age) : undefined;
  if (pdb) return { key: pdb, kind: 'pdb' };
  const dsym = f.dsym_uuid ? dsymKey(f.dsym_uuid) : undefined;
  if (dsym) return { key: dsym, kind: 'dsym' };
  return undefined;
}

export const isNativeFrame = (f: Pick<FrameRow, 'runtime' | 'ip' | 'module_offset'>): boolean => f.runtime === 'native' || f.ip !== null || f.module_offset !== null;

export const frameKey = (f: Pick<FrameRow, 'build_id' | 'pdb_guid' | 'pdb_age' | 'dsym_uuid' | 'module' | 'module_offset' | 'ip'>): string => {
  const k = frameSymbolKey(f)?.key ?? f.module;
  return `${k}@${hex(f.module_offset) || `ip:${hex(f.ip)}`}`;
};

/** Which symbol keys the join needs looked up. */
export function symbolKeysOf(frames: readonly FrameRow[]): { key: string; kind: 'elf' | 'pdb' | 'dsym' }[] {
  const seen = new Map<string, 'elf' | 'pdb' | 'dsym'>();
  for (const f of frames) { if (!isNativeFrame(f)) continue; const k = frameSymbolKey(f); if (k) seen.set(k.key, k.kind); }
  return [...seen].map(([key, kind]) => ({ key, kind }));
}

/** frames.resolved_symbol as the join writes it back: `<name>+0x<offset from the symbol's start>`. */
const STORED_SYMBOL = /^(.+)\+0x([0-9a-f]+)$/s;
export const storedSymbol = (sym: { name: string; offset: string }): string => `${sym.name}+${sym.offset}`;

const evidenceOf = (facts: JoinFacts, eventId: string): EvidenceStatus => facts.evidence.get(eventId) ?? { status: 'unknown' };

type Failure = { status: 'failed'; cause: JoinCause; detail: string };
const fail = (cause: JoinCause, detail: string): Failure => ({ status: 'failed', cause, detail });

/**
 * What every frame with one symbol key shares: the chosen bundle, its artifact's chain of custody,
 * its loaded symbols, or why the chain breaks before the address. Computed once per key of a trace
 * (a trace's frames point into few binaries), so the per-frame work is the address lookup only.
 * The link objects are shared by the frames of that key (the report is read-only).
 */
type LinkPart = Pick<FrameLink, 'status' | 'cause' | 'detail' | 'symbol' | 'symbol_unresolved' | 'symbol_bundle' | 'artifact' | 'provenance'>;
type KeyFacts =
  | { done: LinkPart }
  | { done?: undefined; kind: 'elf' | 'pdb' | 'dsym'; symbols: LoadedSymbols; symbol_bundle: NonNullable<FrameLink['symbol_bundle']>;
      bundleSha: string; artifactSha: string; chain: Pick<FrameLink, 'artifact' | 'provenance'>; attested: boolean };

function keyFacts(sk: { key: string; kind: 'elf' | 'pdb' | 'dsym' }, pdbAge: number, facts: JoinFacts): KeyFacts {
  const bundles = facts.bundles.get(sk.key) ?? [];
  if (bundles.length === 0) {
    const ages = sk.kind === 'pdb' ? facts.pdbAges?.get(sk.key.slice(0, 32)) : undefined;
    if (ages?.length) {
      return { done: fail('PDB_AGE_MISMATCH', `PDB ${sk.key.slice(0, 32)}: the frame's age is ${pdbAge}, the registered bundles have age ${[...new Set(ages)].sort((a, b) => a - b).join(', ')}`) };
    }
    return { done: fail('SYMBOLS_MISSING', `no symbol bundle registered for ${sk.kind} key ${sk.key}`) };
  }
  // Prefer a bundle whose artifact is attested and whose symbols load; otherwise report the first bundle's problem.
  const ranked = [...bundles].sort((a, b) => rank(b) - rank(a) || a.registered_at_unix_nano.localeCompare(b.registered_at_unix_nano) || a.bundle_sha256.localeCompare(b.bundle_sha256));
  function rank(b: SymbolBundleRow): number {
    return ((facts.artifacts.get(b.artifact_sha256)?.length ?? 0) > 0 ? 2 : 0) + (facts.symbols.get(b.bundle_sha256)?.ok ? 1 : 0);
  }
  const bundle = ranked[0]!;
  const symbol_bundle = { sha256: bundle.bundle_sha256, kind: bundle.kind, cas_uri: bundle.cas_uri, registered_at_unix_nano: bundle.registered_at_unix_nano,
    evidence_event_id: bundle.evidence.event_id, evidence: evidenceOf(facts, bundle.evidence.event_id) };
  const attestation = facts.artifacts.get(bundle.artifact_sha256)?.[0];
  const chain = attestation ? {
    artifact: { sha256: attestation.sha256, subject_name: attestation.subject_name, builder_commit: attestation.builder_commit, compiler: attestation.compiler,
      flags: attestation.flags, oci_digest: attestation.oci_digest },
    provenance: { envelope_sha256: attestation.envelope_sha256, predicate_type: attestation.predicate_type, build_type: attestation.build_type,
      builder_id: attestation.builder_id, signer_keyid: attestation.signer_keyid, build_finished_on: attestation.build_finished_on,
      registered_at_unix_nano: attestation.registered_at_unix_nano, envelope_cas_uri: attestation.envelope_cas_uri,
      evidence_event_id: attestation.evidence.event_id, evidence: evidenceOf(facts, attestation.evidence.event_id) },
  } : {};
  const loaded = facts.symbols.get(bundle.bundle_sha256) ?? { ok: false, cause: 'SYMBOLS_MISSING', detail: 'bundle bytes not loaded' };
  if (!loaded.ok) return { done: Object.assign(fail(loaded.cause, loaded.detail), { symbol_bundle }, chain) };
  if (!('symbols' in loaded)) {
    // PDB / dSYM: the key was read from the bytes; the symbol tables are not, so no function name.
    const symbol_unresolved = `${sk.kind === 'pdb' ? 'PDB' : 'Mach-O'} symbol tables are not read: the frame is joined to its bundle and artifact, not to a function`;
    if (!attestation) return { done: Object.assign(fail('ARTIFACT_UNATTESTED', `artifact ${bundle.artifact_sha256} has no valid attestation`), { symbol_unresolved, symbol_bundle }) };
    return { done: Object.assign({ status: 'joined' as const, symbol_unresolved, symbol_bundle }, chain) };
  }
  return { kind: sk.kind, symbols: loaded.symbols, symbol_bundle, bundleSha: bundle.bundle_sha256, artifactSha: bundle.artifact_sha256, chain, attested: attestation !== undefined };
}

function linkFrame(f: FrameRow, k: KeyFacts, cache: ResolutionCache): LinkPart {
  if (k.done) return k.done;
  const { symbol_bundle, chain } = k;
  const vaddr = frameVaddr(k.symbols.elfType, f);
  if (vaddr === undefined) return Object.assign(fail('NO_ADDRESS', 'no module offset, and the module is relocatable (its load bias is unknown)'), { symbol_bundle }, chain);
  // A symbol written back by an earlier query (frames.resolved_symbol, "name+0xoffset") is used as
  // is: the bundle was still checked above, only the lookup is skipped.
  const stored = f.resolved_symbol === '' ? null : STORED_SYMBOL.exec(f.resolved_symbol);
  let symbol: { name: string; address: string; offset: string };
  if (stored) {
    cache.stored++;
    symbol = { name: stored[1]!, address: `0x${vaddr.toString(16)}`, offset: `0x${stored[2]!}` };
  } else {
    const at = lookupAddress(vaddr, f.frame_index);
    const r = cache.resolve(k.symbols, at);
    if (!r) return Object.assign(fail('SYMBOL_NOT_FOUND', `no symbol covers 0x${vaddr.toString(16)}`), { symbol_bundle }, chain);
    // Offset of the frame's own address from the symbol's start (the lookup may have used address - 1).
    symbol = { name: r.symbol, address: `0x${vaddr.toString(16)}`, offset: `0x${(vaddr - (at - r.offset)).toString(16)}` };
  }
  if (!k.attested) return Object.assign(fail('ARTIFACT_UNATTESTED', `artifact ${k.artifactSha} has no valid attestation`), { symbol, symbol_bundle });
  return Object.assign({ status: 'joined' as const, symbol, symbol_bundle }, chain);
}

export function baseOf(f: FrameRow) {
  return {
    span_id: f.span_id, exception_id: f.exception_id, exception_type: f.exception_type, frame_index: f.frame_index, runtime: f.runtime,
    function: f.function, file: f.file, line: f.line, module: f.module, ip: hex(f.ip), module_offset: hex(f.module_offset),
    build_id: f.build_id, pdb_guid: f.pdb_guid, pdb_age: f.pdb_age, dsym_uuid: f.dsym_uuid,
  };
}

/** The per-frame chain of custody and the completeness gate. Deterministic for the same inputs. */
export function assembleJoin(traceId: string, frames: readonly FrameRow[], facts: JoinFacts, policy: CompletenessPolicy, cache: ResolutionCache): ProvenanceReport {
  // Per frame: its key (computed once); per symbol key: what its frames share (keyFacts).
  const keys = frames.map((f) => (isNativeFrame(f) ? frameKey(f) : ''));
  const counts = new Map<string, number>();
  for (const k of keys) if (k !== '') counts.set(k, (counts.get(k) ?? 0) + 1);
  const byKey = new Map<string, KeyFacts>();
  const noBuildId: KeyFacts = { done: fail('NO_BUILD_ID', 'the frame carries no build-id, PDB GUID+age or dSYM UUID') };
  const links: FrameLink[] = frames.map((f, i) => {
    // Object.assign, not object spread: spreading these ~20-field objects is ~20x slower here (measured, bench:provenance).
    if (keys[i] === '') return Object.assign(baseOf(f), { key: '', count: 0, status: 'not_native' as const });
    const key = keys[i]!;
    const sk = frameSymbolKey(f);
    let k: KeyFacts = noBuildId;
    if (sk) {
      // PDB_AGE_MISMATCH names the frame's age, which is part of the PDB key: one entry per key is exact.
      const found = byKey.get(sk.key);
      if (found) k = found; else { k = keyFacts(sk, f.pdb_age, facts); byKey.set(sk.key, k); }
    }
    return Object.assign(baseOf(f), { key, count: counts.get(key)! }, linkFrame(f, k, cache));
  });
  // Top-N distinct native frames by occurrence, ties by key (deterministic).
  const firstOf = new Map<string, FrameLink>();
  for (const l of links) if (l.status !== 'not_native' && !firstOf.has(l.key)) firstOf.set(l.key, l);
  const top = [...firstOf.values()].sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).slice(0, policy.topFrames);
  const joined = top.filter((l) => l.status === 'joined').length;
  const ratio = top.length === 0 ? null : joined / top.length;
  return {
    trace_id: traceId,
    frames: links,
    completeness: {
      top_frames: policy.topFrames, considered: top.length, joined, ratio, min: policy.minCompleteness,
      gate: ratio === null ? 'no_native_frames' : ratio >= policy.minCompleteness ? 'pass' : 'fail',
      failed: top.filter((l) => l.status === 'failed').map((l) => ({ key: l.key, count: l.count, cause: l.cause!, detail: l.detail ?? '' })),
    },
  };
}
