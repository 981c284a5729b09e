// Tenancy and authorization. Clients present bearer tokens; the config holds only SHA-256 hashes
// of tokens, each mapped to a tenant and scopes. Scopes are bound to a tenant:
// `timeline:read#tenant/acme`. A bare scope in config (`timeline:read`) binds to the token's tenant.
import { hash } from 'node:crypto';

export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export const SCOPES = ['otlp:write', 'timeline:read', 'evidence:read', 'evidence:create', 'evidence:export',
  'obs:read', 'obs:write', 'attest:read', 'admin',
  // Signed intake (docs/intake.md); reads of what it stored use attest:read / obs:read.
  'runtime:write', 'orchestrator:exports:write', 'artifacts:write', 'symbols:write'] as const;
export type Scope = (typeof SCOPES)[number];

export interface TokenConfig { sha256: string; scopes: string[]; name?: string }
export interface TenantConfig { id: string; tokens: TokenConfig[] }

export interface Principal {
  /** The tenant the token was issued to; the tenant stamped on what it ingests. */
  tenantId: string;
  /** Granted scopes, each `scope#tenant/<id>`. */
  grants: ReadonlySet<string>;
  tokenName: string | undefined;
  /** The first 12 hex digits of the token's SHA-256 (as `stella tokens list` shows): who, in audit logs. */
  tokenId: string;
}

export class AuthError extends Error {
  constructor(readonly kind: 'unauthenticated' | 'forbidden', message: string) { super(message); }
}

// crypto.hash: one call, no Hash object (a few µs less per small input; these run per request).
export const sha256Hex = (s: string | Uint8Array): string => hash('sha256', s, 'hex');
export const grant = (scope: string, tenantId: string): string => `${scope}#tenant/${tenantId}`;

export function validateTenantId(id: string): string | undefined {
  return TENANT_ID_PATTERN.test(id) ? undefined : `tenant id must match ${TENANT_ID_PATTERN} (lowercase letters, digits, '-' and '_', at most 63)`;
}

/** Parse `scope` or `scope#tenant/<id>` into a grant string; throws on an unknown scope or tenant. */
export function parseGrant(entry: string, ownTenant: string): string {
  const [scope, binding] = entry.split('#', 2) as [string, string | undefined];
  if (!(SCOPES as readonly string[]).includes(scope)) throw new Error(`unknown scope "${scope}" (known: ${SCOPES.join(', ')})`);
  if (binding === undefined) return grant(scope, ownTenant);
  const m = /^tenant\/(.+)$/.exec(binding);
  if (!m || validateTenantId(m[1]!)) throw new Error(`scope binding "${binding}" must be tenant/<tenant id>`);
  return grant(scope, m[1]!);
}

export class TokenRegistry {
  private byHash = new Map<string, Principal>();

  constructor(tenants: readonly TenantConfig[]) {
    this.replace(tenants);
  }

  /**
   * Swaps in a new set of tenants and tokens (the token store changed): all or nothing, so a bad
   * set throws and leaves the tokens in force as they were.
   */
  replace(tenants: readonly TenantConfig[]): void {
    const byHash = new Map<string, Principal>();
    for (const t of tenants) {
      for (const tok of t.tokens) {
        const hash = tok.sha256.toLowerCase();
        if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`tenant ${t.id}: token sha256 must be 64 hex characters`);
        if (byHash.has(hash)) throw new Error(`tenant ${t.id}: the same token hash is configured twice`);
        byHash.set(hash, { tenantId: t.id, grants: new Set(tok.scopes.map((s) => parseGrant(s, t.id))), tokenName: tok.name, tokenId: hash.slice(0, 12) });
      }
    }
    this.byHash = byHash;
  }

  get size(): number { return this.byHash.size; }

  /** Resolve an `Authorization` header value. Never echoes the token in errors. */
  authenticate(authorization: string | undefined | null): Principal {
    if (!authorization) throw new AuthError('unauthenticated', 'missing bearer token: send "Authorization: Bearer <token>"');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m) throw new AuthError('unauthenticated', 'malformed Authorization header: expected "Bearer <token>"');
    // Looked up by the token's SHA-256: a lookup's timing depends on the hash of the guess, which
    // says nothing about the stored hashes or tokens, so no constant-time compare is needed.
    const p = this.byHash.get(sha256Hex(m[1]!));
    if (!p) throw new AuthError('unauthenticated', 'unknown bearer token');
    return p;
  }
}

/** Throws 403-style AuthError unless the principal holds `scope` for `tenantId`. */
export function requireScope(p: Principal, scope: Scope, tenantId: string): void {
  if (p.grants.has(grant(scope, tenantId)) || p.grants.has(grant('admin', tenantId))) return;
  throw new AuthError('forbidden', `token lacks scope ${grant(scope, tenantId)}`);
}

/** The tenants for which the principal holds `scope`. */
export function tenantsWithScope(p: Principal, scope: Scope): string[] {
  const out: string[] = [];
  for (const g of p.grants) {
    const [s, b] = g.split('#tenant/') as [string, string];
    if (s === scope || s === 'admin') out.push(b);
  }
  return [...new Set(out)].sort();
}
