// OTLP/JSON <-> protobuf, per the OTLP specification's JSON mapping: keys lowerCamelCase, trace and
// span ids hex (not base64), enums as integers, 64-bit integers as strings or numbers, unknown
// fields ignored. Everything else follows the proto3 JSON mapping (bytes_value stays base64).
import protobuf from 'protobufjs';
import { signals, type SignalName } from './proto.ts';
import { MAX_VALUE_NESTING } from './wire.ts';

export class JsonInputError extends Error {}

const ID_FIELDS: Record<string, number> = { traceId: 16, spanId: 8, parentSpanId: 8 };

function hexToBytes(hex: unknown, field: string, len: number): Buffer {
  if (typeof hex !== 'string') throw new JsonInputError(`${field} must be a hex string`);
  if (hex.length === 0) return Buffer.alloc(0);
  if (hex.length !== len * 2 || !/^[0-9a-fA-F]+$/.test(hex)) {
    throw new JsonInputError(`${field} must be ${len * 2} hex characters (got ${hex.length} characters)`);
  }
  return Buffer.from(hex, 'hex');
}

/** Replace hex ids by bytes in place, on the objects that carry them (spans, links, log records, exemplars). */
function idsToBytes(o: Record<string, unknown>): void {
  for (const [k, len] of Object.entries(ID_FIELDS)) if (k in o) o[k] = hexToBytes(o[k], k, len);
}

function each(v: unknown, fn: (o: Record<string, unknown>) => void): void {
  if (Array.isArray(v)) for (const x of v) if (x && typeof x === 'object') fn(x as Record<string, unknown>);
}

function walkIds(signal: SignalName, root: Record<string, unknown>, convert: (o: Record<string, unknown>) => void): void {
  const s = signals[signal];
  each(root[s.resourceField], (r) => each(r[s.scopeField], (sc) => each(sc[s.itemField], (item) => {
    if (signal === 'traces') {
      convert(item);
      each(item.links, convert);
    } else if (signal === 'logs') {
      convert(item);
    } else {
      for (const kind of ['gauge', 'sum', 'histogram', 'exponentialHistogram']) {
        const data = item[kind] as Record<string, unknown> | undefined;
        if (data && typeof data === 'object') each(data.dataPoints, (dp) => each(dp.exemplars, convert));
      }
    }
  })));
}

const INT64 = /^-?(0|[1-9][0-9]{0,18})$/;
const UINT64 = /^(0|[1-9][0-9]{0,19})$/;
const NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;
const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;
const LIMITS: Record<string, [bigint, bigint]> = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n], sint64: [-(2n ** 63n), 2n ** 63n - 1n], sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n], fixed64: [0n, 2n ** 64n - 1n],
  int32: [-(2n ** 31n), 2n ** 31n - 1n], sint32: [-(2n ** 31n), 2n ** 31n - 1n], sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n], fixed32: [0n, 2n ** 32n - 1n],
};
const VALUE_LISTS = new Set(['.opentelemetry.proto.common.v1.ArrayValue', '.opentelemetry.proto.common.v1.KeyValueList']);

/** Why `v` is not a valid proto3-JSON value of scalar/enum field `f`, or undefined if it is. */
function scalarProblem(f: protobuf.Field, v: unknown): string | undefined {
  if (f.resolvedType instanceof protobuf.Enum) {
    if (typeof v === 'number' ? Number.isInteger(v) : typeof v === 'string' && v in f.resolvedType.values) return undefined;
    return 'must be an enum number';
  }
  switch (f.type) {
    case 'string': return typeof v === 'string' ? undefined : 'must be a string';
    case 'bool': return typeof v === 'boolean' ? undefined : 'must be true or false';
    case 'bytes':
      if (f.name in ID_FIELDS) return typeof v === 'string' ? undefined : 'must be a hex string'; // checked by hexToBytes
      return typeof v === 'string' && v.length % 4 !== 1 && BASE64.test(v) ? undefined : 'must be a base64 string';
    case 'double': case 'float':
      if (typeof v === 'number' || (typeof v === 'string' && (NUMBER.test(v) || v === 'NaN' || v === 'Infinity' || v === '-Infinity'))) return undefined;
      return 'must be a number';
    default: {
      const range = LIMITS[f.type];
      if (!range) return undefined;
      let n: bigint;
      if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v);
      else if (typeof v === 'string' && (f.type.startsWith('u') || f.type === 'fixed64' || f.type === 'fixed32' ? UINT64 : INT64).test(v)) n = BigInt(v);
      else return `must be an integer (a number or a decimal string)`;
      return n >= range[0] && n <= range[1] ? undefined : `is out of range for ${f.type}`;
    }
  }
}

