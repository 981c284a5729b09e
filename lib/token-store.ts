// The token store: tenants and tokens managed by `stella tenants|tokens` beside the config file's.
// `<dataDir>/tokens.json` (mode 0600) holds only SHA-256 hashes of tokens, never a token. The CLI
// rewrites it atomically (temp file + rename); a running `stella run` polls it and swaps its
// TokenRegistry (watchTokenStore), so a created token works and a revoked one is refused within
// TOKEN_STORE_POLL_MS + one request, without a restart.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, unwatchFile, watchFile, writeFileSync } from 'node:fs';
import path from 'node:path';
import { acquireFileLockSync, type FileLock, FileLockTimeout } from './file-lock.ts';
import { parseGrant, sha256Hex, validateTenantId, type TenantConfig } from './tenancy.ts';

export const TOKEN_STORE_FILE = 'tokens.json';
/** How often a running process looks at the store; a revoked token is refused within about this. */
export const TOKEN_STORE_POLL_MS = 1000;
/** A token store lock older than this is a crashed writer's (an update takes milliseconds). */
const TOKEN_STORE_LOCK_EXPIRY_MS = 30_000;
const TOKEN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface StoredToken { name: string; tenant: string; sha256: string; scopes: string[]; created: string; revoked?: string }
export interface TokenStore { version: 1; tenants: { id: string; created: string }[]; tokens: StoredToken[] }

export class TokenStoreError extends Error {}
/** `revokeToken` of a name the store does not have. */
export class RevokeNotFound extends TokenStoreError {}

export const tokenStorePath = (dataDir: string): string => path.join(dataDir, TOKEN_STORE_FILE);

/** Reads and validates the store; a missing file is an empty store. */
export function readTokenStore(dataDir: string): TokenStore {
  const file = tokenStorePath(dataDir);
  if (!existsSync(file)) return { version: 1, tenants: [], tokens: [] };
  let v: unknown;
  try { v = JSON.parse(readFileSync(file, 'utf8')); } catch (err) { throw new TokenStoreError(`token store ${file} is not valid JSON: ${(err as Error).message}`); }
  const s = v as Partial<TokenStore>;
  if (!s || s.version !== 1 || !Array.isArray(s.tenants) || !Array.isArray(s.tokens)) throw new TokenStoreError(`token store ${file} must be {version: 1, tenants: [...], tokens: [...]}`);
  for (const t of s.tenants) {
    const bad = validateTenantId(String(t?.id));
    if (bad) throw new TokenStoreError(`token store ${file}: tenant: ${bad}`);
  }
  for (const t of s.tokens) {
    if (!t || typeof t.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(t.sha256) || !Array.isArray(t.scopes)) throw new TokenStoreError(`token store ${file}: each token needs a 64-hex sha256 and scopes`);
    const bad = validateTenantId(String(t.tenant));
    if (bad) throw new TokenStoreError(`token store ${file}: token tenant: ${bad}`);
    for (const sc of t.scopes) {
      try { parseGrant(String(sc), t.tenant); } catch (err) { throw new TokenStoreError(`token store ${file}: token "${t.name}": ${(err as Error).message}`); }
    }
  }
  return s as TokenStore;
}

/** Writes the store atomically with mode 0600: readers see the old or the new file, never half. */
export function writeTokenStore(dataDir: string, store: TokenStore): void {
  mkdirSync(dataDir, { recursive: true });
  const file = tokenStorePath(dataDir);
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, JSON.stringify(store, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600); // the umask cannot widen it, but a pre-existing file's mode would be kept
  renameSync(tmp, file);
}

/**
 * Read-modify-write under `<store>.lock` (lib/file-lock.ts), so that two `stella tokens` run at
 * once do not lose one's change. The lock expires: one older than 30 s (or whose process is gone)
 * is a crashed writer's and is taken over, by one waiter only.
 */
export function updateTokenStore<T>(dataDir: string, change: (store: TokenStore) => { store: TokenStore; result: T }, waitMs = 5000): T {
  mkdirSync(dataDir, { recursive: true });
  const lock = `${tokenStorePath(dataDir)}.lock`;
  let held: FileLock;
  try {
    held = acquireFileLockSync(lock, { maxAgeMs: TOKEN_STORE_LOCK_EXPIRY_MS, waitMs, mode: 0o600 });
  } catch (err) {
    if (err instanceof FileLockTimeout) throw new TokenStoreError(`token store is locked by another stella, ${err.holder} (${lock}); retry, or remove the file if no stella tokens/tenants command is running`);
    throw err;
  }
  try {
    const { store, result } = change(readTokenStore(dataDir));
    writeTokenStore(dataDir, store);
    return result;
  } finally {
    held.releaseSync();
  }
}

