// Wire-level scrubbing of OTLP Export*ServiceRequest bytes: no protobufjs objects. The request is
// walked once, driven by a plan compiled from the project's .proto files (like the receiver's
// lib/otlp/wire.ts), and every string-bearing place is scanned:
//   all:     resource and scope attributes (nested kvlists and arrays at any depth)
//   traces:  span name, status message, span attributes, event names + attributes, link attributes
//   logs:    body (string, kvlist, array, nested), attributes, event_name
//   metrics: metric description and metadata, data point and exemplar (filtered) attributes
// Values of sensitive keys are replaced whatever their type. A message in which nothing changed is
// copied through byte for byte (unknown fields included); a changed message is re-emitted with only
// the changed fields replaced and the length prefixes of its ancestors corrected.
// Spans, log records, resources and scopes that had something redacted get summary attributes like
// the collector's redaction processor: `redaction.masked.count`, `redaction.masked.rules` (rule ids)
// and `redaction.masked.keys` (attribute keys), never values. Metric data points get none (an extra
// attribute would split the time series); the batch summary (Kafka header) covers them.
// The walk validates what a strict decoder would: framing, wire types of known fields, UTF-8 of
// every string; a malformed request throws WireError (the runner sends it to the DLQ).
import { isUtf8 } from 'node:buffer';
import Long from 'long';
import protobuf from 'protobufjs';
import { WireError, skipVarint, validUtf8, varintSize, writeVarint } from '../../lib/otlp/wire.ts';
import { otlpRoot, type SignalName } from '../../lib/otlp/proto.ts';
import type { TenantScrubPolicy } from './config.ts';
import { hashBytes, wasAscii } from './bytecache.ts';
import { REDACTED_VALUE, Tally, scrubberFor, type KeyInfo, type Scrubber } from './engine.ts';
import { MIN_SCAN_LENGTH } from './scanner.ts';

export { WireError };

/** What one request had redacted, per rule id. Values never appear here. */
export interface ScrubSummary {
  /** Redactions per rule id. */
  rules: Record<string, number>;
  total: number;
  /** Spans, log records, metrics, metric points, resources and scopes that had at least one redaction. */
  items: number;
  /** Rules relaxed by an active deep-debug grant while this request was scrubbed. */
  relaxed: string[];
  /**
   * Spans, log records, metrics (or scope/resource entries) left out because a value in them nests
   * deeper than MAX_DEPTH allows: only they go, the rest of the request is kept. The receiver
   * refuses such items at intake; only records written around it (Kafka-direct) get here.
   */
  dropped?: number;
}

export interface WireScrubResult {
  /** The scrubbed request: the input instance itself when nothing was redacted. */
  value: Uint8Array;
  summary: ScrubSummary;
}

/** `scrubber` overrides the cached per-policy scrubber (benchmarks compare cache settings with it). */
export interface ScrubOptions { scrubber?: Scrubber }

// ---- plan

const enum Kind { Message, String, Bytes, Scalar }
const enum Role {
  None,
  /** A string field scanned into the current item's tally (span name, status message, ...). */
  Text,
  /** A KeyValue field of an attribute list. */
  Attr,
  /** An AnyValue that is not an attribute value (the log body). */
  Body,
}

interface FieldPlan { kind: Kind; wt: number; repeated: boolean; type: MsgPlan | undefined; role: Role }

interface MsgPlan {
  name: string;
  fields: (FieldPlan | undefined)[];
  /** Counted as an item of its own (its own tally). */
  item: boolean;
  /** The attribute list field that gets summary attributes (0: none). */
  stampField: number;
  /** Dropped on its own when a value inside it nests too deep (span, log record, metric, scope and resource entries). */
  dropUnit: boolean;
}

const P = 'opentelemetry.proto.';
const KEY_VALUE = `.${P}common.v1.KeyValue`;
const ANY_VALUE = `.${P}common.v1.AnyValue`;
const TEXT: Record<string, string[]> = {
  [`.${P}trace.v1.Span`]: ['name'],
  [`.${P}trace.v1.Status`]: ['message'],
  [`.${P}trace.v1.Span.Event`]: ['name'],
  [`.${P}logs.v1.LogRecord`]: ['eventName'],
  [`.${P}metrics.v1.Metric`]: ['description'],
};
/** Items with their own tally, and the attribute list that carries their summary (undefined: none). */
const ITEMS: Record<string, string | undefined> = {
  [`.${P}resource.v1.Resource`]: 'attributes',
  [`.${P}common.v1.InstrumentationScope`]: 'attributes',
  [`.${P}trace.v1.Span`]: 'attributes',
  [`.${P}logs.v1.LogRecord`]: 'attributes',
  [`.${P}metrics.v1.Metric`]: undefined,
  [`.${P}metrics.v1.NumberDataPoint`]: undefined,
  [`.${P}metrics.v1.HistogramDataPoint`]: undefined,
  [`.${P}metrics.v1.ExponentialHistogramDataPoint`]: undefined,
  [`.${P}metrics.v1.SummaryDataPoint`]: undefined,
};
const scalarWireType: Record<string, number> = {
  double: 1, fixed64: 1, sfixed64: 1, float: 5, fixed32: 5, sfixed32: 5,
  int32: 0, int64: 0, uint32: 0, uint64: 0, sint32: 0, sint64: 0, bool: 0,
};

