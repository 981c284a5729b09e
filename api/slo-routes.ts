// SLO and incident-mode routes (docs/slo.md "API"):
//   GET  /obs/slo             scope obs:read  — the tenant's SLOs: burn rate per window, budget left, firing alerts
//   GET  /obs/incident        scope obs:read  — the tenant's incident mode
//   POST /obs/incident        scope obs:write — switch it: ?mode=on|off&ttl_seconds=N (or a JSON body
//                                               {"mode": "on"|"off", "ttl_seconds": N} once the router passes bodies)
//   GET  /obs/golden-signals  scope obs:read  — per-minute golden signals (?from, ?to, ?service)
// The tenant comes from the auth guard (`obs:read#tenant/<id>`); another tenant's token gets 403.
import type { Store } from '../lib/store/index.ts';
import type { IncidentStatus, RunningSloRunner } from '../processors/slo/runner.ts';
import type { SloSummary } from '../processors/slo/evaluator.ts';
import { goldenSignalsFor } from '../processors/slo/outputs.ts';
import { BadRequest, parseText, parseTime } from './params.ts';
import { apiError, json, type AuthedHandler, type AuthedRequest, type Router } from './router.ts';

export interface SloRouteDeps {
  /** The SLO runner of this process; undefined when SLOs are off here (then `off` says why). */
  slo?: Pick<RunningSloRunner, 'summaries' | 'incidentStatus' | 'setIncident'>;
  /** Why SLOs are off in this process and what to configure (answered by the SLO routes instead of a bare 404). */
  off?: { message: string; configKey: string };
  /** For /obs/golden-signals; the route is not registered without it. */
  store?: Store;
  /** TTL when POST /obs/incident gives none. Default 1 h. */
  defaultIncidentTtlMs?: number;
  now?: () => number;
}

const handled = (h: AuthedHandler): AuthedHandler => async (req) => {
  try { return await h(req); } catch (err) {
    if (err instanceof BadRequest) return apiError(400, 'invalid_parameter', err.message, { parameter: err.param });
    throw err;
  }
};

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

export function renderIncident(s: IncidentStatus): Record<string, unknown> {
  return { on: s.on, since: iso(s.sinceMs), until: iso(s.untilMs), reason: s.reason ?? null, by: s.by ?? null };
}

export function renderSlo(s: SloSummary): Record<string, unknown> {
  const round = (n: number) => (Number.isFinite(n) ? Math.round(n * 1e6) / 1e6 : n);
  return {
    slo: s.slo, service: s.service, journey: s.journey, objective: s.objective, budget_remaining: round(s.budgetRemaining),
    burn_rates: Object.fromEntries(Object.entries(s.burnRates).map(([w, v]) => [w, round(v)])), firing: s.firing,
    // Burn rates, budget and firing all come from this one evaluation (event time) and its minute.
    evaluated_at: iso(s.evaluatedAtMs ?? undefined),
    minute: s.evaluatedAtMs === null ? null : iso(Math.floor(s.evaluatedAtMs / 60_000) * 60_000),
    dropped_late: s.droppedLate, dropped_future: s.droppedFuture,
  };
}

function incidentParams(req: AuthedRequest & { body?: unknown }): { on: boolean; ttlSeconds: number | undefined } {
  const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
  const modeRaw = req.query.get('mode') ?? (typeof body.mode === 'string' ? body.mode : undefined)
    ?? (req.query.has('on') ? 'on' : req.query.has('off') ? 'off' : undefined);
  if (modeRaw !== 'on' && modeRaw !== 'off') throw new BadRequest('mode', 'mode must be "on" or "off"');
  const ttlRaw = req.query.get('ttl_seconds') ?? (body.ttl_seconds !== undefined ? String(body.ttl_seconds) : undefined);
  let ttlSeconds: number | undefined;
  if (ttlRaw !== undefined) {
    if (!/^\d{1,7}$/.test(ttlRaw) || Number(ttlRaw) < 1) throw new BadRequest('ttl_seconds', 'ttl_seconds must be a whole number of seconds from 1 to 9999999');
    ttlSeconds = Number(ttlRaw);
  }
  return { on: modeRaw === 'on', ttlSeconds };
}