/**
 * Check a parsed OTLP/JSON request against the schema before protobufjs sees it: protobufjs'
 * fromObject coerces (`"name": 123` becomes "123", `"startTimeUnixNano": "abc"` becomes 0), which
 * the OTLP JSON mapping does not allow. Unknown keys are ignored, as the mapping says. Iterative,
 * and AnyValue nesting is bounded (MAX_VALUE_NESTING) so the recursive fromObject stays shallow.
 * Reasons name the field path (schema names and indices), never a value.
 */
function checkJsonShape(type: protobuf.Type, root: Record<string, unknown>): void {
  const stack: { type: protobuf.Type; obj: Record<string, unknown>; path: string; lists: number }[] = [{ type, obj: root, path: '', lists: 0 }];
  while (stack.length > 0) {
    const { type: t, obj, path, lists } = stack.pop()!;
    for (const key of Object.keys(obj)) {
      const f = Object.hasOwn(t.fields, key) ? t.fields[key] : undefined;
      const v = obj[key];
      if (!f || v === null) continue; // unknown fields are ignored; null is the default value
      f.resolve();
      const at = path ? `${path}.${key}` : key;
      const values = f.repeated ? v : [v];
      if (!Array.isArray(values)) throw new JsonInputError(`${at} must be an array`);
      for (let i = 0; i < values.length; i++) {
        const x = values[i];
        const xat = f.repeated ? `${at}[${i}]` : at;
        if (f.resolvedType instanceof protobuf.Type) {
          if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new JsonInputError(`${xat} must be an object`);
          const deeper = lists + (VALUE_LISTS.has(f.resolvedType.fullName) ? 1 : 0);
          if (deeper > MAX_VALUE_NESTING) throw new JsonInputError(`${xat} nests arrays or kvlists deeper than ${MAX_VALUE_NESTING} levels`);
          stack.push({ type: f.resolvedType, obj: x as Record<string, unknown>, path: xat, lists: deeper });
        } else {
          const problem = scalarProblem(f, x);
          if (problem) throw new JsonInputError(`${xat} ${problem}`);
        }
      }
    }
  }
}

/** An already-parsed OTLP/JSON Export request as a protobufjs message (ids converted from hex).
 * Mutates `obj`. Throws JsonInputError with a reason. */
export function otlpJsonToMessage(signal: SignalName, obj: unknown): protobuf.Message {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new JsonInputError('the body must be a JSON object');
  try {
    checkJsonShape(signals[signal].request, obj as Record<string, unknown>);
  } catch (err) {
    if (err instanceof JsonInputError) throw new JsonInputError(`not an OTLP ${signal} request: ${err.message}`);
    throw err;
  }
  walkIds(signal, obj as Record<string, unknown>, idsToBytes);
  try {
    return signals[signal].request.fromObject(obj as Record<string, unknown>);
  } catch {
    // protobufjs' messages can quote values; the shape check above has already named the usual faults.
    throw new JsonInputError(`not an OTLP ${signal} request`);
  }
}

/** Parse an OTLP/JSON Export request body into protobuf bytes. Throws JsonInputError with a reason. */
export function otlpJsonToProto(signal: SignalName, text: string): Uint8Array {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    // Never the parser's message: it quotes the body ("Unexpected token 'A', \"AKIA...\"").
    throw new JsonInputError('invalid JSON: the body does not parse as JSON');
  }
  return signals[signal].request.encode(otlpJsonToMessage(signal, obj)).finish();
}

const toObjectOptions: protobuf.IConversionOptions = { longs: String, enums: Number, bytes: String, defaults: false, oneofs: false };

/** Render protobuf bytes of an Export request (or any decoded message of `type`) as OTLP/JSON. */
export function messageToOtlpJson(signal: SignalName | null, type: protobuf.Type, msg: protobuf.Message): Record<string, unknown> {
  const obj = type.toObject(msg, toObjectOptions);
  if (signal) {
    walkIds(signal, obj, (o) => {
      for (const k of Object.keys(ID_FIELDS)) {
        if (typeof o[k] === 'string') o[k] = Buffer.from(o[k] as string, 'base64').toString('hex');
      }
    });
  }
  return obj;
}

export function protoToOtlpJson(signal: SignalName, bytes: Uint8Array): Record<string, unknown> {
  const type = signals[signal].request;
  return messageToOtlpJson(signal, type, type.decode(bytes));
}
