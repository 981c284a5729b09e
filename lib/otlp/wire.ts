// Wire-level OTLP handling for the receiver's hot path. A full protobufjs decode + encode of every
// request costs far more than the 5 CPU-µs per span budget; instead this walks the protobuf wire
// format once, driven by a schema compiled from the same .proto files, and:
//   - validates framing, wire types, UTF-8 strings and id lengths (what a strict decoder would refuse),
//   - counts items (spans, log records, metric data points) and flags items with oversized attributes,
//   - reads each resource's `tenant.id` claim and appends `tenant.id` where it is absent,
//   - re-frames resources/scopes/items into one or more Export requests under a byte limit.
// Unknown fields are carried through untouched, so the record holds everything the client sent.
import { isUtf8 } from 'node:buffer';
import protobuf from 'protobufjs';
import { otlpRoot, type Signal } from './proto.ts';

export class WireError extends Error {}

const enum Kind { Message, String, Bytes, Scalar }

interface FieldRule {
  kind: Kind;
  /** Wire type of a scalar's unpacked encoding. */
  wt: number;
  repeated: boolean;
  type?: TypeRule;
  /** Exact byte length required of a non-empty id field (trace ids 16, span ids 8). */
  idLen?: number;
  /** This field's value is an attribute value (KeyValue.value): subject to the attribute size limit. */
  attrValue?: boolean;
  /** An id that OTLP declares invalid when all zero (trace_id and span_id of a Span and of a Span.Link). */
  nonZero?: boolean;
}

interface TypeRule {
  name: string;
  fields: (FieldRule | undefined)[];
  /** Counted as one item in partial_success for metrics (the *DataPoint messages). */
  isDataPoint: boolean;
  /** The one-byte tag of this message's KeyValue field (attributes), or -1. */
  attrTag: number;
  /** ArrayValue or KeyValueList: one level of AnyValue nesting (see MAX_VALUE_NESTING). */
  isValueList: boolean;
}

/**
 * The most arrayValue/kvlistValue levels one AnyValue may nest (attributes, log bodies). Deeper
 * items are refused at intake (partial success), so nothing the receiver accepts exceeds the
 * message depth of 100 that protobufjs/protoc-style decoders and the scrubber
 * (processors/scrub/wire.ts) allow: the deepest path, an exemplar's attribute in a metrics request,
 * reaches message depth 9 + 3 per kvlist level = 99 at 30 levels. It also bounds the walk's recursion.
 */
export const MAX_VALUE_NESTING = 30;

const scalarWireType: Record<string, number> = {
  double: 1, fixed64: 1, sfixed64: 1, float: 5, fixed32: 5, sfixed32: 5,
  int32: 0, int64: 0, uint32: 0, uint64: 0, sint32: 0, sint64: 0, bool: 0,
};

/** Messages whose trace_id/span_id OTLP declares invalid when all zero: a bad link refuses its span, like a bad span id. */
const ZERO_INVALID_ID_OWNERS = new Set(['.opentelemetry.proto.trace.v1.Span', '.opentelemetry.proto.trace.v1.Span.Link']);

const rules = new Map<string, TypeRule>();
function ruleFor(type: protobuf.Type): TypeRule {
  const existing = rules.get(type.fullName);
  if (existing) return existing;
  const rule: TypeRule = { name: type.fullName, fields: [], isDataPoint: /DataPoint$/.test(type.name), attrTag: -1,
    isValueList: type.fullName === '.opentelemetry.proto.common.v1.ArrayValue' || type.fullName === '.opentelemetry.proto.common.v1.KeyValueList' };
  rules.set(type.fullName, rule);
  for (const f of type.fieldsArray) {
    f.resolve();
    let fr: FieldRule;
    if (f.resolvedType instanceof protobuf.Type) {
      fr = { kind: Kind.Message, wt: 2, repeated: f.repeated, type: ruleFor(f.resolvedType) };
      if (type.name === 'KeyValue' && f.name === 'value') fr.attrValue = true;
      if (f.resolvedType.fullName === '.opentelemetry.proto.common.v1.KeyValue' && f.id < 16) rule.attrTag = (f.id << 3) | 2;
    } else if (f.resolvedType instanceof protobuf.Enum) {
      fr = { kind: Kind.Scalar, wt: 0, repeated: f.repeated };
    } else if (f.type === 'string') {
      fr = { kind: Kind.String, wt: 2, repeated: f.repeated };
    } else if (f.type === 'bytes') {
      fr = { kind: Kind.Bytes, wt: 2, repeated: f.repeated };
      if (/^(traceId)$/.test(f.name)) fr.idLen = 16;
      if (/^(spanId|parentSpanId)$/.test(f.name)) fr.idLen = 8;
      if (ZERO_INVALID_ID_OWNERS.has(type.fullName) && (f.name === 'traceId' || f.name === 'spanId')) fr.nonZero = true;
    } else {
      const wt = scalarWireType[f.type];
      if (wt === undefined) throw new Error(`unsupported proto type ${f.type}`);
      fr = { kind: Kind.Scalar, wt, repeated: f.repeated };
    }
    rule.fields[f.id] = fr;
  }
  return rule;
}

