// OTLP/gRPC straight on node:http2: the unary Export method of the trace, metrics and logs services,
// without @grpc/grpc-js, whose call machinery alone cost 2.8–3.5 CPU-µs/span before our code read a
// byte (BENCHMARKS.md, ingest). It implements what a unary server needs of gRPC over HTTP/2
// (grpc/grpc doc/PROTOCOL-HTTP2.md, doc/compression.md): one length-prefixed message per call,
// gzip/deflate messages, grpc-timeout deadlines, a message size limit, status trailers with a
// percent-encoded grpc-message and google.rpc.Status (+ RetryInfo on UNAVAILABLE) in
// grpc-status-details-bin, keepalive pings, and GOAWAY with a drain on close. Authentication,
// tenancy, validation, partial success and ack-after-Kafka are the ingestor's, as for the other
// front ends; only the transport differs from receiver/grpc.ts (kept as `receiver.grpcImpl: grpc-js`).
//
// Deadlines and Kafka: a call whose deadline has passed, or whose remaining deadline is shorter than
// the ingestor's expected wait for Kafka's ack, is answered DEADLINE_EXCEEDED before anything is
// produced (nothing stored). A deadline that passes *after* the records went to the producer is
// answered DEADLINE_EXCEEDED at once with a message saying the data may still be stored; the produce
// is not withdrawn (Kafka cannot), so when Kafka then acks, a client's retry duplicates the data:
// at-least-once, the same as an HTTP client that times out. Such calls are logged and counted
// (`stella_receiver_requests_total{protocol="grpc",code="DEADLINE_EXCEEDED"}`).
import http2 from 'node:http2';
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { authorizeIntake } from '../lib/audit.ts';
import { logger } from '../lib/log.ts';
import { signals, types, type Signal } from '../lib/otlp/proto.ts';
import { AuthError, type Principal } from '../lib/tenancy.ts';
import type { FrontEndOptions, RunningServer } from './grpc.ts';
import { IngestError } from './ingest.ts';
import { metricChild, receiverMetrics } from './ingestor.ts';
import { SlabPool, type Lease } from './slab.ts';
import { grpcStatusDetails, grpcStatusOf } from './status.ts';

export interface GrpcH2Options extends FrontEndOptions {
  /** Ping each connection after this long (gRPC's server default: 2 h) and drop it if the ack takes longer than keepaliveTimeoutMs. */
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
  /** How long close() waits for in-flight calls after GOAWAY before it drops the connections. */
  drainTimeoutMs?: number;
}

const log = logger('receiver');
const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL } = http2.constants;
const ACCEPT_ENCODING = 'identity,deflate,gzip';
const byPath = new Map<string, Signal>(Object.values(signals).map((s) => [s.grpcPath, s]));
// A full success is the empty Export*ServiceResponse: one uncompressed, zero-length message.
const EMPTY_MESSAGE = Buffer.alloc(5);
const EMPTY = Buffer.alloc(0);
// The initial per-stream window lets a client send a ~100-span request (~90 KB) without waiting
// for a WINDOW_UPDATE; the connection window lets several do so at once.
const STREAM_WINDOW = 1 << 20;
const CONNECTION_WINDOW = 16 << 20;
const MAX_CONCURRENT_STREAMS = 1000;
const requestSeconds = new Map<string, ReturnType<typeof receiverMetrics.requestSeconds.labels>>();
const requests = new Map<string, ReturnType<typeof receiverMetrics.requests.labels>>();
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** grpc-timeout (1–8 digits and a unit) in ms; undefined when absent, NaN when malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = typeof value === 'string' ? /^(\d{1,8})([HMSmun])$/.exec(value) : null;
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : NaN;
}

/** grpc-message: UTF-8, then every byte outside space..~ and '%' itself as %XX. */
export function percentEncode(s: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(s)) return s;
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

const unpadded = (b: Uint8Array): string => Buffer.from(b).toString('base64').replace(/=+$/, '');
const retryInfo = (seconds: number): Uint8Array => types.RetryInfo.encode(types.RetryInfo.fromObject({ retryDelay: { seconds, nanos: 0 } })).finish();
const statusName = (code: number): string => GrpcStatus[code] ?? String(code);

