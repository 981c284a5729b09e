// The rest of the observability read API (scope obs:read, tenant-scoped like /timeline):
//   GET /obs/health   per service: up | degraded | idle, from golden signals and SLO state
//   GET /obs/logs     log records: service, severity (minimum), trace_id, from/to, q (text); cursor pages
//   GET /obs/metrics  one metric's gauge/sum points per series and step; bounded rows
// Bad parameters are 400 `invalid_parameter` naming the parameter and the rule, never the value.
import { forTenant, type Store } from '../lib/store/index.ts';
import { listLogs, metricSeries, SEVERITY_MIN } from '../lib/store/obs-queries.ts';
import { goldenSignalsFor } from '../processors/slo/outputs.ts';
import type { SloSummary } from '../processors/slo/evaluator.ts';
import { BadRequest, parseLimit, parseText, parseTime, parseTraceId } from './params.ts';
import { apiError, json, type AuthedHandler, type Router } from './router.ts';

export interface ObsReadDeps {
  store: Store;
  /** SLO summaries of a tenant when this process runs the SLO part (health then counts firing alerts). */
  slo?: { summaries(tenant: string): Promise<SloSummary[]> };
  now?: () => number;
  /** Error rate from which a service is degraded. Default 0.05. */
  degradedErrorRate?: number;
}

export const MAX_METRIC_ROWS = 5000;
export const MAX_LOG_LIMIT = 1000;
const HOUR_NS = 3_600_000_000_000n;

const handled = (h: AuthedHandler): AuthedHandler => async (req) => {
  try { return await h(req); } catch (err) {
    if (err instanceof BadRequest) return apiError(400, 'invalid_parameter', err.message, { parameter: err.param });
    throw err;
  }
};

/** from/to (default: the hour before now), from < to. */
function timeRange(q: URLSearchParams, nowMs: number): { from: bigint; to: bigint } {
  const to = q.get('to') !== null ? parseTime('to', q.get('to')!) : BigInt(nowMs) * 1_000_000n;
  const from = q.get('from') !== null ? parseTime('from', q.get('from')!) : to - HOUR_NS;
  if (from >= to) throw new BadRequest('from', 'from must be before to');
  return { from, to };
}

/** Only the parameters a route knows: a misspelt filter must not silently widen the answer. */
function known(q: URLSearchParams, allowed: string[]): void {
  for (const k of q.keys()) if (!allowed.includes(k) && !k.startsWith('attr.')) throw new BadRequest(k, `unknown parameter (allowed: ${allowed.join(', ')})`);
}

export function encodeLogCursor(tsUnixNano: string, recordId: string): string {
  return Buffer.from(`l1:${tsUnixNano}:${recordId}`).toString('base64url');
}
export function decodeLogCursor(v: string): { tsUnixNano: bigint; recordId: string } {
  const m = /^l1:(\d{1,19}):([0-9A-Za-z_-]{1,128})$/.exec(/^[A-Za-z0-9_-]{1,300}$/.test(v) ? Buffer.from(v, 'base64url').toString() : '');
  if (!m) throw new BadRequest('cursor', 'cursor is not one this API issued');
  return { tsUnixNano: BigInt(m[1]!), recordId: m[2]! };
}

