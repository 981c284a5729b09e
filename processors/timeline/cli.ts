// `stella obs trace <trace_id>`: the correlated timeline events and spans of one trace, fetched
// from the read API (GET /obs/trace/:trace_id) and printed as a table or JSON. The lead's CLI
// parses argv and calls obsTrace(); exit codes: 0 ok, 1 not found/empty, 2 usage, 3 auth, 4 other.
import { getForTrace, type CliResult, type TraceGetOptions } from '../../cli/api-client.ts';

export interface ObsTraceOptions extends TraceGetOptions { format?: 'table' | 'json' }

export type { CliResult };

interface TraceResponse {
  trace_id: string;
  spans: { ts: string; span_id: string; parent_span_id: string; name: string; service: string; duration_ns: string; status: { code: string } }[];
  events: { ts: string; event_id: string; kind: string; actor: string; resource: { type: string; id: string }; span_id: string }[] | null;
  events_omitted?: string;
}

export async function obsTrace(opts: ObsTraceOptions): Promise<CliResult> {
  const got = await getForTrace<TraceResponse>(opts, (id) => `/obs/trace/${id}`);
  if ('result' in got) return got.result;
  const { res, body } = got;
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
