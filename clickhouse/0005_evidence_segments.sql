-- One row per sealed evidence segment (a checkpoint moving a tenant's Merkle log from from_size to
-- to_size), written by the evidence processor; the timeline API links events to their segment.
-- No TTL: evidence must outlive the telemetry it covers. Re-sealing the same range collapses.
CREATE TABLE IF NOT EXISTS evidence_segments (
    tenant_id LowCardinality(String),
    from_size UInt64,
    to_size UInt64,
    root_hex String,
    statement_sha256 String,
    sealed_at DateTime64(9)
) ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, to_size)
SETTINGS non_replicated_deduplication_window = 1000;
