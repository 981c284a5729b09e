// One prom-client registry for the process; metrics are created once by name so that modules
// (and tests that construct components repeatedly) share them instead of double-registering.
import client from 'prom-client';

export const registry = new client.Registry();
let defaultsOn = false;
export function enableDefaultMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  client.collectDefaultMetrics({ register: registry, prefix: 'stella_' });
}

function getOrCreate<T>(name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []): client.Counter<L> {
  return getOrCreate(name, () => new client.Counter({ name, help, labelNames, registers: [registry] }));
}
/** `aggregator`: how /metrics combines the gauge over receiver workers (lib/admin.ts); default sum. */
export function gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = [], aggregator?: client.Aggregator): client.Gauge<L> {
  return getOrCreate(name, () => new client.Gauge({ name, help, labelNames, registers: [registry], ...(aggregator && { aggregator }) }));
}
export function histogram<L extends string>(name: string, help: string, labelNames: readonly L[] = [],
  buckets: number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]): client.Histogram<L> {
  return getOrCreate(name, () => new client.Histogram({ name, help, labelNames, buckets, registers: [registry] }));
}

/** One process's metrics as prom-client's JSON (what a receiver worker sends its primary). */
export type MetricsSnapshot = client.MetricObjectWithValues<client.MetricValue<string>>[];

/** Prometheus text of several processes' metrics in one: counters and histograms summed, gauges by
 * their aggregator (sum unless set otherwise; e.g. stella_kafka_up takes the minimum). */
export function aggregateMetrics(snapshots: MetricsSnapshot[]): Promise<string> {
  return client.AggregatorRegistry.aggregate(snapshots).metrics();
}
