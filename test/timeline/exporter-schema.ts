// The collector's ClickHouse exporter schema at a pinned version, from its own SQL templates
// (vendored in test/fixtures/clickhouseexporter-v0.165.1/, see SOURCE.md there), created in a
// database of its own on the embedded engine, and the column-by-column difference to ours.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Store } from '../../lib/store/index.ts';

export const EXPORTER_VERSION = 'v0.165.1';
export const FIXTURES = path.resolve(import.meta.dirname, `../fixtures/clickhouseexporter-${EXPORTER_VERSION}`);

/** Template file → the table it creates (the exporter's default table names, which ours keep). */
export const EXPORTER_TABLES: Record<string, string> = {
  'traces_table.sql': 'otel_traces',
  'traces_id_ts_lookup_table.sql': 'otel_traces_trace_id_ts',
  'logs_table.sql': 'otel_logs',
  'metrics_gauge_table.sql': 'otel_metrics_gauge',
  'metrics_sum_table.sql': 'otel_metrics_sum',
  'metrics_histogram_table.sql': 'otel_metrics_histogram',
  'metrics_exp_histogram_table.sql': 'otel_metrics_exponential_histogram',
  'metrics_summary_table.sql': 'otel_metrics_summary',
};

/**
 * Render a template as the exporter does with its defaults (no cluster, MergeTree, no TTL; the
 * logs template's Go text/template without full-text search, its default), into `database`.
 */
export function renderExporterDdl(file: string, database: string): string {
  const table = EXPORTER_TABLES[file]!;
  let sql = readFileSync(path.join(FIXTURES, file), 'utf8');
  if (sql.includes('{{')) {
    // text/template: {{- if .HasFullTextSearch}} A {{- else}} B {{- end}} → B; then the fields.
    sql = sql.replace(/\n?\{\{- if \.HasFullTextSearch\}\}[\s\S]*?\n?\{\{- else\}\}([\s\S]*?)\n?\{\{- end\}\}/, (_m, b: string) => b)
      .replace('{{ident .Database}}.{{ident .TableName}}', `\`${database}\`.\`${table}\``)
      .replace('{{.ClusterString}}', '').replace('{{.Engine}}', 'MergeTree()').replace('{{.TTL}}', '');
    if (sql.includes('{{')) throw new Error(`${file}: template field left unrendered`);
    return sql;
  }
  // fmt.Sprintf: database, table (the lookup table appends _trace_id_ts itself), cluster, engine, TTL.
  const args = [database, table.replace(/_trace_id_ts$/, ''), '', 'MergeTree()', ''];
  let i = 0;
  return sql.replace(/%[qs]/g, (v) => { const a = args[i++] ?? ''; return v === '%q' ? JSON.stringify(a) : a; });
}

export interface ColumnInfo { type: string; codec: string; default_kind: string; default_expression: string }
export interface IndexInfo { type_full: string; expr: string; granularity: number }
export interface TableShape { columns: Map<string, ColumnInfo>; indices: Map<string, IndexInfo> }

export async function tableShape(store: Store, database: string, table: string): Promise<TableShape> {
  const cols = await store.selectRows<{ name: string } & ColumnInfo>(
    `SELECT name, type, compression_codec AS codec, default_kind, default_expression FROM system.columns
     WHERE database = {db:String} AND table = {t:String} ORDER BY position`, { db: database, t: table });
  const idx = await store.selectRows<{ name: string } & IndexInfo>(
    'SELECT name, type_full, expr, granularity FROM system.data_skipping_indices WHERE database = {db:String} AND table = {t:String}', { db: database, t: table });
  return {
    columns: new Map(cols.map((c) => [c.name, { type: c.type, codec: c.codec, default_kind: c.default_kind, default_expression: c.default_expression }])),
    indices: new Map(idx.map((x) => [x.name, { type_full: x.type_full, expr: x.expr, granularity: Number(x.granularity) }])),
  };
}

/**
 * Every difference of `ours` from the exporter's table, one line each:
 *   `column <name> missing` / `column <name> extra` / `column <name> type <exporter> → <ours>` /
 *   `column <name> codec <exporter> → <ours>` / `column <name> default <exporter> → <ours>` /
 *   `index <name> missing|extra` / `index <name> differs <exporter> → <ours>`.
 */
export function diffShapes(exporter: TableShape, ours: TableShape): string[] {
  const out: string[] = [];
  for (const [name, e] of exporter.columns) {
    const o = ours.columns.get(name);
    if (!o) { out.push(`column ${name} missing`); continue; }
    if (o.type !== e.type) out.push(`column ${name} type ${e.type} → ${o.type}`);
    if (o.codec !== e.codec) out.push(`column ${name} codec ${e.codec} → ${o.codec}`);
    if (o.default_kind !== e.default_kind || o.default_expression !== e.default_expression) {
      out.push(`column ${name} default ${e.default_kind} ${e.default_expression} → ${o.default_kind} ${o.default_expression}`.replace(/ +/g, ' '));
    }
  }
  for (const name of ours.columns.keys()) if (!exporter.columns.has(name)) out.push(`column ${name} extra`);
  for (const [name, e] of exporter.indices) {
    const o = ours.indices.get(name);
    if (!o) out.push(`index ${name} missing`);
    else if (o.type_full !== e.type_full || o.expr !== e.expr || o.granularity !== e.granularity) {
      out.push(`index ${name} differs ${e.expr} ${e.type_full} ${e.granularity} → ${o.expr} ${o.type_full} ${o.granularity}`);
    }
  }
  for (const name of ours.indices.keys()) if (!exporter.indices.has(name)) out.push(`index ${name} extra`);
  return out;
}
