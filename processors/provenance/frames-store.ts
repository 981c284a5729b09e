// Tenant-scoped reads of the frames table (clickhouse/0210). Every statement goes through
// TenantStore, which refuses SQL without the tenant predicate.
import { forTenant, type Store } from '../../lib/store/index.ts';

export interface FrameRow {
  trace_id: string; span_id: string; source: string; exception_id: string; service_name: string; exception_type: string;
  runtime: string; frame_index: number; function: string; module: string; file: string; line: number; column: number;
  /** Decimal strings (UInt64), null when unknown. */
  ip: string | null; module_offset: string | null;
  build_id: string; pdb_guid: string; pdb_age: number; dsym_uuid: string; resolved_symbol: string;
  ts_unix_nano: string;
}

const COLUMNS = `trace_id, span_id, source, exception_id, service_name, exception_type, runtime, frame_index, function, module, file,
  line, column, toString(ip) AS ip, toString(module_offset) AS module_offset, build_id, pdb_guid, pdb_age, dsym_uuid, resolved_symbol,
  toString(toUnixTimestamp64Nano(ts)) AS ts_unix_nano`;

/** At most this many frames of one trace are read (a trace with more is cut, and says so). */
export const MAX_TRACE_FRAMES = 100_000;

/** The frames of one trace of `tenant`, in (span, exception, frame) order. */
export async function framesOfTrace(store: Store, tenant: string, traceId: string, limit = MAX_TRACE_FRAMES): Promise<FrameRow[]> {
  if (!/^[0-9a-f]{32}$/.test(traceId)) return [];
  const rows = await forTenant(store, tenant).scopedRows<FrameRow & { frame_index: number | string; line: number | string; column: number | string; pdb_age: number | string }>(
    // ReplacingMergeTree semantics without FINAL (measured ~8x slower on one trace): duplicates of a
    // frame share (span_id, ts, exception_id, frame_index), so they sort together, the highest
    // resolved_version first, and LIMIT 1 BY keeps that one.
    `SELECT ${COLUMNS} FROM frames WHERE tenant_id = {tenant:String} AND trace_id = {trace:String}
     ORDER BY span_id, ts, exception_id, frame_index, resolved_version DESC
     LIMIT 1 BY span_id, ts, exception_id, frame_index LIMIT {limit:UInt32}`, { trace: traceId, limit });
  return rows.map((r) => ({ ...r, frame_index: Number(r.frame_index), line: Number(r.line), column: Number(r.column), pdb_age: Number(r.pdb_age),
    ip: r.ip === null || r.ip === '\\N' ? null : r.ip, module_offset: r.module_offset === null || r.module_offset === '\\N' ? null : r.module_offset }));
}
