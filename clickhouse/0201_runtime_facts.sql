-- Runtime facts (issue #13 §2, docs/intake.md "Runtime facts"), written by the timeline processor's
-- intake hook from intake_runtime_facts records after it read the NDJSON back from the CAS (digest
-- checked) and, for a signed ingest, re-verified its DSSE envelope. Tenant first like every table.
-- Idempotent: an ingest id is derived from (tenant, graph, content), so a redelivered record or the
-- same body posted again yields identical rows, which collapse (ReplacingMergeTree, insert dedup).
-- No TTL: these are evidence inputs.
CREATE TABLE IF NOT EXISTS runtime_ingests (
    tenant_id LowCardinality(String),
    ingest_id String,
    graph_hash String,
    content_sha256 String,
    cas_uri String,
    size UInt64,
    records UInt64,
    first_ts DateTime64(9),
    last_ts DateTime64(9),
    signed_by String,
    envelope_cas_uri String,
    via LowCardinality(String),
    received_at DateTime64(9)
) ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, ingest_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS runtime_facts (
    tenant_id LowCardinality(String),
    graph_hash String,
    ingest_id String,
    line UInt32,
    ts DateTime64(9),
    symbol_id String,
    purl String,
    pid UInt32,
    container String,
    count UInt64
) ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, graph_hash, ingest_id, line)
SETTINGS non_replicated_deduplication_window = 1000;
