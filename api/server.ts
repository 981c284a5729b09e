// The one HTTP read API server (default port 8080, STELLA_API_PORT). Routes are registered by
// feature modules (registerTimelineRoutes, later evidence and SLO routes) on one Router; this file
// owns transport concerns: JSON encoding, request ids, 404/405, error hiding, access metrics.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import zlib from 'node:zlib';
import type { Kafka } from 'kafkajs';
import { BatchingProducer } from '../lib/kafka/producer.ts';
import type { TokenRegistry } from '../lib/tenancy.ts';
import { logger } from '../lib/log.ts';
import { histogram } from '../lib/metrics.ts';
import { API_ATTR, ATTR, startApiSpan } from '../lib/tracing.ts';
import { bearerGuard } from './auth.ts';
import { apiError, json, Router, type ApiRequest, type ApiResponse, type AuthzNote, type BodyLimit, type BodyOverLimit, type BodyRead } from './router.ts';

/** Largest request body read by any route (POST /evidence/verify takes a bundle); routes set lower limits (Router RouteOptions.body). */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;
const DEFAULT_BODY_LIMIT: BodyLimit = { maxBytes: MAX_BODY_BYTES, code: 'too_large' };
/**
 * Output chunk of the streaming gunzip. zlib's default (16 KiB) made inflating cost more than
 * hashing, validating and storing the NDJSON together (BENCHMARKS.md "runtime facts gzip"): each
 * chunk is a round trip to the thread pool and a Buffer. 256 KiB chunks inflate ~3x faster; a
 * gzip bomb still stops within one chunk past the limit.
 */
export const INFLATE_CHUNK_BYTES = 256 * 1024;

/** A JSON request body parsed (undefined when not JSON or not parsable; handlers validate it). */
function jsonBody(contentType: string | undefined, raw: Buffer): unknown {
  if (raw.length === 0 || !/^application\/json\b/i.test(contentType ?? '')) return undefined;
  try { return JSON.parse(raw.toString('utf8')) as unknown; } catch { return undefined; }
}

/**
 * Reads a request body under a route's limit as the bytes arrive (docs/api.md "Request bodies"): a
 * Content-Length over the limit is refused before a byte is read; otherwise the first chunk that
 * takes the body past the limit ends the read (what came before is dropped, the rest is discarded
 * unread). With `gunzipMaxBytes` and `Content-Encoding: gzip` the body is inflated chunk by chunk
 * and the read ends as soon as the output passes that ceiling (a gzip bomb never inflates further).
 * Memoized: the auth guard calls it once the token is accepted.
 */
export function bodyReader(req: http.IncomingMessage, limit: BodyLimit): () => Promise<BodyRead> {
  let read: Promise<BodyRead> | undefined;
  return () => (read ??= new Promise<BodyRead>((resolve, reject) => {
    const max = Math.min(limit.maxBytes, MAX_BODY_BYTES);
    const over = (what: 'body' | 'inflated', lim: number): BodyOverLimit => ({
      ok: false, over: what, limit: lim,
      code: what === 'body' ? (limit.code ?? 'too_large') : (limit.gunzipCode ?? 'DECOMPRESSED_TOO_LARGE'),
      message: what === 'body' ? `the request body is over ${lim} bytes (this route's limit)` : `the gzip body inflates past ${lim} bytes (this route's limit)`,
    });
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) { discard(req); resolve(over('body', max)); return; }
    const gzipLimit = limit.gunzipMaxBytes !== undefined && /^\s*(x-)?gzip\s*$/i.test(String(req.headers['content-encoding'] ?? '')) ? limit.gunzipMaxBytes : undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    let inflater: zlib.Gunzip | undefined;
    const inflated: Buffer[] = [];
    let inflatedSize = 0;
    let inflateFailed = false;
    const finish = (r: BodyRead | Error) => {
      if (settled) return;
      settled = true;
      req.off('data', onData); req.off('end', onEnd); req.off('error', finish);
      if (r instanceof Error) { inflater?.destroy(); reject(r); return; }
      if (!r.ok) { inflater?.destroy(); chunks.length = 0; inflated.length = 0; discard(req); }
      resolve(r);
    };
    if (gzipLimit !== undefined) {
      inflater = zlib.createGunzip({ chunkSize: INFLATE_CHUNK_BYTES });
      inflater.on('data', (c: Buffer) => {
        inflatedSize += c.length;
        if (inflatedSize > gzipLimit) finish(over('inflated', gzipLimit)); else inflated.push(c);
      });
      // Not gzip: the route sees the raw body without `inflated` and answers its own refusal.
      inflater.on('error', () => { inflateFailed = true; req.resume(); });
    }
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > max) { finish(over('body', max)); return; }
      chunks.push(c);
      if (inflater && !inflateFailed && !inflater.write(c)) {
        // Backpressure: no more input until the inflater caught up (its output is what is bounded).
        req.pause();
        inflater.once('drain', () => { if (!settled) req.resume(); });
      }
    };
    const onEnd = () => {
      const raw = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      const done = (infl?: Buffer) => finish({ ok: true, raw, json: limit.rawOnly ? undefined : jsonBody(req.headers['content-type'], raw), ...(infl ? { inflated: infl } : {}) });
      if (!inflater || inflateFailed) { done(); return; }
      inflater.once('end', () => done(inflateFailed ? undefined : inflated.length === 1 ? inflated[0]! : Buffer.concat(inflated, inflatedSize)));
      inflater.once('error', () => done());
      inflater.end();
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', finish);
  }));
}