/** Compile a message plan; `scrub` false gives a validate-only plan (no roles, no items). */
function compile(type: protobuf.Type, scrub: boolean, cache: Map<string, MsgPlan>): MsgPlan {
  const existing = cache.get(type.fullName);
  if (existing) return existing;
  const stampName = scrub ? ITEMS[type.fullName] : undefined;
  const plan: MsgPlan = { name: type.fullName, fields: [], item: scrub && type.fullName in ITEMS, stampField: 0,
    dropUnit: scrub && /^\.opentelemetry\.proto\.(trace\.v1\.(Span|ScopeSpans|ResourceSpans)|logs\.v1\.(LogRecord|ScopeLogs|ResourceLogs)|metrics\.v1\.(Metric|ScopeMetrics|ResourceMetrics))$/.test(type.fullName) };
  cache.set(type.fullName, plan);
  for (const f of type.fieldsArray) {
    f.resolve();
    let fp: FieldPlan;
    const rt = f.resolvedType;
    if (rt instanceof protobuf.Type) {
      const role = !scrub ? Role.None : rt.fullName === KEY_VALUE ? Role.Attr : rt.fullName === ANY_VALUE ? Role.Body : Role.None;
      fp = { kind: Kind.Message, wt: 2, repeated: f.repeated, type: compile(rt, scrub, cache), role };
      if (f.name === stampName) plan.stampField = f.id;
    } else if (rt instanceof protobuf.Enum) {
      fp = { kind: Kind.Scalar, wt: 0, repeated: f.repeated, type: undefined, role: Role.None };
    } else if (f.type === 'string') {
      fp = { kind: Kind.String, wt: 2, repeated: f.repeated, type: undefined, role: scrub && TEXT[type.fullName]?.includes(f.name) ? Role.Text : Role.None };
    } else if (f.type === 'bytes') {
      fp = { kind: Kind.Bytes, wt: 2, repeated: f.repeated, type: undefined, role: Role.None };
    } else {
      const wt = scalarWireType[f.type];
      if (wt === undefined) throw new Error(`unsupported proto type ${f.type}`);
      fp = { kind: Kind.Scalar, wt, repeated: f.repeated, type: undefined, role: Role.None };
    }
    plan.fields[f.id] = fp;
  }
  return plan;
}

const scrubPlans = new Map<string, MsgPlan>();
const checkPlans = new Map<string, MsgPlan>();
const requestName = { traces: 'collector.trace.v1.ExportTraceServiceRequest', metrics: 'collector.metrics.v1.ExportMetricsServiceRequest', logs: 'collector.logs.v1.ExportLogsServiceRequest' };
const requestPlans = Object.fromEntries((Object.keys(requestName) as SignalName[]).map((s) => {
  return [s, compile(otlpRoot.lookupType(P + requestName[s]), true, scrubPlans)];
})) as Record<SignalName, MsgPlan>;
/** Validate-only plan of an AnyValue (values of `redaction.*` attributes are checked, never scrubbed). */
const anyValueCheck = compile(otlpRoot.lookupType(P + 'common.v1.AnyValue'), false, checkPlans);

// ---- reading

// The read position of readVarint32 (one cursor instead of [value, pos] tuples; the walk is synchronous).
// Kept separate from lib/otlp/wire.ts's cursor, which is module-private on the receiver's hot path.
let at = 0;

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
  throw new WireError('varint too long for a length or tag');
}

/** A varint-encoded int64 at `pos` as a signed decimal string (what protobufjs' Long prints). */
function int64String(buf: Uint8Array, pos: number, end: number): string {
  let lo = 0, hi = 0;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new WireError('truncated varint');
    const b = buf[pos++]!;
    if (i < 4) lo |= (b & 0x7f) << (7 * i);
    else if (i === 4) { lo |= (b & 0x0f) << 28; hi |= (b & 0x7f) >> 4; }
    else hi |= (b & 0x7f) << (7 * i - 32);
    if (b < 0x80) return Long.fromBits(lo, hi, false).toString();
  }
  throw new WireError('varint longer than 10 bytes');
}

