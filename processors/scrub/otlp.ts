// Scrub decoded OTLP export requests in place: every string-bearing field, not only attributes.
//   traces:  resource/scope attributes, span name, status message, trace_state is kept (W3C vendor
//            data, not free text), event names + attributes, link attributes
//   logs:    resource/scope attributes, body (string, kvlist, array, nested), attributes, event_name
//   metrics: resource/scope attributes, metric description and metadata, data point and exemplar attributes
// Spans, log records, resources and scopes that had something redacted get summary attributes like
// the collector's redaction processor: `redaction.masked.count`, `redaction.masked.rules` (rule ids)
// and `redaction.masked.keys` (attribute keys) - never the values. Metric data points get none:
// an extra attribute would split the time series; the batch summary (Kafka header) covers them.
import Long from 'long';
import type {
  ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest, InstrumentationScope, KeyValue, Resource,
} from '../../lib/otlp/proto.ts';
import type { TenantScrubPolicy } from './config.ts';
import { Tally, scrubberFor, type Scrubber } from './engine.ts';

/** What one request had redacted, per rule id. Values never appear here. */
export interface ScrubSummary {
  /** Redactions per rule id. */
  rules: Record<string, number>;
  total: number;
  /** Spans, log records, metric points, resources and scopes that had at least one redaction. */
  items: number;
  /** Rules relaxed by an active deep-debug grant while this request was scrubbed. */
  relaxed: string[];
}

export interface ScrubResult<T> { message: T; summary: ScrubSummary }

class Batch {
  readonly rules = new Map<string, number>();
  total = 0;
  items = 0;
  constructor(readonly scrubber: Scrubber, readonly summaryAttributes: boolean) {}

  /** Fold an item's tally into the batch and, if asked, stamp summary attributes on the item. */
  close(t: Tally, attrs: KeyValue[] | undefined): void {
    if (t.count === 0) return;
    this.items++;
    this.total += t.count;
    for (const [id, n] of t.rules) this.rules.set(id, (this.rules.get(id) ?? 0) + n);
    if (!attrs || !this.summaryAttributes) return;
    setAttr(attrs, 'redaction.masked.count', { intValue: Long.fromNumber(t.count + existingCount(attrs)) });
    setAttr(attrs, 'redaction.masked.rules', { stringValue: mergeList(attrs, 'redaction.masked.rules', t.rules.keys()) });
    if (t.keys.size) setAttr(attrs, 'redaction.masked.keys', { stringValue: mergeList(attrs, 'redaction.masked.keys', t.keys) });
  }

  summary(): ScrubSummary {
    const rules: Record<string, number> = {};
    for (const id of [...this.rules.keys()].sort()) rules[id] = this.rules.get(id)!;
    return { rules, total: this.total, items: this.items, relaxed: [...this.scrubber.relaxed].sort() };
  }

  resource(r: Resource | null | undefined): void {
    if (!r) return;
    const t = new Tally();
    this.scrubber.attributes(r.attributes, t);
    this.close(t, r.attributes);
  }

  scope(s: InstrumentationScope | null | undefined): void {
    if (!s) return;
    const t = new Tally();
    this.scrubber.attributes(s.attributes, t);
    this.close(t, s.attributes);
  }

  /** Scrub a plain string field of `obj` and record hits against `t`. */
  field<O extends object, K extends keyof O & string>(obj: O, name: K, t: Tally): void {
    const v = obj[name];
    if (typeof v !== 'string' || v.length === 0) return;
    const out = this.scrubber.string(v, t);
    if (out !== v) (obj as Record<string, unknown>)[name] = out;
  }
}

function existingCount(attrs: KeyValue[]): number {
  const kv = attrs.find((a) => a.key === 'redaction.masked.count');
  const v = kv?.value?.intValue;
  return v === undefined || v === null ? 0 : Number(v);
}

