// OTLP/HTTP: POST /v1/traces, /v1/metrics, /v1/logs with application/x-protobuf or
// application/json bodies, optionally gzip- or deflate-encoded. Responses use the request's
// content type; errors carry a google.rpc.Status body; 503 carries Retry-After.
import http from 'node:http';
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import { logger } from '../lib/log.ts';
import { JsonInputError, messageToOtlpJson, otlpJsonToProto } from '../lib/otlp/json.ts';
import { signals, types, type Signal } from '../lib/otlp/proto.ts';
import { authorizeIntake } from '../lib/audit.ts';
import { AuthError, type TokenRegistry } from '../lib/tenancy.ts';
import type { FrontEndOptions, RunningServer } from './grpc.ts';
import { IngestError, type IngestErrorKind } from './ingest.ts';
import { metricChild, receiverMetrics, type Ingestor } from './ingestor.ts';
import { SlabPool, type Lease } from './slab.ts';
import { grpcStatusOf, httpStatusOf } from './status.ts';

type Format = 'protobuf' | 'json';
const log = logger('receiver');
const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const EMPTY = new Uint8Array(0);
const byPath = new Map<string, Signal>(Object.values(signals).map((s) => [s.httpPath, s]));
const requestSeconds = new Map<string, ReturnType<typeof receiverMetrics.requestSeconds.labels>>();
const okRequests = new Map<string, ReturnType<typeof receiverMetrics.requests.labels>>();

function formatOf(contentType: string | undefined): Format | undefined {
  const base = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (base === 'application/x-protobuf') return 'protobuf';
  if (base === 'application/json') return 'json';
  return undefined;
}

function send(res: http.ServerResponse, status: number, format: Format, body: Uint8Array | string, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': format === 'json' ? 'application/json' : 'application/x-protobuf',
    'content-length': Buffer.byteLength(body),
    ...extra,
  });
  res.end(body);
}

function statusBody(format: Format, code: number, message: string): Uint8Array | string {
  if (format === 'json') return JSON.stringify({ code, message, details: [] });
  return types.Status.encode(types.Status.fromObject({ code, message })).finish();
}

class BodyTooLarge extends Error {}

// Request bodies with a Content-Length are read into reused slabs (receiver/slab.ts): they are
// garbage as soon as the ingestor has read them, and a fresh ~70 KB Buffer per request was external
// memory that pushed V8 into full GCs.
const bodies = new SlabPool();

function readBody(req: http.IncomingMessage, limit: number, declared: number, lease: Lease): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Node's parser delivers at most Content-Length bytes; without one, chunks are joined at the end.
    const into = Number.isSafeInteger(declared) && declared >= 0 ? bodies.alloc(declared, lease) : undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    // Once refused, later chunks are never written: the caller has released the buffer by then.
    let stopped = false;
    req.on('data', (c: Buffer) => {
      if (stopped) return;
      if (size + c.length > limit || (into && size + c.length > into.length)) { stopped = true; reject(new BodyTooLarge()); req.pause(); return; }
      if (into) c.copy(into, size);
      else chunks.push(c);
      size += c.length;
    });
    req.on('end', () => resolve(into ? into.subarray(0, size) : Buffer.concat(chunks, size)));
    req.on('error', (err) => { stopped = true; reject(err); });
  });
}

async function decodeBody(raw: Buffer, encoding: string, limit: number): Promise<Buffer> {
  try {
    if (encoding === 'gzip' || encoding === 'x-gzip') return await gunzip(raw, { maxOutputLength: limit });
    if (encoding === 'deflate') return await inflate(raw, { maxOutputLength: limit });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) throw new BodyTooLarge();
    // zlib's own message is left out: reasons name the rule, never anything derived from the body.
    throw new IngestError('invalid', 'bad_encoding', `the body is not a valid ${encoding === 'deflate' ? 'deflate' : 'gzip'} stream`);
  }
  return raw;
}