/** The answer of a route whose feature is off: 503 `feature_off`, the reason and the config key that turns it on. */
export function featureOff(message: string, configKey: string) {
  return apiError(503, 'feature_off', message, { config_key: configKey, docs: 'docs/slo.md' });
}

export const SLO_OFF_BY_CONFIG = {
  message: 'SLOs are off in this configuration: remove `slo: false`, or set slo.defaultCatalog: true (the default) or list SLOs in slo.slos / slo.file',
  configKey: 'slo',
};
export const SLO_IN_OTHER_PROCESS = {
  message: 'this API process does not run the SLO part (stella run --only): serve /obs/slo and /obs/incident from the process that runs the `slo` part together with `api` (stella run without --only)',
  configKey: 'run --only',
};

export function registerSloRoutes(router: Router, deps: SloRouteDeps): void {
  const now = deps.now ?? Date.now;
  const defaultTtlMs = deps.defaultIncidentTtlMs ?? 3_600_000;
  const sloRunner = deps.slo;
  if (!sloRunner) {
    // Still scoped: who may not read SLOs learns nothing about the configuration.
    const off = deps.off ?? SLO_OFF_BY_CONFIG;
    const answer: AuthedHandler = async () => featureOff(off.message, off.configKey);
    router.scoped('GET', '/obs/slo', 'obs:read', answer);
    router.scoped('GET', '/obs/incident', 'obs:read', answer);
    router.scoped('POST', '/obs/incident', 'obs:write', answer);
  } else {
    const runner = sloRunner;

  router.scoped('GET', '/obs/slo', 'obs:read', handled(async (req) => {
    const [slos, incident] = await Promise.all([runner.summaries(req.tenant), runner.incidentStatus(req.tenant)]);
    const slo = req.query.get('slo');
    const list = slo === null ? slos : slos.filter((s) => s.slo === parseText('slo', slo));
    return json(200, { tenant: req.tenant, slos: list.map(renderSlo), incident: renderIncident(incident) });
  }));

  router.scoped('GET', '/obs/incident', 'obs:read', handled(async (req) =>
    json(200, { tenant: req.tenant, incident: renderIncident(await runner.incidentStatus(req.tenant)) })));

  router.scoped('POST', '/obs/incident', 'obs:write', handled(async (req) => {
    const { on, ttlSeconds } = incidentParams(req);
    const by = `api:${req.principal.tokenName ?? 'token'}`;
    const r = await runner.setIncident(req.tenant, on, { ttlMs: ttlSeconds !== undefined ? ttlSeconds * 1000 : defaultTtlMs, by });
    return json(200, { tenant: req.tenant, incident: renderIncident(r.status), changed: r.events.length > 0 });
  }));
  }

  if (deps.store) {
    const store = deps.store;
    router.scoped('GET', '/obs/golden-signals', 'obs:read', handled(async (req) => {
      const toNs = req.query.get('to') !== null ? parseTime('to', req.query.get('to')!) : BigInt(now()) * 1_000_000n;
      const fromNs = req.query.get('from') !== null ? parseTime('from', req.query.get('from')!) : toNs - 3_600_000_000_000n;
      if (fromNs >= toNs) throw new BadRequest('from', 'from must be before to');
      const service = req.query.get('service');
      const rows = await goldenSignalsFor(store, req.tenant, { fromMs: Number(fromNs / 1_000_000n), toMs: Number(toNs / 1_000_000n),
        service: service === null ? undefined : parseText('service', service) });
      return json(200, { tenant: req.tenant, signals: rows });
    }));
  }
}
