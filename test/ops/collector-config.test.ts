// The collector configurations in collector-config/ against our receiver's and topics' contract:
// every pipeline starts with memory_limiter, sampling precedes batch, the exporter to our receiver
// authenticates with a bearer token from the environment, compresses, retries and queues on disk;
// the Kafka variant writes exactly our raw topics in our encoding, within our record limit, keyed
// and headed by tenant; and every component is both defined and used. Then the real collector of the
// pinned release (built with ocb from collector-config/builder-config.yaml) validates every config.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { buildCollector, COLLECTOR_MANIFEST } from '../../lib/go-peers.ts';
import { freePort } from '../../lib/kafka/broker.ts';
import { decodeTraces, attrString } from '../../lib/otlp/proto.ts';
import { brokers, createTopics, readRecords, testAccess, uniq } from '../support/kafka.ts';
import { defaultTopicNames } from '../../lib/kafka/topics.ts';
import { directTopics } from '../../lib/kafka/acls.ts';
import { defaultConfig } from '../../lib/config.ts';
import { encode } from '../../lib/otlp/proto.ts';
import { parseScrubConfig } from '../../processors/scrub/config.ts';
import { scrubRecord } from '../../processors/scrub/record.ts';

type Obj = Record<string, any>;
const load = (name: string): Obj => parse(readFileSync(new URL(`../../collector-config/${name}`, import.meta.url), 'utf8')) as Obj;
const sidecar = load('sidecar.yaml');
const kafkaDirect = load('kafka-direct.yaml');
const SIGNALS = ['traces', 'metrics', 'logs'] as const;
/** The component type of an id: `kafka/stella` -> `kafka`. */
const typeOf = (id: string): string => id.split('/')[0]!;
const ENV_REF = /^\$\{env:[A-Z_][A-Z0-9_]*(:-[^}]*)?\}$/;

/** Problems with the service graph: pipelines, and references vs definitions in both directions. */
export function graphProblems(cfg: Obj): string[] {
  const problems: string[] = [];
  const pipelines: Obj = cfg.service?.pipelines ?? {};
  for (const s of SIGNALS) if (!Object.keys(pipelines).some((p) => p === s || p.startsWith(`${s}/`))) problems.push(`no ${s} pipeline`);
  const used = { receivers: new Set<string>(), processors: new Set<string>(), exporters: new Set<string>(), extensions: new Set<string>() };
  for (const [name, p] of Object.entries(pipelines)) {
    for (const kind of ['receivers', 'processors', 'exporters'] as const) {
      for (const id of (p as Obj)[kind] ?? []) {
        used[kind].add(id);
        if (!cfg[kind] || !(id in cfg[kind])) problems.push(`pipeline ${name} references undefined ${kind.slice(0, -1)} ${id}`);
      }
    }
    const procs: string[] = (p as Obj).processors ?? [];
    if (procs[0] === undefined || typeOf(procs[0]) !== 'memory_limiter') problems.push(`pipeline ${name}: memory_limiter is not first (${procs.join(', ')})`);
    const batch = procs.findIndex((x) => typeOf(x) === 'batch');
    if (batch < 0) problems.push(`pipeline ${name}: no batch processor`);
    for (const [i, x] of procs.entries()) {
      if (['tail_sampling', 'probabilistic_sampler'].includes(typeOf(x)) && i > batch) problems.push(`pipeline ${name}: ${x} after batch`);
    }
  }
  for (const id of cfg.service?.extensions ?? []) {
    used.extensions.add(id);
    if (!cfg.extensions || !(id in cfg.extensions)) problems.push(`service references undefined extension ${id}`);
  }
  // Extensions referenced from component settings must be enabled in service.extensions.
  const walk = (v: unknown, at: string): void => {
    if (!v || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v as Obj)) {
      if ((k === 'authenticator' || k === 'storage') && typeof x === 'string' && !used.extensions.has(x)) {
        problems.push(`${at}.${k} uses extension ${x}, which service.extensions does not enable`);
      }
      walk(x, `${at}.${k}`);
    }
  };
  for (const kind of ['receivers', 'processors', 'exporters'] as const) walk(cfg[kind], kind);
  for (const kind of ['receivers', 'processors', 'exporters', 'extensions'] as const) {
    for (const id of Object.keys(cfg[kind] ?? {})) if (!used[kind].has(id)) problems.push(`${kind.slice(0, -1)} ${id} is defined but never used`);
  }
  return problems;
}

