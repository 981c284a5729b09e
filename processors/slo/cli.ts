// `stella slo list` and `stella incident on|off`: thin clients of the read API (GET /obs/slo,
// POST /obs/incident). The lead's CLI parses argv and calls these; exit codes as `stella obs trace`:
// 0 ok, 1 nothing to show, 2 usage, 3 auth, 4 other.
import type { CliResult } from '../timeline/cli.ts';

interface Common { baseUrl: string; token: string; tenant?: string; fetch?: typeof fetch }
export interface SloListOptions extends Common { format?: 'table' | 'json' }
export interface IncidentSetOptions extends Common { mode: 'on' | 'off'; ttlSeconds?: number; format?: 'table' | 'json' }

interface SloBody {
  tenant: string;
  slos: { slo: string; service: string; journey: string; objective: number; budget_remaining: number; burn_rates: Record<string, number>; firing: string[] }[];
  incident: { on: boolean; until: string | null; reason: string | null };
}

async function call(o: Common, method: 'GET' | 'POST', path: string, params: Record<string, string>): Promise<{ res?: Response; body?: any; err?: CliResult }> {
  const url = new URL(path, o.baseUrl);
  if (o.tenant) url.searchParams.set('tenant', o.tenant);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, { method, headers: { authorization: `Bearer ${o.token}`, accept: 'application/json' } });
  } catch (err) {
    return { err: { exitCode: 4, stdout: '', stderr: `cannot reach ${url.origin}: ${(err as Error).message}\n` } };
  }
  const body = (await res.json().catch(() => ({}))) as any;
  if (res.status === 401 || res.status === 403) return { err: { exitCode: 3, stdout: '', stderr: `${res.status}: ${body.error?.message ?? 'not allowed'}\n` } };
  if (res.status === 400) return { err: { exitCode: 2, stdout: '', stderr: `400: ${body.error?.message ?? 'bad request'}\n` } };
  if (!res.ok) return { err: { exitCode: 4, stdout: '', stderr: `${res.status}: ${body.error?.message ?? 'request failed'}\n` } };
  return { res, body };
}

const pct = (n: number) => `${(n * 100).toFixed(1)}%`;
const fx = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : String(n));

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

export async function sloList(o: SloListOptions): Promise<CliResult> {
  const r = await call(o, 'GET', '/obs/slo', {});
  if (r.err) return r.err;
  const b = r.body as SloBody;
  if (o.format === 'json') return { exitCode: b.slos.length ? 0 : 1, stdout: JSON.stringify(b, null, 2) + '\n', stderr: '' };
  const rows = [['SLO', 'SERVICE', 'OBJECTIVE', 'BUDGET LEFT', 'BURN 5m', 'BURN 1h', 'BURN 6h', 'BURN 3d', 'FIRING']];
  for (const s of b.slos) {
    rows.push([s.slo, s.service, pct(s.objective), pct(s.budget_remaining), fx(s.burn_rates['5m'] ?? 0), fx(s.burn_rates['1h'] ?? 0),
      fx(s.burn_rates['6h'] ?? 0), fx(s.burn_rates['3d'] ?? 0), s.firing.join(',') || '-']);
  }
  const head = `tenant ${b.tenant}: ${b.slos.length} SLOs; incident mode ${b.incident.on ? `ON until ${b.incident.until} (${b.incident.reason})` : 'off'}\n`;
  return { exitCode: b.slos.length ? 0 : 1, stdout: head + table(rows), stderr: '' };
}

export async function incidentSet(o: IncidentSetOptions): Promise<CliResult> {
  if (o.mode !== 'on' && o.mode !== 'off') return { exitCode: 2, stdout: '', stderr: 'usage: stella incident on|off --tenant <id> [--ttl <seconds>]\n' };
  if (o.ttlSeconds !== undefined && !(Number.isInteger(o.ttlSeconds) && o.ttlSeconds >= 1)) return { exitCode: 2, stdout: '', stderr: '--ttl must be a whole number of seconds ≥ 1\n' };
  const params: Record<string, string> = { mode: o.mode };
  if (o.ttlSeconds !== undefined) params.ttl_seconds = String(o.ttlSeconds);
  const r = await call(o, 'POST', '/obs/incident', params);
  if (r.err) return r.err;
  const b = r.body as { tenant: string; incident: { on: boolean; until: string | null }; changed: boolean };
  if (o.format === 'json') return { exitCode: 0, stdout: JSON.stringify(b, null, 2) + '\n', stderr: '' };
  const state = b.incident.on ? `on until ${b.incident.until}` : 'off';
  return { exitCode: 0, stdout: `tenant ${b.tenant}: incident mode ${state}${b.changed ? '' : ' (unchanged)'}\n`, stderr: '' };
}
