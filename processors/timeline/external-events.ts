// Timeline events that other processors publish on the `timeline_events` topic (scrub's deep-debug
// grants, SLO breaches, incident mode) become rows of the tenant's timeline here: the timeline
// processor is the one writer of timeline_events in ClickHouse. Pure: message in, row out.
import { validateTenantId } from '../../lib/tenancy.ts';
import type { TimelineEventRow } from '../../lib/store/index.ts';
import { PoisonRecord } from './transform.ts';

/** Header our own published events carry, so the runner does not re-read what it wrote. */
export const PRODUCER_HEADER = 'producer';
export const TIMELINE_PRODUCER = 'stella-timeline';

const STRING_FIELDS = ['event_id', 'tenant_id', 'kind', 'project_id', 'actor', 'resource_type', 'resource_id', 'trace_id', 'span_id', 'digest', 'source'] as const;

export function eventRowFromMessage(value: Buffer, key: string | null): TimelineEventRow {
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(value.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new PoisonRecord('timeline event is not JSON');
  }
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw new PoisonRecord('timeline event is not a JSON object');
  for (const f of STRING_FIELDS) {
    if (typeof m[f] !== 'string') throw new PoisonRecord(`timeline event field ${f} must be a string`);
  }
  const tenant = m.tenant_id as string;
  if (validateTenantId(tenant)) throw new PoisonRecord('timeline event has an invalid tenant_id');
  // The record key is the tenant on every topic of the pipeline; an event for another tenant is refused.
  if (key !== tenant) throw new PoisonRecord('timeline event tenant_id does not match the record key');
  if (!/^[0-9a-f]{16,64}$/.test(m.event_id as string)) throw new PoisonRecord('timeline event_id must be 16-64 lowercase hex characters');
  if (typeof m.kind !== 'string' || !/^[a-z0-9_.-]{1,128}$/.test(m.kind)) throw new PoisonRecord('timeline event kind must be dotted lowercase words');
  const ns = m.ts_unix_nano;
  if (typeof ns !== 'string' || !/^\d{1,20}$/.test(ns)) throw new PoisonRecord('timeline event ts_unix_nano must be decimal nanoseconds');
  return {
    event_id: m.event_id as string, ts: ns, tenant_id: tenant, project_id: m.project_id as string, kind: m.kind,
    actor: m.actor as string, resource_type: m.resource_type as string, resource_id: m.resource_id as string,
    trace_id: m.trace_id as string, span_id: m.span_id as string, digest: m.digest as string,
    details: JSON.stringify(m.details ?? {}), source: m.source as string,
  };
}
