// `stella obs logs|metrics|health`: thin clients of GET /obs/logs, /obs/metrics, /obs/health.
// They speak table|json (yaml is the JSON re-rendered by the caller); exit codes as the other API
// commands: 0 ok, 1 nothing to show, 2 bad parameter (the API's 400 names it), 3 auth, 4 other.
import type { CliResult } from '../processors/timeline/cli.ts';

interface Common { baseUrl: string; token: string; tenant?: string; fetch?: typeof fetch; format: 'table' | 'json' }

async function get(o: Common, path: string, params: [string, string][]): Promise<{ body?: any; err?: CliResult }> {
  const url = new URL(path, o.baseUrl);
  if (o.tenant) url.searchParams.set('tenant', o.tenant);
  for (const [k, v] of params) url.searchParams.append(k, v);
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, { headers: { authorization: `Bearer ${o.token}`, accept: 'application/json' } });
  } catch (err) {
    return { err: { exitCode: 4, stdout: '', stderr: `cannot reach ${url.origin}: ${(err as Error).message}\n` } };
  }
  const body = (await res.json().catch(() => ({}))) as any;
  const msg = (what: string) => `${res.status}: ${body.error?.parameter ? `${body.error.parameter}: ` : ''}${body.error?.message ?? what}\n`;
  if (res.status === 401 || res.status === 403) return { err: { exitCode: 3, stdout: '', stderr: msg('not allowed') } };
  if (res.status === 400) return { err: { exitCode: 2, stdout: '', stderr: msg('bad request') } };
  if (res.status === 404) return { err: { exitCode: 4, stdout: '', stderr: `${res.status}: this API has no ${path} (an older server?)\n` } };
  if (!res.ok) return { err: { exitCode: 4, stdout: '', stderr: msg('request failed') } };
  return { body };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}
const nsIso = (ns: string): string => {
  const n = BigInt(ns);
  return `${new Date(Number(n / 1_000_000n)).toISOString().slice(0, 19)}.${(n % 1_000_000_000n).toString().padStart(9, '0')}Z`;
};
const oneLine = (s: string, max = 160): string => { const t = s.replace(/\s+/g, ' '); return t.length > max ? `${t.slice(0, max - 1)}…` : t; };

export interface LogsOptions extends Common { service?: string; severity?: string; traceId?: string; from?: string; to?: string; text?: string; limit?: number; cursor?: string }

export async function obsLogs(o: LogsOptions): Promise<CliResult> {
  const p: [string, string][] = [];
  for (const [k, v] of [['service', o.service], ['severity', o.severity], ['trace_id', o.traceId], ['from', o.from], ['to', o.to], ['q', o.text], ['cursor', o.cursor]] as const) if (v !== undefined) p.push([k, v]);
  if (o.limit !== undefined) p.push(['limit', String(o.limit)]);
  const r = await get(o, '/obs/logs', p);
  if (r.err) return r.err;
  const b = r.body as { tenant: string; logs: { ts: string; service: string; severity: string; body: string; trace_id: string }[]; next_cursor: string | null };
  const code = b.logs.length ? 0 : 1;
  if (o.format === 'json') return { exitCode: code, stdout: JSON.stringify(b, null, 2) + '\n', stderr: '' };
  const rows = [['TIME', 'SERVICE', 'SEVERITY', 'TRACE', 'BODY'], ...b.logs.map((l) => [nsIso(l.ts), l.service, l.severity || '-', l.trace_id || '-', oneLine(l.body)])];
  return { exitCode: code, stdout: `tenant ${b.tenant}: ${b.logs.length} log records\n${table(rows)}${b.next_cursor ? `more: --cursor ${b.next_cursor}\n` : ''}`, stderr: '' };
}

export interface MetricsOptions extends Common { name: string; service?: string; attributes: [string, string][]; from?: string; to?: string; step?: number }

export async function obsMetrics(o: MetricsOptions): Promise<CliResult> {
  const p: [string, string][] = [['name', o.name]];
  for (const [k, v] of [['service', o.service], ['from', o.from], ['to', o.to]] as const) if (v !== undefined) p.push([k, v]);
  if (o.step !== undefined) p.push(['step', String(o.step)]);
  for (const [k, v] of o.attributes) p.push([`attr.${k}`, v]);
  const r = await get(o, '/obs/metrics', p);
  if (r.err) return r.err;
  const b = r.body as { tenant: string; name: string; step_seconds: number; truncated: boolean; truncated_reason?: string;
    series: { kind: string; service: string; attributes: Record<string, string>; points: { t: string; avg: number; min: number; max: number; last: number; samples: number }[] }[] };
  const code = b.series.length ? 0 : 1;
  if (o.format === 'json') return { exitCode: code, stdout: JSON.stringify(b, null, 2) + '\n', stderr: '' };
  const rows = [['SERIES', 'KIND', 'TIME', 'AVG', 'MIN', 'MAX', 'LAST', 'N']];
  for (const s of b.series) {
    const label = `${s.service}${Object.keys(s.attributes).length ? `{${Object.entries(s.attributes).sort().map(([k, v]) => `${k}=${v}`).join(',')}}` : ''}`;
    for (const pt of s.points) rows.push([label, s.kind, pt.t, String(pt.avg), String(pt.min), String(pt.max), String(pt.last), String(pt.samples)]);
  }
  return { exitCode: code, stdout: `tenant ${b.tenant}: ${b.name}, step ${b.step_seconds} s, ${b.series.length} series\n${table(rows)}${b.truncated ? `(truncated: ${b.truncated_reason})\n` : ''}`, stderr: '' };
}

export interface HealthOptions extends Common { windowSeconds?: number }

export async function obsHealth(o: HealthOptions): Promise<CliResult> {
  const r = await get(o, '/obs/health', o.windowSeconds !== undefined ? [['window_seconds', String(o.windowSeconds)]] : []);
  if (r.err) return r.err;
  const b = r.body as { tenant: string; window_seconds: number; slo: string; services: { service: string; status: string; requests: number; error_rate: number; reasons: string[] }[];
    journeys: { slo: string; firing: string[] }[] };
  const code = b.services.length ? 0 : 1;
  if (o.format === 'json') return { exitCode: code, stdout: JSON.stringify(b, null, 2) + '\n', stderr: '' };
  const rows = [['SERVICE', 'STATUS', 'REQUESTS', 'ERROR%', 'WHY'], ...b.services.map((s) => [s.service, s.status, String(s.requests), `${(s.error_rate * 100).toFixed(2)}%`, s.reasons.join('; ') || '-'])];
  const burning = b.journeys.filter((j) => j.firing.length).map((j) => j.slo);
  return { exitCode: code, stdout: `tenant ${b.tenant}: last ${b.window_seconds / 60} min; SLOs ${b.slo}${burning.length ? `; burning: ${burning.join(', ')}` : ''}\n${b.services.length ? table(rows) : '(no services with traffic or SLOs in this window)\n'}`, stderr: '' };
}
