// A development signing key: created on first run under the data directory, mode 0600, never
// printed. Production deployments configure their own key file (docs/evidence.md "Keys").
import { generateKeyPairSync } from 'node:crypto';
import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { logger } from '../../lib/log.ts';

const log = logger('evidence');

export const DEV_KEY_FILE = 'evidence-signing-key.pem';

/** Path of `<dataDir>/evidence-signing-key.pem`, creating an Ed25519 PKCS#8 key (0600) if absent. */
export async function ensureDevSigningKey(dataDir: string): Promise<{ file: string; created: boolean }> {
  const file = path.join(dataDir, DEV_KEY_FILE);
  await fsp.mkdir(dataDir, { recursive: true });
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  let fh;
  try {
    fh = await fsp.open(file, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return { file, created: false };
    throw e;
  }
  try { await fh.writeFile(pem); await fh.sync(); await fh.chmod(0o600); } finally { await fh.close(); }
  log.warn({ file }, 'created a development evidence signing key; configure a real key file for production');
  return { file, created: true };
}
