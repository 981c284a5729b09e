// The orchestrator_exports writer of the timeline processor's intake hook (intake-hook.ts): records
// of `orchestrator.export.created` -> rows of clickhouse/0202. Every record is validated again and
// its DSSE signatures verified again against the tenant's intake trust (fail closed) before a row is
// written: the consumer trusts nothing the API did. Rows are deterministic in the record, so a
// redelivered batch collapses in the ReplacingMergeTree; a refused record goes to the DLQ.
import type { IntakeSink } from '../timeline/intake-hook.ts';
import { ExportRecordRefused, exportRowFromRecord, type IntakeEnvelopeVerifier, type OrchestratorExportRow } from './exports.ts';

export const ORCHESTRATOR_EXPORTS_TABLE = 'orchestrator_exports';

export function exportSink(verify: IntakeEnvelopeVerifier): IntakeSink {
  return {
    name: 'orchestrator-exports',
    topics: ['orchestratorExports'],
    async write(records, { writer }) {
      const rows: OrchestratorExportRow[] = [];
      const dead: { record: NonNullable<typeof records.orchestratorExports>[number]; reason: string }[] = [];
      for (const r of records.orchestratorExports ?? []) {
        try {
          rows.push(exportRowFromRecord(r.value, r.key, verify).row);
        } catch (err) {
          if (!(err instanceof ExportRecordRefused)) throw err;
          dead.push({ record: r, reason: `${err.reason}: ${err.message}` });
        }
      }
      await writer.write(ORCHESTRATOR_EXPORTS_TABLE, rows);
      return dead;
    },
  };
}
