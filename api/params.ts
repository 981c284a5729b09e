// Query-parameter parsing for the read API: strict, with errors that never echo the input back.
export class BadRequest extends Error {
  constructor(readonly param: string, message: string) { super(message); }
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** RFC 3339 timestamp (up to nanoseconds) or decimal epoch nanoseconds -> bigint nanoseconds. */
export function parseTime(param: string, v: string): bigint {
  if (/^\d{1,19}$/.test(v)) return BigInt(v);
  const m = RFC3339.exec(v);
  if (!m) throw new BadRequest(param, `${param} must be an RFC 3339 timestamp (e.g. 2026-01-02T03:04:05.123Z) or epoch nanoseconds`);
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) throw new BadRequest(param, `${param} is not a valid time`);
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

export function parseLimit(v: string | null, dflt: number, max: number): number {
  if (v === null) return dflt;
  if (!/^\d{1,6}$/.test(v) || Number(v) < 1 || Number(v) > max) throw new BadRequest('limit', `limit must be a whole number from 1 to ${max}`);
  return Number(v);
}

export const HEX_TRACE_ID = /^[0-9a-f]{32}$/;
export const EVENT_ID = /^[0-9a-f]{32}$/;

export function parseTraceId(param: string, v: string): string {
  const t = v.toLowerCase();
  if (!HEX_TRACE_ID.test(t)) throw new BadRequest(param, `${param} must be 32 hex characters`);
  return t;
}

/** A bounded free-text filter value (kind, resource type/id, project): any text, passed as a parameter. */
export function parseText(param: string, v: string): string {
  if (v.length === 0 || v.length > 512) throw new BadRequest(param, `${param} must be 1 to 512 characters`);
  return v;
}

/** Opaque, stable cursor over (ts, event_id): base64url of "v1:<ts_unix_nano>:<event_id>". */
export function encodeCursor(tsUnixNano: string, eventId: string): string {
  return Buffer.from(`v1:${tsUnixNano}:${eventId}`).toString('base64url');
}

export function decodeCursor(v: string): { tsUnixNano: bigint; eventId: string } {
  const m = /^v1:(\d{1,19}):([0-9a-f]{32})$/.exec(/^[A-Za-z0-9_-]{1,200}$/.test(v) ? Buffer.from(v, 'base64url').toString() : '');
  if (!m) throw new BadRequest('cursor', 'cursor is not one this API issued');
  return { tsUnixNano: BigInt(m[1]!), eventId: m[2]! };
}
