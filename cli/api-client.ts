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
