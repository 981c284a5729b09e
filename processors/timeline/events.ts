// Timeline event derivation (pure). docs/timeline.md documents the mapping with examples.
//  * Every OTLP log record with an event_name is an event: kind = event_name.
//  * Every span carrying `stella.job.name` (or `stella.request.name`) yields `job.started` at its
//    start and `job.finished` / `job.failed` (status ERROR) at its end (`request.*` likewise).
// Attributes read (record first, then its resource): stella.actor, stella.resource.type,
// stella.resource.id, stella.project.id. event_id is deterministic (tenant, kind, sender resource,
// digest of the source item's canonical bytes), so re-processing the same input yields the same ids.
import { createHash } from 'node:crypto';
import { toHex, type ExportLogsServiceRequest, type ExportTraceServiceRequest, type KeyValue, type Span } from '../../lib/otlp/proto.ts';
import type { TimelineEventRow } from '../../lib/store/index.ts';
import { anyValueString, attrMap, canonicalJson } from './attributes.ts';
import { logRecordDigest, logTimestamp, resourceDigest, serviceName, SpanType } from './otel-rows.ts';

export const ATTR = {
  actor: 'stella.actor',
  resourceType: 'stella.resource.type',
  resourceId: 'stella.resource.id',
  projectId: 'stella.project.id',
  jobName: 'stella.job.name',
  jobId: 'stella.job.id',
  requestName: 'stella.request.name',
  requestId: 'stella.request.id',
} as const;

/** Where a derived event came from: the clean Kafka record and the item's index inside it. */
export interface SourceRef { topic: string; partition: number; offset: string }

const STATUS_ERROR = 2;

function lookup(key: string, ...lists: (readonly KeyValue[] | null | undefined)[]): string {
  for (const l of lists) for (const kv of l ?? []) if (kv.key === key) return anyValueString(kv.value);
  return '';
}

export function eventId(tenant: string, kind: string, resDigest: string, digest: string): string {
  return createHash('sha256').update(`stella-timeline-event/v1\n${tenant}\n${kind}\n${resDigest}\n${digest}`).digest('hex').slice(0, 32);
}

const sourceString = (src: SourceRef, index: number) => `${src.topic}/${src.partition}/${src.offset}#${index}`;

export function eventsFromLogs(req: ExportLogsServiceRequest, tenant: string, src: SourceRef): TimelineEventRow[] {
  const out: TimelineEventRow[] = [];
  let index = 0;
  for (const rl of req.resourceLogs ?? []) {
    const resAttrs = rl.resource?.attributes;
    const svc = serviceName(rl.resource);
    let resDigest: string | undefined;
    for (const sl of rl.scopeLogs ?? []) {
      for (const rec of sl.logRecords ?? []) {
        const i = index++;
        if (!rec.eventName) continue;
        resDigest ??= resourceDigest(rl.resource);
        const digest = logRecordDigest(rec);
        const kind = rec.eventName;
        out.push({
          event_id: eventId(tenant, kind, resDigest, digest),
          ts: logTimestamp(rec), tenant_id: tenant,
          project_id: lookup(ATTR.projectId, rec.attributes, resAttrs),
          kind,
          actor: lookup(ATTR.actor, rec.attributes, resAttrs) || (svc ? `service:${svc}` : ''),
          resource_type: lookup(ATTR.resourceType, rec.attributes, resAttrs),
          resource_id: lookup(ATTR.resourceId, rec.attributes, resAttrs),
          trace_id: toHex(rec.traceId), span_id: toHex(rec.spanId), digest,
          details: canonicalJson({
            service: svc, severity_text: rec.severityText ?? '', severity_number: rec.severityNumber ?? 0,
            body: anyValueString(rec.body), attributes: attrMap(rec.attributes), scope: sl.scope?.name ?? '',
          }),
          source: sourceString(src, i),
        });
      }
    }
  }
  return out;
}

function spanTransitions(span: Span): { prefix: 'job' | 'request'; name: string; id: string } | undefined {
  const job = lookup(ATTR.jobName, span.attributes);
  if (job) return { prefix: 'job', name: job, id: lookup(ATTR.jobId, span.attributes) || toHex(span.spanId) };
  const reqName = lookup(ATTR.requestName, span.attributes);
  if (reqName) return { prefix: 'request', name: reqName, id: lookup(ATTR.requestId, span.attributes) || toHex(span.spanId) };
  return undefined;
}

