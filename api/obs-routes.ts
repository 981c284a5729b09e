// GET /obs/top (scope obs:read) — what `stella obs top` shows: the tenant's golden signals per
// service over the last `window_seconds` (default 300; the SLO processor's golden_signals table:
// the open minutes' running totals within about a second, marked partial, each replaced by its
// closed row a little after the minute ends) and the pipeline's consumer lag per processor.
//
// Lag is pipeline-wide, not one tenant's: it is shown only to a token holding `admin` for the
// tenant asked about; others get `lag: null` and `lag_omitted` naming the scope. Without Kafka (an
// API started on its own) lag is `{status: "unknown"}`.
import type { Store } from '../lib/store/index.ts';
import { grant } from '../lib/tenancy.ts';
import { goldenSignalsFor, type GoldenSignalPoint } from '../processors/slo/outputs.ts';
import type { LagSource } from './kafka-lag.ts';
import { BadRequest } from './params.ts';
import { apiError, json, type AuthedHandler, type Router } from './router.ts';

export interface ObsRouteDeps {
  store: Store;
  /** Consumer lag; undefined when this API process has no Kafka. */
  lag?: LagSource;
  now?: () => number;
}

export interface ServiceSignals {
  service: string;
  /** Totals over the window. */
  requests: number;
  errors: number;
  error_rate: number;
  rps: number;
  /** Latency quantiles of the newest closed minute (per-minute quantiles do not add up over a window). */
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  latest_minute: string;
  /** The newest minute is still open: its figures are the totals so far. */
  latest_minute_partial: boolean;
}

const handled = (h: AuthedHandler): AuthedHandler => async (req) => {
  try { return await h(req); } catch (err) {
    if (err instanceof BadRequest) return apiError(400, 'invalid_parameter', err.message, { parameter: err.param });
    throw err;
  }
};

const round = (n: number, d = 6) => Math.round(n * 10 ** d) / 10 ** d;

/** Per-service window totals and newest-minute latency, busiest service first. */
export function summarizeSignals(rows: readonly GoldenSignalPoint[], windowSeconds: number): { services: ServiceSignals[]; totals: { requests: number; errors: number; error_rate: number; rps: number } } {
  const by = new Map<string, GoldenSignalPoint[]>();
  for (const r of rows) { let l = by.get(r.service); if (!l) by.set(r.service, (l = [])); l.push(r); }
  const services: ServiceSignals[] = [];
  for (const [service, list] of by) {
    const requests = list.reduce((n, r) => n + r.requests, 0);
    const errors = list.reduce((n, r) => n + r.errors, 0);
    const latest = list.reduce((a, b) => (b.minute > a.minute ? b : a));
    services.push({ service, requests, errors, error_rate: requests ? round(errors / requests) : 0, rps: round(requests / windowSeconds, 3),
      p50_ms: round(latest.p50_ms, 3), p95_ms: round(latest.p95_ms, 3), p99_ms: round(latest.p99_ms, 3), latest_minute: latest.minute, latest_minute_partial: latest.partial === true });
  }
  services.sort((a, b) => b.requests - a.requests || (a.service < b.service ? -1 : 1));
  const requests = services.reduce((n, s) => n + s.requests, 0);
  const errors = services.reduce((n, s) => n + s.errors, 0);
  return { services, totals: { requests, errors, error_rate: requests ? round(errors / requests) : 0, rps: round(requests / windowSeconds, 3) } };
}

export function registerObsRoutes(router: Router, deps: ObsRouteDeps): void {
  const now = deps.now ?? Date.now;
  router.scoped('GET', '/obs/top', 'obs:read', handled(async (req) => {
    const w = req.query.get('window_seconds');
    if (w !== null && (!/^\d{1,6}$/.test(w) || Number(w) < 60 || Number(w) > 86_400)) throw new BadRequest('window_seconds', 'window_seconds must be a whole number from 60 to 86400');
    const windowSeconds = w === null ? 300 : Number(w);
    const to = now();
    const admin = req.principal.grants.has(grant('admin', req.tenant));
    const [rows, lag] = await Promise.all([
      goldenSignalsFor(deps.store, req.tenant, { fromMs: to - windowSeconds * 1000, toMs: to, limit: 10_000 }),
      admin ? (deps.lag ? deps.lag.report() : Promise.resolve({ status: 'unknown' as const, reason: 'this API runs without Kafka', checked_at: null })) : Promise.resolve(null),
    ]);
    return json(200, {
      tenant: req.tenant, at: new Date(to).toISOString(), window_seconds: windowSeconds, ...summarizeSignals(rows, windowSeconds),
      lag, ...(admin ? {} : { lag_omitted: `pipeline lag needs scope ${grant('admin', req.tenant)}` }),
    });
  }));
}