/** Skip a field's payload of wire type `wt` starting at `pos`; returns the position after it. */
function skipPayload(buf: Uint8Array, pos: number, end: number, wt: number, where: string): number {
  let next: number;
  if (wt === 0) return skipVarint(buf, pos, end);
  if (wt === 1) next = pos + 8;
  else if (wt === 5) next = pos + 4;
  else if (wt === 2) { at = pos; const l = readVarint32(buf, end); next = at + l; }
  else throw new WireError(`unsupported wire type ${wt} in ${where}`);
  if (next > end) throw new WireError(`truncated field in ${where}`);
  return next;
}

// Buffer's own slicers (what toString(encoding, start, end) calls after checking its arguments).
interface Slicers { latin1Slice(s: number, e: number): string; utf8Slice(s: number, e: number): string }

/** The UTF-8 string at [s, e), validated; `ascii` if the caller already knows it is all ASCII. */
function readString(buf: Buffer, s: number, e: number, ascii = false): string {
  if (!ascii) {
    let i = s;
    while (i < e && buf[i]! < 0x80) i++;
    ascii = i === e;
  }
  if (ascii) return (buf as unknown as Slicers).latin1Slice(s, e);
  if (!isUtf8(buf.subarray(s, e))) throw new WireError('invalid UTF-8 in a string field');
  return (buf as unknown as Slicers).utf8Slice(s, e);
}

function checkUtf8(buf: Buffer, s: number, e: number): void {
  if (e > s && !validUtf8(buf, s, e)) throw new WireError('invalid UTF-8 in a string field');
}

// ---- writing: a changed message is its unchanged byte ranges plus replaced/appended fields

/**
 * A changed message body, not yet written: bytes [start, end) of `buf` with `edits` applied. Ropes
 * nest (a changed span inside a changed scope inside ...) and are written once, at the top, so a
 * request with many changed spans is copied once rather than once per level.
 */
class Rope {
  constructor(readonly buf: Uint8Array, readonly start: number, readonly end: number, readonly edits: Edit[], readonly size: number) {}
}
type Piece = Uint8Array | Rope;
const pieceSize = (p: Piece): number => (p instanceof Rope ? p.size : p.length);

/** Replace bytes [s, e) of the enclosing message by a length-delimited field `field` with `body`
 * (field 0, never a valid field number: remove the bytes). */
interface Edit { s: number; e: number; field: number; body: Piece }

/** What walking a drop unit returns when it was dropped. */
const DROPPED: Uint8Array = new Uint8Array(0);

function splice(buf: Uint8Array, start: number, end: number, edits: Edit[]): Rope {
  let size = end - start;
  for (const x of edits) {
    if (x.field === 0) { size -= x.e - x.s; continue; }
    const n = pieceSize(x.body);
    size += varintSize((x.field << 3) | 2) + varintSize(n) + n - (x.e - x.s);
  }
  return new Rope(buf, start, end, edits, size);
}

function writePiece(out: Uint8Array, p: number, piece: Piece): number {
  if (!(piece instanceof Rope)) { out.set(piece, p); return p + piece.length; }
  const { buf, edits } = piece;
  let from = piece.start;
  for (const x of edits) {
    out.set(buf.subarray(from, x.s), p); p += x.s - from;
    from = x.e;
    if (x.field === 0) continue;
    p = writeVarint(out, p, (x.field << 3) | 2);
    p = writeVarint(out, p, pieceSize(x.body));
    p = writePiece(out, p, x.body);
  }
  out.set(buf.subarray(from, piece.end), p);
  return p + piece.end - from;
}

function flatten(piece: Piece): Uint8Array {
  if (!(piece instanceof Rope)) return piece;
  const out = Buffer.allocUnsafe(piece.size);
  writePiece(out, 0, piece);
  return out;
}

function lengthDelimited(field: number, body: Uint8Array): Uint8Array {
  // (small fields: summary attributes and placeholders)
  const out = new Uint8Array(varintSize((field << 3) | 2) + varintSize(body.length) + body.length);
  let p = writeVarint(out, 0, (field << 3) | 2);
  p = writeVarint(out, p, body.length);
  out.set(body, p);
  return out;
}

/** AnyValue { string_value } */
const stringAnyValue = (s: string): Uint8Array => lengthDelimited(1, Buffer.from(s, 'utf8'));

/** The key field (KeyValue.key = 1) of each summary attribute, encoded once. */
const keyField = (key: string): Buffer => Buffer.from(lengthDelimited(1, Buffer.from(key, 'utf8')));

