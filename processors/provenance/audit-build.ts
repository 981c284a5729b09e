// The I/O shell of an audit bundle's provenance section (the pure parts are audit-bundle.ts): the
// frames of the trace's sealed clean records, their join (ProvenanceService), the sealed
// registrations the join relies on (read back from the log: the bundle carries what was sealed,
// not what ClickHouse says now), the provenance envelopes, optionally the symbol bytes, and the
// replay manifest. Called by POST /evidence/snapshot with `with_provenance`.
import type { BlobStore } from '../../lib/cas.ts';
import type { Store } from '../../lib/store/index.ts';
import { sha256Hex } from '../evidence/hash.ts';
import type { TarFile } from '../evidence/tar.ts';
import { lookupArtifact } from '../intake/lookup.ts';
import { auditFiles, framesFromRecords, signalOfTopic, type ArtifactRef, type AuditSection, type RecordSignal, type SymbolRef } from './audit-bundle.ts';
import type { ProvenanceService } from './service.ts';

export interface AuditBuildDeps {
  service: ProvenanceService;
  store: Store;
  /** The tenant CAS (symbol bundle bytes). */
  cas: Pick<BlobStore, 'get'>;
  /** The OTLP signal of a clean topic; default by its name (signalOfTopic). */
  recordSignal?: (topic: string) => RecordSignal | undefined;
}

export interface AuditBuildInput {
  tenant: string;
  traceId: string;
  /** The trace's clean records sealed at the bundle's size: entry index, topic, bytes. */
  records: { index: number; topic: string; bytes: Uint8Array }[];
  /** The log index of a sealed timeline event (undefined: not sealed at the bundle's size). */
  indexOfEvent: (eventId: string) => number | undefined;
  /** Entry bytes at a sealed index. */
  entryAt: (index: number) => Promise<Uint8Array>;
  withSymbolBytes: boolean;
}

export type AuditBuildResult = { ok: true; section: AuditSection; files: TarFile[]; indices: number[]; frames: number }
  | { ok: false; status: number; code: string; message: string; unsealed?: string[] };

const eventDetails = async (entryAt: AuditBuildInput['entryAt'], i: number): Promise<Record<string, unknown>> =>
  (JSON.parse(Buffer.from(await entryAt(i)).toString('utf8')) as { details: Record<string, unknown> }).details;

export async function buildAuditParts(deps: AuditBuildDeps, x: AuditBuildInput): Promise<AuditBuildResult> {
  const signalOf = deps.recordSignal ?? signalOfTopic;
  const records: { index: number; signal: RecordSignal; bytes: Uint8Array }[] = [];
  for (const r of x.records) {
    const signal = signalOf(r.topic);
    if (!signal) return { ok: false, status: 500, code: 'unknown_signal', message: `clean topic ${r.topic} (entry ${r.index}) is neither a span nor a log topic` };
    records.push({ index: r.index, signal, bytes: r.bytes });
  }
  const frames = framesFromRecords(records, x.tenant, x.traceId);
  if (frames.length === 0) return { ok: false, status: 404, code: 'no_frames', message: 'the trace\'s sealed clean records hold no exception frames' };
  const report = await deps.service.joinFrames(x.tenant, x.traceId, frames);

  // The registrations the join relies on must be sealed: the bundle proves them by inclusion.
  const symbolEvents = new Map<string, string>(); // event id -> bundle sha
  const artifactEvents = new Map<string, { sha: string; envelope: string }>();
  for (const f of report.frames) {
    if (f.symbol_bundle) symbolEvents.set(f.symbol_bundle.evidence_event_id, f.symbol_bundle.sha256);
    if (f.artifact && f.provenance) artifactEvents.set(f.provenance.evidence_event_id, { sha: f.artifact.sha256, envelope: f.provenance.envelope_sha256 });
  }
  const unsealed = [...symbolEvents.keys(), ...artifactEvents.keys()].filter((id) => x.indexOfEvent(id) === undefined);
  if (unsealed.length) {
    return { ok: false, status: 409, code: 'not_sealed', unsealed,
      message: `${unsealed.length} artifact/symbol registration(s) the join relies on are not sealed in the evidence log yet; retry after the next seal` };
  }
  const indices: number[] = [];
  const symbols: SymbolRef[] = [];
  for (const [eventId] of symbolEvents) {
    const i = x.indexOfEvent(eventId)!;
    const d = await eventDetails(x.entryAt, i);
    indices.push(i);
    symbols.push({ entry_index: i, event_id: eventId, bundle_sha256: d.bundle_sha256 as string, kind: d.kind as string, symbol_key: d.symbol_key as string,
      build_id: d.build_id as string, artifact_sha256: d.artifact_sha256 as string, cas_uri: d.cas_uri as string, size: d.size as number });
  }
  const artifacts: ArtifactRef[] = [];
  const envelopes = new Map<string, Uint8Array>();
  for (const [eventId, a] of artifactEvents) {
    const i = x.indexOfEvent(eventId)!;
    const d = await eventDetails(x.entryAt, i);
    indices.push(i);
    artifacts.push({ entry_index: i, event_id: eventId, sha256: d.sha256 as string, envelope_sha256: d.envelope_sha256 as string,
      builder_commit: d.builder_commit as string, compiler: d.compiler as string, flags: d.flags as string[], oci_digest: d.oci_digest as string });
    const row = (await lookupArtifact(deps.store, x.tenant, a.sha)).find((r) => r.envelope_sha256 === a.envelope);
    const bytes = row ? Buffer.from(row.dsse_envelope, 'utf8') : undefined;
    if (!bytes || sha256Hex(bytes) !== a.envelope) return { ok: false, status: 409, code: 'provenance_unavailable', message: `the DSSE envelope ${a.envelope} of artifact ${a.sha} is not available` };
    envelopes.set(a.envelope, bytes);
  }
  let symbolBytes: Map<string, Uint8Array> | undefined;
  if (x.withSymbolBytes) {
    symbolBytes = new Map();
    for (const s of symbols) {
      const b = await deps.cas.get(x.tenant, `sha256:${s.bundle_sha256}`);
      if (!b) return { ok: false, status: 409, code: 'symbols_unavailable', message: `symbol bundle ${s.bundle_sha256} is not in the tenant's CAS` };
      symbolBytes.set(s.bundle_sha256, b);
    }
  }
  const replay = await deps.service.replayManifest(x.tenant, x.traceId, report);
  const { files, section } = auditFiles({ traceId: x.traceId, records: records.map((r) => ({ index: r.index, signal: r.signal })), frames, report, symbols, artifacts,
    envelopes, ...(symbolBytes ? { symbolBytes } : {}), replay: replay!.manifest });
  return { ok: true, section, files, indices, frames: frames.length };
}
