-- The OTel tables against the OpenTelemetry Collector ClickHouse exporter at contrib v0.165.1, its
-- own templates: https://github.com/open-telemetry/opentelemetry-collector-contrib/tree/v0.165.1/exporter/clickhouseexporter/internal/sqltemplates
-- (vendored for the test in test/fixtures/clickhouseexporter-v0.165.1/; test/timeline/exporter-schema.test.ts
-- creates them and compares every column, codec and index with ours). Decided per difference:
--
-- Matched here (additive, or a lossless type change):
--  * otel_logs: the 8 `__otel_materialized_*` columns (MATERIALIZED from ResourceAttributes: the
--    exporter's fast k8s / environment filters), idx_event_name, and idx_lower_body (token bloom
--    filter over lower(Body)) in place of idx_body over Body, as the exporter replaced it.
--  * otel_metrics_*: MetricName LowCardinality(String) (was String; same values, smaller and
--    faster; a mutation rewrites existing parts in the background), idx_time_minmax on TimeUnix.
--
-- Kept as ours, on purpose:
--  * otel_metrics_*: TimeUnix, StartTimeUnix and Exemplars.TimeUnix stay DateTime64(9) (the exporter
--    has DateTime, seconds). OTLP times are nanoseconds, and the point time is part of our
--    ReplacingMergeTree identity (ORDER BY ... toUnixTimestamp64Nano(TimeUnix)): at whole seconds,
--    two points of one series within a second (high-frequency gauges, delta sums) would collapse
--    into one row. Readers that expect DateTime (Grafana's OTel views) compare and bucket
--    DateTime64 the same way. Their Delta(8) codec (Delta(4) in the exporter) follows from the type.
--  * otel_logs.TimestampTime (the exporter dropped it in v0.151.0): it is our partition key,
--    primary-key column and TTL column; removing it means rebuilding the table. Grafana's ClickHouse
--    plugin sees it and uses its older logs mapping, which reads this table as it is.
--  * Codecs ZSTD(1) where the exporter has ZSTD(3): the embedded engine compresses inside the
--    pipeline's process, so level 1 keeps insert CPU down for a few percent more disk (not
--    measured here). Codecs are invisible to every reader and to the exporter's inserts; on a
--    ClickHouse server an operator may `ALTER TABLE ... MODIFY COLUMN ... CODEC(ZSTD(3))`.
--  * Sort keys and engines: TenantId leads every key, and ReplacingMergeTree with the record's
--    identity in the key collapses a redelivered batch (docs/timeline.md); TenantId (all tables) and
--    RecordId (otel_logs) are our columns.

ALTER TABLE otel_logs ADD COLUMN IF NOT EXISTS `__otel_materialized_k8s.cluster.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.cluster.name'] CODEC(ZSTD(1));
ALTER TABLE otel_logs ADD COLUMN IF NOT EXISTS `__otel_materialized_k8s.container.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.container.name'] CODEC(ZSTD(1));
ALTER TABLE otel_logs ADD COLUMN IF NOT EXISTS `__otel_materialized_k8s.deployment.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.deployment.name'] CODEC(ZSTD(1));
ALTER TABLE otel_logs ADD COLUMN IF NOT EXISTS `__otel_materialized_k8s.namespace.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.namespace.name'] CODEC(ZSTD(1));
ALTER TABLE otel_logs ADD COLUMN IF NOT EXISTS `__otel_materialized_k8s.node.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.node.name'] CODEC(ZSTD(1));
ALTER TABLE otel_logs ADD COLUMN IF NOT EXISTS `__otel_materialized_k8s.pod.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.pod.name'] CODEC(ZSTD(1));
ALTER TABLE otel_logs ADD COLUMN IF NOT EXISTS `__otel_materialized_k8s.pod.uid` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.pod.uid'] CODEC(ZSTD(1));
ALTER TABLE otel_logs ADD COLUMN IF NOT EXISTS `__otel_materialized_deployment.environment.name` LowCardinality(String) MATERIALIZED ResourceAttributes['deployment.environment.name'] CODEC(ZSTD(1));
ALTER TABLE otel_logs ADD INDEX IF NOT EXISTS idx_lower_body lower(Body) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8;
ALTER TABLE otel_logs ADD INDEX IF NOT EXISTS idx_event_name EventName TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE otel_logs DROP INDEX IF EXISTS idx_body;

ALTER TABLE otel_metrics_gauge MODIFY COLUMN MetricName LowCardinality(String) CODEC(ZSTD(1));
ALTER TABLE otel_metrics_gauge ADD INDEX IF NOT EXISTS idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1;
ALTER TABLE otel_metrics_sum MODIFY COLUMN MetricName LowCardinality(String) CODEC(ZSTD(1));
ALTER TABLE otel_metrics_sum ADD INDEX IF NOT EXISTS idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1;
ALTER TABLE otel_metrics_histogram MODIFY COLUMN MetricName LowCardinality(String) CODEC(ZSTD(1));
ALTER TABLE otel_metrics_histogram ADD INDEX IF NOT EXISTS idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1;
ALTER TABLE otel_metrics_exponential_histogram MODIFY COLUMN MetricName LowCardinality(String) CODEC(ZSTD(1));
ALTER TABLE otel_metrics_exponential_histogram ADD INDEX IF NOT EXISTS idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1;
ALTER TABLE otel_metrics_summary MODIFY COLUMN MetricName LowCardinality(String) CODEC(ZSTD(1));
ALTER TABLE otel_metrics_summary ADD INDEX IF NOT EXISTS idx_time_minmax TimeUnix TYPE minmax GRANULARITY 1;
