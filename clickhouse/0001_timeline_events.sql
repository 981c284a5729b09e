-- The canonical tenant timeline (ARCHITECTURE.md "ClickHouse"). One row per derived event.
-- ReplacingMergeTree on the sort key (tenant_id, ts, event_id): event_id is deterministic
-- (processors/timeline/events.ts), so a redelivered Kafka batch re-inserts identical rows that
-- collapse on merge; readers use FINAL so duplicates are never visible, even before a merge.
-- non_replicated_deduplication_window lets insert_deduplication_token drop a retried block outright.
-- {{TIMELINE_TTL_DAYS}} is substituted by lib/store/migrate.ts (default 180; STELLA_TIMELINE_TTL_DAYS).
CREATE TABLE IF NOT EXISTS timeline_events (
    event_id String CODEC(ZSTD(1)),
    ts DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    tenant_id LowCardinality(String) CODEC(ZSTD(1)),
    project_id String CODEC(ZSTD(1)),
    kind LowCardinality(String) CODEC(ZSTD(1)),
    actor String CODEC(ZSTD(1)),
    resource_type LowCardinality(String) CODEC(ZSTD(1)),
    resource_id String CODEC(ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    digest String CODEC(ZSTD(1)),
    details String CODEC(ZSTD(3)),
    source String CODEC(ZSTD(1)),
    inserted_at DateTime64(3) DEFAULT now64(3) CODEC(Delta(8), ZSTD(1)),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_resource_id resource_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_kind kind TYPE set(1024) GRANULARITY 1
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (tenant_id, ts, event_id)
TTL toDateTime(ts) + toIntervalDay({{TIMELINE_TTL_DAYS}})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;
