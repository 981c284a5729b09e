// The runtime-facts sink of the timeline processor's intake hook: each intake_runtime_facts record
// is checked, its NDJSON read back from the CAS (the store verifies the digest) and validated
// again, a signed ingest's envelope re-verified against the tenant's trust keys (fail closed: the
// sink trusts nothing the API did), then written as one runtime_ingests row and one runtime_facts
// row per line. Deterministic rows in ReplacingMergeTree tables: a replay changes nothing visible.
import { CasIntegrityError, parseCasUri, type BlobStore } from '../../lib/cas.ts';
import type { IntakeEnvelopeVerifier } from '../../lib/intake/trust.ts';
import type { StageRecord } from '../../lib/kafka/stage.ts';
import { dateTime64, type Row } from '../../lib/store/index.ts';
import type { DeadIntakeRecord, IntakeSink, IntakeSinkContext } from '../timeline/intake-hook.ts';
import type { GraphRegistry } from '../../lib/intake/graphs.ts';
import { logger } from '../../lib/log.ts';
import { counter, gauge } from '../../lib/metrics.ts';
import type { OrphanQueue } from './orphan-queue.ts';
import { admitOrphan, newOrphan, retryDecision, type OrphanPolicy } from './orphans.ts';
import { BadRuntimeRecord, checkRuntimeEnvelope, factTsNs, forEachRuntimeFact, parseRuntimeIntakeRecord } from './runtime-facts.ts';

export const RUNTIME_TABLES = { ingests: 'runtime_ingests', facts: 'runtime_facts' } as const;

/** The API enforced the configured line limit; the sink accepts what was accepted. */
const SINK_MAX_LINE = 16 * 1024 * 1024;

/** Rows of one record, or the reason it is dead. */
export async function runtimeRows(r: StageRecord, cas: BlobStore, verify: IntakeEnvelopeVerifier): Promise<{ ingest: Row; facts: Row[] } | string> {
  let rec;
  try { rec = parseRuntimeIntakeRecord(r.value, r.key); } catch (err) {
    if (err instanceof BadRuntimeRecord) return err.message;
    throw err;
  }
  let blob: Buffer | undefined;
  try { blob = await cas.get(rec.tenant, rec.content_sha256 as `sha256:${string}`); } catch (err) {
    if (err instanceof CasIntegrityError) return 'the CAS blob does not match its digest';
    throw err;
  }
  if (!blob) return 'the CAS blob is missing';
  if (blob.length !== rec.size) return 'the CAS blob size differs from the record';
  if (rec.envelope_cas_uri !== '') {
    const env = await cas.get(rec.tenant, `sha256:${parseCasUri(rec.envelope_cas_uri).hex}`).catch((err: unknown) => {
      if (err instanceof CasIntegrityError) return undefined;
      throw err;
    });
    if (!env) return 'the DSSE envelope is missing from the CAS or corrupt';
    let parsed: unknown;
    try { parsed = JSON.parse(env.toString('utf8')); } catch { return 'the stored DSSE envelope is not JSON'; }
    const v = checkRuntimeEnvelope(parsed, verify, rec.tenant, rec.graph_hash, rec.content_sha256);
    if (!v.ok) return `the DSSE envelope no longer verifies: ${v.reason}`;
    if (v.keyid !== rec.signed_by) return 'the DSSE envelope is signed by another key than the record says';
  }
  const facts: Row[] = [];
  const summary = forEachRuntimeFact(blob, { maxLineBytes: SINK_MAX_LINE }, (f) => {
    facts.push({ tenant_id: rec.tenant, graph_hash: rec.graph_hash, ingest_id: rec.ingest_id, line: f.line, ts: dateTime64(factTsNs(f)),
      symbol_id: f.symbol_id, purl: f.purl, pid: f.pid, container: f.container, count: f.count });
  });
  if (!summary.ok) return `the stored NDJSON is not valid runtime facts: ${summary.reason}`;
  if (summary.records !== rec.records) return 'the record count differs from the stored NDJSON';
  return {
    ingest: { tenant_id: rec.tenant, ingest_id: rec.ingest_id, graph_hash: rec.graph_hash, content_sha256: rec.content_sha256, cas_uri: rec.cas_uri,
      size: rec.size, records: rec.records, first_ts: dateTime64(rec.first_ts_unix_nano), last_ts: dateTime64(rec.last_ts_unix_nano),
      signed_by: rec.signed_by, envelope_cas_uri: rec.envelope_cas_uri, via: rec.via, received_at: dateTime64(rec.received_at_unix_nano) },
    facts,
  };
}

/** Orphan handling (docs/intake.md "Orphans"); without it every well-formed record is written at once. */
export interface RuntimeOrphanDeps {
  graphs: Pick<GraphRegistry, 'isKnown'>;
  queue: OrphanQueue;
  policy: OrphanPolicy;
  now?: () => number;
  /** How often due orphans are looked at (default min(retryInitialMs, 1000)). */
  tickMs?: number;
}

