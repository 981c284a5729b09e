// `stella tenants add|list` and `stella tokens create|list|revoke`: manage the token store
// (lib/token-store.ts) under the data dir; a running `stella run` picks changes up without restart.
// A created token is printed once and only its SHA-256 is kept. Exit codes as in commands.ts.
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../lib/config.ts';
import { readDemoTenant } from '../lib/bootstrap.ts';
import type { TenantConfig } from '../lib/tenancy.ts';
import { addTenant, createToken, readTokenStore, RevokeNotFound, revokeToken, TOKEN_STORE_POLL_MS, tokenStorePath, TokenStoreError, updateTokenStore } from '../lib/token-store.ts';
import { flagString, outputFormat, render, tenantFlag, UsageError, type Flags, type Io } from './commands.ts';

/** The data dir and the tenants configured outside the store (config file, else the demo tenant). */
function context(): { dataDir: string; configured: TenantConfig[]; source: string } {
  const cfg = loadConfig();
  if (cfg.tenants.length > 0) return { dataDir: cfg.dataDir, configured: cfg.tenants, source: 'config' };
  return { dataDir: cfg.dataDir, configured: readDemoTenant(cfg.dataDir) ?? [], source: 'demo' };
}

/** Validation failures of the store's rules are usage errors (exit 2). */
function asUsage<T>(f: () => T): T {
  try { return f(); } catch (err) {
    if (err instanceof TokenStoreError || (err as Error).message?.startsWith('unknown scope') || (err as Error).message?.startsWith('scope binding')) throw new UsageError((err as Error).message);
    throw err;
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export async function cmdTenants(sub: string | undefined, args: string[], flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const { dataDir, configured, source } = context();
  if (sub === 'add') {
    const id = args[0];
    if (!id || args.length > 1) throw new UsageError('usage: stella tenants add <tenant id>');
    const store = updateTokenStore(dataDir, (s) => { const next = asUsage(() => addTenant(s, id, configured.map((t) => t.id))); return { store: next, result: next }; });
    const added = store.tenants.find((t) => t.id === id)!;
    io.stdout(render({ id, created: added.created, store: tokenStorePath(dataDir) }, format, () => `${id}\n`));
    io.stderr(`tenant "${id}" added to ${tokenStorePath(dataDir)}; create a token with "stella tokens create --tenant ${id} --scopes otlp:write"\n`);
    return 0;
  }
  if (sub === 'list') {
    if (args.length) throw new UsageError('usage: stella tenants list [--output table|json|yaml]');
    const store = readTokenStore(dataDir);
    const rows = configured.map((t) => ({ id: t.id, source, tokens: t.tokens.length }));
    for (const t of store.tenants) if (!rows.some((r) => r.id === t.id)) rows.push({ id: t.id, source: 'store', tokens: 0 });
    for (const r of rows) r.tokens += store.tokens.filter((k) => k.tenant === r.id && !k.revoked).length;
    if (rows.length === 0) { io.stderr('no tenants (stella run creates a demo tenant; or "stella tenants add <id>")\n'); return 1; }
    io.stdout(render(rows, format, () => table([['TENANT', 'SOURCE', 'TOKENS'], ...rows.map((r) => [r.id, r.source, String(r.tokens)])])));
    return 0;
  }
  throw new UsageError('usage: stella tenants add <id> | stella tenants list');
}

export async function cmdTokens(sub: string | undefined, args: string[], flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const { dataDir, configured, source } = context();
  if (sub === 'create') {
    if (args.length) throw new UsageError(`unexpected argument "${args[0]}"; usage: stella tokens create --tenant T --scopes s1,s2 [--name N]`);
    const tenant = tenantFlag(flags);
    const scopesFlag = flagString(flags, 'scopes');
    if (!tenant || !scopesFlag) throw new UsageError('usage: stella tokens create --tenant T --scopes s1,s2 [--name N] (scopes: see "Tenants and tokens" in README.md)');
    const scopes = scopesFlag.split(',').map((s) => s.trim()).filter(Boolean);
    const name = flagString(flags, 'name') ?? `${tenant}-${randomBytes(3).toString('hex')}`;
    const r = updateTokenStore(dataDir, (s) => { const c = asUsage(() => createToken(s, { tenant, name, scopes, known: configured })); return { store: c.store, result: c }; });
    const { entry } = r;
    io.stdout(render({ name: entry.name, tenant: entry.tenant, scopes: entry.scopes, created: entry.created, sha256: entry.sha256, token: r.token }, format, () => `${r.token}\n`));
    io.stderr(`token "${entry.name}" for tenant "${tenant}" (${scopes.join(', ')}): shown once; only its SHA-256 is kept in ${tokenStorePath(dataDir)}; a running stella accepts it within ${(2 * TOKEN_STORE_POLL_MS) / 1000} s\n`);
    return 0;
  }
  if (sub === 'list') {
    if (args.length) throw new UsageError('usage: stella tokens list [--tenant T]');
    const only = tenantFlag(flags);
    const store = readTokenStore(dataDir);
    // Hashes only as a 12-hex prefix: enough to tell tokens apart, never a token.
    const rows = [
      ...configured.flatMap((t) => t.tokens.map((k) => ({ name: k.name ?? '', tenant: t.id, scopes: k.scopes, source, created: '', revoked: '', sha256_prefix: k.sha256.slice(0, 12) }))),
      ...store.tokens.map((k) => ({ name: k.name, tenant: k.tenant, scopes: k.scopes, source: 'store', created: k.created, revoked: k.revoked ?? '', sha256_prefix: k.sha256.slice(0, 12) })),
    ].filter((r) => !only || r.tenant === only);
    if (rows.length === 0) { io.stderr(`no tokens${only ? ` for tenant "${only}"` : ''}\n`); return 1; }
    io.stdout(render(rows, format, () => table([['TENANT', 'NAME', 'SCOPES', 'SOURCE', 'CREATED', 'REVOKED', 'SHA256'],
      ...rows.map((r) => [r.tenant, r.name || '-', r.scopes.join(','), r.source, r.created || '-', r.revoked || '-', `${r.sha256_prefix}…`])])));
    return 0;
  }
  if (sub === 'revoke') {
    const name = args[0];
    const tenant = tenantFlag(flags);
    if (!name || args.length > 1 || !tenant) throw new UsageError('usage: stella tokens revoke <name> --tenant T');
    let store;
    try { store = updateTokenStore(dataDir, (s) => { const next = revokeToken(s, tenant, name); return { store: next, result: next }; }); } catch (err) {
      if (err instanceof RevokeNotFound) { io.stderr(`stella: ${err.message}\n`); return 1; }
      throw err;
    }
    const revoked = store.tokens.find((t) => t.tenant === tenant && t.name === name)!.revoked!;
    io.stdout(render({ name, tenant, revoked }, format, () => `revoked ${tenant}/${name}\n`));
    io.stderr(`a running stella refuses it within ${(2 * TOKEN_STORE_POLL_MS) / 1000} s (polls ${tokenStorePath(dataDir)})\n`);
    return 0;
  }
  throw new UsageError('usage: stella tokens create|list|revoke (see "stella help")');
}
