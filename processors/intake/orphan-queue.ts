// The runtime-facts orphan queue on disk: one file per parked intake record,
// `<dataDir>/intake/orphans/<tenant>/<ingest_id>.json`, written tmp + fsync + rename + directory
// fsync before the sink reports the record durable (so its Kafka offset is committed only once the
// orphan survives a crash). Entries are loaded back at start; the retry loop is in runtime-sink.ts.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { StageRecord } from '../../lib/kafka/stage.ts';
import { validateTenantId } from '../../lib/tenancy.ts';
import type { OrphanState } from './orphans.ts';

export interface OrphanEntry {
  tenant: string;
  ingestId: string;
  graphHash: string;
  record: StageRecord;
  state: OrphanState;
}

interface OrphanFile {
  v: 1; tenant: string; ingest_id: string; graph_hash: string;
  record: { topic: string; partition: number; offset: string; key: string | null; value_b64: string; headers: Record<string, string>; timestamp: string };
  state: OrphanState;
}

const ID = /^[0-9a-f]{32}$/;

export class OrphanQueue {
  private readonly entries = new Map<string, OrphanEntry>();

  constructor(readonly root: string) {}

  static under(dataDir: string): OrphanQueue { return new OrphanQueue(path.join(dataDir, 'intake', 'orphans')); }

  private static key(tenant: string, ingestId: string): string { return `${tenant}/${ingestId}`; }

  private file(tenant: string, ingestId: string): string {
    if (validateTenantId(tenant) || !ID.test(ingestId)) throw new Error('orphan entry: invalid tenant or ingest id');
    return path.join(this.root, tenant, `${ingestId}.json`);
  }

  get size(): number { return this.entries.size; }

  has(tenant: string, ingestId: string): boolean { return this.entries.has(OrphanQueue.key(tenant, ingestId)); }

  list(): OrphanEntry[] { return [...this.entries.values()]; }

  /** Reads every entry on disk (after a restart); unreadable files are skipped and returned by name. */
  async load(): Promise<string[]> {
    const bad: string[] = [];
    let tenants: string[];
    try { tenants = await fs.readdir(this.root); } catch { return bad; }
    for (const t of tenants) {
      for (const f of await fs.readdir(path.join(this.root, t)).catch(() => [] as string[])) {
        if (!f.endsWith('.json')) continue;
        const p = path.join(this.root, t, f);
        try {
          const o = JSON.parse(await fs.readFile(p, 'utf8')) as OrphanFile;
          if (o.v !== 1 || o.tenant !== t || `${o.ingest_id}.json` !== f) throw new Error('mismatch');
          this.entries.set(OrphanQueue.key(o.tenant, o.ingest_id), {
            tenant: o.tenant, ingestId: o.ingest_id, graphHash: o.graph_hash, state: o.state,
            record: { topic: o.record.topic, partition: o.record.partition, offset: o.record.offset, key: o.record.key,
              value: Buffer.from(o.record.value_b64, 'base64'), headers: o.record.headers, timestamp: o.record.timestamp },
          });
        } catch { bad.push(p); }
      }
    }
    return bad;
  }

  /** Writes the entry durably (new or updated). */
  async put(e: OrphanEntry): Promise<void> {
    const f = this.file(e.tenant, e.ingestId);
    const dir = path.dirname(f);
    await fs.mkdir(dir, { recursive: true });
    const body: OrphanFile = { v: 1, tenant: e.tenant, ingest_id: e.ingestId, graph_hash: e.graphHash, state: e.state,
      record: { topic: e.record.topic, partition: e.record.partition, offset: String(e.record.offset), key: e.record.key ?? null,
        value_b64: Buffer.from(e.record.value).toString('base64'), headers: { ...e.record.headers }, timestamp: e.record.timestamp } };
    const tmp = `${f}.${process.pid}.${Date.now()}.tmp`;
    const h = await fs.open(tmp, 'w');
    try { await h.writeFile(JSON.stringify(body)); await h.sync(); } finally { await h.close(); }
    await fs.rename(tmp, f);
    const d = await fs.open(dir, 'r');
    try { await d.sync(); } finally { await d.close(); }
    this.entries.set(OrphanQueue.key(e.tenant, e.ingestId), e);
  }

  async remove(e: Pick<OrphanEntry, 'tenant' | 'ingestId'>): Promise<void> {
    await fs.rm(this.file(e.tenant, e.ingestId), { force: true });
    this.entries.delete(OrphanQueue.key(e.tenant, e.ingestId));
  }
}