describe('collector-config/sidecar.yaml', () => {
  it('has traces, metrics and logs pipelines; memory_limiter first; sampling before batch; no dangling or unused components', () => {
    expect(graphProblems(sidecar)).toEqual([]);
    expect(sidecar.service.pipelines.traces.processors).toEqual(['memory_limiter', 'tail_sampling', 'batch']);
  });

  it('receives OTLP gRPC on 4317 and HTTP on 4318, on localhost only', () => {
    expect(sidecar.receivers.otlp.protocols.grpc.endpoint).toBe('localhost:4317');
    expect(sidecar.receivers.otlp.protocols.http.endpoint).toBe('localhost:4318');
  });

  it('tail sampling keeps errors, slow traces and a probabilistic baseline', () => {
    const policies: Obj[] = sidecar.processors.tail_sampling.policies;
    const byType = Object.fromEntries(policies.map((p) => [p.type, p]));
    expect(byType.status_code?.status_code.status_codes).toEqual(['ERROR']);
    expect(byType.latency?.latency.threshold_ms).toBeGreaterThan(0);
    const pct = byType.probabilistic?.probabilistic.sampling_percentage;
    expect(pct).toBeGreaterThan(0);
    expect(pct).toBeLessThan(100);
    expect(sidecar.processors.memory_limiter.check_interval).toBeDefined();
    expect(sidecar.processors.memory_limiter.limit_percentage ?? sidecar.processors.memory_limiter.limit_mib).toBeGreaterThan(0);
  });

  it('exports to our receiver with the bearer token from the environment, gzip, retries and a file-backed queue', () => {
    const exporters = Object.entries(sidecar.exporters as Obj);
    expect(exporters).toHaveLength(1);
    const [id, exp] = exporters[0]!;
    // The names of the pinned release (`otlp`, `otlphttp` are deprecated aliases).
    expect(['otlp_grpc', 'otlp_http']).toContain(typeOf(id));
    // gRPC per-RPC bearer credentials require TLS; our receiver serves plaintext, so gRPC needs TLS on.
    if (typeOf(id) === 'otlp_grpc') expect(exp.tls?.insecure).not.toBe(true);
    expect(exp.endpoint).toMatch(ENV_REF);
    expect(exp.compression).toBe('gzip');
    const auth = exp.auth.authenticator as string;
    expect(typeOf(auth)).toBe('bearertokenauth');
    const ext = sidecar.extensions[auth];
    expect(ext.token).toBe('${env:STELLA_TOKEN}');
    expect(ext.filename).toBeUndefined(); // filename would silently win over token
    expect(ext.scheme ?? 'Bearer').toBe('Bearer');
    expect(exp.retry_on_failure.enabled).toBe(true);
    expect(exp.sending_queue.enabled).toBe(true);
    expect(typeOf(exp.sending_queue.storage)).toBe('file_storage');
    expect(sidecar.extensions[exp.sending_queue.storage].directory).toMatch(ENV_REF);
    // No secret in the file: the only token is the env reference.
    expect(readFileSync(new URL('../../collector-config/sidecar.yaml', import.meta.url), 'utf8')).not.toMatch(/token:\s*(?!\$\{env:)\S/);
  });
});

describe('collector-config/kafka-direct.yaml', () => {
  const exporters = Object.entries(kafkaDirect.exporters as Obj);
  const [kid, kafka] = exporters[0]!;

  it('has traces, metrics and logs pipelines; memory_limiter first; sampling before batch; no dangling or unused components', () => {
    expect(exporters).toHaveLength(1);
    expect(typeOf(kid)).toBe('kafka');
    expect(graphProblems(kafkaDirect)).toEqual([]);
  });

  it('writes its tenant\'s direct raw topics, logged in as its own user, with the otlp_proto encoding, acks=all, within our record limit', () => {
    const topics = { traces: kafka.traces.topic, metrics: kafka.metrics.topic, logs: kafka.logs.topic };
    const direct = directTopics(defaultTopicNames, '${env:STELLA_TENANT_ID}');
    expect(topics).toEqual({ traces: direct.spans, metrics: direct.metrics, logs: direct.logs });
    expect(kafka.auth.sasl.mechanism).toBe('SCRAM-SHA-512');
    expect(kafka.auth.sasl.username).toMatch(ENV_REF);
    expect(kafka.auth.sasl.password).toMatch(ENV_REF);
    for (const s of SIGNALS) expect(kafka[s].encoding).toBe('otlp_proto');
    expect(kafka.topic).toBeUndefined(); // the deprecated top-level topic would override nothing but confuses readers
    expect([-1, 'all', 'WaitForAll']).toContain(kafka.producer.required_acks);
    expect(kafka.producer.max_message_bytes).toBeGreaterThan(0);
    expect(kafka.producer.max_message_bytes).toBeLessThanOrEqual(defaultConfig().kafka.maxRecordBytes);
    expect(kafka.brokers.every((b: string) => ENV_REF.test(b))).toBe(true);
    expect(kafka.retry_on_failure.enabled).toBe(true);
    expect(typeOf(kafka.sending_queue.storage)).toBe('file_storage');
  });

  it('stamps tenant.id on every resource (upsert) in every pipeline, from the same env var as the tenant header', () => {
    const tenantHeaders = (kafka.record_headers as Obj[]).filter((h) => h.name === 'tenant');
    expect(tenantHeaders).toHaveLength(1);
    const tenantEnv = tenantHeaders[0]!.value as string;
    expect(tenantEnv).toMatch(ENV_REF);
    const resourceProcs = Object.entries(kafkaDirect.processors as Obj).filter(([id]) => typeOf(id) === 'resource');
    const stamping = resourceProcs.filter(([, p]) => (p.attributes as Obj[]).some((a) => a.key === 'tenant.id' && a.action === 'upsert' && a.value === tenantEnv));
    expect(stamping).toHaveLength(1);
    const [stampId] = stamping[0]!;
    for (const [name, p] of Object.entries(kafkaDirect.service.pipelines as Obj)) {
      const procs: string[] = p.processors;
      expect(procs, name).toContain(stampId);
      // Stamped before sampling and batching: nothing leaves unstamped.
      expect(procs.indexOf(stampId), name).toBeLessThan(procs.findIndex((x) => typeOf(x) === 'batch'));
    }
  });

  it('keys records by the tenant metadata the receiver records and the batcher preserves', () => {
    const keys = new Set(SIGNALS.map((s) => kafka[s].message_key_from_metadata_key as string));
    expect(keys.size).toBe(1);
    const [metaKey] = [...keys];
    expect(metaKey).toBeTruthy();
    for (const proto of ['grpc', 'http']) expect(kafkaDirect.receivers.otlp.protocols[proto].include_metadata).toBe(true);
    expect(kafkaDirect.processors.batch.metadata_keys).toContain(metaKey);
    for (const s of SIGNALS) expect(kafka[`partition_${s}_by_id`] ?? false).toBe(false);
  });

  it('no processor that drops the request context (and so the key) sits in a pipeline keyed by metadata', () => {
    // tail_sampling and groupbytrace regroup spans into new batches without the client metadata.
    for (const [name, p] of Object.entries(kafkaDirect.service.pipelines as Obj)) {
      for (const id of p.processors as string[]) expect(['tail_sampling', 'groupbytrace'], `${name}: ${id}`).not.toContain(typeOf(id));
    }
  });
});

/** The collector's ${env:NAME[:-default]} expansion. */
function expandEnv(v: string, env: Record<string, string>): string {
  return v.replace(/\$\{env:([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}/g, (_, n: string, d: string | undefined) => env[n] ?? d ?? '');
}

describe('kafka-direct records through our scrubber', () => {
  const [, kafka] = Object.entries(kafkaDirect.exporters as Obj)[0]!;
  const env = { STELLA_TENANT_ID: 'acme', STELLA_KAFKA_BROKERS: 'kafka:9092' };
  // What the collector writes for a producer that sent `x-stella-tenant: <sent>`: key = that metadata
  // value (absent: no key), static record headers, value = the otlp_proto request with tenant.id upserted.
  const record = (sent: string | undefined) => {
    const stamp = (kafkaDirect.processors['resource/tenant'].attributes as Obj[])[0]!;
    const value = Buffer.from(encode('traces', { resourceSpans: [{ resource: { attributes: [
      { key: 'service.name', value: { stringValue: 'billing' } },
      { key: stamp.key, value: { stringValue: expandEnv(stamp.value, env) } }] },
    scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 2), name: 'charge', kind: 2 }] }] }] }));
    const headers = Object.fromEntries((kafka.record_headers as { name: string; value: string }[]).map((h) => [h.name, expandEnv(h.value, env)]));
    return { key: sent ?? null, value, headers };
  };
  const config = parseScrubConfig({}, {});

  it('a producer sending its own tenant is accepted as that tenant', () => {
    const v = scrubRecord('traces', record('acme'), config, new Date());
    expect(v.kind).toBe('clean');
    if (v.kind === 'clean') expect(v.tenant).toBe('acme');
  });

  it('a producer claiming another tenant, or none, is dead-lettered', () => {
    expect(scrubRecord('traces', record('globex'), config, new Date())).toEqual({ kind: 'dlq', reason: 'scrub: tenant header does not match the record key' });
    expect(scrubRecord('traces', record(undefined), config, new Date())).toEqual({ kind: 'dlq', reason: 'scrub: record key is not a valid tenant id' });
  });
});