const itemRules = {
  traces: ruleFor(otlpRoot.lookupType('opentelemetry.proto.trace.v1.Span')),
  metrics: ruleFor(otlpRoot.lookupType('opentelemetry.proto.metrics.v1.Metric')),
  logs: ruleFor(otlpRoot.lookupType('opentelemetry.proto.logs.v1.LogRecord')),
};
const resourceRule = ruleFor(otlpRoot.lookupType('opentelemetry.proto.resource.v1.Resource'));
const scopeRule = ruleFor(otlpRoot.lookupType('opentelemetry.proto.common.v1.InstrumentationScope'));

// ---- varints

// The read position of the varint readers. Returning [value, pos] tuples allocated once per field
// and made GC the largest cost of the walk; the walk is synchronous, so one cursor is safe.
let at = 0;

/** Read a varint of at most 32 bits at `at` (advancing it). */
function readVarint32(buf: Uint8Array, end: number): number {
  let result = 0;
  let shift = 0;
  for (let i = 0; i < 5; i++) {
    if (at >= end) throw new WireError('truncated varint');
    const b = buf[at++]!;
    result |= (b & 0x7f) << shift;
    if (b < 0x80) return result >>> 0;
    shift += 7;
  }
  // Lengths and tags never exceed 32 bits in a valid message.
  throw new WireError('varint too long for a length or tag');
}

export function skipVarint(buf: Uint8Array, pos: number, end: number): number {
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new WireError('truncated varint');
    if (buf[pos++]! < 0x80) return pos;
  }
  throw new WireError('varint longer than 10 bytes');
}

export const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

export function writeVarint(out: Uint8Array, pos: number, n: number): number {
  while (n >= 0x80) { out[pos++] = (n & 0x7f) | 0x80; n >>>= 7; }
  out[pos++] = n;
  return pos;
}

/** Size of a length-delimited field (one-byte tag, field numbers < 16) with a body of `len` bytes. */
export const framedSize = (len: number): number => 1 + varintSize(len) + len;

// ---- validation

/** UTF-8 check: short ASCII strings (most attribute keys and values) are checked here four bytes at a
 * time through a DataView of the buffer, which is cheaper than a native call plus a subarray view;
 * anything else goes to the native validator. */
export function validUtf8(buf: Uint8Array, start: number, end: number): boolean {
  if (end - start <= 256) {
    if (buf !== viewOf) { viewOf = buf; view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength); }
    let acc = 0;
    let i = start;
    for (; i + 8 <= end; i += 8) acc |= view.getInt32(i) | view.getInt32(i + 4);
    if (i + 4 <= end) { acc |= view.getInt32(i); i += 4; }
    for (; i < end; i++) acc |= buf[i]!;
    if ((acc & 0x80808080) === 0) return true;
  }
  return isUtf8(buf.subarray(start, end));
}
// The view of the buffer last checked: one request's strings all share it.
let viewOf: Uint8Array | undefined;
let view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

interface WalkState {
  maxAttrBytes: number;
  oversizedAttr: boolean;
  badId: boolean;
  dataPoints: number;
  /** ArrayValue/KeyValueList levels above the current position. */
  listDepth: number;
  /** A value nested deeper than MAX_VALUE_NESTING (its inside was not walked). */
  tooDeep: boolean;
}

const walkState = (maxAttrBytes: number): WalkState =>
  ({ maxAttrBytes, oversizedAttr: false, badId: false, dataPoints: 0, listDepth: 0, tooDeep: false });

function allZero(buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}

