// Per-tenant signing keys (issue 12 item 2): each tenant's log is signed by its own Ed25519 key,
// so one tenant's key never vouches for another's log. The runner talks to keys only through
// `TenantKeyProvider`, which a KMS/HSM-backed provider can implement (keys created, rotated and
// held there; note that `Signer.sign` is synchronous today, so a remote signer needs a local
// signing session or an async variant of the seal path).
//
// `FileTenantKeys`: `<keyDir>/<tenant>.pem` (Ed25519 PKCS#8, 0600, created with O_EXCL on first
// use), a rotation request `stella keys rotate --tenant T` as `<keyDir>/<tenant>.pem.next`
// (keys.ts writePendingKey), promoted once the tenant's log holds the rotation. A log begun under
// the former shared key (`legacyKeyFile`) continues: the runner opens it with that key and rotates
// it to the tenant's own key with a recorded rotation entry.
import { generateKeyPairSync } from 'node:crypto';
import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { logger } from '../../lib/log.ts';
import { validateTenantId } from '../../lib/tenancy.ts';
import { loadSigningKey, pendingKeyFile, promotePendingKey } from './keys.ts';
import type { Signer } from './note.ts';

const log = logger('evidence');

export interface TenantKeyProvider {
  /** The tenant's own signing key (created on first use), named `name` (the log origin). */
  current(tenant: string, name: string): Promise<Signer>;
  /** The key a rotation request asks for, if one is pending. */
  pending(tenant: string, name: string): Promise<Signer | undefined>;
  /** The tenant's log now holds the pending key: make it the tenant's current key. */
  promote(tenant: string): Promise<void>;
  /** A key the tenant's log may still be on from before per-tenant keys (continued by a rotation). */
  legacy(tenant: string, name: string): Promise<Signer | undefined>;
}

export const tenantKeyFile = (keyDir: string, tenant: string): string => {
  const bad = validateTenantId(tenant);
  if (bad) throw new Error(bad);
  return path.join(keyDir, `${tenant}.pem`);
};

/** Create an Ed25519 PKCS#8 key file (mode 0600) unless one exists; true when created. Never replaces a file. */
export async function createKeyFileIfAbsent(file: string): Promise<boolean> {
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  let fh;
  try {
    fh = await fsp.open(file, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    await fh.writeFile(generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
    await fh.sync();
    await fh.chmod(0o600);
  } finally { await fh.close(); }
  return true;
}

export class FileTenantKeys implements TenantKeyProvider {
  private readonly currentCache = new Map<string, Promise<Signer>>();

  constructor(readonly keyDir: string, readonly legacyKeyFile?: string) {}

  fileOf(tenant: string): string { return tenantKeyFile(this.keyDir, tenant); }

  current(tenant: string, name: string): Promise<Signer> {
    const key = `${tenant}\u0000${name}`;
    let p = this.currentCache.get(key);
    if (!p) {
      p = (async () => {
        const file = this.fileOf(tenant);
        if (await createKeyFileIfAbsent(file)) log.warn({ tenant_id: tenant, file }, 'created the tenant\'s evidence signing key (mode 0600)');
        return loadSigningKey(file, name);
      })();
      p.catch(() => this.currentCache.delete(key));
      this.currentCache.set(key, p);
    }
    return p;
  }

  async pending(tenant: string, name: string): Promise<Signer | undefined> {
    const next = pendingKeyFile(this.fileOf(tenant));
    if (!(await fsp.stat(next).then(() => true, () => false))) return undefined;
    return loadSigningKey(next, name);
  }

  async promote(tenant: string): Promise<void> {
    await promotePendingKey(this.fileOf(tenant));
    for (const k of [...this.currentCache.keys()]) if (k.startsWith(`${tenant}\u0000`)) this.currentCache.delete(k);
  }

  async legacy(_tenant: string, name: string): Promise<Signer | undefined> {
    if (!this.legacyKeyFile || !(await fsp.stat(this.legacyKeyFile).then(() => true, () => false))) return undefined;
    return loadSigningKey(this.legacyKeyFile, name);
  }
}
