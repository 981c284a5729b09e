// The pure core: event derivation (mapping, determinism, job transitions), exporter value forms,
// API parameter parsing and cursors. No I/O.
import { describe, expect, it } from 'vitest';
import { decodeLogs, decodeTraces } from '../../lib/otlp/proto.ts';
import { dateTime64 } from '../../lib/store/index.ts';
import { canonicalJson } from '../../processors/timeline/attributes.ts';
import { eventMessage, eventsFromLogs, eventsFromSpans, nanosToRfc3339 } from '../../processors/timeline/events.ts';
import { PoisonRecord, transformRecord } from '../../processors/timeline/transform.ts';
import { decodeCursor, encodeCursor, parseTime } from '../../api/params.ts';
import { parseTimelineQuery } from '../../api/timeline-routes.ts';
import { traceTable } from '../../processors/timeline/cli.ts';
import { apiPortFromEnv, DEFAULT_API_PORT } from '../../api/server.ts';
import { hexId, logsRequest, tracesRequest } from './support.ts';

const src = { topic: 'otlp_logs_clean', partition: 2, offset: '41' };
const T = 1_790_000_000_123_456_789n;

describe('event derivation', () => {
  it('maps a log record with event_name to an event, with documented attributes and canonical details', () => {
    const traceId = hexId(16);
    const spanId = hexId(8);
    const req = decodeLogs(logsRequest('acme', 'policy-engine', [
      { timeNs: T - 1n, body: 'not an event' },
      { eventName: 'policy.changed', timeNs: T, body: 'rule updated', traceId, spanId, attrs: {
        'stella.actor': 'user:alice', 'stella.resource.type': 'policy', 'stella.resource.id': 'pol-7', 'stella.project.id': 'proj-1', rule: 'deny-gpl' } },
    ]));
    const [e, ...rest] = eventsFromLogs(req, 'acme', src);
    expect(rest).toEqual([]);
    expect(e).toMatchObject({ tenant_id: 'acme', kind: 'policy.changed', actor: 'user:alice', resource_type: 'policy', resource_id: 'pol-7',
      project_id: 'proj-1', trace_id: traceId, span_id: spanId, ts: T.toString(), source: 'otlp_logs_clean/2/41#1' });
    expect(e!.event_id).toMatch(/^[0-9a-f]{32}$/);
    expect(e!.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.parse(e!.details)).toEqual({ service: 'policy-engine', severity_text: 'INFO', severity_number: 9, body: 'rule updated',
      scope: 'stella-workload', attributes: { 'stella.actor': 'user:alice', 'stella.resource.type': 'policy', 'stella.resource.id': 'pol-7',
        'stella.project.id': 'proj-1', rule: 'deny-gpl' } });
    expect(e!.details).toBe(canonicalJson(JSON.parse(e!.details)));
    const msg = eventMessage(e!);
    expect(msg.ts).toBe('2026-09-21T14:13:20.123456789Z');
    expect(msg.details).toEqual(JSON.parse(e!.details));
  });

  it('defaults the actor to the sending service and is deterministic across redelivery at another offset', () => {
    const buf = logsRequest('acme', 'sbom', [{ eventName: 'sbom.generated', timeNs: T }]);
    const a = eventsFromLogs(decodeLogs(buf), 'acme', src)[0]!;
    const b = eventsFromLogs(decodeLogs(buf), 'acme', { ...src, offset: '999' })[0]!;
    expect(a.actor).toBe('service:sbom');
    expect(b.event_id).toBe(a.event_id);
    expect(b.digest).toBe(a.digest);
    // Same bytes for another tenant, or from another service, are different events.
    expect(eventsFromLogs(decodeLogs(buf), 'globex', src)[0]!.event_id).not.toBe(a.event_id);
    const other = eventsFromLogs(decodeLogs(logsRequest('acme', 'sbom-2', [{ eventName: 'sbom.generated', timeNs: T }])), 'acme', src)[0]!;
    expect(other.event_id).not.toBe(a.event_id);
  });

  it('turns job spans into job.started + job.finished, failing ones into job.failed, and ignores plain spans', () => {
    const traceId = hexId(16);
    const req = decodeTraces(tracesRequest('acme', 'worker', [
      { traceId, spanId: hexId(8), name: 'GET /x', startNs: T, endNs: T + 10n },
      { traceId, spanId: hexId(8), name: 'sbom', startNs: T, endNs: T + 2_000n, attrs: { 'stella.job.name': 'sbom.compute', 'stella.job.id': 'job-1' } },
      { traceId, spanId: hexId(8), name: 'scan', startNs: T + 5n, endNs: T + 50n, error: true,
        attrs: { 'stella.job.name': 'advisory.link', 'stella.resource.type': 'component', 'stella.resource.id': 'pkg:npm/lodash@4.17.20' } },
      { traceId, spanId: hexId(8), name: 'req', startNs: T, endNs: T + 1n, attrs: { 'stella.request.name': 'export', 'stella.request.id': 'r-9' } },
    ]));
    const evs = eventsFromSpans(req, 'acme', { topic: 'otlp_spans_clean', partition: 0, offset: '1' });
    expect(evs.map((e) => [e.kind, e.resource_type, e.resource_id])).toEqual([
      ['job.started', 'job', 'job-1'], ['job.finished', 'job', 'job-1'],
      ['job.started', 'component', 'pkg:npm/lodash@4.17.20'], ['job.failed', 'component', 'pkg:npm/lodash@4.17.20'],
      ['request.started', 'request', 'r-9'], ['request.finished', 'request', 'r-9'],
    ]);
    expect(evs[1]!.ts).toBe((T + 2_000n).toString());
    expect(JSON.parse(evs[3]!.details)).toMatchObject({ job_name: 'advisory.link', status_code: 'Error', status_message: 'failed', duration_ns: '45' });
    expect(new Set(evs.map((e) => e.event_id)).size).toBe(evs.length);
  });

  it('rejects records without a valid tenant and undecodable bytes as poison', () => {
    const buf = logsRequest('acme', 's', [{ eventName: 'x', timeNs: T }]);
    expect(() => transformRecord('logs', { ...src, key: null, value: buf, headers: {} })).toThrow(PoisonRecord);
    expect(() => transformRecord('logs', { ...src, key: "acme' --", value: buf, headers: {} })).toThrow(PoisonRecord);
    expect(() => transformRecord('traces', { ...src, key: 'acme', value: Buffer.from([0xff, 0xff, 0xff]), headers: { tenant: 'acme' } })).toThrow(PoisonRecord);
  });
});

