// Typed configuration, validated at startup with errors that name the key and the expected value.
// Sources, later wins: built-in defaults < the config file (STELLA_CONFIG, YAML or JSON) < environment.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { defaultIntakeConfig, parseIntakeSection, type IntakeConfig } from './intake/trust.ts';
import { parseKafkaSecurity, type KafkaSasl, type KafkaTls } from './kafka/auth.ts';
import { defaultTopicNames, type TopicNames } from './kafka/topics.ts';
import { parseGrant, validateTenantId, type TenantConfig } from './tenancy.ts';

export interface KafkaConfig {
  /** null: start a local broker under dataDir (development and tests). */
  brokers: string[] | null;
  clientId: string;
  /** Consumer groups are `<prefix><processor>` (scrub, timeline, evidence, slo): a second pipeline on
   * the same Kafka cluster needs a prefix of its own, or the two share (and split) each group. */
  groupIdPrefix: string;
  partitions: number;
  replicationFactor: number;
  topics: TopicNames;
  /** Largest record value the receiver writes; requests above it are split. Collector default: 1,000,000. */
  maxRecordBytes: number;
  lingerMs: number;
  compression: 'none' | 'gzip';
  /** How long a client waits for Kafka's ack before it is told to retry (503 / UNAVAILABLE). */
  produceTimeoutMs: number;
  /** The processors' consumer groups: a dead member is replaced after sessionTimeoutMs (lib/kafka/group-timing.ts). */
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  rebalanceTimeoutMs: number;
  /** An external cluster's SASL login (KAFKA_SASL_* / kafka.sasl); the local broker makes its own (lib/kafka/broker.ts). */
  sasl: KafkaSasl | null;
  /** TLS to an external cluster (KAFKA_TLS* / kafka.tls). */
  tls: KafkaTls | null;
  /** Tenants fed by a Kafka-direct collector: each gets `<raw>.direct.<tenant>` topics and a `collector-<tenant>` user (lib/kafka/acls.ts). */
  directTenants: string[];
  /** retention.ms of the DLQ topic (set on it at startup): dead letters are for a short look, not an archive. */
  dlqRetentionMs: number;
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
  /** Refuse (503 / UNAVAILABLE) a request that would wait longer than this for Kafka's ack; 0 = off. */
  maxQueueWaitMs: number;
  /** Receiver processes (receiver/workers.ts): 1 = in the `stella run` process itself; more = a
   * cluster of that many, sharing the ports. `auto` in the file or STELLA_RECEIVER_WORKERS = one per core. */
  workers: number;
  /** The OTLP/gRPC front end: `h2` (receiver/grpc-h2.ts, gRPC unary on node:http2) or `grpc-js` (@grpc/grpc-js). */
  grpcImpl: 'h2' | 'grpc-js';
  /** HTTP/2 keepalive of the `h2` front end: ping each connection this often, drop it when the ack takes longer than the timeout. */
  grpcKeepaliveTimeMs: number;
  grpcKeepaliveTimeoutMs: number;
}

/** Self-tracing (lib/tracing.ts): the pipeline's own spans, exported over OTLP/HTTP protobuf. */
export interface TracingConfig {
  enabled: boolean;
  /** `self`: this process's own receiver, under `systemTenant` with a per-process token; else an OTLP/HTTP traces URL. */
  endpoint: string;
  /** Extra export request headers from the config file; never a credential (that is STELLA_TRACING_TOKEN). */
  headers: Record<string, string>;
  /** Bearer token for a remote endpoint, from STELLA_TRACING_TOKEN only (the config file never holds a token). */
  token: string | null;
  /** Head sampling of the pipeline's own root spans, 0..1; a sampled caller's traceparent is followed (parent-based). */
  sampleRatio: number;
  serviceName: string;
  /** The tenant the pipeline's spans belong to; its records and requests are never traced (no feedback loop). */
  systemTenant: string;
  /** BatchSpanProcessor: spans held at most (more are dropped), per export, and the export delay. */
  maxQueueSize: number;
  maxExportBatchSize: number;
  scheduledDelayMs: number;
}