/** Reads and drops the rest of a refused body (the 413 goes out meanwhile); a client that keeps sending past the server ceiling is cut off. */
function discard(req: http.IncomingMessage): void {
  let dropped = 0;
  req.on('data', (c: Buffer) => { dropped += c.length; if (dropped > MAX_BODY_BYTES) req.socket.destroy(); });
  req.resume();
}

/**
 * The request's trace id: the one in a W3C `traceparent` header when the client sent a valid one
 * (the CLI does), else a new one. Returned as `x-trace-id` on every response so that a user can
 * quote it (the CLI prints it on stderr).
 */
export function requestTraceId(traceparent: string | string[] | undefined): string {
  const m = /^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(String(traceparent ?? '').trim().toLowerCase());
  if (m && !/^0+$/.test(m[1]!) && !/^0+$/.test(m[2]!)) return m[1]!;
  return randomTraceId();
}

// New trace ids come from a pool of CSPRNG bytes filled 4 KiB at a time (as randomUUID does): one
// randomBytes call per 256 requests instead of one per request.
let tracePool = Buffer.alloc(0);
let tracePoolAt = 0;
function randomTraceId(): string {
  if (tracePoolAt + 16 > tracePool.length) { tracePool = randomBytes(4096); tracePoolAt = 0; }
  const id = tracePool.toString('hex', tracePoolAt, tracePoolAt + 16);
  tracePoolAt += 16;
  return id;
}

export const DEFAULT_API_PORT = 8080;

/** Config key STELLA_API_PORT (default 8080). */
export function apiPortFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.STELLA_API_PORT;
  if (v === undefined || v === '') return DEFAULT_API_PORT;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error('STELLA_API_PORT must be a port number (0-65535)');
  return n;
}

export interface ApiServerOptions {
  tokens: TokenRegistry;
  /** Default 8080; 0 picks a free port (tests). */
  port?: number;
  host?: string;
  /** Feature route registrations, e.g. (r) => registerTimelineRoutes(r, { store }); intake routes take the producer from `ctx`. */
  register: ((router: Router, ctx: ApiContext) => void)[];
  /**
   * Kafka as the API's user (`api`: allowed to write the intake topics and timeline_events). When
   * given, the server opens one idempotent acks=all producer for the intake routes and closes it
   * after the HTTP server closed (so no route is left with a producer gone).
   */
  kafka?: Kafka;
  /** Readiness probe for /readyz (e.g. store.ping). */
  ready?: () => Promise<boolean>;
}

/** What the server hands to route registrations. */
export interface ApiContext {
  /** The intake producer (undefined when the server was started without Kafka). */
  producer: BatchingProducer | undefined;
}

export interface RunningApi { server: http.Server; url: string; port: number; router: Router; close(): Promise<void> }

const latency = histogram('stella_api_request_seconds', 'API request latency', ['route', 'status']);

export function createRouter(tokens: TokenRegistry, ready?: () => Promise<boolean>): Router {
  const router = new Router(bearerGuard(tokens));
  router.public('GET', '/healthz', () => json(200, { status: 'ok' }));
  router.public('GET', '/readyz', async () => ((await (ready?.() ?? Promise.resolve(true)).catch(() => false))
    ? json(200, { status: 'ready' }) : json(503, { status: 'not ready' })));
  return router;
}

