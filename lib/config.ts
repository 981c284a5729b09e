// Typed configuration, validated at startup with errors that name the key and the expected value.
// Sources, later wins: built-in defaults < the config file (STELLA_CONFIG, YAML or JSON) < environment.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { defaultTopicNames, type TopicNames } from './kafka/topics.ts';
import { parseGrant, validateTenantId, type TenantConfig } from './tenancy.ts';

export interface KafkaConfig {
  /** null: start a local broker under dataDir (development and tests). */
  brokers: string[] | null;
  clientId: string;
  partitions: number;
  replicationFactor: number;
  topics: TopicNames;
  /** Largest record value the receiver writes; requests above it are split. Collector default: 1,000,000. */
  maxRecordBytes: number;
  lingerMs: number;
  compression: 'none' | 'gzip';
  /** How long a client waits for Kafka's ack before it is told to retry (503 / UNAVAILABLE). */
  produceTimeoutMs: number;
}

export interface ReceiverConfig {
  host: string;
  grpcPort: number;
  httpPort: number;
  /** Largest accepted request body after decompression (413 / RESOURCE_EXHAUSTED above it). */
  maxRequestBytes: number;
  /** Bytes accepted but not yet acked by Kafka; above it new requests get 503 / UNAVAILABLE. */
  maxInflightBytes: number;
  maxAttributeValueBytes: number;
  retryAfterSeconds: number;
}

