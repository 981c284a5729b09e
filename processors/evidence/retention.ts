// Evidence retention and legal holds, pure core (no I/O): which entry bundles of a tenant's log may
// be pruned. The unit of pruning is one full entry bundle (`tile/entries/<N>`, 256 entries): its
// age is the sealing time of its newest entry (the `sealed_at` of the first segment that covers
// it), so a bundle goes only once all of its entries are past retention. Tiles (hashes),
// checkpoints and envelopes are never pruned, so the tree, every checkpoint and every proof keep
// verifying. docs/evidence.md "Retention and legal hold".
import type { RetentionConfig } from '../../lib/config.ts';
import { TILE_WIDTH } from './tiles.ts';

const DAY_MS = 86_400_000;

// The configuration (typed and validated at startup in lib/config.ts, key `evidenceRetention`).
export { ENV_RETENTION_DAYS, type RetentionConfig } from '../../lib/config.ts';

/** The retention (ms) that applies to `tenant` now. */
export function retentionMs(cfg: RetentionConfig, tenant: string, incidentOn: boolean): number {
  const days = cfg.tenants[tenant] ?? cfg.days;
  return (days + (incidentOn ? cfg.incidentExtensionDays : 0)) * DAY_MS;
}

/** A sealed segment [from, to) and when it was sealed (from its DSSE statement). */
export interface SegmentTime { from: number; to: number; sealedAtMs: number }

/** What a legal hold covers (any of; a bundle touching any of them is kept). */
export interface HoldCover {
  case_id: string;
  /** Entries whose `trace_id` is one of these (timeline events of the trace). */
  trace_ids: string[];
  /** Entry index ranges [from, to). */
  entries: { from: number; to: number }[];
  /** Entries sealed in this time range (RFC 3339, inclusive). */
  sealed: { from: string; to: string } | null;
}

export interface PrunePlanInput {
  /** Latest sealed tree size. */
  size: number;
  segments: readonly SegmentTime[];
  /** Entry indices that must stay readable (key rotation entries: every key schedule reads them). */
  keep: readonly number[];
  holds: readonly HoldCover[];
  /** Entry bundles already pruned. */
  pruned: ReadonlySet<number>;
  nowMs: number;
  retentionMs: number;
}

export interface PrunePlan {
  /** Bundles past retention and not held by index or time: still to be checked for held trace ids. */
  candidates: number[];
  /** Bundles past retention that a hold keeps (for the report). */
  held: { bundle: number; case_id: string }[];
  /** Sealing time below which entries are past retention. */
  cutoffMs: number;
}

/**
 * Bundles that may go: full, not the one holding the newest entry (the sealer's edge), whose
 * newest entry was sealed before now − retention, not already pruned, holding no kept entry, and
 * touching no hold's entry range or sealing-time range.
 */
export function planPrune(p: PrunePlanInput): PrunePlan {
  const cutoffMs = p.nowMs - p.retentionMs;
  const segs = [...p.segments].sort((a, b) => a.to - b.to);
  const keepBundles = new Set(p.keep.map((i) => Math.floor(i / TILE_WIDTH)));
  const times = p.holds.filter((h) => h.sealed).map((h) => ({ case_id: h.case_id, from: Date.parse(h.sealed!.from), to: Date.parse(h.sealed!.to) }));
  const candidates: number[] = [];
  const held: PrunePlan['held'] = [];
  const lastFull = Math.floor(p.size / TILE_WIDTH) - 1;
  let s = 0;
  for (let n = 0; n <= lastFull; n++) {
    const from = n * TILE_WIDTH;
    const to = from + TILE_WIDTH;
    if (to >= p.size) break; // the bundle with the newest entry stays (the sealer re-reads the edge)
    while (s < segs.length && segs[s]!.to < to) s++;
    const newest = segs[s];
    if (!newest || newest.sealedAtMs >= cutoffMs) break; // segments are in sealing order: later bundles are younger
    if (p.pruned.has(n) || keepBundles.has(n)) continue;
    const byRange = p.holds.find((h) => h.entries.some((r) => r.from < to && r.to > from));
    if (byRange) { held.push({ bundle: n, case_id: byRange.case_id }); continue; }
    if (times.length) {
      // Every segment overlapping [from, to): any sealed inside a hold's time range keeps the bundle.
      const overlapping = segs.filter((g) => g.from < to && g.to > from);
      const byTime = times.find((t) => overlapping.some((g) => g.sealedAtMs >= t.from && g.sealedAtMs <= t.to));
      if (byTime) { held.push({ bundle: n, case_id: byTime.case_id }); continue; }
    }
    candidates.push(n);
  }
  return { candidates, held, cutoffMs };
}

/** The hold (case id) whose trace ids one of these entries carries, if any. */
export function heldByTrace(entries: readonly Uint8Array[], holds: readonly HoldCover[]): string | undefined {
  const ids = new Map<string, string>();
  for (const h of holds) for (const t of h.trace_ids) ids.set(t, h.case_id);
  if (ids.size === 0) return undefined;
  for (const e of entries) {
    const buf = Buffer.from(e.buffer, e.byteOffset, e.byteLength);
    if (buf.indexOf('"trace_id":') < 0) continue;
    let v: unknown;
    try { v = JSON.parse(buf.toString('utf8')); } catch { continue; }
    const t = (v as { trace_id?: unknown }).trace_id;
    if (typeof t === 'string' && ids.has(t.toLowerCase())) return ids.get(t.toLowerCase());
  }
  return undefined;
}

/** Incident mode of a tenant, as the latest incident.mode.* timeline event in its log says. */
export interface IncidentMark { kind: 'incident.mode.started' | 'incident.mode.stopped'; at_ms: number; until_ms: number; index: number }

/** The incident mark an entry carries, if it is an incident.mode.started|stopped timeline event. */
export type IncidentFields = Omit<IncidentMark, 'index'>;

/** The incident fields of a parsed timeline event, if it is an incident.mode.started|stopped event. */
export function incidentFields(v: { kind?: unknown; details?: unknown }): IncidentFields | undefined {
  if (v.kind !== 'incident.mode.started' && v.kind !== 'incident.mode.stopped') return undefined;
  const d = (v.details && typeof v.details === 'object' ? v.details : {}) as { at_ms?: unknown; until_ms?: unknown };
  const num = (x: unknown): number => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
  return { kind: v.kind, at_ms: num(d.at_ms), until_ms: num(d.until_ms) };
}

export const incidentOn = (m: IncidentMark | undefined, nowMs: number): boolean => m?.kind === 'incident.mode.started' && m.until_ms > nowMs;