export async function startApiServer(opts: ApiServerOptions): Promise<RunningApi> {
  const log = logger('api');
  const router = createRouter(opts.tokens, opts.ready);
  let producer: BatchingProducer | undefined;
  if (opts.kafka) {
    producer = new BatchingProducer(opts.kafka, { lingerMs: 2, maxBatchBytes: 900_000 });
    await producer.connect();
  }
  for (const r of opts.register) r(router, { producer });

  const server = http.createServer((req, res) => {
    const requestId = randomUUID();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const m = router.match(req.method ?? 'GET', url.pathname);
    const routeName = m && 'route' in m ? m.route.pattern : 'unmatched';
    // Scoped routes get an `api.*` span carrying the auth guard's decision (public probes do not).
    const span = m && 'route' in m && m.route.scope ? startApiSpan(req.method ?? 'GET', routeName, req.headers.traceparent as string | undefined) : undefined;
    const traceId = span?.traceId ?? requestTraceId(req.headers.traceparent);
    const authz: AuthzNote = {};
    let failure: unknown;
    const end = latency.startTimer({ route: routeName });
    const send = (r: ApiResponse) => {
      span?.end(r.status, {
        [API_ATTR.requestId]: requestId, [API_ATTR.authOutcome]: authz.outcome ?? 'none',
        ...(authz.scope ? { [API_ATTR.authScope]: authz.scope } : {}), ...(authz.tenant ? { [ATTR.tenant]: authz.tenant } : {}),
        ...(authz.tokenName ? { [API_ATTR.tokenName]: authz.tokenName } : {}), ...(authz.tokenId ? { [API_ATTR.tokenId]: authz.tokenId } : {}),
      }, failure);
      // Buffers, and strings with a non-JSON content type (evidence tiles, proofs, bundles), go out as-is.
      const ct = r.headers?.['content-type'];
      const raw = Buffer.isBuffer(r.body) || (typeof r.body === 'string' && ct !== undefined && !ct.startsWith('application/json'));
      const body = raw ? (r.body as Buffer | string) : JSON.stringify(r.body);
      // A length on every response: clients (the CLI's download progress) know how much is coming.
      res.writeHead(r.status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': String(Buffer.byteLength(body)),
        'x-request-id': requestId, 'x-trace-id': traceId, ...r.headers });
      res.end(req.method === 'HEAD' ? undefined : body);
      end({ status: String(r.status) });
    };
    if (!m) return send(apiError(404, 'not_found', 'no such route'));
    if (!('route' in m)) return send({ ...apiError(405, 'method_not_allowed', 'method not allowed'), headers: { allow: m.allowed.join(', ') } });
    const route = m.route;
    const loadBody = bodyReader(req, route.body ?? DEFAULT_BODY_LIMIT);
    const base = { method: req.method ?? 'GET', path: url.pathname, params: m.params, query: url.searchParams,
      headers: req.headers, requestId, traceId, route: routeName, authz };
    // A refused body may still be arriving: answer now and close the connection rather than read it all.
    const sendAfterBody = (r: ApiResponse) => send(req.complete ? r : { ...r, headers: { ...r.headers, connection: 'close' } });
    const handle = async (): Promise<ApiResponse> => {
      // Scoped routes read their body in the auth guard (api/auth.ts), after the token was accepted.
      if (route.scope) {
        return route.handler({ ...base, loadBody, ...(route.body?.refuse ? { onBodyRefused: route.body.refuse } : {}) } as ApiRequest);
      }
      const b = await loadBody();
      if (!b.ok) return apiError(413, b.code, b.message, { limit: b.limit });
      return route.handler({ ...base, rawBody: b.raw, body: b.json, ...(b.inflated ? { inflatedBody: b.inflated } : {}) } as ApiRequest);
    };
    handle()
      .then(sendAfterBody, (err: unknown) => {
        // Internals (SQL, stack) stay in the log (scrubbed; the stack folded into details.stack); the client gets the request id to quote.
        failure = err;
        log.error({ request_id: requestId, trace_id: traceId, route: routeName, err }, 'request failed');
        sendAfterBody(apiError(500, 'internal', 'internal error', { request_id: requestId, trace_id: traceId }));
      });
  });
  const port = opts.port ?? DEFAULT_API_PORT;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, opts.host ?? '127.0.0.1', () => { server.off('error', reject); resolve(); });
    });
  } catch (err) {
    await producer?.disconnect();
    throw err;
  }
  const actual = (server.address() as AddressInfo).port;
  log.info({ port: actual }, 'api listening');
  return {
    server, port: actual, url: `http://${opts.host ?? '127.0.0.1'}:${actual}`, router,
    close: async () => {
      await new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
      await producer?.disconnect();
    },
  };
}