function mergeList(attrs: KeyValue[], key: string, add: Iterable<string>): string {
  const prev = attrs.find((a) => a.key === key)?.value?.stringValue;
  return [...new Set([...(prev ? prev.split(',') : []), ...add])].sort().join(',');
}

function setAttr(attrs: KeyValue[], key: string, value: KeyValue['value']): void {
  const kv = attrs.find((a) => a.key === key);
  if (kv) kv.value = value;
  else attrs.push({ key, value });
}

/** `scrubber` overrides the cached per-policy scrubber (benchmarks compare cache settings with it). */
export interface ScrubOptions { scrubber?: Scrubber }

function batchFor(policy: TenantScrubPolicy, now: Date, opts: ScrubOptions | undefined): Batch {
  return new Batch(opts?.scrubber ?? scrubberFor(policy, now), policy.summaryAttributes);
}

export function scrubTraces(req: ExportTraceServiceRequest, policy: TenantScrubPolicy, now: Date, opts?: ScrubOptions): ScrubResult<ExportTraceServiceRequest> {
  const b = batchFor(policy, now, opts);
  const s = b.scrubber;
  for (const rs of req.resourceSpans ?? []) {
    b.resource(rs.resource);
    for (const ss of rs.scopeSpans ?? []) {
      b.scope(ss.scope);
      for (const span of ss.spans ?? []) {
        const t = new Tally();
        b.field(span, 'name', t);
        if (span.status) b.field(span.status, 'message', t);
        s.attributes(span.attributes, t);
        for (const ev of span.events ?? []) {
          b.field(ev, 'name', t);
          s.attributes(ev.attributes, t);
        }
        for (const link of span.links ?? []) s.attributes(link.attributes, t);
        b.close(t, span.attributes ?? (span.attributes = []));
      }
    }
  }
  return { message: req, summary: b.summary() };
}

export function scrubLogs(req: ExportLogsServiceRequest, policy: TenantScrubPolicy, now: Date, opts?: ScrubOptions): ScrubResult<ExportLogsServiceRequest> {
  const b = batchFor(policy, now, opts);
  const s = b.scrubber;
  for (const rl of req.resourceLogs ?? []) {
    b.resource(rl.resource);
    for (const sl of rl.scopeLogs ?? []) {
      b.scope(sl.scope);
      for (const rec of sl.logRecords ?? []) {
        const t = new Tally();
        if (rec.body) s.value(rec.body, t, undefined);
        s.attributes(rec.attributes, t);
        b.field(rec, 'eventName', t);
        b.close(t, rec.attributes ?? (rec.attributes = []));
      }
    }
  }
  return { message: req, summary: b.summary() };
}

interface DataPointLike { attributes?: KeyValue[]; exemplars?: { filteredAttributes?: KeyValue[] }[] }
const POINT_KINDS = ['gauge', 'sum', 'histogram', 'exponentialHistogram', 'summary'] as const;

export function scrubMetrics(req: ExportMetricsServiceRequest, policy: TenantScrubPolicy, now: Date, opts?: ScrubOptions): ScrubResult<ExportMetricsServiceRequest> {
  const b = batchFor(policy, now, opts);
  const s = b.scrubber;
  for (const rm of req.resourceMetrics ?? []) {
    b.resource(rm.resource);
    for (const sm of rm.scopeMetrics ?? []) {
      b.scope(sm.scope);
      for (const metric of sm.metrics ?? []) {
        const mt = new Tally();
        b.field(metric, 'description', mt);
        s.attributes(metric.metadata as KeyValue[] | undefined, mt);
        b.close(mt, undefined);
        for (const kind of POINT_KINDS) {
          const data = metric[kind] as { dataPoints?: DataPointLike[] } | null | undefined;
          for (const dp of data?.dataPoints ?? []) {
            const t = new Tally();
            s.attributes(dp.attributes, t);
            for (const ex of dp.exemplars ?? []) s.attributes(ex.filteredAttributes, t);
            b.close(t, undefined);
          }
        }
      }
    }
  }
  return { message: req, summary: b.summary() };
}
