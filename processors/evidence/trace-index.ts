// trace id → log indices of the clean records (span and log batches) that hold the trace, so a
// trace's bundle can carry the records themselves (docs/evidence.md "Records in bundles").
//
// After each seal the runner writes `traces/<to_size>.json` (immutable, canonical JSON
// `{"from":F,"to":T,"traces":{"<32 hex trace id>":[<index>,...],...}}`) for the clean-record entries
// in [F, T). Like `index/`, it is derived data, not part of the log: a verifier never needs it, and a
// file lost in a crash is rebuilt from the sealed entries and the stored record bytes.
import { canonicalBytes } from './jcs.ts';
import { sizesFromNames } from './layout.ts';
import type { EvidenceStore } from './store.ts';

export const tracesPath = (toSize: number): string => `traces/${toSize}.json`;

export interface TraceIndexFile { from: number; to: number; traces: Record<string, number[]> }

/** Which clean topics hold span and log batches (their records carry trace ids). */
export type TracedSignal = 'traces' | 'logs';

// OTLP field numbers: Export{Trace,Logs}ServiceRequest.resource_* = 1, Resource{Spans,Logs}.scope_* = 2,
// Scope{Spans,Logs}.{spans,log_records} = 2, Span.trace_id = 1, LogRecord.trace_id = 9.
const TRACE_ID_FIELD: Record<TracedSignal, number> = { traces: 1, logs: 9 };

class Cursor {
  constructor(readonly b: Buffer, public p: number, readonly end: number) {}
  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.p >= this.end) throw new RangeError('truncated varint');
      const x = this.b[this.p++]!;
      v += (x & 0x7f) * mul;
      if (x < 0x80) return v;
      mul *= 128;
    }
    throw new RangeError('varint too long');
  }
  /** Skip a field of wire type `wt`; returns [start, end) of a length-delimited one. */
  skip(wt: number): [number, number] | undefined {
    if (wt === 0) { this.varint(); return undefined; }
    if (wt === 1) { this.p += 8; } else if (wt === 5) { this.p += 4; } else if (wt === 2) {
      const n = this.varint();
      const s = this.p;
      this.p += n;
      if (this.p > this.end) throw new RangeError('truncated field');
      return [s, this.p];
    } else throw new RangeError(`wire type ${wt} not supported`);
    if (this.p > this.end) throw new RangeError('truncated field');
    return undefined;
  }
}

/** The length-delimited fields number `field` of the message in [start, end). */
function* fields(b: Buffer, start: number, end: number, field: number): Generator<[number, number]> {
  const c = new Cursor(b, start, end);
  while (c.p < end) {
    const tag = c.varint();
    const r = c.skip(tag & 7);
    if (r && tag >>> 3 === field) yield r;
  }
}

/**
 * The distinct trace ids (lowercase hex, sorted) of the spans or log records in one OTLP export
 * request, read straight off the protobuf wire (no decode). All-zero and absent ids are left out;
 * undecodable bytes give [] (the clean topics only carry what the scrubber re-encoded).
 */
export function traceIdsOfRecord(signal: TracedSignal, bytes: Uint8Array): string[] {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Set<string>();
  const idField = TRACE_ID_FIELD[signal];
  try {
    for (const [rs, re] of fields(b, 0, b.length, 1)) {
      for (const [ss, se] of fields(b, rs, re, 2)) {
        for (const [is, ie] of fields(b, ss, se, 2)) {
          for (const [ts, te] of fields(b, is, ie, idField)) {
            if (te - ts !== 16) continue;
            const id = b.toString('hex', ts, te);
            if (id !== '00000000000000000000000000000000') out.add(id);
          }
        }
      }
    }
  } catch { return []; }
  return [...out].sort();
}

/** The trace index file for entries [from, to). */
export function traceIndexFileBytes(from: number, to: number, pairs: Iterable<[string, number]>): Buffer {
  const traces: Record<string, number[]> = {};
  for (const [id, i] of pairs) if (i >= from && i < to) (traces[id] ??= []).push(i);
  for (const l of Object.values(traces)) l.sort((a, b) => a - b);
  return canonicalBytes({ from, to, traces } satisfies TraceIndexFile);
}

/** Largest size covered by a trace index file (undefined when there is none yet). */
export async function lastTraceIndexSize(store: EvidenceStore, tenant: string): Promise<number | undefined> {
  return sizesFromNames(await store.list(tenant, 'traces'), '.json').pop();
}

/**
 * The log indices (< `size`) of the clean records holding `traceId`. Reads each index file up to
 * `size`; a file that does not mention the id is skipped without parsing.
 */
export async function traceRecordIndices(store: EvidenceStore, tenant: string, traceId: string, size: number): Promise<number[]> {
  const id = traceId.toLowerCase();
  const out: number[] = [];
  for (const s of sizesFromNames(await store.list(tenant, 'traces'), '.json')) {
    const b = await store.read(tenant, tracesPath(s));
    if (!b || Buffer.from(b.buffer, b.byteOffset, b.byteLength).indexOf(`"${id}"`) < 0) continue;
    const f = JSON.parse(Buffer.from(b).toString('utf8')) as TraceIndexFile;
    for (const i of f.traces[id] ?? []) if (i < size) out.push(i);
  }
  return [...new Set(out)].sort((a, b) => a - b);
}
