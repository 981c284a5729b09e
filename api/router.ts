// A tiny router: `GET /timeline/:event_id` style patterns, JSON responses, and per-route scope
// guards. Evidence and SLO routes register on the same Router (registerXRoutes(router, deps)).
import type { IncomingHttpHeaders } from 'node:http';
import type { AuthzOutcome } from '../lib/audit.ts';
import type { Principal, Scope } from '../lib/tenancy.ts';

export interface ApiRequest {
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  requestId: string;
  /** The request's trace id (from `traceparent`, else new); also sent back as `x-trace-id`. */
  traceId?: string;
  /** The request body as received (empty for GET). */
  rawBody?: Buffer;
  /** The body parsed, when it was sent as application/json and parses. */
  body?: unknown;
  /** The matched route pattern (e.g. `/timeline/:event_id`), for logs and spans. */
  route?: string;
  /** Filled in by the auth guard: the decision, for the request's `api.*` span. */
  authz?: AuthzNote;
  /**
   * The body as the route's decompression produced it (a route with `body.gunzipMaxBytes` and a
   * `Content-Encoding: gzip` request), inflated while it arrived; absent when the gzip was invalid.
   */
  inflatedBody?: Buffer;
  /**
   * Reads the body under the route's limit (api/server.ts). Scoped routes: the auth guard calls it
   * once the token is accepted, so nobody unauthenticated gets a body read. Set by the server only.
   */
  loadBody?: () => Promise<BodyRead>;
  /** The route's own answer to a body over its limit (BodyLimit.refuse), handed along by the server. */
  onBodyRefused?: (req: AuthedRequest, over: BodyOverLimit) => Promise<ApiResponse> | ApiResponse;
}

/**
 * A route's request-body limit, enforced while the bytes arrive: the first byte past `maxBytes` (or a
 * Content-Length over it) ends the read with 413 and nothing buffered beyond the limit; with
 * `gunzipMaxBytes` a gzip body is inflated as it arrives and stopped once its output passes that.
 */
export interface BodyLimit {
  maxBytes: number;
  /** error.code of the 413 (default `too_large`). */
  code?: string;
  gunzipMaxBytes?: number;
  /** error.code of the 413 for inflation (default `DECOMPRESSED_TOO_LARGE`). */
  gunzipCode?: string;
  /** The route reads `rawBody` only: the body is not also JSON.parsed into `body` (a cost per request for nothing). */
  rawOnly?: boolean;
  /** Builds the route's 413 (after auth, e.g. to record a refusal event); default: apiError(413, code). */
  refuse?: (req: AuthedRequest, over: BodyOverLimit) => Promise<ApiResponse> | ApiResponse;
}

/** Why a body read stopped: the bytes as sent, or what they inflate to, passed the route's limit. */
export interface BodyOverLimit { ok: false; over: 'body' | 'inflated'; code: string; limit: number; message: string }
export type BodyRead = { ok: true; raw: Buffer; json: unknown; inflated?: Buffer } | BodyOverLimit;

/** What the auth guard decided about a request (api/auth.ts), read by the server for its span. */
export interface AuthzNote { outcome?: AuthzOutcome; scope?: string; tenant?: string; tokenName?: string; tokenId?: string }

/** A request that passed the auth guard: the principal and the one tenant it acts for. */
export interface AuthedRequest extends ApiRequest { principal: Principal; tenant: string }

export interface ApiResponse { status: number; body: unknown; headers?: Record<string, string> }

export type Handler = (req: ApiRequest) => Promise<ApiResponse> | ApiResponse;
export type AuthedHandler = (req: AuthedRequest) => Promise<ApiResponse> | ApiResponse;

export interface Route { method: string; pattern: string; parts: string[]; handler: Handler; scope: Scope | undefined; body?: BodyLimit }
export interface RouteOptions { body?: BodyLimit }

export const json = (status: number, body: unknown, headers?: Record<string, string>): ApiResponse => ({ status, body, headers });
export const apiError = (status: number, code: string, message: string, extra: Record<string, unknown> = {}): ApiResponse =>
  json(status, { error: { code, message, ...extra } });

export class Router {
  readonly routes: Route[] = [];
  /** Wraps handlers that need a scope; set by the server (api/auth.ts). */
  guard: ((scope: Scope, h: AuthedHandler) => Handler) | undefined;

  constructor(guard?: (scope: Scope, h: AuthedHandler) => Handler) { this.guard = guard; }

  /** A public route (no token), e.g. /healthz. */
  public(method: string, pattern: string, handler: Handler, opts: RouteOptions = {}): void {
    this.routes.push({ method, pattern, parts: split(pattern), handler, scope: undefined, ...(opts.body ? { body: opts.body } : {}) });
  }

  /** A route that requires `scope` for the tenant it acts on. */
  scoped(method: string, pattern: string, scope: Scope, handler: AuthedHandler, opts: RouteOptions = {}): void {
    if (!this.guard) throw new Error('router has no auth guard');
    this.routes.push({ method, pattern, parts: split(pattern), handler: this.guard(scope, handler), scope, ...(opts.body ? { body: opts.body } : {}) });
  }

  match(method: string, path: string): { route: Route; params: Record<string, string> } | { allowed: string[] } | undefined {
    const segs = split(path);
    const allowed: string[] = [];
    for (const route of this.routes) {
      const params = matchParts(route.parts, segs);
      if (!params) continue;
      if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { route, params };
      allowed.push(route.method);
    }
    return allowed.length ? { allowed } : undefined;
  }
}

const split = (p: string) => p.split('/').filter((s) => s.length > 0);

function matchParts(parts: string[], segs: string[]): Record<string, string> | undefined {
  if (parts.length !== segs.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    let s: string;
    try { s = decodeURIComponent(segs[i]!); } catch { return undefined; }
    if (p.startsWith(':')) params[p.slice(1)] = s;
    else if (p !== s) return undefined;
  }
  return params;
}