/** Answer a call with Trailers-Only (an error before any response message). */
function trailersOnly(stream: http2.ServerHttp2Stream, code: number, message: string, retryAfterSeconds?: number, httpStatus = 200): void {
  if (stream.destroyed || stream.closed) return;
  if (!stream.headersSent) {
    const headers: http2.OutgoingHttpHeaders = {
      ':status': httpStatus, 'content-type': 'application/grpc', 'grpc-accept-encoding': ACCEPT_ENCODING,
      'grpc-status': String(code), 'grpc-message': percentEncode(message),
      'grpc-status-details-bin': unpadded(grpcStatusDetails(code, message, retryAfterSeconds)),
    };
    // The OTel Python exporter reads RetryInfo from this trailer of its own, not from the Status details.
    if (retryAfterSeconds !== undefined) headers['google.rpc.retryinfo-bin'] = unpadded(retryInfo(retryAfterSeconds));
    stream.respond(headers, { endStream: true });
  }
  // The client may still be sending a message we will not read: end the stream (RST_STREAM
  // NO_ERROR, as the spec's "early server closure" asks) rather than drain it.
  if (!stream.readableEnded) stream.close(NGHTTP2_NO_ERROR);
}

function sendOkTrailers(this: http2.ServerHttp2Stream): void { this.sendTrailers({ 'grpc-status': '0' }); }

class FramingError extends Error {
  constructor(readonly code: number, readonly reason: string, message: string) { super(message); }
}

/** One unary call: reads its single length-prefixed message, hands it to the ingestor, answers. */
class UnaryCall {
  private answered = false;
  private handedOff = false;
  /** 0: reading the 5-byte prefix, 1: the message, 2: the message is complete. */
  private phase = 0;
  private prefixGot = 0;
  private flag = 0;
  private len = 0;
  private got = 0;
  private msg: Buffer = EMPTY;
  private lease: Lease | undefined;
  private parts: Buffer[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly endTimer: () => void;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly signal: Signal,
    private readonly principal: Principal,
    private readonly encoding: string,
    private readonly deadline: number | undefined,
    private readonly traceparent: string | undefined,
    private readonly opts: GrpcH2Options,
    private readonly bodies: SlabPool,
  ) {
    this.endTimer = metricChild(requestSeconds, signal.name, () => receiverMetrics.requestSeconds.labels('grpc', signal.name)).startTimer();
    // Whole milliseconds: node keeps one timer list per distinct duration, and a fractional one made
    // a new list (and libuv timer) for nearly every call.
    if (deadline !== undefined) this.timer = setTimeout(() => this.deadlinePassed(), Math.max(1, Math.ceil(deadline - performance.now())));
    stream.on('data', (c: Buffer) => this.onData(c));
    stream.on('end', () => this.onEnd());
    stream.on('close', () => this.onClose());
  }

  private onData(chunk: Buffer): void {
    if (this.answered) return;
    let at = 0;
    try {
      while (at < chunk.length) {
        if (this.phase === 2) throw new FramingError(GrpcStatus.INTERNAL, 'framing', 'more than one request message in a unary call');
        if (this.phase === 0) {
          const b = chunk[at++]!;
          if (this.prefixGot === 0) this.flag = b;
          else this.len = this.len * 256 + b;
          if (++this.prefixGot === 5) at += this.startMessage(chunk, at);
          continue;
        }
        const n = Math.min(chunk.length - at, this.len - this.got);
        if (this.parts) this.parts.push(at === 0 && n === chunk.length ? chunk : chunk.subarray(at, at + n));
        else chunk.copy(this.msg, this.got, at, at + n);
        this.got += n;
        at += n;
        if (this.got === this.len) {
          this.phase = 2;
          if (this.parts) { this.msg = Buffer.concat(this.parts, this.len); this.parts = undefined; }
        }
      }
    } catch (err) {
      if (!(err instanceof FramingError)) throw err;
      this.fail(err.code, err.reason, err.message);
    }
  }

