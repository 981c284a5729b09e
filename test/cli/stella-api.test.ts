// Every API-reading `stella` command as a user runs it (a real process: exit code, stdout, stderr)
// against `stella run` as wired: all parts in this process on the test broker, embedded ClickHouse
// and the evidence store under a temp data dir. OTLP goes in at the receiver; the commands read it
// back through the API in table, JSON and YAML, print the request's trace id on stderr, and fail
// with the documented exit codes (2 usage / malformed tenant, 3 missing scope or another tenant,
// 4 API unreachable, 1 nothing there). `keys rotate` rotates the running pipeline's evidence key,
// and a bundle spanning the rotation verifies offline.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../lib/node-flags.ts';
import YAML from 'yaml';
import { PARTS, runPipeline, type RunningPipeline } from '../../cli/run.ts';
import { buildConfig } from '../../lib/config.ts';
import { SCOPES, sha256Hex } from '../../lib/tenancy.ts';
import { createKeyFileIfAbsent } from '../../processors/evidence/tenant-keys.ts';
import { brokers, kafkaEnv, testAccess, uniq } from '../support/kafka.ts';
import { runStellaCli, type StellaResult } from '../support/stella.ts';

const root = path.resolve(import.meta.dirname, '../..');
const TOK = {
  admin: `acme-admin-${randomBytes(8).toString('hex')}`,
  obsRead: `acme-obs-read-${randomBytes(8).toString('hex')}`,
  evidenceOnly: `acme-evidence-read-${randomBytes(8).toString('hex')}`,
  globex: `globex-admin-${randomBytes(8).toString('hex')}`,
};
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-cli-api-'));
const TRACE = randomBytes(16).toString('hex');
const TRACE_LINE = /^trace_id: ([0-9a-f]{32})$/m;
let pipeline: RunningPipeline;
let traceEvents = 0;
let api: string;

/** `stella <args>` as a child process (async: the API it calls runs in this process). */
function stella(args: string[], o: { token?: string | null; env?: Record<string, string> } = {}): Promise<StellaResult> {
  const env: Record<string, string> = { ...process.env as Record<string, string>, STELLA_LOG_LEVEL: 'silent', STELLA_API_URL: api, STELLA_DATA_DIR: dir, ...o.env };
  if (o.token === null) delete env.STELLA_TOKEN; else env.STELLA_TOKEN = o.token ?? TOK.admin;
  return runStellaCli(args, env);
}

