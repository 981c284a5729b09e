// Clean-batch entries (docs/evidence.md "Inputs and entries"): one per clean OTLP record, v1 with its
// position and digest, v2 adding the custody from receipt (raw digest as received, scrub policy).
export const CLEAN_BATCH_TYPE = 'stella.evidence.clean-batch/v1';
/** A clean record with its custody from receipt: v1's fields plus `raw_sha256` and `scrub_policy`. */
export const CLEAN_BATCH_V2_TYPE = 'stella.evidence.clean-batch/v2';

export interface CleanEntry { type: typeof CLEAN_BATCH_TYPE | typeof CLEAN_BATCH_V2_TYPE; topic: string; sha256: string; size: number }

const HEX64 = /^[0-9a-f]{64}$/;

/** A clean-batch entry's type, topic, digest and size (v1 or v2), else undefined (any other entry). */
export function parseCleanEntry(entry: Uint8Array): CleanEntry | undefined {
  const b = Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength);
  if (b.indexOf('"type":"stella.evidence.clean-batch/v') < 0) return undefined; // cheap: most entries are events
  let v: { type?: unknown; topic?: unknown; sha256?: unknown; size?: unknown; event_id?: unknown };
  try { v = JSON.parse(b.toString('utf8')) as typeof v; } catch { return undefined; }
  if (v.event_id !== undefined || (v.type !== CLEAN_BATCH_TYPE && v.type !== CLEAN_BATCH_V2_TYPE) || typeof v.topic !== 'string' || typeof v.sha256 !== 'string' || !HEX64.test(v.sha256)
    || typeof v.size !== 'number' || !Number.isSafeInteger(v.size)) return undefined;
  return { type: v.type, topic: v.topic, sha256: v.sha256, size: v.size };
}
