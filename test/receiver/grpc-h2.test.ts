// The node:http2 gRPC front end (receiver/grpc-h2.ts) at the frame level, from a raw node:http2
// client: what gRPC over HTTP/2 (grpc/grpc doc/PROTOCOL-HTTP2.md, doc/compression.md) says a
// server answers to compressed messages, bad framing, bad headers, deadlines and size limits;
// many concurrent streams on one connection; keepalive pings; GOAWAY and the drain on close.
import http2 from 'node:http2';
import { deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import type { StellaConfig } from '../../lib/config.ts';
import { decodeTraces, signals, types } from '../../lib/otlp/proto.ts';
import { parseGrpcTimeout, percentEncode, sendKeepalive } from '../../receiver/grpc-h2.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { readRecords } from '../support/kafka.ts';
import { spanObject, tracesRequest } from '../support/otlp.ts';
import { startTestReceiver, TOKENS } from '../support/receiver.ts';

const MAX_REQUEST = 1024 * 1024;
const TRACES = signals.traces.grpcPath;
let cfg: StellaConfig;
let receiver: RunningReceiver;
let session: http2.ClientHttp2Session;

beforeAll(async () => {
  // Admission by expected wait off: the concurrent-streams test is about the transport, not backpressure.
  ({ cfg, receiver } = await startTestReceiver({ receiver: { maxRequestBytes: MAX_REQUEST, grpcKeepaliveTimeMs: 1000, maxQueueWaitMs: 0 } }));
  session = http2.connect(`http://127.0.0.1:${receiver.grpcPort}`);
});
afterAll(async () => {
  session?.close();
  await receiver?.close();
});

const body = (marker: string, n = 1) => tracesRequest([{ attrs: { 'service.name': 'h2-conformance' }, scopes: [{ name: 's', spans: Array.from({ length: n }, (_, i) => spanObject(`${marker}-${i}`)) }] }]);
function frame(msg: Uint8Array, flag = 0, length = msg.length): Buffer {
  const f = Buffer.alloc(5 + msg.length);
  f[0] = flag;
  f.writeUInt32BE(length, 1);
  f.set(msg, 5);
  return f;
}

interface Answer {
  httpStatus: number;
  headers: http2.IncomingHttpHeaders;
  grpcStatus: number;
  grpcMessage: string;
  data: Buffer;
  details?: { code: number; message: string; retryDelaySeconds?: number };
}

/** One call; `send` writes the request (default: `chunks`, then END_STREAM). */
function call(opts: { path?: string; headers?: http2.OutgoingHttpHeaders; chunks?: Buffer[]; send?: (req: http2.ClientHttp2Stream) => void; on?: http2.ClientHttp2Session }): Promise<Answer> {
  const s = opts.on ?? session;
  const req = s.request({ ':method': 'POST', ':path': opts.path ?? TRACES, 'content-type': 'application/grpc', te: 'trailers',
    authorization: `Bearer ${TOKENS.acme}`, ...opts.headers });
  return new Promise((resolve, reject) => {
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const data: Buffer[] = [];
    req.on('response', (h) => { headers = h; });
    req.on('trailers', (t) => { trailers = t; });
    req.on('data', (d: Buffer) => data.push(d));
    req.on('error', () => {}); // RST_STREAM after a Trailers-Only answer: the answer is what counts
    req.on('close', () => {
      const all = { ...headers, ...trailers };
      if (all['grpc-status'] === undefined) { reject(new Error(`no grpc-status (http ${headers[':status']}, rst ${req.rstCode})`)); return; }
      const bin = all['grpc-status-details-bin'] as string | undefined;
      let details: Answer['details'];
      if (bin) {
        const st = types.Status.toObject(types.Status.decode(Buffer.from(bin, 'base64')), { longs: Number }) as { code: number; message: string; details?: { type_url: string; value: Uint8Array }[] };
        const ri = st.details?.find((d) => d.type_url.endsWith('google.rpc.RetryInfo'));
        details = { code: st.code, message: st.message,
          retryDelaySeconds: ri ? Number((types.RetryInfo.toObject(types.RetryInfo.decode(ri.value), { longs: Number }) as { retryDelay: { seconds: number } }).retryDelay.seconds) : undefined };
      }
      resolve({ httpStatus: Number(headers[':status']), headers: all, grpcStatus: Number(all['grpc-status']), grpcMessage: decodeURIComponent(String(all['grpc-message'] ?? '')), data: Buffer.concat(data), details });
    });
    if (opts.send) opts.send(req);
    else { for (const c of opts.chunks ?? []) req.write(c); req.end(); }
  });
}

const spanNames = async (): Promise<string[]> => (await readRecords([cfg.kafka.topics.spans], 100_000, 2500))
  .flatMap((r) => decodeTraces(r.value).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans.map((x) => x.name))));

