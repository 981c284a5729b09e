// Ordered, idempotent migrations from clickhouse/NNNN_name.sql. Each file's statements use
// IF NOT EXISTS, and applied versions are recorded in schema_migrations, so running migrate() at
// every start-up (and from `stella db migrate`) is safe, also from two processes at once.
// Retention is configuration, not schema: TTLs are substituted at creation and re-applied with
// ALTER ... MODIFY TTL when the configured value changes.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../paths.ts';
import { createHash } from 'node:crypto';
import { logger } from '../log.ts';
import type { Store } from './store.ts';

export const migrationsDir = path.join(projectRoot, 'clickhouse');

export interface RetentionConfig {
  /** timeline_events TTL in days (default 180). */
  timelineTtlDays: number;
  /** otel_* tables TTL in days (default 30). */
  otelTtlDays: number;
}

/** Config keys: STELLA_TIMELINE_TTL_DAYS, STELLA_OTEL_TTL_DAYS. */
export function retentionFromEnv(env: NodeJS.ProcessEnv = process.env): RetentionConfig {
  return {
    timelineTtlDays: positiveInt(env.STELLA_TIMELINE_TTL_DAYS, 180, 'STELLA_TIMELINE_TTL_DAYS'),
    otelTtlDays: positiveInt(env.STELLA_OTEL_TTL_DAYS, 30, 'STELLA_OTEL_TTL_DAYS'),
  };
}

function positiveInt(v: string | undefined, dflt: number, name: string): number {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0 || n > 36500) throw new Error(`${name} must be a whole number of days between 1 and 36500`);
  return n;
}

/**
 * `checksum`: of the statements only (`sql:<sha256>`, comment lines and trailing blanks left out),
 * what is recorded from now on, so that a comment edit is not a change. `fileChecksum`: of the
 * whole file, what earlier versions recorded.
 */
export interface Migration { version: number; name: string; sql: string; checksum: string; fileChecksum: string }

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The statements of a migration without its comments, for the checksum. */
const statementText = (sql: string): string =>
  sql.split('\n').filter((l) => !l.trimStart().startsWith('--')).map((l) => l.trimEnd()).filter((l) => l !== '').join('\n');

/**
 * Whole-file checksums recorded before comments stopped counting, of files whose later edits were
 * comments only (0002-0004: the exporter template path, issue 17). Matching one is not a change.
 */
const COMMENT_ONLY_EDITS: Record<string, readonly string[]> = {
  '0002_otel_traces': ['e4fa97482710dd25936c4bfce4016912bdad514ee56100b6b01e8c3d21dff2b9'],
  '0003_otel_logs': ['b03dc7a2057303583ea3369036127e33ab6c4143775595bcf85ffea9706af61f'],
  '0004_otel_metrics': ['e07a2ccbbef30b805e98d35244746e3944665de4e73f561173deababb100f328'],
};

export function loadMigrations(dir = migrationsDir): Migration[] {
  return readdirSync(dir).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort().map((f) => {
    const sql = readFileSync(path.join(dir, f), 'utf8');
    return { version: Number(f.slice(0, 4)), name: f.replace(/\.sql$/, ''), sql, checksum: `sql:${sha256(statementText(sql))}`, fileChecksum: sha256(sql) };
  });
}

/** Whether a recorded checksum stands for the migration's statements as they are now. */
export const sameMigration = (m: Migration, recorded: string): boolean =>
  recorded === m.checksum || recorded === m.fileChecksum || (COMMENT_ONLY_EDITS[m.name]?.includes(recorded) ?? false);

/** Split a migration into statements: comments dropped, `;` at a line end terminates. */
export function statements(sql: string, vars: Record<string, string | number>): string[] {
  const body = sql.split('\n').filter((l) => !l.trimStart().startsWith('--')).join('\n')
    .replace(/\{\{([A-Z_]+)\}\}/g, (_m, k: string) => {
      if (!(k in vars)) throw new Error(`migration variable {{${k}}} has no value`);
      return String(vars[k]);
    });
  return body.split(/;\s*(?:\n|$)/).map((s) => s.trim()).filter((s) => s.length > 0);
}

