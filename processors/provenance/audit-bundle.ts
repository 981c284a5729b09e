// Audit bundles (pure; no I/O): the provenance section of a trace's evidence bundle
// (`stella forensic snapshot create --scope trace --id T --with-provenance`) and its offline
// verification. docs/provenance.md "Audit bundles", docs/evidence.md (causes 29-38; the log's hash tiles: bundle-tiles.ts, 39).
//
// Files (all listed with their SHA-256 in manifest.provenance.files):
//   provenance/frames.json                 the trace's frames, re-derivable from the bundled clean records
//   provenance/join.json                   the join report (per-frame chain of custody, completeness)
//   provenance/symbols.json                the symbol bundle references, each a sealed symbols.registered entry
//   provenance/artifacts.json              the attested artifacts, each a sealed artifact.registered entry
//   provenance/envelopes/<sha256>.dsse.json  the DSSE provenance envelope of each artifact (canonical JSON, as accepted at intake)
//   provenance/symbols/<sha256>.bin        (--with-symbol-bytes) the symbol bundles' bytes
//   provenance/replay-manifest.json        the trace's replay manifest
//
// What is verified, and against what: frames are recomputed from the clean records (whose bytes the
// log committed to); symbol references and artifacts must equal the registrations sealed in the
// tenant's log (entries with inclusion proofs in the same bundle); envelopes are verified with the
// intake keys pinned in the trust root (never a key the bundle carries), their subject must be the
// artifact, and their canonical bytes must hash to the digest the sealed registration names; each
// joined frame's chain must follow from those verified facts (with symbol bytes, its symbol is
// re-resolved from them); completeness is recomputed and gated by the trust root's policy.
import { readBuildId } from '../../lib/elf.ts';
import { IntakeTrust } from '../../lib/intake/trust.ts';
import { decodeLogs, decodeTraces } from '../../lib/otlp/proto.ts';
import type { Row } from '../../lib/store/index.ts';
import { VerifyFailure, type VerifyCause } from '../evidence/causes.ts';
import { sha256Hex } from '../evidence/hash.ts';
import { canonicalBytes, canonicalize } from '../evidence/jcs.ts';
import type { TrustRoot } from '../evidence/trust-root.ts';
import type { TarFile } from '../evidence/tar.ts';
import { validateArtifact } from '../intake/artifacts.ts';
import { ARTIFACT_REGISTERED, SYMBOLS_REGISTERED } from '../intake/artifact-records.ts';
import { frameRowsFromLogs, frameRowsFromSpans } from '../timeline/frames.ts';
import type { FrameRow } from './frames-store.ts';
import { baseOf, frameKey, frameSymbolKey, isNativeFrame, type FrameLink, type ProvenanceReport } from './join.ts';
import { DEFAULT_POLICY, type CompletenessPolicy } from './policy.ts';
import { frameVaddr, loadElfSymbols, lookupAddress, ResolutionCache } from './resolve.ts';
import type { ReplayManifest } from './replay.ts';

export const AUDIT_FORMAT = 'stella-telemetry.example/audit-bundle/v1';
export type RecordSignal = 'traces' | 'logs';

export interface AuditSection {
  format: typeof AUDIT_FORMAT;
  trace_id: string;
  /** The clean records the frames come from: log entry index and OTLP signal to decode it as. */
  records: { index: number; signal: RecordSignal }[];
  with_symbol_bytes: boolean;
  files: { path: string; sha256: string }[];
}

export interface SymbolRef {
  entry_index: number; event_id: string; bundle_sha256: string; kind: string; symbol_key: string; build_id: string;
  artifact_sha256: string; cas_uri: string; size: number;
}
export interface ArtifactRef {
  entry_index: number; event_id: string; sha256: string; envelope_sha256: string; builder_commit: string; compiler: string;
  flags: string[]; oci_digest: string;
}

export const P = {
  frames: 'provenance/frames.json',
  join: 'provenance/join.json',
  symbols: 'provenance/symbols.json',
  artifacts: 'provenance/artifacts.json',
  replay: 'provenance/replay-manifest.json',
  envelope: (sha: string) => `provenance/envelopes/${sha}.dsse.json`,
  symbolBytes: (sha: string) => `provenance/symbols/${sha}.bin`,
};

