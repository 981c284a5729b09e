// First-run conveniences for the embedded default: when no tenants are configured, a demo tenant
// with a generated token is created under the data dir. Only the token's hash is stored; the token
// itself is returned once so the caller can print it.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SCOPES, sha256Hex, type TenantConfig } from './tenancy.ts';

export interface DemoTenant { tenants: TenantConfig[]; newToken: string | undefined; file: string }

/** The demo tenant if `stella run` created one under `dataDir` (never creates it). */
export function readDemoTenant(dataDir: string): TenantConfig[] | undefined {
  const file = path.join(dataDir, 'demo-tenant.json');
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) as TenantConfig[] : undefined;
}

export function ensureDemoTenant(dataDir: string, tenantId = 'demo'): DemoTenant {
  const file = path.join(dataDir, 'demo-tenant.json');
  if (existsSync(file)) return { tenants: JSON.parse(readFileSync(file, 'utf8')) as TenantConfig[], newToken: undefined, file };
  mkdirSync(dataDir, { recursive: true });
  const token = `stella_demo_${randomBytes(24).toString('base64url')}`;
  const tenants: TenantConfig[] = [{ id: tenantId, tokens: [{ sha256: sha256Hex(token), scopes: [...SCOPES], name: 'demo' }] }];
  writeFileSync(file, JSON.stringify(tenants, null, 2) + '\n', { mode: 0o600 });
  return { tenants, newToken: token, file };
}
