// The receiver's wire-level walker against protobufjs as the reference decoder.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signals, types, decodeLogs } from '../../lib/otlp/proto.ts';
import { parseExportRequest, splitIntoRecords, WireError, TenantMismatchError } from '../../lib/otlp/wire.ts';
import { spanObject, tracesRequest } from '../support/otlp.ts';

const limits = { maxAttributeValueBytes: 4096 };
const plain = (b: Uint8Array) => types.ExportTraceServiceRequest.toObject(types.ExportTraceServiceRequest.decode(b), { longs: String, bytes: String, defaults: true });

function randomRequest(seed: number): Uint8Array {
  const n = (k: number) => (seed * 7919 + k * 104729) % 97;
  return tracesRequest(Array.from({ length: 1 + (n(1) % 3) }, (_, r) => ({
    attrs: { 'service.name': `svc-${r}`, 'host.name': 'ünïcødé-host' },
    scopes: Array.from({ length: 1 + (n(2 + r) % 3) }, (_, s) => ({
      name: `scope-${s}`,
      spans: Array.from({ length: n(5 + s) % 6 }, (_, i) => spanObject(`span-${r}-${s}-${i}`, { k: 'v'.repeat(n(i) * 3), num: i }, {
        events: [{ name: 'ev', timeUnixNano: '1', attributes: [{ key: 'e', value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: 3 }] } } }] }],
        links: [{ traceId: randomBytes(16), spanId: randomBytes(8), attributes: [{ key: 'kv', value: { kvlistValue: { values: [{ key: 'x', value: { boolValue: true } }] } } }] }],
        status: { code: 2, message: 'boom' },
      })),
    })),
  })));
}

describe('parseExportRequest + splitIntoRecords', () => {
  it('re-encodes valid requests exactly, with tenant.id added to each resource', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const body = randomRequest(seed);
      const parsed = parseExportRequest(signals.traces, body, 'acme', limits);
      const { records } = splitIntoRecords(parsed, 1_000_000);
      const want = plain(body) as { resourceSpans: { resource: { attributes: unknown[] }; scopeSpans: { spans: unknown[] }[] }[] };
      const nonEmpty = want.resourceSpans.filter((r) => r.scopeSpans.length > 0);
      for (const r of nonEmpty) r.resource.attributes.push({ key: 'tenant.id', value: { stringValue: 'acme' } });
      if (nonEmpty.length === 0) { expect(records).toEqual([]); continue; }
      expect(records).toHaveLength(1);
      expect(plain(records[0]!)).toEqual({ resourceSpans: nonEmpty });
      expect(parsed.accepted).toBe(nonEmpty.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)).length);
    }
  });

  it('never throws anything but WireError on truncated or corrupted input', () => {
    const body = randomRequest(3);
    let wireErrors = 0;
    for (let cut = 0; cut < body.length; cut++) {
      try { parseExportRequest(signals.traces, body.subarray(0, cut), 'acme', limits); } catch (e) { expect(e).toBeInstanceOf(WireError); wireErrors++; }
    }
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.from(body);
      const pos = (i * 7919) % b.length;
      b[pos] = b[pos]! ^ (1 << (i % 8));
      try { parseExportRequest(signals.traces, b, 'acme', limits); } catch (e) {
        if (!(e instanceof WireError) && !(e instanceof TenantMismatchError)) throw e;
      }
    }
    expect(wireErrors).toBeGreaterThan(body.length / 2);
  });

  it('refuses invalid UTF-8 in strings, as a strict protobuf decoder does', () => {
    const body = Buffer.from(tracesRequest([{ scopes: [{ name: 's', spans: [spanObject('AAAA')] }] }]));
    const at = body.indexOf(Buffer.from('AAAA'));
    body[at] = 0xff;
    expect(() => parseExportRequest(signals.traces, body, 'acme', limits)).toThrow(/invalid UTF-8/);
  });

  it('keeps a matching tenant.id claim as it is and refuses a foreign one', () => {
    const same = tracesRequest([{ attrs: { 'tenant.id': 'acme' }, scopes: [{ name: 's', spans: [spanObject('x')] }] }]);
    const rec = splitIntoRecords(parseExportRequest(signals.traces, same, 'acme', limits), 1e6).records[0]!;
    const attrs = (plain(rec) as { resourceSpans: { resource: { attributes: { key: string }[] } }[] }).resourceSpans[0]!.resource.attributes;
    expect(attrs.filter((a) => a.key === 'tenant.id')).toHaveLength(1);
    const other = tracesRequest([{ attrs: { 'tenant.id': 'globex' }, scopes: [{ name: 's', spans: [spanObject('x')] }] }]);
    expect(() => parseExportRequest(signals.traces, other, 'acme', limits)).toThrow(TenantMismatchError);
  });

  it('counts log records and keeps event_name and unknown fields', () => {
    const msg = types.ExportLogsServiceRequest.fromObject({ resourceLogs: [{ scopeLogs: [{ logRecords: [{ eventName: 'policy.changed', body: { stringValue: 'b' } }, { severityNumber: 17 }] }] }] });
    const raw = Buffer.from(types.ExportLogsServiceRequest.encode(msg).finish());
    // An unknown top-level field (number 99, varint) is skipped without failing the request
    // (unknown fields inside resources, scopes and items are carried through as raw bytes).
    const withUnknown = Buffer.concat([raw, Buffer.from([0x98, 0x06, 0x2a])]);
    const parsed = parseExportRequest(signals.logs, withUnknown, 'acme', limits);
    expect(parsed.accepted).toBe(2);
    const rec = splitIntoRecords(parsed, 1e6).records[0]!;
    expect(decodeLogs(rec).resourceLogs[0]!.scopeLogs[0]!.logRecords.map((r) => r.eventName)).toEqual(['policy.changed', '']);
  });
});