describe('graphProblems (the checker has teeth)', () => {
  it('reports a misordered pipeline, a dangling reference, an unused component and an unenabled extension', () => {
    const broken = structuredClone(sidecar);
    broken.service.pipelines.traces.processors = ['batch', 'memory_limiter', 'tail_sampling'];
    broken.service.pipelines.logs.exporters = ['otlp/nowhere'];
    broken.processors['attributes/unused'] = { actions: [] };
    broken.service.extensions = ['bearertokenauth', 'health_check'];
    delete broken.service.pipelines.metrics;
    const p = graphProblems(broken);
    expect(p).toContain('no metrics pipeline');
    expect(p).toContain('pipeline traces: memory_limiter is not first (batch, memory_limiter, tail_sampling)');
    expect(p).toContain('pipeline traces: tail_sampling after batch');
    expect(p).toContain('pipeline logs references undefined exporter otlp/nowhere');
    expect(p).toContain('processor attributes/unused is defined but never used');
    expect(p).toContain('extension file_storage is defined but never used');
    expect(p.some((x) => x.includes('storage uses extension file_storage'))).toBe(true);
  });
});

// The real collector of the pinned release. Cold, the build takes minutes (CI builds it first with
// `npm run peers:fetch -- otelcol`); after that it is cached under .cache/go/otelcol-<version>/.
const configDir = fileURLToPath(new URL('../../collector-config/', import.meta.url));
const userConfigs = readdirSync(configDir).filter((f) => f.endsWith('.yaml') && f !== path.basename(COLLECTOR_MANIFEST)).map((f) => path.join(configDir, f));
const raceConfig = fileURLToPath(new URL('../../bench/peer-otelcol.yaml', import.meta.url));
const allConfigs = [...userConfigs, raceConfig];
const KINDS = ['receivers', 'processors', 'exporters', 'extensions'] as const;
const loadFile = (f: string): Obj => parse(readFileSync(f, 'utf8')) as Obj;

