// Legal holds, kept per tenant in the cases store (beside the case bundles, never in the log
// directory the runner recovers): `holds/<case_id>/<seq>.json`, immutable, one record per placement
// or release, so the history of a hold is itself kept. A case is held while its latest record is a
// placement. Each record is also published as a timeline event (`evidence.hold.placed|released`)
// and so sealed into the tenant's evidence log. docs/evidence.md "Retention and legal hold".
import { createHash } from 'node:crypto';
import { canonicalBytes, canonicalize } from './jcs.ts';
import type { HoldCover } from './retention.ts';
import { ImmutableConflictError, type EvidenceStore } from './store.ts';
import { gunzip, readTar } from './tar.ts';

export const CASE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const HOLD_PLACED = 'evidence.hold.placed';
export const HOLD_RELEASED = 'evidence.hold.released';

export interface HoldRecord {
  case_id: string;
  seq: number;
  action: 'placed' | 'released';
  at: string;
  by: string;
  reason: string;
  /** What the hold covers (placements; a release repeats what it released). */
  cover: HoldCover;
  /** The case's bundles at placement (their entries are in cover.entries). */
  bundles: string[];
}

export class HoldError extends Error {
  constructor(readonly param: string, message: string) { super(message); }
}

const holdDir = (caseId: string): string => `holds/${caseId}`;
const holdRecordPath = (caseId: string, seq: number): string => `${holdDir(caseId)}/${seq}.json`;

async function history(store: EvidenceStore, tenant: string, caseId: string): Promise<HoldRecord[]> {
  const seqs = (await store.list(tenant, holdDir(caseId))).map((n) => /^([1-9]\d*)\.json$/.exec(n)?.[1]).filter((s): s is string => !!s).map(Number).sort((a, b) => a - b);
  const out: HoldRecord[] = [];
  for (const s of seqs) {
    const b = await store.read(tenant, holdRecordPath(caseId, s));
    if (b) out.push(JSON.parse(Buffer.from(b).toString('utf8')) as HoldRecord);
  }
  return out;
}

/** The latest record of a case's hold (undefined: never held). */
export async function latestHold(store: EvidenceStore, tenant: string, caseId: string): Promise<HoldRecord | undefined> {
  const h = await history(store, tenant, caseId);
  return h[h.length - 1];
}

/** Every case of the tenant with its latest hold record. */
export async function listHolds(store: EvidenceStore, tenant: string, o: { includeReleased?: boolean } = {}): Promise<HoldRecord[]> {
  const out: HoldRecord[] = [];
  for (const c of await store.list(tenant, 'holds')) {
    if (!CASE_ID.test(c)) continue;
    const h = await latestHold(store, tenant, c);
    if (h && (o.includeReleased || h.action === 'placed')) out.push(h);
  }
  return out.sort((a, b) => (a.case_id < b.case_id ? -1 : 1));
}

/** The covers of the tenant's active holds (what pruning must keep). */
export async function activeHoldCovers(store: EvidenceStore, tenant: string): Promise<HoldCover[]> {
  return (await listHolds(store, tenant)).map((h) => h.cover);
}

/** Validate a placement request body: trace_ids, entries ranges, sealed time range, reason. */
export function parseHoldRequest(caseId: string, body: Record<string, unknown>): { cover: HoldCover; reason: string } {
  if (!CASE_ID.test(caseId)) throw new HoldError('case_id', 'case_id must be 1 to 128 characters of letters, digits, ".", "_", ":", "-"');
  const known = ['trace_ids', 'entries', 'sealed', 'reason'];
  for (const k of Object.keys(body)) if (!known.includes(k) && k !== 'tenant') throw new HoldError(k, `${k} is not a hold field (allowed: ${known.join(', ')})`);
  const cover: HoldCover = { case_id: caseId, trace_ids: [], entries: [], sealed: null };
  if (body.trace_ids !== undefined) {
    if (!Array.isArray(body.trace_ids) || body.trace_ids.length > 1000 || body.trace_ids.some((t) => typeof t !== 'string' || !/^[0-9a-fA-F]{32}$/.test(t))) {
      throw new HoldError('trace_ids', 'trace_ids must be a list of at most 1000 trace ids (32 hex characters)');
    }
    cover.trace_ids = [...new Set((body.trace_ids as string[]).map((t) => t.toLowerCase()))].sort();
  }
  if (body.entries !== undefined) {
    const ok = (r: unknown): r is { from: number; to: number } => !!r && typeof r === 'object' && Number.isSafeInteger((r as { from: unknown }).from)
      && Number.isSafeInteger((r as { to: unknown }).to) && (r as { from: number }).from >= 0 && (r as { from: number }).from < (r as { to: number }).to;
    if (!Array.isArray(body.entries) || body.entries.length > 1000 || !body.entries.every(ok)) {
      throw new HoldError('entries', 'entries must be a list of at most 1000 index ranges {from, to} with 0 ≤ from < to (to exclusive)');
    }
    cover.entries = (body.entries as { from: number; to: number }[]).map((r) => ({ from: r.from, to: r.to }));
  }
  if (body.sealed !== undefined) {
    const s = body.sealed as { from?: unknown; to?: unknown } | null;
    const t = (v: unknown): string | undefined => (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(v) && !Number.isNaN(Date.parse(v)) ? new Date(Date.parse(v)).toISOString() : undefined);
    const from = t(s?.from);
    const to = t(s?.to);
    if (!s || typeof s !== 'object' || !from || !to || Date.parse(from) > Date.parse(to)) throw new HoldError('sealed', 'sealed must be {from, to}: RFC 3339 times, from ≤ to');
    cover.sealed = { from, to };
  }
  const reason = body.reason === undefined ? '' : body.reason;
  if (typeof reason !== 'string' || reason.length > 512) throw new HoldError('reason', 'reason must be a string of at most 512 characters');
  return { cover, reason };
}