let lastSeen: unknown;
async function poll<T>(what: string, fn: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch((e: unknown) => { lastSeen = e; return undefined; });
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last seen: ${JSON.stringify(lastSeen)?.slice(0, 500)})`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

const auth = { authorization: `Bearer ${TOK.admin}` };
const ns = (ms: number) => `${BigInt(ms) * 1_000_000n}`;

beforeAll(async () => {
  const p = uniq('cli');
  const cfg = buildConfig({
    dataDir: dir,
    receiver: { grpcPort: 0, httpPort: 0 }, admin: { port: 0 }, api: { port: 0 },
    kafka: { partitions: 2, topics: Object.fromEntries(['spans', 'metrics', 'logs', 'spansClean', 'metricsClean', 'logsClean', 'dlq', 'sloEvents', 'timelineEvents'].map((k) => [k, `${p}_${k}`])) },
    tenants: [
      { id: 'acme', tokens: [
        { sha256: sha256Hex(TOK.admin), scopes: [...SCOPES], name: 'acme-admin' },
        { sha256: sha256Hex(TOK.obsRead), scopes: ['obs:read'], name: 'acme-viewer' },
        { sha256: sha256Hex(TOK.evidenceOnly), scopes: ['evidence:read'], name: 'acme-auditor' },
      ] },
      { id: 'globex', tokens: [{ sha256: sha256Hex(TOK.globex), scopes: [...SCOPES] }] },
    ],
    evidence: { sealEverySeconds: 1 },
    slo: { defaultCatalog: false, idleTick: '1s', lag: '1s', slos: [{ name: 'checkout-availability', tenant: 'acme', service: 'checkout', objective: 0.99,
      sli: { type: 'availability', spans: { name: 'POST /checkout', kind: 'server' } } }] },
  }, kafkaEnv());
  pipeline = await runPipeline(cfg, new Set(PARTS), () => undefined);
  api = `http://127.0.0.1:${pipeline.ports.api}`;
  const receiver = `http://127.0.0.1:${pipeline.ports.http}`;

  // 40 checkout requests five minutes ago (4 failed) in one trace, and a deploy event in that trace.
  const start = Date.now() - 5 * 60_000;
  const spans = Array.from({ length: 40 }, (_, i) => ({ traceId: TRACE, spanId: randomBytes(8).toString('hex'), name: 'POST /checkout', kind: 2,
    startTimeUnixNano: ns(start + i * 100), endTimeUnixNano: ns(start + i * 100 + 20 + i), status: { code: i % 10 === 0 ? 2 : 1 } }));
  const traces = { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] }, scopeSpans: [{ spans }] }] };
  const logs = { resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] },
    scopeLogs: [{ logRecords: [{ timeUnixNano: ns(start), eventName: 'deploy.finished', traceId: TRACE, spanId: spans[0]!.spanId, body: { stringValue: 'deployed v42' },
      attributes: [{ key: 'stella.resource.type', value: { stringValue: 'service' } }, { key: 'stella.resource.id', value: { stringValue: 'checkout' } }] }] }] }] };
  // Then a client span (not a request served: no golden signal) of now in another trace: it moves the
  // SLO processor's event-time watermark, so the minute five minutes ago closes.
  const tick = { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] }, scopeSpans: [{ spans: [{
    traceId: randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex'), name: 'GET /ping', kind: 3, startTimeUnixNano: ns(Date.now()), endTimeUnixNano: ns(Date.now() + 1) }] }] }] };
  for (const [signal, body] of [['traces', traces], ['logs', logs], ['traces', tick]] as const) {
    const r = await fetch(`${receiver}/v1/${signal}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(r.status).toBe(200);
  }
  // Wait until the spans are on the timeline, the golden signals closed, and the event sealed.
  await poll('spans of the trace', async () => {
    const b = await (await fetch(`${api}/obs/trace/${TRACE}`, { headers: auth })).json() as { spans: unknown[]; events: { kind: string }[] };
    lastSeen = { spans: b.spans?.length, events: b.events?.map((e) => e.kind) };
    // The deploy event, and one timeline event per failed span.
    if (b.spans.length !== 40 || !b.events.some((e) => e.kind === 'deploy.finished')) return undefined;
    traceEvents = b.events.length;
    return true;
  });
  await poll('golden signals', async () => {
    const b = await (await fetch(`${api}/obs/top?window_seconds=900`, { headers: auth })).json() as { totals: { requests: number } };
    lastSeen = b;
    return b.totals.requests === 40 ? true : undefined;
  });
  await poll('the event sealed', async () => {
    const r = await fetch(`${api}/evidence/snapshot`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'service', resource_id: 'checkout', case_id: 'warmup' }) });
    return r.status === 201 ? true : undefined;
  });
}, 300_000);

afterAll(async () => {
  await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

const traceIdOf = (stderr: string): string => {
  const m = TRACE_LINE.exec(stderr);
  expect(m, `stderr has a trace_id line: ${stderr}`).not.toBeNull();
  return m![1]!;
};

describe('stella obs top', () => {
  it('--once: a table of golden signals and lag per processor; the trace id on stderr', async () => {
    const r = await stella(['obs', 'top', '--once', '--window', '15']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^stella obs top — tenant acme — .* — last 15 min — trace_id [0-9a-f]{32}$/m);
    expect(r.stdout).toMatch(/^SERVICE\s+REQUESTS\s+RPS\s+ERRORS\s+ERROR%\s+P50\s+P95\s+P99$/m);
    expect(r.stdout).toMatch(/^checkout\s+40\s+0\.04\s+4\s+10\.00%/m);
    expect(r.stdout).toMatch(/^PROCESSOR\s+GROUP\s+LAG$/m);
    for (const p of ['scrub', 'timeline', 'evidence', 'slo']) expect(r.stdout).toMatch(new RegExp(`^${p}\\s+stella-${p}\\s+\\d+$`, 'm'));
    expect(r.stdout).not.toContain('\x1b['); // not a terminal: plain frames, no redraw codes
    expect(r.stdout).toContain(traceIdOf(r.stderr));
  });

  it('--output json --count 2: one JSON document per refresh, each with its own trace id', async () => {
    const r = await stella(['obs', 'top', '--output', 'json', '--count', '2', '--interval', '0.5', '--window', '15']);
    expect(r.code).toBe(0);
    const docs = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { tenant: string; services: { service: string; requests: number; errors: number }[]; lag: { status: string; groups: { processor: string; lag: number }[] } });
    expect(docs).toHaveLength(2);
    for (const d of docs) {
      expect(d.tenant).toBe('acme');
      expect(d.services).toEqual([expect.objectContaining({ service: 'checkout', requests: 40, errors: 4 })]);
      expect(d.lag.status).toBe('ok');
      expect(d.lag.groups.map((g) => g.processor)).toEqual(['scrub', 'timeline', 'evidence', 'slo']);
    }
    const ids = [...r.stderr.matchAll(/^trace_id: ([0-9a-f]{32})$/gm)].map((m) => m[1]);
    expect(ids).toHaveLength(2);
    expect(ids[0]).not.toBe(ids[1]);
  });

  it('--output yaml: a YAML document; a token without admin sees no lag', async () => {
    const r = await stella(['obs', 'top', '--once', '--output', 'yaml', '--window', '15'], { token: TOK.obsRead });
    expect(r.code).toBe(0);
    const d = YAML.parse(r.stdout) as { totals: { requests: number }; lag: unknown; lag_omitted: string };
    expect(d.totals.requests).toBe(40);
    expect(d.lag).toBeNull();
    expect(d.lag_omitted).toBe('pipeline lag needs scope admin#tenant/acme');
    traceIdOf(r.stderr);
    const t = await stella(['obs', 'top', '--once', '--window', '15'], { token: TOK.obsRead });
    expect(t.stdout).toContain('lag: hidden (pipeline lag needs scope admin#tenant/acme)');
  });

  it('errors: malformed tenant 2, another tenant 3, no obs:read 3, unknown token 3, no token 2, bad option 2, unreachable 4', async () => {
    const [bad, other, scope, unknown, none, interval, unknownFlag, down] = await Promise.all([
      stella(['obs', 'top', '--once', '--tenant', 'Not A Tenant']),
      stella(['obs', 'top', '--once', '--tenant', 'globex']),
      stella(['obs', 'top', '--once'], { token: TOK.evidenceOnly }),
      stella(['obs', 'top', '--once'], { token: 'not-a-token' }),
      stella(['obs', 'top', '--once'], { token: null }),
      stella(['obs', 'top', '--interval', '0']),
      stella(['obs', 'top', '--once', '--colour']),
      stella(['obs', 'top', '--once', '--api', 'http://127.0.0.1:1']),
    ]);
    expect([bad.code, bad.stdout]).toEqual([2, '']);
    expect(bad.stderr).toMatch(/^stella: --tenant: tenant id must match/);
    expect([other.code, other.stdout]).toEqual([3, '']);
    expect(other.stderr).toContain('403: token lacks scope obs:read#tenant/globex');
    traceIdOf(other.stderr); // refused requests have a trace id too
    expect([scope.code, scope.stdout]).toEqual([3, '']);
    expect(scope.stderr).toContain('403: token lacks scope obs:read for any tenant');
    expect([unknown.code, unknown.stdout]).toEqual([3, '']);
    expect(unknown.stderr).toContain('401: unknown bearer token');
    expect([none.code, none.stderr]).toEqual([2, 'stella: a token is needed: --token <token> or STELLA_TOKEN\n']);
    expect([interval.code, interval.stderr]).toEqual([2, 'stella: --interval takes seconds from 0.5 to 3600\n']);
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toMatch(/^stella: unknown option --colour for "stella obs top"/);
    expect([down.code, down.stdout]).toEqual([4, '']);
    expect(down.stderr).toMatch(/^cannot reach http:\/\/127\.0\.0\.1:1/);
    expect(down.stderr).not.toMatch(TRACE_LINE);
  });
});

describe('stella obs trace', () => {
  it('table, JSON and YAML; the trace id of the request on stderr', async () => {
    const [table, json, yaml] = await Promise.all([stella(['obs', 'trace', TRACE]), stella(['obs', 'trace', TRACE, '--output', 'json']), stella(['obs', 'trace', TRACE, '--output', 'yaml'])]);
    expect(table.code).toBe(0);
    // The SLO processor adds its breach events to the trace over time: at least the ones seen before.
    const n = Number(new RegExp(`^trace ${TRACE}: 40 spans, (\\d+) events$`, 'm').exec(table.stdout)?.[1]);
    expect(n).toBeGreaterThanOrEqual(traceEvents);
    expect(table.stdout).toMatch(/^\S+\s+event\s+deploy\.finished\s+[0-9a-f]{16}\s+.*service:checkout$/m);
    expect(json.code).toBe(0);
    const j = JSON.parse(json.stdout) as { trace_id: string; spans: { name: string }[]; events: { kind: string }[] };
    expect([j.trace_id, j.spans.length]).toEqual([TRACE, 40]);
    expect(j.events.length).toBeGreaterThanOrEqual(traceEvents);
    expect(j.events.map((e) => e.kind)).toContain('deploy.finished');
    expect(yaml.code).toBe(0);
    expect(YAML.parse(yaml.stdout)).toEqual(j);
    for (const r of [table, json, yaml]) traceIdOf(r.stderr);
    expect(new Set([table, json, yaml].map((r) => traceIdOf(r.stderr))).size).toBe(3);
  });

  it('errors: unknown trace 1, obs:read without timeline:read omits events, other tenant 3, bad id 2, unreachable 4', async () => {
    const [none, viewer, other, badId, down] = await Promise.all([
      stella(['obs', 'trace', randomBytes(16).toString('hex'), '--output', 'json']),
      stella(['obs', 'trace', TRACE, '--output', 'json'], { token: TOK.obsRead }),
      stella(['obs', 'trace', TRACE, '--tenant', 'globex']),
      stella(['obs', 'trace', 'xyz']),
      stella(['obs', 'trace', TRACE, '--api', 'http://127.0.0.1:1']),
    ]);
    expect(none.code).toBe(1);
    expect(JSON.parse(none.stdout)).toMatchObject({ spans: [], events: [] });
    traceIdOf(none.stderr);
    expect(viewer.code).toBe(0);
    expect(JSON.parse(viewer.stdout)).toMatchObject({ events: null, events_omitted: 'token lacks scope timeline:read#tenant/acme' });
    expect(other.code).toBe(3);
    expect(other.stderr).toContain('403: token lacks scope obs:read#tenant/globex');
    expect([badId.code, badId.stdout, badId.stderr]).toEqual([2, '', 'trace id must be 32 hex characters\n']);
    expect(down.code).toBe(4);
  });
});

describe('stella slo list and incident', () => {
  it('slo list in table, JSON and YAML with the trace id', async () => {
    const [table, json, yaml] = await Promise.all([stella(['slo', 'list']), stella(['slo', 'list', '--output', 'json']), stella(['slo', 'list', '--output', 'yaml'])]);
    expect(table.code).toBe(0);
    // 10% of the checkout requests failed against a 99% objective: the SLO may have switched incident mode on.
    expect(table.stdout).toMatch(/^tenant acme: 1 SLOs; incident mode (off|ON until \S+ \(.+\))$/m);
    expect(table.stdout).toMatch(/^checkout-availability\s+checkout/m);
    const j = JSON.parse(json.stdout) as { tenant: string; slos: { slo: string; objective: number }[] };
    expect(j.slos.map((s) => [s.slo, s.objective])).toEqual([['checkout-availability', 0.99]]);
    expect(YAML.parse(yaml.stdout)).toMatchObject({ tenant: 'acme', slos: [{ slo: 'checkout-availability' }] });
    for (const r of [table, json, yaml]) traceIdOf(r.stderr);
  });

  it('slo list errors: no obs:read 3, malformed tenant 2, unreachable 4; globex has no SLOs (1)', async () => {
    const [scope, bad, down, globex] = await Promise.all([
      stella(['slo', 'list'], { token: TOK.evidenceOnly }), stella(['slo', 'list', '--tenant', '-x']),
      stella(['slo', 'list', '--api', 'http://127.0.0.1:1']), stella(['slo', 'list', '--output', 'json'], { token: TOK.globex }),
    ]);
    expect([scope.code, scope.stdout]).toEqual([3, '']);
    expect(bad.code).toBe(2);
    expect(down.code).toBe(4);
    expect(globex.code).toBe(1);
    expect(JSON.parse(globex.stdout)).toMatchObject({ tenant: 'globex', slos: [] });
  });

  it('incident on (JSON) and off (table); obs:read alone is refused; yaml offered', async () => {
    // The burning SLO may have switched it on already: start from off.
    expect((await stella(['incident', 'off', '--tenant', 'acme'])).code).toBe(0);
    const on = await stella(['incident', 'on', '--tenant', 'acme', '--ttl', '600', '--output', 'json']);
    expect(on.code).toBe(0);
    expect(JSON.parse(on.stdout)).toMatchObject({ tenant: 'acme', incident: { on: true }, changed: true });
    traceIdOf(on.stderr);
    const again = await stella(['incident', 'on', '--tenant', 'acme', '--ttl', '600', '--output', 'yaml']);
    expect(YAML.parse(again.stdout)).toMatchObject({ incident: { on: true } });
    const off = await stella(['incident', 'off', '--tenant', 'acme']);
    expect([off.code, off.stdout]).toEqual([0, 'tenant acme: incident mode off\n']);
    traceIdOf(off.stderr);
    const viewer = await stella(['incident', 'on', '--tenant', 'acme'], { token: TOK.obsRead });
    expect([viewer.code, viewer.stdout]).toEqual([3, '']);
    expect(viewer.stderr).toContain('403: token lacks scope obs:write#tenant/acme');
    const [ttl, down] = await Promise.all([stella(['incident', 'on', '--tenant', 'acme', '--ttl', 'soon']), stella(['incident', 'off', '--tenant', 'acme', '--api', 'http://127.0.0.1:1'])]);
    expect([ttl.code, ttl.stderr]).toEqual([2, 'stella: --ttl takes a whole number of seconds\n']);
    expect(down.code).toBe(4);
  });
});

describe('stella forensic snapshot create / verify / attest show, keys rotate', () => {
  const bundle = path.join(dir, 'case-1.tar.gz');

  it('snapshot create downloads the bundle with a progress bar on stderr and JSON on stdout', async () => {
    // The case: everything that happened to service checkout (the deploy event).
    const r = await stella(['forensic', 'snapshot', 'create', '--case', 'case-1', '--scope', 'service', '--id', 'checkout', '--out', bundle, '--output', 'json', '--progress']);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout) as { bundle_id: string; events: number; bytes: number; file: string };
    expect(d).toMatchObject({ case_id: 'case-1', events: 1, file: bundle });
    expect(d.bytes).toBe(readFileSync(bundle).length);
    expect(r.stderr).toMatch(/\rdownload \[#{24}\] 100% /);
    traceIdOf(r.stderr);
    // Table output, no --progress and stderr not a terminal: no bar.
    const t = await stella(['forensic', 'snapshot', 'create', '--case', 'case-1', '--scope', 'service', '--id', 'checkout', '--out', path.join(dir, 'case-1b.tar.gz')]);
    expect(t.code).toBe(0);
    // (The log may have grown in between: same case, perhaps a larger tree, so another bundle id.)
    expect(t.stdout).toMatch(/^bundle [0-9a-f]{64}\n  case case-1, 1 events, tree size \d+, \d+ bytes\n/);
    expect(t.stderr).not.toContain('download');
    expect(t.stderr).toMatch(/^trace_id: [0-9a-f]{32}\n$/);
  });

  it('snapshot create errors: viewer lacks evidence:create 3, nothing matches 1, other tenant 3, unreachable 4, missing flags 2', async () => {
    const args = (id: string) => ['forensic', 'snapshot', 'create', '--case', 'c', '--scope', 'trace', '--id', id, '--out', path.join(dir, 'x.tar.gz')];
    const [viewer, nothing, other, down, usage] = await Promise.all([
      stella(args(TRACE), { token: TOK.obsRead }), stella(args(randomBytes(16).toString('hex'))), stella([...args(TRACE), '--tenant', 'globex']),
      stella([...args(TRACE), '--api', 'http://127.0.0.1:1']), stella(['forensic', 'snapshot', 'create', '--case', 'c']),
    ]);
    expect([viewer.code, viewer.stdout]).toEqual([3, '']);
    expect(viewer.stderr).toContain('evidence:create');
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toContain('404: no timeline events match');
    traceIdOf(nothing.stderr);
    expect(other.code).toBe(3);
    expect(down.code).toBe(4);
    expect(usage.code).toBe(2);
    expect(existsSync(path.join(dir, 'x.tar.gz'))).toBe(false);
  });

  it('forensic verify: OK in table, JSON and YAML; progress only with --progress; a corrupt bundle names its cause', async () => {
    // The anchor: the tenant's trust root, exported on the evidence host (same data dir).
    const exported = await stella(['forensic', 'trust', 'export', '--tenant', 'acme']);
    expect(exported.code, exported.stderr).toBe(0);
    const trust = path.join(dir, 'acme.trust-root.json');
    writeFileSync(trust, exported.stdout);
    const [table, json, yaml, none] = await Promise.all([stella(['forensic', 'verify', bundle, '--trust', trust]), stella(['forensic', 'verify', bundle, '--output', 'json', '--progress', '--trust', trust]),
      stella(['forensic', 'verify', bundle, '--output', 'yaml'], { env: { STELLA_TRUST_ROOT: trust } }), stella(['forensic', 'verify', bundle])]);
    expect(none.code).toBe(19);
    expect(none.stdout).toMatch(/^FAILED: TRUST_ROOT_MISSING: /);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^OK: bundle verified in \d+\.\d\d s\n$/);
    expect(table.stderr).toBe('');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, exit_code: 0 });
    expect(json.stderr).toMatch(/\rverify: \w+/);
    expect(YAML.parse(yaml.stdout)).toMatchObject({ ok: true });

    const bytes = readFileSync(bundle);
    const truncated = path.join(dir, 'truncated.tar.gz');
    writeFileSync(truncated, bytes.subarray(0, bytes.length >> 1));
    const [corrupt, missing] = await Promise.all([stella(['forensic', 'verify', truncated, '--output', 'json', '--trust', trust]), stella(['forensic', 'verify', path.join(dir, 'nope.tar.gz'), '--trust', trust])]);
    expect(corrupt.code).toBe(10);
    expect(JSON.parse(corrupt.stdout)).toMatchObject({ ok: false, cause: 'BUNDLE_CORRUPT', exit_code: 10 });
    expect(missing.code).toBe(1); // not found (cli/commands.ts), before any verification
    expect(missing.stderr).toMatch(/^stella: no such bundle file: .*nope\.tar\.gz\n$/);
  });

  it('forensic attest show: table, JSON and YAML; a corrupt bundle fails', async () => {
    const [table, json, yaml, bad] = await Promise.all([stella(['forensic', 'attest', 'show', bundle]), stella(['forensic', 'attest', 'show', bundle, '--output', 'json']),
      stella(['forensic', 'attest', 'show', bundle, '--output', 'yaml']), stella(['forensic', 'attest', 'show', path.join(dir, 'truncated.tar.gz')])]);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('stella-telemetry.example/tenants/acme');
    const j = JSON.parse(json.stdout) as { tenant: string; signatureVerified: boolean }[];
    expect(j.length).toBeGreaterThan(0);
    expect(j.every((a) => a.tenant === 'acme' && a.signatureVerified)).toBe(true);
    expect(YAML.parse(yaml.stdout)).toEqual(j);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^stella: /);
  });

  it('keys rotate: the running pipeline rotates acme; checkpoints after it are signed by the new key; a bundle spanning it verifies', async () => {
    const [badTenant, unknownTenant] = await Promise.all([stella(['keys', 'rotate', '--tenant', 'ACME']), stella(['keys', 'rotate', '--tenant', 'initech'])]);
    expect([badTenant.code, badTenant.stdout]).toEqual([2, '']);
    expect([unknownTenant.code, unknownTenant.stdout]).toEqual([1, '']);
    expect(unknownTenant.stderr).toContain('tenant initech is neither configured nor has an evidence log here');

    const r = await stella(['keys', 'rotate', '--tenant', 'acme', '--output', 'json']);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout) as { status: string; key_dir: string; keys: { tenant: string; name: string; key_id: string; verifier_key: string; key_file: string; pending_file: string }[] };
    expect(d.status).toBe('pending');
    // Per-tenant keys: acme's own key file, and only acme's.
    expect(d.key_dir).toBe(path.join(dir, 'evidence-keys'));
    expect(d.keys).toHaveLength(1);
    expect(d.keys[0]!.key_file).toBe(path.join(dir, 'evidence-keys', 'acme.pem'));
    expect(d.keys[0]!.pending_file).toBe(path.join(dir, 'evidence-keys', 'acme.pem.next'));
    expect(d.keys[0]).toMatchObject({ tenant: 'acme', name: 'stella-telemetry.example/tenants/acme' });
    expect(d.keys[0]!.key_id).toMatch(/^[0-9a-f]{8}$/);
    expect(d.keys[0]!.verifier_key.startsWith(`${d.keys[0]!.name}+${d.keys[0]!.key_id}+`)).toBe(true);

    // The running evidence processor rotates acme's log and promotes its key.
    await poll('the key promoted', async () => (existsSync(d.keys[0]!.pending_file) ? undefined : true));
    // A new event after the rotation, sealed under the new key.
    const receiver = `http://127.0.0.1:${pipeline.ports.http}`;
    const logs = { resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] },
      scopeLogs: [{ logRecords: [{ timeUnixNano: ns(Date.now()), eventName: 'deploy.rolled_back', traceId: TRACE, spanId: randomBytes(8).toString('hex'),
        attributes: [{ key: 'stella.resource.type', value: { stringValue: 'service' } }, { key: 'stella.resource.id', value: { stringValue: 'checkout' } }] }] }] }] };
    expect((await fetch(`${receiver}/v1/logs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(logs) })).status).toBe(200);
    const checkpoint = await poll('a checkpoint signed by the new key', async () => {
      const t = await (await fetch(`${api}/evidence/acme/checkpoint`, { headers: auth })).text();
      return t.includes(`\u2014 ${d.keys[0]!.name} `) && (await import('../../processors/evidence/note.ts')).verifyNote(t, [(await import('../../processors/evidence/note.ts')).parseVerifierKey(d.keys[0]!.verifier_key)]).ok ? t : undefined;
    });
    expect(checkpoint).toMatch(/^stella-telemetry\.example\/tenants\/acme\n/);
    const spanning = path.join(dir, 'spanning.tar.gz');
    const snap = await poll('both events sealed', async () => {
      const s = await stella(['forensic', 'snapshot', 'create', '--case', 'rotation', '--scope', 'service', '--id', 'checkout', '--out', spanning, '--output', 'json']);
      const b = s.code === 0 ? JSON.parse(s.stdout) as { events: number } : undefined;
      return b && b.events === 2 ? b : undefined;
    });
    expect(snap.events).toBe(2); // the deploy before the rotation and the rollback after it
    // Anchored by the new key `keys rotate` printed, or by the trust root exported after the rotation.
    const trust = path.join(dir, 'acme-rotated.trust-root.json');
    writeFileSync(trust, (await stella(['forensic', 'trust', 'export', '--tenant', 'acme'])).stdout);
    const [v, vTrust] = await Promise.all([stella(['forensic', 'verify', spanning, '--output', 'json', '--trusted-key', d.keys[0]!.verifier_key]),
      stella(['forensic', 'verify', spanning, '--trust', trust])]);
    expect(v.code).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: true });
    expect(vTrust.code, vTrust.stdout).toBe(0);
    const attest = JSON.parse((await stella(['forensic', 'attest', 'show', spanning, '--output', 'json'])).stdout) as { signedBy: string }[];
    expect(new Set(attest.map((a) => a.signedBy)).size).toBe(2); // statements signed by the old and by the new key
  });
});

describe('stella db migrate, help, unknown commands, package bin', () => {
  it('keys rotate: no key yet exits 1; table lists each tenant verifier key; a second request while one is pending exits 1; YAML', async () => {
    const fresh = mkdtempSync(path.join(os.tmpdir(), 'stella-cli-keys-'));
    const env = { STELLA_DATA_DIR: fresh };
    const none = await stella(['keys', 'rotate'], { env });
    expect([none.code, none.stdout]).toEqual([1, '']);
    expect(none.stderr).toMatch(/^stella: no tenant has a signing key in .*evidence-keys yet/);
    mkdirSync(path.join(fresh, 'evidence', 'logs', 'tenants', 'initech'), { recursive: true }); // a tenant with a log here
    await createKeyFileIfAbsent(path.join(fresh, 'evidence-keys', 'initech.pem')); // its key, as the runner creates it
    const first = await stella(['keys', 'rotate'], { env });
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^new signing key for tenant initech written to .*evidence-keys\/initech\.pem\.next \(mode 0600\)/);
    expect(first.stdout).toMatch(/^ {2}initech: stella-telemetry\.example\/tenants\/initech\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$/m);
    expect(statSync(path.join(fresh, 'evidence-keys', 'initech.pem.next')).mode & 0o777).toBe(0o600);
    const again = await stella(['keys', 'rotate', '--output', 'json'], { env });
    expect([again.code, again.stdout]).toEqual([1, '']);
    expect(again.stderr).toContain('a rotation is already pending');
    rmSync(path.join(fresh, 'evidence-keys', 'initech.pem.next'));
    const yaml = await stella(['keys', 'rotate', '--output', 'yaml'], { env });
    expect(yaml.code).toBe(0);
    expect(YAML.parse(yaml.stdout)).toMatchObject({ status: 'pending', keys: [{ tenant: 'initech', name: 'stella-telemetry.example/tenants/initech',
      pending_file: path.join(fresh, 'evidence-keys', 'initech.pem.next') }] });
    rmSync(fresh, { recursive: true, force: true });
  });

  it('db migrate applies the migrations once, then none; an unreachable ClickHouse exits 4', async () => {
    const fresh = mkdtempSync(path.join(os.tmpdir(), 'stella-cli-migrate-'));
    const first = await stella(['db', 'migrate'], { env: { STELLA_DATA_DIR: fresh } });
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^applied: \d{4}_/);
    const second = await stella(['db', 'migrate', '--output', 'json'], { env: { STELLA_DATA_DIR: fresh } });
    expect(second.code).toBe(0);
    const j = JSON.parse(second.stdout) as { applied: string[]; already_applied: string[] };
    expect(j.applied).toEqual([]);
    expect(j).toHaveProperty('changed_since_applied', []);
    expect(j.already_applied).toEqual(first.stdout.split('\n')[0]!.replace('applied: ', '').split(', '));
    const down = await stella(['db', 'migrate'], { env: { STELLA_DATA_DIR: fresh, CLICKHOUSE_URL: 'http://127.0.0.1:1' } });
    expect([down.code, down.stdout]).toEqual([4, '']);
    expect(down.stderr).toMatch(/^stella: .*ECONNREFUSED/m);
    const extra = await stella(['db', 'migrate', '--tenant', 'acme']);
    expect(extra.code).toBe(2);
    expect(extra.stderr).toMatch(/^stella: unknown option --tenant for "stella db migrate"/);
    rmSync(fresh, { recursive: true, force: true });
  });

  it('help names every command; unknown commands and options exit 2', async () => {
    const [help, unknown, sub] = await Promise.all([stella(['help']), stella(['obs', 'frobnicate']), stella(['keys', 'rotate', '--force'])]);
    expect(help.code).toBe(0);
    for (const c of ['obs top', 'obs trace', 'forensic snapshot create', 'forensic verify', 'forensic attest show', 'slo list', 'slo rules', 'incident on|off', 'keys rotate', 'db migrate', '--progress', 'trace_id']) {
      expect(help.stdout).toContain(c);
    }
    expect([unknown.code, unknown.stderr]).toEqual([2, 'stella: unknown command "obs frobnicate"; run "stella help"\n']);
    expect(sub.code).toBe(2);
    expect(sub.stderr).toMatch(/^stella: unknown option --force for "stella keys rotate"/);
  });

  it('package.json "bin" names cli/stella.ts, an executable file that runs tsx in-process', () => {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    const target = path.join(root, pkg.bin.stella!);
    expect(existsSync(target)).toBe(true);
    // node itself, tsx in-process, with the V8 flags of lib/node-flags.ts
    expect(readFileSync(target, 'utf8').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')} --import tsx`);
    expect(statSync(target).mode & 0o111).not.toBe(0);
  });
});
