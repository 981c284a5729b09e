// Auditability of the pipeline itself, on the real API server and the real receiver (test broker):
// every authorization decision is one log record naming the token by name and hash prefix, never
// the token; `api.*` server spans carry the decision (exported by the OTel SDK, decoded here); a
// secret inside an error message is redacted in the log line by the scrubber's rules, and the
// stack goes to details.stack, bounded.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Before any import creates the root logger: log at info, into the tap below.
vi.hoisted(() => { process.env.STELLA_LOG_LEVEL = 'info'; });

import { startApiServer, type RunningApi } from '../../api/server.ts';
import { createLogger, formatLogObject, STACK_MAX_CHARS, tapLogLines } from '../../lib/log.ts';
import { decodeTraces, type KeyValue } from '../../lib/otlp/proto.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { flushTracing, startTracing, stopTracing } from '../../lib/tracing.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { grpcExport, tracesRequest } from '../support/otlp.ts';
import { startTestReceiver, testConfig, TOKENS } from '../support/receiver.ts';

const TOK = { reader: 'stella_reader_tok_4f9a8b7c6d5e4f3a2b1c', other: 'stella_other_tok_0a1b2c3d4e5f6a7b8c9d', unknown: 'sk_live_51HxQzJKLmnopQRSTuvWXyz0123' };
const tokens = new TokenRegistry([
  { id: 'acme', tokens: [
    { sha256: sha256Hex(TOK.reader), scopes: ['obs:read'], name: 'ci-reader' },
    { sha256: sha256Hex(TOK.other), scopes: ['timeline:read'], name: 'dash' },
  ] },
]);
const SECRET_PASSWORD = 'Tr0ub4dor-and-3-horses';
const AWS_KEY = 'AKIAIOSFODNN7EXAMPLE';

const lines: Record<string, unknown>[] = [];
const raw: string[] = [];
let untap: () => void;
let api: RunningApi;
let receiver: RunningReceiver;

// An OTLP/HTTP traces endpoint that keeps what the SDK's exporter sends.
const exported: Buffer[] = [];
const collector = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => { exported.push(Buffer.concat(chunks)); res.writeHead(200, { 'content-type': 'application/x-protobuf' }); res.end(); });
});

beforeAll(async () => {
  untap = tapLogLines((l) => { raw.push(l); lines.push(JSON.parse(l) as Record<string, unknown>); });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', () => r()));
  const cfg = testConfig({ tracing: { enabled: true, scheduledDelayMs: 50, sampleRatio: 1 } });
  await startTracing(cfg.tracing, { url: `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`, headers: {} });
  api = await startApiServer({ tokens, port: 0, register: [(r) => {
    r.scoped('GET', '/obs/probe', 'obs:read', (req) => ({ status: 200, body: { tenant: req.tenant } }));
    r.scoped('GET', '/obs/boom', 'obs:read', () => {
      const e = new Error(`cannot reach store at postgres://stella:${SECRET_PASSWORD}@db.internal:5432/x with key ${AWS_KEY}\nsecond line of the message`);
      e.stack = `${e.message}\n${'    at frame (file.ts:1:1)\n'.repeat(400)}`;
      throw e;
    });
  }] });
  ({ receiver } = await startTestReceiver());
}, 120_000);
afterAll(async () => {
  untap?.();
  delete process.env.STELLA_LOG_LEVEL;
  await stopTracing();
  await api?.close();
  await receiver?.close();
  collector.close();
});

const call = (p: string, token?: string, traceparent?: string) => fetch(api.url + p, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(traceparent ? { traceparent } : {}) } });
const decisions = (component: string) => lines.filter((l) => l.audit === 'authz' && l.service === component);
const noSecrets = (text: string) => { for (const s of [...Object.values(TOK), TOKENS.acme, 'Bearer ', SECRET_PASSWORD, AWS_KEY]) expect(text).not.toContain(s); };