function walk(buf: Uint8Array, pos: number, end: number, rule: TypeRule, st: WalkState, inAttr: boolean): void {
  if (rule.isDataPoint) st.dataPoints++;
  const fields = rule.fields;
  while (pos < end) {
    // Tags and lengths under 128 (nearly all of them) are read inline, without the shared cursor.
    let tag = buf[pos]!;
    if (tag === rule.attrTag) {
      // A run of attributes of the usual shape is checked in one tight loop (walkKeyValue); the
      // first unusual one, or the next other field, is read below.
      pos = walkAttributeRun(buf, pos, end, tag, st, inAttr);
      if (pos >= end) break;
      tag = buf[pos]!;
    }
    if (tag < 0x80) pos++;
    else { at = pos; tag = readVarint32(buf, end); pos = at; }
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 0) throw new WireError(`invalid field number 0 in ${rule.name}`);
    const fr = fields[field];
    if (wt === 2) {
      if (pos >= end) throw new WireError('truncated varint');
      let len = buf[pos]!;
      if (len < 0x80) pos++;
      else { at = pos; len = readVarint32(buf, end); pos = at; }
      const next = pos + len;
      if (next > end) throw new WireError(`truncated field ${field} of ${rule.name}`);
      if (fr) {
        switch (fr.kind) {
          case Kind.Message:
            if (!fr.type!.isValueList) walk(buf, pos, next, fr.type!, st, inAttr || fr.attrValue === true);
            // Bounded before descending: the recursion can never get deep enough to overflow.
            else if (st.listDepth >= MAX_VALUE_NESTING) st.tooDeep = true;
            else { st.listDepth++; walk(buf, pos, next, fr.type!, st, inAttr || fr.attrValue === true); st.listDepth--; }
            break;
          case Kind.String:
            if (len > 0 && !validUtf8(buf, pos, next)) throw new WireError(`invalid UTF-8 in a string field of ${rule.name}`);
            if (inAttr && len > st.maxAttrBytes) st.oversizedAttr = true;
            break;
          case Kind.Bytes:
            if (fr.idLen !== undefined && len !== 0 && (len !== fr.idLen || (fr.nonZero === true && allZero(buf, pos, next)))) st.badId = true;
            if (inAttr && len > st.maxAttrBytes) st.oversizedAttr = true;
            break;
          case Kind.Scalar:
            if (!fr.repeated) throw new WireError(`wrong wire type for field ${field} of ${rule.name}`);
            break; // packed repeated scalars
        }
      }
      pos = next;
      continue;
    }
    if (fr && (fr.kind !== Kind.Scalar || fr.wt !== wt)) throw new WireError(`wrong wire type for field ${field} of ${rule.name}`);
    if (wt === 0) pos = skipVarint(buf, pos, end);
    else if (wt === 1) pos += 8;
    else if (wt === 5) pos += 4;
    else throw new WireError(`unsupported wire type ${wt} in ${rule.name}`);
    if (pos > end) throw new WireError(`truncated field ${field} of ${rule.name}`);
  }
}

function walkAttributeRun(buf: Uint8Array, pos: number, end: number, tag: number, st: WalkState, inAttr: boolean): number {
  while (pos + 1 < end && buf[pos] === tag) {
    const len = buf[pos + 1]!;
    if (len >= 0x80) break;
    const next = pos + 2 + len;
    if (next > end || !walkKeyValue(buf, pos + 2, next, st, inAttr)) break;
    pos = next;
  }
  return pos;
}


/**
 * The common KeyValue inline: key (1, string) and value (2, AnyValue) holding a string (1), bool (2),
 * int (3), double (4) or bytes (7) value, one-byte lengths, fields in any order. Anything else
 * (nested arrays/kvlists, unknown fields, long varints, invalid UTF-8) returns false before any
 * effect but flags a valid walk would set too, and the caller walks the KeyValue generically, which
 * accepts or refuses it exactly as before.
 */
function walkKeyValue(buf: Uint8Array, pos: number, end: number, st: WalkState, inAttr: boolean): boolean {
  while (pos < end) {
    const tag = buf[pos]!;
    if (tag !== 0x0a && tag !== 0x12) return false;
    if (pos + 1 >= end) return false;
    const len = buf[pos + 1]!;
    if (len >= 0x80) return false;
    const start = pos + 2;
    const next = start + len;
    if (next > end) return false;
    if (tag === 0x0a) { // key
      if (len > 0 && !validUtf8(buf, start, next)) return false;
      if (inAttr && len > st.maxAttrBytes) st.oversizedAttr = true;
    } else if (!walkAnyValue(buf, start, next, st)) {
      return false;
    }
    pos = next;
  }
  return true;
}

