// `stella run`: the receiver, the processors and the API in one process on the configured (or
// embedded default) Kafka and ClickHouse; `--only <part>` runs one part for scaling out.
// Shutdown order on SIGTERM: stop intake, drain and commit the processors, then stop Kafka.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ConfigError, type StellaConfig } from '../lib/config.ts';
import { startAdminServer } from '../lib/admin.ts';
import { ensureDemoTenant } from '../lib/bootstrap.ts';
import { connectKafka, preparePipeline } from '../lib/kafka/setup.ts';
import { drainGroup } from '../lib/kafka/drain.ts';
import { setConsumerGroupTiming } from '../lib/kafka/group-timing.ts';
import { logger } from '../lib/log.ts';
import { stopLeftoverBroker, trackLocalBroker, untrackLocalBroker } from './local-broker.ts';
import { enableDefaultMetrics } from '../lib/metrics.ts';
import { sha256Hex, TokenRegistry, type TenantConfig } from '../lib/tenancy.ts';
import { mergeTenants, readTokenStore, storeTenants, tokenStorePath, watchTokenStore } from '../lib/token-store.ts';
import { startTracing, stopTracing } from '../lib/tracing.ts';
import { createKafka } from '../lib/kafka/client.ts';
import { missingNodeFlags, NODE_FLAGS } from '../lib/node-flags.ts';
import { startReceiver } from '../receiver/index.ts';
import type { IncidentListener } from '../receiver/sampling.ts';
import { selfTracingUrl } from '../receiver/workers.ts';
import type { Store } from '../lib/store/index.ts';
// Processors, the store and the API are imported only when their part runs: the store loads the
// embedded ClickHouse engine (a 500+ MB library), which a receiver-only process must not carry.

export const PARTS = ['receiver', 'scrub', 'timeline', 'evidence', 'slo', 'api'] as const;
/** How long shutdown waits for one processor to commit the input it had when the drain began. */
const SHUTDOWN_DRAIN_MS = 30_000;
export type Part = (typeof PARTS)[number];

/** Parse a processor's config section; its errors become ConfigErrors naming the section. */
function section<T>(name: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new ConfigError([`${name}: ${(err as Error).message}`]);
  }
}

export interface RunningPipeline {
  brokers: string[];
  ports: Record<string, number>;
  stop(): Promise<void>;
}