describe('messages', () => {
  it('uncompressed, gzip and deflate messages are accepted, answered with one empty message and grpc-status 0, and land', async () => {
    const m = `h2-enc-${Date.now()}`;
    const plain = await call({ chunks: [frame(body(`${m}-plain`))] });
    const gz = await call({ headers: { 'grpc-encoding': 'gzip' }, chunks: [frame(gzipSync(body(`${m}-gzip`)), 1)] });
    const df = await call({ headers: { 'grpc-encoding': 'deflate' }, chunks: [frame(deflateSync(body(`${m}-deflate`)), 1)] });
    // grpc-encoding set, Compressed-Flag 0: that message is not compressed (allowed per message).
    const mixed = await call({ headers: { 'grpc-encoding': 'gzip' }, chunks: [frame(body(`${m}-flag0`))] });
    for (const a of [plain, gz, df, mixed]) {
      expect(a.httpStatus).toBe(200);
      expect(a.headers['content-type']).toBe('application/grpc');
      expect(a.grpcStatus).toBe(0);
      expect(a.data).toEqual(Buffer.alloc(5)); // one uncompressed zero-length message: the empty response
      expect(String(a.headers['grpc-accept-encoding']).split(',')).toEqual(expect.arrayContaining(['identity', 'gzip', 'deflate']));
    }
    const names = await spanNames();
    for (const k of ['plain', 'gzip', 'deflate', 'flag0']) expect(names).toContain(`${m}-${k}-0`);
  });

  it('a message split over many DATA frames at odd boundaries (the prefix too) is reassembled', async () => {
    const m = `h2-split-${Date.now()}`;
    const f = frame(body(m, 50));
    const chunks: Buffer[] = [f.subarray(0, 2), f.subarray(2, 4)];
    for (let at = 4; at < f.length; at += 997) chunks.push(f.subarray(at, Math.min(f.length, at + 997)));
    const a = await call({ send: (req) => { let i = 0; const next = () => { if (i < chunks.length) req.write(chunks[i++], next); else req.end(); }; next(); } });
    expect(a.grpcStatus).toBe(0);
    const names = await spanNames();
    for (let i = 0; i < 50; i++) expect(names).toContain(`${m}-${i}`);
  });

  it('a message over a quarter slab (kept as its chunks, joined once complete) lands whole', async () => {
    const m = `h2-large-${Date.now()}`;
    const req = tracesRequest([{ scopes: [{ name: 's', spans: Array.from({ length: 300 }, (_, i) => spanObject(`${m}-${i}`, { pad: 'p'.repeat(2000) })) }] }]);
    expect(req.length).toBeGreaterThan(512 * 1024);
    expect((await call({ chunks: [frame(req)] })).grpcStatus).toBe(0);
    const names = new Set(await spanNames());
    for (let i = 0; i < 300; i++) expect(names.has(`${m}-${i}`)).toBe(true);
  });

  it('memory follows the bytes sent, not the length prefix: 100 calls promising 1 MiB and sending 100 bytes hold little', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const reqs = Array.from({ length: 100 }, () => {
      const req = session.request({ ':method': 'POST', ':path': TRACES, 'content-type': 'application/grpc', te: 'trailers', authorization: `Bearer ${TOKENS.acme}` });
      req.on('error', () => {});
      req.write(frame(Buffer.alloc(100), 0, MAX_REQUEST));
      return req;
    });
    await new Promise((r) => setTimeout(r, 500));
    const held = process.memoryUsage().arrayBuffers - before;
    for (const r of reqs) r.close(http2.constants.NGHTTP2_CANCEL);
    expect(held).toBeLessThan(20 * 1024 * 1024); // preallocating would hold 100 MiB
  });

  it('a partial success is answered as an Export response message with grpc-status 0', async () => {
    const req = tracesRequest([{ scopes: [{ name: 's', spans: [spanObject('bad-ids', {}, { traceId: Buffer.alloc(16) }), spanObject(`h2-partial-${Date.now()}`)] }] }]);
    const a = await call({ chunks: [frame(req)] });
    expect(a.grpcStatus).toBe(0);
    expect(a.data.readUInt32BE(1)).toBe(a.data.length - 5);
    const resp = types.ExportTraceServiceResponse.toObject(types.ExportTraceServiceResponse.decode(a.data.subarray(5)), { longs: Number }) as { partialSuccess: { rejectedSpans: number; errorMessage: string } };
    expect(resp.partialSuccess.rejectedSpans).toBe(1);
    expect(resp.partialSuccess.errorMessage).toMatch(/trace ids must be 16 bytes/);
  });
});