// ---- frames from records (shared by the server and the verifier) ----------------------------

const nsOfDateTime64 = (t: string): string => {
  const [secs, frac = '0'] = t.split('.');
  return (BigInt(Date.parse(`${secs!.replace(' ', 'T')}Z`) / 1000) * 1_000_000_000n + BigInt(frac.padEnd(9, '0'))).toString();
};

function frameOfRow(r: Row): FrameRow {
  return {
    trace_id: r.trace_id as string, span_id: r.span_id as string, source: r.source as string, exception_id: r.exception_id as string,
    service_name: r.service_name as string, exception_type: r.exception_type as string, runtime: r.runtime as string, frame_index: r.frame_index as number,
    function: r.function as string, module: r.module as string, file: r.file as string, line: r.line as number, column: r.column as number,
    ip: (r.ip as string | null) ?? null, module_offset: (r.module_offset as string | null) ?? null, build_id: r.build_id as string,
    pdb_guid: r.pdb_guid as string, pdb_age: r.pdb_age as number, dsym_uuid: r.dsym_uuid as string, resolved_symbol: '',
    ts_unix_nano: nsOfDateTime64(r.ts as string),
  };
}

/**
 * The frames of `traceId` in the given clean records, as the timeline processor extracts them,
 * in the frames table's read order (span, time, exception, frame) with redelivered duplicates once.
 */
export function framesFromRecords(records: readonly { signal: RecordSignal; bytes: Uint8Array }[], tenant: string, traceId: string): FrameRow[] {
  const byKey = new Map<string, FrameRow>();
  for (const r of records) {
    let rows: Row[];
    try { rows = r.signal === 'traces' ? frameRowsFromSpans(decodeTraces(r.bytes), tenant) : frameRowsFromLogs(decodeLogs(r.bytes), tenant); } catch { continue; }
    for (const row of rows) {
      if (row.trace_id !== traceId) continue;
      const f = frameOfRow(row);
      byKey.set(`${f.span_id}\n${f.ts_unix_nano}\n${f.exception_id}\n${f.frame_index}`, f);
    }
  }
  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return [...byKey.values()].sort((a, b) => cmp(a.span_id, b.span_id) || (BigInt(a.ts_unix_nano) < BigInt(b.ts_unix_nano) ? -1 : BigInt(a.ts_unix_nano) > BigInt(b.ts_unix_nano) ? 1 : 0)
    || cmp(a.exception_id, b.exception_id) || a.frame_index - b.frame_index);
}

/** The OTLP signal of a clean topic, by its name (otlp_spans_clean, otlp_logs_clean, …); undefined: not a trace/log topic. */
export function signalOfTopic(topic: string): RecordSignal | undefined {
  if (/span|trace/i.test(topic)) return 'traces';
  if (/log/i.test(topic)) return 'logs';
  return undefined;
}

// ---- building -------------------------------------------------------------------------------

export interface AuditInputs {
  traceId: string;
  records: { index: number; signal: RecordSignal }[];
  frames: FrameRow[];
  report: ProvenanceReport;
  symbols: SymbolRef[];
  artifacts: ArtifactRef[];
  /** envelope sha256 -> its canonical JSON bytes (what the sealed registration digests). */
  envelopes: ReadonlyMap<string, Uint8Array>;
  /** bundle sha256 -> bytes; present only with --with-symbol-bytes. */
  symbolBytes?: ReadonlyMap<string, Uint8Array>;
  replay: ReplayManifest;
}

const byString = <T>(f: (x: T) => string) => (a: T, b: T): number => (f(a) < f(b) ? -1 : f(a) > f(b) ? 1 : 0);

