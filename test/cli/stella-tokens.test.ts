// `stella tenants` / `stella tokens` as a user runs them (real processes: exit code, stdout, stderr)
// against a running `stella run --only receiver` on the test broker: a token created by the CLI is
// accepted by the receiver without a restart, refused (401) within the documented 2 s after
// `tokens revoke`; the store is mode 0600 and holds no token; bad scopes and tenants exit 2 naming
// the rule; a config-file token keeps working throughout.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipeline, type RunningPipeline } from '../../cli/run.ts';
import { loadConfig } from '../../lib/config.ts';
import { ensureDemoTenant } from '../../lib/bootstrap.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { mergeTenants, readTokenStore, storeTenants } from '../../lib/token-store.ts';
import { kafkaEnv, uniq } from '../support/kafka.ts';
import { runStellaCli, type StellaResult } from '../support/stella.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-tokens-'));
const cfgFile = path.join(dir, 'stella.json');
const CONFIG_TOKEN = `acme-config-${randomBytes(8).toString('hex')}`;
let pipeline: RunningPipeline;
let receiver: string;

function stella(args: string[], o: { dataDir?: string; config?: string | null } = {}): Promise<StellaResult> {
  const env: Record<string, string> = { ...process.env as Record<string, string>, STELLA_LOG_LEVEL: 'silent', STELLA_DATA_DIR: o.dataDir ?? dir };
  if (o.config === null) delete env.STELLA_CONFIG; else env.STELLA_CONFIG = o.config ?? cfgFile;
  return runStellaCli(args, env);
}

const span = () => ({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'svc' } }] }, scopeSpans: [{ spans: [{
  traceId: randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex'), name: 'GET /x', kind: 2,
  startTimeUnixNano: `${BigInt(Date.now()) * 1_000_000n}`, endTimeUnixNano: `${BigInt(Date.now() + 1) * 1_000_000n}` }] }] }] });
const post = async (token: string): Promise<number> =>
  (await fetch(`${receiver}/v1/traces`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(span()) })).status;

/** Polls until `post(token)` answers `status`; returns how long it took. */
async function statusWithin(token: string, status: number, ms: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    const s = await post(token);
    if (s === status) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`still ${s} after ${ms} ms, wanted ${status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  const p = uniq('tok');
  // One config file for the running stella and the CLI: the CLI knows the config's tenants.
  writeFileSync(cfgFile, JSON.stringify({
    dataDir: dir,
    receiver: { grpcPort: 0, httpPort: 0 }, admin: { port: 0 }, api: { port: 0 },
    kafka: { partitions: 1, topics: Object.fromEntries(['spans', 'metrics', 'logs', 'spansClean', 'metricsClean', 'logsClean', 'dlq', 'sloEvents', 'timelineEvents'].map((k) => [k, `${p}_${k}`])) },
    tenants: [{ id: 'acme', tokens: [{ sha256: sha256Hex(CONFIG_TOKEN), scopes: ['otlp:write'], name: 'acme-config' }] }],
  }));
  const cfg = loadConfig({ ...process.env, ...kafkaEnv() }, cfgFile);
  pipeline = await runPipeline(cfg, new Set(['receiver']), () => undefined);
  receiver = `http://127.0.0.1:${pipeline.ports.http}`;
}, 180_000);