  /** Checks the prefix just read; returns how many bytes of `chunk` from `at` it consumed. */
  private startMessage(chunk: Buffer, at: number): number {
    const max = this.opts.maxRequestBytes;
    if (this.flag > 1) throw new FramingError(GrpcStatus.INTERNAL, 'framing', 'the Compressed-Flag byte of a message must be 0 or 1');
    if (this.flag === 1 && this.encoding === 'identity') {
      throw new FramingError(GrpcStatus.INTERNAL, 'framing', 'a compressed message (Compressed-Flag 1) needs a grpc-encoding header naming gzip or deflate');
    }
    if (this.len > max) throw new FramingError(GrpcStatus.RESOURCE_EXHAUSTED, 'body_too_large', `the request message (${this.len} bytes) exceeds the limit of ${max} bytes`);
    if (this.len === 0) { this.phase = 2; return 0; }
    if (chunk.length - at >= this.len) {
      // The whole message is in this chunk (the usual case for small requests): read it where it is.
      this.msg = chunk.subarray(at, at + this.len);
      this.got = this.len;
      this.phase = 2;
      return this.len;
    }
    // A large message is kept as the chunks that arrived, joined once complete: memory follows the
    // bytes actually sent, not a length prefix a client may never honour.
    if (this.len > this.bodies.slabBytes >>> 2) this.parts = [];
    else this.msg = this.bodies.alloc(this.len, (this.lease = this.bodies.lease()));
    this.phase = 1;
    return 0;
  }

  private onEnd(): void {
    if (this.answered) return;
    if (this.phase !== 2) {
      this.fail(GrpcStatus.INTERNAL, 'framing', this.phase === 0 && this.prefixGot === 0
        ? 'the request stream ended without a request message'
        : 'the request stream ended inside a length-prefixed message (truncated)');
      return;
    }
    void this.process();
  }

  private onClose(): void {
    if (this.answered) return;
    // The client reset the stream (cancelled, or its own deadline) before we answered.
    this.finish('CANCELLED');
    if (this.handedOff) log.info({ protocol: 'grpc', signal: this.signal.name, tenant_id: this.principal.tenantId }, 'client cancelled an export already handed to Kafka; the data may still be stored');
  }

  private async process(): Promise<void> {
    let body = this.msg;
    try {
      if (this.flag === 1) {
        try {
          body = await (this.encoding === 'deflate' ? inflate : gunzip)(this.msg, { maxOutputLength: this.opts.maxRequestBytes });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
            throw new FramingError(GrpcStatus.RESOURCE_EXHAUSTED, 'body_too_large', `the decompressed request message exceeds the limit of ${this.opts.maxRequestBytes} bytes`);
          }
          // zlib's own message is left out: reasons name the rule, never anything derived from the body.
          throw new FramingError(GrpcStatus.INTERNAL, 'bad_encoding', `the message is not a valid ${this.encoding} stream`);
        } finally {
          this.releaseBody();
        }
      }
      if (this.answered) return; // the deadline passed meanwhile
      if (this.deadline !== undefined) {
        const left = this.deadline - performance.now();
        const wait = this.opts.ingestor.expectedWaitMs(body.length);
        if (wait >= left) {
          throw new FramingError(GrpcStatus.DEADLINE_EXCEEDED, 'deadline', left <= 0
            ? 'the call\'s deadline passed before its message was read; nothing was stored'
            : `Kafka's expected acknowledgement wait (${Math.ceil(wait)} ms) exceeds the call's remaining deadline (${Math.floor(left)} ms); nothing was stored, retry later`);
        }
      }
      const exported = this.opts.ingestor.export(this.signal, body, this.principal, this.traceparent);
      this.handedOff = true;
      // Ingestor.export has read the body by the time it returns its promise (records are copies).
      this.releaseBody();
      const outcome = await exported;
      if (this.answered) return;
      this.answered = true;
      const stream = this.stream;
      if (stream.destroyed || stream.closed) { this.finish('CANCELLED'); return; }
      let frame = EMPTY_MESSAGE;
      if (outcome.rejected > 0) {
        const s = this.signal;
        const payload = s.response.encode(s.response.fromObject({ partialSuccess: { [s.rejectedField]: outcome.rejected, errorMessage: outcome.message } })).finish();
        frame = Buffer.allocUnsafe(5 + payload.length);
        frame[0] = 0;
        frame.writeUInt32BE(payload.length, 1);
        frame.set(payload, 5);
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-accept-encoding': ACCEPT_ENCODING }, { waitForTrailers: true });
      stream.once('wantTrailers', sendOkTrailers);
      stream.end(frame);
      this.finish('OK');
    } catch (err) {
      this.releaseBody();
      if (err instanceof FramingError) this.fail(err.code, err.reason, err.message);
      else if (err instanceof IngestError) this.fail(grpcStatusOf[err.kind], err.reason, err.message, err.kind === 'unavailable');
      else {
        log.error({ tenant_id: this.principal.tenantId, error_message: String(err) }, 'unexpected error in gRPC export');
        this.fail(GrpcStatus.UNAVAILABLE, 'internal', 'internal error; retry later', true);
      }
    }
  }

