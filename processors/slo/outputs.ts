// What the SLO runner writes besides slo_events: incident-mode timeline rows and webhook payloads,
// golden-signal rows for ClickHouse, and the tenant-scoped golden-signal query.
import { createHash } from 'node:crypto';
import { blockToken, type Store, type TimelineEventRow } from '../../lib/store/index.ts';
import { validateTenantId } from '../../lib/tenancy.ts';
import { labelsFingerprint, promLabelString, type WebhookPayload } from './alert-payloads.ts';
import type { GoldenSignalRow } from './golden-signals.ts';
import type { IncidentModeEvent } from './incident-mode.ts';

export const GOLDEN_TABLE = 'golden_signals';
export const CHECKPOINT_TABLE = 'slo_checkpoints';

function canonical(o: Record<string, string | number>): string {
  return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${JSON.stringify(o[k])}`).join(',')}}`;
}
const msToNanos = (ms: number): string => (BigInt(Math.round(ms)) * 1_000_000n).toString();

/**
 * `incident.mode.started|stopped` as a timeline row. event_id = first 32 hex of
 * SHA-256("stella-incident-event/v1", tenant, kind, atMs): a replay gives the same id.
 */
export function incidentTimelineEvent(e: IncidentModeEvent): TimelineEventRow {
  const body = canonical({ reason: e.reason, by: e.by, at_ms: e.atMs, until_ms: e.untilMs });
  return {
    event_id: createHash('sha256').update(`stella-incident-event/v1\n${e.tenant}\n${e.kind}\n${e.atMs}`).digest('hex').slice(0, 32),
    ts: msToNanos(e.atMs), tenant_id: e.tenant, project_id: '', kind: e.kind, actor: e.by || 'stella-slo',
    resource_type: 'incident', resource_id: e.tenant, trace_id: '', span_id: '',
    digest: createHash('sha256').update(body).digest('hex'), details: body, source: `slo/incident/${e.tenant}`,
  };
}

export const INCIDENT_ALERT_NAME = 'StellaIncidentMode';

/** Incident-mode changes in Alertmanager's webhook format (alertname StellaIncidentMode, firing = on). */
export function incidentWebhookPayload(e: IncidentModeEvent, receiver: string, externalURL: string): WebhookPayload {
  const labels = { alertname: INCIDENT_ALERT_NAME, tenant: e.tenant, severity: 'info' };
  const status = e.kind === 'incident.mode.started' ? 'firing' : 'resolved';
  const annotations = { summary: `${e.tenant}: incident mode ${status === 'firing' ? 'on' : 'off'}`, reason: e.reason, by: e.by };
  // startsAt is the mode's start on both: Alertmanager-format consumers match the resolution to
  // the firing alert by labels and startsAt. A resolved alert ends at the stop time.
  const startsAt = new Date(e.sinceMs).toISOString();
  const endsAt = new Date(status === 'firing' ? e.untilMs : e.atMs).toISOString();
  const generatorURL = `${externalURL}/obs/incident?tenant=${encodeURIComponent(e.tenant)}`;
  return {
    version: '4', groupKey: `{}:${promLabelString({ alertname: INCIDENT_ALERT_NAME, tenant: e.tenant })}`, truncatedAlerts: 0,
    status, receiver, groupLabels: { alertname: INCIDENT_ALERT_NAME, tenant: e.tenant }, commonLabels: labels,
    commonAnnotations: annotations, externalURL,
    alerts: [{ status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint: labelsFingerprint(labels) }],
  };
}

export function goldenRow(r: GoldenSignalRow): Record<string, unknown> {
  return {
    tenant_id: r.tenant, service: r.service, minute: new Date(r.minuteStartMs).toISOString().slice(0, 19).replace('T', ' '),
    requests: r.requests, errors: r.errors, error_rate: r.errorRate, throughput_per_sec: r.throughputPerSec,
    p50_ms: r.p50Ms, p95_ms: r.p95Ms, p99_ms: r.p99Ms, partial: r.partial ? 1 : 0,
  };
}

/** Inserts golden-signal rows as one block whose dedup token is its content (a retried block is dropped). */
export async function insertGoldenSignals(store: Store, rows: GoldenSignalRow[]): Promise<void> {
  if (!rows.length) return;
  const lines = rows.map((r) => JSON.stringify(goldenRow(r)));
  await store.insertJsonLines(GOLDEN_TABLE, lines, blockToken(lines));
}

export interface GoldenSignalPoint {
  service: string; minute: string; requests: number; errors: number; error_rate: number; throughput_per_sec: number;
  p50_ms: number; p95_ms: number; p99_ms: number;
  /** The minute is still open: its totals so far. */
  partial?: boolean;
}

/**
 * Golden signals of ONE tenant in [fromMs, toMs), optionally one service. The tenant predicate is
 * part of the statement (lib/store's TenantStore does not cover this table yet).
 */
export async function goldenSignalsFor(store: Store, tenant: string, q: { fromMs: number; toMs: number; service?: string; limit?: number }): Promise<GoldenSignalPoint[]> {
  const bad = validateTenantId(tenant);
  if (bad) throw new Error(`invalid tenant id: ${bad}`);
  const rows = await store.selectRows<GoldenSignalPoint & { minute_s: string }>(
    `SELECT service, toUnixTimestamp(minute) AS minute_s, requests, errors, error_rate, throughput_per_sec, p50_ms, p95_ms, p99_ms, partial
     FROM ${GOLDEN_TABLE} FINAL
     WHERE tenant_id = {tenant:String} AND minute >= toDateTime({from:Int64}, 'UTC') AND minute < toDateTime({to:Int64}, 'UTC')
       ${q.service !== undefined ? 'AND service = {service:String}' : ''}
     ORDER BY service, minute LIMIT {limit:UInt32}`,
    { tenant, from: Math.floor(q.fromMs / 1000), to: Math.ceil(q.toMs / 1000), service: q.service ?? '', limit: q.limit ?? 10_000 });
  return rows.map(({ minute_s, ...r }) => ({ ...r, minute: new Date(Number(minute_s) * 1000).toISOString().replace('.000Z', 'Z'),
    requests: Number(r.requests), errors: Number(r.errors), partial: Number(r.partial) === 1 }));
}
