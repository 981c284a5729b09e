// The reachability graph registry (docs/intake.md "Graphs"): a graph is known to a tenant once its
// bytes were registered (POST /api/v1/reachability/graphs): they go to the tenant's CAS, and a
// write-once marker `<dataDir>/intake/graphs/<tenant>/<hex>` says the CAS digest is a graph (a CAS
// blob alone could be anything: runtime facts, envelopes). The API writes markers, the timeline's
// runtime-facts sink reads them to tell facts of a known graph from orphans; both share the data dir
// as they share the CAS.
import { createHash } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import type { BlobStore } from '../cas.ts';
import { validateTenantId } from '../tenancy.ts';

const HEX = /^[0-9a-f]{64}$/;

export class GraphRegistry {
  constructor(readonly root: string) {}

  static under(dataDir: string): GraphRegistry { return new GraphRegistry(path.join(dataDir, 'intake', 'graphs')); }

  private file(tenant: string, graphHash: string): string {
    if (validateTenantId(tenant)) throw new Error('invalid tenant id');
    const hex = graphHash.replace(/^sha256:/, '');
    if (!HEX.test(hex)) throw new Error('graph hash must be sha256:<64 lowercase hex>');
    return path.join(this.root, tenant, hex);
  }

  async isKnown(tenant: string, graphHash: string): Promise<boolean> {
    try { await fs.access(this.file(tenant, graphHash), constants.F_OK); return true; } catch { return false; }
  }

  /** Marks the graph known (durably: file and directory fsynced); true when it was new. */
  async register(tenant: string, graphHash: string, casUri: string): Promise<boolean> {
    const f = this.file(tenant, graphHash);
    const dir = path.dirname(f);
    await fs.mkdir(dir, { recursive: true });
    let h;
    try { h = await fs.open(f, 'wx', 0o444); } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    try { await h.writeFile(`${casUri}\n`); await h.sync(); } finally { await h.close(); }
    const d = await fs.open(dir, 'r');
    try { await d.sync(); } finally { await d.close(); }
    return true;
  }
}

export type GraphRegistration =
  | { ok: true; graphHash: string; casUri: string; size: number; replay: boolean }
  | { ok: false; reason: 'EMPTY_BODY' | 'CONTENT_SHA256_MISMATCH'; message: string };

/**
 * Registers a graph's bytes for a tenant: CAS first, then the marker. One path for the API route and
 * `stella ingest graph` (air gap). `declaredSha256`: `sha256:<hex>` or bare hex, checked when given.
 */
export async function registerGraph(deps: { cas: BlobStore; graphs: GraphRegistry }, tenant: string, bytes: Uint8Array,
  declaredSha256?: string): Promise<GraphRegistration> {
  if (bytes.length === 0) return { ok: false, reason: 'EMPTY_BODY', message: 'the body must be the graph\'s bytes' };
  const hex = createHash('sha256').update(bytes).digest('hex');
  if (declaredSha256 !== undefined && declaredSha256.trim().toLowerCase().replace(/^sha256:/, '') !== hex) {
    return { ok: false, reason: 'CONTENT_SHA256_MISMATCH', message: 'the declared sha256 is not the sha256 of the graph\'s bytes' };
  }
  const ref = await deps.cas.put(tenant, bytes);
  const fresh = await deps.graphs.register(tenant, ref.digest, ref.uri);
  return { ok: true, graphHash: ref.digest, casUri: ref.uri, size: ref.size, replay: !fresh };
}
