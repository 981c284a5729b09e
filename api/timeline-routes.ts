// Timeline read routes (docs/timeline.md "API"):
//   GET /timeline            scope timeline:read  — filtered, cursor-paged events of one tenant
//   GET /timeline/:event_id  scope timeline:read  — one event with links (trace, evidence)
//   GET /obs/trace/:trace_id scope obs:read       — a trace's spans, plus its timeline events when
//                                                   the token also holds timeline:read
// The tenant comes from the auth guard; the store layer adds the tenant predicate itself.
import { grant } from '../lib/tenancy.ts';
import { forTenant, MAX_LIMIT, type Store, type TimelineEvent, type TimelineFilter, type TraceSpan } from '../lib/store/index.ts';
import { nanosToRfc3339 } from '../processors/timeline/events.ts';
import { BadRequest, decodeCursor, encodeCursor, EVENT_ID, parseLimit, parseText, parseTime, parseTraceId } from './params.ts';
import { apiError, json, type ApiResponse, type AuthedHandler, type AuthedRequest, type Router } from './router.ts';

export interface TimelineRouteDeps {
  store: Store;
  /** Evidence links for an event (segment, inclusion proof) once the evidence processor provides them. */
  evidenceLinks?: (tenant: string, event: TimelineEvent) => Promise<Record<string, string> | null>;
  /** Default window for /timeline without `from`: the last 24 hours. */
  defaultWindowNs?: bigint;
  now?: () => bigint;
}

export const DEFAULT_LIMIT = 100;
const DAY_NS = 86_400_000_000_000n;

function withTenant(req: AuthedRequest, path: string): string {
  return req.query.has('tenant') ? `${path}?tenant=${encodeURIComponent(req.tenant)}` : path;
}

export function renderEvent(req: AuthedRequest, e: TimelineEvent): Record<string, unknown> {
  return {
    event_id: e.event_id, ts: nanosToRfc3339(e.ts_unix_nano), ts_unix_nano: e.ts_unix_nano, kind: e.kind, actor: e.actor,
    project_id: e.project_id, resource: { type: e.resource_type, id: e.resource_id }, trace_id: e.trace_id, span_id: e.span_id,
    digest: e.digest, details: JSON.parse(e.details) as unknown, source: e.source,
    links: { self: withTenant(req, `/timeline/${e.event_id}`), trace: e.trace_id ? withTenant(req, `/obs/trace/${e.trace_id}`) : null },
  };
}

function renderSpan(s: TraceSpan): Record<string, unknown> {
  return { ts: nanosToRfc3339(s.Timestamp_unix_nano), ts_unix_nano: s.Timestamp_unix_nano, trace_id: s.TraceId, span_id: s.SpanId,
    parent_span_id: s.ParentSpanId, name: s.SpanName, kind: s.SpanKind, service: s.ServiceName, duration_ns: s.Duration,
    status: { code: s.StatusCode, message: s.StatusMessage }, attributes: s.SpanAttributes };
}

/** Turn parameter errors into 400s naming the parameter. */
const handled = (h: AuthedHandler): AuthedHandler => async (req) => {
  try { return await h(req); } catch (err) {
    if (err instanceof BadRequest) return apiError(400, 'invalid_parameter', err.message, { parameter: err.param });
    throw err;
  }
};

