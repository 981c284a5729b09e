-- Artifact and symbol-bundle intake (issue 13 §4; docs/intake.md "Artifacts and symbol bundles"):
-- the inputs of the trace -> symbol -> artifact -> provenance join. Written by the timeline
-- processor's intake sink from the intake_artifacts / intake_symbols topics; read only through the
-- tenant-scoped store layer (processors/intake/lookup.ts). No TTL: like evidence_segments, these
-- must outlive the telemetry that points at them.
-- Idempotent: every row is a pure function of its Kafka record, and each table is a
-- ReplacingMergeTree on the row's identity, so a redelivered record collapses (readers use FINAL);
-- non_replicated_deduplication_window drops an identical retried block outright.

-- One row per (artifact, attestation): a re-signed provenance for the same artifact is a second
-- row, never an overwrite of the first.
CREATE TABLE IF NOT EXISTS artifacts (
    tenant_id LowCardinality(String),
    sha256 String,
    envelope_sha256 String,
    subject_name String,
    builder_commit String,
    compiler String,
    flags Array(String),
    oci_digest String,
    attested_fields Array(LowCardinality(String)),
    predicate_type LowCardinality(String),
    build_type String,
    builder_id String,
    build_finished_on String,
    signer_keyid String,
    dsse_envelope String CODEC(ZSTD(3)),
    envelope_cas_uri String,
    event_id String,
    registered_at DateTime64(9),
    INDEX idx_oci_digest oci_digest TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_builder_commit builder_commit TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, sha256, envelope_sha256)
SETTINGS non_replicated_deduplication_window = 1000;

-- Ordered for the join's lookup: frames carry a build-id (or PDB GUID+age, dSYM UUID), so the
-- normalized symbol_key follows the tenant in the sort key. The same bytes registered for two
-- artifacts are two rows.
CREATE TABLE IF NOT EXISTS symbol_bundles (
    tenant_id LowCardinality(String),
    symbol_key String,
    kind LowCardinality(String),
    bundle_sha256 String,
    artifact_sha256 String,
    build_id String,
    pdb_age UInt32,
    size UInt64,
    cas_uri String,
    key_verified UInt8,
    event_id String,
    registered_at DateTime64(9),
    INDEX idx_artifact artifact_sha256 TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_bundle bundle_sha256 TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, symbol_key, kind, bundle_sha256, artifact_sha256)
SETTINGS non_replicated_deduplication_window = 1000;

-- The evidence reference of each accepted intake: the timeline event (event_id, kind) that the
-- evidence processor seals into the tenant's log (inclusion proof by event_id: docs/evidence.md),
-- the signer and the digests it commits to. subject_type 'artifact' (subject_sha256 = artifact
-- sha256) or 'symbol_bundle' (subject_sha256 = bundle sha256).
CREATE TABLE IF NOT EXISTS provenance_evidence (
    tenant_id LowCardinality(String),
    subject_type LowCardinality(String),
    subject_sha256 String,
    event_id String,
    event_kind LowCardinality(String),
    artifact_sha256 String,
    envelope_sha256 String,
    signer_keyid String,
    cas_uri String,
    recorded_at DateTime64(9),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 1
) ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, subject_type, subject_sha256, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