/** Index ranges [from, to) of the entries a bundle (.tar.gz) holds, from its manifest. */
export function bundleEntryRanges(bundle: Uint8Array): { from: number; to: number }[] {
  const m = readTar(gunzip(bundle)).find((f) => f.path === 'manifest.json');
  if (!m) return [];
  const manifest = JSON.parse(Buffer.from(m.bytes).toString('utf8')) as { kind?: string; tree_size?: number; entries?: { index: number }[] };
  if (manifest.kind === 'log') return manifest.tree_size ? [{ from: 0, to: manifest.tree_size }] : [];
  return toRanges((manifest.entries ?? []).map((e) => e.index));
}

export function toRanges(indices: readonly number[]): { from: number; to: number }[] {
  const out: { from: number; to: number }[] = [];
  for (const i of [...new Set(indices)].sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    if (last && last.to === i) last.to = i + 1; else out.push({ from: i, to: i + 1 });
  }
  return out;
}

/**
 * Append a record to the case's hold history. Placing a case that is held, or releasing one that
 * is not, writes nothing and returns the current record with `changed: false`.
 */
export async function recordHold(store: EvidenceStore, tenant: string, r: Omit<HoldRecord, 'seq'>): Promise<{ record: HoldRecord; changed: boolean }> {
  for (let attempt = 0; ; attempt++) {
    const cur = await latestHold(store, tenant, r.case_id);
    if ((cur?.action ?? 'released') === r.action) return { record: cur ?? { ...r, seq: 0 }, changed: false };
    const record: HoldRecord = { ...r, seq: (cur?.seq ?? 0) + 1 };
    try {
      await store.writeImmutable(tenant, holdRecordPath(r.case_id, record.seq), canonicalBytes(record));
      return { record, changed: true };
    } catch (e) {
      // Another request took this sequence number first: read again.
      if (e instanceof ImmutableConflictError && attempt < 5) continue;
      throw e;
    }
  }
}

/** The timeline event of a hold record (deterministic: a retried publish is de-duplicated by event_id). */
export function holdTimelineEvent(tenant: string, h: HoldRecord): {
  event_id: string; ts: string; tenant_id: string; project_id: string; kind: string; actor: string; resource_type: string;
  resource_id: string; trace_id: string; span_id: string; digest: string; details: string; source: string;
} {
  const details = canonicalize({ case_id: h.case_id, seq: h.seq, action: h.action, at: h.at, by: h.by, reason: h.reason, cover: h.cover, bundles: h.bundles });
  return {
    event_id: createHash('sha256').update(`stella-hold-event/v1\n${tenant}\n${h.case_id}\n${h.seq}`).digest('hex').slice(0, 32),
    ts: (BigInt(Date.parse(h.at)) * 1_000_000n).toString(), tenant_id: tenant, project_id: '',
    kind: h.action === 'placed' ? HOLD_PLACED : HOLD_RELEASED, actor: h.by, resource_type: 'case', resource_id: h.case_id,
    trace_id: '', span_id: '', digest: createHash('sha256').update(details).digest('hex'), details, source: `evidence/hold/${h.case_id}/${h.seq}`,
  };
}
