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
export function gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []): client.Gauge<L> {
  return getOrCreate(name, () => new client.Gauge({ name, help, labelNames, registers: [registry] }));
}
export function histogram<L extends string>(name: string, help: string, labelNames: readonly L[] = [],
  buckets: number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]): client.Histogram<L> {
  return getOrCreate(name, () => new client.Histogram({ name, help, labelNames, buckets, registers: [registry] }));
}