/** Evidence retention by deployment environment (`env`), in days: prod 7 years (with leap days), staging 90, dev 30. */
export const ENV_RETENTION_DAYS: Readonly<Record<string, number>> = {
  prod: 2557, production: 2557, staging: 90, dev: 30, development: 30, test: 30,
};

/** `evidenceRetention` (docs/evidence.md "Retention and legal hold"). */
export interface RetentionConfig {
  /** Days a tenant's log entries are kept unless overridden; default by `env` (ENV_RETENTION_DAYS). */
  days: number;
  /** Per-tenant overrides, days. */
  tenants: Readonly<Record<string, number>>;
  /** Days added to a tenant's retention while its incident mode is on. */
  incidentExtensionDays: number;
  /** How often the evidence processor prunes the tenants it writes (0: never; `stella forensic prune` only). */
  pruneEverySeconds: number;
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
  tracing: TracingConfig;
  tenants: TenantConfig[];
  /** Signed intake: CAS directory, runtime-facts limits, the tenants' DSSE trust keys (lib/intake/trust.ts, docs/intake.md). */
  intake: IntakeConfig;
  evidenceRetention: RetentionConfig;
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
      brokers: null, clientId: 'stella-telemetry', groupIdPrefix: 'stella-', partitions: 6, replicationFactor: 1, topics: { ...defaultTopicNames },
      maxRecordBytes: 1_000_000, lingerMs: 5, compression: 'none', produceTimeoutMs: 5000,
      sessionTimeoutMs: 6000, heartbeatIntervalMs: 1000, rebalanceTimeoutMs: 30_000,
      sasl: null, tls: null, directTenants: [], dlqRetentionMs: 24 * 3600_000,
    },
    receiver: {
      host: '127.0.0.1', grpcPort: 4317, httpPort: 4318, maxRequestBytes: 20 * MiB, maxInflightBytes: 64 * MiB,
      maxAttributeValueBytes: 64 * 1024, retryAfterSeconds: 2, maxQueueWaitMs: 2000, workers: 1,
      grpcImpl: 'h2', grpcKeepaliveTimeMs: 2 * 3600_000, grpcKeepaliveTimeoutMs: 20_000,
    },
    admin: { host: '127.0.0.1', port: 9464 },
    api: { host: '127.0.0.1', port: 8080 },
    clickhouse: { url: null },
    tracing: {
      enabled: false, endpoint: 'self', headers: {}, token: null, sampleRatio: 0.1, serviceName: 'stella-telemetry',
      systemTenant: 'stella-system', maxQueueSize: 2048, maxExportBatchSize: 512, scheduledDelayMs: 1000,
    },
    tenants: [],
    intake: defaultIntakeConfig(path.resolve('data')),
    evidenceRetention: { days: ENV_RETENTION_DAYS.dev!, tenants: {}, incidentExtensionDays: 30, pruneEverySeconds: 3600 },
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

