// Alert transitions as records for the `slo_events` topic and as tenant timeline events
// (`slo.breach.started|resolved`). Ids and bytes are deterministic, so a replay after a restart
// yields the same event_id (the timeline deduplicates by it) instead of a second breach.
import { createHash } from 'node:crypto';
import type { TimelineEventRow } from '../../lib/store/index.ts';
import type { AlertStatus } from './evaluator.ts';

export const SLO_EVENTS_TOPIC = 'slo_events';
export type SloEventKind = 'slo.breach.started' | 'slo.breach.resolved';

export const sloEventKind = (t: AlertStatus): SloEventKind => (t.status === 'firing' ? 'slo.breach.started' : 'slo.breach.resolved');

/** Sorted-key JSON; for flat objects of strings and finite numbers this is RFC 8785 canonical JSON. */
function canonical(o: Record<string, string | number>): string {
  return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${JSON.stringify(o[k])}`).join(',')}}`;
}

function details(t: AlertStatus): Record<string, string | number> {
  return {
    service: t.service, slo: t.slo, journey: t.journey, severity: t.severity, windows: t.windows,
    objective: t.objective, factor: t.factor, burn_rate_long: t.burnRateLong, burn_rate_short: t.burnRateShort,
    budget_remaining: t.budgetRemaining, events_long: t.eventsLong, exemplar_trace_id: t.exemplarTraceId,
    starts_at_ms: t.startsAtMs, at_ms: t.atMs, runbook: t.runbook,
  };
}

/** Kafka record for `slo_events`: key = tenant (the project's partitioning rule), JSON value. */
export function sloEventRecord(t: AlertStatus): { key: string; value: string; headers: Record<string, string> } {
  return { key: t.tenant, value: canonical({ kind: sloEventKind(t), tenant: t.tenant, ...details(t) }), headers: { tenant: t.tenant } };
}

const msToNanosString = (ms: number): string => (BigInt(Math.round(ms)) * 1_000_000n).toString();

/** The transition as a timeline event row (`ts` = evaluation event time, ns). */
export function sloTimelineEvent(t: AlertStatus, projectId = ''): TimelineEventRow {
  const kind = sloEventKind(t);
  const body = canonical(details(t));
  const digest = createHash('sha256').update(body).digest('hex');
  // One breach = (tenant, slo, windows, startsAt); started and resolved differ by kind.
  const eventId = createHash('sha256').update(`stella-slo-event/v1\n${t.tenant}\n${kind}\n${t.slo}\n${t.windows}\n${t.startsAtMs}`).digest('hex').slice(0, 32);
  return {
    event_id: eventId, ts: msToNanosString(t.atMs), tenant_id: t.tenant, project_id: projectId, kind,
    actor: 'stella-slo', resource_type: 'slo', resource_id: t.slo, trace_id: t.exemplarTraceId, span_id: '',
    digest, details: body, source: `slo/${t.slo}/${t.windows}`,
  };
}
