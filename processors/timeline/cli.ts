// `stella obs trace <trace_id>`: the correlated timeline events and spans of one trace, fetched
// from the read API (GET /obs/trace/:trace_id) and printed as a table or JSON. The lead's CLI
// parses argv and calls obsTrace(); exit codes: 0 ok, 1 not found/empty, 2 usage, 3 auth, 4 other.
export interface ObsTraceOptions {
  baseUrl: string;
  token: string;
  traceId: string;
  format?: 'table' | 'json';
  tenant?: string;
  fetch?: typeof fetch;
}

export interface CliResult { exitCode: number; stdout: string; stderr: string }

interface TraceResponse {
  trace_id: string;
  spans: { ts: string; span_id: string; parent_span_id: string; name: string; service: string; duration_ns: string; status: { code: string } }[];
  events: { ts: string; event_id: string; kind: string; actor: string; resource: { type: string; id: string }; span_id: string }[] | null;
  events_omitted?: string;
}

export async function obsTrace(opts: ObsTraceOptions): Promise<CliResult> {
  if (!/^[0-9a-fA-F]{32}$/.test(opts.traceId)) return { exitCode: 2, stdout: '', stderr: 'trace id must be 32 hex characters\n' };
  const url = new URL(`/obs/trace/${opts.traceId.toLowerCase()}`, opts.baseUrl);
  if (opts.tenant) url.searchParams.set('tenant', opts.tenant);
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(url, { headers: { authorization: `Bearer ${opts.token}`, accept: 'application/json' } });
  } catch (err) {
    return { exitCode: 4, stdout: '', stderr: `cannot reach ${url.origin}: ${(err as Error).message}\n` };
  }
  const body = (await res.json().catch(() => ({}))) as TraceResponse & { error?: { message?: string } };
  if (res.status === 401 || res.status === 403) return { exitCode: 3, stdout: '', stderr: `${res.status}: ${body.error?.message ?? 'not allowed'}\n` };
  if (!res.ok) return { exitCode: 4, stdout: '', stderr: `${res.status}: ${body.error?.message ?? 'request failed'}\n` };
  const empty = body.spans.length === 0 && (body.events?.length ?? 0) === 0;
  if (opts.format === 'json') return { exitCode: empty ? 1 : 0, stdout: JSON.stringify(body, null, 2) + '\n', stderr: '' };
  return { exitCode: empty ? 1 : 0, stdout: traceTable(body), stderr: body.events_omitted ? `events omitted: ${body.events_omitted}\n` : '' };
}

/** One chronological table: spans and events interleaved by time. */
export function traceTable(t: TraceResponse): string {
  const rows: { ts: string; what: string; name: string; detail: string; span: string }[] = [];
  for (const s of t.spans) {
    rows.push({ ts: s.ts, what: 'span', name: s.name, span: s.span_id,
      detail: `${s.service} ${(Number(s.duration_ns) / 1e6).toFixed(1)}ms ${s.status.code}` });
  }
  for (const e of t.events ?? []) {
    rows.push({ ts: e.ts, what: 'event', name: e.kind, span: e.span_id,
      detail: [e.actor, e.resource.type && `${e.resource.type}:${e.resource.id}`].filter(Boolean).join(' ') });
  }
  rows.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.what.localeCompare(b.what)));
  const header = { ts: 'TIME', what: 'TYPE', name: 'NAME', span: 'SPAN', detail: 'DETAIL' };
  const all = [header, ...rows];
  const w = (k: keyof typeof header) => Math.max(...all.map((r) => r[k].length));
  const cols: (keyof typeof header)[] = ['ts', 'what', 'name', 'span', 'detail'];
  const widths = cols.map(w);
  const lines = all.map((r) => cols.map((c, i) => (i === cols.length - 1 ? r[c] : r[c].padEnd(widths[i]!))).join('  ').trimEnd());
  return `trace ${t.trace_id}: ${t.spans.length} spans, ${t.events?.length ?? 0} events\n${lines.join('\n')}\n`;
}
