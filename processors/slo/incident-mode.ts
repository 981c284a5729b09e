// Incident mode per tenant (pure core): switched on by a page-severity burn or by hand, ends by
// itself when its TTL passes. Consumers (receiver sampling, evidence retention, timeline, webhooks)
// act on the returned started/stopped events; the API/CLI and wiring live with the runner.

export interface IncidentModeEvent {
  kind: 'incident.mode.started' | 'incident.mode.stopped';
  tenant: string;
  atMs: number;
  /** When the mode started: = atMs on started; on stopped, the start of the mode that ended (the
   * webhook's startsAt, which must identify the same alert as the firing one). */
  sinceMs: number;
  /** When it ends unless extended (started events); 0 on stopped. */
  untilMs: number;
  /** manual | slo:<slo> <windows> | ttl */
  reason: string;
  by: string;
}

interface Active { sinceMs: number; untilMs: number; reason: string; by: string }

export interface IncidentModeOptions {
  /** TTL when a page burn switches it on (extended while pages keep firing). Default 2 h. */
  autoTtlMs?: number;
  /** Upper bound for any TTL (manual or auto). Default 24 h. */
  maxTtlMs?: number;
}

export class IncidentModes {
  private readonly active = new Map<string, Active>();
  readonly autoTtlMs: number;
  readonly maxTtlMs: number;

  constructor(opts: IncidentModeOptions = {}) {
    this.autoTtlMs = opts.autoTtlMs ?? 2 * 3_600_000;
    this.maxTtlMs = opts.maxTtlMs ?? 24 * 3_600_000;
  }

  /** Switches on (or extends; extending emits nothing). */
  on(tenant: string, o: { nowMs: number; ttlMs: number; reason: string; by: string }): IncidentModeEvent[] {
    const out: IncidentModeEvent[] = [];
    const until = o.nowMs + Math.min(Math.max(o.ttlMs, 0), this.maxTtlMs);
    let cur = this.active.get(tenant);
    if (cur && cur.untilMs <= o.nowMs) { // lapsed but not yet expired: close it before starting anew
      this.active.delete(tenant);
      out.push({ kind: 'incident.mode.stopped', tenant, atMs: cur.untilMs, sinceMs: cur.sinceMs, untilMs: 0, reason: 'ttl', by: 'stella-slo' });
      cur = undefined;
    }
    if (cur) {
      cur.untilMs = Math.max(cur.untilMs, until);
      return out;
    }
    this.active.set(tenant, { sinceMs: o.nowMs, untilMs: until, reason: o.reason, by: o.by });
    out.push({ kind: 'incident.mode.started', tenant, atMs: o.nowMs, sinceMs: o.nowMs, untilMs: until, reason: o.reason, by: o.by });
    return out;
  }

  off(tenant: string, nowMs: number, by: string): IncidentModeEvent[] {
    const cur = this.active.get(tenant);
    if (!cur) return [];
    this.active.delete(tenant);
    return [{ kind: 'incident.mode.stopped', tenant, atMs: nowMs, sinceMs: cur.sinceMs, untilMs: 0, reason: 'manual', by }];
  }

  /** Ends every mode whose TTL has passed. Call on every evaluation tick. */
  expire(nowMs: number): IncidentModeEvent[] {
    const out: IncidentModeEvent[] = [];
    for (const [tenant, a] of [...this.active].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
      if (a.untilMs > nowMs) continue;
      this.active.delete(tenant);
      out.push({ kind: 'incident.mode.stopped', tenant, atMs: a.untilMs, sinceMs: a.sinceMs, untilMs: 0, reason: 'ttl', by: 'stella-slo' });
    }
    return out;
  }

  /** Page-severity alerts that are firing switch their tenant on (or keep it on). */
  fromAlerts(firing: readonly { tenant: string; slo: string; windows: string; severity: string }[], nowMs: number): IncidentModeEvent[] {
    const out = this.expire(nowMs);
    for (const a of firing) {
      if (a.severity !== 'page') continue;
      out.push(...this.on(a.tenant, { nowMs, ttlMs: this.autoTtlMs, reason: `slo:${a.slo} ${a.windows}`, by: 'stella-slo' }));
    }
    return out;
  }

  isOn(tenant: string, nowMs: number): boolean {
    const a = this.active.get(tenant);
    return !!a && a.untilMs > nowMs;
  }

  list(nowMs: number): ({ tenant: string } & Active)[] {
    return [...this.active].filter(([, a]) => a.untilMs > nowMs).map(([tenant, a]) => ({ tenant, ...a }))
      .sort((x, y) => (x.tenant < y.tenant ? -1 : 1));
  }

  /** Checkpoint alongside the evaluator snapshot (small; JSON in tenant order). */
  snapshot(): string {
    return JSON.stringify([...this.active].sort(([x], [y]) => (x < y ? -1 : 1)));
  }

  restore(json: string): void {
    this.active.clear();
    for (const [tenant, a] of JSON.parse(json) as [string, Active][]) this.active.set(tenant, a);
  }
}
