-- Orchestrator exports (issue #13 §3, docs/intake.md "Orchestrator exports"): one row per export,
-- i.e. per (tenant, artifact, run), written by the timeline processor's intake hook after it
-- re-verified the record's DSSE signatures (processors/intake/exports.ts exportRowFromRecord).
-- Ordered for (artifactHash, runId) lookups, tenant first like every table. A later status of the
-- same export (pending -> running -> succeeded | failed | canceled) replaces the row: the version is
-- status_rank, so FINAL shows the furthest status; a redelivered record is an identical row and
-- collapses (insert dedup drops a retried block outright). The history of every status step stays
-- on the timeline (ledger_export events) and in the evidence log. No TTL: this is evidence.
CREATE TABLE IF NOT EXISTS orchestrator_exports (
    tenant_id LowCardinality(String),
    artifact_hash String,
    run_id String,
    export_id String,
    status LowCardinality(String),
    status_rank UInt8,
    job_type LowCardinality(String),
    policy_hash String,
    started_at DateTime64(9),
    completed_at Nullable(DateTime64(9)),
    started_at_text String,
    completed_at_text String,
    manifest_path String,
    logs_path String,
    environment LowCardinality(String),
    idempotency_key String,
    export_digest String,
    body_digest String,
    dsse_envelope_digests Array(String),
    signer_keyids Array(String),
    event_id String,
    received_at DateTime64(9),
    record String CODEC(ZSTD(3)),
    INDEX idx_export_id export_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_run_id run_id TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = ReplacingMergeTree(status_rank)
ORDER BY (tenant_id, artifact_hash, run_id)
SETTINGS non_replicated_deduplication_window = 1000;
