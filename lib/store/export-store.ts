// Tenant-scoped reads of orchestrator_exports (clickhouse/0202): the API's only path to the table.
// Same rule as TenantStore: every statement carries the tenant predicate (checked), values travel
// as parameters, FINAL so a redelivered or superseded row never shows.
import { TenantStore } from './tenant-store.ts';
import type { Store } from './store.ts';

export interface StoredExport {
  export_id: string; tenant_id: string; artifact_hash: string; run_id: string; status: string; job_type: string; policy_hash: string;
  started_at_text: string; completed_at_text: string; started_at_unix_nano: string; manifest_path: string; logs_path: string;
  environment: string; idempotency_key: string; export_digest: string; body_digest: string; dsse_envelope_digests: string[];
  signer_keyids: string[]; event_id: string; received_at_unix_nano: string; record: string;
}

/** Position after which a page starts: the list's order is (run_id, started_at, export_id). */
export interface ExportCursor { runId: string; startedAtNs: bigint; exportId: string }

export interface ExportFilter {
  runId?: string;
  /** `sha256:<lowercase hex>` */
  artifactHash?: string;
  status?: string;
  after?: ExportCursor;
  limit: number;
}

const COLUMNS = `export_id, tenant_id, artifact_hash, run_id, status, job_type, policy_hash, started_at_text, completed_at_text,
  toString(toUnixTimestamp64Nano(started_at)) AS started_at_unix_nano, manifest_path, logs_path, environment, idempotency_key,
  export_digest, body_digest, dsse_envelope_digests, signer_keyids, event_id, toString(toUnixTimestamp64Nano(received_at)) AS received_at_unix_nano, record`;

export const MAX_EXPORT_LIMIT = 1000;

export class ExportStore extends TenantStore {
  /** Exports ordered by (run_id, started_at, export_id): a stable order, so cursors never skip or repeat. */
  listExports(f: ExportFilter): Promise<StoredExport[]> {
    const where = ['tenant_id = {tenant:String}'];
    const params: Record<string, unknown> = { limit: Math.min(Math.max(1, f.limit), MAX_EXPORT_LIMIT + 1) };
    if (f.runId !== undefined) { where.push('run_id = {run:String}'); params.run = f.runId; }
    if (f.artifactHash !== undefined) { where.push('artifact_hash = {artifact:String}'); params.artifact = f.artifactHash; }
    if (f.status !== undefined) { where.push('status = {status:String}'); params.status = f.status; }
    if (f.after) {
      where.push('(run_id, started_at, export_id) > ({after_run:String}, fromUnixTimestamp64Nano({after_ts:Int64}), {after_id:String})');
      params.after_run = f.after.runId;
      params.after_ts = f.after.startedAtNs.toString();
      params.after_id = f.after.exportId;
    }
    return this.rows<StoredExport>(`SELECT ${COLUMNS} FROM orchestrator_exports FINAL WHERE ${where.join(' AND ')}
      ORDER BY run_id, started_at, export_id LIMIT {limit:UInt32}`, params);
  }

  async getExport(exportId: string): Promise<StoredExport | undefined> {
    const rows = await this.rows<StoredExport>(`SELECT ${COLUMNS} FROM orchestrator_exports FINAL
      WHERE tenant_id = {tenant:String} AND export_id = {id:String} LIMIT 1`, { id: exportId });
    return rows[0];
  }
}

export const exportsForTenant = (store: Store, tenant: string): ExportStore => new ExportStore(store, tenant);
