// The join's I/O shell: reads a trace's frames, the symbol bundles and artifacts they point at
// (tenant-scoped lookups), the bundles' bytes from the tenant's CAS and the evidence status of each
// registration, then hands everything to the pure assembleJoin(). Loaded symbol tables and
// (bundle, address) results are cached in memory across requests.
import type { BlobStore } from '../../lib/cas.ts';
import { CasIntegrityError } from '../../lib/cas.ts';
import { counter, histogram } from '../../lib/metrics.ts';
import { logger } from '../../lib/log.ts';
import type { Store } from '../../lib/store/index.ts';
import { lookupBundlesWithArtifacts, pdbAgesByGuid, type SymbolBundleRow } from '../intake/lookup.ts';
import { framesOfTrace, writeBackResolved, type FrameRow } from './frames-store.ts';
import { assembleJoin, storedSymbol, symbolKeysOf, type EvidenceStatus, type JoinFacts, type ProvenanceReport, type SymbolsFact } from './join.ts';
import type { CompletenessPolicy } from './policy.ts';
import { loadElfSymbols, loadKeyOnly, ResolutionCache } from './resolve.ts';
import { IdleWriteBack, type IdleWriteBackOptions, type WriteBackUpdate } from './writeback.ts';
import { buildReplayManifest, manifestDigest, type ReplayManifest } from './replay.ts';
import { forTenant } from '../../lib/store/index.ts';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../lib/paths.ts';

const log = logger('provenance');
const VERIFIER_VERSION = `stella-telemetry ${(JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version}`;

const completenessRatio = histogram('stella_provenance_join_completeness_ratio', 'Join completeness of provenance queries (share of the top-N native frames joined to an attested artifact)',
  [], [0, 0.5, 0.8, 0.9, 0.95, 0.99, 1]);
const gateTotal = counter('stella_provenance_gate_total', 'Provenance queries by completeness gate outcome', ['gate']);
const writeBackTotal = counter('stella_provenance_resolved_writeback_total', 'Frame rows whose resolved symbol the join wrote back to frames.resolved_symbol', ['outcome']);
const frameTotal = counter('stella_provenance_frames_total', 'Frames joined by provenance queries, by outcome', ['status', 'cause']);

export interface ProvenanceDeps {
  store: Store;
  cas: BlobStore;
  policy: (tenant: string) => CompletenessPolicy;
  /** Where an evidence event stands (api/evidence-routes.ts createEvidenceLinks); absent: status "unknown". */
  evidenceLinks?: (tenant: string, event: { event_id: string }) => Promise<Record<string, string>>;
  /** Loaded symbol tables kept (LRU by insertion), default 256. */
  maxLoadedBundles?: number;
  /** When the resolved-symbol write-back runs (writeback.ts): only between queries, bounded. */
  writeBack?: IdleWriteBackOptions;
}

export class ProvenanceService {
  readonly resolutions = new ResolutionCache();
  private readonly loaded = new Map<string, SymbolsFact>();

  /**
   * frames.resolved_symbol written back where it differs from what a query resolved, so the
   * column holds the symbol for readers of the table. Never on a query's path: written only while
   * no query runs (one chdb session: an insert delays the next query), bounded (writeback.ts).
   */
  private readonly writeBack: IdleWriteBack;

  constructor(private readonly deps: ProvenanceDeps) {
    this.writeBack = new IdleWriteBack((tenant, updates) => writeBackResolved(this.deps.store, tenant, updates), deps.writeBack, {
      written: (n) => writeBackTotal.inc({ outcome: 'written' }, n),
      dropped: (n) => writeBackTotal.inc({ outcome: 'dropped' }, n),
      failed: (tenant, n, err) => { writeBackTotal.inc({ outcome: 'failed' }, n); log.warn({ tenant_id: tenant, rows: n, err: err.message }, 'resolved symbol write-back failed'); },
    });
  }

  /** Frame rows written back with their resolved symbol so far. */
  get writtenBack(): number { return this.writeBack.written; }
  /** Frames queued for the write-back (waiting for a pause between queries). */
  get writeBackPending(): number { return this.writeBack.pendingCount; }

  async traceProvenance(tenant: string, traceId: string): Promise<ProvenanceReport> {
    const end = this.writeBack.queryStarted();
    try {
      const frames = await framesOfTrace(this.deps.store, tenant, traceId);
      const report = await this.joinFrames(tenant, traceId, frames);
      const updates: WriteBackUpdate[] = [];
      report.frames.forEach((l, i) => { if (l.symbol && frames[i]!.resolved_symbol !== storedSymbol(l.symbol)) updates.push({ frame: frames[i]!, resolved_symbol: storedSymbol(l.symbol) }); });
      if (updates.length) this.writeBack.add(tenant, updates);
      return report;
    } finally {
      end();
    }
  }

  /** Writes every queued write-back now (tests, shutdown). */
  async flushWriteBacks(): Promise<void> { await this.writeBack.flush(); }