describe('the real OpenTelemetry Collector (pinned release, built from collector-config/builder-config.yaml)', () => {
  let otelcol = '';
  let scratch = '';
  let env: NodeJS.ProcessEnv = {};
  /** The build's components by kind: canonical names only (deprecated aliases such as otlphttp are not listed). */
  let built: Record<(typeof KINDS)[number], Set<string>>;
  const run = (args: string[]) => {
    const r = spawnSync(otelcol, args, { encoding: 'utf8', env, timeout: 30_000 });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  };
  const validate = (file: string, ...extra: string[]) => run(['validate', `--config=${file}`, ...extra]);
  /** Component types a config uses that are not a canonical name of the build. */
  const nonCanonical = (cfg: Obj): string[] =>
    KINDS.flatMap((kind) => Object.keys(cfg[kind] ?? {}).map(typeOf).filter((t) => !built[kind].has(t)).map((t) => `${kind}: ${t}`));

  beforeAll(() => {
    otelcol = buildCollector();
    scratch = mkdtempSync(path.join(os.tmpdir(), 'stella-otelcol-'));
    env = { PATH: process.env.PATH, HOME: scratch,
      // What an operator sets for the user-facing configs, and what bench/peer.ts sets for the race.
      STELLA_KAFKA_BROKERS: '127.0.0.1:9092', STELLA_TENANT_ID: 'acme', STELLA_QUEUE_DIR: path.join(scratch, 'queue'),
      STELLA_KAFKA_USERNAME: 'collector-acme', STELLA_KAFKA_PASSWORD: 'password-from-the-environment',
      PEER_KAFKA_USERNAME: 'admin', PEER_KAFKA_PASSWORD: 'password-from-the-environment',
      STELLA_OTLP_ENDPOINT: 'http://127.0.0.1:4318', STELLA_TOKEN: 'token-from-the-environment',
      PEER_BROKERS: '127.0.0.1:9092', PEER_TOPIC: 'otlp_spans', PEER_GRPC_ENDPOINT: '127.0.0.1:24317',
      PEER_HTTP_ENDPOINT: '127.0.0.1:24318', PEER_HEALTH_ENDPOINT: '127.0.0.1:23133' };
    const r = run(['components']);
    if (r.status !== 0) throw new Error(`otelcol components failed: ${r.out}`);
    const listed = parse(r.out) as Obj;
    built = Object.fromEntries(KINDS.map((k) => [k, new Set(((listed[k] ?? []) as Obj[]).map((c) => c.name as string))])) as typeof built;
  }, 30 * 60_000);
  afterAll(() => { if (scratch) rmSync(scratch, { recursive: true, force: true }); });

  it.each(allConfigs.map((f) => [path.relative(path.join(configDir, '..'), f), f]))('otelcol validate %s passes, with the canonical component names', (_, file) => {
    const r = validate(file);
    expect(r.status, r.out).toBe(0);
    expect(nonCanonical(loadFile(file))).toEqual([]);
  });

  it('is built with exactly the components the configs use', () => {
    for (const kind of KINDS) {
      const used = new Set(allConfigs.flatMap((f) => Object.keys(loadFile(f)[kind] ?? {}).map(typeOf)));
      expect([...built[kind]].sort(), kind).toEqual([...used].sort());
    }
  });

  it('every feature gate the docs tell users to pass exists in the pinned release', () => {
    const docs = [...readdirSync(configDir).map((f) => path.join(configDir, f)), fileURLToPath(new URL('../../docs/operations.md', import.meta.url))]
      .map((f) => readFileSync(f, 'utf8')).join('\n');
    for (const [, gates] of docs.matchAll(/--feature-gates[= ]([\w.,-]+)/g)) {
      const r = validate(path.join(configDir, 'kafka-direct.yaml'), `--feature-gates=${gates}`);
      expect(r.status, r.out).toBe(0);
    }
    // ...which the collector refuses when one does not (the gate the README once told users to pass):
    const r = validate(path.join(configDir, 'kafka-direct.yaml'), '--feature-gates=exporter.PersistRequestContext');
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('no such feature gate "exporter.PersistRequestContext"');
  });

  it('catches what these configs used to say: record_headers as a map, the deprecated otlphttp name', () => {
    const kd = structuredClone(kafkaDirect);
    kd.exporters['kafka/stella'].record_headers = { tenant: '${env:STELLA_TENANT_ID}' };
    const f = path.join(scratch, 'kafka-map-headers.yaml');
    writeFileSync(f, stringify(kd));
    const r = validate(f);
    expect(r.status).not.toBe(0);
    expect(r.out).toContain("'record_headers' source data must be an array or slice, got map");

    // The deprecated alias still validates; only the canonical-name check tells.
    const old = parse(stringify(sidecar).replaceAll('otlp_http/stella', 'otlphttp/stella')) as Obj;
    const g = path.join(scratch, 'sidecar-otlphttp.yaml');
    writeFileSync(g, stringify(old));
    expect(validate(g).status).toBe(0);
    expect(nonCanonical(old)).toEqual(['exporters: otlphttp']);
  });
});

