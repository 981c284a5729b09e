// Several receiver processes on one host (`receiver.workers` > 1), so the receiver uses every core.
//
// A Node cluster whose primary is the `stella run` process. Node 20 has no SO_REUSEPORT for net
// servers, so the primary holds the listening sockets and hands each accepted connection to the
// workers in turn (cluster's round-robin); a connection, and every HTTP/2 stream on it, stays with
// the worker it went to. Each worker is a whole receiver (receiver/index.ts: every front end, its own
// ingestor and its own idempotent acks=all producer), so what a worker acks, Kafka acked first.
//
// The primary:
//  - sends each worker the configuration, its Kafka login, the tokens (and every reload) and the
//    head sampler's incident state;
//  - is ready only while every worker is listening and reaches Kafka;
//  - serves its own and the workers' metrics aggregated (lib/admin.ts: counters summed);
//  - restarts a worker that died (its in-flight requests died with it: never answered, never acked);
//  - on shutdown stops every worker and waits until each has answered what it took in and its
//    producer drained.
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { StellaConfig } from '../lib/config.ts';
import type { KafkaAccess } from '../lib/kafka/auth.ts';
import { kafkaUp } from '../lib/kafka/health.ts';
import { logger } from '../lib/log.ts';
import { gauge, type MetricsSnapshot } from '../lib/metrics.ts';
import type { TenantConfig } from '../lib/tenancy.ts';
import type { IncidentListener } from './sampling.ts';

/** What a worker needs to reach Kafka; the password in clear (it never leaves the host's IPC pipe). */
export interface WorkerAccess { brokers: string[]; sasl: { mechanism: string; username: string; password: string } | null; tls: KafkaAccess['tls'] }

/** Self-tracing in a worker: to its own receiver with this token (tracing.endpoint `self`), or to cfg.tracing's endpoint. */
export type WorkerTracing = { self: true; token: string } | { self: false };

/** Primary -> worker. */
export type ToWorker =
  | { t: 'start'; cfg: StellaConfig; access: WorkerAccess; tenants: TenantConfig[]; incidents: [string, number][]; tracing?: WorkerTracing }
  | { t: 'tenants'; tenants: TenantConfig[] }
  | { t: 'incident'; tenant: string; untilMs: number | null }
  | { t: 'metrics'; id: number }
  | { t: 'stop' };

/** Worker -> primary. */
export type FromWorker =
  | { t: 'hello' }
  | { t: 'ready'; grpcPort: number; httpPort: number; kafkaUp: boolean }
  | { t: 'failed'; error: string }
  | { t: 'kafka'; up: boolean }
  | { t: 'metrics'; id: number; metrics: MetricsSnapshot };

export interface ReceiverWorkersOptions {
  cfg: StellaConfig;
  access: KafkaAccess;
  tenants: TenantConfig[];
  workers: number;
  tracing?: WorkerTracing;
  /** How long one worker may take to start (connect to Kafka, listen). */
  startTimeoutMs?: number;
  /** How long shutdown waits for a worker to drain before it is killed. */
  stopTimeoutMs?: number;
}

export interface RunningReceiverWorkers {
  grpcPort: number;
  httpPort: number;
  /** Ready: every worker listening and reaching Kafka. */
  readiness(): { ok: boolean; detail?: string };
  /** Token reloads (token store, `stella tokens`) go to every worker. */
  setTenants(tenants: TenantConfig[]): void;
  /** For the SLO runner: incident mode reaches every worker's head sampler. */
  incidents: IncidentListener;
  /** Every live worker's metrics (for lib/admin.ts to aggregate). */
  metrics(): Promise<MetricsSnapshot[]>;
  /** Process ids of the live workers. */
  pids(): number[];
  close(): Promise<void>;
}

const log = logger('receiver-workers');
const workersUp = gauge('stella_receiver_workers', 'Receiver worker processes listening (receiver.workers)');
const restarts = gauge('stella_receiver_worker_restarts', 'Receiver workers restarted after they died, since start');
const METRICS_TIMEOUT_MS = 2000;

