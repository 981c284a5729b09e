// The audit trail of the pipeline itself: one log record per authorization decision, in the
// receiver (scope otlp:write) and the read API (every scoped route). Fields:
//   audit: "authz", decision: "allowed" | "denied", reason (denied: unauthenticated | forbidden),
//   token_name, token_id (the first 12 hex of the token's SHA-256, as `stella tokens list` shows;
//   null when no known token was presented), scope, tenant_id (the tenant acted on, when known),
//   route (API route pattern, or the receiver's protocol and signal), request_id / trace_id (API).
// Never the token, the Authorization header, or anything else the client sent beyond the tenant id.
import { logger, type Logger } from './log.ts';
import { AuthError, requireScope, type Principal, type TokenRegistry } from './tenancy.ts';

export type AuthzOutcome = 'allowed' | 'unauthenticated' | 'forbidden';

export interface AuthzDecision {
  outcome: AuthzOutcome;
  scope: string;
  tenant: string | undefined;
  principal: Principal | undefined;
  route: string;
  requestId?: string;
  traceId?: string;
}

const loggers = new Map<string, Logger>();

/** Log one decision of `component` (receiver, api) at info level. */
export function logAuthz(component: string, d: AuthzDecision): void {
  let log = loggers.get(component);
  if (!log) loggers.set(component, (log = logger(component, { audit: 'authz' })));
  // The receiver decides once per request: the record is not built when info is not logged.
  if (!log.isLevelEnabled('info')) return;
  log.info({
    decision: d.outcome === 'allowed' ? 'allowed' : 'denied',
    ...(d.outcome === 'allowed' ? {} : { reason: d.outcome }),
    token_name: d.principal?.tokenName ?? null, token_id: d.principal?.tokenId ?? null,
    scope: d.scope, tenant_id: d.tenant ?? null, route: d.route,
    ...(d.requestId ? { request_id: d.requestId } : {}), ...(d.traceId ? { trace_id: d.traceId } : {}),
  }, d.outcome === 'allowed' ? 'authorization allowed' : 'authorization denied');
}

/**
 * The receiver's decision: the token must be known and hold otlp:write for its own tenant (the
 * tenant stamped on what it sends). Logs the decision; throws the AuthError of a denial.
 */
export function authorizeIntake(tokens: TokenRegistry, authorization: string | undefined, route: string): Principal {
  let principal: Principal | undefined;
  try {
    principal = tokens.authenticate(authorization);
    requireScope(principal, 'otlp:write', principal.tenantId);
  } catch (err) {
    if (err instanceof AuthError) logAuthz('receiver', { outcome: err.kind, scope: 'otlp:write', tenant: principal?.tenantId, principal, route });
    throw err;
  }
  logAuthz('receiver', { outcome: 'allowed', scope: 'otlp:write', tenant: principal.tenantId, principal, route });
  return principal;
}