/** AnyValue of a scalar kind, under an attribute (its size counts); false = walk it generically. */
function walkAnyValue(buf: Uint8Array, pos: number, end: number, st: WalkState): boolean {
  while (pos < end) {
    const tag = buf[pos++]!;
    if (tag === 0x0a || tag === 0x3a) { // string_value, bytes_value
      if (pos >= end) return false;
      const len = buf[pos++]!;
      if (len >= 0x80) return false;
      const next = pos + len;
      if (next > end) return false;
      if (tag === 0x0a && len > 0 && !validUtf8(buf, pos, next)) return false;
      if (len > st.maxAttrBytes) st.oversizedAttr = true;
      pos = next;
    } else if (tag === 0x10 || tag === 0x18) { // bool_value, int_value
      let i = 0;
      while (pos < end && buf[pos]! >= 0x80 && i < 9) { pos++; i++; }
      if (pos >= end || buf[pos]! >= 0x80) return false;
      pos++;
    } else if (tag === 0x21) { // double_value
      pos += 8;
      if (pos > end) return false;
    } else {
      return false;
    }
  }
  return true;
}

// ---- request structure

interface Span { start: number; end: number }

export interface ItemRef { bytes: Uint8Array; count: number }

export interface ScopeGroup {
  /** The scope's own fields other than its items (InstrumentationScope, schema_url, unknowns), raw. */
  header: Uint8Array;
  items: ItemRef[];
}

export interface ResourceGroup {
  /** The Resource message body after tenant stamping. */
  resource: Uint8Array;
  /** The ResourceX fields other than resource and scopes (schema_url, unknowns), raw. */
  trailer: Uint8Array;
  scopes: ScopeGroup[];
}

export type RejectReason = 'attribute_too_large' | 'invalid_id' | 'item_too_large' | 'value_too_deep';

export interface ParsedRequest {
  resources: ResourceGroup[];
  accepted: number;
  rejected: Map<RejectReason, number>;
}

export interface ParseLimits { maxAttributeValueBytes: number }

export class TenantMismatchError extends Error {}

function concatSpans(buf: Uint8Array, spans: Span[]): Uint8Array {
  if (spans.length === 0) return EMPTY;
  if (spans.length === 1) return buf.subarray(spans[0]!.start, spans[0]!.end);
  let n = 0;
  for (const s of spans) n += s.end - s.start;
  const out = new Uint8Array(n);
  let p = 0;
  for (const s of spans) { out.set(buf.subarray(s.start, s.end), p); p += s.end - s.start; }
  return out;
}
const EMPTY = new Uint8Array(0);

function encodeString(field: number, s: Uint8Array): Uint8Array {
  const out = new Uint8Array(framedSize(s.length));
  out[0] = (field << 3) | 2;
  const p = writeVarint(out, 1, s.length);
  out.set(s, p);
  return out;
}

const tenantKvCache = new Map<string, Uint8Array>();
/** KeyValue field (Resource.attributes = 1) holding tenant.id = <tenant>, framed. */
function tenantAttributeField(tenant: string): Uint8Array {
  let f = tenantKvCache.get(tenant);
  if (!f) {
    const kv = Buffer.concat([encodeString(1, Buffer.from('tenant.id')), encodeString(2, encodeString(1, Buffer.from(tenant)))]);
    f = encodeString(1, kv);
    tenantKvCache.set(tenant, f);
  }
  return f;
}

const TENANT_KEY = Buffer.from('tenant.id');

/**
 * Whether a Resource body carries a `tenant.id` attribute; throws TenantMismatchError unless every
 * occurrence is a string equal to `tenant` (a consumer taking the first or the last match must
 * never read another tenant).
 */