export async function startHttpServer(opts: FrontEndOptions): Promise<RunningServer> {
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    // The usual request path is one of byPath's keys as sent; anything else goes through URL
    // parsing (dot segments, encodings).
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const signal = byPath.get(q < 0 ? rawUrl : rawUrl.slice(0, q)) ?? byPath.get(new URL(rawUrl, 'http://receiver').pathname);
    const format: Format = formatOf(req.headers['content-type']) ?? 'json';
    let tenant: string | undefined;
    const signalName = signal?.name ?? 'none';
    const end = metricChild(requestSeconds, signalName, () => receiverMetrics.requestSeconds.labels('http', signalName)).startTimer();
    const fail = (kind: IngestErrorKind, reason: string, message: string, closeConnection: boolean) => {
      const status = httpStatusOf[kind];
      const headers: Record<string, string> = {};
      if (kind === 'unavailable') headers['retry-after'] = String(opts.retryAfterSeconds);
      if (kind === 'unauthenticated') headers['www-authenticate'] = 'Bearer';
      // The client may still be sending a body we will not read: close rather than drain it.
      if (closeConnection) headers.connection = 'close';
      receiverMetrics.requests.inc({ protocol: 'http', signal: signal?.name ?? 'none', code: String(status) });
      log.info({ protocol: 'http', signal: signal?.name, tenant_id: tenant, error_code: reason, error_message: message }, 'export refused');
      send(res, status, format, statusBody(format, grpcStatusOf[kind], message), headers);
      end();
    };
    let bodyRead = false;
    const lease = bodies.lease();
    try {
      if (!signal) {
        receiverMetrics.requests.inc({ protocol: 'http', signal: 'none', code: '404' });
        // The path is not echoed: clients have been seen to put tokens in it.
        send(res, 404, 'json', statusBody('json', 5, 'no OTLP endpoint at this path; use /v1/traces, /v1/metrics or /v1/logs'), { connection: 'close' });
        end();
        return;
      }
      if (req.method !== 'POST') {
        receiverMetrics.requests.inc({ protocol: 'http', signal: signal.name, code: '405' });
        send(res, 405, format, statusBody(format, 12, 'only POST is allowed; OTLP/HTTP uses POST'), { allow: 'POST', connection: 'close' });
        end();
        return;
      }
      if (!formatOf(req.headers['content-type'])) {
        // Header values are never echoed (responses or logs): `text/plain; password=...` happens.
        throw new IngestError('unsupported_media_type', 'content_type', 'unsupported Content-Type; use application/x-protobuf or application/json');
      }
      const principal = authorizeIntake(opts.tokens, req.headers.authorization, `http ${signal.name}`);
      tenant = principal.tenantId;
      const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
      if (!['identity', 'gzip', 'x-gzip', 'deflate'].includes(encoding)) {
        throw new IngestError('unsupported_media_type', 'content_encoding', 'unsupported Content-Encoding; use gzip, deflate or none');
      }
      const declared = Number(req.headers['content-length'] ?? NaN);
      if (declared > opts.maxRequestBytes) throw new BodyTooLarge();
      const raw = await readBody(req, opts.maxRequestBytes, declared, lease);
      bodyRead = true;
      const body = await decodeBody(raw, encoding, opts.maxRequestBytes);
      if (body !== raw) bodies.release(lease);
      let proto: Uint8Array;
      try {
        proto = format === 'json' ? otlpJsonToProto(signal.name, body.toString('utf8')) : body;
      } catch (err) {
        if (err instanceof JsonInputError) throw new IngestError('invalid', 'malformed_json', err.message);
        throw err;
      }
      const exported = opts.ingestor.export(signal, proto, principal, req.headers.traceparent as string | undefined);
      // Ingestor.export has read the body by the time it returns its promise (records are copies).
      bodies.release(lease);
      const outcome = await exported;
      // A full success in protobuf is the empty Export*ServiceResponse: zero bytes, no protobufjs round.
      const response = outcome.rejected > 0 || format === 'json' ? signal.response.fromObject(outcome.rejected > 0
        ? { partialSuccess: { [signal.rejectedField]: outcome.rejected, errorMessage: outcome.message } } : {}) : undefined;
      const payload = !response ? EMPTY : format === 'json'
        ? JSON.stringify(messageToOtlpJson(null, signal.response, response))
        : signal.response.encode(response).finish();
      metricChild(okRequests, signal.name, () => receiverMetrics.requests.labels('http', signal.name, '200')).inc();
      send(res, 200, format, payload);
      end();
    } catch (err) {
      bodies.release(lease);
      if (err instanceof BodyTooLarge) fail('too_large', 'body_too_large', `the request body exceeds the limit of ${opts.maxRequestBytes} bytes`, true);
      else if (err instanceof AuthError) fail(err.kind, err.kind, err.message, !bodyRead);
      else if (err instanceof IngestError) fail(err.kind, err.reason, err.message, !bodyRead);
      else {
        log.error({ tenant_id: tenant, error_message: String(err) }, 'unexpected error in HTTP export');
        fail('unavailable', 'internal', 'internal error; retry later', !bodyRead);
      }
    }
  };
  // Once closing, each answer also closes its connection: a client that keeps a keep-alive connection
  // busy would otherwise hold server.close() (and a worker's drain) open for as long as it sends.
  let closing = false;
  const server = http.createServer((req, res) => {
    if (closing) res.shouldKeepAlive = false;
    void handle(req, res);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : opts.port,
    close: () => new Promise<void>((resolve) => { closing = true; server.close(() => resolve()); server.closeIdleConnections(); }),
  };
}
