// lib/store: the project's ClickHouse access (see docs/timeline.md).
export { openStore, storeOptionsFromEnv, Store, blockToken, type StoreOptions, type Row } from './store.ts';
export { BatchWriter, type BatchWriterOptions } from './batch-writer.ts';
export { migrate, retentionFromEnv, loadMigrations, sameMigration, statements, type RetentionConfig, type MigrateResult, type Migration } from './migrate.ts';
export { TenantStore, forTenant, MAX_LIMIT, type TimelineEvent, type TimelineFilter, type TimelineCursor, type TraceSpan,
  type EvidenceSegment } from './tenant-store.ts';
export { TABLES, insertEvidenceSegment, dateTime64, timelineInsertRow, type TimelineEventRow, type EvidenceSegmentRow } from './tables.ts';