interface Slot { index: number; worker?: Worker; ready: boolean; kafkaUp: boolean; startedAt: number; failures: number }

/** The receiver's own OTLP/HTTP traces URL (self-tracing): a wildcard listen address is reached on loopback. */
export function selfTracingUrl(host: string, httpPort: number): string {
  const h = ['0.0.0.0', '::', ''].includes(host) ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${h}:${httpPort}/v1/traces`;
}

export function workerAccess(a: KafkaAccess): WorkerAccess {
  return { brokers: a.brokers, tls: a.tls, sasl: a.sasl && { mechanism: a.sasl.mechanism, username: a.sasl.username, password: a.sasl.password.reveal() } };
}

/** The worker entry with the node flags of this process; `--import tsx` when this process has none
 * (e.g. started by tsx's own binary) since the worker module is TypeScript. */
function setupPrimary(): void {
  const exec = fileURLToPath(new URL('./worker.ts', import.meta.url));
  const execArgv = process.execArgv.some((a) => a.includes('tsx')) ? process.execArgv : [...process.execArgv, '--import', 'tsx'];
  cluster.setupPrimary({ exec, execArgv, args: [] });
}

export async function startReceiverWorkers(opts: ReceiverWorkersOptions): Promise<RunningReceiverWorkers> {
  if (!cluster.isPrimary) throw new Error('receiver workers are started by the primary process only');
  setupPrimary();
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? opts.cfg.kafka.produceTimeoutMs + 15_000;
  let tenants = opts.tenants;
  const incidents = new Map<string, number>();
  const access = workerAccess(opts.access);
  const slots: Slot[] = Array.from({ length: opts.workers }, (_, index) => ({ index, ready: false, kafkaUp: false, startedAt: 0, failures: 0 }));
  let ports: { grpcPort: number; httpPort: number } | undefined;
  let stopping = false;
  let nextMetricsId = 1;
  const metricsWaiters = new Map<number, (m: MetricsSnapshot) => void>();
  let restartCount = 0;

  const send = (w: Worker, m: ToWorker) => { if (w.isConnected()) w.send(m); };
  const refreshGauges = () => {
    workersUp.set(slots.filter((s) => s.ready).length);
    // This process's own stella_kafka_up, aggregated by minimum with the workers' (lib/kafka/health.ts).
    kafkaUp.set(slots.every((s) => s.ready && s.kafkaUp) ? 1 : 0);
  };

  /** Fork the slot's worker; resolves once it listens, rejects if it failed or died first. */
  const fork = (slot: Slot): Promise<void> => new Promise((resolve, reject) => {
    const w = cluster.fork({ STELLA_RECEIVER_WORKER: String(slot.index + 1) });
    slot.worker = w;
    slot.ready = false;
    slot.kafkaUp = false;
    slot.startedAt = Date.now();
    let settled = false;
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err); else resolve();
    };
    const timer = setTimeout(() => { done(new Error(`receiver worker ${slot.index + 1} did not start within ${startTimeoutMs} ms`)); w.process.kill('SIGKILL'); }, startTimeoutMs);
    w.on('message', (m: FromWorker) => {
      switch (m.t) {
        case 'hello': // its listener is set (a message sent before would be lost)
          send(w, { t: 'start', cfg: opts.cfg, access, tenants, incidents: [...incidents], tracing: opts.tracing });
          break;
        case 'ready':
          slot.ready = true;
          slot.kafkaUp = m.kafkaUp;
          ports ??= { grpcPort: m.grpcPort, httpPort: m.httpPort };
          refreshGauges();
          log.info({ worker: slot.index + 1, pid: w.process.pid }, 'receiver worker listening');
          done();
          break;
        case 'failed':
          done(new Error(`receiver worker ${slot.index + 1}: ${m.error}`));
          break;
        case 'kafka':
          slot.kafkaUp = m.up;
          refreshGauges();
          break;
        case 'metrics':
          metricsWaiters.get(m.id)?.(m.metrics);
          break;
      }
    });
    w.on('exit', (code, signal) => {
      const wasReady = slot.ready;
      slot.ready = false;
      refreshGauges();
      done(new Error(`receiver worker ${slot.index + 1} exited (${signal ?? `code ${code}`}) before it was listening`));
      if (slot.worker !== w || stopping) return;
      // Died: its connections were reset by the kernel, so nothing it had in flight was answered.
      slot.worker = undefined;
      slot.failures = wasReady && Date.now() - slot.startedAt > 10_000 ? 1 : slot.failures + 1;
      const delay = Math.min(5000, 100 * 2 ** (slot.failures - 1));
      log.error({ worker: slot.index + 1, pid: w.process.pid, exit_code: code, signal, restart_in_ms: delay }, 'receiver worker died; restarting it');
      setTimeout(() => {
        if (stopping) return;
        restartCount++;
        restarts.set(restartCount);
        fork(slot).catch((err: unknown) => log.error({ worker: slot.index + 1, error_message: String(err) }, 'receiver worker restart failed'));
      }, delay).unref();
    });
  });

  const stopWorker = (w: Worker): Promise<void> => new Promise((resolve) => {
    if (w.isDead()) { resolve(); return; }
    const timer = setTimeout(() => {
      log.warn({ pid: w.process.pid, timeout_ms: stopTimeoutMs }, 'receiver worker did not drain in time; killing it');
      w.process.kill('SIGKILL');
    }, stopTimeoutMs);
    w.once('exit', () => { clearTimeout(timer); resolve(); });
    send(w, { t: 'stop' });
  });

  const closeAll = async () => {
    stopping = true;
    await Promise.all(slots.map((s) => (s.worker ? stopWorker(s.worker) : undefined)));
    refreshGauges();
  };

  try {
    // One at a time until the first listens: with port 0 the cluster's shared handle is made once.
    await fork(slots[0]!);
    await Promise.all(slots.slice(1).map(fork));
  } catch (err) {
    await closeAll();
    throw err;
  }

  const live = () => slots.flatMap((s) => (s.worker && !s.worker.isDead() ? [s.worker] : []));
  return {
    grpcPort: ports!.grpcPort,
    httpPort: ports!.httpPort,
    readiness: () => {
      const problems = slots.flatMap((s) => (!s.ready ? [`worker ${s.index + 1}: not listening`] : !s.kafkaUp ? [`worker ${s.index + 1}: Kafka unreachable`] : []));
      return problems.length ? { ok: false, detail: problems.join('; ') } : { ok: true };
    },
    setTenants: (t) => {
      tenants = t;
      for (const w of live()) send(w, { t: 'tenants', tenants });
    },
    incidents: {
      setIncident: (tenant, untilMs) => { incidents.set(tenant, untilMs); for (const w of live()) send(w, { t: 'incident', tenant, untilMs }); },
      clearIncident: (tenant) => { incidents.delete(tenant); for (const w of live()) send(w, { t: 'incident', tenant, untilMs: null }); },
    },
    metrics: async () => {
      const asks = live().map((w) => new Promise<MetricsSnapshot | undefined>((resolve) => {
        const id = nextMetricsId++;
        const timer = setTimeout(() => { metricsWaiters.delete(id); resolve(undefined); }, METRICS_TIMEOUT_MS);
        metricsWaiters.set(id, (m) => { clearTimeout(timer); metricsWaiters.delete(id); resolve(m); });
        send(w, { t: 'metrics', id });
      }));
      return (await Promise.all(asks)).filter((m): m is MetricsSnapshot => m !== undefined);
    },
    pids: () => live().map((w) => w.process.pid!),
    close: closeAll,
  };
}
