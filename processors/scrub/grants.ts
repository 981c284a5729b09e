// Deep-debug grants on the tenant's timeline: a grant's start and its expiry are timeline events.
// Pure: the tracker is told the time and returns the events due; the runner publishes them and
// acknowledges them once Kafka acked. Event ids are derived from (tenant, grant, kind), so a
// restarted scrubber that re-announces a grant produces the same event_id and the timeline (which
// deduplicates by event_id) keeps one row.
import { createHash } from 'node:crypto';
import type { DeepDebugGrant, ScrubConfig } from './config.ts';

/** One row of the `timeline_events` contract (ARCHITECTURE.md), as JSON on the timeline topic. */
export interface TimelineEvent {
  event_id: string;
  /** RFC 3339 UTC with nanosecond precision, and the same instant as decimal nanoseconds. */
  ts: string;
  ts_unix_nano: string;
  tenant_id: string;
  project_id: string;
  kind: 'scrub.deep_debug.granted' | 'scrub.deep_debug.expired';
  actor: string;
  resource_type: 'scrub_grant';
  resource_id: string;
  trace_id: string;
  span_id: string;
  digest: string;
  details: { rules: string[]; starts_at: string; expires_at: string; reason: string };
  /** Where the event came from: `scrub/deep-debug/<grant id>` (the config, not a Kafka record). */
  source: string;
}

const rfc3339Nano = (d: Date): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');

export function grantEvent(tenant: string, g: DeepDebugGrant, kind: TimelineEvent['kind']): TimelineEvent {
  const details = { rules: [...g.rules], starts_at: g.startsAt.toISOString(), expires_at: g.expiresAt.toISOString(), reason: g.reason };
  const at = kind === 'scrub.deep_debug.granted' ? g.startsAt : g.expiresAt;
  return {
    event_id: createHash('sha256').update(`scrub-grant\u0000${tenant}\u0000${g.id}\u0000${kind}`).digest('hex').slice(0, 32),
    ts: rfc3339Nano(at), ts_unix_nano: (BigInt(at.getTime()) * 1_000_000n).toString(),
    tenant_id: tenant, project_id: '', kind,
    // The expiry is the system's doing, not the granting operator's.
    actor: kind === 'scrub.deep_debug.granted' ? g.actor : 'system:stella-scrub',
    resource_type: 'scrub_grant', resource_id: g.id, trace_id: '', span_id: '',
    digest: createHash('sha256').update(JSON.stringify(details)).digest('hex'),
    details, source: `scrub/deep-debug/${g.id}`,
  };
}

const announceKey = (tenant: string, grantId: string, kind: string): string => `${tenant}\u0000${grantId}\u0000${kind}`;

export class GrantTracker {
  private readonly announced = new Set<string>();
  constructor(private config: ScrubConfig) {}

  /** Track reloaded policies; what was already announced stays announced. */
  setConfig(config: ScrubConfig): void { this.config = config; }

  /** Events that are due at `now` and not yet acknowledged (start before expiry, per tenant order). */
  due(now: Date): TimelineEvent[] {
    const out: TimelineEvent[] = [];
    const t = now.getTime();
    for (const [tenant, policy] of this.config.tenants) {
      for (const g of policy.grants) {
        if (t >= g.startsAt.getTime()) this.push(out, tenant, g, 'scrub.deep_debug.granted');
        if (t >= g.expiresAt.getTime()) this.push(out, tenant, g, 'scrub.deep_debug.expired');
      }
    }
    return out;
  }

  /** Mark events as published (call after the timeline topic acked them). */
  ack(events: readonly TimelineEvent[]): void {
    for (const e of events) this.announced.add(announceKey(e.tenant_id, e.resource_id, e.kind));
  }

  private push(out: TimelineEvent[], tenant: string, g: DeepDebugGrant, kind: TimelineEvent['kind']): void {
    // Checked before building the event: due() runs before every batch, hashing is not free.
    if (!this.announced.has(announceKey(tenant, g.id, kind))) out.push(grantEvent(tenant, g, kind));
  }
}
