// Imported first by benches whose other imports create the root logger (lib/log.ts reads
// STELLA_LOG_LEVEL once, when the first logger is made): a later `??=` would come too late, and
// every info line (an audit line per API request, ...) would be written and counted in the bench.
process.env.STELLA_LOG_LEVEL ??= 'warn';
