// Whether Kafka is reachable right now. Producers report failures and successes as they happen;
// while down, a background probe (a cheap metadata request) detects recovery, so callers can
// fail fast with a retryable answer instead of queueing work in memory.
import type { Admin, Kafka } from 'kafkajs';
import { logger } from '../log.ts';
import { gauge } from '../metrics.ts';

// Over receiver workers (lib/admin.ts) the minimum: 0 while any of them cannot reach Kafka.
export const kafkaUp = gauge('stella_kafka_up', 'Whether Kafka answered the last produce or metadata request (1) or not (0)', [], 'min');

export class KafkaHealth {
  private up = false;
  private admin: Admin | undefined;
  private timer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private readonly log = logger('kafka-health');
  lastError = '';
  /** Called when the verdict changes (a receiver worker tells its primary, receiver/worker.ts). */
  onChange: ((up: boolean) => void) | undefined;

  constructor(private readonly kafka: Kafka, private readonly probeIntervalMs = 1000) {}

  get isUp(): boolean { return this.up; }

  async start(): Promise<void> {
    await this.probe();
    // Probe while up too (a metadata request a second is cheap): a broker that went away is noticed
    // even when no produce is in flight to fail.
    this.timer = setInterval(() => { void this.probe(); }, this.probeIntervalMs);
    this.timer.unref();
  }

  /** Check now, e.g. after a produce timed out: while kafkajs keeps retrying, that produce has not
   * failed yet, and without a verdict every new request would wait for its own timeout. */
  probeNow(): Promise<void> { return this.probe(); }

  /** Stops probing. Resolves after a probe in flight has given its verdict, so a verdict set after
   * stop() (markDown/markUp) is not overwritten by a probe that was still running. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.probing;
    await this.admin?.disconnect().catch(() => {});
    this.admin = undefined;
  }

  markDown(err: unknown): void {
    if (this.up) this.log.warn({ error_message: String(err) }, 'Kafka unreachable; refusing new data with a retryable status until it returns');
    const was = this.up;
    this.up = false;
    this.lastError = String(err);
    kafkaUp.set(0);
    if (was) this.onChange?.(false);
  }

  markUp(): void {
    if (!this.up) this.log.info('Kafka reachable');
    const was = this.up;
    this.up = true;
    this.lastError = '';
    kafkaUp.set(1);
    if (!was) this.onChange?.(true);
  }

  private probe(): Promise<void> {
    // One probe at a time: a second caller shares the one in flight.
    this.probing ??= this.runProbe().finally(() => { this.probing = undefined; });
    return this.probing;
  }

  private async runProbe(): Promise<void> {
    try {
      if (!this.admin) { this.admin = this.kafka.admin({ retry: { retries: 0 } }); }
      await this.admin.connect();
      const c = await this.admin.describeCluster();
      if (c.brokers.length === 0) throw new Error('no brokers in cluster metadata');
      this.markUp();
    } catch (err) {
      this.markDown(err);
      await this.admin?.disconnect().catch(() => {});
      this.admin = undefined;
    }
  }
}