afterAll(async () => {
  await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('stella tenants / tokens against a running stella', () => {
  it('a created token is accepted without restart and refused within 2 s of its revocation', async () => {
    expect(await post(CONFIG_TOKEN)).toBe(200);
    const added = await stella(['tenants', 'add', 'globex']);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toBe('globex\n');

    const created = await stella(['tokens', 'create', '--tenant', 'globex', '--scopes', 'otlp:write,obs:read', '--name', 'ingest', '--output', 'json']);
    expect(created.code, created.stderr).toBe(0);
    const doc = JSON.parse(created.stdout) as { token: string; sha256: string; tenant: string; name: string; scopes: string[] };
    expect(doc).toMatchObject({ tenant: 'globex', name: 'ingest', scopes: ['otlp:write', 'obs:read'] });
    expect(doc.sha256).toBe(sha256Hex(doc.token));

    // The store: 0600, the hash and no token.
    const file = path.join(dir, 'tokens.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const stored = readFileSync(file, 'utf8');
    expect(stored).toContain(doc.sha256);
    expect(stored).not.toContain(doc.token);

    await statusWithin(doc.token, 200, 5000);

    // list shows the token's name and a hash prefix, never the token or the full hash.
    const listed = await stella(['tokens', 'list', '--tenant', 'globex']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('ingest');
    expect(listed.stdout).toContain(doc.sha256.slice(0, 12));
    expect(listed.stdout).not.toContain(doc.sha256);
    expect(listed.stdout).not.toContain(doc.token);

    const revoked = await stella(['tokens', 'revoke', 'ingest', '--tenant', 'globex']);
    expect(revoked.code, revoked.stderr).toBe(0);
    const since = Date.now();
    await statusWithin(doc.token, 401, 2000 + 500);
    expect(Date.now() - since).toBeLessThanOrEqual(2500);
    // The config file's token is untouched by the reload.
    expect(await post(CONFIG_TOKEN)).toBe(200);
    const after = await stella(['tokens', 'list', '--tenant', 'globex', '--output', 'json']);
    expect((JSON.parse(after.stdout) as { revoked: string }[])[0]!.revoked).not.toBe('');
  }, 120_000);

  it('a store that fails to read is refused and the tokens in force stay', async () => {
    const created = await stella(['tokens', 'create', '--tenant', 'acme', '--scopes', 'otlp:write', '--output', 'json']);
    expect(created.code, created.stderr).toBe(0);
    const { token } = JSON.parse(created.stdout) as { token: string };
    await statusWithin(token, 200, 5000);
    const file = path.join(dir, 'tokens.json');
    const good = readFileSync(file, 'utf8');
    writeFileSync(file, '{"version": 1, "tenants": [], "tokens": [{"tenant": "acme", "sha256": "zz", "scopes": []}]}');
    await new Promise((r) => setTimeout(r, 2500));
    expect(await post(token)).toBe(200);
    expect(await post(CONFIG_TOKEN)).toBe(200);
    writeFileSync(file, good, { mode: 0o600 });
  }, 120_000);

  it('bad scopes, tenants and names exit 2 naming the rule; an unknown token name exits 1', async () => {
    const scope = await stella(['tokens', 'create', '--tenant', 'acme', '--scopes', 'otlp:write,otlp:delete']);
    expect(scope.code).toBe(2);
    expect(scope.stderr).toContain('unknown scope "otlp:delete"');
    expect(scope.stdout).toBe('');
    const binding = await stella(['tokens', 'create', '--tenant', 'acme', '--scopes', 'obs:read#tenant/Bad!']);
    expect(binding.code).toBe(2);
    expect(binding.stderr).toContain('must be tenant/<tenant id>');
    const tenant = await stella(['tokens', 'create', '--tenant', 'Not_OK', '--scopes', 'otlp:write']);
    expect(tenant.code).toBe(2);
    expect(tenant.stderr).toContain('tenant id must match');
    const unknown = await stella(['tokens', 'create', '--tenant', 'initech', '--scopes', 'otlp:write']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown tenant "initech"');
    const badAdd = await stella(['tenants', 'add', '-x']);
    expect(badAdd.code).toBe(2);
    const dupAdd = await stella(['tenants', 'add', 'acme']);
    expect(dupAdd.code).toBe(2);
    expect(dupAdd.stderr).toContain('already exists');
    const missing = await stella(['tokens', 'revoke', 'nope', '--tenant', 'acme']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no token named "nope"');
  }, 120_000);
});

describe('a lost demo token', () => {
  it('is replaced by a token created for the demo tenant (stdout: the token alone)', async () => {
    const demoDir = mkdtempSync(path.join(os.tmpdir(), 'stella-demo-'));
    try {
      const demo = ensureDemoTenant(demoDir); // what a first `stella run` without tenants does
      const r = await stella(['tokens', 'create', '--tenant', 'demo', '--scopes', 'admin'], { dataDir: demoDir, config: null });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^stella_demo_[A-Za-z0-9_-]{32}\n$/);
      const token = r.stdout.trim();
      expect(r.stderr).toContain('shown once');
      expect(r.stderr).not.toContain(token);
      // The tenants `stella run` serves for this data dir: the demo tenant plus the store.
      const reg = new TokenRegistry(mergeTenants(demo.tenants, storeTenants(readTokenStore(demoDir))));
      const p = reg.authenticate(`Bearer ${token}`);
      expect(p.tenantId).toBe('demo');
      expect(p.grants.has('admin#tenant/demo')).toBe(true);
    } finally {
      rmSync(demoDir, { recursive: true, force: true });
    }
  }, 120_000);
});