export function registerObsReadRoutes(router: Router, deps: ObsReadDeps): void {
  const now = deps.now ?? Date.now;
  const degradedAt = deps.degradedErrorRate ?? 0.05;

  router.scoped('GET', '/obs/logs', 'obs:read', handled(async (req) => {
    const q = req.query;
    known(q, ['tenant', 'service', 'severity', 'trace_id', 'from', 'to', 'q', 'limit', 'cursor']);
    if ([...q.keys()].some((k) => k.startsWith('attr.'))) throw new BadRequest('attr', '/obs/logs takes no attr.* filters');
    const { from, to } = timeRange(q, now());
    const sev = q.get('severity');
    if (sev !== null && !(sev.toLowerCase() in SEVERITY_MIN)) throw new BadRequest('severity', `severity must be one of ${Object.keys(SEVERITY_MIN).join(', ')} (the lowest returned)`);
    const limit = parseLimit(q.get('limit'), 100, MAX_LOG_LIMIT);
    const rows = await listLogs(forTenant(deps.store, req.tenant), {
      fromUnixNano: from, toUnixNano: to, limit: limit + 1,
      service: q.get('service') !== null ? parseText('service', q.get('service')!) : undefined,
      minSeverity: sev !== null ? SEVERITY_MIN[sev.toLowerCase()] : undefined,
      traceId: q.get('trace_id') !== null ? parseTraceId('trace_id', q.get('trace_id')!) : undefined,
      text: q.get('q') !== null ? parseText('q', q.get('q')!) : undefined,
      before: q.get('cursor') !== null ? decodeLogCursor(q.get('cursor')!) : undefined,
    });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return json(200, {
      tenant: req.tenant,
      logs: page.map((r) => ({ ts: r.ts_unix_nano, service: r.service, severity: r.severity_text, severity_number: Number(r.severity_number),
        body: r.body, trace_id: r.trace_id, span_id: r.span_id, event_name: r.event_name, attributes: r.attributes, record_id: r.record_id })),
      next_cursor: rows.length > limit && last ? encodeLogCursor(last.ts_unix_nano, last.record_id) : null,
    });
  }));

  router.scoped('GET', '/obs/metrics', 'obs:read', handled(async (req) => {
    const q = req.query;
    known(q, ['tenant', 'name', 'service', 'from', 'to', 'step']);
    const nameRaw = q.get('name');
    if (nameRaw === null) throw new BadRequest('name', 'name (the metric name) is required');
    const name = parseText('name', nameRaw);
    const { from, to } = timeRange(q, now());
    const stepRaw = q.get('step');
    if (stepRaw !== null && (!/^\d{1,6}$/.test(stepRaw) || Number(stepRaw) < 1 || Number(stepRaw) > 86_400)) throw new BadRequest('step', 'step must be a whole number of seconds from 1 to 86400');
    const spanS = Number((to - from) / 1_000_000_000n) || 1;
    const step = stepRaw !== null ? Number(stepRaw) : Math.max(60, Math.ceil(spanS / 60));
    if (spanS / step > 1000) throw new BadRequest('step', 'step too small for the range: at most 1000 steps per series');
    const attributes: Record<string, string> = {};
    for (const [k, v] of q) if (k.startsWith('attr.')) {
      const key = k.slice(5);
      if (!key || key.length > 256) throw new BadRequest('attr', 'attr.<key> needs a key of 1 to 256 characters');
      attributes[key] = parseText(k, v);
    }
    const rows = await metricSeries(forTenant(deps.store, req.tenant), { name, fromUnixNano: from, toUnixNano: to, stepSeconds: step,
      service: q.get('service') !== null ? parseText('service', q.get('service')!) : undefined, attributes, limit: MAX_METRIC_ROWS + 1 });
    const series = new Map<string, { kind: string; service: string; attributes: Record<string, string>; points: unknown[] }>();
    for (const r of rows.slice(0, MAX_METRIC_ROWS)) {
      const key = JSON.stringify([r.kind, r.service, Object.entries(r.attributes).sort()]);
      let s = series.get(key);
      if (!s) series.set(key, (s = { kind: r.kind, service: r.service, attributes: r.attributes, points: [] }));
      s.points.push({ t: new Date(Number(r.step_unix) * 1000).toISOString(), avg: r.avg, min: r.min, max: r.max, last: r.last, samples: Number(r.samples) });
    }
    return json(200, { tenant: req.tenant, name, step_seconds: step, series: [...series.values()], truncated: rows.length > MAX_METRIC_ROWS,
      ...(rows.length > MAX_METRIC_ROWS ? { truncated_reason: `more than ${MAX_METRIC_ROWS} rows: narrow the range, raise step or filter by service/attributes` } : {}) });
  }));

  router.scoped('GET', '/obs/health', 'obs:read', handled(async (req) => {
    const q = req.query;
    known(q, ['tenant', 'window_seconds']);
    const w = q.get('window_seconds');
    if (w !== null && (!/^\d{1,6}$/.test(w) || Number(w) < 60 || Number(w) > 86_400)) throw new BadRequest('window_seconds', 'window_seconds must be a whole number from 60 to 86400');
    const windowSeconds = w === null ? 300 : Number(w);
    const to = now();
    const [rows, slos] = await Promise.all([
      goldenSignalsFor(deps.store, req.tenant, { fromMs: to - windowSeconds * 1000, toMs: to, limit: 10_000 }),
      deps.slo ? deps.slo.summaries(req.tenant) : Promise.resolve(undefined),
    ]);
    const services = new Map<string, { requests: number; errors: number }>();
    for (const r of rows) { const s = services.get(r.service) ?? { requests: 0, errors: 0 }; s.requests += r.requests; s.errors += r.errors; services.set(r.service, s); }
    // SLOs of one service count for it; catalog SLOs (service "*") are reported per journey.
    for (const s of slos ?? []) if (s.service !== '*' && !services.has(s.service)) services.set(s.service, { requests: 0, errors: 0 });
    const out = [...services].sort(([a], [b]) => (a < b ? -1 : 1)).map(([service, t]) => {
      const errorRate = t.requests ? t.errors / t.requests : 0;
      const firing = (slos ?? []).filter((s) => s.service === service && s.firing.length).map((s) => s.slo);
      const reasons: string[] = [];
      if (t.requests && errorRate >= degradedAt) reasons.push(`error rate ${(errorRate * 100).toFixed(2)}% ≥ ${(degradedAt * 100).toFixed(2)}%`);
      for (const slo of firing) reasons.push(`SLO ${slo} is burning its budget`);
      return { service, status: reasons.length ? 'degraded' : t.requests ? 'up' : 'idle', requests: t.requests, errors: t.errors,
        error_rate: Math.round(errorRate * 1e6) / 1e6, firing_slos: firing, reasons };
    });
    const journeys = (slos ?? []).filter((s) => s.service === '*').map((s) => ({ slo: s.slo, journey: s.journey, firing: s.firing, evaluated_at: s.evaluatedAtMs === null ? null : new Date(s.evaluatedAtMs).toISOString() }));
    return json(200, { tenant: req.tenant, at: new Date(to).toISOString(), window_seconds: windowSeconds, services: out, journeys,
      slo: deps.slo ? 'on' : 'not in this process (health from golden signals only)' });
  }));
}
