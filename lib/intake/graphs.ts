// The reachability graph registry (docs/intake.md "Graphs"): a graph is known to a tenant once its
// bytes were registered (POST /api/v1/reachability/graphs, `stella ingest graph`): they go to the
// tenant's CAS, the registration is published (an intake_graphs record and a reach.graph.registered
// timeline event, sealed in the tenant's evidence log like every intake), and only then a write-once
// marker `<dataDir>/intake/graphs/<tenant>/<hex>` says the CAS digest is a graph (a CAS blob alone
// could be anything: runtime facts, envelopes). The API writes markers, the timeline's runtime-facts
// sink reads them to tell facts of a known graph from orphans; both share the data dir as they
// share the CAS.
import { createHash, randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import type { BlobStore } from '../cas.ts';
import { validateTenantId } from '../tenancy.ts';
import { publishIntake, type IntakeProducer } from './publish.ts';

const HEX = /^[0-9a-f]{64}$/;
const GRAPH_HASH = /^sha256:[0-9a-f]{64}$/;
const CAS_URI = /^cas:\/\/([a-z0-9][a-z0-9_-]{0,62})\/([0-9a-f]{64})$/;

/**
 * What a marker (and a pending registration) holds: everything the registration's record and event
 * are made of, so publishing it again (a retry, a replay) is byte-identical and changes nothing visible.
 */
export interface GraphRegistrationFacts {
  cas_uri: string;
  size: number;
  /** Epoch nanoseconds (decimal) of the first registration attempt: the timeline event's time. */
  registered_at_unix_nano: string;
  /** Who registered it first (token name, `stella-cli`); '' when unknown. */
  actor: string;
  via: 'api' | 'cli' | '';
}

function factsText(f: GraphRegistrationFacts): string {
  return `${JSON.stringify({ cas_uri: f.cas_uri, size: f.size, registered_at_unix_nano: f.registered_at_unix_nano, actor: f.actor, via: f.via })}\n`;
}

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

  /** A known graph's registration facts; undefined when it is not known. */
  async known(tenant: string, graphHash: string): Promise<GraphRegistrationFacts | undefined> {
    return this.readFacts(this.file(tenant, graphHash));
  }

  /**
   * Marks the graph known at once (durably), without publishing anything: for tests and tools that
   * stand in for a registration. True when it was new.
   */
  async register(tenant: string, graphHash: string, casUri: string, facts: Partial<GraphRegistrationFacts> = {}): Promise<boolean> {
    return this.createOnce(this.file(tenant, graphHash), { cas_uri: casUri, size: facts.size ?? 0,
      registered_at_unix_nano: facts.registered_at_unix_nano ?? (BigInt(Date.now()) * 1_000_000n).toString(), actor: facts.actor ?? '', via: facts.via ?? '' });
  }

  /**
   * The registration in progress (`<hex>.pending`): created once with `facts`; a later attempt (a
   * retry after a crash or a Kafka failure, a concurrent request) gets the first attempt's facts, so
   * every attempt publishes the same record and event.
   */
  async pending(tenant: string, graphHash: string, facts: GraphRegistrationFacts): Promise<GraphRegistrationFacts> {
    const f = `${this.file(tenant, graphHash)}.pending`;
    await this.createOnce(f, facts);
    const held = await this.readFacts(f);
    if (!held) throw new Error(`graph registration ${path.basename(f)} is unreadable`);
    return held;
  }

  /** After the publication was acked: the pending registration becomes the marker. True when it was new. */
  async commit(tenant: string, graphHash: string): Promise<boolean> {
    const marker = this.file(tenant, graphHash);
    let fresh = true;
    try { await fs.link(`${marker}.pending`, marker); } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      fresh = false;
    }
    await fs.rm(`${marker}.pending`, { force: true });
    await syncDir(path.dirname(marker));
    return fresh;
  }

  /** Write-once with content: a temp file, fsynced, hard-linked into place (never replaces a name). */
  private async createOnce(f: string, facts: GraphRegistrationFacts): Promise<boolean> {
    const dir = path.dirname(f);
    await fs.mkdir(dir, { recursive: true });
    const tmp = path.join(dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    const h = await fs.open(tmp, 'wx', 0o444);
    try { await h.writeFile(factsText(facts)); await h.sync(); } finally { await h.close(); }
    let fresh = true;
    try { await fs.link(tmp, f); } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') { await fs.rm(tmp, { force: true }); throw err; }
      fresh = false;
    }
    await fs.rm(tmp, { force: true });
    if (fresh) await syncDir(dir);
    return fresh;
  }

  private async readFacts(f: string): Promise<GraphRegistrationFacts | undefined> {
    let text: string;
    try { text = await fs.readFile(f, 'utf8'); } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    if (text.startsWith('{')) {
      const j = JSON.parse(text) as GraphRegistrationFacts;
      return { cas_uri: j.cas_uri, size: j.size, registered_at_unix_nano: j.registered_at_unix_nano, actor: j.actor, via: j.via };
    }
    // A marker from before registrations were published holds only the CAS URI: its (unchanging)
    // mtime stands for the registration time, so publishing it now is deterministic too.
    const st = await fs.stat(f, { bigint: true });
    return { cas_uri: text.trim(), size: 0, registered_at_unix_nano: st.mtimeNs.toString(), actor: '', via: '' };
  }
}

async function syncDir(dir: string): Promise<void> {
  const d = await fs.open(dir, 'r');
  try { await d.sync(); } finally { await d.close(); }
}