export interface StellaConfig {
  env: string;
  dataDir: string;
  kafka: KafkaConfig;
  receiver: ReceiverConfig;
  admin: { host: string; port: number };
  /** The read API (timelines, evidence, SLOs). */
  api: { host: string; port: number };
  clickhouse: { url: string | null };
  tenants: TenantConfig[];
  /** Processor sections, validated by their own modules when those start. */
  sections: Record<string, unknown>;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

const MiB = 1024 * 1024;

export function defaultConfig(): StellaConfig {
  return {
    env: 'dev',
    dataDir: path.resolve('data'),
    kafka: {
      brokers: null, clientId: 'stella-telemetry', partitions: 6, replicationFactor: 1, topics: { ...defaultTopicNames },
      maxRecordBytes: 1_000_000, lingerMs: 2, compression: 'none', produceTimeoutMs: 5000,
    },
    receiver: {
      host: '127.0.0.1', grpcPort: 4317, httpPort: 4318, maxRequestBytes: 20 * MiB, maxInflightBytes: 64 * MiB,
      maxAttributeValueBytes: 64 * 1024, retryAfterSeconds: 2,
    },
    admin: { host: '127.0.0.1', port: 9464 },
    api: { host: '127.0.0.1', port: 8080 },
    clickhouse: { url: null },
    tenants: [],
    sections: {},
  };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

class Reader {
  problems: string[] = [];
  int(src: Obj, key: string, at: string, min: number, max: number, fallback: number): number {
    const v = src[key];
    if (v === undefined) return fallback;
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      this.problems.push(`${at}${key} must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
      return fallback;
    }
    return n;
  }
  str(src: Obj, key: string, at: string, fallback: string, pattern?: RegExp): string {
    const v = src[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || v === '' || (pattern && !pattern.test(v))) {
      this.problems.push(`${at}${key} must be a non-empty string${pattern ? ` matching ${pattern}` : ''} (got ${JSON.stringify(v)})`);
      return fallback;
    }
    return v;
  }
  obj(src: Obj, key: string, at: string): Obj {
    const v = src[key];
    if (v === undefined) return {};
    if (!isObj(v)) { this.problems.push(`${at}${key} must be a mapping`); return {}; }
    return v;
  }
}

function parseTenants(r: Reader, v: unknown): TenantConfig[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) { r.problems.push('tenants must be a list'); return []; }
  const out: TenantConfig[] = [];
  v.forEach((t: unknown, i) => {
    const at = `tenants[${i}]`;
    if (!isObj(t)) { r.problems.push(`${at} must be a mapping with id and tokens`); return; }
    const id = typeof t.id === 'string' ? t.id : '';
    const idProblem = validateTenantId(id);
    if (idProblem) { r.problems.push(`${at}.id: ${idProblem}`); return; }
    const tokens = Array.isArray(t.tokens) ? t.tokens : [];
    if (!Array.isArray(t.tokens)) r.problems.push(`${at}.tokens must be a list of {sha256, scopes}`);
    const parsed: TenantConfig['tokens'] = [];
    tokens.forEach((tok: unknown, j) => {
      const tat = `${at}.tokens[${j}]`;
      if (!isObj(tok) || typeof tok.sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(tok.sha256)) {
        r.problems.push(`${tat}.sha256 must be the 64-hex SHA-256 of the token (never the token itself)`);
        return;
      }
      const scopes = Array.isArray(tok.scopes) ? tok.scopes.map(String) : ['otlp:write'];
      for (const s of scopes) {
        try { parseGrant(s, id); } catch (err) { r.problems.push(`${tat}.scopes: ${(err as Error).message}`); }
      }
      parsed.push({ sha256: tok.sha256.toLowerCase(), scopes, name: typeof tok.name === 'string' ? tok.name : undefined });
    });
    out.push({ id, tokens: parsed });
  });
  return out;
}

const KNOWN_TOP = new Set(['env', 'dataDir', 'kafka', 'receiver', 'admin', 'api', 'clickhouse', 'tenants']);

/** Build a config from a parsed file object and an environment; throws ConfigError listing every problem. */
export function buildConfig(file: Obj, env: NodeJS.ProcessEnv): StellaConfig {
  const d = defaultConfig();
  const r = new Reader();
  const k = r.obj(file, 'kafka', '');
  const rc = r.obj(file, 'receiver', '');
  const ad = r.obj(file, 'admin', '');
  const ch = r.obj(file, 'clickhouse', '');
  const apiIn = r.obj(file, 'api', '');
  const topicsIn = r.obj(k, 'topics', 'kafka.');

  const brokersRaw = env.KAFKA_BROKERS ?? (Array.isArray(k.brokers) ? k.brokers.join(',') : (k.brokers as string | undefined));
  let brokers: string[] | null = null;
  if (brokersRaw !== undefined && brokersRaw !== '') {
    brokers = String(brokersRaw).split(',').map((s) => s.trim()).filter(Boolean);
    for (const b of brokers) if (!/^[^\s:]+:\d{1,5}$/.test(b)) r.problems.push(`KAFKA_BROKERS / kafka.brokers: "${b}" is not host:port`);
  }
  const topics = { ...d.kafka.topics };
  for (const [name, v] of Object.entries(topicsIn)) {
    if (!(name in topics)) { r.problems.push(`kafka.topics.${name} is not a known topic (known: ${Object.keys(topics).join(', ')})`); continue; }
    topics[name as keyof TopicNames] = r.str(topicsIn, name, 'kafka.topics.', topics[name as keyof TopicNames], /^[A-Za-z0-9._-]{1,249}$/);
  }
  const compression = r.str(k, 'compression', 'kafka.', d.kafka.compression);
  if (compression !== 'none' && compression !== 'gzip') r.problems.push(`kafka.compression must be none or gzip (got "${compression}")`);

  const envInts: Obj = {
    grpcPort: env.STELLA_GRPC_PORT, httpPort: env.STELLA_HTTP_PORT, adminPort: env.STELLA_ADMIN_PORT, apiPort: env.STELLA_API_PORT,
    partitions: env.STELLA_KAFKA_PARTITIONS,
  };
  const pick = (src: Obj, key: string, envKey: string): Obj => (envInts[envKey] !== undefined ? { [key]: envInts[envKey] } : src);

  const cfg: StellaConfig = {
    env: env.STELLA_ENV ?? r.str(file, 'env', '', d.env),
    dataDir: path.resolve(env.STELLA_DATA_DIR ?? r.str(file, 'dataDir', '', d.dataDir)),
    kafka: {
      brokers,
      clientId: r.str(k, 'clientId', 'kafka.', d.kafka.clientId),
      partitions: r.int(pick(k, 'partitions', 'partitions'), 'partitions', 'kafka.', 1, 1000, d.kafka.partitions),
      replicationFactor: r.int(k, 'replicationFactor', 'kafka.', 1, 10, d.kafka.replicationFactor),
      topics,
      maxRecordBytes: r.int(k, 'maxRecordBytes', 'kafka.', 1024, 100 * MiB, d.kafka.maxRecordBytes),
      lingerMs: r.int(k, 'lingerMs', 'kafka.', 0, 1000, d.kafka.lingerMs),
      compression: compression === 'gzip' ? 'gzip' : 'none',
      produceTimeoutMs: r.int(k, 'produceTimeoutMs', 'kafka.', 100, 120_000, d.kafka.produceTimeoutMs),
    },
    receiver: {
      host: env.STELLA_HOST ?? r.str(rc, 'host', 'receiver.', d.receiver.host),
      grpcPort: r.int(pick(rc, 'grpcPort', 'grpcPort'), 'grpcPort', 'receiver.', 0, 65535, d.receiver.grpcPort),
      httpPort: r.int(pick(rc, 'httpPort', 'httpPort'), 'httpPort', 'receiver.', 0, 65535, d.receiver.httpPort),
      maxRequestBytes: r.int(rc, 'maxRequestBytes', 'receiver.', 1024, 1024 * MiB, d.receiver.maxRequestBytes),
      maxInflightBytes: r.int(rc, 'maxInflightBytes', 'receiver.', 1024, 16 * 1024 * MiB, d.receiver.maxInflightBytes),
      maxAttributeValueBytes: r.int(rc, 'maxAttributeValueBytes', 'receiver.', 16, 100 * MiB, d.receiver.maxAttributeValueBytes),
      retryAfterSeconds: r.int(rc, 'retryAfterSeconds', 'receiver.', 1, 3600, d.receiver.retryAfterSeconds),
    },
    admin: {
      host: env.STELLA_HOST ?? r.str(ad, 'host', 'admin.', d.admin.host),
      port: r.int(pick(ad, 'port', 'adminPort'), 'port', 'admin.', 0, 65535, d.admin.port),
    },
    api: {
      host: env.STELLA_HOST ?? r.str(apiIn, 'host', 'api.', d.api.host),
      port: r.int(pick(apiIn, 'port', 'apiPort'), 'port', 'api.', 0, 65535, d.api.port),
    },
    clickhouse: { url: env.CLICKHOUSE_URL ?? ((ch.url as string | undefined) || null) },
    tenants: parseTenants(r, file.tenants),
    sections: Object.fromEntries(Object.entries(file).filter(([key]) => !KNOWN_TOP.has(key))),
  };
  if (cfg.receiver.maxRequestBytes > cfg.receiver.maxInflightBytes) {
    r.problems.push(`receiver.maxRequestBytes (${cfg.receiver.maxRequestBytes}) must not exceed receiver.maxInflightBytes (${cfg.receiver.maxInflightBytes})`);
  }
  const ids = cfg.tenants.map((t) => t.id);
  for (const dup of ids.filter((id, i) => ids.indexOf(id) !== i)) r.problems.push(`tenants: "${dup}" is configured twice`);
  if (r.problems.length) throw new ConfigError(r.problems);
  return cfg;
}

/** Load from STELLA_CONFIG (or `file`) and the environment. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, file = env.STELLA_CONFIG): StellaConfig {
  let obj: Obj = {};
  if (file) {
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch (err) { throw new ConfigError([`cannot read config file ${file}: ${(err as Error).message}`]); }
    let parsed: unknown;
    try { parsed = YAML.parse(text); } catch (err) { throw new ConfigError([`config file ${file} is not valid YAML/JSON: ${(err as Error).message}`]); }
    if (parsed !== null && parsed !== undefined && !isObj(parsed)) throw new ConfigError([`config file ${file} must hold a mapping at the top level`]);
    obj = (parsed as Obj | null) ?? {};
  }
  return buildConfig(obj, env);
}
