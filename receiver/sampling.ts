// Per-tenant head sampling for the receiver (docs/slo.md "Head sampling").
//  * Traces: keep a span iff hash(trace id) < ratio · 2^32, so every receiver makes the same
//    decision for every span of a trace (all spans of a kept trace are kept). Spans with status
//    ERROR are always kept.
//  * Logs: a record that carries a trace id follows its trace's decision; records without one,
//    and records with severity_number ≥ ERROR (17), are always kept. Metrics are never sampled.
//  * Incident mode: while a tenant's incident mode is on (set by the SLO runner through the
//    process-wide `headSampler`), its ratio is 1.0.
// The decision reads only the item's top-level protobuf fields from the bytes the receiver has
// already validated (no protobufjs decode): a few tag reads per span.

import { H } from '../lib/kafka/topics.ts';

export interface SamplingConfig {
  /** Ratio for tenants not listed; default 1 (keep everything). */
  defaultRatio: number;
  tenants: Record<string, number>;
}

export class SamplingConfigError extends Error {}

/** Validates the `sampling` section of the stella config: `{ defaultRatio?: 0..1, tenants?: { <id>: 0..1 } }`. */
export function parseSamplingConfig(section: unknown): SamplingConfig {
  const out: SamplingConfig = { defaultRatio: 1, tenants: {} };
  if (section === undefined || section === null) return out;
  const problems: string[] = [];
  const ratio = (v: unknown, at: string): number | undefined => {
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) { problems.push(`${at} must be a number from 0 to 1 (got ${JSON.stringify(v)})`); return undefined; }
    return v;
  };
  if (typeof section !== 'object' || Array.isArray(section)) throw new SamplingConfigError('sampling must be a mapping');
  const s = section as Record<string, unknown>;
  for (const k of Object.keys(s)) if (k !== 'defaultRatio' && k !== 'tenants') problems.push(`sampling.${k} is not a known field (allowed: defaultRatio, tenants)`);
  if (s.defaultRatio !== undefined) out.defaultRatio = ratio(s.defaultRatio, 'sampling.defaultRatio') ?? 1;
  if (s.tenants !== undefined) {
    if (typeof s.tenants !== 'object' || s.tenants === null || Array.isArray(s.tenants)) problems.push('sampling.tenants must be a mapping of tenant id to ratio');
    else for (const [t, v] of Object.entries(s.tenants)) { const r = ratio(v, `sampling.tenants.${t}`); if (r !== undefined) out.tenants[t] = r; }
  }
  if (problems.length) throw new SamplingConfigError(`invalid sampling config:\n  - ${problems.join('\n  - ')}`);
  return out;
}

/** What the SLO runner calls when a tenant's incident mode starts, is extended or stops. */
export interface IncidentListener {
  setIncident(tenant: string, untilMs: number): void;
  clearIncident(tenant: string): void;
}

export class HeadSampler implements IncidentListener {
  private defaultThreshold = 2 ** 32;
  private readonly thresholds = new Map<string, number>();
  private readonly incidents = new Map<string, number>();

  constructor(config?: SamplingConfig, private readonly clock: () => number = Date.now) {
    if (config) this.configure(config);
  }

  configure(config: SamplingConfig): void {
    this.defaultThreshold = toThreshold(config.defaultRatio);
    this.thresholds.clear();
    for (const [t, r] of Object.entries(config.tenants)) this.thresholds.set(t, toThreshold(r));
  }

  setIncident(tenant: string, untilMs: number): void { this.incidents.set(tenant, untilMs); }
  clearIncident(tenant: string): void { this.incidents.delete(tenant); }
  inIncident(tenant: string): boolean {
    const until = this.incidents.get(tenant);
    return until !== undefined && until > this.clock();
  }

  /**
   * The keep threshold for the tenant right now (compare with traceIdHash), or undefined when
   * everything is kept (ratio 1 or incident mode): the receiver then skips sampling altogether.
   */
  thresholdFor(tenant: string): number | undefined {
    const th = this.thresholds.get(tenant) ?? this.defaultThreshold;
    if (th >= 2 ** 32) return undefined;
    if (this.incidents.size > 0 && this.inIncident(tenant)) return undefined;
    return th;
  }

  ratioFor(tenant: string): number {
    const th = this.thresholdFor(tenant);
    return th === undefined ? 1 : th / 2 ** 32;
  }
}

const toThreshold = (ratio: number): number => Math.round(Math.min(1, Math.max(0, ratio)) * 2 ** 32);

// ---- adjusted counts (docs/slo.md "Sampling-aware SLO counts")
//
// Sampling keeps an error span with probability 1 and any other span with probability ratio, so
// counting kept spans overstates the error ratio by ~1/ratio. Each kept span stands for 1/p spans
// (its adjusted count); the SLO processor weights spans by it. The receiver tells it p through a
// record header carrying OpenTelemetry's probability-sampling threshold (the `th` of tracestate
// `ot=th:<hex>`): T = (1 − p)·2^56, 1–14 hex digits, trailing zeros dropped, "0" = keep all.
// Our ratio r = threshold32 / 2^32 maps to T = (2^32 − threshold32)·2^24 exactly.

/** Kafka header on span records the receiver sampled: the `th` value of its (non-error) keep probability. */
export const SAMPLING_TH_HEADER = H.samplingTh;

/**
 * The `th` value for a receiver keep threshold (HeadSampler.thresholdFor); undefined when nothing
 * non-error can be kept (threshold 0: no adjusted count exists) or nothing is sampled.
 */
