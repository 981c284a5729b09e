-- Replay manifests (issue 14 §3; docs/provenance.md "Replay manifests"): the replay-harness
-- contract of a trace, stored next to it as canonical JSON (RFC 8785). Identity: (tenant, trace,
-- sha256 of the manifest), so building the same manifest again changes nothing visible, and a
-- manifest that changed (e.g. its evidence got sealed) is a second row, the older one kept.
-- No TTL: like the artifact tables, a replay contract must outlive the telemetry it describes.
CREATE TABLE IF NOT EXISTS replays (
    tenant_id LowCardinality(String),
    trace_id String,
    manifest_sha256 String,
    manifest String CODEC(ZSTD(3)),
    missing_fields Array(LowCardinality(String)),
    created_at DateTime64(3) DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, trace_id, manifest_sha256)
SETTINGS non_replicated_deduplication_window = 1000;
