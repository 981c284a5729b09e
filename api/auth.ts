// Bearer-token auth for the read API. The token resolves to a Principal (lib/tenancy.ts); the
// tenant a request acts on is `?tenant=` when given, else the token's only tenant holding the
// route's scope. 401 = no/unknown token; 403 = the token lacks `<scope>#tenant/<id>`. Bodies name
// the missing scope and never echo the token or any request data beyond the tenant id asked for.
// Every decision is logged (lib/audit.ts) and noted on the request for its `api.*` span.
import { logAuthz, type AuthzOutcome } from '../lib/audit.ts';
import { AuthError, requireScope, tenantsWithScope, validateTenantId, type Principal, type Scope, type TokenRegistry } from '../lib/tenancy.ts';
import { apiError, type ApiRequest, type AuthedHandler, type Handler } from './router.ts';

function decided(req: ApiRequest, outcome: AuthzOutcome, scope: Scope, tenant: string | undefined, principal: Principal | undefined): void {
  if (req.authz) Object.assign(req.authz, { outcome, scope, tenant, tokenName: principal?.tokenName, tokenId: principal?.tokenId });
  logAuthz('api', { outcome, scope, tenant, principal, route: `${req.method} ${req.route ?? req.path}`, requestId: req.requestId, traceId: req.traceId });
}

export function bearerGuard(tokens: TokenRegistry): (scope: Scope, h: AuthedHandler) => Handler {
  return (scope, handler) => async (req) => {
    let principal;
    try {
      principal = tokens.authenticate(req.headers.authorization);
    } catch (err) {
      if (err instanceof AuthError) {
        decided(req, 'unauthenticated', scope, undefined, undefined);
        return { ...apiError(401, 'unauthenticated', err.message, { required_scope: `${scope}#tenant/<id>` }),
          headers: { 'www-authenticate': `Bearer realm="stella", scope="${scope}"` } };
      }
      throw err;
    }
    const asked = req.query.get('tenant');
    let tenant: string;
    if (asked !== null) {
      if (validateTenantId(asked)) return apiError(400, 'invalid_tenant', 'tenant must be a tenant id (lowercase letters, digits, "-", "_")');
      tenant = asked;
    } else {
      const granted = tenantsWithScope(principal, scope);
      if (granted.length === 0) {
        decided(req, 'forbidden', scope, undefined, principal);
        return apiError(403, 'forbidden', `token lacks scope ${scope} for any tenant`, { required_scope: `${scope}#tenant/<id>` });
      }
      if (granted.length > 1) {
        return apiError(400, 'tenant_required', `token holds ${scope} for several tenants; choose one with ?tenant=<id>`);
      }
      tenant = granted[0]!;
    }
    try {
      requireScope(principal, scope, tenant);
    } catch (err) {
      if (err instanceof AuthError) {
        decided(req, 'forbidden', scope, tenant, principal);
        return apiError(403, 'forbidden', err.message, { required_scope: `${scope}#tenant/${tenant}` });
      }
      throw err;
    }
    decided(req, 'allowed', scope, tenant, principal);
    // The body is read only now, under the route's limit: a body over it is the route's 413.
    if (req.loadBody) {
      const b = await req.loadBody();
      if (!b.ok) {
        return req.onBodyRefused ? req.onBodyRefused({ ...req, principal, tenant }, b)
          : { ...apiError(413, b.code, b.message, { limit: b.limit }) };
      }
      return handler({ ...req, rawBody: b.raw, body: b.json, ...(b.inflated ? { inflatedBody: b.inflated } : {}), principal, tenant });
    }
    return handler({ ...req, principal, tenant });
  };
}
