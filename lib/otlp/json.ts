// OTLP/JSON <-> protobuf, per the OTLP specification's JSON mapping: keys lowerCamelCase, trace and
// span ids hex (not base64), enums as integers, 64-bit integers as strings or numbers, unknown
// fields ignored. Everything else follows the proto3 JSON mapping (bytes_value stays base64).
import protobuf from 'protobufjs';
import { signals, type SignalName } from './proto.ts';

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

/** An already-parsed OTLP/JSON Export request as a protobufjs message (ids converted from hex).
 * Mutates `obj`. Throws JsonInputError with a reason. */
export function otlpJsonToMessage(signal: SignalName, obj: unknown): protobuf.Message {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new JsonInputError('the body must be a JSON object');
  walkIds(signal, obj as Record<string, unknown>, idsToBytes);
  try {
    return signals[signal].request.fromObject(obj as Record<string, unknown>);
  } catch (err) {
    throw new JsonInputError(`not an OTLP ${signal} request: ${(err as Error).message}`);
  }
}

/** Parse an OTLP/JSON Export request body into protobuf bytes. Throws JsonInputError with a reason. */
export function otlpJsonToProto(signal: SignalName, text: string): Uint8Array {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new JsonInputError(`invalid JSON: ${(err as Error).message}`);
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
