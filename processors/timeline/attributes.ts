// OTLP values as the OpenTelemetry Collector ClickHouse exporter stores them: every attribute value
// becomes a string (pdata's AsString: ints in decimal, bools true/false, bytes base64, arrays and
// maps as JSON), attribute lists become Map(String, String).
import type { AnyValue, KeyValue } from '../../lib/otlp/proto.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

function toJson(v: AnyValue | null | undefined): Json {
  if (!v) return null;
  if (has(v, 'stringValue')) return v.stringValue ?? '';
  if (has(v, 'boolValue')) return Boolean(v.boolValue);
  if (has(v, 'intValue')) return Number(v.intValue);
  if (has(v, 'doubleValue')) return v.doubleValue ?? 0;
  if (has(v, 'bytesValue')) return Buffer.from(v.bytesValue ?? new Uint8Array()).toString('base64');
  if (has(v, 'arrayValue')) return (v.arrayValue?.values ?? []).map(toJson);
  if (has(v, 'kvlistValue')) {
    const o: Record<string, Json> = {};
    for (const kv of v.kvlistValue?.values ?? []) o[kv.key] = toJson(kv.value);
    return o;
  }
  return null;
}

/** pdata AsString semantics. */
export function anyValueString(v: AnyValue | null | undefined): string {
  if (!v) return '';
  if (has(v, 'stringValue')) return v.stringValue ?? '';
  if (has(v, 'intValue')) return String(v.intValue); // Long.toString keeps all 64 bits
  const j = toJson(v);
  if (j === null) return '';
  return typeof j === 'string' ? j : typeof j === 'object' ? JSON.stringify(j) : String(j);
}

// A record's attributes are mapped for its OTel row and again for its event's details: memoise per
// decoded list. Callers must treat the result as read-only (it is shared).
const mapped = new WeakMap<readonly KeyValue[], Record<string, string>>();

export function attrMap(attrs: readonly KeyValue[] | null | undefined): Record<string, string> {
  if (!attrs) return {};
  const hit = mapped.get(attrs);
  if (hit) return hit;
  const out: Record<string, string> = {};
  for (const kv of attrs) out[kv.key] = anyValueString(kv.value);
  mapped.set(attrs, out);
  return out;
}

/** Canonical JSON (sorted keys, no whitespace) of a string-keyed tree: the `details` column's form. */
export function canonicalJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
