// Tenant-scoped reads of runtime_ingests / runtime_facts (clickhouse/0201): every statement carries
// the tenant predicate (TenantStore checks it), values travel as parameters, FINAL so a redelivered
// record's rows never show twice.
import { TenantStore } from './tenant-store.ts';
import type { Store } from './store.ts';

export interface StoredRuntimeIngest {
  ingest_id: string; tenant_id: string; graph_hash: string; content_sha256: string; cas_uri: string; size: string; records: string;
  first_ts_unix_nano: string; last_ts_unix_nano: string; signed_by: string; envelope_cas_uri: string; via: string; received_at_unix_nano: string;
}

export interface StoredRuntimeFact { line: number; ts_unix_nano: string; symbol_id: string; purl: string; pid: number; container: string; count: string }

export class RuntimeStore extends TenantStore {
  async getIngest(ingestId: string): Promise<StoredRuntimeIngest | undefined> {
    const rows = await this.rows<StoredRuntimeIngest>(`SELECT ingest_id, tenant_id, graph_hash, content_sha256, cas_uri, toString(size) AS size,
      toString(records) AS records, toString(toUnixTimestamp64Nano(first_ts)) AS first_ts_unix_nano, toString(toUnixTimestamp64Nano(last_ts)) AS last_ts_unix_nano,
      signed_by, envelope_cas_uri, via, toString(toUnixTimestamp64Nano(received_at)) AS received_at_unix_nano
      FROM runtime_ingests FINAL WHERE tenant_id = {tenant:String} AND ingest_id = {id:String} LIMIT 1`, { id: ingestId });
    return rows[0];
  }

  /** Facts of one ingest in line order, `afterLine` exclusive. */
  listFacts(ingestId: string, afterLine: number, limit: number): Promise<StoredRuntimeFact[]> {
    return this.rows<StoredRuntimeFact>(`SELECT line, toString(toUnixTimestamp64Nano(ts)) AS ts_unix_nano, symbol_id, purl, pid, container, toString(count) AS count
      FROM runtime_facts FINAL WHERE tenant_id = {tenant:String} AND ingest_id = {id:String} AND line > {after:UInt32}
      ORDER BY line LIMIT {limit:UInt32}`, { id: ingestId, after: afterLine, limit: Math.min(Math.max(1, limit), 10_000) });
  }

  async countFacts(ingestId: string): Promise<number> {
    const rows = await this.rows<{ n: string }>(`SELECT toString(count()) AS n FROM runtime_facts FINAL
      WHERE tenant_id = {tenant:String} AND ingest_id = {id:String}`, { id: ingestId });
    return Number(rows[0]?.n ?? 0);
  }
}

export const runtimeForTenant = (store: Store, tenant: string): RuntimeStore => new RuntimeStore(store, tenant);
