// Shared helpers for the timeline tests: one chdb engine per vitest worker (chdb binds one data
// path per process), OTLP request builders, and a token registry with several tenants.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Long from 'long';
import { encode, type KeyValue } from '../../lib/otlp/proto.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { migrate, openStore, type Store } from '../../lib/store/index.ts';

let storePromise: Promise<Store> | undefined;
const DIR_PREFIX = 'stella-chdb-timeline-';

/** Remove data dirs of earlier runs (older than 30 minutes: no run lasts that long). */
function sweepStaleDirs(): void {
  const cutoff = Date.now() - 30 * 60_000;
  for (const name of readdirSync(os.tmpdir())) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const p = path.join(os.tmpdir(), name);
    try { if (statSync(p).mtimeMs < cutoff) rmSync(p, { recursive: true, force: true }); } catch { /* raced with another sweep */ }
  }
}

/** The worker's store (temp data dir), migrated once. Never closed: the engine lives for the worker. */
export function testStore(): Promise<Store> {
  storePromise ??= (async () => {
    sweepStaleDirs();
    const dir = mkdtempSync(path.join(os.tmpdir(), `${DIR_PREFIX}`));
    // The engine lives as long as the worker process; its data dir goes with it when the worker
    // exits normally (killed workers leave it to the next run's sweep).
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const store = await openStore({ dataPath: dir });
    await migrate(store, { timelineTtlDays: 180, otelTtlDays: 30 });
    return store;
  })();
  return storePromise;
}

export const hexId = (bytes: number): string => randomBytes(bytes).toString('hex');
export const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

export const str = (key: string, value: string): KeyValue => ({ key, value: { stringValue: value } });
const kvs = (o: Record<string, string>): KeyValue[] => Object.entries(o).map(([k, v]) => str(k, v));

export interface SpanSpec {
  traceId: string; spanId: string; parentSpanId?: string; name: string; startNs: bigint; endNs: bigint;
  attrs?: Record<string, string>; error?: boolean;
}
export interface LogSpec {
  eventName?: string; timeNs: bigint; body?: string; attrs?: Record<string, string>; traceId?: string; spanId?: string;
}

const bytes = (hex: string | undefined) => (hex ? Buffer.from(hex, 'hex') : Buffer.alloc(0));
const resource = (tenant: string, service: string) => ({ attributes: kvs({ 'service.name': service, 'tenant.id': tenant }) });

export function tracesRequest(tenant: string, service: string, spans: SpanSpec[]): Buffer {
  return Buffer.from(encode('traces', {
    resourceSpans: [{ resource: resource(tenant, service), scopeSpans: [{ scope: { name: 'stella-workload', version: '1' }, spans: spans.map((s) => ({
      traceId: bytes(s.traceId), spanId: bytes(s.spanId), parentSpanId: bytes(s.parentSpanId), name: s.name, kind: 1,
      startTimeUnixNano: Long.fromString(s.startNs.toString(), true), endTimeUnixNano: Long.fromString(s.endNs.toString(), true),
      attributes: kvs(s.attrs ?? {}), status: s.error ? { code: 2, message: 'failed' } : { code: 1 },
    })) }] }],
  }));
}

export function logsRequest(tenant: string, service: string, logs: LogSpec[]): Buffer {
  return Buffer.from(encode('logs', {
    resourceLogs: [{ resource: resource(tenant, service), scopeLogs: [{ scope: { name: 'stella-workload' }, logRecords: logs.map((l) => ({
      timeUnixNano: Long.fromString(l.timeNs.toString(), true), observedTimeUnixNano: Long.fromString(l.timeNs.toString(), true),
      severityNumber: 9, severityText: 'INFO', body: { stringValue: l.body ?? '' }, attributes: kvs(l.attrs ?? {}),
      traceId: bytes(l.traceId), spanId: bytes(l.spanId), eventName: l.eventName ?? '',
    })) }] }],
  }));
}

export function metricsRequest(tenant: string, service: string, name: string, value: number, timeNs: bigint): Buffer {
  return Buffer.from(encode('metrics', {
    resourceMetrics: [{ resource: resource(tenant, service), scopeMetrics: [{ scope: { name: 'stella-workload' }, metrics: [
      { name, unit: '1', gauge: { dataPoints: [{ attributes: kvs({ host: 'a' }), timeUnixNano: Long.fromString(timeNs.toString(), true), asDouble: value }] } },
      { name: `${name}_total`, sum: { aggregationTemporality: 2, isMonotonic: true, dataPoints: [{ timeUnixNano: Long.fromString(timeNs.toString(), true), asInt: Long.fromNumber(7) }] } },
      { name: `${name}_seconds`, histogram: { aggregationTemporality: 2, dataPoints: [{ timeUnixNano: Long.fromString(timeNs.toString(), true),
        count: Long.fromNumber(3), sum: 1.5, bucketCounts: [Long.fromNumber(1), Long.fromNumber(2)], explicitBounds: [0.5], min: 0.1, max: 0.9 }] } },
    ] }] }],
  }));
}

/** Tokens: acme and globex each have a reader; `multi` reads both; `noscope` has no read scope. */
export const TOKENS = {
  acme: 'tok-acme-reader', globex: 'tok-globex-reader', initech: 'tok-initech-reader', multi: 'tok-multi-reader',
  acmeObsOnly: 'tok-acme-obs-only', acmeIngest: 'tok-acme-ingest-only',
};

export function testTokens(): TokenRegistry {
  const t = (tok: string, scopes: string[], name: string) => ({ sha256: sha256Hex(tok), scopes, name });
  return new TokenRegistry([
    { id: 'acme', tokens: [t(TOKENS.acme, ['timeline:read', 'obs:read'], 'acme-reader'), t(TOKENS.acmeObsOnly, ['obs:read'], 'acme-obs'),
      t(TOKENS.acmeIngest, ['otlp:write'], 'acme-ingest')] },
    { id: 'globex', tokens: [t(TOKENS.globex, ['timeline:read', 'obs:read'], 'globex-reader')] },
    { id: 'initech', tokens: [t(TOKENS.initech, ['timeline:read', 'obs:read'], 'initech-reader'),
      t(TOKENS.multi, ['timeline:read', 'obs:read', 'timeline:read#tenant/globex', 'obs:read#tenant/globex'], 'multi')] },
  ]);
}

export async function getJson(base: string, pathAndQuery: string, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(base + pathAndQuery, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.status, body: await res.json() };
}

/** Poll until `check` returns a value (not undefined) or time runs out. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) { last = err; }
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
