// Secrets sent down every error path of the receiver (HTTP and gRPC) appear neither in the answers
// nor in its logs. The receiver runs as its own process (`stella run --only receiver`, debug logs)
// so everything it writes to stdout and stderr is captured and searched.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { createTopics, kafkaEnv, uniq } from '../support/kafka.ts';
import { grpcExport, spanObject, tracesRequest } from '../support/otlp.ts';
import { TOKENS, testTenants } from '../support/receiver.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const AWS = 'AKIAIOSFODNN7EXAMPLE';
const PASSWORD = 'hunter2-Pz9q';
const SECRETS = [AWS, PASSWORD, 'AKIAIOSFOD', 'hunter2'];
const MAX_REQUEST = 64 * 1024;

let tmp: string;
let child: ChildProcess;
let output = '';
let httpPort: number;
let grpcPort: number;
const answers: { path: string; text: string }[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'stella-no-echo-'));
  const topics = { spans: uniq('ne_spans'), metrics: uniq('ne_metrics'), logs: uniq('ne_logs') };
  await createTopics(Object.values(topics), 1);
  const cfgFile = path.join(tmp, 'stella.yaml');
  writeFileSync(cfgFile, JSON.stringify({ dataDir: path.join(tmp, 'data'), tenants: testTenants,
    receiver: { maxRequestBytes: MAX_REQUEST, maxAttributeValueBytes: 64 }, kafka: { topics } }));
  child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'cli/stella.ts'), 'run', '--only', 'receiver'], {
    cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, STELLA_CONFIG: cfgFile, ...kafkaEnv(), STELLA_HTTP_PORT: '0', STELLA_GRPC_PORT: '0',
      STELLA_ADMIN_PORT: '0', STELLA_LOG_LEVEL: 'debug' },
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => { output += c.toString(); if (output.includes('Ready.')) resolve(); });
    child.stderr!.on('data', (c: Buffer) => { output += c.toString(); });
    child.on('exit', (code, sig) => reject(new Error(`receiver exited (${code ?? sig}) before it was ready:\n${output}`)));
  });
  // Ports the receiver bound itself (0): a port picked free here could be taken before the child binds it.
  const bound = /OTLP receiver: gRPC [^\s:]+:(\d+), HTTP http:\/\/[^\s:]+:(\d+)/.exec(output);
  if (!bound) throw new Error(`no receiver ports in the output:\n${output}`);
  [grpcPort, httpPort] = [Number(bound[1]), Number(bound[2])];
}, 120_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => { child.once('exit', r); setTimeout(r, 10_000); });
  }
  rmSync(tmp, { recursive: true, force: true });
});

const protoHeaders = { 'content-type': 'application/x-protobuf', authorization: `Bearer ${TOKENS.acme}` };
const jsonHeaders = { 'content-type': 'application/json', authorization: `Bearer ${TOKENS.acme}` };
const withResource = (attrs: Record<string, string>) => tracesRequest([{ attrs, scopes: [{ name: 's', spans: [spanObject('x')] }] }]);
const ids = { traceId: '0102030405060708090a0b0c0d0e0f10', spanId: '0102030405060708' };

