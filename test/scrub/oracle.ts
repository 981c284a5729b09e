// The reference implementation for the differential test (test/scrub/differential.test.ts): the
// scrubber's former object path, kept here as an oracle only. It scrubs protobufjs-decoded requests
// in place; the production path (processors/scrub/wire.ts) walks the bytes and must agree with it.
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
import type { AnyValue } from '../../lib/otlp/proto.ts';
import type { TenantScrubPolicy } from '../../processors/scrub/config.ts';
import { REDACTED_VALUE, Tally, scrubberFor, type Scrubber } from '../../processors/scrub/engine.ts';
import type { ScrubSummary } from '../../processors/scrub/wire.ts';

export interface ScrubResult<T> { message: T; summary: ScrubSummary }

// Decoded protobufjs messages carry oneof defaults on the prototype ('' / null): only own properties are set.
const has = (v: AnyValue, f: keyof AnyValue): boolean => Object.prototype.hasOwnProperty.call(v, f) && v[f] !== null && v[f] !== undefined;

/** Scrub a KeyValue list in place (values of sensitive keys wholesale, the rest by the scanner). */
export function attributes(sc: Scrubber, attrs: KeyValue[] | null | undefined, tally: Tally): void {
  if (!attrs) return;
  for (const kv of attrs) {
    if (!kv.value || kv.key.startsWith('redaction.')) continue;
    if (sc.isSensitiveKey(kv.key)) sensitiveValue(sc, kv.value, tally, kv.key);
    else value(sc, kv.value, tally, kv.key);
  }
}

/** Scrub an AnyValue in place, walking nested arrays and kvlists. */
function value(sc: Scrubber, v: AnyValue, tally: Tally, key: string | undefined): void {
  if (has(v, 'stringValue')) {
    if (v.stringValue!.length === 0) return;
    const out = sc.string(v.stringValue!, tally, key);
    if (out !== v.stringValue) v.stringValue = out;
  } else if (has(v, 'arrayValue')) {
    for (const item of v.arrayValue!.values ?? []) if (item) value(sc, item, tally, key);
  } else if (has(v, 'kvlistValue')) {
    attributes(sc, v.kvlistValue!.values, tally);
  }
}

/** A sensitive key's value is replaced whatever it is: strings, numbers and bytes; arrays and maps walked. */
function sensitiveValue(sc: Scrubber, v: AnyValue, tally: Tally, key: string): void {
  if (has(v, 'stringValue')) {
    if (v.stringValue!.length === 0 || REDACTED_VALUE.test(v.stringValue!)) return;
    v.stringValue = sc.render('sensitive_key', v.stringValue!);
  } else if (has(v, 'arrayValue')) {
    for (const item of v.arrayValue!.values ?? []) if (item) sensitiveValue(sc, item, tally, key);
    return;
  } else if (has(v, 'kvlistValue')) {
    for (const kv of v.kvlistValue!.values ?? []) if (kv.value) sensitiveValue(sc, kv.value, tally, kv.key);
    return;
  } else if (has(v, 'intValue') || has(v, 'doubleValue') || has(v, 'bytesValue')) {
    const raw = has(v, 'bytesValue') ? Buffer.from(v.bytesValue!).toString('base64') : String(has(v, 'intValue') ? v.intValue : v.doubleValue);
    for (const f of ['intValue', 'doubleValue', 'bytesValue', 'boolValue'] as const) delete (v as Record<string, unknown>)[f];
    v.stringValue = sc.render('sensitive_key', raw);
  } else return;
  tally.hit('sensitive_key', key);
}

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
    attributes(this.scrubber, r.attributes, t);
    this.close(t, r.attributes);
  }

  scope(s: InstrumentationScope | null | undefined): void {
    if (!s) return;
    const t = new Tally();
    attributes(this.scrubber, s.attributes, t);
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
        attributes(s, span.attributes, t);
        for (const ev of span.events ?? []) {
          b.field(ev, 'name', t);
          attributes(s, ev.attributes, t);
        }
        for (const link of span.links ?? []) attributes(s, link.attributes, t);
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
        if (rec.body) value(s, rec.body, t, undefined);
        attributes(s, rec.attributes, t);
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
        attributes(s, metric.metadata as KeyValue[] | undefined, mt);
        b.close(mt, undefined);
        for (const kind of POINT_KINDS) {
          const data = metric[kind] as { dataPoints?: DataPointLike[] } | null | undefined;
          for (const dp of data?.dataPoints ?? []) {
            const t = new Tally();
            attributes(s, dp.attributes, t);
            for (const ex of dp.exemplars ?? []) attributes(s, ex.filteredAttributes, t);
            b.close(t, undefined);
          }
        }
      }
    }
  }
  return { message: req, summary: b.summary() };
}
