// The receiver's pure core: one Export request body in, the Kafka record values out (validated,
// tenant-stamped, split under the record limit) plus what was refused and why. No I/O.
import type { Signal } from '../lib/otlp/proto.ts';
import { MAX_VALUE_NESTING, parseExportRequest, splitIntoRecords, TenantMismatchError, WireError, type ParsedRequest, type RecordAlloc, type RejectReason } from '../lib/otlp/wire.ts';
import { keepLog, keepSpan } from './sampling.ts';

export type IngestErrorKind = 'unauthenticated' | 'forbidden' | 'invalid' | 'too_large' | 'unsupported_media_type' | 'unavailable';

/** A refusal of the whole request; `reason` is a short metric label, `message` goes to the client. */
export class IngestError extends Error {
  constructor(readonly kind: IngestErrorKind, readonly reason: string, message: string) { super(message); }
}

export interface IngestLimits {
  maxRecordBytes: number;
  maxAttributeValueBytes: number;
}

export interface PreparedExport {
  records: Buffer[];
  accepted: number;
  rejected: number;
  rejectedBy: Map<RejectReason, number>;
  /** For partial_success.error_message; empty when nothing was rejected. */
  message: string;
  /** Items dropped by head sampling (not rejections: the client is not told). */
  sampledOut: number;
}

const describe: Record<RejectReason, (n: number, noun: string, l: IngestLimits) => string> = {
  attribute_too_large: (n, noun, l) => `${n} ${noun} refused: an attribute value exceeds ${l.maxAttributeValueBytes} bytes`,
  invalid_id: (n, noun) => `${n} ${noun} refused: trace ids must be 16 bytes and span ids 8 bytes, a span's or a link's not all zero`,
  value_too_deep: (n, noun) => `${n} ${noun} refused: a value nests arrays or kvlists deeper than ${MAX_VALUE_NESTING} levels`,
  item_too_large: (n, noun, l) => `${n} ${noun} refused: larger than the ${l.maxRecordBytes}-byte Kafka record limit on their own`,
};

export const itemNoun = (signal: Signal): string =>
  signal.name === 'traces' ? 'spans' : signal.name === 'logs' ? 'log records' : 'data points';

/**
 * Head sampling (receiver/sampling.ts): drops sampled-out spans / trace-correlated log records
 * in place and returns how many went. Scopes left empty are dropped; metrics are never sampled.
 */
export function applySampling(signal: Signal, parsed: ParsedRequest, threshold: number): number {
  if (signal.name === 'metrics') return 0;
  const keep = signal.name === 'traces' ? keepSpan : keepLog;
  let dropped = 0;
  for (const r of parsed.resources) {
    let emptied: Set<object> | undefined;
    for (const sc of r.scopes) {
      if (sc.items.length === 0) continue;
      let w = 0;
      for (const it of sc.items) {
        if (keep(it.bytes, threshold)) sc.items[w++] = it;
        else dropped += it.count;
      }
      if (w === 0) (emptied ??= new Set()).add(sc);
      sc.items.length = w;
    }
    // Only scopes that sampling emptied go; a scope the client sent without items stays as it was.
    if (emptied) r.scopes = r.scopes.filter((sc) => !emptied!.has(sc));
  }
  parsed.accepted -= dropped;
  return dropped;
}

/** `sampleThreshold`: keep threshold from HeadSampler.thresholdFor (undefined = keep everything);
 * `alloc`: where the record values are written (the ingestor's slab pool; default fresh Buffers). */
export function prepareExport(signal: Signal, body: Uint8Array, tenant: string, limits: IngestLimits, sampleThreshold?: number, alloc?: RecordAlloc): PreparedExport {
  let parsed;
  try {
    parsed = parseExportRequest(signal, body, tenant, limits);
  } catch (err) {
    if (err instanceof WireError) throw new IngestError('invalid', 'malformed_protobuf', `malformed OTLP ${signal.name} protobuf: ${err.message}`);
    if (err instanceof TenantMismatchError) throw new IngestError('forbidden', 'tenant_mismatch', err.message);
    throw err;
  }
  const sampledOut = sampleThreshold === undefined ? 0 : applySampling(signal, parsed, sampleThreshold);
  const split = splitIntoRecords(parsed, limits.maxRecordBytes, alloc);
  const rejectedBy = new Map(parsed.rejected);
  if (split.tooLarge > 0) rejectedBy.set('item_too_large', split.tooLarge);
  let rejected = 0;
  const parts: string[] = [];
  for (const [reason, n] of rejectedBy) {
    rejected += n;
    parts.push(describe[reason](n, itemNoun(signal), limits));
  }
  if (split.accepted === 0 && rejected > 0) {
    const [first] = rejectedBy.keys();
    throw new IngestError(first === 'item_too_large' ? 'too_large' : 'invalid', first ?? 'invalid', parts.join('; '));
  }
  return { records: split.records, accepted: split.accepted, rejected, rejectedBy, message: parts.join('; '), sampledOut };
}
