// Wire shapes for SLO alerts: Alertmanager's `POST /api/v2/alerts` body and Alertmanager's webhook
// notification payload (version "4"), built from an evaluator AlertStatus. Labels are exactly the
// ones the rendered Prometheus rules carry, so both paths produce the same alert identity.
import type { AlertStatus } from './evaluator.ts';

export const ALERT_NAME = 'SloErrorBudgetBurn';

export interface AlertmanagerAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL: string;
}

export interface WebhookAlert extends AlertmanagerAlert {
  status: 'firing' | 'resolved';
  fingerprint: string;
}

export interface WebhookPayload {
  version: '4';
  groupKey: string;
  truncatedAlerts: number;
  status: 'firing' | 'resolved';
  receiver: string;
  groupLabels: Record<string, string>;
  commonLabels: Record<string, string>;
  commonAnnotations: Record<string, string>;
  externalURL: string;
  alerts: WebhookAlert[];
}

export function alertLabels(a: Pick<AlertStatus, 'tenant' | 'service' | 'slo' | 'severity' | 'windows'>): Record<string, string> {
  return { alertname: ALERT_NAME, tenant: a.tenant, service: a.service, slo: a.slo, severity: a.severity, windows: a.windows };
}

const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : String(n));

export function alertAnnotations(a: AlertStatus): Record<string, string> {
  const ann: Record<string, string> = {
    summary: `${a.tenant}/${a.service}: SLO ${a.slo} is burning its error budget (${a.severity}, ${a.windows})`,
    description: `Burn rate ${fmt(a.burnRateLong)}× over ${a.windows.split('/')[0]} and ${fmt(a.burnRateShort)}× over ${a.windows.split('/')[1]} ` +
      `(threshold ${a.factor}×, objective ${a.objective}); ${fmt(a.budgetRemaining * 100, 1)}% of the 30-day budget left.`,
    journey: a.journey,
    burn_rate_long: fmt(a.burnRateLong, 3),
    burn_rate_short: fmt(a.burnRateShort, 3),
    budget_remaining: fmt(a.budgetRemaining, 4),
  };
  if (a.exemplarTraceId) ann.exemplar_trace_id = a.exemplarTraceId;
  if (a.runbook) ann.runbook_url = a.runbook;
  return ann;
}

export interface PayloadTimes {
  /** Wall-clock now (ms). Alertmanager judges liveness by wall clock, not event time. */
  nowMs: number;
  /** A firing alert is re-sent at this interval; endsAt = now + 4× it, so a dead sender's alerts expire. */
  resendIntervalMs: number;
  generatorURL: string;
}

export function toAlertmanagerAlert(a: AlertStatus, t: PayloadTimes): AlertmanagerAlert {
  const startsAtMs = Math.min(a.startsAtMs || t.nowMs, t.nowMs);
  return {
    labels: alertLabels(a),
    annotations: alertAnnotations(a),
    startsAt: new Date(startsAtMs).toISOString(),
    // Resolved = endsAt now; Alertmanager then treats the alert as resolved immediately.
    endsAt: new Date(a.status === 'firing' ? t.nowMs + 4 * t.resendIntervalMs : Math.max(t.nowMs, startsAtMs)).toISOString(),
    generatorURL: t.generatorURL,
  };
}

export function toWebhookPayload(a: AlertStatus, t: PayloadTimes & { receiver: string; externalURL?: string }): WebhookPayload {
  const am = toAlertmanagerAlert(a, t);
  const groupLabels = { alertname: am.labels.alertname!, slo: a.slo, tenant: a.tenant };
  return {
    version: '4',
    groupKey: `{}:${promLabelString(groupLabels)}`,
    truncatedAlerts: 0,
    status: a.status,
    receiver: t.receiver,
    groupLabels,
    commonLabels: am.labels,
    commonAnnotations: am.annotations,
    externalURL: t.externalURL ?? '',
    alerts: [{ ...am, status: a.status, fingerprint: labelsFingerprint(am.labels) }],
  };
}

/** `{a="1", b="2"}` with sorted names and escaped values, as Alertmanager renders label sets. */
export function promLabelString(labels: Record<string, string>): string {
  const parts = Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return `{${parts.join(', ')}}`;
}

const FNV_OFFSET = 14695981039346656037n;
const FNV_PRIME = 1099511628211n;
const MASK64 = (1n << 64n) - 1n;

/** Alertmanager's alert fingerprint: FNV-1a 64 over sorted name, 0xff, value, 0xff (prometheus/common model). */
export function labelsFingerprint(labels: Record<string, string>): string {
  let h = FNV_OFFSET;
  const addBytes = (b: Uint8Array) => { for (const x of b) h = ((h ^ BigInt(x)) * FNV_PRIME) & MASK64; };
  const sep = Uint8Array.of(0xff);
  for (const k of Object.keys(labels).sort()) {
    addBytes(Buffer.from(k, 'utf8'));
    addBytes(sep);
    addBytes(Buffer.from(labels[k]!, 'utf8'));
    addBytes(sep);
  }
  return h.toString(16).padStart(16, '0');
}
