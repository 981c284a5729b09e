-- SLO processor tables (docs/slo.md "ClickHouse").
-- golden_signals: one row per (tenant, service, event-time minute): throughput, errors, P50/P95/P99.
-- ReplacingMergeTree on exactly that key: the runner checkpoints open minutes with its offsets, so a
-- replayed batch re-emits identical rows that collapse on merge (readers use FINAL); an identical
-- retried block is dropped outright via insert_deduplication_token.
-- {{OTEL_TTL_DAYS}} is substituted at creation (default 30; STELLA_OTEL_TTL_DAYS).
CREATE TABLE IF NOT EXISTS golden_signals (
    tenant_id LowCardinality(String) CODEC(ZSTD(1)),
    service LowCardinality(String) CODEC(ZSTD(1)),
    minute DateTime('UTC') CODEC(Delta(4), ZSTD(1)),
    requests UInt64 CODEC(T64, ZSTD(1)),
    errors UInt64 CODEC(T64, ZSTD(1)),
    error_rate Float64 CODEC(ZSTD(1)),
    throughput_per_sec Float64 CODEC(ZSTD(1)),
    p50_ms Float64 CODEC(ZSTD(1)),
    p95_ms Float64 CODEC(ZSTD(1)),
    p99_ms Float64 CODEC(ZSTD(1)),
    inserted_at DateTime64(3) DEFAULT now64(3) CODEC(Delta(8), ZSTD(1))
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant_id, service, minute)
TTL minute + toIntervalDay({{OTEL_TTL_DAYS}})
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

-- slo_checkpoints: the SLO runner's durable state per (consumer group, source partition): the
-- SloCore checkpoint (base64) together with the next offsets it covers (JSON). Written after a
-- batch's outputs and before its offsets are committed; the highest version wins.
CREATE TABLE IF NOT EXISTS slo_checkpoints (
    group_id String,
    partition UInt32,
    version UInt64,
    offsets String,
    state String CODEC(ZSTD(3)),
    written_at DateTime64(3) DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(version)
ORDER BY (group_id, partition);
