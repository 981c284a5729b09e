// `stella run`: the receiver, the processors and the API in one process on the configured (or
// embedded default) Kafka and ClickHouse; `--only <part>` runs one part for scaling out.
// Shutdown order on SIGTERM: stop intake, drain and commit the processors, then stop Kafka.
import { ConfigError, type StellaConfig } from '../lib/config.ts';
import { startAdminServer } from '../lib/admin.ts';
import { ensureDemoTenant } from '../lib/bootstrap.ts';
import { connectKafka, ensurePipelineTopics } from '../lib/kafka/setup.ts';
import { logger } from '../lib/log.ts';
import { enableDefaultMetrics } from '../lib/metrics.ts';
import { TokenRegistry } from '../lib/tenancy.ts';
import { createKafka } from '../lib/kafka/client.ts';
import { parseScrubConfig } from '../processors/scrub/config.ts';
import { startScrub } from '../processors/scrub/runner.ts';
import { startReceiver } from '../receiver/index.ts';

export const PARTS = ['receiver', 'scrub'] as const;
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
  const tokens = new TokenRegistry(cfg.tenants);
  const kafka = await connectKafka(cfg.kafka, cfg.dataDir);
  const stops: (() => Promise<void>)[] = [];
  if (kafka.localBroker) stops.push(() => kafka.localBroker!.stop());
  try {
    await ensurePipelineTopics(kafka.brokers, cfg.kafka);
    const admin = await startAdminServer(cfg.admin.host, cfg.admin.port);
    stops.push(() => admin.close());
    const ports: Record<string, number> = { admin: admin.port };
    if (parts.has('receiver')) {
      const receiver = await startReceiver(cfg, kafka.brokers, tokens);
      admin.addCheck('kafka', () => ({ ok: receiver.health.isUp, detail: receiver.health.isUp ? undefined : 'Kafka unreachable' }));
      stops.push(() => receiver.close());
      ports.grpc = receiver.grpcPort;
      ports.http = receiver.httpPort;
      out(`OTLP receiver: gRPC ${cfg.receiver.host}:${receiver.grpcPort}, HTTP http://${cfg.receiver.host}:${receiver.httpPort}`);
    }
    if (parts.has('scrub')) {
      // Validated before anything consumes, so a bad rule file stops startup with its path named.
      const scrubConfig = section('scrub', () => parseScrubConfig(cfg.sections.scrub ?? {}));
      const scrub = await startScrub({ kafka: createKafka({ brokers: kafka.brokers, clientId: `${cfg.kafka.clientId}-scrub` }),
        config: scrubConfig, topics: cfg.kafka.topics });
      stops.push(() => scrub.stop());
      out('Scrub: raw -> clean topics');
    }
    out(`Kafka: ${kafka.brokers.join(',')}${kafka.localBroker ? ' (local broker started by stella)' : ''}`);
    out(`Self-telemetry: http://${cfg.admin.host}:${admin.port}/metrics, /healthz, /readyz`);
    log.info({ parts: [...parts], brokers: kafka.brokers, ports }, 'pipeline running');
    return {
      brokers: kafka.brokers,
      ports,
      // Reverse start order: intake stops before processors, processors before Kafka.
      stop: async () => { for (const s of stops.reverse()) await s().catch((err: unknown) => log.error({ error_message: String(err) }, 'shutdown step failed')); },
    };
  } catch (err) {
    for (const s of stops.reverse()) await s().catch(() => {});
    throw err;
  }
}
