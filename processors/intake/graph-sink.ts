// The graph-registration sink of the timeline processor's intake hook: each intake_graphs record is
// checked (parseGraphIntakeRecord) and its graph read back from the CAS (the store verifies the
// digest); a good record makes sure the graph's marker exists (the API writes it right after Kafka
// acked; a crash in between leaves it to this sink, so a published registration always ends known).
// No ClickHouse rows of its own: the registration's reach.graph.registered event is the timeline row
// and the evidence entry. Idempotent: the marker is write-once.
import { CasIntegrityError, type BlobStore } from '../../lib/cas.ts';
import { parseGraphIntakeRecord, type GraphRegistry } from '../../lib/intake/graphs.ts';
import type { DeadIntakeRecord, IntakeSink } from '../timeline/intake-hook.ts';

export function graphSink(deps: { cas: BlobStore; graphs?: Pick<GraphRegistry, 'register'> }): IntakeSink {
  return {
    name: 'graphs',
    topics: ['intakeGraphs'],
    async write(records) {
      const dead: DeadIntakeRecord[] = [];
      for (const r of records.intakeGraphs ?? []) {
        const rec = parseGraphIntakeRecord(r.value, r.key);
        if (typeof rec === 'string') { dead.push({ record: r, reason: rec }); continue; }
        let blob: Buffer | undefined;
        try { blob = await deps.cas.get(rec.tenant, rec.graph_hash as `sha256:${string}`); } catch (err) {
          if (err instanceof CasIntegrityError) { dead.push({ record: r, reason: 'the CAS blob does not match its digest' }); continue; }
          throw err;
        }
        if (!blob) { dead.push({ record: r, reason: 'the graph is missing from the CAS' }); continue; }
        // Markers from before registrations were published carry no size (0): only a stated size is checked.
        if (rec.size !== 0 && blob.length !== rec.size) { dead.push({ record: r, reason: 'the CAS blob size differs from the record' }); continue; }
        await deps.graphs?.register(rec.tenant, rec.graph_hash, rec.cas_uri, rec);
      }
      return dead;
    },
  };
}