export function otelThresholdHex(threshold32: number | undefined): string | undefined {
  if (threshold32 === undefined || threshold32 <= 0) return undefined;
  if (threshold32 >= 2 ** 32) return '0';
  const rejected = (2 ** 32 - threshold32).toString(16).padStart(8, '0'); // high 32 of the 56 bits; the low 24 are zero
  return rejected.replace(/0+$/, '') || '0';
}

/** Keep probability of a `th` value (1–14 hex digits), or undefined when it is not a valid one. */
export function probabilityFromThreshold(th: string): number | undefined {
  if (!/^[0-9a-f]{1,14}$/.test(th)) return undefined;
  // T / 2^56 with the digits right-padded: the first 13 digits as a float are exact; the 14th adds < 2^-52.
  const t = parseInt(th, 16) / 16 ** th.length;
  const p = 1 - t;
  return p > 0 ? p : undefined;
}

/** The keep probability a span's W3C tracestate records (`ot=...;th:<hex>;...`), or undefined. */
export function tracestateProbability(traceState: string | null | undefined): number | undefined {
  if (!traceState || !traceState.includes('ot=')) return undefined;
  for (const member of traceState.split(',')) {
    const m = member.trim();
    if (!m.startsWith('ot=')) continue;
    for (const kv of m.slice(3).split(';')) if (kv.startsWith('th:')) return probabilityFromThreshold(kv.slice(3));
    return undefined;
  }
  return undefined;
}

/** The process-wide sampler: the receiver consults it, the SLO runner feeds it incident state. */
export const headSampler = new HeadSampler();

/** FNV-1a over the id bytes, finished with murmur3's fmix32 (sequential ids spread evenly). Unsigned 32-bit. */
export function traceIdHash(buf: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// ---- per-item decision from the item's bytes (a framed Span / LogRecord field: tag, length, body)

let pos = 0;
/** A varint's low 32 bits (tags, lengths, enums); longer encodings are consumed whole. */
function varint(buf: Uint8Array, end: number): number {
  let result = 0;
  for (let shift = 0; pos < end; shift += 7) {
    const b = buf[pos++]!;
    if (shift < 32) result |= (b & 0x7f) << shift;
    if (b < 0x80) break;
  }
  return result >>> 0;
}

function skip(buf: Uint8Array, end: number, wt: number): void {
  if (wt === 0) { while (pos < end && buf[pos++]! >= 0x80); }
  else if (wt === 1) pos += 8;
  else if (wt === 5) pos += 4;
  else if (wt === 2) { const l = varint(buf, end); pos += l; }
  else pos = end; // already validated by the wire walk; be defensive
}

/** Skip the item's own tag and length; returns the body end. */
function enterItem(item: Uint8Array): number {
  pos = 0;
  varint(item, item.length); // tag
  const len = varint(item, item.length);
  return Math.min(item.length, pos + len);
}

const SPAN_TRACE_ID = 1;
const SPAN_STATUS = 15;
const STATUS_CODE = 3;
const STATUS_CODE_ERROR = 2;

/** Keep decision for one framed Span: error status → keep; else hash(trace id) < threshold. */
export function keepSpan(item: Uint8Array, threshold: number): boolean {
  const end = enterItem(item);
  let traceStart = -1;
  let traceEnd = -1;
  while (pos < end) {
    const tag = varint(item, end);
    const f = tag >>> 3;
    const wt = tag & 7;
    if (wt === 2 && (f === SPAN_TRACE_ID || f === SPAN_STATUS)) {
      const len = varint(item, end);
      const bodyEnd = pos + len;
      if (f === SPAN_TRACE_ID) {
        // Kept by its trace: no need to look for an error status (trace_id is field 1, usually first).
        if (len > 0 && traceIdHash(item, pos, bodyEnd) < threshold) return true;
        traceStart = pos; traceEnd = bodyEnd;
      }
      else {
        // Status { message = 2; code = 3 }
        while (pos < bodyEnd) {
          const t = varint(item, bodyEnd);
          if (t === (STATUS_CODE << 3)) { if (varint(item, bodyEnd) === STATUS_CODE_ERROR) return true; }
          else skip(item, bodyEnd, t & 7);
        }
      }
      pos = bodyEnd;
      continue;
    }
    skip(item, end, wt);
  }
  // No trace id: nothing to key a decision on. Otherwise the trace was sampled out and the span is not an error.
  return traceStart < 0 || traceEnd === traceStart;
}

const LOG_SEVERITY_NUMBER = 2;
const LOG_TRACE_ID = 9;
export const SEVERITY_ERROR = 17;

/** Keep decision for one framed LogRecord: severity ≥ ERROR or no trace id → keep; else its trace's decision. */
export function keepLog(item: Uint8Array, threshold: number): boolean {
  const end = enterItem(item);
  let traceStart = -1;
  let traceEnd = -1;
  while (pos < end) {
    const tag = varint(item, end);
    const f = tag >>> 3;
    const wt = tag & 7;
    if (f === LOG_SEVERITY_NUMBER && wt === 0) { if (varint(item, end) >= SEVERITY_ERROR) return true; continue; }
    if (f === LOG_TRACE_ID && wt === 2) { const len = varint(item, end); traceStart = pos; traceEnd = pos + len; pos = traceEnd; continue; }
    skip(item, end, wt);
  }
  if (traceStart < 0 || traceEnd === traceStart) return true;
  return traceIdHash(item, traceStart, traceEnd) < threshold;
}