// kafka-direct.yaml run by the real collector against the real broker: only its listen ports and topic
// names are changed (tests run in parallel); keys, headers, the tenant stamp and the persistent
// sending queue every record goes through are the file's own.
describe('kafka-direct.yaml in the real collector, writing to a real broker', () => {
  let child: ChildProcess | undefined;
  let scratch = '';
  let httpPort = 0;
  const topics = { traces: uniq('kd_spans'), metrics: uniq('kd_metrics'), logs: uniq('kd_logs') };

  beforeAll(async () => {
    const otelcol = buildCollector();
    scratch = mkdtempSync(path.join(os.tmpdir(), 'stella-kafka-direct-'));
    await createTopics(Object.values(topics));
    const [grpcPort, health] = [await freePort(), await freePort()];
    httpPort = await freePort();
    const cfg = structuredClone(kafkaDirect);
    cfg.receivers.otlp.protocols.grpc.endpoint = `127.0.0.1:${grpcPort}`;
    cfg.receivers.otlp.protocols.http.endpoint = `127.0.0.1:${httpPort}`;
    cfg.extensions.health_check.endpoint = `127.0.0.1:${health}`;
    for (const sig of SIGNALS) cfg.exporters['kafka/stella'][sig].topic = topics[sig];
    cfg.service.telemetry = { metrics: { level: 'none' } };
    const file = path.join(scratch, 'kafka-direct.yaml');
    writeFileSync(file, stringify(cfg));
    child = spawn(otelcol, ['--config', file], { stdio: ['ignore', 'ignore', 'pipe'],
      // The test broker's super user: the topics here are this test's own, not a collector user's direct topics.
      env: { PATH: process.env.PATH, HOME: scratch, STELLA_KAFKA_BROKERS: brokers(), STELLA_TENANT_ID: 'acme', STELLA_QUEUE_DIR: path.join(scratch, 'queue'),
        STELLA_KAFKA_USERNAME: testAccess().sasl!.username, STELLA_KAFKA_PASSWORD: testAccess().sasl!.password.reveal() } });
    let log = '';
    child.stderr!.on('data', (d: Buffer) => { log = (log + d.toString()).slice(-8000); });
    const deadline = Date.now() + 30_000;
    while (!(await fetch(`http://127.0.0.1:${health}/`).then((r) => r.ok, () => false))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the collector did not become healthy: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 30 * 60_000);
  afterAll(async () => {
    if (child && child.exitCode === null) { child.kill('SIGTERM'); await new Promise((r) => child!.once('exit', r)); }
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  const send = async (service: string, tenantHeader: string | undefined) => {
    const body = encode('traces', { resourceSpans: [{ resource: { attributes: [
      { key: 'service.name', value: { stringValue: service } },
      { key: 'tenant.id', value: { stringValue: 'globex' } }] }, // a claim the resource processor overwrites
    scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 7), spanId: Buffer.alloc(8, 9), name: 'charge', kind: 2 }] }] }] });
    const r = await fetch(`http://127.0.0.1:${httpPort}/v1/traces`, { method: 'POST', body,
      headers: { 'content-type': 'application/x-protobuf', ...(tenantHeader ? { 'x-stella-tenant': tenantHeader } : {}) } });
    expect(r.status).toBe(200);
  };

  it('keys and heads records by tenant, stamps tenant.id, and our scrubber accepts only the matching producer', async () => {
    await send('own-tenant', 'acme');
    await send('other-tenant', 'globex');
    await send('no-header', undefined);
    const recs = await readRecords([topics.traces], 3, 30_000);
    expect(recs).toHaveLength(3);
    const byService = Object.fromEntries(recs.map((r) => [attrString(decodeTraces(r.value).resourceSpans[0]!.resource!.attributes, 'service.name')!, r]));
    for (const r of recs) {
      expect(r.headers.tenant).toBe('acme');
      expect(decodeTraces(r.value).resourceSpans.map((rs) => attrString(rs.resource!.attributes, 'tenant.id'))).toEqual(['acme']);
    }
    expect(byService['own-tenant']!.key).toBe('acme');
    expect(byService['other-tenant']!.key).toBe('globex');
    expect(byService['no-header']!.key ?? '').toBe('');
    const config = parseScrubConfig({}, {});
    const verdict = (svc: string) => scrubRecord('traces', byService[svc]!, config, new Date());
    expect(verdict('own-tenant')).toMatchObject({ kind: 'clean', tenant: 'acme' });
    expect(verdict('other-tenant')).toEqual({ kind: 'dlq', reason: 'scrub: tenant header does not match the record key' });
    expect(verdict('no-header')).toEqual({ kind: 'dlq', reason: 'scrub: record key is not a valid tenant id' });
  });
});