describe('bad framing and headers', () => {
  const good = () => body('never-stored');
  const cases: [string, () => Promise<Answer>, number, RegExp, number?][] = [
    ['a truncated length prefix', () => call({ chunks: [frame(good()).subarray(0, 3)] }), grpc.status.INTERNAL, /ended inside a length-prefixed message/],
    ['a message shorter than its length prefix', () => call({ chunks: [frame(good()).subarray(0, 40)] }), grpc.status.INTERNAL, /ended inside a length-prefixed message/],
    ['no message at all', () => call({ chunks: [] }), grpc.status.INTERNAL, /ended without a request message/],
    ['two messages in a unary call', () => call({ chunks: [frame(good()), frame(good())] }), grpc.status.INTERNAL, /more than one request message/],
    ['a Compressed-Flag of 2', () => call({ chunks: [frame(good(), 2)] }), grpc.status.INTERNAL, /Compressed-Flag byte of a message must be 0 or 1/],
    ['Compressed-Flag 1 without grpc-encoding', () => call({ chunks: [frame(gzipSync(good()), 1)] }), grpc.status.INTERNAL, /needs a grpc-encoding header/],
    ['Compressed-Flag 1 with grpc-encoding identity', () => call({ headers: { 'grpc-encoding': 'identity' }, chunks: [frame(gzipSync(good()), 1)] }), grpc.status.INTERNAL, /needs a grpc-encoding header/],
    ['a grpc-encoding the server lacks', () => call({ headers: { 'grpc-encoding': 'snappy' }, chunks: [frame(good(), 1)] }), grpc.status.UNIMPLEMENTED, /unsupported grpc-encoding; accepted: identity,deflate,gzip/],
    ['a gzip flag on bytes that are not gzip', () => call({ headers: { 'grpc-encoding': 'gzip' }, chunks: [frame(Buffer.from('not gzip at all'), 1)] }), grpc.status.INTERNAL, /not a valid gzip stream/],
    ['a length prefix over the limit (refused before the body)', () => call({ send: (req) => req.write(frame(Buffer.alloc(0), 0, MAX_REQUEST + 1)) }), grpc.status.RESOURCE_EXHAUSTED, new RegExp(`request message \\(${MAX_REQUEST + 1} bytes\\) exceeds the limit of ${MAX_REQUEST} bytes`)],
    ['gzip that inflates over the limit', () => call({ headers: { 'grpc-encoding': 'gzip' }, chunks: [frame(gzipSync(Buffer.alloc(MAX_REQUEST * 4)), 1)] }), grpc.status.RESOURCE_EXHAUSTED, new RegExp(`decompressed request message exceeds the limit of ${MAX_REQUEST} bytes`)],
    ['a non-gRPC content-type', () => call({ headers: { 'content-type': 'application/json' }, chunks: [frame(good())] }), grpc.status.INVALID_ARGUMENT, /unsupported content-type/, 415],
    ['application/grpc+json', () => call({ headers: { 'content-type': 'application/grpc+json' }, chunks: [frame(good())] }), grpc.status.UNIMPLEMENTED, /only the protobuf message codec/],
    ['an unknown method', () => call({ path: '/opentelemetry.proto.collector.trace.v1.TraceService/Nope', chunks: [frame(good())] }), grpc.status.UNIMPLEMENTED, /no such method/],
    ['GET', () => call({ headers: { ':method': 'GET' }, send: (req) => req.end() }), grpc.status.UNIMPLEMENTED, /gRPC calls use POST/, 405],
    ['a malformed grpc-timeout', () => call({ headers: { 'grpc-timeout': '123456789S' }, chunks: [frame(good())] }), grpc.status.INTERNAL, /malformed grpc-timeout/],
    ['a missing token (before the body is read)', () => call({ headers: { authorization: '' }, send: (req) => req.write(frame(good()).subarray(0, 10)) }), grpc.status.UNAUTHENTICATED, /missing bearer token/],
    ['a token without otlp:write', () => call({ headers: { authorization: `Bearer ${TOKENS.acmeReadOnly}` }, chunks: [frame(good())] }), grpc.status.PERMISSION_DENIED, /lacks scope otlp:write/],
    ['malformed protobuf', () => call({ chunks: [frame(good().subarray(0, 30))] }), grpc.status.INVALID_ARGUMENT, /malformed OTLP traces protobuf/],
  ];
  it.each(cases)('%s', async (_name, run, code, message, httpStatus = 200) => {
    const a = await run();
    expect(a.httpStatus).toBe(httpStatus);
    expect(a.grpcStatus).toBe(code);
    expect(a.grpcMessage).toMatch(message);
    // google.rpc.Status in grpc-status-details-bin says the same; RetryInfo only on UNAVAILABLE.
    expect(a.details).toMatchObject({ code, message: a.grpcMessage });
    expect(a.details!.retryDelaySeconds).toBeUndefined();
    expect(a.data.length).toBe(0); // Trailers-Only
    expect(a.grpcMessage).not.toContain(TOKENS.acmeReadOnly);
  });

  it('the connection survives all of that: a good call after them on the same session lands', async () => {
    const m = `h2-after-bad-${Date.now()}`;
    expect((await call({ chunks: [frame(body(m))] })).grpcStatus).toBe(0);
    const names = await spanNames();
    expect(names).toContain(`${m}-0`);
    expect(names).not.toContain('never-stored-0');
  });

  it('grpc-timeout and grpc-message encodings', () => {
    expect(parseGrpcTimeout('5S')).toBe(5000);
    expect(parseGrpcTimeout('250m')).toBe(250);
    expect(parseGrpcTimeout('2H')).toBe(7_200_000);
    expect(parseGrpcTimeout('10000u')).toBeCloseTo(10);
    expect(parseGrpcTimeout(undefined)).toBeUndefined();
    for (const bad of ['', '5', 'S', '-1S', '123456789S', '5s', '1.5S']) expect(parseGrpcTimeout(bad)).toBeNaN();
    expect(percentEncode('plain text: ok')).toBe('plain text: ok');
    expect(percentEncode('100% über\n')).toBe('100%25 %C3%BCber%0A');
    expect(decodeURIComponent(percentEncode('a%b ü\t'))).toBe('a%b ü\t');
  });
});

