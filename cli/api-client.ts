// What every API-reading `stella` command shares: one trace per command. The CLI starts a W3C trace
// (a `traceparent` header with a new span id per request), the API answers with the trace id it
// used (`x-trace-id`), and the command prints `trace_id: <id>` on stderr for copy and paste into
// `stella obs trace` or a log search.
import { randomBytes } from 'node:crypto';

export interface TracedFetch {
  fetch: typeof fetch;
  /** The trace id this command sent. */
  readonly traceId: string;
  /** The trace id of the last response (the server's `x-trace-id`), undefined when none answered. */
  readonly answered: string | undefined;
}

const nonZeroHex = (bytes: number): string => {
  for (;;) { const h = randomBytes(bytes).toString('hex'); if (!/^0+$/.test(h)) return h; }
};

export function tracedFetch(base: typeof fetch = fetch): TracedFetch {
  const traceId = nonZeroHex(16);
  let answered: string | undefined;
  const f = (async (input: Parameters<typeof fetch>[0], init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    headers.set('traceparent', `00-${traceId}-${nonZeroHex(8)}-01`);
    const res = await base(input, { ...init, headers });
    const got = res.headers.get('x-trace-id');
    answered = got && /^[0-9a-f]{32}$/.test(got) ? got : answered;
    return res;
  }) as typeof fetch;
  return { fetch: f, traceId, get answered() { return answered; } };
}

/** The stderr line naming the trace (empty when no server answered). */
export const traceLine = (t: TracedFetch): string => (t.answered ? `trace_id: ${t.answered}\n` : '');

/** What a read command prints and exits with. */
export interface CliResult { exitCode: number; stdout: string; stderr: string }

export interface TraceGetOptions { baseUrl: string; token: string; traceId: string; tenant?: string; fetch?: typeof fetch }

/**
 * GET a per-trace read route (`pathOf(traceId)`), as `obs trace`, `obs provenance` and
 * `forensic replay-manifest` share it: a malformed trace id is a usage error (2), an unreachable
 * API 4, 401/403 3. Anything else is the caller's: it gets the response and its JSON body.
 */
export async function getForTrace<T>(opts: TraceGetOptions, pathOf: (traceId: string) => string):
  Promise<{ result: CliResult } | { res: Response; body: T & { error?: { message?: string } } }> {
  if (!/^[0-9a-fA-F]{32}$/.test(opts.traceId)) return { result: { exitCode: 2, stdout: '', stderr: 'trace id must be 32 hex characters\n' } };
  const url = new URL(pathOf(opts.traceId.toLowerCase()), opts.baseUrl);
  if (opts.tenant) url.searchParams.set('tenant', opts.tenant);
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(url, { headers: { authorization: `Bearer ${opts.token}`, accept: 'application/json' } });
  } catch (err) {
    return { result: { exitCode: 4, stdout: '', stderr: `cannot reach ${url.origin}: ${(err as Error).message}\n` } };
  }
  const body = (await res.json().catch(() => ({}))) as T & { error?: { message?: string } };
  if (res.status === 401 || res.status === 403) return { result: { exitCode: 3, stdout: '', stderr: `${res.status}: ${body.error?.message ?? 'not allowed'}\n` } };
  return { res, body };
}
