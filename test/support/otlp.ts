// Building OTLP requests and calling the receiver without an SDK, for bad-input and load tests.
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { signals, types, type SignalName } from '../../lib/otlp/proto.ts';

export function spanObject(name: string, attrs: Record<string, string | number> = {}, extra: Record<string, unknown> = {}) {
  return {
    traceId: randomBytes(16), spanId: randomBytes(8), name, kind: 2,
    startTimeUnixNano: '1763900000000000000', endTimeUnixNano: '1763900000250000000',
    attributes: Object.entries(attrs).map(([key, v]) => ({ key, value: typeof v === 'number' ? { intValue: v } : { stringValue: v } })),
    ...extra,
  };
}

export function tracesRequest(resources: { attrs?: Record<string, string>; scopes: { name: string; spans: unknown[] }[] }[]): Uint8Array {
  const msg = types.ExportTraceServiceRequest.fromObject({
    resourceSpans: resources.map((r) => ({
      resource: { attributes: Object.entries(r.attrs ?? { 'service.name': 'svc' }).map(([key, v]) => ({ key, value: { stringValue: v } })) },
      scopeSpans: r.scopes.map((s) => ({ scope: { name: s.name }, spans: s.spans })),
    })),
  });
  return types.ExportTraceServiceRequest.encode(msg).finish();
}

export interface GrpcAnswer { code: number; details: string; response?: Buffer; retryDelaySeconds?: number }

export async function grpcExport(port: number, signal: SignalName, body: Uint8Array, token?: string): Promise<GrpcAnswer> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  try {
    return await new Promise<GrpcAnswer>((resolve) => {
      client.makeUnaryRequest(signals[signal].grpcPath, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(body), md, (err, res) => {
        if (!err) return resolve({ code: 0, details: '', response: res });
        const bin = err.metadata?.get('grpc-status-details-bin')[0];
        let retryDelaySeconds: number | undefined;
        if (bin) {
          const st = types.Status.toObject(types.Status.decode(bin as Buffer), { longs: Number }) as { details?: { type_url: string; value: Uint8Array }[] };
          const ri = st.details?.find((d) => d.type_url?.endsWith('google.rpc.RetryInfo'));
          if (ri) retryDelaySeconds = Number((types.RetryInfo.toObject(types.RetryInfo.decode(ri.value), { longs: Number }) as { retryDelay: { seconds: number } }).retryDelay.seconds);
        }
        resolve({ code: err.code, details: err.details, retryDelaySeconds });
      });
    });
  } finally {
    client.close();
  }
}

export async function httpExport(port: number, path: string, body: Uint8Array | string, headers: Record<string, string>): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', body, headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

export function decodeStatus(body: Buffer, json: boolean): { code: number; message: string } {
  if (json) return JSON.parse(body.toString()) as { code: number; message: string };
  return types.Status.toObject(types.Status.decode(body)) as { code: number; message: string };
}
