// The SLO core's input: compact samples the runner derives from decoded OTLP. Spans become one
// sample each; histogram data points become one sample carrying their bucket counts, so a latency
// SLO can count "how many were above the threshold" without seeing individual requests.
import type Long from 'long';
import { tracestateProbability } from '../../receiver/sampling.ts';
import { toHex, type AnyValue, type ExportMetricsServiceRequest, type ExportTraceServiceRequest, type KeyValue } from '../../lib/otlp/proto.ts';

export interface SpanSample {
  tenant: string;
  service: string;
  spanName: string;
  /** OTLP SpanKind number (1 internal, 2 server, 3 client, 4 producer, 5 consumer). */
  kind: number;
  /** Event time = span end (when the outcome is known), ms since epoch. */
  eventTimeMs: number;
  durationMs: number;
  /** Status ERROR, or an HTTP response status ≥ 500. */
  isError: boolean;
  /** Hex trace id, kept so a firing alert can point at a real failing trace. */
  traceId: string;
  /**
   * How many spans this one stands for (its adjusted count, 1/keep probability; default 1):
   * head sampling keeps only some spans, and counting kept spans would overstate the error ratio.
   */
  weight?: number;
}

/** One histogram data point as a delta (cumulative points are differenced first, see CumulativeToDelta). */
export interface HistogramSample {
  tenant: string;
  service: string;
  metric: string;
  attributes: Record<string, string>;
  eventTimeMs: number;
  /** Explicit bucket upper bounds in milliseconds (bucket i is (bounds[i-1], bounds[i]]; last is +Inf). */
  boundsMs: readonly number[];
  bucketCounts: readonly number[];
  count: number;
  /** The data point describes failed requests (http.response.status_code ≥ 500 or error.type set). */
  isError: boolean;
}

export type SliSample = SpanSample | HistogramSample;
export const isSpanSample = (s: SliSample): s is SpanSample => (s as SpanSample).spanName !== undefined;

const STATUS_CODE_ERROR = 2;

/** Nanosecond Long (or small number) → milliseconds, without allocating a Long. */
export function nanosToMs(v: Long | number | null | undefined): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v / 1e6;
  return (v.high * 4294967296 + (v.low >>> 0)) / 1e6;
}

// Decoded protobufjs messages carry oneof defaults on the prototype (stringValue ""), so "is this
// member set" must look at own properties, not at the value.
const has = (v: object, k: string): boolean => Object.prototype.hasOwnProperty.call(v, k) && (v as Record<string, unknown>)[k] !== null;