/** The provenance files and manifest section of an audit bundle. Same inputs, same bytes. */
export function auditFiles(x: AuditInputs): { files: TarFile[]; section: AuditSection } {
  const files: TarFile[] = [
    { path: P.frames, bytes: canonicalBytes(x.frames) },
    { path: P.join, bytes: canonicalBytes(x.report) },
    { path: P.symbols, bytes: canonicalBytes([...x.symbols].sort(byString((s) => s.bundle_sha256))) },
    { path: P.artifacts, bytes: canonicalBytes([...x.artifacts].sort(byString((a) => `${a.sha256}/${a.envelope_sha256}`))) },
    { path: P.replay, bytes: canonicalBytes(x.replay) },
  ];
  for (const [sha, b] of x.envelopes) files.push({ path: P.envelope(sha), bytes: Buffer.from(b) });
  for (const [sha, b] of x.symbolBytes ?? []) files.push({ path: P.symbolBytes(sha), bytes: Buffer.from(b) });
  files.sort(byString((f) => f.path));
  return {
    files,
    section: {
      format: AUDIT_FORMAT, trace_id: x.traceId, records: [...x.records].sort((a, b) => a.index - b.index), with_symbol_bytes: !!x.symbolBytes,
      files: files.map((f) => ({ path: f.path, sha256: sha256Hex(f.bytes) })),
    },
  };
}

// ---- verification ---------------------------------------------------------------------------

export interface AuditVerifyContext {
  files: ReadonlyMap<string, Uint8Array>;
  tenant: string;
  trustRoot: TrustRoot | undefined;
  /** Entry bytes of the bundle's (already proven) entries by index. */
  entry: (index: number) => Uint8Array | undefined;
  /** The clean-batch entries whose records the bundle carries (already checked against their entries). */
  recordIndices: readonly number[];
  /** Registers a provenance file as listed and returns its bytes (its digest is compared with the others at the end). */
  checkListed: (path: string, sha256: string, missing: VerifyCause) => Uint8Array;
}

export interface AuditVerified {
  traceId: string;
  frames: number;
  joined: number;
  considered: number;
  ratio: number | null;
  policy: CompletenessPolicy;
  envelopes: number;
  symbolBytes: boolean;
}

const fail = (cause: VerifyCause, detail: string): never => { throw new VerifyFailure(cause, detail); };

function json<T>(b: Uint8Array, what: string): T {
  try { return JSON.parse(Buffer.from(b).toString('utf8')) as T; } catch { return fail('BUNDLE_CORRUPT', `${what} is not JSON`); }
}

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** The sealed registration event at `index`, checked to be a `kind` event of `tenant` with `eventId`. */
function sealedEvent(ctx: AuditVerifyContext, index: number, kind: string, eventId: string, cause: VerifyCause): Record<string, unknown> {
  const b = ctx.entry(index) ?? fail(cause, `entry ${index} (a ${kind} registration) is not in the bundle with an inclusion proof`);
  let e: unknown;
  try { e = JSON.parse(Buffer.from(b).toString('utf8')); } catch { return fail(cause, `entry ${index} is not a timeline event`); }
  if (!isObj(e) || e.kind !== kind || e.tenant_id !== ctx.tenant || e.event_id !== eventId || !isObj(e.details)) {
    return fail(cause, `entry ${index} is not tenant ${ctx.tenant}'s ${kind} event ${eventId}`);
  }
  return e.details;
}

const same = (a: unknown, b: unknown): boolean => canonicalize(a) === canonicalize(b);