function parseTracing(r: Reader, t: Obj, env: NodeJS.ProcessEnv, d: TracingConfig): TracingConfig {
  const at = 'tracing.';
  const enabledRaw = env.STELLA_TRACING_ENABLED ?? t.enabled;
  let enabled = d.enabled;
  if (enabledRaw !== undefined) {
    const s = String(enabledRaw).toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(s)) enabled = true;
    else if (['false', '0', 'no', 'off'].includes(s)) enabled = false;
    else r.problems.push(`STELLA_TRACING_ENABLED / tracing.enabled must be true or false (got ${JSON.stringify(enabledRaw)})`);
  }
  if (String(env.OTEL_SDK_DISABLED ?? '').toLowerCase() === 'true') enabled = false;
  // The OTel variables name a traces URL (…_TRACES_ENDPOINT) or a base URL (/v1/traces appended).
  const otelBase = env.OTEL_EXPORTER_OTLP_ENDPOINT ? `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces` : undefined;
  const endpoint = env.STELLA_TRACING_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || otelBase || r.str(t, 'endpoint', at, d.endpoint);
  if (endpoint !== 'self') {
    let ok = false;
    try { ok = ['http:', 'https:'].includes(new URL(endpoint).protocol); } catch { /* reported below */ }
    if (!ok) r.problems.push(`tracing.endpoint must be "self" or an http(s) OTLP/HTTP traces URL (got ${JSON.stringify(endpoint)})`);
  }
  const headersIn = r.obj(t, 'headers', at);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(headersIn)) {
    if (typeof v !== 'string') { r.problems.push(`tracing.headers.${k} must be a string`); continue; }
    if (/^(authorization|proxy-authorization|cookie)$/i.test(k)) { r.problems.push(`tracing.headers.${k}: credentials do not go in the config file; set STELLA_TRACING_TOKEN`); continue; }
    headers[k] = v;
  }
  const ratioRaw = env.STELLA_TRACING_SAMPLE_RATIO ?? t.sampleRatio;
  let sampleRatio = d.sampleRatio;
  if (ratioRaw !== undefined) {
    const n = typeof ratioRaw === 'string' && ratioRaw.trim() !== '' ? Number(ratioRaw) : ratioRaw;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > 1) r.problems.push(`STELLA_TRACING_SAMPLE_RATIO / tracing.sampleRatio must be a number from 0 to 1 (got ${JSON.stringify(ratioRaw)})`);
    else sampleRatio = n;
  }
  const systemTenant = r.str(t, 'systemTenant', at, d.systemTenant);
  const tenantProblem = validateTenantId(systemTenant);
  if (tenantProblem) r.problems.push(`tracing.systemTenant: ${tenantProblem}`);
  return {
    enabled, endpoint, headers, sampleRatio, systemTenant,
    token: env.STELLA_TRACING_TOKEN || null,
    serviceName: env.OTEL_SERVICE_NAME || r.str(t, 'serviceName', at, d.serviceName),
    maxQueueSize: r.int(t, 'maxQueueSize', at, 1, 1_000_000, d.maxQueueSize),
    maxExportBatchSize: r.int(t, 'maxExportBatchSize', at, 1, 100_000, d.maxExportBatchSize),
    scheduledDelayMs: r.int(t, 'scheduledDelayMs', at, 10, 600_000, d.scheduledDelayMs),
  };
}

function parseRetention(r: Reader, src: Obj, env: string, d: RetentionConfig): RetentionConfig {
  const at = 'evidenceRetention.';
  const known = ['days', 'tenants', 'incidentExtensionDays', 'pruneEverySeconds'];
  for (const k of Object.keys(src)) if (!known.includes(k)) r.problems.push(`${at}${k} is not a known field (allowed: ${known.join(', ')})`);
  const byEnv = ENV_RETENTION_DAYS[env];
  if (src.days === undefined && byEnv === undefined) {
    r.problems.push(`evidenceRetention.days must be set: env "${env}" has no default evidence retention (defaults: ${Object.entries(ENV_RETENTION_DAYS).map(([e, n]) => `${e} ${n}`).join(', ')} days)`);
  }
  const days = r.int(src, 'days', at, 1, 36_500, byEnv ?? d.days);
  const tenantsIn = r.obj(src, 'tenants', at);
  const tenants: Record<string, number> = {};
  for (const t of Object.keys(tenantsIn)) {
    const bad = validateTenantId(t);
    if (bad) { r.problems.push(`${at}tenants.${t}: ${bad}`); continue; }
    tenants[t] = r.int(tenantsIn, t, `${at}tenants.`, 1, 36_500, days);
  }
  return {
    days, tenants,
    incidentExtensionDays: r.int(src, 'incidentExtensionDays', at, 0, 36_500, d.incidentExtensionDays),
    pruneEverySeconds: r.int(src, 'pruneEverySeconds', at, 0, 7 * 86_400, d.pruneEverySeconds),
  };
}

/** Most receiver workers allowed: each is a process with its own Kafka producer and connections. */
export const MAX_RECEIVER_WORKERS = 64;

function receiverWorkers(r: Reader, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v === 'string' && v.trim().toLowerCase() === 'auto') return Math.min(MAX_RECEIVER_WORKERS, os.availableParallelism());
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_RECEIVER_WORKERS) return n;
  r.problems.push(`STELLA_RECEIVER_WORKERS / receiver.workers must be an integer from 1 to ${MAX_RECEIVER_WORKERS} or "auto" (one per core) (got ${JSON.stringify(v)})`);
  return fallback;
}

