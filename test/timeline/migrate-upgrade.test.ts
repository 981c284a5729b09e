// Migration 0006 (the exporter alignment) on a store that already holds data, as an upgrade meets
// it: in a child process (one embedded-engine data path per process), a store migrated without
// 0006 gets metric points and a log record, then migrate() applies 0006. The metrics key column
// changes type with every point kept, the materialized k8s column reads from existing rows, and
// the new body index answers.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { expect, it } from 'vitest';

it('0006 applies over existing data: MetricName becomes LowCardinality with every point kept; materialized columns and idx_lower_body work on old rows', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'migrate-upgrade-child.ts'), '0006_otel_exporter_v0_165_1'],
    { encoding: 'utf8', timeout: 120_000, env: { ...process.env, STELLA_LOG_LEVEL: 'silent' } });
  const r = JSON.parse(out.trim().split('\n').pop()!) as { applied: string[]; changed: string[]; metricNameType: string; metricCounts: [string, number][]; pods: string[]; bodyTokenHits: number };
  expect(r.applied).toEqual(['0006_otel_exporter_v0_165_1']);
  expect(r.changed).toEqual([]);
  expect(r.metricNameType).toBe('LowCardinality(String)');
  expect(r.metricCounts).toEqual(Array.from({ length: 7 }, (_, i) => [`m${i}`, 100]));
  expect(r.pods).toEqual(['pod-1']);
  expect(r.bodyTokenHits).toBe(1);
}, 150_000);