  private deadlinePassed(): void {
    this.timer = undefined;
    if (this.answered) return;
    if (!this.handedOff) {
      this.fail(GrpcStatus.DEADLINE_EXCEEDED, 'deadline', 'the call\'s deadline passed before its message was read; nothing was stored');
      return;
    }
    // The records are with the producer; Kafka may still ack them (module comment).
    log.warn({ protocol: 'grpc', signal: this.signal.name, tenant_id: this.principal.tenantId }, 'deadline passed while waiting for Kafka; the data may still be stored and a retry may duplicate it');
    this.fail(GrpcStatus.DEADLINE_EXCEEDED, 'deadline_after_produce',
      'the call\'s deadline passed while waiting for Kafka\'s acknowledgement; the data may still be stored, so a retry may duplicate it');
  }

  private fail(code: number, reason: string, message: string, retry = false): void {
    if (this.answered) return;
    this.answered = true;
    this.releaseBody();
    log.info({ protocol: 'grpc', signal: this.signal.name, tenant_id: this.principal.tenantId, error_code: reason, error_message: message }, 'export refused');
    trailersOnly(this.stream, code, message, retry ? this.opts.retryAfterSeconds : undefined);
    this.finish(statusName(code));
  }

  private finish(code: string): void {
    this.answered = true;
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    metricChild(requests, `${this.signal.name}\0${code}`, () => receiverMetrics.requests.labels('grpc', this.signal.name, code)).inc();
    this.endTimer();
  }

  private releaseBody(): void {
    if (this.lease) { this.bodies.release(this.lease); this.lease = undefined; }
  }
}

/** Refuse a call before its message is read (bad headers): Trailers-Only, counted and logged. */
function refuse(stream: http2.ServerHttp2Stream, signal: string, code: number, reason: string, message: string, tenant?: string, httpStatus?: number): void {
  receiverMetrics.requests.inc({ protocol: 'grpc', signal, code: statusName(code) });
  log.info({ protocol: 'grpc', signal, tenant_id: tenant, error_code: reason, error_message: message }, 'export refused');
  trailersOnly(stream, code, message, undefined, httpStatus);
}

