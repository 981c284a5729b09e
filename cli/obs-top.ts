// `stella obs top`: the tenant's live golden signals and the pipeline's consumer lag from GET /obs/top,
// refreshed every --interval seconds. Table output on a terminal redraws in place; anywhere else each
// refresh is a plain frame (separated by a blank line). --output json prints one JSON document per
// refresh (one per line), yaml one YAML document per refresh (`---`). --once or --count N stops.
import YAML from 'yaml';
import type { CliResult } from '../processors/timeline/cli.ts';
import { tracedFetch } from './api-client.ts';

export interface TopBody {
  tenant: string;
  at: string;
  window_seconds: number;
  services: { service: string; requests: number; errors: number; error_rate: number; rps: number; p50_ms: number; p95_ms: number; p99_ms: number; latest_minute: string; latest_minute_partial?: boolean }[];
  totals: { requests: number; errors: number; error_rate: number; rps: number };
  lag: { status: 'ok'; checked_at: string; groups: { processor: string; group: string; lag: number | null; topics: { topic: string; lag: number }[] }[] } | { status: 'unknown'; reason: string } | null;
  lag_omitted?: string;
}

export interface TopOptions {
  baseUrl: string;
  token: string;
  tenant?: string;
  windowSeconds?: number;
  format: 'table' | 'json' | 'yaml';
  intervalMs: number;
  /** Frames to show; undefined = until interrupted. */
  count?: number;
  /** Redraw in place (stdout is a terminal and the format is table). */
  redraw: boolean;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  fetch?: typeof fetch;
  /** Resolves when the user interrupts (SIGINT): top stops after the current frame. */
  stopped?: Promise<void>;
}

/** One GET /obs/top: the body and the trace id, or a CLI error (exit 2/3/4 as the other commands). */
export async function fetchTop(o: Pick<TopOptions, 'baseUrl' | 'token' | 'tenant' | 'windowSeconds' | 'fetch'>): Promise<{ body: TopBody; traceId: string | undefined } | { err: CliResult; traceId: string | undefined }> {
  const t = tracedFetch(o.fetch);
  const url = new URL('/obs/top', o.baseUrl);
  if (o.tenant) url.searchParams.set('tenant', o.tenant);
  if (o.windowSeconds !== undefined) url.searchParams.set('window_seconds', String(o.windowSeconds));
  let res: Response;
  try {
    res = await t.fetch(url, { headers: { authorization: `Bearer ${o.token}`, accept: 'application/json' } });
  } catch (err) {
    return { err: { exitCode: 4, stdout: '', stderr: `cannot reach ${url.origin}: ${(err as Error).message}\n` }, traceId: undefined };
  }
  const body = (await res.json().catch(() => ({}))) as TopBody & { error?: { message?: string } };
  const fail = (exitCode: number, what: string): { err: CliResult; traceId: string | undefined } =>
    ({ err: { exitCode, stdout: '', stderr: `${res.status}: ${body.error?.message ?? what}\n` }, traceId: t.answered });
  if (res.status === 401 || res.status === 403) return fail(3, 'not allowed');
  if (res.status === 400) return fail(2, 'bad request');
  if (res.status === 404) return fail(4, 'this API has no /obs/top (an older server?)');
  if (!res.ok) return fail(4, 'request failed');
  return { body, traceId: t.answered };
}

function table(rows: string[][], rightAlignFrom = 1): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 && i < rightAlignFrom ? c : i >= rightAlignFrom ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

const pct = (n: number) => `${(n * 100).toFixed(2)}%`;
const ms = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(2)}s` : `${n.toFixed(1)}ms`);

/** `HH:MM partial` (UTC) when the service's newest minute is still open, else empty. */
const minute = (s: TopBody['services'][number]): string => (s.latest_minute_partial ? `${s.latest_minute.slice(11, 16)} partial` : '');

/** One table frame. */
export function renderTop(b: TopBody, traceId: string | undefined): string {
  const head = `stella obs top — tenant ${b.tenant} — ${b.at} — last ${b.window_seconds / 60} min${traceId ? ` — trace_id ${traceId}` : ''}\n`;
  // A MINUTE column only when a service's newest minute is still open, naming it.
  const live = b.services.some((s) => s.latest_minute_partial);
  const sig = b.services.length
    ? table([['SERVICE', 'REQUESTS', 'RPS', 'ERRORS', 'ERROR%', 'P50', 'P95', 'P99', ...(live ? ['MINUTE'] : [])],
      ...b.services.map((s) => [s.service, String(s.requests), s.rps.toFixed(2), String(s.errors), pct(s.error_rate), ms(s.p50_ms), ms(s.p95_ms), ms(s.p99_ms), ...(live ? [minute(s)] : [])]),
      ['total', String(b.totals.requests), b.totals.rps.toFixed(2), String(b.totals.errors), pct(b.totals.error_rate), '', '', '', ...(live ? [''] : [])]])
      + (live ? '(partial: that minute is still open, its figures so far; P50-P99 are of the newest minute)\n' : '')
    : '(no golden signals in this window: no server spans yet, or the SLO processor is not running)\n';
  let lag: string;
  if (b.lag === null) lag = `lag: hidden (${b.lag_omitted ?? 'not allowed'})\n`;
  else if (b.lag.status === 'unknown') lag = `lag: unknown (${b.lag.reason})\n`;
  else lag = table([['PROCESSOR', 'GROUP', 'LAG'], ...b.lag.groups.map((g) => [g.processor, g.group, g.lag === null ? '-' : String(g.lag)])], 2)
    + (b.lag.groups.some((g) => g.lag === null) ? '(-: the group has committed no offsets: not running, or nothing consumed yet)\n' : '');
  return `${head}\n${sig}\n${lag}`;
}

const CLEAR = '\x1b[H\x1b[2J';

/** Run the refresh loop. Exit code: the first frame's error ends it (2/3/4); later errors are shown and retried. */
export async function runTop(o: TopOptions): Promise<number> {
  let frames = 0;
  let stop = false;
  void o.stopped?.then(() => { stop = true; });
  for (;;) {
    const r = await fetchTop(o);
    if ('err' in r) {
      if (frames === 0) {
        o.stderr(r.err.stderr);
        if (r.traceId) o.stderr(`trace_id: ${r.traceId}\n`);
        return r.err.exitCode;
      }
      o.stderr(`${new Date().toISOString()} ${r.err.stderr.trimEnd()}; retrying\n`);
    } else if (o.format === 'json') {
      o.stdout(JSON.stringify(r.body) + '\n');
      if (r.traceId) o.stderr(`trace_id: ${r.traceId}\n`);
    } else if (o.format === 'yaml') {
      o.stdout(`---\n${YAML.stringify(r.body)}`);
      if (r.traceId) o.stderr(`trace_id: ${r.traceId}\n`);
    } else if (o.redraw) {
      o.stdout(CLEAR + renderTop(r.body, r.traceId));
    } else {
      o.stdout((frames > 0 ? '\n' : '') + renderTop(r.body, r.traceId));
      if (r.traceId) o.stderr(`trace_id: ${r.traceId}\n`);
    }
    frames++;
    if (stop || (o.count !== undefined && frames >= o.count)) return 0;
    await Promise.race([new Promise((res) => setTimeout(res, o.intervalMs)), o.stopped]);
    if (stop) return 0;
  }
}