describe('deadlines', () => {
  it('a deadline that passes before the message is complete: DEADLINE_EXCEEDED, nothing stored', async () => {
    const m = `h2-late-${Date.now()}`;
    const f = frame(body(m));
    const a = await call({ headers: { 'grpc-timeout': '150m' }, send: (req) => { req.write(f.subarray(0, 20)); setTimeout(() => { if (!req.closed) req.end(f.subarray(20)); }, 600); } });
    expect(a.grpcStatus).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(a.grpcMessage).toMatch(/deadline passed before its message was read; nothing was stored/);
    const after = `h2-after-late-${Date.now()}`;
    expect((await call({ chunks: [frame(body(after))] })).grpcStatus).toBe(0);
    const names = await spanNames();
    expect(names).toContain(`${after}-0`); // same tenant key, same partition: read past where the late one would be
    expect(names).not.toContain(`${m}-0`);
  });

  it('a generous deadline does not get in the way', async () => {
    const m = `h2-deadline-ok-${Date.now()}`;
    const a = await call({ headers: { 'grpc-timeout': '10S' }, chunks: [frame(body(m))] });
    expect(a.grpcStatus).toBe(0);
    expect(await spanNames()).toContain(`${m}-0`);
  });
});

describe('connections', () => {
  it('300 concurrent streams on one connection are all answered and all land', async () => {
    const m = `h2-many-${Date.now()}`;
    const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => call({ chunks: [frame(body(`${m}-${i}`))] })));
    const refused = answers.filter((a) => a.grpcStatus !== 0);
    expect(refused.map((a) => `${a.grpcStatus} ${a.grpcMessage}`)).toEqual([]);
    const names = new Set(await spanNames());
    for (let i = 0; i < 300; i++) expect(names.has(`${m}-${i}-0`)).toBe(true);
  });

  it('pings an idle connection (receiver.grpcKeepaliveTimeMs)', async () => {
    const s = http2.connect(`http://127.0.0.1:${receiver.grpcPort}`);
    try {
      const pinged = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), 3000);
        s.once('ping', () => { clearTimeout(t); resolve(true); });
      });
      expect(pinged).toBe(true);
    } finally { s.close(); }
  });
  it('a keepalive round on a session destroyed before its close event is a no-op, not an exception that ends the process', async () => {
    // The keepalive interval is cleared on 'close', which Node emits after destroy(): a round can
    // fire in between, and ping() throws on a destroyed session (seen as an uncaught exception).
    const s = http2.connect(`http://127.0.0.1:${receiver.grpcPort}`);
    await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    s.destroy();
    expect(s.destroyed).toBe(true);
    expect(() => s.ping(() => {})).toThrow(); // what the round used to do
    expect(() => sendKeepalive(s, 50)).not.toThrow();
  });
});