/** A KeyValue body: an encoded key field, then value = AnyValue { `valueField`: payload }. */
function summaryKeyValue(key: Buffer, valueTag: number, payload: Uint8Array): Buffer {
  const any = 1 + (valueTag === 0x18 ? 0 : varintSize(payload.length)) + payload.length;
  const out = Buffer.allocUnsafe(key.length + 1 + varintSize(any) + any);
  key.copy(out, 0);
  let p = key.length;
  out[p++] = 0x12;
  p = writeVarint(out, p, any);
  out[p++] = valueTag;
  if (valueTag !== 0x18) p = writeVarint(out, p, payload.length);
  out.set(payload, p);
  return out;
}

/** The varint (two's complement, 64-bit) of a JS integer. */
function int64Varint(n: number): Uint8Array {
  if (n >= 0 && n < 0x80) return Uint8Array.of(n);
  const l = Long.fromNumber(n);
  let lo = l.low >>> 0, hi = l.high >>> 0;
  const bytes: number[] = [];
  while (hi !== 0 || lo > 0x7f) {
    bytes.push((lo & 0x7f) | 0x80);
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  bytes.push(lo);
  return Uint8Array.from(bytes);
}

// ---- the walk

/**
 * Messages nested deeper than this below the request are refused, as protobufjs and protoc do
 * (recursion limit 100): downstream decoders could not read such a record, and the walk's own
 * recursion stays far from the stack limit. Depth 1 is the request itself.
 */
const MAX_DEPTH = 101;
class TooDeepError extends WireError {}
const tooDeep = (): WireError => new TooDeepError('messages nested deeper than 100 levels');

const MASKED_COUNT = 'redaction.masked.count';
const MASKED_RULES = 'redaction.masked.rules';
const MASKED_KEYS = 'redaction.masked.keys';
const KEY_FIELDS: Record<string, Buffer> = { [MASKED_COUNT]: keyField(MASKED_COUNT), [MASKED_RULES]: keyField(MASKED_RULES), [MASKED_KEYS]: keyField(MASKED_KEYS) };

/** The first `redaction.masked.*` attribute of an item: where it is and what it holds. */
interface Mark { s: number; e: number; valueS: number; valueE: number }

class Walk {
  readonly rules = new Map<string, number>();
  total = 0;
  items = 0;
  /** First redaction.masked.{count,rules,keys} attribute of the item being walked (stamp level only). */
  marks: Record<string, Mark> | null = null;

  dropped = 0;

  /** Current nesting (messages and value lists): bounded, so a deeply nested value cannot overflow the stack. */
  private depth = 0;

  /**
   * The keys of the previous item's attributes by position (byte range in this request, verdicts):
   * spans of one instrumentation carry the same keys in the same order, so a key usually equals the
   * one at its position in the previous span, which costs a byte compare instead of a hash lookup.
   */
  private readonly memo: { s: number; e: number; info: KeyInfo }[] = [];
  private ordinal = 0;

  /** Tallies of finished items, reused (items nest: a metric holds data points). */
  private readonly spare: Tally[] = [];

  constructor(readonly buf: Buffer, readonly scrubber: Scrubber, readonly summaryAttributes: boolean) {}

  private takeTally(): Tally {
    const t = this.spare.pop();
    if (t === undefined) return new Tally();
    t.reset();
    return t;
  }

  summary(): ScrubSummary {
    const rules: Record<string, number> = {};
    for (const id of [...this.rules.keys()].sort()) rules[id] = this.rules.get(id)!;
    return { rules, total: this.total, items: this.items, relaxed: [...this.scrubber.relaxed].sort(), ...(this.dropped ? { dropped: this.dropped } : {}) };
  }

  /** A span, log record, metric or scope/resource entry: a too-deep value drops it alone (DROPPED). */
  private unit(start: number, end: number, plan: MsgPlan, outer: Tally | null): Piece | null {
    const depth = this.depth, marks = this.marks, ordinal = this.ordinal;
    try {
      return this.message(start, end, plan, outer);
    } catch (err) {
      if (!(err instanceof TooDeepError)) throw err;
      this.depth = depth; this.marks = marks; this.ordinal = ordinal;
      this.dropped++;
      return DROPPED;
    }
  }

  /** Walk a message body [start, end); returns its new body, or null when nothing changed. */
  message(start: number, end: number, plan: MsgPlan, outer: Tally | null): Piece | null {
    const buf = this.buf;
    if (++this.depth > MAX_DEPTH) throw tooDeep();
    const tally = plan.item ? this.takeTally() : outer;
    if (plan.stampField) { this.marks = null; this.ordinal = 0; }
    let edits: Edit[] | null = null;
    const fields = plan.fields;
    let pos = start;
    while (pos < end) {
      const fs = pos;
      at = pos; const tag = readVarint32(buf, end); pos = at;
      const field = tag >>> 3, wt = tag & 7;
      if (field === 0) throw new WireError(`invalid field number 0 in ${plan.name}`);
      const fp = fields[field];
      if (wt !== 2) {
        if (fp !== undefined && (fp.kind !== Kind.Scalar || fp.wt !== wt)) throw new WireError(`wrong wire type for field ${field} of ${plan.name}`);
        pos = skipPayload(buf, pos, end, wt, plan.name);
        continue;
      }
      at = pos; const len = readVarint32(buf, end); pos = at;
      const next = pos + len;
      if (next > end) throw new WireError(`truncated field ${field} of ${plan.name}`);
      if (fp !== undefined) {
        let out: Piece | null = null;
        switch (fp.kind) {
          case Kind.Message:
            if (fp.role === Role.Attr) out = this.keyValue(fs, pos, next, tally!, false, field === plan.stampField);
            else if (fp.role === Role.Body) out = this.anyValue(pos, next, tally!, undefined);
            else if (fp.type!.dropUnit) out = this.unit(pos, next, fp.type!, tally);
            else out = this.message(pos, next, fp.type!, tally);
            break;
          case Kind.String:
            if (fp.role === Role.Text) out = this.text(pos, next, tally!, undefined);
            else checkUtf8(buf, pos, next);
            break;
          case Kind.Scalar:
            if (!fp.repeated) throw new WireError(`wrong wire type for field ${field} of ${plan.name}`);
            break; // packed repeated scalars
          case Kind.Bytes:
            break;
        }
        if (out !== null) (edits ??= []).push({ s: fs, e: next, field: out === DROPPED ? 0 : field, body: out });
      }
      pos = next;
    }
    if (plan.item) {
      if (tally!.count > 0) edits = this.close(tally!, plan.stampField, end, edits);
      this.spare.push(tally!);
    }
    this.depth--;
    return edits === null ? null : splice(buf, start, end, edits);
  }

  /** Fold an item's tally into the batch; stamp summary attributes on it if it has an attribute list. */
  private close(t: Tally, stampField: number, end: number, edits: Edit[] | null): Edit[] | null {
    this.items++;
    this.total += t.count;
    for (const [id, n] of t.rules) this.rules.set(id, (this.rules.get(id) ?? 0) + n);
    if (stampField === 0 || !this.summaryAttributes) return edits;
    const out = edits ?? [];
    const marks = this.marks;
    let sort = false;
    const set = (key: string, valueTag: number, payload: Uint8Array) => {
      const m = marks?.[key];
      const body = summaryKeyValue(KEY_FIELDS[key]!, valueTag, payload);
      if (m) { out.push({ s: m.s, e: m.e, field: stampField, body }); sort = true; }
      else out.push({ s: end, e: end, field: stampField, body });
    };
    // AnyValue int_value (field 3, varint: tag 0x18) and string_value (field 1: tag 0x0a)
    set(MASKED_COUNT, 0x18, int64Varint(t.count + this.existingCount(marks?.[MASKED_COUNT])));
    set(MASKED_RULES, 0x0a, Buffer.from(this.mergeList(marks?.[MASKED_RULES], t.rules.keys()), 'utf8'));
    if (t.keys.size) set(MASKED_KEYS, 0x0a, Buffer.from(this.mergeList(marks?.[MASKED_KEYS], t.keys), 'utf8'));
    if (sort) out.sort((a, b) => a.s - b.s || a.e - b.e);
    this.marks = null;
    return out;
  }

  /** The int_value of an existing redaction.masked.count (0 if absent or not an int). */
  private existingCount(m: Mark | undefined): number {
    if (!m || m.valueS < 0) return 0;
    let v: string | undefined;
    this.eachField(m.valueS, m.valueE, (f, wt, p) => { if (f === 3 && wt === 0) v = int64String(this.buf, p, m.valueE); });
    return v === undefined ? 0 : Number(v);
  }

  /** An existing comma-separated list merged with `add`, deduplicated and sorted. */
  private mergeList(m: Mark | undefined, add: Iterable<string>): string {
    let prev: string | undefined;
    if (m && m.valueS >= 0) this.eachField(m.valueS, m.valueE, (f, wt, p, e) => { if (f === 1 && wt === 2) prev = readString(this.buf, p, e); });
    if (!prev) return Array.from(add).sort().join(','); // (rule ids and keys come from Maps/Sets: unique)
    return [...new Set([...prev.split(','), ...add])].sort().join(',');
  }

  /** Call `fn(field, wireType, payloadStart, payloadEnd)` for each field of [s, e) (already validated). */
  private eachField(s: number, e: number, fn: (field: number, wt: number, p: number, pe: number) => void): void {
    let pos = s;
    while (pos < e) {
      at = pos; const tag = readVarint32(this.buf, e); pos = at;
      const wt = tag & 7;
      let p = pos;
      if (wt === 2) { at = pos; const l = readVarint32(this.buf, e); p = at; pos = p + l; }
      else pos = skipPayload(this.buf, pos, e, wt, 'AnyValue');
      fn(tag >>> 3, wt, p, pos);
    }
  }

  /** A scanned string field: its new UTF-8 bytes, or null when unchanged. */
  private text(s: number, e: number, tally: Tally, key: string | undefined): Piece | null {
    const buf = this.buf;
    if (e - s < MIN_SCAN_LENGTH) { checkUtf8(buf, s, e); return null; } // UTF-8 bytes >= UTF-16 units
    const cache = this.scrubber.cleanBytes;
    let h = 0;
    let ascii = false;
    if (cache !== undefined && e - s <= cache.maxBytes) {
      h = hashBytes(buf, s, e);
      ascii = wasAscii;
      if (cache.get(h, buf, s, e) !== undefined) { this.scrubber.stats.cached++; return null; }
    }
    const str = readString(buf, s, e, ascii);
    const before = tally.count;
    const out = this.scrubber.string(str, tally, key);
    if (out === str) {
      if (cache !== undefined && tally.count === before) cache.set(h, buf, s, e, true);
      return null;
    }
    return Buffer.from(out, 'utf8');
  }

  /** keyInfo for the next attribute of a stamped item, through the positional memo. */
  private memoKeyInfo(s: number, e: number): KeyInfo {
    const buf = this.buf;
    const m = this.memo[this.ordinal];
    if (m !== undefined && m.e - m.s === e - s) {
      let i = 0;
      const n = e - s;
      while (i < n && buf[m.s + i] === buf[s + i]) i++;
      if (i === n) { this.ordinal++; return m.info; }
    }
    const info = this.keyInfo(s, e);
    if (m !== undefined) { m.s = s; m.e = e; m.info = info; }
    else if (this.ordinal === this.memo.length && this.ordinal < 256) this.memo.push({ s, e, info });
    this.ordinal++;
    return info;
  }

  /** What the scrubber says about the attribute key at [s, e) (s < 0: no key), by its bytes. */
  private keyInfo(s: number, e: number): KeyInfo {
    const sc = this.scrubber;
    if (s < 0) return { key: '', sensitive: sc.isSensitiveKey(''), redaction: false };
    const cache = sc.keyBytes;
    const h = hashBytes(this.buf, s, e);
    const ascii = wasAscii;
    let info = cache.get(h, this.buf, s, e);
    if (info === undefined) {
      const key = readString(this.buf, s, e, ascii);
      info = { key, sensitive: sc.isSensitiveKey(key), redaction: key.startsWith('redaction.') };
      cache.set(h, this.buf, s, e, info);
    }
    return info;
  }

  /**
   * A KeyValue [s, e) (its field starts at fs). `sensitive`: inside a sensitive key's value, where
   * every value is replaced and `redaction.*` keys are not special. `stamp`: a direct attribute of
   * an item that gets summary attributes (existing redaction.masked.* attributes are noted).
   */
  private keyValue(fs: number, s: number, e: number, tally: Tally, sensitive: boolean, stamp: boolean): Piece | null {
    if (++this.depth > MAX_DEPTH) throw tooDeep();
    const out = this.keyValueBody(fs, s, e, tally, sensitive, stamp);
    this.depth--;
    return out;
  }

  private keyValueBody(fs: number, s: number, e: number, tally: Tally, sensitive: boolean, stamp: boolean): Piece | null {
    const buf = this.buf;
    let keyS = -1, keyE = -1, valS = -1, valE = -1, valFs = -1, values = 0;
    let pos = s;
    while (pos < e) {
      const vfs = pos;
      at = pos; const tag = readVarint32(buf, e); pos = at;
      const field = tag >>> 3, wt = tag & 7;
      if (field === 0) throw new WireError('invalid field number 0 in KeyValue');
      if (wt !== 2) {
        if (field === 1 || field === 2) throw new WireError(`wrong wire type for field ${field} of KeyValue`);
        pos = skipPayload(buf, pos, e, wt, 'KeyValue');
        continue;
      }
      at = pos; const len = readVarint32(buf, e); pos = at;
      const next = pos + len;
      if (next > e) throw new WireError('truncated field of KeyValue');
      if (field === 1) { keyS = pos; keyE = next; }
      else if (field === 2) { valS = pos; valE = next; valFs = vfs; values++; }
      pos = next;
    }
    if (values === 0) { if (keyS >= 0) checkUtf8(buf, keyS, keyE); return null; }
    // A key repeated on the wire: the last one is the key (protobuf semantics).
    const info = stamp && keyS >= 0 ? this.memoKeyInfo(keyS, keyE) : this.keyInfo(keyS, keyE);
    const key = info.key;
    if (!sensitive && info.redaction) {
      this.eachValue(s, e, (vs, ve) => { this.message(vs, ve, anyValueCheck, null); });
      if (stamp && (key === MASKED_COUNT || key === MASKED_RULES || key === MASKED_KEYS) && !this.marks?.[key]) {
        (this.marks ??= {})[key] = { s: fs, e, valueS: valS, valueE: valE };
      }
      return null;
    }
    const sens = sensitive || info.sensitive;
    if (values === 1) {
      const out = sens ? this.sensitiveValue(valS, valE, tally, key) : this.anyValue(valS, valE, tally, key);
      return out === null ? null : splice(buf, s, e, [{ s: valFs, e: valE, field: 2, body: out }]);
    }
    // A value repeated on the wire (legal, the last one wins when decoded): every occurrence is scrubbed.
    let edits: Edit[] | null = null;
    this.eachValue(s, e, (vs, ve, vfs) => {
      const out = sens ? this.sensitiveValue(vs, ve, tally, key) : this.anyValue(vs, ve, tally, key);
      if (out !== null) (edits ??= []).push({ s: vfs, e: ve, field: 2, body: out });
    });
    return edits === null ? null : splice(buf, s, e, edits);
  }

  /** For each field 2 (value) of a KeyValue (or field 1 of a list) in [s, e): fn(payloadStart, payloadEnd, fieldStart). */
  private eachValue(s: number, e: number, fn: (vs: number, ve: number, fs: number) => void, field = 2): void {
    let pos = s;
    while (pos < e) {
      const fs = pos;
      at = pos; const tag = readVarint32(this.buf, e); pos = at;
      const wt = tag & 7;
      if (wt !== 2) { pos = skipPayload(this.buf, pos, e, wt, 'KeyValue'); continue; }
      at = pos; const l = readVarint32(this.buf, e); pos = at;
      if (tag >>> 3 === field) fn(pos, pos + l, fs);
      pos += l;
    }
  }

  /**
   * An AnyValue [s, e) of an ordinary key: the first present of string, array, kvlist (in that
   * order, as the decoded message would be read) is scrubbed; numbers, booleans and bytes stay.
   */
  private anyValue(s: number, e: number, tally: Tally, key: string | undefined): Piece | null {
    if (++this.depth > MAX_DEPTH) throw tooDeep();
    const out = this.anyValueBody(s, e, tally, key);
    this.depth--;
    return out;
  }

  private anyValueBody(s: number, e: number, tally: Tally, key: string | undefined): Piece | null {
    // Fast path, the common shape: an AnyValue holding just a string_value.
    if (e - s >= 2 && this.buf[s] === 0x0a) {
      at = s + 1; const len = readVarint32(this.buf, e);
      if (at + len === e) {
        const out = len === 0 ? null : this.text(at, e, tally, key);
        return out === null ? null : splice(this.buf, s, e, [{ s, e, field: 1, body: out }]);
      }
    }
    const kind = this.anyKind(s, e);
    if (kind !== 1 && kind !== 5 && kind !== 6) return null;
    return this.anyFields(s, e, kind, (vs, ve) => {
      if (kind === 1) return ve === vs ? null : this.text(vs, ve, tally, key);
      if (kind === 5) return this.list(vs, ve, (is, ie) => this.anyValue(is, ie, tally, key));
      return this.list(vs, ve, (is, ie, ifs) => this.keyValue(ifs, is, ie, tally, false, false));
    });
  }

  /**
   * A sensitive key's value: strings, numbers and bytes become a string placeholder (a numeric PIN
   * is as secret as a string one), arrays and kvlists are replaced element by element, booleans and
   * empty values stay. Outputs of the scrubber (placeholders, pseudonyms) are left as they are.
   */
  private sensitiveValue(s: number, e: number, tally: Tally, key: string): Piece | null {
    if (++this.depth > MAX_DEPTH) throw tooDeep();
    const out = this.sensitiveValueBody(s, e, tally, key);
    this.depth--;
    return out;
  }

  private sensitiveValueBody(s: number, e: number, tally: Tally, key: string): Piece | null {
    const kind = this.anyKind(s, e);
    if (kind === 1) {
      return this.anyFields(s, e, 1, (vs, ve) => {
        if (ve === vs) return null;
        const str = readString(this.buf, vs, ve);
        if (REDACTED_VALUE.test(str)) return null;
        tally.hit('sensitive_key', key);
        return Buffer.from(this.scrubber.render('sensitive_key', str), 'utf8');
      });
    }
    if (kind === 5) return this.anyFields(s, e, 5, (vs, ve) => this.list(vs, ve, (is, ie) => this.sensitiveValue(is, ie, tally, key)));
    if (kind === 6) return this.anyFields(s, e, 6, (vs, ve) => this.list(vs, ve, (is, ie, ifs) => this.keyValue(ifs, is, ie, tally, true, false)));
    if (kind !== 3 && kind !== 4 && kind !== 7) return null;
    // int_value (3, varint), double_value (4, fixed64), bytes_value (7): the last occurrence of the
    // preferred one (bytes, then int, then double) is what a decoder reads.
    let raw = '';
    let rawKind = 0;
    this.eachField(s, e, (f, wt, p, pe) => {
      if (f === 7 && wt === 2) { raw = this.buf.toString('base64', p, pe); rawKind = 7; }
      else if (f === 3 && wt === 0 && rawKind !== 7) { raw = int64String(this.buf, p, pe); rawKind = 3; }
      else if (f === 4 && wt === 1 && rawKind !== 7 && rawKind !== 3) { raw = String(this.buf.readDoubleLE(p)); rawKind = 4; }
    });
    tally.hit('sensitive_key', key);
    return stringAnyValue(this.scrubber.render('sensitive_key', raw));
  }

  /**
   * Validate an AnyValue and say which member is scrubbed: 1 string, 5 array, 6 kvlist (the first
   * present in that order), else 3/4/7 for int/double/bytes (sensitive values only), 0 for none.
   */
  private anyKind(s: number, e: number): number {
    const buf = this.buf;
    let present = 0;
    let pos = s;
    while (pos < e) {
      at = pos; const tag = readVarint32(buf, e); pos = at;
      const field = tag >>> 3, wt = tag & 7;
      if (field === 0) throw new WireError('invalid field number 0 in AnyValue');
      const want = field === 1 || field === 5 || field === 6 || field === 7 ? 2 : field === 2 || field === 3 ? 0 : field === 4 ? 1 : -1;
      if (want >= 0 && wt !== want) throw new WireError(`wrong wire type for field ${field} of AnyValue`);
      pos = skipPayload(buf, pos, e, wt, 'AnyValue');
      if (field <= 7) present |= 1 << field;
    }
    if (present & 2) return 1;
    if (present & 32) return 5;
    if (present & 64) return 6;
    if (present & 128) return 7;
    if (present & 8) return 3;
    if (present & 16) return 4;
    return 0;
  }

  /** Apply `fn` to the payload of every occurrence of `field` in the AnyValue [s, e); splice the changes. */
  private anyFields(s: number, e: number, field: number, fn: (vs: number, ve: number) => Piece | null): Piece | null {
    let edits: Edit[] | null = null;
    this.eachValue(s, e, (vs, ve, fs) => {
      const out = fn(vs, ve);
      if (out !== null) (edits ??= []).push({ s: fs, e: ve, field, body: out });
    }, field);
    return edits === null ? null : splice(this.buf, s, e, edits);
  }

  /** An ArrayValue or KeyValueList [s, e): `fn` on each element (field 1); unknown fields checked and kept. */
  private list(s: number, e: number, fn: (is: number, ie: number, fs: number) => Piece | null): Piece | null {
    const buf = this.buf;
    if (++this.depth > MAX_DEPTH) throw tooDeep();
    let edits: Edit[] | null = null;
    let pos = s;
    while (pos < e) {
      const fs = pos;
      at = pos; const tag = readVarint32(buf, e); pos = at;
      const field = tag >>> 3, wt = tag & 7;
      if (field === 0) throw new WireError('invalid field number 0 in a value list');
      if (field !== 1) { pos = skipPayload(buf, pos, e, wt, 'a value list'); continue; }
      if (wt !== 2) throw new WireError('wrong wire type for field 1 of a value list');
      at = pos; const len = readVarint32(buf, e); pos = at;
      const next = pos + len;
      if (next > e) throw new WireError('truncated field of a value list');
      const out = fn(pos, next, fs);
      if (out !== null) (edits ??= []).push({ s: fs, e: next, field: 1, body: out });
      pos = next;
    }
    this.depth--;
    return edits === null ? null : splice(buf, s, e, edits);
  }
}

const asBuffer = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/**
 * Scrub an Export*ServiceRequest (protobuf bytes) under a tenant policy at `now` (deep-debug grants
 * active at `now` relax their rules). Returns the scrubbed bytes (the input itself when nothing was
 * redacted) and the summary. Throws WireError for bytes that are not a valid request.
 */
export function scrubRequest(signal: SignalName, bytes: Uint8Array, policy: TenantScrubPolicy, now: Date, opts?: ScrubOptions): WireScrubResult {
  const buf = asBuffer(bytes);
  const w = new Walk(buf, opts?.scrubber ?? scrubberFor(policy, now), policy.summaryAttributes);
  const out = w.message(0, buf.length, requestPlans[signal], null);
  return { value: out === null ? bytes : flatten(out), summary: w.summary() };
}