export function parseTimelineQuery(q: URLSearchParams, now: bigint, windowNs: bigint): TimelineFilter {
  const one = (name: string): string | undefined => {
    const all = q.getAll(name);
    if (all.length > 1) throw new BadRequest(name, `${name} may be given once`);
    return all[0];
  };
  const to = one('to') !== undefined ? parseTime('to', one('to')!) : now + 1n;
  const from = one('from') !== undefined ? parseTime('from', one('from')!) : to - windowNs;
  if (from >= to) throw new BadRequest('from', 'from must be before to');
  const f: TimelineFilter = { fromUnixNano: from, toUnixNano: to, limit: parseLimit(one('limit') ?? null, DEFAULT_LIMIT, MAX_LIMIT) };
  // kind: repeatable and comma-separated; a trailing ".*" selects a family ("policy.*").
  const kinds = q.getAll('kind').flatMap((k) => k.split(',')).map((k) => parseText('kind', k));
  if (kinds.length > 50) throw new BadRequest('kind', 'at most 50 kinds');
  const exact = kinds.filter((k) => !k.endsWith('*'));
  const prefixes = kinds.filter((k) => k.endsWith('*')).map((k) => k.slice(0, -1));
  if (exact.length) f.kinds = exact;
  if (prefixes.length) f.kindPrefixes = prefixes;
  const rt = one('resource_type'); if (rt !== undefined) f.resourceType = parseText('resource_type', rt);
  const rid = one('resource_id'); if (rid !== undefined) f.resourceId = parseText('resource_id', rid);
  const project = one('project'); if (project !== undefined) f.projectId = parseText('project', project);
  const trace = one('trace_id'); if (trace !== undefined) f.traceId = parseTraceId('trace_id', trace);
  const cursor = one('cursor'); if (cursor !== undefined) f.after = decodeCursor(cursor);
  return f;
}

export function registerTimelineRoutes(router: Router, deps: TimelineRouteDeps): void {
  const now = deps.now ?? (() => BigInt(Date.now()) * 1_000_000n);
  const windowNs = deps.defaultWindowNs ?? DAY_NS;

  router.scoped('GET', '/timeline', 'timeline:read', handled(async (req): Promise<ApiResponse> => {
    const f = parseTimelineQuery(req.query, now(), windowNs);
    const limit = f.limit;
    const rows = await forTenant(deps.store, req.tenant).listEvents({ ...f, limit: limit + 1 });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return json(200, {
      tenant: req.tenant, from: nanosToRfc3339(f.fromUnixNano.toString()), to: nanosToRfc3339(f.toUnixNano.toString()),
      events: page.map((e) => renderEvent(req, e)),
      next_cursor: rows.length > limit && last ? encodeCursor(last.ts_unix_nano, last.event_id) : null,
    });
  }));

  router.scoped('GET', '/timeline/:event_id', 'timeline:read', handled(async (req) => {
    const id = req.params.event_id!.toLowerCase();
    if (!EVENT_ID.test(id)) throw new BadRequest('event_id', 'event_id must be 32 hex characters');
    const e = await forTenant(deps.store, req.tenant).getEvent(id);
    // Another tenant's event id is indistinguishable from a missing one.
    if (!e) return apiError(404, 'not_found', 'no such event');
    const r = renderEvent(req, e);
    const evidence = (await deps.evidenceLinks?.(req.tenant, e)) ?? null;
    r.links = { ...(r.links as object), evidence: evidence ?? { segment: null, inclusion_proof: null, status: 'unavailable' } };
    return json(200, { tenant: req.tenant, event: r });
  }));

  router.scoped('GET', '/obs/trace/:trace_id', 'obs:read', handled(async (req) => {
    const traceId = parseTraceId('trace_id', req.params.trace_id!);
    const limit = parseLimit(req.query.get('limit'), MAX_LIMIT, MAX_LIMIT);
    const ts = forTenant(deps.store, req.tenant);
    const canTimeline = req.principal.grants.has(grant('timeline:read', req.tenant)) || req.principal.grants.has(grant('admin', req.tenant));
    const [spans, events] = await Promise.all([ts.spansForTrace(traceId, limit), canTimeline ? ts.eventsForTrace(traceId, limit) : Promise.resolve(null)]);
    return json(200, {
      tenant: req.tenant, trace_id: traceId, spans: spans.map(renderSpan),
      events: events ? events.map((e) => renderEvent(req, e)) : null,
      ...(events ? {} : { events_omitted: `token lacks scope ${grant('timeline:read', req.tenant)}` }),
    });
  }));
}