export function eventsFromSpans(req: ExportTraceServiceRequest, tenant: string, src: SourceRef): TimelineEventRow[] {
  const out: TimelineEventRow[] = [];
  let index = 0;
  for (const rs of req.resourceSpans ?? []) {
    const resAttrs = rs.resource?.attributes;
    const svc = serviceName(rs.resource);
    let resDigest: string | undefined;
    for (const ss of rs.scopeSpans ?? []) {
      for (const span of ss.spans ?? []) {
        const i = index++;
        const t = spanTransitions(span);
        if (!t) continue;
        resDigest ??= resourceDigest(rs.resource);
        const digest = createHash('sha256').update(SpanType.encode(span as never).finish()).digest('hex');
        const failed = span.status?.code === STATUS_ERROR;
        const start = String(span.startTimeUnixNano ?? '0');
        const end = String(span.endTimeUnixNano ?? '0');
        const common = {
          tenant_id: tenant,
          project_id: lookup(ATTR.projectId, span.attributes, resAttrs),
          actor: lookup(ATTR.actor, span.attributes, resAttrs) || (svc ? `service:${svc}` : ''),
          resource_type: lookup(ATTR.resourceType, span.attributes) || t.prefix,
          resource_id: lookup(ATTR.resourceType, span.attributes) ? lookup(ATTR.resourceId, span.attributes) : t.id,
          trace_id: toHex(span.traceId), span_id: toHex(span.spanId), digest, source: sourceString(src, i),
        };
        const base = { service: svc, span_name: span.name ?? '', [`${t.prefix}_name`]: t.name, [`${t.prefix}_id`]: t.id,
          attributes: attrMap(span.attributes) };
        const startedKind = `${t.prefix}.started`;
        out.push({ ...common, event_id: eventId(tenant, startedKind, resDigest, digest), ts: start, kind: startedKind,
          details: canonicalJson(base) });
        if (end !== '0' && BigInt(end) >= BigInt(start)) {
          const endKind = `${t.prefix}.${failed ? 'failed' : 'finished'}`;
          out.push({ ...common, event_id: eventId(tenant, endKind, resDigest, digest), ts: end, kind: endKind,
            details: canonicalJson({ ...base, status_code: ['Unset', 'Ok', 'Error'][span.status?.code ?? 0] ?? 'Unset',
              status_message: span.status?.message ?? '', duration_ns: (BigInt(end) - BigInt(start)).toString() }) });
        }
      }
    }
  }
  return out;
}

/** RFC 3339 UTC with nanoseconds from decimal epoch nanoseconds. */
export function nanosToRfc3339(nsStr: string): string {
  const n = BigInt(nsStr);
  const secs = n / 1_000_000_000n;
  const frac = (n % 1_000_000_000n).toString().padStart(9, '0');
  return new Date(Number(secs) * 1000).toISOString().replace(/\.\d{3}Z$/, `.${frac}Z`);
}

/** The JSON published on the timeline_events topic (key = tenant) for the evidence processor. */
export function eventMessage(e: TimelineEventRow): Record<string, unknown> {
  return JSON.parse(eventMessageJson(e)) as Record<string, unknown>;
}

/** eventMessage serialised; `details` (already canonical JSON) is spliced in, not re-parsed (hot path). */
export function eventMessageJson(e: TimelineEventRow): string {
  const q = JSON.stringify;
  return `{"event_id":${q(e.event_id)},"ts":${q(nanosToRfc3339(e.ts))},"ts_unix_nano":${q(e.ts)},"tenant_id":${q(e.tenant_id)},`
    + `"project_id":${q(e.project_id)},"kind":${q(e.kind)},"actor":${q(e.actor)},"resource_type":${q(e.resource_type)},`
    + `"resource_id":${q(e.resource_id)},"trace_id":${q(e.trace_id)},"span_id":${q(e.span_id)},"digest":${q(e.digest)},`
    + `"details":${e.details},"source":${q(e.source)}}`;
}
