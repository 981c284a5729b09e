// Start a real receiver against the test run's Kafka broker, with fresh topics and known tokens.
import { buildConfig, type StellaConfig } from '../../lib/config.ts';
import { ensurePipelineTopics } from '../../lib/kafka/setup.ts';
import { sha256Hex } from '../../lib/tenancy.ts';
import { startReceiver, type RunningReceiver } from '../../receiver/index.ts';
import type { KafkaAccess } from '../../lib/kafka/auth.ts';
import { kafkaEnvOf, testAccess, uniq } from './kafka.ts';

export const TOKENS = {
  acme: 'acme-ingest-token-0123456789',
  globex: 'globex-ingest-token-0123456789',
  acmeReadOnly: 'acme-readonly-token-0123456789',
} as const;

export const testTenants = [
  { id: 'acme', tokens: [
    { sha256: sha256Hex(TOKENS.acme), scopes: ['otlp:write'] },
    { sha256: sha256Hex(TOKENS.acmeReadOnly), scopes: ['timeline:read'] },
  ] },
  { id: 'globex', tokens: [{ sha256: sha256Hex(TOKENS.globex), scopes: ['otlp:write'] }] },
];

/** `at`: the test broker as its super user unless given (e.g. a test's own broker's access()). */
export function testConfig(file: Record<string, unknown> = {}, at: KafkaAccess = testAccess()): StellaConfig {
  const prefix = uniq('t');
  return buildConfig({
    tenants: testTenants,
    ...file,
    receiver: { grpcPort: 0, httpPort: 0, ...(file.receiver as object | undefined) },
    kafka: {
      partitions: 3,
      topics: { spans: `${prefix}_spans`, metrics: `${prefix}_metrics`, logs: `${prefix}_logs`, spansClean: `${prefix}_spans_clean`,
        metricsClean: `${prefix}_metrics_clean`, logsClean: `${prefix}_logs_clean`, dlq: `${prefix}_dlq`,
        sloEvents: `${prefix}_slo_events`, timelineEvents: `${prefix}_timeline_events`,
        intakeRuntimeFacts: `${prefix}_intake_runtime_facts`, orchestratorExports: `${prefix}_orchestrator.export.created`,
        intakeArtifacts: `${prefix}_intake_artifacts`, intakeSymbols: `${prefix}_intake_symbols` },
      ...(file.kafka as object | undefined),
    },
  }, kafkaEnvOf(at));
}

export async function startTestReceiver(file: Record<string, unknown> = {}, at: KafkaAccess = testAccess()): Promise<{ cfg: StellaConfig; receiver: RunningReceiver }> {
  const cfg = testConfig(file, at);
  await ensurePipelineTopics(at, cfg.kafka, ['spans', 'metrics', 'logs']);
  const receiver = await startReceiver(cfg, at);
  return { cfg, receiver };
}