/** Verify the provenance section of an audit bundle; throws VerifyFailure with a named cause. */
export function verifyAuditSection(ctx: AuditVerifyContext, s: AuditSection): AuditVerified {
  if (!isObj(s) || s.format !== AUDIT_FORMAT || typeof s.trace_id !== 'string' || !/^[0-9a-f]{32}$/.test(s.trace_id) || !Array.isArray(s.records)
    || !Array.isArray(s.files) || typeof s.with_symbol_bytes !== 'boolean') fail('BUNDLE_CORRUPT', `manifest provenance section is not ${AUDIT_FORMAT}`);
  const pinned = ctx.trustRoot?.intake_keys ?? [];
  if (pinned.length === 0) {
    fail('PROVENANCE_KEY_UNTRUSTED', `${ctx.trustRoot ? `the trust root of tenant ${ctx.trustRoot.tenant}` : 'no trust root'} pins no intake keys, so no provenance envelope can be believed; `
      + 'export the trust root with the tenant\'s intake keys configured (intake.trust) and verify with --trust');
  }
  const listedPaths = new Map(s.files.map((f) => [f.path, f.sha256]));
  if (listedPaths.size !== s.files.length || s.files.some((f) => typeof f.path !== 'string' || !f.path.startsWith('provenance/'))) fail('MANIFEST_MISMATCH', 'the provenance section lists a file twice or outside provenance/');
  const read = (p: string, missing: VerifyCause): Uint8Array => {
    const sha = listedPaths.get(p) ?? fail(missing, `${p} is not in the bundle's provenance section`);
    return ctx.checkListed(p, sha, missing);
  };
  for (const f of s.files) read(f.path, 'MANIFEST_MISMATCH');

  // 1. Frames: exactly what the timeline processor extracts from the sealed clean records.
  const recordSet = new Set(ctx.recordIndices);
  const sectionSet = new Set(s.records.map((r) => r.index));
  if (sectionSet.size !== recordSet.size || [...recordSet].some((i) => !sectionSet.has(i))) {
    fail('FRAME_MISMATCH', `the provenance section derives frames from records ${[...sectionSet].join(',')} but the bundle carries records ${[...recordSet].join(',')}`);
  }
  const derived = framesFromRecords(s.records.map((r) => {
    if (r.signal !== 'traces' && r.signal !== 'logs') fail('BUNDLE_CORRUPT', `record ${r.index}: signal must be traces or logs`);
    return { signal: r.signal, bytes: ctx.files.get(`records/${r.index}.binpb`)! };
  }), ctx.tenant, s.trace_id);
  const frames = json<FrameRow[]>(read(P.frames, 'FRAME_MISMATCH'), P.frames);
  if (!Array.isArray(frames)) fail('FRAME_MISMATCH', `${P.frames} is not a list of frames`);
  for (let i = 0; i < Math.max(frames.length, derived.length); i++) {
    if (!same(frames[i], derived[i])) {
      fail('FRAME_MISMATCH', `${P.frames} frame ${i} ${frames[i] ? `(span ${String(frames[i]!.span_id)}, frame_index ${String(frames[i]!.frame_index)})` : '(absent)'} differs from what the sealed clean records hold`
        + `${derived[i] ? `: they give ${derived[i]!.function || derived[i]!.module}@${derived[i]!.module_offset ?? derived[i]!.ip ?? '?'}` : ' (they hold fewer frames)'}`);
    }
  }

  // 2. Symbol references: each one a sealed symbols.registered entry, field for field.
  const symbols = json<SymbolRef[]>(read(P.symbols, 'SYMBOL_REF_MISMATCH'), P.symbols);
  if (!Array.isArray(symbols)) fail('SYMBOL_REF_MISMATCH', `${P.symbols} is not a list`);
  const refByBundle = new Map<string, SymbolRef>();
  for (const r of symbols) {
    if (!isObj(r) || !Number.isSafeInteger(r.entry_index) || typeof r.event_id !== 'string') fail('SYMBOL_REF_MISMATCH', `${P.symbols}: malformed reference`);
    const d = sealedEvent(ctx, r.entry_index, SYMBOLS_REGISTERED, r.event_id, 'SYMBOL_REF_MISMATCH');
    for (const k of ['bundle_sha256', 'kind', 'symbol_key', 'build_id', 'artifact_sha256', 'cas_uri', 'size'] as const) {
      if (!same(d[k], r[k])) fail('SYMBOL_REF_MISMATCH', `symbol bundle reference ${r.bundle_sha256}: ${k} is ${JSON.stringify(r[k])}, the sealed registration (entry ${r.entry_index}) says ${JSON.stringify(d[k])}`);
    }
    refByBundle.set(r.bundle_sha256, r);
  }
  const symbolBytes = new Map<string, Uint8Array>();
  if (s.with_symbol_bytes) {
    for (const r of symbols) {
      const b = read(P.symbolBytes(r.bundle_sha256), 'SYMBOL_BYTES_MISMATCH');
      const got = sha256Hex(b);
      if (got !== r.bundle_sha256) fail('SYMBOL_BYTES_MISMATCH', `${P.symbolBytes(r.bundle_sha256)} hashes to ${got}, not the sealed bundle digest`);
      if (r.kind === 'elf') {
        let id: string | undefined;
        try { id = readBuildId(b); } catch { id = undefined; }
        if (id !== r.build_id) fail('SYMBOL_BYTES_MISMATCH', `${P.symbolBytes(r.bundle_sha256)} has build-id ${id ?? '(none)'}, its registration says ${r.build_id}`);
      }
      symbolBytes.set(r.bundle_sha256, b);
    }
  }

  // 3. Artifacts: the sealed registration, and its envelope verified with the pinned intake keys.
  const artifacts = json<ArtifactRef[]>(read(P.artifacts, 'PROVENANCE_MISMATCH'), P.artifacts);
  if (!Array.isArray(artifacts)) fail('PROVENANCE_MISMATCH', `${P.artifacts} is not a list`);
  const trust = new IntakeTrust({ [ctx.tenant]: { keys: pinned.map((k) => ({ keyid: k.keyid, publicKey: k.public_key })) } });
  const verified = new Map<string, { ref: ArtifactRef; facts: ReturnType<typeof attested> }>();
  function attested(a: ArtifactRef, envelope: unknown) {
    const v = trust.verifyIntakeEnvelope(envelope, ctx.tenant);
    if (!v.ok) {
      const untrusted = /unknown keyid|no intake trust keys/.test(v.reason);
      fail(untrusted ? 'PROVENANCE_KEY_UNTRUSTED' : 'PROVENANCE_SIGNATURE_INVALID', `${P.envelope(a.envelope_sha256)} (artifact ${a.sha256}): ${v.reason}${untrusted ? ' (keys pinned in the trust root\'s intake_keys)' : ''}`);
    }
    const r = validateArtifact(ctx.tenant, { sha256: a.sha256, builder_commit: a.builder_commit, compiler: a.compiler, flags: a.flags,
      ...(a.oci_digest ? { oci_digest: a.oci_digest } : {}), provenance: envelope }, trust.verifyIntakeEnvelope);
    if (!r.ok) return fail(r.reason === 'SUBJECT_DIGEST_MISMATCH' ? 'PROVENANCE_SUBJECT_MISMATCH' : 'PROVENANCE_MISMATCH', `${P.envelope(a.envelope_sha256)} (artifact ${a.sha256}): ${r.reason}: ${r.message}`);
    return r.artifact;
  }
  for (const a of artifacts) {
    if (!isObj(a) || !Number.isSafeInteger(a.entry_index) || typeof a.event_id !== 'string' || typeof a.envelope_sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(a.envelope_sha256)) {
      fail('PROVENANCE_MISMATCH', `${P.artifacts}: malformed artifact`);
    }
    const d = sealedEvent(ctx, a.entry_index, ARTIFACT_REGISTERED, a.event_id, 'PROVENANCE_MISSING');
    for (const k of ['sha256', 'envelope_sha256', 'builder_commit', 'compiler', 'flags', 'oci_digest'] as const) {
      if (!same(d[k], a[k])) fail('PROVENANCE_MISMATCH', `artifact ${a.sha256}: ${k} is ${JSON.stringify(a[k])}, the sealed registration (entry ${a.entry_index}) says ${JSON.stringify(d[k])}`);
    }
    const envBytes = listedPaths.has(P.envelope(a.envelope_sha256)) ? read(P.envelope(a.envelope_sha256), 'PROVENANCE_MISSING')
      : fail('PROVENANCE_MISSING', `the DSSE envelope of artifact ${a.sha256} (sha256 ${a.envelope_sha256}) is not in the bundle`);
    const facts = attested(a, json<unknown>(envBytes, P.envelope(a.envelope_sha256)));
    // The sealed registration committed to the envelope's canonical bytes: a different (even validly signed) envelope is not it.
    if (facts.envelope_sha256 !== a.envelope_sha256) fail('PROVENANCE_MISMATCH', `${P.envelope(a.envelope_sha256)} is not the envelope the sealed registration names (its canonical form hashes to ${facts.envelope_sha256})`);
    if (d.signer_keyid !== facts.signer_keyid) fail('PROVENANCE_MISMATCH', `artifact ${a.sha256}: sealed as signed by ${String(d.signer_keyid)}, the envelope verifies as ${facts.signer_keyid}`);
    verified.set(a.sha256, { ref: a, facts });
  }

  // 4. The join: every joined frame's chain follows from the verified facts.
  const report = json<ProvenanceReport>(read(P.join, 'JOIN_MISMATCH'), P.join);
  if (!isObj(report) || report.trace_id !== s.trace_id || !Array.isArray(report.frames) || report.frames.length !== frames.length) {
    fail('JOIN_MISMATCH', `${P.join} is not the join of trace ${s.trace_id}'s ${frames.length} frames`);
  }
  const counts = new Map<string, number>();
  for (const f of frames) if (isNativeFrame(f)) counts.set(frameKey(f), (counts.get(frameKey(f)) ?? 0) + 1);
  const cache = new ResolutionCache();
  const statusOf = new Map<string, FrameLink['status']>();
  report.frames.forEach((l, i) => {
    const f = frames[i]!;
    const at = `${P.join} frame ${i} (span ${f.span_id}, frame_index ${f.frame_index})`;
    // Every frame field the report shows (ip, offset, module, function, …) is the derived frame's.
    const base = baseOf(f);
    for (const [k, v] of Object.entries(base)) if (!same((l as unknown as Record<string, unknown>)[k], v)) fail('JOIN_MISMATCH', `${at}: ${k} is ${JSON.stringify((l as unknown as Record<string, unknown>)[k])}, ${P.frames} says ${JSON.stringify(v)}`);
    const native = isNativeFrame(f);
    if (native && (l.key !== frameKey(f) || l.count !== counts.get(frameKey(f)))) fail('JOIN_MISMATCH', `${at}: key/count ${l.key}×${l.count} are not the frame's (${frameKey(f)}×${counts.get(frameKey(f)) ?? 0})`);
    if (native !== (l.status !== 'not_native')) fail('JOIN_MISMATCH', `${at}: status ${l.status} for a ${native ? 'native' : 'non-native'} frame`);
    if (native) statusOf.set(frameKey(f), l.status);
    if (l.status !== 'joined') return;
    const sk = frameSymbolKey(f);
    const ref = refByBundle.get(l.symbol_bundle?.sha256 ?? '');
    if (!sk || !ref || ref.symbol_key !== sk.key) fail('JOIN_MISMATCH', `${at} is joined to symbol bundle ${l.symbol_bundle?.sha256 ?? '(none)'}, which is no sealed registration for its key ${sk?.key ?? '(none)'}`);
    if (l.symbol_bundle!.evidence_event_id !== ref!.event_id) fail('JOIN_MISMATCH', `${at}: the symbol bundle's evidence event is not its sealed registration`);
    // Where the report says the registrations were sealed must be where the bundle proves them.
    for (const [ev, idx] of [[l.symbol_bundle!.evidence, ref!.entry_index], [l.provenance?.evidence, verified.get(ref!.artifact_sha256)?.ref.entry_index]] as const) {
      if (ev?.status === 'sealed' && ev.index !== String(idx)) fail('JOIN_MISMATCH', `${at}: says a registration is log entry ${ev.index}; the bundle proves it at ${String(idx)}`);
    }
    const art = verified.get(ref!.artifact_sha256);
    if (!art || l.artifact?.sha256 !== ref!.artifact_sha256) fail('JOIN_MISMATCH', `${at} claims artifact ${l.artifact?.sha256 ?? '(none)'}; bundle ${ref!.bundle_sha256} is registered for ${ref!.artifact_sha256}${art ? '' : ', which has no verified provenance in the bundle'}`);
    const a = art!.facts;
    const want = { artifact: { sha256: a.sha256, subject_name: a.subject_name, builder_commit: a.builder_commit, compiler: a.compiler, flags: a.flags, oci_digest: a.oci_digest },
      provenance: { envelope_sha256: a.envelope_sha256, predicate_type: a.predicate_type, build_type: a.build_type, builder_id: a.builder_id,
        signer_keyid: a.signer_keyid, build_finished_on: a.build_finished_on, evidence_event_id: art!.ref.event_id } };
    if (!same(l.artifact, want.artifact)) fail('JOIN_MISMATCH', `${at}: the artifact link differs from the verified provenance`);
    const p = l.provenance as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(want.provenance)) if (!p || !same(p[k], v)) fail('JOIN_MISMATCH', `${at}: provenance.${k} differs from the verified envelope`);
    const bytes = symbolBytes.get(ref!.bundle_sha256);
    if (bytes && ref!.kind === 'elf') {
      const loaded = loadElfSymbols(bytes, ref!.build_id, `audit/${ref!.bundle_sha256}`);
      const vaddr = loaded.ok ? frameVaddr(loaded.symbols.elfType, f) : undefined;
      const r = loaded.ok && vaddr !== undefined ? cache.resolve(loaded.symbols, lookupAddress(vaddr, f.frame_index)) : undefined;
      if (!r || r.symbol !== l.symbol?.name) fail('JOIN_MISMATCH', `${at} names symbol ${l.symbol?.name ?? '(none)'}; the bundled symbol bytes resolve it to ${r?.symbol ?? 'nothing'}`);
    }
  });

  // 5. Completeness, recomputed over the frames and gated by the pinned policy (never the bundle's).
  const pp = ctx.trustRoot?.provenance_policy;
  const policy: CompletenessPolicy = pp ? { topFrames: pp.top_frames, minCompleteness: pp.min_completeness } : DEFAULT_POLICY;
  const top = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).slice(0, policy.topFrames);
  const joined = top.filter(([k]) => statusOf.get(k) === 'joined').length;
  const ratio = top.length === 0 ? null : joined / top.length;
  if (ratio !== null && ratio < policy.minCompleteness) {
    const failed = top.filter(([k]) => statusOf.get(k) !== 'joined').map(([k]) => k);
    fail('JOIN_INCOMPLETE', `${joined} of the top ${top.length} native frames join to attested provenance (${(ratio * 100).toFixed(1)}%), below the trust root's minimum ${(policy.minCompleteness * 100).toFixed(1)}%; not joined: ${failed.slice(0, 10).join(', ')}`);
  }

  // 6. The replay manifest's build facts are those of a verified joined frame.
  const replay = json<ReplayManifest>(read(P.replay, 'JOIN_MISMATCH'), P.replay);
  if (!isObj(replay) || replay.trace_id !== s.trace_id) fail('JOIN_MISMATCH', `${P.replay} is not trace ${s.trace_id}'s replay manifest`);
  if (replay.artifact_sha256 !== null) {
    const art = verified.get(replay.artifact_sha256) ?? fail('JOIN_MISMATCH', `${P.replay} names artifact ${replay.artifact_sha256}, which has no verified provenance in the bundle`);
    const ref = replay.symbol_bundle_sha256 === null ? undefined : refByBundle.get(replay.symbol_bundle_sha256);
    if ((replay.symbol_bundle_sha256 !== null && (!ref || ref.artifact_sha256 !== art.facts.sha256 || replay.build_id !== ref.build_id))
      || replay.compiler !== art.facts.compiler || !same(replay.compiler_flags, art.facts.flags) || (replay.dsse_envelope && replay.dsse_envelope.sha256 !== art.facts.envelope_sha256)) {
      fail('JOIN_MISMATCH', `${P.replay}: its build facts are not those of the verified artifact ${art.facts.sha256}`);
    }
  }

  return { traceId: s.trace_id, frames: frames.length, joined, considered: top.length, ratio, policy, envelopes: verified.size, symbolBytes: s.with_symbol_bytes };
}
