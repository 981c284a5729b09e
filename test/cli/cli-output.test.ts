// What a script sees from `stella`: stdout holds only the command's output (logs go to stderr), and
// the common failures a user meets say what happened and what to do, with their documented exit codes.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createKeyFileIfAbsent } from '../../processors/evidence/tenant-keys.ts';

const root = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'stella-cli-out-'));
function stella(args: string[], env: Record<string, string> = {}) {
  // STELLA_LOG_LEVEL=info: the log lines a user would get are on, so any of them on stdout shows.
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'cli/stella.ts'), ...args], {
    cwd: root, input: '', encoding: 'utf8', env: { ...process.env, STELLA_LOG_LEVEL: 'info', ...env }, timeout: 90_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const holders: number[] = [];
afterAll(() => { for (const pid of holders) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });

/** A tenant with an evidence log and its own signing key, as the runner leaves them (per-tenant keys). */
async function withTenantKey(dataDir: string, tenant = 'acme'): Promise<void> {
  mkdirSync(path.join(dataDir, 'evidence', 'logs', 'tenants', tenant), { recursive: true });
  await createKeyFileIfAbsent(path.join(dataDir, 'evidence-keys', `${tenant}.pem`));
}

describe('stella: stdout is only the output', () => {
  it('keys rotate --output json prints one JSON document on stdout; its log line goes to stderr', async () => {
    const dataDir = path.join(tmp, 'keys');
    await withTenantKey(dataDir);
    const r = stella(['keys', 'rotate', '--output', 'json'], { STELLA_DATA_DIR: dataDir });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { status: string; keys: { pending_file: string }[] };
    expect(doc.status).toBe('pending');
    expect(r.stdout).not.toContain('"level"');
    expect(r.stderr).toContain('evidence signing key rotation requested');
  });

  it('keys rotate (table) has no log line on stdout either', async () => {
    const dataDir = path.join(tmp, 'keys-table');
    await withTenantKey(dataDir);
    const r = stella(['keys', 'rotate'], { STELLA_DATA_DIR: dataDir });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^new signing key for tenant acme written to /);
    expect(r.stdout).not.toContain('"level"');
  });
});

describe('stella: failures say what to do', () => {
  it('forensic verify of a missing file: exit 1, "no such bundle file", not BUNDLE_CORRUPT', () => {
    const missing = path.join(tmp, 'no-such-bundle.tar.gz');
    for (const output of ['table', 'json']) {
      const r = stella(['forensic', 'verify', missing, '--output', output]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`stella: no such bundle file: ${missing}\n`);
      expect(r.stdout).toBe('');
    }
    const dir = stella(['forensic', 'verify', tmp]);
    expect(dir.code).toBe(2);
    expect(dir.stderr).toContain('is a directory');
  });

  it('db migrate while another process has the embedded ClickHouse open: names it and what to do, exit 4', async () => {
    const dataDir = path.join(tmp, 'db');
    const script = path.join(tmp, 'hold-chdb.mts');
    writeFileSync(script, `import { openStore } from ${JSON.stringify(path.join(root, 'lib/store/index.ts'))};
const s = await openStore({ dataPath: ${JSON.stringify(path.join(dataDir, 'chdb'))} });
await s.ping();
process.stdout.write('held\\n');
setInterval(() => {}, 1000);
`);
    const holder = spawn(process.execPath, ['--import', 'tsx', script], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    holders.push(holder.pid!);
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (c: Buffer) => { if (c.toString().includes('held')) resolve(); });
      holder.on('exit', (code) => reject(new Error(`holder exited ${code}`)));
    });
    const r = stella(['db', 'migrate'], { STELLA_DATA_DIR: dataDir });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`is in use by process ${holder.pid}`);
    expect(r.stderr).toContain('stop the pipeline and run "stella db migrate" again');
    expect(r.stderr).not.toContain('Another server instance');
    expect(r.stdout).toBe('');
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('close', resolve));
    // Once the holder is gone the same command works.
    const ok = stella(['db', 'migrate', '--output', 'json'], { STELLA_DATA_DIR: dataDir });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toHaveProperty('applied');
  }, 120_000);
});
