// Turns evaluation results into deliveries: transitions go to Alertmanager and webhooks at once;
// firing alerts are re-sent to Alertmanager every resend interval (Alertmanager expires alerts that
// stop being refreshed). handle() only enqueues, so evaluation never waits on the network.
import { toAlertmanagerAlert, toWebhookPayload, type PayloadTimes } from './alert-payloads.ts';
import type { AlertStatus, EvaluationResult } from './evaluator.ts';
import { RetryingPoster, type PosterOptions } from './retrying-poster.ts';

type SenderTuning = Omit<PosterOptions, 'url' | 'target'>;

export interface DispatcherOptions {
  /** Alertmanager base URLs (http://host:9093); alerts go to <base>/api/v2/alerts. */
  alertmanagers?: string[];
  webhooks?: { name: string; url: string; receiver?: string }[];
  resendIntervalMs?: number;
  /** Wall clock for endsAt and re-send timing; injectable for tests. */
  clock?: () => number;
  /** Base of generatorURL (the /obs/slo endpoint of this deployment). */
  externalURL?: string;
  sender?: SenderTuning;
}

const alertKey = (a: AlertStatus): string => `${a.tenant}\u0000${a.slo}\u0000${a.windows}`;

export class AlertDispatcher {
  readonly alertmanagers: RetryingPoster[];
  readonly webhooks: { poster: RetryingPoster; receiver: string }[];
  private readonly lastSent = new Map<string, number>();
  private readonly resendIntervalMs: number;
  private readonly clock: () => number;
  private readonly externalURL: string;

  constructor(opts: DispatcherOptions) {
    this.resendIntervalMs = opts.resendIntervalMs ?? 60_000;
    this.clock = opts.clock ?? Date.now;
    this.externalURL = (opts.externalURL ?? 'http://localhost').replace(/\/+$/, '');
    this.alertmanagers = (opts.alertmanagers ?? []).map((base) =>
      new RetryingPoster({ ...opts.sender, url: `${base.replace(/\/+$/, '')}/api/v2/alerts`, target: 'alertmanager' }));
    this.webhooks = (opts.webhooks ?? []).map((w) => ({
      poster: new RetryingPoster({ ...opts.sender, url: w.url, target: `webhook:${w.name}` }),
      receiver: w.receiver ?? w.name,
    }));
  }

  /** Enqueues what this evaluation requires; synchronous and never throws on delivery problems. */
  handle(result: EvaluationResult): void {
    const now = this.clock();
    const changed = new Set<string>();
    for (const a of result.transitions) {
      const key = alertKey(a);
      changed.add(key);
      const times = this.times(a, now);
      this.toAlertmanagers(a, times);
      for (const w of this.webhooks) w.poster.enqueue(toWebhookPayload(a, { ...times, receiver: w.receiver, externalURL: this.externalURL }));
      if (a.status === 'firing') this.lastSent.set(key, now);
      else this.lastSent.delete(key);
    }
    this.refresh(result.firing.filter((a) => !changed.has(alertKey(a))));
  }

  /**
   * Re-sends firing alerts to Alertmanager whose last send is a resend interval old (or that were
   * never sent by this process: after a restart, at once; same labels and startsAt, so
   * Alertmanager deduplicates). The runner calls it at startup and on a timer, not only when
   * traffic drives an evaluation, so an alert never outlives its endsAt while it still fires.
   */
  refresh(firing: readonly AlertStatus[]): number {
    const now = this.clock();
    let sent = 0;
    for (const a of firing) {
      const key = alertKey(a);
      const last = this.lastSent.get(key);
      if (last === undefined || now - last >= this.resendIntervalMs) {
        this.toAlertmanagers(a, this.times(a, now));
        this.lastSent.set(key, now);
        sent++;
      }
    }
    return sent;
  }

  get resendInterval(): number { return this.resendIntervalMs; }

  async idle(): Promise<void> {
    await Promise.all([...this.alertmanagers, ...this.webhooks.map((w) => w.poster)].map((p) => p.idle()));
  }

  close(): void {
    for (const p of [...this.alertmanagers, ...this.webhooks.map((w) => w.poster)]) p.close();
  }

  private toAlertmanagers(a: AlertStatus, times: PayloadTimes): void {
    if (this.alertmanagers.length === 0) return;
    const body = [toAlertmanagerAlert(a, times)];
    for (const p of this.alertmanagers) p.enqueue(body);
  }

  private times(a: AlertStatus, now: number): PayloadTimes {
    const q = new URLSearchParams({ tenant: a.tenant, slo: a.slo });
    return { nowMs: now, resendIntervalMs: this.resendIntervalMs, generatorURL: `${this.externalURL}/obs/slo?${q}` };
  }
}
