// Every `stella` command hands all of its output to a pipe before it exits. The reader here waits
// before reading, as a busy `| cat` or `| jq` does, so most of a multi-MB output is still in the
// process when the command is done; process.exit() at that point used to drop all but 64-128 KiB.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { createKeyFileIfAbsent } from '../../processors/evidence/tenant-keys.ts';

const root = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'stella-flush-'));

/** Run stella with stdout and stderr on pipes nobody reads for `stallMs`, then read them to the end. */
function stellaThroughSlowPipe(args: string[], opts: { stdinFile?: string; env?: Record<string, string>; stallMs?: number } = {}) {
  return new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'cli/stella.ts'), ...args], {
      cwd: root, env: { ...process.env, STELLA_LOG_LEVEL: 'silent', ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    if (opts.stdinFile) child.stdin.end(readFileSync(opts.stdinFile)); else child.stdin.end();
    child.stdout.pause();
    const out: Buffer[] = [];
    let err = '';
    child.stderr.on('data', (c: Buffer) => { err += c.toString('utf8'); });
    setTimeout(() => { child.stdout.on('data', (c: Buffer) => out.push(c)); child.stdout.resume(); }, opts.stallMs ?? 1500);
    child.on('error', reject);
    // 'close' (not 'exit'): every byte the child wrote has been read.
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}

describe('stella commands flush stdout before they exit (through a pipe)', () => {
  it('scrub: 20,000 JSON lines (~6 MB out) arrive whole', async () => {
    const n = 20_000;
    const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{
      traceId: '5b8aa5a2d2c872e8321cf37308d69df2', spanId: '051581bf3cb55c13', name: `op ${i} mail bob@example.org` }] }] }] }));
    const input = path.join(tmp, 'big.jsonl');
    writeFileSync(input, lines.join('\n') + '\n');
    const r = await stellaThroughSlowPipe(['scrub'], { stdinFile: input });
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(4 * 1024 * 1024);
    const out = r.stdout.toString('utf8').trimEnd().split('\n');
    expect(out).toHaveLength(n);
    // The last line is the last input line, scrubbed: nothing was cut anywhere.
    expect(JSON.parse(out[n - 1]!).resourceSpans[0].scopeSpans[0].spans[0].name).toBe(`op ${n - 1} mail [REDACTED:email]`);
  }, 90_000);

  it('slo rules: 250 SLOs (~2 MB of YAML) arrive whole and parse', async () => {
    const slos = Array.from({ length: 250 }, (_, i) => ({ name: `svc-${i}-availability`, tenant: 'acme', service: `svc-${i}`,
      objective: 0.999, sli: { type: 'availability', spans: { name: `GET /svc/${i}` } } }));
    const file = path.join(tmp, 'slos.yaml');
    writeFileSync(file, YAML.stringify({ version: 1, slos }));
    const r = await stellaThroughSlowPipe(['slo', 'rules', '--slo-config', file]);
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(1.5 * 1024 * 1024);
    const doc = YAML.parse(r.stdout.toString('utf8'), { maxAliasCount: -1 }) as { groups: { name: string }[] };
    expect(doc.groups.length).toBeGreaterThan(0);
    expect(r.stdout.toString('utf8')).toContain('svc-249-availability');
  }, 90_000);

  it('keys rotate --output json: 8,000 tenants\' keys (~2 MB with their files) arrive whole and parse', async () => {
    const dataDir = path.join(tmp, 'keys');
    const cfgFile = path.join(tmp, 'many-tenants.yaml');
    const n = 8_000; // each entry names the tenant's key and pending files too
    // Per-tenant keys: each tenant's own key file, as the runner leaves it (one key copied: this test is about stdout).
    const keyDir = path.join(dataDir, 'evidence-keys');
    mkdirSync(keyDir, { recursive: true });
    await createKeyFileIfAbsent(path.join(keyDir, 'tenant-0.pem'));
    for (let i = 1; i < n; i++) copyFileSync(path.join(keyDir, 'tenant-0.pem'), path.join(keyDir, `tenant-${i}.pem`));
    writeFileSync(cfgFile, YAML.stringify({ dataDir, tenants: Array.from({ length: n }, (_, i) => ({ id: `tenant-${i}`, tokens: [] })) }));
    const r = await stellaThroughSlowPipe(['keys', 'rotate', '--output', 'json'], { env: { STELLA_CONFIG: cfgFile } });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(1.5 * 1024 * 1024);
    const doc = JSON.parse(r.stdout.toString('utf8')) as { keys: { tenant: string }[] };
    expect(doc.keys).toHaveLength(n);
  }, 90_000);
});
