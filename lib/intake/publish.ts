// Publishing an intake: the small intake record on its own topic AND its timeline event on
// timeline_events (which the timeline processor writes to ClickHouse and the evidence processor
// seals: that is every intake's evidence entry). Resolves only once Kafka acked both, so a route
// answers its client only after the intake is durable. The payload itself is already in the CAS.
import { hash } from 'node:crypto';
import type { OutMessage } from '../kafka/producer.ts';
import { H } from '../kafka/topics.ts';
import { canonicalize } from '../../processors/evidence/jcs.ts';
import { eventMessageJson } from '../../processors/timeline/events.ts';
import type { TimelineEventRow } from '../store/index.ts';
import { validateTenantId } from '../tenancy.ts';

/** Timeline event kinds of the signed intake (docs/intake.md). */
export const INTAKE_EVENT_KINDS = ['reach.runtime.ingested', 'reach.graph.registered', 'reach.runtime.orphan.replayed', 'runtime.ingest.failed', 'ledger_export', 'artifact.registered', 'symbols.registered'] as const;
export type IntakeEventKind = (typeof INTAKE_EVENT_KINDS)[number];

/** Anything with BatchingProducer's send (acks=all, idempotent; resolves when Kafka acked). */
export interface IntakeProducer { send(topic: string, messages: OutMessage[]): Promise<void> }

export interface IntakeTimelineEvent {
  kind: IntakeEventKind;
  /** What the event is about, e.g. `runtime_facts` / the ingest id. */
  resourceType: string;
  resourceId: string;
  /** `sha256:<hex>` of the CAS blob (or of the refused body), '' when there is none. */
  digest: string;
  /** Small JSON object (sealed in the evidence log: the whole event must stay well under 64 KiB). */
  details: Record<string, unknown>;
  /** Who did it (token name, CLI user); '' when unknown. */
  actor?: string;
  /** Epoch nanoseconds as a decimal string; default now. */
  tsUnixNano?: string;
  /**
   * Identity of the event: the same id -> the same event (timeline and evidence dedup by event_id).
   * Default: derived from tenant, kind, resource id and digest, so re-publishing the same intake is invisible.
   */
  idSeed?: string;
  traceId?: string;
  spanId?: string;
}

export interface IntakePublication {
  /** An intake topic (TopicNames intake*). */
  topic: string;
  tenant: string;
  /** The intake record (usually JSON pointing at the CAS blob); '' allowed for events-only publications (refusals). */
  value: Buffer | null;
  timelineEvent: IntakeTimelineEvent;
  timelineTopic?: string;
  /** Extra headers on the intake record (not on the event). */
  headers?: Record<string, string>;
}

/** Header set on intake-published events, so the timeline runner knows it must store them. */
export const INTAKE_PRODUCER = 'stella-intake';

export function intakeEventId(tenant: string, kind: string, seed: string): string {
  return hash('sha256', `stella-intake-event/v1\n${tenant}\n${kind}\n${seed}`, 'hex').slice(0, 32);
}

/** The timeline row of an intake event (pure). */
export function intakeEventRow(tenant: string, e: IntakeTimelineEvent, topic: string): TimelineEventRow {
  const ts = e.tsUnixNano ?? (BigInt(Date.now()) * 1_000_000n).toString();
  return {
    event_id: intakeEventId(tenant, e.kind, e.idSeed ?? `${e.resourceType}\n${e.resourceId}\n${e.digest}`),
    ts, tenant_id: tenant, project_id: '', kind: e.kind, actor: e.actor ?? '', resource_type: e.resourceType, resource_id: e.resourceId,
    trace_id: e.traceId ?? '', span_id: e.spanId ?? '', digest: e.digest, details: canonicalize(e.details), source: topic,
  };
}

/**
 * Produce the intake record (key = tenant, headers tenant + content-sha256) and its timeline event;
 * resolves after Kafka acked both. A refusal publishes only the event (value null).
 */
export async function publishIntake(producer: IntakeProducer, p: IntakePublication): Promise<TimelineEventRow> {
  if (validateTenantId(p.tenant)) throw new Error('publishIntake: invalid tenant id');
  const row = intakeEventRow(p.tenant, p.timelineEvent, p.topic);
  const sends: Promise<void>[] = [];
  if (p.value !== null) {
    sends.push(producer.send(p.topic, [{ key: p.tenant, value: p.value, headers: {
      ...p.headers, [H.tenant]: p.tenant, [H.contentSha256]: hash('sha256', p.value, 'hex') } }]));
  }
  const eventValue = Buffer.from(eventMessageJson(row));
  sends.push(producer.send(p.timelineTopic ?? 'timeline_events', [{ key: p.tenant, value: eventValue, headers: {
    [H.tenant]: p.tenant, [H.contentSha256]: hash('sha256', eventValue, 'hex'), producer: INTAKE_PRODUCER } }]));
  await Promise.all(sends);
  return row;
}
