// A receiver worker process (receiver/workers.ts): started by the `stella run` primary with
// cluster.fork, it runs one whole receiver (receiver/index.ts) on the ports the primary shares and
// answers the primary's messages (configuration, token reloads, incident mode, metrics, stop).
import cluster from 'node:cluster';
import { Secret, type KafkaAccess, type SaslMechanism } from '../lib/kafka/auth.ts';
import { logger } from '../lib/log.ts';
import { enableDefaultMetrics, registry } from '../lib/metrics.ts';
import { TokenRegistry } from '../lib/tenancy.ts';
import { startTracing, stopTracing } from '../lib/tracing.ts';
import { startReceiver, type RunningReceiver } from './index.ts';
import { headSampler, parseSamplingConfig } from './sampling.ts';
import { selfTracingUrl, type FromWorker, type ToWorker, type WorkerAccess } from './workers.ts';

if (!cluster.isWorker) throw new Error('receiver/worker.ts runs only as a receiver worker of `stella run` (receiver.workers > 1)');

const log = logger('receiver-worker');
const send = (m: FromWorker) => { if (process.connected) process.send!(m); };

function kafkaAccess(a: WorkerAccess): KafkaAccess {
  return { brokers: a.brokers, tls: a.tls, sasl: a.sasl && { mechanism: a.sasl.mechanism as SaslMechanism, username: a.sasl.username, password: new Secret(a.sasl.password) } };
}

async function flushAndExit(code: number): Promise<never> {
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(code);
}

let receiver: RunningReceiver | undefined;
let tokens: TokenRegistry | undefined;
let stopping: Promise<void> | undefined;

/** Stop intake, answer what is in flight, drain the producer; then exit. */
function stop(): Promise<void> {
  return (stopping ??= (async () => {
    try {
      await receiver?.close();
      await stopTracing();
    } catch (err) {
      log.error({ error_message: String(err) }, 'receiver worker shutdown failed');
    }
    await flushAndExit(0);
  })());
}

async function start(m: Extract<ToWorker, { t: 'start' }>): Promise<void> {
  enableDefaultMetrics();
  headSampler.configure(parseSamplingConfig(m.cfg.sections.sampling));
  for (const [tenant, until] of m.incidents) headSampler.setIncident(tenant, until);
  tokens = new TokenRegistry(m.tenants);
  const r = await startReceiver(m.cfg, kafkaAccess(m.access), tokens);
  receiver = r;
  r.health.onChange = (up) => send({ t: 'kafka', up });
  if (m.tracing?.self) {
    await startTracing(m.cfg.tracing, { url: selfTracingUrl(m.cfg.receiver.host, r.httpPort), headers: { ...m.cfg.tracing.headers, Authorization: `Bearer ${m.tracing.token}` } });
  } else if (m.tracing) {
    const t = m.cfg.tracing;
    await startTracing(t, { url: t.endpoint, headers: { ...t.headers, ...(t.token ? { Authorization: `Bearer ${t.token}` } : {}) } });
  }
  send({ t: 'ready', grpcPort: r.grpcPort, httpPort: r.httpPort, kafkaUp: r.health.isUp });
}

process.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'start':
      start(m).catch(async (err: unknown) => {
        send({ t: 'failed', error: (err as Error).message ?? String(err) });
        await receiver?.close().catch(() => {});
        await flushAndExit(1);
      });
      break;
    case 'tenants':
      tokens?.replace(m.tenants);
      break;
    case 'incident':
      if (m.untilMs === null) headSampler.clearIncident(m.tenant);
      else headSampler.setIncident(m.tenant, m.untilMs);
      break;
    case 'metrics':
      void registry.getMetricsAsJSON().then((metrics) => send({ t: 'metrics', id: m.id, metrics }));
      break;
    case 'stop':
      void stop();
      break;
  }
});
// Signals go to the primary, which stops the workers in order; a Ctrl-C reaches the whole process
// group, so the worker ignores it and waits for the primary's stop.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => { void stop(); });
send({ t: 'hello' });
