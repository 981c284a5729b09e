// The runtime-facts sink of the timeline processor's intake hook: each intake_runtime_facts record
// is checked, its NDJSON read back from the CAS (the store verifies the digest) and validated
// again, a signed ingest's envelope re-verified against the tenant's trust keys (fail closed: the
// sink trusts nothing the API did), then written as one runtime_ingests row and one runtime_facts
// row per line. Deterministic rows in ReplacingMergeTree tables: a replay changes nothing visible.
import { CasIntegrityError, parseCasUri, type BlobStore } from '../../lib/cas.ts';
import type { IntakeEnvelopeVerifier } from '../../lib/intake/trust.ts';
import type { StageRecord } from '../../lib/kafka/stage.ts';
import { dateTime64, type Row } from '../../lib/store/index.ts';
import type { DeadIntakeRecord, IntakeSink } from '../timeline/intake-hook.ts';
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

export function runtimeFactsSink(deps: { cas: BlobStore; verify: IntakeEnvelopeVerifier }): IntakeSink {
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
        ingests.push(out.ingest);
        for (const f of out.facts) facts.push(f);
      }
      // Facts first: an ingest row is visible only once its facts are (readers go from the ingest).
      await ctx.writer.write(RUNTIME_TABLES.facts, facts);
      await ctx.writer.write(RUNTIME_TABLES.ingests, ingests);
      return dead;
    },
  };
}