describe('time and parameters', () => {
  it('writes DateTime64 text exactly and renders RFC 3339 with nanoseconds', () => {
    expect(dateTime64('1790000000123456789')).toBe('2026-09-21 14:13:20.123456789');
    expect(dateTime64('0')).toBe('1970-01-01 00:00:00.000000000');
    expect(nanosToRfc3339('5')).toBe('1970-01-01T00:00:00.000000005Z');
    expect(parseTime('from', '2026-09-21T14:13:20.123456789Z')).toBe(1_790_000_000_123_456_789n);
    expect(parseTime('from', '2026-09-21T16:13:20.5+02:00')).toBe(1_790_000_000_500_000_000n);
    expect(() => parseTime('from', "2026' OR 1=1")).toThrow(/RFC 3339/);
  });

  it('issues opaque cursors that round-trip and refuses forged ones', () => {
    const c = encodeCursor('1790000000123456789', 'ab'.repeat(16));
    expect(c).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(c)).toEqual({ tsUnixNano: 1_790_000_000_123_456_789n, eventId: 'ab'.repeat(16) });
    for (const bad of ['', 'xyz', Buffer.from("v1:1:' OR 1=1").toString('base64url'), Buffer.from('v1:1:' + 'zz'.repeat(16)).toString('base64url')]) {
      expect(() => decodeCursor(bad)).toThrow(/cursor/);
    }
  });

  it('parses timeline filters: kind families, defaults, limits', () => {
    const now = 2_000_000_000_000_000_000n;
    const f = parseTimelineQuery(new URLSearchParams('kind=policy.*&kind=job.failed,job.started&resource_type=component&limit=5'), now, 10n);
    expect(f).toMatchObject({ kinds: ['job.failed', 'job.started'], kindPrefixes: ['policy.'], resourceType: 'component', limit: 5,
      toUnixNano: now + 1n, fromUnixNano: now + 1n - 10n });
    expect(() => parseTimelineQuery(new URLSearchParams('limit=0'), now, 10n)).toThrow(/limit/);
    expect(() => parseTimelineQuery(new URLSearchParams('limit=1001'), now, 10n)).toThrow(/limit/);
    expect(() => parseTimelineQuery(new URLSearchParams('trace_id=nothex'), now, 10n)).toThrow(/trace_id/);
    expect(() => parseTimelineQuery(new URLSearchParams('from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z'), now, 10n)).toThrow(/before/);
    expect(() => parseTimelineQuery(new URLSearchParams('project=a&project=b'), now, 10n)).toThrow(/once/);
  });

  it('reads the API port from STELLA_API_PORT, default 8080', () => {
    expect(apiPortFromEnv({})).toBe(DEFAULT_API_PORT);
    expect(DEFAULT_API_PORT).toBe(8080);
    expect(apiPortFromEnv({ STELLA_API_PORT: '9090' })).toBe(9090);
    expect(() => apiPortFromEnv({ STELLA_API_PORT: 'http' })).toThrow(/STELLA_API_PORT/);
  });

  it('renders the obs trace table in time order', () => {
    const out = traceTable({ trace_id: 't', spans: [{ ts: '2026-01-01T00:00:00.000000002Z', span_id: 's1', parent_span_id: '', name: 'fetch',
      service: 'src', duration_ns: '1500000', status: { code: 'Ok' } }],
    events: [{ ts: '2026-01-01T00:00:00.000000001Z', event_id: 'e', kind: 'job.started', actor: 'service:src', resource: { type: 'job', id: 'j' }, span_id: 's1' }] });
    const lines = out.trim().split('\n');
    expect(lines[0]).toBe('trace t: 1 spans, 1 events');
    expect(lines[2]).toMatch(/job\.started.*service:src job:j/);
    expect(lines[3]).toMatch(/fetch.*src 1\.5ms Ok/);
  });
});

describe('public surfaces', () => {
  it('export what the CLI and start-up wiring need', async () => {
    const tl = await import('../../processors/timeline/index.ts');
    const api = await import('../../api/index.ts');
    const store = await import('../../lib/store/index.ts');
    expect(typeof tl.startTimelineRunner).toBe('function');
    expect(typeof tl.obsTrace).toBe('function');
    expect(typeof api.startApiServer).toBe('function');
    expect(typeof api.registerTimelineRoutes).toBe('function');
    expect(typeof store.migrate).toBe('function');
    expect(typeof store.openStore).toBe('function');
  });
});