const KNOWN_TOP = new Set(['env', 'dataDir', 'kafka', 'receiver', 'admin', 'api', 'clickhouse', 'tracing', 'tenants', 'intake', 'evidenceRetention']);

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
  const security = parseKafkaSecurity(k, env, brokers !== null);
  r.problems.push(...security.problems);
  const directRaw = env.KAFKA_DIRECT_TENANTS !== undefined ? env.KAFKA_DIRECT_TENANTS.split(',').map((x) => x.trim()).filter(Boolean) : k.directTenants;
  const directTenants: string[] = [];
  if (directRaw !== undefined && !Array.isArray(directRaw)) r.problems.push('KAFKA_DIRECT_TENANTS / kafka.directTenants must be a list of tenant ids');
  else for (const t of directRaw ?? []) {
    const problem = validateTenantId(String(t));
    if (problem) r.problems.push(`KAFKA_DIRECT_TENANTS / kafka.directTenants: ${JSON.stringify(t)}: ${problem}`);
    else if (!directTenants.includes(String(t))) directTenants.push(String(t));
  }
  const compression = r.str(k, 'compression', 'kafka.', d.kafka.compression);
  if (compression !== 'none' && compression !== 'gzip') r.problems.push(`kafka.compression must be none or gzip (got "${compression}")`);

  const grpcImpl = env.STELLA_GRPC_IMPL ?? r.str(rc, 'grpcImpl', 'receiver.', d.receiver.grpcImpl);
  if (grpcImpl !== 'h2' && grpcImpl !== 'grpc-js') r.problems.push(`STELLA_GRPC_IMPL / receiver.grpcImpl must be h2 or grpc-js (got "${grpcImpl}")`);

  const envInts: Obj = {
    grpcPort: env.STELLA_GRPC_PORT, httpPort: env.STELLA_HTTP_PORT, adminPort: env.STELLA_ADMIN_PORT, apiPort: env.STELLA_API_PORT,
    partitions: env.STELLA_KAFKA_PARTITIONS,
  };
  const pick = (src: Obj, key: string, envKey: string): Obj => (envInts[envKey] !== undefined ? { [key]: envInts[envKey] } : src);

  const envName = env.STELLA_ENV ?? r.str(file, 'env', '', d.env);
  const cfg: StellaConfig = {
    env: envName,
    dataDir: path.resolve(env.STELLA_DATA_DIR ?? r.str(file, 'dataDir', '', d.dataDir)),
    kafka: {
      brokers,
      clientId: r.str(k, 'clientId', 'kafka.', d.kafka.clientId),
      groupIdPrefix: r.str(env.STELLA_KAFKA_GROUP_PREFIX !== undefined ? { groupIdPrefix: env.STELLA_KAFKA_GROUP_PREFIX } : k,
        'groupIdPrefix', 'kafka.', d.kafka.groupIdPrefix, /^[A-Za-z0-9._-]{0,200}$/),
      partitions: r.int(pick(k, 'partitions', 'partitions'), 'partitions', 'kafka.', 1, 1000, d.kafka.partitions),
      replicationFactor: r.int(k, 'replicationFactor', 'kafka.', 1, 10, d.kafka.replicationFactor),
      topics,
      maxRecordBytes: r.int(k, 'maxRecordBytes', 'kafka.', 1024, 100 * MiB, d.kafka.maxRecordBytes),
      lingerMs: r.int(k, 'lingerMs', 'kafka.', 0, 1000, d.kafka.lingerMs),
      compression: compression === 'gzip' ? 'gzip' : 'none',
      produceTimeoutMs: r.int(k, 'produceTimeoutMs', 'kafka.', 100, 120_000, d.kafka.produceTimeoutMs),
      // The broker bounds the session: group.min/max.session.timeout.ms (6 s / 30 min by default).
      sessionTimeoutMs: r.int(k, 'sessionTimeoutMs', 'kafka.', 1000, 1_800_000, d.kafka.sessionTimeoutMs),
      heartbeatIntervalMs: r.int(k, 'heartbeatIntervalMs', 'kafka.', 100, 600_000, d.kafka.heartbeatIntervalMs),
      rebalanceTimeoutMs: r.int(k, 'rebalanceTimeoutMs', 'kafka.', 1000, 1_800_000, d.kafka.rebalanceTimeoutMs),
      sasl: security.sasl, tls: security.tls, directTenants,
      dlqRetentionMs: r.int(k, 'dlqRetentionMs', 'kafka.', 60_000, 90 * 24 * 3600_000, d.kafka.dlqRetentionMs),
    },
    receiver: {
      host: env.STELLA_HOST ?? r.str(rc, 'host', 'receiver.', d.receiver.host),
      grpcPort: r.int(pick(rc, 'grpcPort', 'grpcPort'), 'grpcPort', 'receiver.', 0, 65535, d.receiver.grpcPort),
      httpPort: r.int(pick(rc, 'httpPort', 'httpPort'), 'httpPort', 'receiver.', 0, 65535, d.receiver.httpPort),
      maxRequestBytes: r.int(rc, 'maxRequestBytes', 'receiver.', 1024, 1024 * MiB, d.receiver.maxRequestBytes),
      maxInflightBytes: r.int(rc, 'maxInflightBytes', 'receiver.', 1024, 16 * 1024 * MiB, d.receiver.maxInflightBytes),
      maxAttributeValueBytes: r.int(rc, 'maxAttributeValueBytes', 'receiver.', 16, 100 * MiB, d.receiver.maxAttributeValueBytes),
      retryAfterSeconds: r.int(rc, 'retryAfterSeconds', 'receiver.', 1, 3600, d.receiver.retryAfterSeconds),
      maxQueueWaitMs: r.int(rc, 'maxQueueWaitMs', 'receiver.', 0, 600_000, d.receiver.maxQueueWaitMs),
      workers: receiverWorkers(r, env.STELLA_RECEIVER_WORKERS ?? rc.workers, d.receiver.workers),
      grpcImpl: grpcImpl === 'grpc-js' ? 'grpc-js' : 'h2',
      grpcKeepaliveTimeMs: r.int(rc, 'grpcKeepaliveTimeMs', 'receiver.', 1000, 24 * 3600_000, d.receiver.grpcKeepaliveTimeMs),
      grpcKeepaliveTimeoutMs: r.int(rc, 'grpcKeepaliveTimeoutMs', 'receiver.', 100, 600_000, d.receiver.grpcKeepaliveTimeoutMs),
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
    tracing: parseTracing(r, r.obj(file, 'tracing', ''), env, d.tracing),
    tenants: parseTenants(r, file.tenants),
    intake: defaultIntakeConfig(d.dataDir),
    evidenceRetention: parseRetention(r, r.obj(file, 'evidenceRetention', ''), envName, d.evidenceRetention),
    sections: Object.fromEntries(Object.entries(file).filter(([key]) => !KNOWN_TOP.has(key))),
  };
  cfg.intake = parseIntakeSection(file.intake, cfg.dataDir, r.problems);
  if (cfg.receiver.maxRequestBytes > cfg.receiver.maxInflightBytes) {
    r.problems.push(`receiver.maxRequestBytes (${cfg.receiver.maxRequestBytes}) must not exceed receiver.maxInflightBytes (${cfg.receiver.maxInflightBytes})`);
  }
  const ids = cfg.tenants.map((t) => t.id);
  for (const dup of ids.filter((id, i) => ids.indexOf(id) !== i)) r.problems.push(`tenants: "${dup}" is configured twice`);
  if (cfg.kafka.heartbeatIntervalMs * 3 > cfg.kafka.sessionTimeoutMs) {
    r.problems.push(`kafka.heartbeatIntervalMs (${cfg.kafka.heartbeatIntervalMs}) must be at most a third of kafka.sessionTimeoutMs (${cfg.kafka.sessionTimeoutMs}), so a member survives a lost heartbeat`);
  }
  if (cfg.tracing.maxExportBatchSize > cfg.tracing.maxQueueSize) {
    r.problems.push(`tracing.maxExportBatchSize (${cfg.tracing.maxExportBatchSize}) must not exceed tracing.maxQueueSize (${cfg.tracing.maxQueueSize})`);
  }
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