  /** The join over given frames (the audit bundle passes the frames of the trace's sealed records). */
  async joinFrames(tenant: string, traceId: string, frames: readonly FrameRow[]): Promise<ProvenanceReport> {
    const keys = symbolKeysOf(frames);
    // Bundles and their artifacts' attestations in one round trip (lookupBundlesWithArtifacts).
    const { bundles, artifacts } = await lookupBundlesWithArtifacts(this.deps.store, tenant, keys);
    const allBundles = [...bundles.values()].flat();
    const symbols = new Map<string, SymbolsFact>();
    await Promise.all(allBundles.map(async (b) => { symbols.set(b.bundle_sha256, await this.symbolsOf(tenant, b)); }));
    // PDB keys that found no bundle: are there bundles for the same GUID with another age?
    const pdbMisses = keys.filter((k) => k.kind === 'pdb' && bundles.get(k.key)?.length === 0).map((k) => [k.key] as const);
    const pdbAges = pdbMisses.length ? await pdbAgesByGuid(this.deps.store, tenant, pdbMisses.map(([k]) => k.slice(0, 32))) : new Map<string, number[]>();
    const evidence = new Map<string, EvidenceStatus>();
    const eventIds = new Set([...allBundles.map((b) => b.evidence.event_id), ...[...artifacts.values()].flat().map((a) => a.evidence.event_id)]);
    await Promise.all([...eventIds].map(async (id) => { evidence.set(id, await this.evidenceOf(tenant, id)); }));
    const facts: JoinFacts = { bundles, symbols, artifacts, evidence, pdbAges };
    const report = assembleJoin(traceId, frames, facts, this.deps.policy(tenant), this.resolutions);
    if (report.completeness.ratio !== null) completenessRatio.observe(report.completeness.ratio);
    gateTotal.inc({ gate: report.completeness.gate });
    for (const f of report.frames) frameTotal.inc({ status: f.status, cause: f.cause ?? '' });
    return report;
  }

  /**
   * The trace's replay manifest (buildReplayManifest over the join and the resource attributes of
   * the span whose frame it is of), stored in `replays` (idempotent). Undefined: no such trace.
   */
  async replayManifest(tenant: string, traceId: string, joined?: ProvenanceReport): Promise<{ manifest: ReplayManifest; sha256: string } | undefined> {
    const report = joined ?? await this.traceProvenance(tenant, traceId);
    const span = report.frames.find((f) => f.status === 'joined')?.span_id ?? report.frames[0]?.span_id ?? '';
    const scoped = forTenant(this.deps.store, tenant);
    const res = await scoped.scopedRows<{ ResourceAttributes: Record<string, string> }>(`SELECT ResourceAttributes FROM otel_traces
      WHERE TenantId = {tenant:String} AND TraceId = {trace:String} ORDER BY SpanId = {span:String} DESC, Timestamp LIMIT 1`, { trace: traceId, span });
    if (report.frames.length === 0 && res.length === 0) return undefined;
    const manifest = buildReplayManifest(report, res[0]?.ResourceAttributes ?? {}, VERIFIER_VERSION);
    const { bytes, sha256 } = manifestDigest(manifest);
    await this.deps.store.insertRows('replays', [{ tenant_id: tenant, trace_id: traceId, manifest_sha256: sha256, manifest: bytes.toString('utf8'),
      missing_fields: manifest.missing.map((m) => m.field) }]);
    return { manifest, sha256 };
  }

  private async symbolsOf(tenant: string, b: SymbolBundleRow): Promise<SymbolsFact> {
    const key = `${tenant}/${b.bundle_sha256}`;
    const hit = this.loaded.get(key);
    if (hit) return hit;
    let bytes: Buffer | undefined;
    try {
      bytes = await this.deps.cas.get(tenant, `sha256:${b.bundle_sha256}`);
    } catch (e) {
      if (e instanceof CasIntegrityError) return { ok: false, cause: 'SYMBOLS_UNREADABLE', detail: 'the stored bundle bytes do not match their digest' };
      throw e;
    }
    // Not cached: the bytes may still arrive.
    if (!bytes) return { ok: false, cause: 'SYMBOLS_MISSING', detail: `bundle sha256:${b.bundle_sha256} is not in the tenant's CAS` };
    const fact: SymbolsFact = b.kind === 'elf' ? loadElfSymbols(bytes, b.build_id || b.symbol_key, key) : loadKeyOnly(b.kind, bytes, b.symbol_key);
    this.loaded.set(key, fact);
    const max = this.deps.maxLoadedBundles ?? 256;
    while (this.loaded.size > max) this.loaded.delete(this.loaded.keys().next().value!);
    return fact;
  }

  private async evidenceOf(tenant: string, eventId: string): Promise<EvidenceStatus> {
    if (!this.deps.evidenceLinks) return { status: 'unknown' };
    const l = await this.deps.evidenceLinks(tenant, { event_id: eventId });
    if (l.status === 'sealed') return { status: 'sealed', index: l.index ?? '', segment: l.segment ?? '', checkpoint: l.checkpoint ?? '', inclusion_proof: l.inclusion_proof ?? '' };
    return { status: 'pending' };
  }
}

