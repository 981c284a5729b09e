// Our OTel tables against the collector's ClickHouse exporter at contrib v0.165.1: the exporter's
// own CREATE TABLE templates (vendored fixtures, checked against the Go module by
// exporter-fixtures.test.ts) are created in a database of their own on the embedded engine, and
// every column (type, codec, default/materialized expression) and skipping index is compared with
// the migrated tables. The differences must be exactly the ones decided in
// clickhouse/0006_otel_exporter_v0_165_1.sql, each listed below with its reason; a new one (an
// exporter upgrade, or a migration of ours) fails the test until it is decided too.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMigrations, migrate, sameMigration } from '../../lib/store/index.ts';
import { diffShapes, EXPORTER_TABLES, EXPORTER_VERSION, renderExporterDdl, tableShape } from './exporter-schema.ts';
import { testStore } from './support.ts';

const METRICS = ['otel_metrics_gauge', 'otel_metrics_sum', 'otel_metrics_histogram', 'otel_metrics_exponential_histogram', 'otel_metrics_summary'];
const REF_DB = `exporter_${EXPORTER_VERSION.replace(/\W/g, '_')}`;

/** Codec level: ours ZSTD(1), the exporter's ZSTD(3) (compression runs in the embedded engine's process). */
const zstd1 = (column: string, exporterCodec: string, ourCodec = exporterCodec.replace('ZSTD(3)', 'ZSTD(1)')) =>
  `column ${column} codec ${exporterCodec} → ${ourCodec}`;

/** Every accepted difference per table: the rest of each table matches the exporter column by column. */
function expected(table: string, exporterColumns: { name: string; codec: string }[]): string[] {
  const out: string[] = [];
  // Codecs: ZSTD(1) for every column the exporter compresses with ZSTD(3), except where the type
  // differs (metric times, below).
  const timeColumns = new Set(['TimeUnix', 'StartTimeUnix']);
  for (const c of exporterColumns) {
    if (!c.codec.includes('ZSTD(3)')) continue;
    if (METRICS.includes(table) && timeColumns.has(c.name)) continue;
    out.push(zstd1(c.name, c.codec));
  }
  // TenantId leads every key (tenant isolation in the storage layer).
  out.push('column TenantId extra');
  if (table === 'otel_logs') {
    // Our partition, primary-key and TTL column (the exporter dropped it in v0.151.0); RecordId: the
    // ReplacingMergeTree identity that collapses a redelivered batch.
    out.push('column TimestampTime extra', 'column RecordId extra');
  }
  if (METRICS.includes(table)) {
    // Nanosecond point times: part of the ReplacingMergeTree identity; whole seconds would collapse points.
    for (const c of ['StartTimeUnix', 'TimeUnix']) {
      out.push(`column ${c} type DateTime → DateTime64(9)`, `column ${c} codec CODEC(Delta(4), ZSTD(3)) → CODEC(Delta(8), ZSTD(1))`);
    }
    if (table !== 'otel_metrics_summary') out.push('column Exemplars.TimeUnix type Array(DateTime) → Array(DateTime64(9))');
  }
  return out.sort();
}

describe(`OTel tables against the ClickHouse exporter ${EXPORTER_VERSION}`, () => {
  it('differ from the exporter\'s own tables only where decided (columns, types, codecs, materialized expressions, indexes)', async () => {
    const store = await testStore();
    const ours = (await store.selectRows<{ d: string }>('SELECT currentDatabase() AS d'))[0]!.d;
    await store.command(`CREATE DATABASE IF NOT EXISTS ${REF_DB}`);
    const found: Record<string, string[]> = {};
    const want: Record<string, string[]> = {};
    for (const [file, table] of Object.entries(EXPORTER_TABLES)) {
      await store.command(`DROP TABLE IF EXISTS ${REF_DB}.${table}`);
      await store.command(renderExporterDdl(file, REF_DB));
      const exporter = await tableShape(store, REF_DB, table);
      expect(exporter.columns.size, `${file} created no columns`).toBeGreaterThan(2);
      found[table] = diffShapes(exporter, await tableShape(store, ours, table)).sort();
      want[table] = expected(table, [...exporter.columns].map(([name, c]) => ({ name, codec: c.codec })));
    }
    expect(found).toEqual(want);
  });

  it('has what 0006 matched: materialized k8s columns, idx_event_name and idx_lower_body on logs, LowCardinality MetricName and idx_time_minmax on metrics', async () => {
    const store = await testStore();
    const ours = (await store.selectRows<{ d: string }>('SELECT currentDatabase() AS d'))[0]!.d;
    const logs = await tableShape(store, ours, 'otel_logs');
    expect(logs.columns.get('__otel_materialized_k8s.pod.name')).toMatchObject({ default_kind: 'MATERIALIZED', default_expression: "ResourceAttributes['k8s.pod.name']" });
    expect([...logs.indices.keys()]).toEqual(expect.arrayContaining(['idx_event_name', 'idx_lower_body']));
    expect(logs.indices.has('idx_body')).toBe(false);
    for (const t of METRICS) {
      const m = await tableShape(store, ours, t);
      expect(m.columns.get('MetricName')!.type, t).toBe('LowCardinality(String)');
      expect(m.indices.get('idx_time_minmax'), t).toMatchObject({ expr: 'TimeUnix', type_full: 'minmax' });
    }
    // A materialized column fills from what the timeline writer already inserts (it is never written).
    const tenant = `exp-${Date.now()}`;
    await store.insertRows('otel_logs', [{ Timestamp: '1700000000000000000', TenantId: tenant, RecordId: 'r1', ServiceName: 'svc', Body: 'hello',
      ResourceAttributes: { 'k8s.pod.name': 'pod-7', 'tenant.id': tenant } }]);
    const got = await store.selectRows<{ pod: string }>('SELECT `__otel_materialized_k8s.pod.name` AS pod FROM otel_logs WHERE TenantId = {t:String}', { t: tenant });
    expect(got.map((r) => r.pod)).toEqual(['pod-7']);
  });

  it('a comment-only edit of an applied migration is not a change; a statement edit is', async () => {
    const m = loadMigrations().find((x) => x.name === '0003_otel_logs')!;
    // What a deployment migrated before the exporter-path comments were updated has recorded.
    expect(sameMigration(m, 'b03dc7a2057303583ea3369036127e33ab6c4143775595bcf85ffea9706af61f')).toBe(true);
    expect(sameMigration(m, m.checksum)).toBe(true);
    const commented = { ...m, ...checksums(m.sql.replace('-- Log records', '-- The log records')) };
    expect(sameMigration(commented, m.checksum)).toBe(true);
    const altered = { ...m, ...checksums(m.sql.replace('SeverityNumber UInt8', 'SeverityNumber UInt16')) };
    expect(sameMigration(altered, m.checksum)).toBe(false);
    expect(sameMigration(altered, m.fileChecksum)).toBe(false);
    // Re-running against the migrated store reports nothing changed.
    expect((await migrate(await testStore(), { timelineTtlDays: 180, otelTtlDays: 30 })).changed).toEqual([]);
  });
});

/** The checksums loadMigrations would compute for this text (through a temp dir, as it reads files). */
function checksums(sql: string): { checksum: string; fileChecksum: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-mig-'));
  writeFileSync(path.join(dir, '0003_otel_logs.sql'), sql);
  const [x] = loadMigrations(dir);
  return { checksum: x!.checksum, fileChecksum: x!.fileChecksum };
}