export async function startGrpcH2Server(opts: GrpcH2Options): Promise<RunningServer> {
  const bodies = new SlabPool();
  const sessions = new Set<http2.ServerHttp2Session>();
  const keepaliveTimeMs = opts.keepaliveTimeMs ?? 2 * 3600_000;
  const keepaliveTimeoutMs = opts.keepaliveTimeoutMs ?? 20_000;

  const onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
    // Stream errors (resets, a connection gone) end the call; 'close' does the accounting.
    stream.on('error', (err) => log.debug({ error_message: String(err) }, 'gRPC stream error'));
    const signal = byPath.get(headers[':path'] ?? '');
    const name = signal?.name ?? 'none';
    if (headers[':method'] !== 'POST') {
      refuse(stream, name, GrpcStatus.UNIMPLEMENTED, 'method', 'gRPC calls use POST', undefined, 405);
      return;
    }
    const contentType = headers['content-type'] ?? '';
    const base = contentType.split(';')[0]!.trim().toLowerCase();
    if (base !== 'application/grpc' && !base.startsWith('application/grpc+')) {
      // Header values are never echoed: `text/plain; password=...` happens.
      refuse(stream, name, GrpcStatus.INVALID_ARGUMENT, 'content_type', 'unsupported content-type; gRPC uses application/grpc or application/grpc+proto', undefined, 415);
      return;
    }
    if (base !== 'application/grpc' && base !== 'application/grpc+proto') {
      refuse(stream, name, GrpcStatus.UNIMPLEMENTED, 'content_type', 'only the protobuf message codec is served: use application/grpc or application/grpc+proto');
      return;
    }
    if (!signal) {
      // The path is not echoed: clients have been seen to put tokens in it.
      refuse(stream, name, GrpcStatus.UNIMPLEMENTED, 'unknown_method',
        'no such method; served: the Export methods of the OTLP TraceService, MetricsService and LogsService (v1)');
      return;
    }
    const encodingHeader = headers['grpc-encoding'];
    const encoding = typeof encodingHeader === 'string' ? encodingHeader.trim().toLowerCase() : encodingHeader === undefined ? 'identity' : '';
    if (encoding !== 'identity' && encoding !== 'gzip' && encoding !== 'deflate') {
      // The answer's grpc-accept-encoding header lists what is accepted (doc/compression.md).
      refuse(stream, name, GrpcStatus.UNIMPLEMENTED, 'grpc_encoding', `unsupported grpc-encoding; accepted: ${ACCEPT_ENCODING}`);
      return;
    }
    const timeoutMs = parseGrpcTimeout(headers['grpc-timeout']);
    if (Number.isNaN(timeoutMs)) {
      refuse(stream, name, GrpcStatus.INTERNAL, 'grpc_timeout', 'malformed grpc-timeout: 1 to 8 digits and a unit (H, M, S, m, u, n)');
      return;
    }
    let principal: Principal;
    try {
      const auth = headers.authorization;
      principal = authorizeIntake(opts.tokens, typeof auth === 'string' ? auth : undefined, `grpc ${signal.name}`);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      refuse(stream, name, grpcStatusOf[err.kind], err.kind, err.message);
      return;
    }
    const tp = headers.traceparent;
    new UnaryCall(stream, signal, principal, encoding, timeoutMs === undefined ? undefined : performance.now() + timeoutMs,
      typeof tp === 'string' ? tp : undefined, opts, bodies);
  };

  const server = http2.createServer({
    settings: { initialWindowSize: STREAM_WINDOW, maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
    // Node's default (10 MB) refuses new streams (ENHANCE_YOUR_CALM) once a connection buffers that
    // much; a connection's buffered data is bounded by its flow-control window instead.
    maxSessionMemory: 64,
  });
  server.on('stream', (stream, headers) => {
    try { onStream(stream, headers); } catch (err) {
      log.error({ error_message: String(err) }, 'unexpected error in a gRPC call');
      trailersOnly(stream, GrpcStatus.INTERNAL, 'internal error');
    }
  });
  server.on('session', (session) => {
    sessions.add(session);
    session.on('error', (err) => log.debug({ error_message: String(err) }, 'gRPC connection error'));
    const setWindow = () => { try { session.setLocalWindowSize(CONNECTION_WINDOW); } catch { /* closed meanwhile */ } };
    if (session.connecting) session.once('connect', setWindow); else setWindow();
    // Keepalive: a peer that stops answering pings is gone (NAT timeouts, dead hosts): drop its connection.
    const keepalive = setInterval(() => { sendKeepalive(session, keepaliveTimeoutMs); }, keepaliveTimeMs);
    keepalive.unref();
    session.once('close', () => { clearInterval(keepalive); sessions.delete(session); });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => { server.off('error', reject); resolve(); });
  });
  server.on('error', (err) => log.error({ error_message: String(err) }, 'gRPC server error'));
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : opts.port,
    close: async () => {
      // GOAWAY on every connection (no new calls), then wait for the calls in flight to be answered.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close();
      const force = setTimeout(() => { for (const s of sessions) s.destroy(undefined, NGHTTP2_CANCEL); }, opts.drainTimeoutMs ?? 5000);
      await closed;
      clearTimeout(force);
    },
  };
}

/**
 * One keepalive round: ping the peer and destroy the session if no answer comes within timeoutMs.
 * A session can be destroyed before its 'close' event clears the interval that calls this, and
 * ping() throws on a destroyed session; an exception thrown from a timer would end the process.
 */
export function sendKeepalive(session: http2.Http2Session, timeoutMs: number): void {
  if (session.destroyed || session.closed) return;
  const dead = setTimeout(() => session.destroy(), timeoutMs);
  dead.unref();
  try {
    const sent = session.ping((err) => { clearTimeout(dead); if (err) session.destroy(); });
    if (!sent) clearTimeout(dead);
  } catch {
    clearTimeout(dead);
  }
}