function hasTenantClaim(buf: Uint8Array, start: number, end: number, tenant: string): boolean {
  let pos = start;
  let claimed = false;
  while (pos < end) {
    let tag: number, len: number;
    at = pos; tag = readVarint32(buf, end); pos = at;
    if ((tag & 7) !== 2) { pos = skipField(buf, pos, end, tag & 7); continue; }
    at = pos; len = readVarint32(buf, end); pos = at;
    const next = pos + len;
    if (tag >>> 3 === 1) {
      // KeyValue: key = 1, value = 2 (AnyValue: string_value = 1)
      let p = pos, key: Uint8Array | undefined, value: string | undefined = '';
      while (p < next) {
        let t: number, l: number;
        at = p; t = readVarint32(buf, next); p = at;
        if ((t & 7) !== 2) { p = skipField(buf, p, next, t & 7); continue; }
        at = p; l = readVarint32(buf, next); p = at;
        if (t >>> 3 === 1) key = buf.subarray(p, p + l);
        else if (t >>> 3 === 2) value = anyValueString(buf, p, p + l);
        p += l;
      }
      if (key && key.length === TENANT_KEY.length && Buffer.from(key.buffer, key.byteOffset, key.length).equals(TENANT_KEY)) {
        if (value !== tenant) throw new TenantMismatchError('a resource carries a tenant.id attribute that does not match the tenant of the bearer token');
        claimed = true;
      }
    }
    pos = next;
  }
  return claimed;
}

function anyValueString(buf: Uint8Array, start: number, end: number): string | undefined {
  let p = start;
  let out: string | undefined;
  while (p < end) {
    let t: number, l: number;
    at = p; t = readVarint32(buf, end); p = at;
    if ((t & 7) !== 2) { out = undefined; p = skipField(buf, p, end, t & 7); continue; }
    at = p; l = readVarint32(buf, end); p = at;
    out = t >>> 3 === 1 ? Buffer.from(buf.buffer, buf.byteOffset + p, l).toString('utf8') : undefined;
    p += l;
  }
  return out;
}

/** Skip a field's payload; it must fit in [pos, end) (an unknown field is skipped only when well-formed). */
function skipField(buf: Uint8Array, pos: number, end: number, wt: number): number {
  let next: number;
  if (wt === 0) return skipVarint(buf, pos, end);
  if (wt === 1) next = pos + 8;
  else if (wt === 5) next = pos + 4;
  else if (wt === 2) { at = pos; const l = readVarint32(buf, end); next = at + l; }
  else throw new WireError(`unsupported wire type ${wt}`);
  if (next > end) throw new WireError('truncated field');
  return next;
}

/**
 * Validate an Export*ServiceRequest, stamp `tenant` on every resource, and group its items.
 * Throws WireError for malformed protobuf, TenantMismatchError when a resource claims another tenant.
 * Items with an oversized attribute value or a malformed id are left out and counted as rejected.
 */