/** The intake_graphs record (canonical field order; a pure function of the registration). */
export interface GraphIntakeRecord extends GraphRegistrationFacts { v: 1; tenant: string; graph_hash: string }

export function graphIntakeRecord(tenant: string, graphHash: string, f: GraphRegistrationFacts): GraphIntakeRecord {
  return { v: 1, tenant, graph_hash: graphHash, cas_uri: f.cas_uri, size: f.size, registered_at_unix_nano: f.registered_at_unix_nano, actor: f.actor, via: f.via };
}

/** Checks an intake_graphs record (pure): the record, or the reason it is not one. */
export function parseGraphIntakeRecord(value: Buffer | null, key: string | null): GraphIntakeRecord | string {
  if (!value) return 'empty record';
  let j: unknown;
  try { j = JSON.parse(value.toString('utf8')); } catch { return 'the record is not JSON'; }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) return 'the record is not a JSON object';
  const r = j as Record<string, unknown>;
  if (r.v !== 1) return 'unknown record version';
  if (typeof r.tenant !== 'string' || validateTenantId(r.tenant)) return 'invalid tenant';
  if (key !== r.tenant) return 'the record\'s key is not its tenant';
  if (typeof r.graph_hash !== 'string' || !GRAPH_HASH.test(r.graph_hash)) return 'graph_hash must be sha256:<64 lowercase hex>';
  const m = typeof r.cas_uri === 'string' ? CAS_URI.exec(r.cas_uri) : null;
  if (!m || m[1] !== r.tenant || `sha256:${m[2]}` !== r.graph_hash) return 'cas_uri must be cas://<tenant>/<the graph hash\'s hex>';
  if (!Number.isSafeInteger(r.size) || (r.size as number) < 0) return 'size must be a non-negative integer';
  if (typeof r.registered_at_unix_nano !== 'string' || !/^[0-9]{1,20}$/.test(r.registered_at_unix_nano)) return 'registered_at_unix_nano must be decimal nanoseconds';
  if (typeof r.actor !== 'string' || r.actor.length > 256) return 'invalid actor';
  if (r.via !== 'api' && r.via !== 'cli' && r.via !== '') return 'invalid via';
  return graphIntakeRecord(r.tenant, r.graph_hash, { cas_uri: r.cas_uri as string, size: r.size as number,
    registered_at_unix_nano: r.registered_at_unix_nano, actor: r.actor, via: r.via });
}

export type GraphRegistration =
  | { ok: true; graphHash: string; casUri: string; size: number; replay: boolean; eventId: string }
  | { ok: false; reason: 'EMPTY_BODY' | 'CONTENT_SHA256_MISMATCH'; message: string };

export interface GraphRegisterDeps {
  cas: BlobStore;
  graphs: GraphRegistry;
  producer: IntakeProducer;
  topics: { intakeGraphs: string; timelineEvents: string };
  now?: () => number;
}

/**
 * Registers a graph's bytes for a tenant: CAS, the pending registration, then the intake record and
 * its reach.graph.registered event (resolves once Kafka acked both), then the marker. One path for
 * the API route and `stella ingest graph` (air gap). `declaredSha256`: `sha256:<hex>` or bare hex,
 * checked when given. A graph already known is a replay: its registration is published again
 * (byte-identical: invisible), which also seals graphs registered before registrations were published.
 */
export async function registerGraph(deps: GraphRegisterDeps, tenant: string, bytes: Uint8Array,
  declaredSha256: string | undefined, who: { actor: string; via: 'api' | 'cli' }): Promise<GraphRegistration> {
  if (bytes.length === 0) return { ok: false, reason: 'EMPTY_BODY', message: 'the body must be the graph\'s bytes' };
  const hex = createHash('sha256').update(bytes).digest('hex');
  if (declaredSha256 !== undefined && declaredSha256.trim().toLowerCase().replace(/^sha256:/, '') !== hex) {
    return { ok: false, reason: 'CONTENT_SHA256_MISMATCH', message: 'the declared sha256 is not the sha256 of the graph\'s bytes' };
  }
  const ref = await deps.cas.put(tenant, bytes);
  const graphHash = ref.digest;
  const known = await deps.graphs.known(tenant, graphHash);
  const facts = known ?? await deps.graphs.pending(tenant, graphHash, { cas_uri: ref.uri, size: ref.size,
    registered_at_unix_nano: (BigInt((deps.now ?? Date.now)()) * 1_000_000n).toString(), actor: who.actor, via: who.via });
  const record = graphIntakeRecord(tenant, graphHash, facts);
  const row = await publishIntake(deps.producer, {
    topic: deps.topics.intakeGraphs, timelineTopic: deps.topics.timelineEvents, tenant, value: Buffer.from(JSON.stringify(record)),
    timelineEvent: graphRegisteredEvent(record),
  });
  const fresh = known ? false : await deps.graphs.commit(tenant, graphHash);
  return { ok: true, graphHash, casUri: ref.uri, size: ref.size, replay: !fresh, eventId: row.event_id };
}

/** The reach.graph.registered event of a registration (pure; its id is the tenant's and the graph's). */
export function graphRegisteredEvent(r: GraphIntakeRecord): Parameters<typeof publishIntake>[1]['timelineEvent'] {
  return {
    kind: 'reach.graph.registered', resourceType: 'reachability_graph', resourceId: r.graph_hash, digest: r.graph_hash, actor: r.actor,
    tsUnixNano: r.registered_at_unix_nano, idSeed: r.graph_hash,
    details: { graph_hash: r.graph_hash, cas_uri: r.cas_uri, size: r.size, tenant: r.tenant, via: r.via },
  };
}