const orphanTraces = counter('stella_reachability_orphan_traces', 'Runtime-facts intake records whose graph_hash was unknown, by what became of them (queued, resolved, expired, refused: queue full)', ['outcome']);
const orphanDepth = gauge('stella_reachability_orphan_queue_depth', 'Runtime-facts orphans held, waiting for their graph');

export function runtimeFactsSink(deps: { cas: BlobStore; verify: IntakeEnvelopeVerifier; orphans?: RuntimeOrphanDeps }): IntakeSink {
  const log = logger('timeline');
  const o = deps.orphans;
  const now = o?.now ?? Date.now;
  const writeRows = async (writer: IntakeSinkContext['writer'], ingests: Row[], facts: Row[]) => {
    // Facts first: an ingest row is visible only once its facts are (readers go from the ingest).
    await writer.write(RUNTIME_TABLES.facts, facts);
    await writer.write(RUNTIME_TABLES.ingests, ingests);
  };
  return {
    name: 'runtime-facts',
    topics: ['intakeRuntimeFacts'],
    async write(records, ctx) {
      const ingests: Row[] = [];
      const facts: Row[] = [];
      const dead: DeadIntakeRecord[] = [];
      for (const r of records.intakeRuntimeFacts ?? []) {
        const out = await runtimeRows(r, deps.cas, deps.verify);
        if (typeof out === 'string') { dead.push({ record: r, reason: out }); continue; }
        const tenant = out.ingest.tenant_id as string;
        const graphHash = out.ingest.graph_hash as string;
        const ingestId = out.ingest.ingest_id as string;
        if (o && !(await o.graphs.isKnown(tenant, graphHash))) {
          // Parked durably before this batch's offsets are committed; a redelivery finds it parked.
          if (o.queue.has(tenant, ingestId)) continue;
          const admit = admitOrphan(o.queue.size, o.policy);
          if (!admit.admit) { orphanTraces.inc({ outcome: 'refused' }); dead.push({ record: r, reason: admit.reason }); continue; }
          await o.queue.put({ tenant, ingestId, graphHash, record: r, state: newOrphan(now(), o.policy) });
          orphanTraces.inc({ outcome: 'queued' });
          orphanDepth.set(o.queue.size);
          log.info({ tenant_id: tenant, ingest_id: ingestId, graph_hash: graphHash }, 'runtime facts orphaned: graph unknown, queued for retry');
          continue;
        }
        ingests.push(out.ingest);
        for (const f of out.facts) facts.push(f);
      }
      await writeRows(ctx.writer, ingests, facts);
      return dead;
    },
    async start(rt) {
      if (!o) return async () => {};
      const bad = await o.queue.load();
      for (const b of bad) log.warn({ error_code: 'ORPHAN_ENTRY_UNREADABLE', file: b }, 'orphan queue entry unreadable, skipped');
      orphanDepth.set(o.queue.size);
      let running: Promise<void> | undefined;
      const tick = async () => {
        for (const e of o.queue.list()) {
          const t = now();
          const due = retryDecision(e.state, t, undefined, o.policy);
          if (due.kind === 'wait') continue;
          const d = retryDecision(e.state, t, await o.graphs.isKnown(e.tenant, e.graphHash), o.policy);
          if (d.kind === 'resolve') {
            const out = await runtimeRows(e.record, deps.cas, deps.verify);
            if (typeof out === 'string') await rt.deadLetter([{ record: e.record, reason: out }]);
            else await writeRows(rt.writer, [out.ingest], out.facts);
            await o.queue.remove(e);
            orphanTraces.inc({ outcome: 'resolved' });
            log.info({ tenant_id: e.tenant, ingest_id: e.ingestId, graph_hash: e.graphHash, attempts: e.state.attempts }, 'runtime facts orphan resolved: graph arrived');
          } else if (d.kind === 'expire') {
            await rt.deadLetter([{ record: e.record, reason: d.reason }]);
            await o.queue.remove(e);
            orphanTraces.inc({ outcome: 'expired' });
          } else if (d.kind === 'reschedule') {
            await o.queue.put({ ...e, state: d.next });
          }
        }
        orphanDepth.set(o.queue.size);
      };
      const timer = setInterval(() => {
        if (running) return;
        running = tick().catch((err: unknown) => { log.warn({ error_code: 'ORPHAN_RETRY_FAILED', error_message: String(err) }, 'orphan retry failed; next tick retries'); })
          .finally(() => { running = undefined; });
      }, o.tickMs ?? Math.min(o.policy.retryInitialMs, 1000));
      timer.unref();
      return async () => { clearInterval(timer); await running; };
    },
  };
}