describe('GOAWAY on close', () => {
  it('close() sends GOAWAY, answers the calls in flight (their data lands), and takes no new ones', async () => {
    const { cfg: c2, receiver: r2 } = await startTestReceiver();
    const s = http2.connect(`http://127.0.0.1:${r2.grpcPort}`);
    const goaway = new Promise<number>((resolve) => s.once('goaway', (code) => resolve(code)));
    const m = `h2-goaway-${Date.now()}`;
    // A load of calls; close() starts while some are in flight (waiting for Kafka's ack).
    const results: { i: number; code: number | 'error' }[] = [];
    let closing = false;
    let startedBeforeClose = 0;
    const one = async (i: number) => {
      try {
        const a = await call({ on: s, chunks: [frame(body(`${m}-${i}`))] });
        results.push({ i, code: a.grpcStatus });
      } catch { results.push({ i, code: 'error' }); }
    };
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) { inflight.push(one(i)); await new Promise((r) => setTimeout(r, 5)); }
    startedBeforeClose = inflight.length;
    closing = true;
    const closed = r2.close();
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    await Promise.all(inflight);
    await closed;
    expect(closing).toBe(true);
    expect(results.length).toBe(startedBeforeClose);
    // Every call the server took was answered OK (drained, not cut); a refused one is not an error answer.
    const ok = results.filter((x) => x.code === 0).map((x) => x.i);
    expect(ok.length).toBeGreaterThan(0);
    expect(results.filter((x) => x.code !== 0 && x.code !== 'error' && x.code !== grpc.status.UNAVAILABLE)).toEqual([]);
    const names = new Set((await readRecords([c2.kafka.topics.spans], 100_000, 3000))
      .flatMap((r) => decodeTraces(r.value).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((sc) => sc.spans.map((x) => x.name)))));
    for (const i of ok) expect(names.has(`${m}-${i}-0`)).toBe(true);
    // A new call on that connection after GOAWAY does not reach the (closed) server.
    await expect((async () => call({ on: s, chunks: [frame(body(`${m}-late`))] }))()).rejects.toThrow();
    s.destroy();
  });
});