export function parseExportRequest(signal: Signal, buf: Uint8Array, tenant: string, limits: ParseLimits): ParsedRequest {
  const itemRule = itemRules[signal.name];
  const rejected = new Map<RejectReason, number>();
  const reject = (r: RejectReason, n: number) => rejected.set(r, (rejected.get(r) ?? 0) + n);
  const resources: ResourceGroup[] = [];
  let accepted = 0;
  const end = buf.length;
  let pos = 0;
  while (pos < end) {
    let tag: number, len: number;
    at = pos; tag = readVarint32(buf, end); pos = at;
    if (tag >>> 3 !== 1) { if ((tag >>> 3) === 0) throw new WireError('invalid field number 0'); pos = skipField(buf, pos, end, tag & 7); continue; }
    if ((tag & 7) !== 2) throw new WireError('wrong wire type for the resource list');
    at = pos; len = readVarint32(buf, end); pos = at;
    const rEnd = pos + len;
    if (rEnd > end) throw new WireError('truncated resource');
    // ResourceX: resource = 1, scopes = 2, schema_url = 3 (same numbers in all three signals)
    let resourceSpan: Span | undefined;
    const trailer: Span[] = [];
    const scopes: ParsedScope[] = [];
    let resourceBad: RejectReason | undefined;
    let p = pos;
    while (p < rEnd) {
      const fieldStart = p;
      let t: number;
      at = p; t = readVarint32(buf, rEnd); p = at;
      const f = t >>> 3, wt = t & 7;
      if (f === 0) throw new WireError('invalid field number 0');
      if ((f === 1 || f === 2 || f === 3) && wt !== 2) throw new WireError(`wrong wire type for field ${f} of a resource entry`);
      if (wt !== 2) { p = skipField(buf, p, rEnd, wt); if (p > rEnd) throw new WireError('truncated field'); trailer.push({ start: fieldStart, end: p }); continue; }
      let l: number;
      at = p; l = readVarint32(buf, rEnd); p = at;
      const fEnd = p + l;
      if (fEnd > rEnd) throw new WireError('truncated field of a resource entry');
      if (f === 1) {
        const st = walkState(limits.maxAttributeValueBytes);
        walk(buf, p, fEnd, resourceRule, st, false);
        if (st.tooDeep) resourceBad = 'value_too_deep';
        else if (st.oversizedAttr) resourceBad = 'attribute_too_large';
        resourceSpan = { start: p, end: fEnd }; // a repeated resource field merges; the last one wins for our purposes
      } else if (f === 2) {
        scopes.push(parseScope(buf, p, fEnd, itemRule, limits, signal.name === 'metrics'));
      } else {
        if (f === 3 && l > 0 && !isUtf8(buf.subarray(p, fEnd))) throw new WireError('invalid UTF-8 in schema_url');
        trailer.push({ start: fieldStart, end: fEnd });
      }
      p = fEnd;
    }
    // Stamp the tenant.
    let resource: Uint8Array;
    if (resourceSpan) {
      const claimed = hasTenantClaim(buf, resourceSpan.start, resourceSpan.end, tenant);
      const body = buf.subarray(resourceSpan.start, resourceSpan.end);
      resource = claimed ? body : concatBytes(body, tenantAttributeField(tenant));
    } else {
      resource = tenantAttributeField(tenant);
    }
    const kept: ScopeGroup[] = [];
    for (const sc of scopes) {
      for (const [r, n] of sc.rejected) reject(r, n);
      const n = sc.items.reduce((a, i) => a + i.count, 0);
      // An oversized or too deeply nested attribute on the resource or scope taints every item under it.
      const bad = resourceBad ?? sc.bad;
      if (bad) { if (n > 0) reject(bad, n); continue; }
      accepted += n;
      kept.push({ header: sc.header, items: sc.items });
    }
    resources.push({ resource, trailer: concatSpans(buf, trailer), scopes: kept });
    pos = rEnd;
  }
  return { resources, accepted, rejected };
}

interface ParsedScope extends ScopeGroup { bad: RejectReason | undefined; rejected: Map<RejectReason, number> }

