// The token store's pure rules (create / revoke / merge), its lock, and TokenRegistry.replace being
// all or nothing; the CLI against a running stella is in test/cli/stella-tokens.test.ts.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { createToken, mergeTenants, readTokenStore, RevokeNotFound, revokeToken, storeTenants, tokenStorePath, TokenStoreError, updateTokenStore, type TokenStore } from '../../lib/token-store.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'token-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const empty = (): TokenStore => ({ version: 1, tenants: [{ id: 'acme', created: 'x' }], tokens: [] });

describe('token store', () => {
  it('creates a token whose hash alone is stored, and a revoked one leaves the tenants it feeds', () => {
    const { store, token, entry } = createToken(empty(), { tenant: 'acme', name: 'svc', scopes: ['otlp:write', 'obs:read#tenant/globex'], known: [] });
    expect(entry.sha256).toBe(sha256Hex(token));
    expect(JSON.stringify(store)).not.toContain(token);
    const reg = new TokenRegistry(storeTenants(store));
    expect([...reg.authenticate(`Bearer ${token}`).grants].sort()).toEqual(['obs:read#tenant/globex', 'otlp:write#tenant/acme']);
    const revoked = revokeToken(store, 'acme', 'svc');
    reg.replace(storeTenants(revoked));
    expect(() => reg.authenticate(`Bearer ${token}`)).toThrow('unknown bearer token');
    expect(() => revokeToken(store, 'acme', 'other')).toThrow(RevokeNotFound);
  });

  it('refuses unknown scopes, tenants, duplicate names, and tenants nobody added', () => {
    expect(() => createToken(empty(), { tenant: 'acme', name: 'a', scopes: ['otlp:read'], known: [] })).toThrow('unknown scope "otlp:read"');
    expect(() => createToken(empty(), { tenant: 'acme', name: 'a', scopes: [], known: [] })).toThrow('at least one scope');
    expect(() => createToken(empty(), { tenant: 'globex', name: 'a', scopes: ['admin'], known: [] })).toThrow('unknown tenant "globex"');
    expect(() => createToken(empty(), { tenant: 'acme', name: 'bad name', scopes: ['admin'], known: [] })).toThrow('token name must match');
    const known = [{ id: 'acme', tokens: [{ sha256: 'a'.repeat(64), scopes: ['admin'], name: 'ops' }] }];
    expect(() => createToken(empty(), { tenant: 'acme', name: 'ops', scopes: ['admin'], known })).toThrow('already has a token named "ops"');
  });

  it('merges store tokens into a config tenant of the same id', () => {
    const merged = mergeTenants([{ id: 'acme', tokens: [{ sha256: 'a'.repeat(64), scopes: ['admin'] }] }],
      [{ id: 'acme', tokens: [{ sha256: 'b'.repeat(64), scopes: ['obs:read'] }] }, { id: 'globex', tokens: [] }]);
    expect(merged.map((t) => [t.id, t.tokens.length])).toEqual([['acme', 2], ['globex', 0]]);
  });

  it('TokenRegistry.replace keeps the tokens in force when the new set is bad', () => {
    const reg = new TokenRegistry([{ id: 'acme', tokens: [{ sha256: sha256Hex('t1'), scopes: ['admin'] }] }]);
    expect(() => reg.replace([{ id: 'acme', tokens: [{ sha256: sha256Hex('t2'), scopes: ['admin'] }, { sha256: sha256Hex('t2'), scopes: ['admin'] }] }])).toThrow('configured twice');
    expect(reg.authenticate('Bearer t1').tenantId).toBe('acme');
    expect(() => reg.authenticate('Bearer t2')).toThrow('unknown bearer token');
  });

  it('writes 0600 under a lock; a held lock makes a writer wait, then give up with a clear error', () => {
    updateTokenStore(dir, () => ({ store: empty(), result: undefined }));
    expect(statSync(tokenStorePath(dir)).mode & 0o777).toBe(0o600);
    expect(readTokenStore(dir).tenants.map((t) => t.id)).toEqual(['acme']);
    const lock = `${tokenStorePath(dir)}.lock`;
    writeFileSync(lock, '');
    expect(() => updateTokenStore(dir, (s) => ({ store: { ...s, tenants: [] }, result: 1 }), 200)).toThrow(TokenStoreError);
    expect(readTokenStore(dir).tenants.map((t) => t.id)).toEqual(['acme']);
    rmSync(lock);
    updateTokenStore(dir, (s) => ({ store: { ...s, tenants: [] }, result: 1 }));
    expect(readTokenStore(dir).tenants).toEqual([]);
    expect(existsSync(lock)).toBe(false);
  });

  it('a malformed store is an error naming the file, not an empty store', () => {
    writeFileSync(tokenStorePath(dir), '{"version": 1, "tenants": [], "tokens": [{"tenant": "acme", "sha256": "zz", "scopes": []}]}');
    expect(() => readTokenStore(dir)).toThrow(/tokens\.json: each token needs a 64-hex sha256/);
    expect(readFileSync(tokenStorePath(dir), 'utf8')).toContain('zz');
  });
});
