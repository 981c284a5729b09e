// The receiver's pure core: one Export request body in, the Kafka record values out (validated,
// tenant-stamped, split under the record limit) plus what was refused and why. No I/O.
import type { Signal } from '../lib/otlp/proto.ts';
import { parseExportRequest, splitIntoRecords, TenantMismatchError, WireError, type RejectReason } from '../lib/otlp/wire.ts';

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
}

const describe: Record<RejectReason, (n: number, noun: string, l: IngestLimits) => string> = {
  attribute_too_large: (n, noun, l) => `${n} ${noun} refused: an attribute value exceeds ${l.maxAttributeValueBytes} bytes`,
  invalid_id: (n, noun) => `${n} ${noun} refused: trace ids must be 16 bytes and span ids 8 bytes`,
  item_too_large: (n, noun, l) => `${n} ${noun} refused: larger than the ${l.maxRecordBytes}-byte Kafka record limit on their own`,
};

export const itemNoun = (signal: Signal): string =>
  signal.name === 'traces' ? 'spans' : signal.name === 'logs' ? 'log records' : 'data points';

export function prepareExport(signal: Signal, body: Uint8Array, tenant: string, limits: IngestLimits): PreparedExport {
  let parsed;
  try {
    parsed = parseExportRequest(signal, body, tenant, limits);
  } catch (err) {
    if (err instanceof WireError) throw new IngestError('invalid', 'malformed_protobuf', `malformed OTLP ${signal.name} protobuf: ${err.message}`);
    if (err instanceof TenantMismatchError) throw new IngestError('forbidden', 'tenant_mismatch', err.message);
    throw err;
  }
  const split = splitIntoRecords(parsed, limits.maxRecordBytes);
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
  return { records: split.records, accepted: split.accepted, rejected, rejectedBy, message: parts.join('; ') };
}
