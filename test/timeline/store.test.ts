// The store against the real embedded engine: migrations, exporter-compatible OTel rows, dedup of
// redelivered writes, the tenant predicate guard, retention changes.
import { describe, expect, it } from 'vitest';
import { BatchWriter, forTenant, migrate, TABLES, insertEvidenceSegment, loadMigrations, timelineInsertRow } from '../../lib/store/index.ts';
import { transformRecord } from '../../processors/timeline/transform.ts';
import { hexId, logsRequest, metricsRequest, nowNs, testStore, tracesRequest } from './support.ts';

const rec = (topic: string, tenant: string, value: Buffer, offset = '0') => ({ topic, partition: 0, offset, key: tenant, value, headers: { tenant } });

describe('store', () => {
  it('migrates idempotently and records every migration once', async () => {
    const store = await testStore();
    const again = await migrate(store, { timelineTtlDays: 180, otelTtlDays: 30 });
    expect(again.applied).toEqual([]);
    expect(again.skipped).toEqual(loadMigrations().map((m) => m.name));
    const rows = await store.selectRows<{ n: string }>('SELECT count() AS n FROM schema_migrations FINAL');
    expect(Number(rows[0]!.n)).toBe(loadMigrations().length);
    const tables = (await store.selectRows<{ name: string }>('SELECT name FROM system.tables WHERE database = currentDatabase()')).map((r) => r.name);
    for (const t of ['timeline_events', 'otel_traces', 'otel_traces_trace_id_ts', 'otel_logs', 'otel_metrics_gauge', 'otel_metrics_sum',
      'otel_metrics_histogram', 'otel_metrics_exponential_histogram', 'otel_metrics_summary', 'evidence_segments', 'schema_migrations']) {
      expect(tables).toContain(t);
    }
  });

  it('keeps the exporter column names and types', async () => {
    const store = await testStore();
    const cols = await store.selectRows<{ name: string; type: string }>(
      "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'otel_traces' ORDER BY position");
    const byName = Object.fromEntries(cols.map((c) => [c.name, c.type]));
    expect(byName).toMatchObject({
      Timestamp: 'DateTime64(9)', TraceId: 'String', SpanName: 'LowCardinality(String)', ResourceAttributes: 'Map(LowCardinality(String), String)',
      Duration: 'UInt64', 'Events.Timestamp': 'Array(DateTime64(9))', 'Links.Attributes': 'Array(Map(LowCardinality(String), String))',
    });
    const logCols = Object.fromEntries((await store.selectRows<{ name: string; type: string }>(
      "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'otel_logs'")).map((c) => [c.name, c.type]));
    expect(logCols).toMatchObject({ TimestampTime: 'DateTime', SeverityNumber: 'UInt8', TraceFlags: 'UInt8', LogAttributes: 'Map(LowCardinality(String), String)' });
  });

  it('writes spans, logs and metrics as the exporter would, and a redelivered batch changes nothing visible', async () => {
    const store = await testStore();
    const tenant = `st${hexId(3)}`;
    const t0 = nowNs();
    const traceId = hexId(16);
    const spans = tracesRequest(tenant, 'svc-a', [{ traceId, spanId: hexId(8), name: 'op', startNs: t0, endNs: t0 + 5_000_000n,
      attrs: { 'stella.job.name': 'build', 'stella.job.id': 'j1' }, error: true }]);
    const logs = logsRequest(tenant, 'svc-a', [{ eventName: 'thing.happened', timeNs: t0 + 1n, body: 'hello', attrs: { 'stella.actor': 'alice' }, traceId }, { timeNs: t0 + 2n, body: 'plain' }]);
    const metrics = metricsRequest(tenant, 'svc-a', 'queue_depth', 4.5, t0);
    const writer = new BatchWriter(store, { maxDelayMs: 5 });
    const writeAll = async () => {
      const outs = [transformRecord('traces', rec('s', tenant, spans)), transformRecord('logs', rec('l', tenant, logs)), transformRecord('metrics', rec('m', tenant, metrics))];
      await Promise.all(outs.flatMap((o) => [...[...o.rows].map(([t, r]) => writer.write(t, r)), writer.write(TABLES.timelineEvents, o.events.map(timelineInsertRow))]));
    };
    await writeAll();
    await writeAll(); // redelivery
    const q = async (sql: string) => Number((await store.selectRows<{ n: string }>(sql, { t: tenant }))[0]!.n);
    expect(await q('SELECT count() AS n FROM otel_traces FINAL WHERE TenantId = {t:String}')).toBe(1);
    expect(await q('SELECT count() AS n FROM otel_logs FINAL WHERE TenantId = {t:String}')).toBe(2);
    expect(await q('SELECT count() AS n FROM otel_metrics_gauge FINAL WHERE TenantId = {t:String}')).toBe(1);
    expect(await q('SELECT count() AS n FROM otel_metrics_sum FINAL WHERE TenantId = {t:String}')).toBe(1);
    expect(await q('SELECT count() AS n FROM otel_metrics_histogram FINAL WHERE TenantId = {t:String}')).toBe(1);
    expect(await q('SELECT count() AS n FROM timeline_events FINAL WHERE tenant_id = {t:String}')).toBe(3); // log event + job.started + job.failed
    // The identical re-sent blocks were dropped by insert_deduplication_token, not only hidden by FINAL.
    expect(await q('SELECT count() AS n FROM timeline_events WHERE tenant_id = {t:String}')).toBe(3);

    const span = (await store.selectRows<Record<string, unknown>>(
      "SELECT SpanKind, StatusCode, Duration, ServiceName, ResourceAttributes['tenant.id'] AS rt, toString(toUnixTimestamp64Nano(Timestamp)) AS ts FROM otel_traces WHERE TenantId = {t:String}", { t: tenant }))[0]!;
    expect(span).toMatchObject({ SpanKind: 'Internal', StatusCode: 'Error', Duration: '5000000', ServiceName: 'svc-a', rt: tenant, ts: t0.toString() });
    const log = (await store.selectRows<Record<string, unknown>>(
      "SELECT Body, EventName, LogAttributes['stella.actor'] AS actor, TraceId FROM otel_logs WHERE TenantId = {t:String} AND EventName != ''", { t: tenant }))[0]!;
    expect(log).toMatchObject({ Body: 'hello', EventName: 'thing.happened', actor: 'alice', TraceId: traceId });
    const hist = (await store.selectRows<Record<string, unknown>>(
      'SELECT Count, Sum, BucketCounts, ExplicitBounds, Min, Max FROM otel_metrics_histogram WHERE TenantId = {t:String}', { t: tenant }))[0]!;
    expect(hist).toMatchObject({ Count: '3', Sum: 1.5, BucketCounts: ['1', '2'], ExplicitBounds: [0.5], Min: 0.1, Max: 0.9 });

    const ts = forTenant(store, tenant);
    expect((await ts.spansForTrace(traceId)).map((s) => s.SpanName)).toEqual(['op']);
    expect((await ts.eventsForTrace(traceId)).map((e) => e.kind).sort()).toEqual(['job.failed', 'job.started', 'thing.happened']);
    expect(await forTenant(store, 'someone-else').eventsForTrace(traceId)).toEqual([]);
  });

  it('bounds batches by rows (flush without waiting for the timer) and by time', async () => {
    const store = await testStore();
    const tenant = `bw${hexId(3)}`;
    const seg = (i: number) => ({ tenant_id: tenant, from_size: i, to_size: i + 1, root_hex: '', statement_sha256: '', sealed_at: '2026-11-23 00:00:00.000000000' });
    const bySize = new BatchWriter(store, { maxRows: 3, maxDelayMs: 60_000 });
    const t = performance.now();
    await Promise.all([bySize.write('evidence_segments', [seg(0), seg(1)]), bySize.write('evidence_segments', [seg(2)])]);
    expect(performance.now() - t).toBeLessThan(10_000); // did not wait for the 60 s timer
    const byTime = new BatchWriter(store, { maxRows: 1000, maxDelayMs: 20 });
    await byTime.write('evidence_segments', [seg(3)]);
    expect(await forTenant(store, tenant).listEvidenceSegments()).toHaveLength(4);
  });

  it('surfaces a failing insert to every writer in the block after its retries', async () => {
    const store = await testStore();
    const writer = new BatchWriter(store, { maxDelayMs: 5 });
    const results = await Promise.allSettled([writer.write('no_such_table', [{ a: 1 }]), writer.write('no_such_table', [{ a: 2 }])]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });

  it('refuses invalid tenant ids before any SQL runs', async () => {
    const store = await testStore();
    for (const bad of ["acme' OR 1=1 --", '', 'ACME', 'a b', 'x'.repeat(64)]) expect(() => forTenant(store, bad)).toThrow(/invalid tenant/);
  });

  it('records evidence segments per tenant', async () => {
    const store = await testStore();
    const tenant = `ev${hexId(3)}`;
    const seg = { tenant_id: tenant, from_size: 0, to_size: 256, root_hex: 'ab'.repeat(32), statement_sha256: 'cd'.repeat(32), sealed_at: nowNs().toString() };
    await insertEvidenceSegment(store, seg);
    await insertEvidenceSegment(store, seg);
    const segs = await forTenant(store, tenant).listEvidenceSegments();
    expect(segs).toHaveLength(1);
    expect(segs[0]).toMatchObject({ tenant_id: tenant, from_size: '0', to_size: '256', root_hex: seg.root_hex });
    expect(await forTenant(store, `x${tenant}`).listEvidenceSegments()).toEqual([]);
  });

  it('applies a changed retention with ALTER ... MODIFY TTL and leaves an unchanged one alone', async () => {
    const store = await testStore();
    const changed = await migrate(store, { timelineTtlDays: 365, otelTtlDays: 30 });
    expect(changed.ttlChanged).toEqual(['timeline_events']);
    const q = (await store.selectRows<{ q: string }>("SELECT create_table_query AS q FROM system.tables WHERE database = currentDatabase() AND name = 'timeline_events'"))[0]!.q;
    expect(q).toContain('toIntervalDay(365)');
    expect((await migrate(store, { timelineTtlDays: 365, otelTtlDays: 30 })).ttlChanged).toEqual([]);
    expect((await migrate(store, { timelineTtlDays: 180, otelTtlDays: 30 })).ttlChanged).toEqual(['timeline_events']);
  });
});
