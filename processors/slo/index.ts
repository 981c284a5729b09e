// Public surface of the SLO core (no Kafka, no ClickHouse): the runner wires these to topics.
export * from './config.ts';
export * from './samples.ts';
export * from './burn.ts';
export * from './evaluator.ts';
export * from './snapshot.ts';
export * from './alert-payloads.ts';
export * from './alert-dispatcher.ts';
export * from './retrying-poster.ts';
export * from './prometheus-rules.ts';
export * from './golden-signals.ts';
export { SlotRing } from './slot-ring.ts';
export { SloState } from './slo-state.ts';
export * from './slo-events.ts';
export * from './incident-mode.ts';
export * from './slo-core.ts';
