// lib/otlp/wire.ts checks the common KeyValue shapes inline (walkKeyValue) and hands anything else to
// the generic schema walk. Both paths must accept, refuse and flag exactly alike: every AnyValue
// kind, long lengths, unknown fields, invalid UTF-8, and the attribute size limit at every depth.
import { describe, expect, it } from 'vitest';
import { signals, types } from '../../lib/otlp/proto.ts';
import { parseExportRequest, splitIntoRecords, WireError } from '../../lib/otlp/wire.ts';
import { spanObject, tracesRequest } from '../support/otlp.ts';

const plain = (b: Uint8Array) => types.ExportTraceServiceRequest.toObject(types.ExportTraceServiceRequest.decode(b), { longs: String, bytes: String, defaults: true });
type Attr = { key: string; value: Record<string, unknown> };

function request(attributes: Attr[]): Buffer {
  const span = { ...spanObject('s', {}), attributes };
  return Buffer.from(tracesRequest([{ attrs: { 'service.name': 'svc' }, scopes: [{ name: 'sc', spans: [span] }] }]));
}

function accepted(body: Uint8Array, maxAttributeValueBytes = 4096) {
  const parsed = parseExportRequest(signals.traces, body, 'acme', { maxAttributeValueBytes });
  return { parsed, records: splitIntoRecords(parsed, 1_000_000).records };
}

describe('attributes through the inline KeyValue path and the generic walk', () => {
  it('carries every AnyValue kind through unchanged, short and long', () => {
    const long = 'ℓ'.repeat(200); // 600 bytes: a two-byte length, the generic path
    const attributes: Attr[] = [
      { key: 'str', value: { stringValue: 'value' } },
      { key: 'empty', value: { stringValue: '' } },
      { key: 'long', value: { stringValue: long } },
      { key: long, value: { intValue: 1 } },
      { key: 'bool', value: { boolValue: true } },
      { key: 'int', value: { intValue: -1 } }, // a ten-byte varint
      { key: 'big', value: { intValue: '9007199254740993' } },
      { key: 'double', value: { doubleValue: 3.25 } },
      { key: 'bytes', value: { bytesValue: Buffer.from([0, 255, 128]) } },
      { key: 'array', value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: 2 }] } } },
      { key: 'kvlist', value: { kvlistValue: { values: [{ key: 'inner', value: { stringValue: 'x' } }] } } },
      { key: 'none', value: {} },
    ];
    const body = request(attributes);
    const { parsed, records } = accepted(body);
    expect(parsed.accepted).toBe(1);
    const want = plain(body) as { resourceSpans: { resource: { attributes: unknown[] } }[] };
    want.resourceSpans[0]!.resource.attributes.push({ key: 'tenant.id', value: { stringValue: 'acme' } });
    expect(plain(records[0]!)).toEqual(want);
  });

  it('applies the attribute size limit to values at every depth and to keys only inside a value', () => {
    const over = 'x'.repeat(11);
    const cases: [string, Attr, boolean][] = [
      ['string value', { key: 'k', value: { stringValue: over } }, true],
      ['bytes value', { key: 'k', value: { bytesValue: Buffer.from(over) } }, true],
      ['top-level key', { key: over, value: { intValue: 1 } }, false],
      ['key inside a kvlist', { key: 'k', value: { kvlistValue: { values: [{ key: over, value: { boolValue: true } }] } } }, true],
      ['value inside an array', { key: 'k', value: { arrayValue: { values: [{ stringValue: over }] } } }, true],
      ['value at the limit', { key: 'k', value: { stringValue: 'x'.repeat(10) } }, false],
    ];
    for (const [name, attr, refused] of cases) {
      const { parsed } = accepted(request([attr]), 10);
      expect(parsed.rejected.get('attribute_too_large') ?? 0, name).toBe(refused ? 1 : 0);
      expect(parsed.accepted, name).toBe(refused ? 0 : 1);
    }
  });

  it('refuses invalid UTF-8 in a key or a string value, and keeps an unknown KeyValue field', () => {
    for (const attr of [{ key: 'QQQQ', value: { stringValue: 'v' } }, { key: 'k', value: { stringValue: 'QQQQ' } }]) {
      const body = request([attr]);
      const at = body.indexOf('QQQQ');
      body[at + 1] = 0xff;
      expect(() => accepted(body)).toThrow(WireError);
    }
    // KeyValue { key: "k", value: { string_value: "v" }, 9: varint 1 }: the unknown field 9 goes
    // the generic way and is carried through into the record.
    const kv = Buffer.from([0x0a, 0x01, 0x6b, 0x12, 0x03, 0x0a, 0x01, 0x76, 0x48, 0x01]);
    const span = Buffer.concat([ld(1, Buffer.alloc(16, 1)), ld(2, Buffer.alloc(8, 2)), ld(5, Buffer.from('s')), ld(9, kv)]);
    const body = ld(1, Buffer.concat([ld(1, Buffer.alloc(0)), ld(2, ld(2, span))]));
    const { parsed, records } = accepted(body);
    expect(parsed.accepted).toBe(1);
    expect(records[0]!.includes(kv)).toBe(true);
  });
});

/** A length-delimited field (lengths under 128 here). */
const ld = (field: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([(field << 3) | 2, body.length]), body]);
