-- golden_signals.partial: 1 on a row of a minute that is still open (the SLO runner writes its
-- running totals about once a second, so `stella obs top` shows the current minute within
-- seconds); 0 on the row written once the minute closed (watermark − lateness). The table keeps
-- no version column: ReplacingMergeTree then keeps the last inserted row of a key, and the closed
-- row is always inserted after every partial one of its minute (a minute leaves the runner's open
-- cells when it is closed and is never written as partial again).
ALTER TABLE golden_signals ADD COLUMN IF NOT EXISTS partial UInt8 DEFAULT 0 CODEC(ZSTD(1)) AFTER p99_ms;