/** Tables whose TTL follows configuration: table -> [TTL column expression, config key]. */
const ttlTables: Record<string, [string, keyof RetentionConfig]> = {
  timeline_events: ['toDateTime(ts)', 'timelineTtlDays'],
  otel_traces: ['toDateTime(Timestamp)', 'otelTtlDays'],
  otel_logs: ['TimestampTime', 'otelTtlDays'],
  otel_metrics_gauge: ['toDateTime(TimeUnix)', 'otelTtlDays'],
  otel_metrics_sum: ['toDateTime(TimeUnix)', 'otelTtlDays'],
  otel_metrics_histogram: ['toDateTime(TimeUnix)', 'otelTtlDays'],
  otel_metrics_exponential_histogram: ['toDateTime(TimeUnix)', 'otelTtlDays'],
  otel_metrics_summary: ['toDateTime(TimeUnix)', 'otelTtlDays'],
  golden_signals: ['minute', 'otelTtlDays'], // clickhouse/0100 (SLO processor)
  frames: ['toDateTime(ts)', 'otelTtlDays'], // clickhouse/0210 (provenance: exception stack frames)
};

/** `changed`: applied migrations whose statements differ from what was applied (ship changes as a new migration). */
export interface MigrateResult { applied: string[]; skipped: string[]; ttlChanged: string[]; changed: string[] }

export async function migrate(store: Store, retention: RetentionConfig = retentionFromEnv(), dir = migrationsDir): Promise<MigrateResult> {
  const log = logger('migrate');
  await store.command(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32, name String, checksum String, applied_at DateTime64(3) DEFAULT now64(3)
  ) ENGINE = ReplacingMergeTree ORDER BY version`);
  const done = new Map((await store.selectRows<{ version: number; checksum: string }>(
    'SELECT version, argMax(checksum, applied_at) AS checksum FROM schema_migrations GROUP BY version')).map((r) => [Number(r.version), r.checksum]));
  const vars = { TIMELINE_TTL_DAYS: retention.timelineTtlDays, OTEL_TTL_DAYS: retention.otelTtlDays };
  const result: MigrateResult = { applied: [], skipped: [], ttlChanged: [], changed: [] };
  for (const m of loadMigrations(dir)) {
    const prior = done.get(m.version);
    if (prior !== undefined) {
      if (!sameMigration(m, prior)) {
        result.changed.push(m.name);
        log.warn({ migration: m.name }, 'applied migration\'s statements changed since; ship changes as a new migration');
      }
      result.skipped.push(m.name);
      continue;
    }
    for (const stmt of statements(m.sql, vars)) await store.command(stmt);
    await store.insertRows('schema_migrations', [{ version: m.version, name: m.name, checksum: m.checksum }]);
    result.applied.push(m.name);
    log.info({ migration: m.name }, 'migration applied');
  }
  result.ttlChanged = await applyRetention(store, retention);
  return result;
}

/** Re-apply configured TTLs where a table's current TTL differs. */
async function applyRetention(store: Store, retention: RetentionConfig): Promise<string[]> {
  const rows = await store.selectRows<{ name: string; create_table_query: string }>(
    'SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase() AND name IN {names:Array(String)}',
    { names: Object.keys(ttlTables) });
  const changed: string[] = [];
  for (const r of rows) {
    const [expr, key] = ttlTables[r.name]!;
    const days = retention[key];
    if (r.create_table_query.includes(`toIntervalDay(${days})`)) continue;
    // days is a validated integer and expr a constant above: no user input reaches this DDL.
    await store.command(`ALTER TABLE ${r.name} MODIFY TTL ${expr} + toIntervalDay(${days})`);
    changed.push(r.name);
  }
  return changed;
}