function anyToNumber(v: AnyValue | null | undefined): number | undefined {
  if (!v) return undefined;
  if (has(v, 'intValue')) return typeof v.intValue === 'number' ? v.intValue : v.intValue!.toNumber();
  if (has(v, 'doubleValue')) return v.doubleValue;
  if (has(v, 'stringValue') && v.stringValue !== '') {
    const n = Number(v.stringValue);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** HTTP server error per semconv (current key, then the pre-1.21 key). */
export function httpStatusIsServerError(attrs: readonly KeyValue[] | null | undefined): boolean {
  if (!attrs) return false;
  for (const kv of attrs) {
    if (kv.key === 'http.response.status_code' || kv.key === 'http.status_code') {
      const n = anyToNumber(kv.value);
      if (n !== undefined) return n >= 500;
    }
  }
  return false;
}

function resourceService(attrs: readonly KeyValue[] | null | undefined): string {
  if (attrs) for (const kv of attrs) if (kv.key === 'service.name') return kv.value?.stringValue ?? 'unknown_service';
  return 'unknown_service';
}

/**
 * Weights are multiples of 2^-10: sums of such numbers below 2^43 are exact in a float64, so the
 * running window sums (added and subtracted as minutes come and go) never drift.
 */
export const WEIGHT_QUANTUM = 1024;
export const quantizeWeight = (w: number): number => Math.max(1, Math.round(w * WEIGHT_QUANTUM) / WEIGHT_QUANTUM);

/**
 * Maps a decoded OTLP trace export to span samples (service from resource `service.name`).
 * `receiverKeepProbability`: the probability with which the receiver's head sampling kept the
 * record's non-error spans (from its `sampling-th` header; 1 = not sampled). A span's weight is its
 * adjusted count: 1 / (upstream probability from its tracestate `ot=th:…`, if any) × 1 / (the
 * receiver's probability, unless the receiver keeps the span anyway: status ERROR, or no trace id).
 */
export function samplesFromTraces(tenant: string, req: ExportTraceServiceRequest, receiverKeepProbability = 1): SpanSample[] {
  const out: SpanSample[] = [];
  const sampledWeight = 1 / receiverKeepProbability;
  for (const rs of req.resourceSpans ?? []) {
    const service = resourceService(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const span of ss.spans ?? []) {
        const start = nanosToMs(span.startTimeUnixNano);
        const end = nanosToMs(span.endTimeUnixNano);
        const statusError = span.status?.code === STATUS_CODE_ERROR;
        const keptAnyway = statusError || !span.traceId || span.traceId.length === 0;
        let weight = keptAnyway ? 1 : sampledWeight;
        // Sampled upstream (an SDK's probability sampler): its threshold travels in tracestate.
        if (span.traceState) {
          const p = tracestateProbability(span.traceState);
          if (p !== undefined) weight /= p;
        }
        out.push({
          tenant,
          service,
          spanName: span.name,
          kind: span.kind,
          eventTimeMs: Math.floor(end),
          durationMs: Math.max(0, end - start),
          isError: statusError || httpStatusIsServerError(span.attributes),
          traceId: toHex(span.traceId),
          weight: weight === 1 ? 1 : quantizeWeight(weight),
        });
      }
    }
  }
  return out;
}

// ---- metrics -------------------------------------------------------------------------------

const AGGREGATION_TEMPORALITY_DELTA = 1;
const AGGREGATION_TEMPORALITY_CUMULATIVE = 2;

interface HistogramPoint {
  attributes?: KeyValue[];
  startTimeUnixNano?: Long | number;
  timeUnixNano?: Long | number;
  count?: Long | number;
  bucketCounts?: (Long | number)[];
  explicitBounds?: number[];
}
const toNum = (v: Long | number | undefined | null): number => (v === undefined || v === null ? 0 : typeof v === 'number' ? v : v.toNumber());

/** Histogram bounds are in the metric's unit; SLO thresholds are in ms. */
function unitScaleToMs(unit: string): number {
  switch (unit) {
    case 's': return 1000;
    case 'us': return 0.001;
    case 'ns': return 0.000001;
    default: return 1; // "ms" and unitless
  }
}

function flatAttributes(attrs: readonly KeyValue[] | undefined): Record<string, string> {
  const o: Record<string, string> = {};
  if (!attrs) return o;
  for (const kv of attrs) {
    const v = kv.value;
    if (!v) continue;
    if (has(v, 'stringValue')) o[kv.key] = v.stringValue!;
    else if (has(v, 'boolValue')) o[kv.key] = String(v.boolValue);
    else {
      const n = anyToNumber(v);
      if (n !== undefined) o[kv.key] = String(n);
    }
  }
  return o;
}

/**
 * Differences cumulative histogram points per series. The first point of a series is a baseline
 * (emits nothing), a count that goes down is a reset (the point itself is the delta).
 */
export class CumulativeToDelta {
  private readonly last = new Map<string, { count: number; buckets: number[] }>();
  constructor(private readonly maxSeries = 100_000) {}

  delta(seriesKey: string, count: number, buckets: number[]): { count: number; buckets: number[] } | undefined {
    const prev = this.last.get(seriesKey);
    if (this.last.size >= this.maxSeries && !prev) this.last.clear(); // bounded memory; costs one baseline per series
    this.last.set(seriesKey, { count, buckets });
    if (!prev) return undefined;
    if (count < prev.count || buckets.length !== prev.buckets.length) return { count, buckets };
    return { count: count - prev.count, buckets: buckets.map((b, i) => Math.max(0, b - (prev.buckets[i] ?? 0))) };
  }

  get size(): number { return this.last.size; }

  /** The last point of every series, so a restart differences against it instead of losing one interval. */
  snapshot(): string {
    return JSON.stringify([...this.last].map(([k, v]) => [k, v.count, v.buckets]));
  }

  restore(json: string): void {
    this.last.clear();
    const rows = JSON.parse(json) as unknown;
    if (!Array.isArray(rows)) throw new Error('cumulative-to-delta state is not a list');
    for (const r of rows) {
      if (!Array.isArray(r) || typeof r[0] !== 'string' || typeof r[1] !== 'number' || !Array.isArray(r[2]))
        throw new Error('cumulative-to-delta state has a malformed series');
      this.last.set(r[0], { count: r[1], buckets: (r[2] as unknown[]).map(Number) });
    }
  }
}

/**
 * Maps a decoded OTLP metrics export to histogram samples (explicit-bucket histograms only).
 * Cumulative points need a CumulativeToDelta owned by the caller (it is per-stream state).
 */
export function samplesFromMetrics(tenant: string, req: ExportMetricsServiceRequest, cumulative?: CumulativeToDelta): HistogramSample[] {
  const out: HistogramSample[] = [];
  for (const rm of req.resourceMetrics ?? []) {
    const service = resourceService(rm.resource?.attributes);
    for (const sm of rm.scopeMetrics ?? []) {
      for (const metric of sm.metrics ?? []) {
        const h = metric.histogram as { dataPoints?: HistogramPoint[]; aggregationTemporality?: number } | undefined | null;
        if (!h?.dataPoints) continue;
        const name = String(metric.name ?? '');
        const scale = unitScaleToMs(String(metric.unit ?? ''));
        const temporality = h.aggregationTemporality ?? 0;
        for (const dp of h.dataPoints) {
          const attributes = flatAttributes(dp.attributes);
          let count = toNum(dp.count);
          let buckets = (dp.bucketCounts ?? []).map(toNum);
          if (temporality === AGGREGATION_TEMPORALITY_CUMULATIVE) {
            if (!cumulative) continue;
            const key = `${tenant}\u0000${service}\u0000${name}\u0000${JSON.stringify(attributes)}\u0000${toNum(dp.startTimeUnixNano)}`;
            const d = cumulative.delta(key, count, buckets);
            if (!d) continue;
            ({ count, buckets } = d);
          } else if (temporality !== AGGREGATION_TEMPORALITY_DELTA) continue;
          if (count <= 0) continue;
          const status = Number(attributes['http.response.status_code'] ?? attributes['http.status_code'] ?? 0);
          out.push({
            tenant, service, metric: name, attributes,
            eventTimeMs: Math.floor(nanosToMs(dp.timeUnixNano)),
            boundsMs: (dp.explicitBounds ?? []).map((b) => b * scale),
            bucketCounts: buckets, count,
            isError: status >= 500 || attributes['error.type'] !== undefined,
          });
        }
      }
    }
  }
  return out;
}

/**
 * Good events in a histogram sample for a latency threshold: buckets whose upper bound is ≤ the
 * threshold. A threshold between bounds is conservative (the straddling bucket counts as bad), so
 * thresholds should be bucket bounds.
 */
export function histogramGoodCount(s: HistogramSample, thresholdMs: number): number {
  let good = 0;
  const n = Math.min(s.bucketCounts.length, s.boundsMs.length);
  for (let i = 0; i < n; i++) {
    // Relative tolerance: bounds converted from seconds (0.7 s × 1000) may land an ulp above the threshold.
    if (s.boundsMs[i]! > thresholdMs * (1 + 1e-9)) break;
    good += s.bucketCounts[i]!;
  }
  return Math.min(good, s.count);
}
