-- Stack frames of the exceptions in a tenant's telemetry (issue 14 §1; docs/provenance.md):
-- exception events on spans and exception attributes on log records, parsed by
-- processors/timeline/frames.ts and written by the timeline processor. One row per frame.
-- Identity: (tenant, trace, span, exception_id, frame_index); exception_id is a digest of the
-- exception's source (span event index + time, or the log record's bytes), so a redelivered
-- record writes identical rows and they collapse. ReplacingMergeTree(resolved_version): the
-- provenance join may re-insert a frame with its resolved symbol at a higher version, which wins.
-- ts is a function of the source, so duplicates share their day partition (FINAL per partition).
CREATE TABLE IF NOT EXISTS frames (
    tenant_id LowCardinality(String),
    ts DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    trace_id String,
    span_id String,
    source LowCardinality(String),
    exception_id String,
    service_name LowCardinality(String),
    exception_type String,
    runtime LowCardinality(String),
    frame_index UInt16,
    function String CODEC(ZSTD(1)),
    module String CODEC(ZSTD(1)),
    file String CODEC(ZSTD(1)),
    line UInt32,
    column UInt32,
    ip Nullable(UInt64),
    module_offset Nullable(UInt64),
    build_id String,
    pdb_guid String,
    pdb_age UInt32,
    dsym_uuid String,
    resolved_symbol String CODEC(ZSTD(1)),
    resolved_version UInt32 DEFAULT 0,
    INDEX idx_build_id build_id TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = ReplacingMergeTree(resolved_version)
PARTITION BY toDate(ts)
ORDER BY (tenant_id, trace_id, span_id, exception_id, frame_index)
TTL toDateTime(ts) + toIntervalDay({{OTEL_TTL_DAYS}})
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;
