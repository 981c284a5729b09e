// Topic names (ARCHITECTURE.md). Raw topics keep the OpenTelemetry Collector Kafka exporter's
// default names so a stock collector can feed the processors directly.
export interface TopicNames {
  spans: string; metrics: string; logs: string;
  spansClean: string; metricsClean: string; logsClean: string;
  dlq: string; sloEvents: string; timelineEvents: string;
  /** Signed intake (docs/intake.md): small records pointing at CAS blobs, key = tenant, written by the API. */
  intakeRuntimeFacts: string; orchestratorExports: string; intakeArtifacts: string; intakeSymbols: string; intakeGraphs: string;
}

export const defaultTopicNames: TopicNames = {
  spans: 'otlp_spans', metrics: 'otlp_metrics', logs: 'otlp_logs',
  spansClean: 'otlp_spans_clean', metricsClean: 'otlp_metrics_clean', logsClean: 'otlp_logs_clean',
  dlq: 'otlp_dlq', sloEvents: 'slo_events', timelineEvents: 'timeline_events',
  intakeRuntimeFacts: 'intake_runtime_facts', orchestratorExports: 'orchestrator.export.created',
  intakeArtifacts: 'intake_artifacts', intakeSymbols: 'intake_symbols', intakeGraphs: 'intake_graphs',
};

/** The intake topics (the API produces them, the timeline processor's intake hook consumes them). */
export const INTAKE_TOPIC_KEYS = ['intakeRuntimeFacts', 'orchestratorExports', 'intakeArtifacts', 'intakeSymbols', 'intakeGraphs'] as const satisfies readonly (keyof TopicNames)[];
export type IntakeTopicKey = (typeof INTAKE_TOPIC_KEYS)[number];
export const intakeTopics = (t: TopicNames): string[] => INTAKE_TOPIC_KEYS.map((k) => t[k]);

/** Kafka header names shared by every producer in the pipeline. */
export const H = {
  tenant: 'tenant',
  contentSha256: 'content-sha256',
  traceparent: 'traceparent',
  dlqReason: 'dlq-reason',
  dlqSourceTopic: 'dlq-source-topic',
  dlqSourceOffset: 'dlq-source-offset',
  scrubSummary: 'scrub-summary',
  /** On clean records: the raw record's content-sha256 as received (custody from receipt, docs/evidence.md). */
  rawContentSha256: 'raw-content-sha256',
  /** On clean records: `sha256:<hex>` of the scrub policy in effect (processors/scrub/policy-version.ts). */
  scrubPolicy: 'scrub-policy',
  /** The receiver's head-sampling threshold (receiver/sampling.ts): the SLO processor's adjusted counts. */
  samplingTh: 'sampling-th',
} as const;

/** Raw-record headers the scrubber carries onto the clean record as they were. Every other header a
 * producer set is dropped: a header is free text nothing scrubs, so carrying it would let a secret
 * bypass the scrubber. tenant, content-sha256, scrub-summary, raw-content-sha256 and scrub-policy are written anew by the scrubber
 * (a producer's own raw-content-sha256 or scrub-policy header is never carried). */
export const CARRIED_HEADERS: readonly string[] = [H.traceparent, 'tracestate', H.samplingTh];