describe('authorization decisions in the log', () => {
  it('API: allowed and each kind of denial is one record (who, scope, tenant, decision, route), with no token in any field', async () => {
    lines.length = 0; raw.length = 0;
    expect((await call('/obs/probe', TOK.reader)).status).toBe(200);
    expect((await call('/obs/probe')).status).toBe(401);
    expect((await call('/obs/probe', TOK.unknown)).status).toBe(401);
    expect((await call('/obs/probe', TOK.other)).status).toBe(403);
    expect((await call('/obs/probe?tenant=globex', TOK.reader)).status).toBe(403);
    const d = decisions('api');
    expect(d).toHaveLength(5);
    const pick = (l: Record<string, unknown>) => ({ decision: l.decision, reason: l.reason, token_name: l.token_name, token_id: l.token_id, scope: l.scope, tenant_id: l.tenant_id, route: l.route });
    expect(d.map(pick)).toEqual([
      { decision: 'allowed', reason: undefined, token_name: 'ci-reader', token_id: sha256Hex(TOK.reader).slice(0, 12), scope: 'obs:read', tenant_id: 'acme', route: 'GET /obs/probe' },
      { decision: 'denied', reason: 'unauthenticated', token_name: null, token_id: null, scope: 'obs:read', tenant_id: null, route: 'GET /obs/probe' },
      { decision: 'denied', reason: 'unauthenticated', token_name: null, token_id: null, scope: 'obs:read', tenant_id: null, route: 'GET /obs/probe' },
      { decision: 'denied', reason: 'forbidden', token_name: 'dash', token_id: sha256Hex(TOK.other).slice(0, 12), scope: 'obs:read', tenant_id: null, route: 'GET /obs/probe' },
      { decision: 'denied', reason: 'forbidden', token_name: 'ci-reader', token_id: sha256Hex(TOK.reader).slice(0, 12), scope: 'obs:read', tenant_id: 'globex', route: 'GET /obs/probe' },
    ]);
    for (const l of d) expect(l).toMatchObject({ level: 'info', request_id: expect.stringMatching(/^[0-9a-f-]{36}$/), trace_id: expect.stringMatching(/^[0-9a-f]{32}$/) });
    noSecrets(raw.join(''));
  });

  it('receiver: a denied and an allowed OTLP/HTTP export are one record each, with no token in any field', async () => {
    lines.length = 0; raw.length = 0;
    const post = (token: string) => fetch(`http://127.0.0.1:${receiver.httpPort}/v1/traces`, { method: 'POST', body: '{"resourceSpans":[]}',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
    expect((await post(TOK.unknown)).status).toBe(401);
    expect((await post(TOKENS.acmeReadOnly)).status).toBe(403);
    expect((await post(TOKENS.acme)).status).toBe(200);
    const d = decisions('receiver');
    expect(d.map((l) => [l.decision, l.reason ?? null, l.token_id, l.tenant_id, l.scope, l.route])).toEqual([
      ['denied', 'unauthenticated', null, null, 'otlp:write', 'http traces'],
      ['denied', 'forbidden', sha256Hex(TOKENS.acmeReadOnly).slice(0, 12), 'acme', 'otlp:write', 'http traces'],
      ['allowed', null, sha256Hex(TOKENS.acme).slice(0, 12), 'acme', 'otlp:write', 'http traces'],
    ]);
    noSecrets(raw.join(''));
  });

  it('receiver: the same over OTLP/gRPC', async () => {
    lines.length = 0; raw.length = 0;
    const body = tracesRequest([{ scopes: [{ name: 's', spans: [] }] }]);
    expect((await grpcExport(receiver.grpcPort, 'traces', body, TOK.unknown)).code).toBe(16); // UNAUTHENTICATED
    expect((await grpcExport(receiver.grpcPort, 'traces', body, TOKENS.acmeReadOnly)).code).toBe(7); // PERMISSION_DENIED
    expect((await grpcExport(receiver.grpcPort, 'traces', body, TOKENS.acme)).code).toBe(0);
    expect(decisions('receiver').map((l) => [l.decision, l.reason ?? null, l.token_id, l.route])).toEqual([
      ['denied', 'unauthenticated', null, 'grpc traces'],
      ['denied', 'forbidden', sha256Hex(TOKENS.acmeReadOnly).slice(0, 12), 'grpc traces'],
      ['allowed', null, sha256Hex(TOKENS.acme).slice(0, 12), 'grpc traces'],
    ]);
    noSecrets(raw.join(''));
  });
});

describe('api.* spans', () => {
  it('each scoped request is an api.<METHOD> <route> server span in the caller\'s trace, carrying the authN/Z outcome', async () => {
    exported.length = 0;
    const traceId = 'a'.repeat(31) + '1';
    const allowed = await call('/obs/probe', TOK.reader, `00-${traceId}-${'b'.repeat(15)}1-01`);
    expect(allowed.headers.get('x-trace-id')).toBe(traceId);
    const denied = await call('/obs/probe', TOK.other);
    const deniedTrace = denied.headers.get('x-trace-id')!;
    await call('/healthz');
    await flushTracing();
    const spans = exported.flatMap((b) => decodeTraces(b).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
    const attrs = (kvs: KeyValue[]) => Object.fromEntries(kvs.map((kv) => [kv.key, kv.value?.stringValue ? kv.value.stringValue : Number(kv.value?.intValue)]));
    const byTrace = new Map(spans.map((s) => [Buffer.from(s.traceId).toString('hex'), s]));
    const a = byTrace.get(traceId)!;
    expect(a.name).toBe('api.GET /obs/probe');
    expect(a.kind).toBe(2); // SERVER
    expect(Buffer.from(a.parentSpanId).toString('hex')).toBe('b'.repeat(15) + '1');
    expect(attrs(a.attributes)).toMatchObject({ 'stella.auth.outcome': 'allowed', 'stella.auth.scope': 'obs:read', 'stella.tenant.id': 'acme',
      'stella.auth.token_name': 'ci-reader', 'http.route': '/obs/probe', 'http.response.status_code': 200 });
    const d = byTrace.get(deniedTrace)!;
    expect(attrs(d.attributes)).toMatchObject({ 'stella.auth.outcome': 'forbidden', 'stella.auth.token_name': 'dash', 'http.response.status_code': 403 });
    expect(spans.some((s) => s.name.includes('healthz'))).toBe(false);
    for (const s of spans) noSecrets(JSON.stringify(attrs(s.attributes)));
  });
});

describe('error logs', () => {
  it('a secret in an error message is redacted in the log line; the stack is folded into details.stack, bounded', async () => {
    lines.length = 0; raw.length = 0;
    const res = await call('/obs/boom', TOK.reader);
    expect(res.status).toBe(500);
    const line = lines.find((l) => l.msg === 'request failed')!;
    expect(line).toBeDefined();
    noSecrets(raw.join(''));
    expect(line.error_message).toMatch(/^Error: cannot reach store at postgres:\/\/stella:\[REDACTED:url_password\]@db\.internal:5432\/x with key \[REDACTED:aws_access_key\]$/);
    const stack = (line.details as { stack: string }).stack;
    expect(stack.startsWith('cannot reach store at postgres://stella:[REDACTED:url_password]@')).toBe(true);
    expect(stack).toContain('second line of the message\n    at frame (file.ts:1:1)');
    expect(stack).toMatch(/… \[\d+ more characters\]$/);
    expect(stack.length).toBeLessThan(STACK_MAX_CHARS + 40);
    expect(line.err).toBeUndefined();
  });

  it('a multi-line error_message keeps its first line; sensitive keys and nested strings are scrubbed; clean lines pass unchanged', () => {
    const out = formatLogObject({ error_message: 'bad\n  at x\n  at y', password: 'hunter2hunter2', nested: { note: `key ${AWS_KEY}` }, tenant_id: 'acme', count: 3 });
    expect(out).toEqual({ error_message: 'bad', details: { stack: '  at x\n  at y' }, password: '[REDACTED:sensitive_key]',
      nested: { note: 'key [REDACTED:aws_access_key]' }, tenant_id: 'acme', count: 3 });
    const same = { msg_field: 'all clean here', trace_id: 'ab'.repeat(16) };
    expect(formatLogObject(same)).toBe(same);
    // The message argument is scrubbed too.
    const got: string[] = [];
    const log = createLogger({ write: (l: string) => { got.push(l); } } as never);
    log.info(`login failed for token ${TOK.unknown}`);
    expect(got.join('')).not.toContain(TOK.unknown);
  });
});
