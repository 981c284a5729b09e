// The timeline processor's public surface (docs/timeline.md).
export { startTimelineRunner, type TimelineRunnerOptions, type RunningTimeline } from './runner.ts';
export { obsTrace, traceTable, type ObsTraceOptions, type CliResult } from './cli.ts';
export { transformRecord, mergeTransformed, PoisonRecord, type CleanRecord, type Transformed } from './transform.ts';
export { eventsFromLogs, eventsFromSpans, eventMessage, eventMessageJson, eventId, nanosToRfc3339, ATTR } from './events.ts';