/** The store's tenants with their unrevoked tokens, in the shape of the config's `tenants`. */
export function storeTenants(store: TokenStore): TenantConfig[] {
  const ids = [...new Set([...store.tenants.map((t) => t.id), ...store.tokens.map((t) => t.tenant)])];
  return ids.map((id) => ({ id, tokens: store.tokens.filter((t) => t.tenant === id && !t.revoked)
    .map((t) => ({ sha256: t.sha256, scopes: t.scopes, name: t.name })) }));
}

/** Config tenants plus store tenants; a tenant in both gets the tokens of both. */
export function mergeTenants(base: readonly TenantConfig[], extra: readonly TenantConfig[]): TenantConfig[] {
  const out = base.map((t) => ({ ...t, tokens: [...t.tokens] }));
  for (const t of extra) {
    const same = out.find((o) => o.id === t.id);
    if (same) same.tokens.push(...t.tokens);
    else out.push({ ...t, tokens: [...t.tokens] });
  }
  return out;
}

export function addTenant(store: TokenStore, id: string, known: readonly string[], now = new Date()): TokenStore {
  const bad = validateTenantId(id);
  if (bad) throw new TokenStoreError(`tenant: ${bad}`);
  if (known.includes(id) || store.tenants.some((t) => t.id === id)) throw new TokenStoreError(`tenant "${id}" already exists`);
  return { ...store, tenants: [...store.tenants, { id, created: now.toISOString() }] };
}

/** Adds a token for `tenant` (which must be known); returns the new store and the token, shown once. */
export function createToken(store: TokenStore, o: { tenant: string; name: string; scopes: string[]; known: readonly TenantConfig[] }, now = new Date()): { store: TokenStore; token: string; entry: StoredToken } {
  const bad = validateTenantId(o.tenant);
  if (bad) throw new TokenStoreError(`tenant: ${bad}`);
  const tenantIds = new Set([...o.known.map((t) => t.id), ...store.tenants.map((t) => t.id)]);
  if (!tenantIds.has(o.tenant)) throw new TokenStoreError(`unknown tenant "${o.tenant}": add it first with "stella tenants add ${o.tenant}"`);
  if (!TOKEN_NAME_PATTERN.test(o.name)) throw new TokenStoreError(`token name must match ${TOKEN_NAME_PATTERN}`);
  const taken = store.tokens.some((t) => t.tenant === o.tenant && t.name === o.name)
    || o.known.some((t) => t.id === o.tenant && t.tokens.some((k) => k.name === o.name));
  if (taken) throw new TokenStoreError(`tenant "${o.tenant}" already has a token named "${o.name}"`);
  if (o.scopes.length === 0) throw new TokenStoreError('--scopes needs at least one scope');
  for (const s of o.scopes) parseGrant(s, o.tenant); // throws naming the unknown scope or binding
  const token = `stella_${o.tenant}_${randomBytes(24).toString('base64url')}`;
  const entry: StoredToken = { name: o.name, tenant: o.tenant, sha256: sha256Hex(token), scopes: o.scopes, created: now.toISOString() };
  return { store: { ...store, tokens: [...store.tokens, entry] }, token, entry };
}

export function revokeToken(store: TokenStore, tenant: string, name: string, now = new Date()): TokenStore {
  const i = store.tokens.findIndex((t) => t.tenant === tenant && t.name === name);
  if (i < 0) throw new RevokeNotFound(`tenant "${tenant}" has no token named "${name}" in the token store (tokens of the config file are removed there)`);
  if (store.tokens[i]!.revoked) return store;
  const tokens = store.tokens.slice();
  tokens[i] = { ...tokens[i]!, revoked: now.toISOString() };
  return { ...store, tokens };
}

/**
 * Calls `reload` with the store's tenants each time the file changes (polled: rename-replaced
 * files and network filesystems defeat fs.watch). A store that fails to read is reported via
 * `onError` and the previous tokens stay in force.
 */
export function watchTokenStore(dataDir: string, reload: (tenants: TenantConfig[]) => void, onError: (err: Error) => void): () => void {
  const file = tokenStorePath(dataDir);
  const listener = (cur: { mtimeMs: number; size: number; ino: number }, prev: { mtimeMs: number; size: number; ino: number }) => {
    if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size && cur.ino === prev.ino) return;
    try { reload(storeTenants(readTokenStore(dataDir))); } catch (err) { onError(err as Error); }
  };
  watchFile(file, { interval: TOKEN_STORE_POLL_MS, persistent: false }, listener);
  return () => unwatchFile(file, listener);
}