export async function runPipeline(cfg: StellaConfig, parts: ReadonlySet<Part>, out: (line: string) => void): Promise<RunningPipeline> {
  const log = logger('run');
  enableDefaultMetrics();
  const missing = missingNodeFlags();
  if (missing.length > 0 && parts.has('receiver')) {
    // Works without them, at about 1.6x the receiver's CPU per span (lib/node-flags.ts).
    log.warn({ missing_flags: missing }, `node was started without ${missing.join(' ')}; start stella with "npm start", the stella command, or node ${NODE_FLAGS.join(' ')}`);
  }
  if (cfg.tenants.length === 0) {
    const demo = ensureDemoTenant(cfg.dataDir);
    cfg = { ...cfg, tenants: demo.tenants };
    if (demo.newToken) {
      out(`Created demo tenant "${demo.tenants[0]!.id}"; its token (shown once, only its hash is kept in ${demo.file}):`);
      out(`  STELLA_TOKEN=${demo.newToken}`);
    } else {
      out(`Using demo tenant "${demo.tenants[0]!.id}" from ${demo.file} (configure tenants to replace it).`);
    }
  }
  // Self-tracing to our own receiver: a token made for this process only (never stored or printed),
  // granted otlp:write for the system tenant. Other parts export to a receiver named in the config.
  let selfTraceToken: string | undefined;
  if (cfg.tracing.enabled && cfg.tracing.endpoint === 'self') {
    if (!parts.has('receiver')) {
      throw new ConfigError(['tracing.endpoint "self" needs the receiver in this process; with --only, set tracing.endpoint (STELLA_TRACING_ENDPOINT) to a receiver\'s /v1/traces URL and STELLA_TRACING_TOKEN to a token of the system tenant']);
    }
    selfTraceToken = `stella_self_${randomBytes(24).toString('base64url')}`;
    const tok = { sha256: sha256Hex(selfTraceToken), scopes: ['otlp:write'], name: 'self-tracing' };
    const sys = cfg.tenants.find((t) => t.id === cfg.tracing.systemTenant);
    cfg = { ...cfg, tenants: sys
      ? cfg.tenants.map((t) => (t === sys ? { ...t, tokens: [...t.tokens, tok] } : t))
      : [...cfg.tenants, { id: cfg.tracing.systemTenant, tokens: [tok] }] };
  }
  // Tokens of the config file (and demo/self-tracing) plus those of the token store (`stella tokens`),
  // which is polled: created and revoked tokens take effect without a restart.
  const baseTenants = cfg.tenants;
  let tokens: TokenRegistry;
  let tenantsNow: TenantConfig[];
  try {
    tenantsNow = mergeTenants(baseTenants, storeTenants(readTokenStore(cfg.dataDir)));
    tokens = new TokenRegistry(tenantsNow);
  } catch (err) {
    throw new ConfigError([`tenants / ${tokenStorePath(cfg.dataDir)}: ${(err as Error).message}`]);
  }
  setConsumerGroupTiming({ sessionTimeoutMs: cfg.kafka.sessionTimeoutMs, heartbeatIntervalMs: cfg.kafka.heartbeatIntervalMs, rebalanceTimeoutMs: cfg.kafka.rebalanceTimeoutMs });
  const kafkaDir = path.join(cfg.dataDir, 'kafka');
  if (!cfg.kafka.brokers) await stopLeftoverBroker(kafkaDir, out);
  const kafka = await connectKafka(cfg.kafka, cfg.dataDir);
  if (kafka.localBroker?.pid) trackLocalBroker(kafkaDir, kafka.localBroker.pid);
  // Shutdown runs by phase: intake stops first, processors drain and commit, then the API and admin
  // endpoints, then the store, and the local broker last.
  // Self-traces to our own receiver are flushed before intake stops (`selfTrace`); to another endpoint, after the processors.
  const phases = { selfTrace: [], intake: [], serving: [], storage: [], kafka: [] } as Record<'selfTrace' | 'intake' | 'serving' | 'storage' | 'kafka', (() => Promise<void>)[]>;
  // Processors stop one at a time in pipeline order (scrub, slo, timeline, evidence: each consumes
  // what the ones before it publish), each once its group has committed all its input (drainThenStop).
  const processors: { rank: number; stop: () => Promise<void> }[] = [];
  const step = (s: () => Promise<void>) => s().catch((err: unknown) => log.error({ error_message: String(err) }, 'shutdown step failed'));
  const stopAll = async () => {
    for (const list of [phases.selfTrace, phases.intake]) await Promise.all(list.splice(0).map(step));
    for (const p of processors.splice(0).sort((a, b) => a.rank - b.rank)) await step(p.stop);
    for (const list of [phases.serving, phases.storage, phases.kafka]) await Promise.all(list.splice(0).map(step));
  };
  // The processors' consumer groups (kafka.groupIdPrefix): the drain, the runners and /obs/top's lag agree on them.
  const groups = { scrub: `${cfg.kafka.groupIdPrefix}scrub`, timeline: `${cfg.kafka.groupIdPrefix}timeline`,
    evidence: `${cfg.kafka.groupIdPrefix}evidence`, slo: `${cfg.kafka.groupIdPrefix}slo` };
  // The drain is for what this process's receiver acknowledged; a part run alone (--only) just stops:
  // the other members of its group take its partitions over from the committed offsets.
  const drainThenStop = (rank: number, groupId: string, topics: string[], stop: () => Promise<void>, nudge?: () => Promise<void>) => {
    processors.push({ rank, stop: !parts.has('receiver') ? stop : async () => {
      const admin = createKafka({ ...kafka.access('admin'), clientId: `${cfg.kafka.clientId}-drain` }).admin();
      try {
        await admin.connect();
        const behind = await drainGroup(admin, { groupId, topics, timeoutMs: SHUTDOWN_DRAIN_MS, nudge });
        if (behind.length) log.warn({ group: groupId, behind: behind.map((p) => `${p.topic}/${p.partition}:${p.lag}`) }, 'shutdown drain timed out; the rest is processed after a restart');
      } catch (err) {
        log.warn({ group: groupId, error_message: String(err) }, 'shutdown drain failed; the rest is processed after a restart');
      } finally {
        await admin.disconnect().catch(() => {});
      }
      await stop();
    } });
  };
  if (kafka.localBroker) phases.kafka.push(async () => { await kafka.localBroker!.stop(); untrackLocalBroker(); });
  // Receiver workers (receiver/workers.ts) get each reload too; the SLO runner's incident changes
  // go to their head samplers (sloSampler) instead of only this process's.
  const onTenants: ((t: TenantConfig[]) => void)[] = [];
  let sloSampler: IncidentListener | undefined;
  const unwatchTokens = watchTokenStore(cfg.dataDir, (stored) => {
    const merged = mergeTenants(baseTenants, stored);
    tenantsNow = merged;
    tokens.replace(merged);
    for (const f of onTenants) f(merged);
    log.info({ tokens: tokens.size }, 'token store reloaded');
  }, (err) => log.error({ error_message: err.message }, 'token store not reloaded; the previous tokens stay in force'));
  phases.serving.push(async () => unwatchTokens());
  try {
    await preparePipeline(kafka, cfg.kafka);
    const admin = await startAdminServer(cfg.admin.host, cfg.admin.port);
    phases.serving.push(() => admin.close());
    const ports: Record<string, number> = { admin: admin.port };
    if (cfg.tracing.enabled && !selfTraceToken) {
      const headers = { ...cfg.tracing.headers, ...(cfg.tracing.token ? { Authorization: `Bearer ${cfg.tracing.token}` } : {}) };
      await startTracing(cfg.tracing, { url: cfg.tracing.endpoint, headers });
      phases.serving.push(() => stopTracing());
      out(`Self-tracing: to ${cfg.tracing.endpoint} (sample ratio ${cfg.tracing.sampleRatio})`);
    }
    if (parts.has('receiver')) {
      const { headSampler, parseSamplingConfig } = await import('../receiver/sampling.ts');
      headSampler.configure(section('sampling', () => parseSamplingConfig(cfg.sections.sampling)));
      let receiverPorts: { grpcPort: number; httpPort: number };
      if (cfg.receiver.workers > 1) {
        // A cluster of receiver processes sharing the ports (receiver/workers.ts).
        const { startReceiverWorkers } = await import('../receiver/workers.ts');
        const workers = await startReceiverWorkers({ cfg, access: kafka.access('receiver'), tenants: tenantsNow, workers: cfg.receiver.workers,
          tracing: !cfg.tracing.enabled ? undefined : selfTraceToken ? { self: true, token: selfTraceToken } : { self: false } });
        admin.addCheck('kafka', () => workers.readiness());
        admin.addMetricsSource(() => workers.metrics());
        onTenants.push((t) => workers.setTenants(t));
        sloSampler = workers.incidents;
        phases.intake.push(() => workers.close());
        receiverPorts = workers;
        out(`OTLP receiver: ${cfg.receiver.workers} worker processes (receiver.workers)`);
      } else {
        const receiver = await startReceiver(cfg, kafka.access('receiver'), tokens);
        admin.addCheck('kafka', () => ({ ok: receiver.health.isUp, detail: receiver.health.isUp ? undefined : 'Kafka unreachable' }));
        phases.intake.push(() => receiver.close());
        receiverPorts = receiver;
      }
      ports.grpc = receiverPorts.grpcPort;
      ports.http = receiverPorts.httpPort;
      if (selfTraceToken) {
        await startTracing(cfg.tracing, { url: selfTracingUrl(cfg.receiver.host, receiverPorts.httpPort), headers: { ...cfg.tracing.headers, Authorization: `Bearer ${selfTraceToken}` } });
        phases.selfTrace.push(() => stopTracing());
        out(`Self-tracing: to this receiver under tenant "${cfg.tracing.systemTenant}" (sample ratio ${cfg.tracing.sampleRatio})`);
      }
      out(`OTLP receiver: gRPC ${cfg.receiver.host}:${receiverPorts.grpcPort}, HTTP http://${cfg.receiver.host}:${receiverPorts.httpPort}`);
    }
    if (parts.has('scrub')) {
      // Validated before anything consumes, so a bad rule file stops startup with its path named.
      const { parseScrubConfig } = await import('../processors/scrub/config.ts');
      const { startScrub } = await import('../processors/scrub/runner.ts');
      const scrubConfig = section('scrub', () => parseScrubConfig(cfg.sections.scrub ?? {}));
      const scrub = await startScrub({ kafka: createKafka({ ...kafka.access('scrub'), clientId: `${cfg.kafka.clientId}-scrub` }),
        config: scrubConfig, topics: cfg.kafka.topics, groupId: groups.scrub, directTenants: cfg.kafka.directTenants });
      drainThenStop(0, groups.scrub, [cfg.kafka.topics.spans, cfg.kafka.topics.metrics, cfg.kafka.topics.logs], () => scrub.stop());
      out('Scrub: raw -> clean topics');
    }
    // One ClickHouse store for the process (chdb allows one engine per process), opened lazily.
    let store: Store | undefined;
    const getStore = async (): Promise<Store> => {
      if (!store) {
        const { migrate, openStore, retentionFromEnv } = await import('../lib/store/index.ts');
        store = await openStore({ url: cfg.clickhouse.url ?? undefined, dataPath: path.join(cfg.dataDir, 'chdb') });
        const opened = store;
        phases.storage.push(() => opened.close());
        await migrate(opened, retentionFromEnv());
        out(`ClickHouse: ${cfg.clickhouse.url ?? `embedded chdb in ${path.join(cfg.dataDir, 'chdb')}`} (migrations applied)`);
      }
      return store;
    };
    if (parts.has('timeline')) {
      const { startTimelineRunner } = await import('../processors/timeline/runner.ts');
      const { intakeSinks } = await import('../processors/timeline/intake-sinks.ts');
      const { IntakeTrust } = await import('../lib/intake/trust.ts');
      const { FsBlobStore } = await import('../lib/cas.ts');
      const { GraphRegistry } = await import('../lib/intake/graphs.ts');
      const { OrphanQueue } = await import('../processors/intake/orphan-queue.ts');
      const op = cfg.intake.runtimeFacts.orphans;
      const sinks = intakeSinks({ verify: new IntakeTrust(cfg.intake.trust).verifyIntakeEnvelope, cas: new FsBlobStore(cfg.intake.casDir),
        graphs: GraphRegistry.under(cfg.dataDir), orphans: { graphs: GraphRegistry.under(cfg.dataDir), queue: OrphanQueue.under(cfg.dataDir),
          policy: { maxQueued: op.maxQueued, ttlMs: op.ttlSeconds * 1000, retryInitialMs: op.retryInitialMs, retryMaxMs: op.retryMaxMs } } });
      const sinkTopics = [...new Set(sinks.flatMap((x) => x.topics.map((k) => cfg.kafka.topics[k])))];
      const timeline = await startTimelineRunner({ kafka: createKafka({ ...kafka.access('timeline'), clientId: `${cfg.kafka.clientId}-timeline` }),
        store: await getStore(), topics: { spans: cfg.kafka.topics.spansClean, logs: cfg.kafka.topics.logsClean,
          metrics: cfg.kafka.topics.metricsClean, timelineEvents: cfg.kafka.topics.timelineEvents, dlq: cfg.kafka.topics.dlq }, groupId: groups.timeline,
        intakeSinks: sinks, intakeTopics: cfg.kafka.topics });
      drainThenStop(2, groups.timeline, [cfg.kafka.topics.spansClean, cfg.kafka.topics.logsClean, cfg.kafka.topics.metricsClean, cfg.kafka.topics.timelineEvents, ...sinkTopics], () => timeline.stop());
      out('Timeline: clean topics -> ClickHouse timeline_events, otel_traces, otel_logs, otel_metrics_*');
    }
    // The tenants' Merkle logs, and the case bundles and holds (a separate tree the runner never touches).
    const evidenceRoot = path.join(cfg.dataDir, 'evidence');
    const evidenceSection = await (async () => {
      const { parseEvidenceSection } = await import('../processors/evidence/section.ts');
      return section('evidence', () => parseEvidenceSection(cfg.sections.evidence));
    })();
    if (parts.has('evidence')) {
      const { FsEvidenceStore } = await import('../processors/evidence/store.ts');
      const { startEvidenceRunner } = await import('../processors/evidence/runner.ts');
      // Per-tenant keys (created on first use); the former shared key (configured, or the old
      // development key if present) only continues logs still on it, with a recorded rotation.
      const { FileTenantKeys } = await import('../processors/evidence/tenant-keys.ts');
      const { DEV_KEY_FILE } = await import('../processors/evidence/dev-key.ts');
      const keyDir = path.resolve(evidenceSection.keyDir ?? path.join(cfg.dataDir, 'evidence-keys'));
      const legacyKeyFile = evidenceSection.keyFile ?? path.join(cfg.dataDir, DEV_KEY_FILE);
      out(`Evidence: per-tenant signing keys in ${keyDir} (mode 0600, created on first use; set evidence.keyDir in production)`);
      const runner = await startEvidenceRunner({ kafka: createKafka({ ...kafka.access('evidence'), clientId: `${cfg.kafka.clientId}-evidence` }),
        store: await getStore(), evidenceStore: new FsEvidenceStore(path.join(evidenceRoot, 'logs')), keys: new FileTenantKeys(keyDir, legacyKeyFile),
        origin: (t) => `${evidenceSection.originPrefix}/${t}`,
        topics: { timelineEvents: cfg.kafka.topics.timelineEvents, clean: [cfg.kafka.topics.spansClean, cfg.kafka.topics.logsClean, cfg.kafka.topics.metricsClean] },
        sealEverySeconds: evidenceSection.sealEverySeconds, sealEveryEntries: evidenceSection.sealEveryEntries, groupId: groups.evidence,
        attest: { witnesses: evidenceSection.witnesses, ...(evidenceSection.tsa ? { tsa: evidenceSection.tsa } : {}), backoff: evidenceSection.attestRetry },
        retention: { config: cfg.evidenceRetention, cases: new FsEvidenceStore(path.join(evidenceRoot, 'cases')) },
        // The clean records' bytes go to the one content-addressed store (lib/cas.ts), for trace bundles.
        records: new (await import('../lib/cas.ts')).FsBlobStore(cfg.intake.casDir),
        recordSignals: { [cfg.kafka.topics.spansClean]: 'traces', [cfg.kafka.topics.logsClean]: 'logs' } });
      // Last to stop: it logs what the other processors publish; sealing is what commits its offsets.
      drainThenStop(3, groups.evidence, [cfg.kafka.topics.timelineEvents, cfg.kafka.topics.spansClean, cfg.kafka.topics.logsClean, cfg.kafka.topics.metricsClean], () => runner.stop(), () => runner.sealAll());
      out(`Evidence: per-tenant Merkle logs in ${path.join(evidenceRoot, 'logs')}, sealed every ${evidenceSection.sealEverySeconds} s or ${evidenceSection.sealEveryEntries} entries`);
      const ret = cfg.evidenceRetention;
      out(`Evidence: retention ${ret.days} days (env ${cfg.env}${Object.keys(ret.tenants).length ? `, ${Object.keys(ret.tenants).length} tenant override(s)` : ''}, +${ret.incidentExtensionDays} days in incident mode), ${ret.pruneEverySeconds ? `pruned every ${ret.pruneEverySeconds} s` : 'not pruned automatically (stella forensic prune)'}; legal holds are kept`);
      if (evidenceSection.witnesses.length || evidenceSection.tsa) out(`Evidence: checkpoints go to ${evidenceSection.witnesses.length} witness(es)${evidenceSection.witnesses.map((w) => ` ${w.name}`).join(',')}${evidenceSection.tsa ? ` and the TSA ${evidenceSection.tsa.url}` : ''} (in the background; sealing never waits)`);
    }
    let slo: { runner: import('../processors/slo/runner.ts').RunningSloRunner; defaultIncidentTtlMs: number } | undefined;
    if (parts.has('slo')) {
      const { runnerConfig, sloSectionOrDefault } = await import('../processors/slo/section.ts');
      const sloSection = section('slo', () => sloSectionOrDefault(cfg.sections.slo));
      if (!sloSection) {
        out('SLO: off in the configuration (`slo: false`, or `slo.defaultCatalog: false` without SLOs; docs/slo.md); the SLO processor is not running');
      } else {
        const { startSloRunner } = await import('../processors/slo/runner.ts');
        const runner = await startSloRunner({ kafka: createKafka({ ...kafka.access('slo'), clientId: `${cfg.kafka.clientId}-slo` }),
          store: await getStore(), ...sloSection.runner, config: runnerConfig(sloSection), groupId: groups.slo, ...(sloSampler && { sampler: sloSampler }),
          topics: { spans: cfg.kafka.topics.spansClean, metrics: cfg.kafka.topics.metricsClean,
            sloEvents: cfg.kafka.topics.sloEvents, timelineEvents: cfg.kafka.topics.timelineEvents } });
        drainThenStop(1, groups.slo, [cfg.kafka.topics.spansClean, cfg.kafka.topics.metricsClean], () => runner.stop());
        slo = { runner, defaultIncidentTtlMs: sloSection.defaultIncidentTtlMs };
        out(`SLO: ${sloSection.config.slos.length} configured SLOs${sloSection.defaultCatalog ? ' + the default catalog (4 journeys for every tenant: sbom-ingest, policy-evaluation, advisory-link, export; slo.defaultCatalog)' : ''} evaluated from clean spans and metrics`);
      }
    }
    if (parts.has('api')) {
      const { startApiServer } = await import('../api/server.ts');
      const { registerTimelineRoutes } = await import('../api/timeline-routes.ts');
      const { registerSloRoutes, SLO_IN_OTHER_PROCESS, SLO_OFF_BY_CONFIG } = await import('../api/slo-routes.ts');
      const { registerEvidenceRoutes, createEvidenceLinks } = await import('../api/evidence-routes.ts');
      const { registerObsRoutes } = await import('../api/obs-routes.ts');
      const { registerObsReadRoutes } = await import('../api/obs-read-routes.ts');
      const { registerAttestationRoutes } = await import('../api/attestation-routes.ts');
      const { registerProvenanceRoutes } = await import('../api/provenance-routes.ts');
      const { ProvenanceService } = await import('../processors/provenance/service.ts');
      const { parseProvenanceSection, policyFor } = await import('../processors/provenance/policy.ts');
      const { FsBlobStore: ProvenanceCas } = await import('../lib/cas.ts');
      const provenanceSection = section('provenance', () => parseProvenanceSection(cfg.sections.provenance));
      const { registerArtifactRoutes, artifactRouteDeps } = await import('../api/artifact-routes.ts');
      const { registerExportRoutes, exportRouteDeps, exportClaimsUnder } = await import('../api/export-routes.ts');
      // The export claim journals' file handles: closed once the API stopped taking submissions.
      const exportClaims = exportClaimsUnder(cfg.dataDir);
      phases.storage.push(() => exportClaims.close());
      const { kafkaLag } = await import('../api/kafka-lag.ts');
      const { registerRuntimeFactsRoutes } = await import('../api/runtime-facts-routes.ts');
      const { IntakeTrust } = await import('../lib/intake/trust.ts');
      const { FsBlobStore } = await import('../lib/cas.ts');
      const { GraphRegistry } = await import('../lib/intake/graphs.ts');
      const intakeTrust = new IntakeTrust(cfg.intake.trust);
      const cas = new FsBlobStore(cfg.intake.casDir);
      const lag = kafkaLag({ kafka: createKafka({ ...kafka.access('api'), clientId: `${cfg.kafka.clientId}-api` }), groups });
      phases.serving.push(() => lag.close());
      const { FsEvidenceStore } = await import('../processors/evidence/store.ts');
      const s = await getStore();
      const { withIntakePins } = await import('../processors/evidence/trust-root.ts');
      const sloRoutes = slo;
      const logs = new FsEvidenceStore(path.join(evidenceRoot, 'logs'));
      const cases = new FsEvidenceStore(path.join(evidenceRoot, 'cases'));
      // Hold placements and releases go to timeline_events, for the evidence processor to seal.
      const { BatchingProducer } = await import('../lib/kafka/producer.ts');
      const { eventMessageJson } = await import('../processors/timeline/events.ts');
      const eventProducer = new BatchingProducer(createKafka({ ...kafka.access('api'), clientId: `${cfg.kafka.clientId}-api` }), { lingerMs: 2 });
      await eventProducer.connect();
      phases.kafka.push(() => eventProducer.disconnect());
      const publishTimelineEvent = (e: import('../lib/store/index.ts').TimelineEventRow) => eventProducer.send(cfg.kafka.topics.timelineEvents,
        [{ key: e.tenant_id, value: Buffer.from(eventMessageJson(e)), headers: { tenant: e.tenant_id, 'event-id': e.event_id } }]);
      const provenanceService = new ProvenanceService({ store: s, cas: new ProvenanceCas(cfg.intake.casDir),
        policy: (t) => policyFor(provenanceSection, t), evidenceLinks: createEvidenceLinks(logs) });
      // Resolved-symbol write-backs wait for a pause between queries: written before the store closes.
      phases.serving.push(() => provenanceService.flushWriteBacks());
      const api = await startApiServer({ tokens, host: cfg.api.host, port: cfg.api.port, ready: () => s.ping(),
        // The intake routes' producer, as the `api` Kafka user (ACLs: intake topics + timeline_events).
        kafka: createKafka({ ...kafka.access('api'), clientId: `${cfg.kafka.clientId}-api-intake` }),
        register: [
          (r) => registerTimelineRoutes(r, { store: s, evidenceLinks: createEvidenceLinks(logs) }),
          // Trust roots pin the tenant's intake keys and completeness policy too (audit bundles, docs/provenance.md).
          (r) => registerEvidenceRoutes(r, { evidence: logs, cases, store: s, publishTimelineEvent, records: cas,
            trustPolicy: (t) => withIntakePins(evidenceSection.trustPolicy, cfg.intake.trust[t]?.keys, policyFor(provenanceSection, t)),
            provenance: { service: provenanceService, store: s, cas } }),
          (r) => registerObsRoutes(r, { store: s, lag }),
          (r) => registerObsReadRoutes(r, { store: s, slo: sloRoutes?.runner }),
          (r) => registerAttestationRoutes(r, { evidence: logs }),
          (r, ctx) => registerRuntimeFactsRoutes(r, { cas, producer: ctx.producer, verify: intakeTrust.verifyIntakeEnvelope, graphs: GraphRegistry.under(cfg.dataDir),
            topics: { intakeRuntimeFacts: cfg.kafka.topics.intakeRuntimeFacts, intakeGraphs: cfg.kafka.topics.intakeGraphs, timelineEvents: cfg.kafka.topics.timelineEvents }, limits: cfg.intake.runtimeFacts, store: s }),
          (r) => registerProvenanceRoutes(r, { service: provenanceService }),
          (r, ctx) => { if (ctx.producer) registerArtifactRoutes(r, artifactRouteDeps({ store: s, blobs: cas, producer: ctx.producer, dataDir: cfg.dataDir,
            verify: intakeTrust.verifyIntakeEnvelope, topics: cfg.kafka.topics })); },
          (r) => registerSloRoutes(r, sloRoutes ? { slo: sloRoutes.runner, store: s, defaultIncidentTtlMs: sloRoutes.defaultIncidentTtlMs }
            : { store: s, off: parts.has('slo') ? SLO_OFF_BY_CONFIG : SLO_IN_OTHER_PROCESS }),
          (r, ctx) => registerExportRoutes(r, exportRouteDeps({ store: s, dataDir: cfg.dataDir, cas, verify: intakeTrust.verifyIntakeEnvelope,
            producer: ctx.producer, topics: cfg.kafka.topics, claims: exportClaims })),
        ] });
      phases.serving.push(() => api.close());
      ports.api = api.port;
      out(`API: ${api.url} (/timeline, /obs/trace/:trace_id, /obs/trace/:trace_id/provenance, /obs/top, /evidence/..., /attestations, /obs/slo, POST /api/v1/runtime-facts, /api/v1/artifacts, /api/v1/symbols)`);
    }
    out(`Kafka: ${kafka.brokers.join(',')}${kafka.localBroker ? ' (local broker started by stella)' : ''}`);
    out(`Self-telemetry: http://${cfg.admin.host}:${admin.port}/metrics, /healthz, /readyz`);
    log.info({ parts: [...parts], brokers: kafka.brokers, ports }, 'pipeline running');
    return {
      brokers: kafka.brokers,
      ports,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
