// Child process of migrate-upgrade.test.ts (the embedded engine binds one data path per process):
// a store migrated without the newest migrations and holding data is migrated again with all of
// them; prints what the test checks as one JSON line.
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { migrate, openStore } from '../../lib/store/index.ts';
import { migrationsDir } from '../../lib/store/migrate.ts';

const [withoutName] = process.argv.slice(2) as [string];
const old = mkdtempSync(path.join(os.tmpdir(), 'stella-mig-old-'));
for (const f of readdirSync(migrationsDir)) if (f.endsWith('.sql') && f !== `${withoutName}.sql`) cpSync(path.join(migrationsDir, f), path.join(old, f));
const dataPath = mkdtempSync(path.join(os.tmpdir(), 'stella-mig-data-'));
const store = await openStore({ dataPath });
const ret = { timelineTtlDays: 180, otelTtlDays: 30 };
await migrate(store, ret, old);
const now = BigInt(Date.now()) * 1_000_000n;
await store.insertRows('otel_metrics_gauge', Array.from({ length: 700 }, (_, i) => ({ TenantId: 'acme', ServiceName: 's', MetricName: `m${i % 7}`,
  TimeUnix: String(now + BigInt(i)), StartTimeUnix: String(now), Value: i })));
await store.insertRows('otel_logs', [{ Timestamp: String(now), TenantId: 'acme', RecordId: 'r', ServiceName: 's', Body: 'Hello World',
  ResourceAttributes: { 'k8s.pod.name': 'pod-1' } }]);
const r = await migrate(store, ret);
const q = async (sql: string) => store.selectRows<Record<string, unknown>>(sql);
const out = {
  applied: r.applied, changed: r.changed,
  metricNameType: (await q("SELECT type FROM system.columns WHERE database = currentDatabase() AND table = 'otel_metrics_gauge' AND name = 'MetricName'"))[0]!.type,
  metricCounts: (await q('SELECT MetricName, count() AS n FROM otel_metrics_gauge FINAL GROUP BY MetricName ORDER BY MetricName')).map((x) => [x.MetricName, Number(x.n)]),
  pods: (await q('SELECT `__otel_materialized_k8s.pod.name` AS pod FROM otel_logs')).map((x) => x.pod),
  bodyTokenHits: Number((await q("SELECT count() AS n FROM otel_logs WHERE hasToken(lower(Body), 'hello')"))[0]!.n),
};
await store.close();
rmSync(old, { recursive: true, force: true });
rmSync(dataPath, { recursive: true, force: true });
process.stdout.write(`${JSON.stringify(out)}\n`);