async function http(pathname: string, body: Uint8Array | string, headers: Record<string, string>, method = 'POST'): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${httpPort}${pathname}`, { method, body: method === 'POST' ? body : undefined, headers });
  const text = Buffer.from(await res.arrayBuffer()).toString('latin1');
  answers.push({ path: pathname, text: `${res.status} ${JSON.stringify([...res.headers])} ${text}` });
  return res.status;
}

describe('every HTTP error path', () => {
  it.each<[string, () => Promise<number>, number]>([
    ['invalid JSON', () => http('/v1/traces', `${AWS} ${PASSWORD}`, jsonHeaders), 400],
    ['invalid JSON after a valid prefix', () => http('/v1/traces', `{"resourceSpans": [{"x": "${AWS}" ${PASSWORD}`, jsonHeaders), 400],
    ['JSON of the wrong type', () => http('/v1/traces', JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ ...ids, name: { v: AWS }, traceState: [PASSWORD] }] }] }] }), jsonHeaders), 400],
    ['JSON with a bad id', () => http('/v1/traces', JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: AWS, spanId: PASSWORD, name: 'n' }] }] }] }), jsonHeaders), 400],
    ['JSON with bad base64 bytes', () => http('/v1/traces', JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ ...ids, name: 'n', attributes: [{ key: 'k', value: { bytesValue: `${AWS}!${PASSWORD}` } }] }] }] }] }), jsonHeaders), 400],
    ['JSON claiming another tenant', () => http('/v1/traces', JSON.stringify({ resourceSpans: [{ resource: { attributes: [{ key: 'tenant.id', value: { stringValue: AWS } }] }, scopeSpans: [{ spans: [{ ...ids, name: 'n' }] }] }] }), jsonHeaders), 403],
    ['bad protobuf', () => http('/v1/traces', Buffer.from(`${AWS}${PASSWORD}`), protoHeaders), 400],
    ['bad gzip', () => http('/v1/traces', Buffer.from(`${AWS}${PASSWORD}`), { ...protoHeaders, 'content-encoding': 'gzip' }), 400],
    ['bad deflate', () => http('/v1/traces', Buffer.from(`${AWS}${PASSWORD}`), { ...protoHeaders, 'content-encoding': 'deflate' }), 400],
    ['unsupported Content-Type', () => http('/v1/traces', 'x', { 'content-type': `text/plain; password=${PASSWORD}; key=${AWS}`, authorization: `Bearer ${TOKENS.acme}` }), 415],
    ['unsupported Content-Type before authentication', () => http('/v1/traces', 'x', { 'content-type': `text/${AWS}; password=${PASSWORD}` }), 415],
    ['unsupported Content-Encoding', () => http('/v1/traces', 'x', { ...protoHeaders, 'content-encoding': `${AWS}-${PASSWORD}` }), 415],
    ['unknown token', () => http('/v1/traces', withResource({ 'service.name': 's' }), { ...protoHeaders, authorization: `Bearer ${AWS}${PASSWORD}` }), 401],
    ['malformed Authorization', () => http('/v1/traces', withResource({ 'service.name': 's' }), { ...protoHeaders, authorization: `Basic ${AWS}:${PASSWORD}` }), 401],
    ['token of the wrong scope', () => http('/v1/traces', withResource({ 'service.name': AWS }), { ...protoHeaders, authorization: `Bearer ${TOKENS.acmeReadOnly}` }), 403],
    ['a resource claiming another tenant', () => http('/v1/traces', withResource({ 'tenant.id': `${AWS}${PASSWORD}` }), protoHeaders), 403],
    ['body too large', () => http('/v1/traces', Buffer.from(`${AWS}${PASSWORD}`.repeat(MAX_REQUEST / 10)), protoHeaders), 413],
    ['gzip inflating too large', () => http('/v1/traces', gzipSync(Buffer.from(`${AWS}${PASSWORD}`.repeat(MAX_REQUEST / 5))), { ...protoHeaders, 'content-encoding': 'gzip' }), 413],
    ['unknown path', () => http(`/v1/${AWS}/${PASSWORD}`, 'x', protoHeaders), 404],
    ['wrong method', () => http(`/v1/traces?${AWS}=${PASSWORD}`, '', protoHeaders, 'GET'), 405],
    ['an oversized attribute (partial success)', () => http('/v1/traces', tracesRequest([{ scopes: [{ name: 's', spans: [spanObject('big', { k: `${AWS}${PASSWORD}`.repeat(10) }), spanObject('ok')] }] }]), protoHeaders), 200],
    ['an all-zero span id (partial success)', () => http('/v1/traces', tracesRequest([{ scopes: [{ name: 's', spans: [spanObject(`${AWS}${PASSWORD}`, {}, { spanId: Buffer.alloc(8) }), spanObject('ok')] }] }]), protoHeaders), 200],
  ])('%s', async (_name, call, code) => {
    expect(await call()).toBe(code);
  });
});

describe('every gRPC error path', () => {
  const grpcAnswer = async (body: Uint8Array, token: string | undefined) => {
    const a = await grpcExport(grpcPort, 'traces', body, token);
    answers.push({ path: 'grpc', text: `${a.code} ${a.details} ${a.response?.toString('latin1') ?? ''}` });
    return a.code;
  };
  it.each<[string, () => Promise<number>, number]>([
    ['bad protobuf', () => grpcAnswer(Buffer.from(`${AWS}${PASSWORD}`), TOKENS.acme), status.INVALID_ARGUMENT],
    ['unknown token', () => grpcAnswer(withResource({ 'service.name': 's' }), `${AWS}${PASSWORD}`), status.UNAUTHENTICATED],
    ['a resource claiming another tenant', () => grpcAnswer(withResource({ 'tenant.id': `${AWS}${PASSWORD}` }), TOKENS.acme), status.PERMISSION_DENIED],
    ['message too large', () => grpcAnswer(Buffer.from(`${AWS}${PASSWORD}`.repeat(MAX_REQUEST / 10)), TOKENS.acme), status.RESOURCE_EXHAUSTED],
    ['an oversized attribute (partial success)', () => grpcAnswer(tracesRequest([{ scopes: [{ name: 's', spans: [spanObject('big', { k: `${AWS}${PASSWORD}`.repeat(10) })] }] }]), TOKENS.acme), status.INVALID_ARGUMENT],
  ])('%s', async (_name, call, code) => {
    expect(await call()).toBe(code);
  });
});

describe('what came back and what was logged', () => {
  it('no answer carries a secret', () => {
    expect(answers.length).toBeGreaterThanOrEqual(27);
    for (const a of answers) for (const s of SECRETS) expect(a.text, `answer to ${a.path.slice(0, 9)}`).not.toContain(s);
  });

  it('the receiver logged the refusals, and no secret', async () => {
    await new Promise((r) => setTimeout(r, 500)); // the last lines reach the pipe
    // The capture works: refusals are in it, by rule.
    expect(output).toContain('export refused');
    for (const code of ['malformed_json', 'malformed_protobuf', 'bad_encoding', 'content_type', 'content_encoding', 'unauthenticated', 'tenant_mismatch', 'body_too_large']) {
      expect(output, code).toContain(`"error_code":"${code}"`);
    }
    for (const s of SECRETS) {
      const at = output.indexOf(s);
      expect(at, `${s} logged: ${at >= 0 ? output.slice(Math.max(0, at - 200), at + 50).replaceAll(s, '<SECRET>') : ''}`).toBe(-1);
    }
  });
});
