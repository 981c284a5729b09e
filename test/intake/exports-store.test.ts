// orchestrator_exports (clickhouse/0202) on the real embedded engine: idempotent migration, a later
// status replacing the row, redelivery changing nothing, stable pagination, tenant isolation.
import { describe, expect, it } from 'vitest';
import { BatchWriter, migrate } from '../../lib/store/index.ts';
import { exportsForTenant } from '../../lib/store/export-store.ts';
import { checkExportSubmission, exportRecord, exportRow, type OrchestratorExportRow } from '../../processors/intake/exports.ts';
import { testStore } from '../timeline/support.ts';
import { hex64, TENANT, testVerifier, validExport } from './exports-support.ts';

const verify = testVerifier({});

function row(tenant: string, over: Record<string, unknown>, receivedNs = 1n): OrchestratorExportRow {
  const v = checkExportSubmission(Buffer.from(JSON.stringify(validExport(over, tenant))), { tenant, verify });
  if (!v.ok) throw new Error(v.message);
  return exportRow(exportRecord(v, tenant, receivedNs, null), v);
}

describe('orchestrator_exports table', () => {
  it('migrates idempotently, ordered tenant first for (artifactHash, runId) lookups', async () => {
    const store = await testStore();
    expect((await migrate(store, { timelineTtlDays: 180, otelTtlDays: 30 })).applied).toEqual([]);
    const t = await store.selectRows<{ sorting_key: string; engine: string }>(
      "SELECT sorting_key, engine FROM system.tables WHERE database = currentDatabase() AND name = 'orchestrator_exports'");
    expect(t[0]).toEqual({ sorting_key: 'tenant_id, artifact_hash, run_id', engine: 'ReplacingMergeTree' });
  });

  it('a later status replaces the row; redelivery and an earlier status arriving late change nothing visible', async () => {
    const store = await testStore();
    const tenant = `ex${hex64(String(Math.random())).slice(0, 6)}`;
    const es = exportsForTenant(store, tenant);
    const pending = row(tenant, { status: 'pending', completedAt: null });
    const running = row(tenant, { status: 'running', completedAt: null });
    const done = row(tenant, { status: 'succeeded' });
    await store.insertRows('orchestrator_exports', [pending]);
    await store.insertRows('orchestrator_exports', [running]);
    await store.insertRows('orchestrator_exports', [done]);
    await store.insertRows('orchestrator_exports', [running]); // late redelivery of an earlier step
    const writer = new BatchWriter(store, { maxDelayMs: 1 });
    await writer.write('orchestrator_exports', [done]);
    await writer.write('orchestrator_exports', [done]);
    const all = await es.listExports({ limit: 100 });
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ export_id: done.export_id, status: 'succeeded', run_id: 'run-0001', completed_at_text: '2026-12-01T10:05:00.123456789Z' });
    expect((await es.getExport(done.export_id))?.status).toBe('succeeded');
  });

  it('pages by (runId, startedAt, id) without skipping or repeating, and only within the tenant', async () => {
    const store = await testStore();
    const tenant = `pg${hex64(String(Math.random())).slice(0, 6)}`;
    const other = `ot${hex64(String(Math.random())).slice(0, 6)}`;
    const rows: OrchestratorExportRow[] = [];
    for (let i = 0; i < 23; i++) {
      // Several artifacts per run, runs out of order, one unicode run id.
      const runId = i === 7 ? 'run-ünï' : `run-${String(i % 9).padStart(2, '0')}`;
      rows.push(row(tenant, { runId, artifactHash: `sha256:${hex64(`a${i}`)}`, startedAt: `2026-12-01T10:${String(59 - i).padStart(2, '0')}:00Z`, completedAt: '2026-12-01T11:00:00Z' }));
    }
    await store.insertRows('orchestrator_exports', rows);
    await store.insertRows('orchestrator_exports', [row(other, {})]);
    const es = exportsForTenant(store, tenant);
    const seen: string[] = [];
    let after;
    for (;;) {
      const page = await es.listExports({ limit: 5, after });
      seen.push(...page.map((r) => r.export_id));
      if (page.length < 5) break;
      const last = page[page.length - 1]!;
      after = { runId: last.run_id, startedAtNs: BigInt(last.started_at_unix_nano), exportId: last.export_id };
    }
    const expected = [...rows].sort((a, b) => (Buffer.compare(Buffer.from(a.run_id), Buffer.from(b.run_id)) || a.started_at.localeCompare(b.started_at)
      || a.export_id.localeCompare(b.export_id))).map((r) => r.export_id);
    expect(seen).toEqual(expected);
    expect(await es.listExports({ limit: 100, runId: 'run-ünï' })).toHaveLength(1);
    // Another tenant's export is invisible, by id and in lists.
    const foreign = row(other, {});
    expect(await es.getExport(foreign.export_id)).toBeUndefined();
    expect(await exportsForTenant(store, other).getExport(foreign.export_id)).toBeDefined();
    expect((await es.listExports({ limit: 100, artifactHash: `sha256:${hex64('artifact')}` }))).toEqual([]);
  });
});

void TENANT;