function parseScope(buf: Uint8Array, start: number, end: number, itemRule: TypeRule, limits: ParseLimits, countPoints: boolean): ParsedScope {
  const header: Span[] = [];
  const items: ItemRef[] = [];
  const rejected = new Map<RejectReason, number>();
  let bad: RejectReason | undefined;
  let p = start;
  while (p < end) {
    const fieldStart = p;
    let t: number;
    at = p; t = readVarint32(buf, end); p = at;
    const f = t >>> 3, wt = t & 7;
    if (f === 0) throw new WireError('invalid field number 0');
    if ((f === 1 || f === 2 || f === 3) && wt !== 2) throw new WireError(`wrong wire type for field ${f} of a scope entry`);
    if (wt !== 2) { p = skipField(buf, p, end, wt); if (p > end) throw new WireError('truncated field'); header.push({ start: fieldStart, end: p }); continue; }
    let l: number;
    at = p; l = readVarint32(buf, end); p = at;
    const fEnd = p + l;
    if (fEnd > end) throw new WireError('truncated field of a scope entry');
    if (f === 2) {
      const st = walkState(limits.maxAttributeValueBytes);
      walk(buf, p, fEnd, itemRule, st, false);
      const count = countPoints ? st.dataPoints : 1;
      if (st.oversizedAttr || st.badId || st.tooDeep) {
        const reason: RejectReason = st.tooDeep ? 'value_too_deep' : st.oversizedAttr ? 'attribute_too_large' : 'invalid_id';
        rejected.set(reason, (rejected.get(reason) ?? 0) + count);
      } else {
        items.push({ bytes: buf.subarray(fieldStart, fEnd), count });
      }
    } else {
      if (f === 1) {
        const st = walkState(limits.maxAttributeValueBytes);
        walk(buf, p, fEnd, scopeRule, st, false);
        if (st.tooDeep) bad = 'value_too_deep';
        else if (st.oversizedAttr) bad = 'attribute_too_large';
      } else if (f === 3 && l > 0 && !isUtf8(buf.subarray(p, fEnd))) {
        throw new WireError('invalid UTF-8 in schema_url');
      }
      header.push({ start: fieldStart, end: fEnd });
    }
    p = fEnd;
  }
  return { header: concatSpans(buf, header), items, bad, rejected };
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

// ---- re-framing and splitting

function scopeBodySize(sc: ScopeGroup): number {
  let n = sc.header.length;
  for (const it of sc.items) n += it.bytes.length;
  return n;
}

function resourceBodySize(r: ResourceGroup): number {
  let n = framedSize(r.resource.length) + r.trailer.length;
  for (const sc of r.scopes) n += framedSize(scopeBodySize(sc));
  return n;
}

function writeResource(out: Uint8Array, pos: number, r: ResourceGroup): number {
  out[pos++] = 0x0a;
  pos = writeVarint(out, pos, resourceBodySize(r));
  out[pos++] = 0x0a;
  pos = writeVarint(out, pos, r.resource.length);
  out.set(r.resource, pos); pos += r.resource.length;
  for (const sc of r.scopes) {
    out[pos++] = 0x12;
    pos = writeVarint(out, pos, scopeBodySize(sc));
    out.set(sc.header, pos); pos += sc.header.length;
    for (const it of sc.items) { out.set(it.bytes, pos); pos += it.bytes.length; }
  }
  out.set(r.trailer, pos); pos += r.trailer.length;
  return pos;
}

/** Where record values are written; by default each gets a fresh Buffer (see receiver/slab.ts). */
export type RecordAlloc = (size: number) => Buffer;
const freshBuffer: RecordAlloc = (size) => Buffer.allocUnsafe(size);

function encodeRequest(resources: ResourceGroup[], alloc: RecordAlloc): Buffer {
  let size = 0;
  for (const r of resources) size += framedSize(resourceBodySize(r));
  const out = alloc(size);
  let pos = 0;
  for (const r of resources) pos = writeResource(out, pos, r);
  return out;
}

export interface SplitResult {
  records: Buffer[];
  /** Items refused because even alone they exceed the record limit. */
  tooLarge: number;
  accepted: number;
}

/**
 * Encode the parsed request as Export requests of at most `maxBytes` each, splitting along resource,
 * then scope, then item boundaries. Each record is a valid Export request on its own.
 */
export function splitIntoRecords(parsed: ParsedRequest, maxBytes: number, alloc: RecordAlloc = freshBuffer): SplitResult {
  const records: Buffer[] = [];
  let cur: ResourceGroup[] = [];
  let curSize = 0;
  let tooLarge = 0;
  let accepted = 0;
  const flush = () => { if (cur.length) { records.push(encodeRequest(cur, alloc)); cur = []; curSize = 0; } };
  const add = (r: ResourceGroup, size: number) => {
    if (curSize + size > maxBytes) flush();
    cur.push(r);
    curSize += size;
    for (const sc of r.scopes) for (const it of sc.items) accepted += it.count;
  };
  for (const r of parsed.resources) {
    if (r.scopes.length === 0) continue;
    const whole = framedSize(resourceBodySize(r));
    if (whole <= maxBytes) { add(r, whole); continue; }
    for (const sc of r.scopes) {
      const one: ResourceGroup = { resource: r.resource, trailer: r.trailer, scopes: [sc] };
      const size = framedSize(resourceBodySize(one));
      if (size <= maxBytes) { add(one, size); continue; }
      // Split the scope's items; an item that alone does not fit is refused.
      const fixed = framedSize(r.resource.length) + r.trailer.length;
      const groupSize = (itemBytes: number) => framedSize(fixed + framedSize(sc.header.length + itemBytes));
      let pack: ItemRef[] = [];
      let packBytes = 0;
      const emit = () => {
        if (!pack.length) return;
        add({ resource: r.resource, trailer: r.trailer, scopes: [{ header: sc.header, items: pack }] }, groupSize(packBytes));
        pack = [];
        packBytes = 0;
      };
      for (const it of sc.items) {
        if (groupSize(it.bytes.length) > maxBytes) { tooLarge += it.count; continue; }
        if (groupSize(packBytes + it.bytes.length) > maxBytes) emit();
        pack.push(it);
        packBytes += it.bytes.length;
      }
      emit();
    }
  }
  flush();
  return { records, tooLarge, accepted };
}
