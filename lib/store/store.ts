// The one storage module over @clickhouse/client. Embedded chdb (persistent data dir) by default;
// HTTP to a ClickHouse server when CLICKHOUSE_URL is set. chdb binds ONE engine and ONE data path
// per process, so openStore() is a per-location singleton: every component in a process (runner,
// API, evidence, tests in one worker) shares the same Store.
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { logger } from '../log.ts';
import { counter, histogram } from '../metrics.ts';

export interface StoreOptions {
  /** HTTP(S) URL of a ClickHouse server; when absent the embedded chdb engine is used. */
  url?: string;
  username?: string;
  password?: string;
  database?: string;
  /** chdb data directory (embedded mode). */
  dataPath?: string;
  /** Insert attempts before an error is surfaced (idempotent writes make retries safe). */
  insertAttempts?: number;
}

/** Config keys: CLICKHOUSE_URL, CLICKHOUSE_USER, CLICKHOUSE_PASSWORD, CLICKHOUSE_DATABASE, STELLA_CHDB_PATH. */
export function storeOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): StoreOptions {
  return {
    url: env.CLICKHOUSE_URL || undefined,
    username: env.CLICKHOUSE_USER || undefined,
    password: env.CLICKHOUSE_PASSWORD || undefined,
    database: env.CLICKHOUSE_DATABASE || undefined,
    dataPath: env.STELLA_CHDB_PATH || path.resolve('data', 'chdb'),
  };
}

export type Row = Record<string, unknown>;

// Rows are serialised once (BatchWriter needs the text for its dedup token); a string handed to
// the client is such a pre-serialised JSON line and goes out unchanged. Row objects are never strings.
const jsonHandling = {
  parse: JSON.parse,
  stringify: (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v)),
};
export type QueryParams = Record<string, unknown>;

const log = logger('store');
const insertedRows = counter('stella_store_rows_inserted_total', 'Rows inserted into ClickHouse', ['table']);
const insertRetries = counter('stella_store_insert_retries_total', 'Insert attempts that failed and were retried', ['table']);
const queryDuration = histogram('stella_store_query_seconds', 'ClickHouse query latency', ['kind']);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Store {
  private refs = 1;
  constructor(private readonly client: ClickHouseClient, readonly location: string, private readonly opts: StoreOptions,
    private readonly onClose: () => void) {}

  get embedded(): boolean { return !this.opts.url; }

  /**
   * Insert rows as one block. `dedupToken` is sent as insert_deduplication_token; it is ALWAYS
   * set (empty string = none) because chdb applies settings as session-level SETs that would
   * otherwise leak into the next insert.
   */
  async insertRows(table: string, rows: Row[], dedupToken = ''): Promise<void> {
    if (rows.length === 0) return;
    await this.insertJsonLines(table, rows.map((r) => JSON.stringify(r)), dedupToken);
  }

  /** As insertRows, for rows already serialised as JSON (one object per line). */
  async insertJsonLines(table: string, lines: string[], dedupToken = ''): Promise<void> {
    if (lines.length === 0) return;
    const attempts = this.opts.insertAttempts ?? 4;
    for (let attempt = 1; ; attempt++) {
      const end = queryDuration.startTimer({ kind: 'insert' });
      try {
        // Lines are strings: the client's stringify (jsonHandling) passes them through unchanged.
        await this.client.insert({ table, values: lines, format: 'JSONEachRow',
          clickhouse_settings: { insert_deduplication_token: dedupToken } });
        insertedRows.inc({ table }, lines.length);
        return;
      } catch (err) {
        if (attempt >= attempts) throw err;
        insertRetries.inc({ table });
        log.warn({ table, attempt, error_message: String(err) }, 'insert failed; retrying');
        await sleep(100 * 4 ** (attempt - 1));
      } finally {
        end();
      }
    }
  }

  /** Parameterised SELECT returning JSON rows. Internal to lib/store: callers go through forTenant(). */
  async selectRows<T>(query: string, params: QueryParams = {}): Promise<T[]> {
    const end = queryDuration.startTimer({ kind: 'select' });
    try {
      const rs = await this.client.query({ query, query_params: params, format: 'JSONEachRow',
        clickhouse_settings: { output_format_json_quote_64bit_integers: 1 } });
      return await rs.json<T>();
    } finally {
      end();
    }
  }

  /** DDL and maintenance statements (migrations, benchmarks' bulk generation). Never user input. */
  async command(query: string, params: QueryParams = {}): Promise<void> {
    await this.client.command({ query, query_params: params });
  }

  async ping(): Promise<boolean> {
    const r = await this.client.ping();
    return r.success;
  }

  /** Share this Store (the singleton) with one more owner. */
  retain(): this { this.refs++; return this; }

  /** Release one owner; the connection closes when the last owner released it. */
  async close(): Promise<void> {
    if (--this.refs > 0) return;
    this.onClose();
    await this.client.close();
  }
}

const open = new Map<string, Promise<Store>>();
let embeddedPath: string | undefined;

/** Open (or share) the process's store for these options. */
export function openStore(opts: StoreOptions = storeOptionsFromEnv()): Promise<Store> {
  const location = opts.url ? `http:${opts.url}` : `chdb:${path.resolve(opts.dataPath ?? 'data/chdb')}`;
  const existing = open.get(location);
  if (existing) return existing.then((s) => s.retain());
  if (!opts.url) {
    const p = path.resolve(opts.dataPath ?? 'data/chdb');
    if (embeddedPath && embeddedPath !== p) {
      return Promise.reject(new Error(`chdb is already bound to ${embeddedPath} in this process; one data path per process`));
    }
    embeddedPath = p;
  }
  const created = (async () => {
    let client: ClickHouseClient;
    if (opts.url) {
      client = createClient({ json: jsonHandling, url: opts.url, username: opts.username, password: opts.password, database: opts.database,
        // DateTime64 values are written as UTC text (tables.ts): pin the session time zone.
        clickhouse_settings: { session_timezone: 'UTC' } });
    } else {
      const p = path.resolve(opts.dataPath ?? 'data/chdb');
      mkdirSync(p, { recursive: true });
      // chdb's Connection implements @clickhouse/client-common's Connection; the cast bridges the
      // two packages' copies of that type.
      // Loaded here, not at module load: the engine is a 500+ MB native library, and modules that
      // only use the store's types or row helpers (or run without ClickHouse) must not map it.
      const { createChdbConnection } = await import('chdb/connection');
      client = createClient({ json: jsonHandling, connection: createChdbConnection({ path: p }) as never });
      // chdb keeps SETs for its one session: pin UTC for the DateTime64 text we write (tables.ts).
      await client.command({ query: "SET session_timezone = 'UTC'" });
    }
    return new Store(client, location, opts, () => { open.delete(location); });
  })();
  open.set(location, created);
  created.catch(() => open.delete(location));
  return created;
}

/** Order-independent token for a block: the same rows re-sent in any order dedup to one block. */
export function blockToken(lines: string[]): string {
  const h = createHash('sha256');
  for (const l of [...lines].sort()) h.update(l).update('\n');
  return h.digest('hex');
}
