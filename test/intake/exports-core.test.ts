// The orchestrator export contract's pure core: every rule of issue #13 §3, hostile input, DSSE.
import { describe, expect, it } from 'vitest';
import { parseStrictJson, StrictJsonError } from '../../lib/strict-json.ts';
import {
  checkExportSubmission, exportIdFor, exportRecord, exportRecordBytes, exportRowFromRecord, ExportRecordRefused, idempotencyKeyFor,
  ledgerExportEvent, ledgerExportEventId, MAX_EXPORT_BODY_BYTES, parseUtcTimestamp, transitionAllowed, validateExport, type ExportVerdict,
} from '../../processors/intake/exports.ts';
import { hex64, idemKey, signStatement, statementFor, TENANT, testKey, testVerifier, validExport } from './exports-support.ts';

const KEY = testKey('orch-key-1');
const verify = testVerifier({ [TENANT]: [KEY] });
const ctx = { tenant: TENANT, verify };
const body = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
const check = (v: unknown, c = ctx): ExportVerdict => checkExportSubmission(body(v), c);

function refused(v: ExportVerdict, reason: string, field?: string): void {
  expect(v.ok, JSON.stringify(v)).toBe(false);
  if (v.ok) return;
  expect(v.reason).toBe(reason);
  if (field !== undefined) expect(v.field).toBe(field);
}

function signed(over: Record<string, unknown> = {}, key = KEY): Record<string, unknown> {
  const e = validExport(over);
  return { ...e, signatures: [signStatement(statementFor(e), key)] };
}

describe('idempotency key', () => {
  it('is sha256 hex over the UTF-8 of runId + artifactHash + tenantId, prefixed sha256:', () => {
    // Worked examples, computed with coreutils: printf '%s' 'r1sha256:<64 x a>acme' | sha256sum
    const a = `sha256:${'a'.repeat(64)}`;
    expect(idempotencyKeyFor('r1', a, 'acme')).toBe('sha256:b34a825f5640afb4814f3dac769541e880be4d5670ea9bd2bccaa0f1b48933f2');
    // UTF-8, not UTF-16 or latin1: a non-ASCII run id hashes its UTF-8 bytes.
    expect(idempotencyKeyFor('ラン-é-🚀', a, 'acme')).toBe('sha256:59e3a98fef3e9c67294c5e4030a52bda18cfe273cda94dd426a778c8b851d0a0');
    expect(idempotencyKeyFor('ラン-é-🚀', a, 'acme')).toBe(idemKey('ラン-é-🚀', a, 'acme'));
  });

  it('accepts a key in upper-case hex, refuses a key over other fields', () => {
    const e = validExport();
    expect(check({ ...e, idempotencyKey: `sha256:${String(e.idempotencyKey).slice(7).toUpperCase()}` }).ok).toBe(true);
    refused(check({ ...e, idempotencyKey: idemKey('run-0002', String(e.artifactHash), TENANT) }), 'IDEMPOTENCY_KEY_MISMATCH', 'idempotencyKey');
    // Same bytes with a separator are a different key: the concatenation has none.
    refused(check({ ...e, idempotencyKey: idemKey('run-0001|', String(e.artifactHash), TENANT) }), 'IDEMPOTENCY_KEY_MISMATCH');
  });
});

describe('contract validation', () => {
  it('accepts a valid unsigned export and a valid signed one', () => {
    const v = check(validExport());
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.exportId).toBe(exportIdFor(TENANT, 'run-0001', `sha256:${hex64('artifact')}`));
    expect(v.envelopeDigests).toEqual([]);
    expect(v.completedAtNs! - v.startedAtNs).toBe(300_123_456_789n);
    const s = check(signed());
    expect(s.ok).toBe(true);
    if (s.ok) { expect(s.signerKeyids).toEqual(['orch-key-1']); expect(s.envelopeDigests[0]).toMatch(/^sha256:[0-9a-f]{64}$/); }
  });

  it('policyHash is optional (absent or null), every other field required', () => {
    const { policyHash: _p, ...noPolicy } = validExport();
    expect(check(noPolicy).ok).toBe(true);
    expect(check(validExport({ policyHash: null })).ok).toBe(true);
    for (const f of ['runId', 'jobType', 'artifactHash', 'startedAt', 'completedAt', 'status', 'manifestPath', 'logsPath', 'tenantId',
      'environment', 'idempotencyKey', 'signatures']) {
      const e = validExport();
      delete e[f];
      refused(check(e), 'MISSING_FIELD', f);
    }
  });

  it('wrong types are refused naming the field', () => {
    refused(check(validExport({ runId: 12 })), 'INVALID_TYPE', 'runId');
    refused(check(validExport({ runId: null })), 'INVALID_TYPE', 'runId');
    refused(check(validExport({ status: ['succeeded'] })), 'INVALID_TYPE', 'status');
    refused(check(validExport({ policyHash: 1 })), 'INVALID_TYPE', 'policyHash');
    refused(check(validExport({ startedAt: 1764583200000 })), 'INVALID_TYPE', 'startedAt');
    refused(check(validExport({ signatures: {} })), 'INVALID_TYPE', 'signatures');
    refused(check(validExport({ signatures: 'x' })), 'INVALID_TYPE', 'signatures');
    refused(check({ ...validExport(), tenantId: { toString: 'acme' } }), 'INVALID_TYPE', 'tenantId');
    refused(check([validExport()]), 'NOT_AN_OBJECT');
    refused(check('"x"'), 'NOT_AN_OBJECT');
    refused(check('null'), 'NOT_AN_OBJECT');
  });

  it('hash fields must match ^sha256:[A-Fa-f0-9]{64}$', () => {
    for (const bad of [hex64('x'), `sha256:${hex64('x').slice(1)}`, `sha256:${hex64('x')}0`, `SHA256:${hex64('x')}`, `sha256:${'g'.repeat(64)}`,
      `sha256:${hex64('x')}\n`, `sha512:${hex64('x')}`, ` sha256:${hex64('x')}`, `sha256:${'٣'.repeat(64)}`]) {
      refused(check(validExport({ artifactHash: bad })), 'INVALID_HASH', 'artifactHash');
      refused(check(validExport({ policyHash: bad })), 'INVALID_HASH', 'policyHash');
    }
    refused(check({ ...validExport(), idempotencyKey: 'not-a-hash' }), 'INVALID_HASH', 'idempotencyKey');
    // Mixed case is allowed by the pattern; the key is over the value as sent.
    const upper = `sha256:${hex64('artifact').toUpperCase()}`;
    const v = check(validExport({ artifactHash: upper }));
    expect(v.ok).toBe(true);
    if (v.ok) expect(v.artifactHash).toBe(`sha256:${hex64('artifact')}`);
  });

  it('paths are cas:// URIs into the tenant namespace, nothing else', () => {
    const h = hex64('m');
    for (const bad of [`https://example.com/${h}`, `file:///tmp/${h}`, `s3://bucket/${h}`, `cas://${TENANT}/${h.toUpperCase()}`, `cas://${TENANT}/${h}/x`,
      `cas://${TENANT}/${h}?x=1`, `cas://${TENANT}/../${h}`, `cas:///${h}`, `CAS://${TENANT}/${h}`, `cas://${TENANT}/sha256:${h}`, `/${TENANT}/${h}`]) {
      refused(check(validExport({ manifestPath: bad })), 'INVALID_CAS_PATH', 'manifestPath');
      refused(check(validExport({ logsPath: bad })), 'INVALID_CAS_PATH', 'logsPath');
    }
    refused(check(validExport({ logsPath: `cas://other/${h}` })), 'CAS_NAMESPACE_MISMATCH', 'logsPath');
  });

  it('timestamps are strict UTC ISO-8601', () => {
    for (const bad of ['2026-12-01T10:00:00', '2026-12-01T10:00:00+00:00', '2026-12-01T10:00:00+01:00', '2026-12-01 10:00:00Z', '2026-12-01t10:00:00z',
      '2026-02-30T10:00:00Z', '2026-13-01T10:00:00Z', '2026-12-01T24:00:00Z', '2026-12-01T10:60:00Z', '2026-12-01T10:00:60Z',
      '2026-12-01T10:00:00.1234567890Z', '2026-12-01T10:00:00.Z', '1969-12-31T23:59:59Z', '2262-01-01T00:00:00Z', '+002026-12-01T10:00:00Z',
      '2026-12-01', '1764583200', '２０２６-12-01T10:00:00Z', '2026-12-01T10:00:00Z\n']) {
      refused(check(validExport({ startedAt: bad })), 'INVALID_TIMESTAMP', 'startedAt');
    }
    expect(parseUtcTimestamp('2024-02-29T00:00:00Z')).toBe(1709164800000000000n);
    expect(parseUtcTimestamp('2023-02-29T00:00:00Z')).toBeUndefined();
    expect(parseUtcTimestamp('1970-01-01T00:00:00.000000001Z')).toBe(1n);
    refused(check(validExport({ completedAt: '2026-12-01T09:59:59.999Z' })), 'COMPLETED_BEFORE_STARTED', 'completedAt');
    refused(check(validExport({ completedAt: null })), 'COMPLETED_AT_REQUIRED', 'completedAt');
    expect(check(validExport({ completedAt: null, status: 'running' })).ok).toBe(true);
  });

  it('status is one of the five; transitions go pending → running → terminal only', () => {
    for (const s of ['pending', 'running', 'succeeded', 'failed', 'canceled']) expect(check(validExport({ status: s })).ok).toBe(true);
    for (const s of ['SUCCEEDED', 'cancelled', 'done', '', 'succeeded ']) refused(check(validExport({ status: s })), 'INVALID_STATUS', 'status');
    expect(transitionAllowed('pending', 'running')).toBe(true);
    for (const t of ['succeeded', 'failed', 'canceled'] as const) { expect(transitionAllowed('running', t)).toBe(true); expect(transitionAllowed('pending', t)).toBe(false); }
    for (const [a, b] of [['running', 'pending'], ['succeeded', 'running'], ['failed', 'succeeded'], ['canceled', 'failed'], ['pending', 'pending'],
      ['running', 'running'], ['succeeded', 'succeeded']] as const) expect(transitionAllowed(a, b)).toBe(false);
  });

  it('tenantId must be the token tenant (checked before the key)', () => {
    const e = validExport({}, TENANT);
    refused(check({ ...e, tenantId: 'globex', idempotencyKey: idemKey('run-0001', String(e.artifactHash), 'globex') }), 'TENANT_MISMATCH', 'tenantId');
    refused(check(e, { tenant: 'globex', verify }), 'CAS_NAMESPACE_MISMATCH'); // its paths are in acme's namespace
    const g = validExport({}, 'globex');
    refused(check(g, ctx), 'CAS_NAMESPACE_MISMATCH');
    refused(check({ ...g, manifestPath: e.manifestPath, logsPath: e.logsPath }, ctx), 'TENANT_MISMATCH');
  });

  it('text fields: bounded, no control characters, unicode kept exactly', () => {
    refused(check(validExport({ runId: '' })), 'INVALID_VALUE', 'runId');
    refused(check(validExport({ runId: 'x'.repeat(257) })), 'INVALID_VALUE', 'runId');
    refused(check(validExport({ runId: 'é'.repeat(129) })), 'INVALID_VALUE', 'runId'); // 258 bytes
    refused(check(validExport({ runId: 'run\u0000x' })), 'INVALID_VALUE', 'runId');
    refused(check(validExport({ runId: 'run\nx' })), 'INVALID_VALUE', 'runId');
    refused(check(validExport({ jobType: 'b\u0085' })), 'INVALID_VALUE', 'jobType');
    refused(check(validExport({ environment: 'x'.repeat(129) })), 'INVALID_VALUE', 'environment');
    const runId = 'ジョブ-🚀-\u200d-Ω';
    const v = check(validExport({ runId }));
    expect(v.ok).toBe(true);
    if (v.ok) expect(v.export.runId).toBe(runId);
    // NFC and NFD spellings are different ids (no normalization: the key is over the bytes sent).
    const nfd = 'e\u0301', nfc = '\u00e9';
    const a = check(validExport({ runId: nfd })), b = check(validExport({ runId: nfc }));
    expect(a.ok && b.ok && a.exportId !== b.exportId).toBe(true);
  });
});

describe('hostile JSON', () => {
  it('duplicate keys are refused, also when spelled with escapes or nested', () => {
    const e = JSON.stringify(validExport());
    refused(check(e.replace('{', '{"status":"failed",')), 'DUPLICATE_JSON_KEY');
    refused(check(e.replace('{', '{"st\\u0061tus":"failed",')), 'DUPLICATE_JSON_KEY');
    const s = JSON.stringify(signed());
    refused(check(s.replace('"payloadType"', '"payloadType":"x","payloadType"')), 'DUPLICATE_JSON_KEY');
    expect(() => parseStrictJson('{"a":1,"a":1}')).toThrow(StrictJsonError);
  });

  it('prototype-pollution keys are plain unknown fields and pollute nothing', () => {
    for (const k of ['__proto__', 'constructor', 'prototype']) {
      const txt = JSON.stringify(validExport()).replace('{', `{"${k}":{"polluted":true,"status":"failed"},`);
      refused(check(txt), 'UNKNOWN_FIELD');
    }
    const sig = JSON.stringify(signed()).replace('"payloadType"', '"__proto__":{"x":1},"payloadType"');
    refused(check(sig), 'SIGNATURE_MALFORMED');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const parsed = parseStrictJson('{"__proto__":{"a":1}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(parsed)).toBeNull();
    expect(Object.keys(parsed)).toEqual(['__proto__']);
  });

  it('unknown fields, huge numbers, deep nesting, bad UTF-8, lone surrogates, BOM, trailing data', () => {
    refused(check(validExport({ extra: 1 })), 'UNKNOWN_FIELD', 'extra');
    refused(check(validExport({ 'weird key\u0000': 1 })), 'UNKNOWN_FIELD');
    refused(check(JSON.stringify(validExport()).replace('"build"', '1e400')), 'INVALID_JSON');
    refused(check(JSON.stringify(validExport()).replace('"build"', '123456789012345678901234567890')), 'INVALID_TYPE', 'jobType');
    refused(check(JSON.stringify(validExport()).replace('"build"', '-0')), 'INVALID_TYPE', 'jobType');
    refused(check(JSON.stringify(validExport()).replace('"build"', `${'['.repeat(100)}${']'.repeat(100)}`)), 'INVALID_JSON');
    refused(checkExportSubmission(Buffer.concat([Buffer.from('{"runId":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), ctx), 'INVALID_UTF8');
    refused(checkExportSubmission(Buffer.from([0xed, 0xa0, 0x80]), ctx), 'INVALID_UTF8'); // a surrogate encoded in UTF-8
    refused(check(JSON.stringify(validExport()).replace('"run-0001"', '"run-\\ud800"')), 'INVALID_JSON');
    refused(checkExportSubmission(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body(validExport())]), ctx), 'INVALID_JSON');
    refused(check(JSON.stringify(validExport()) + ' {}'), 'INVALID_JSON');
    refused(check(JSON.stringify(validExport()).slice(0, -1)), 'INVALID_JSON');
    refused(check("{'runId':'x'}"), 'INVALID_JSON');
    refused(check(''), 'INVALID_JSON');
    refused(check(JSON.stringify(validExport()).replace('"build"', '"bu\tild"')), 'INVALID_JSON'); // raw control char in a string
  });

  it('bodies over 1 MiB are refused before parsing; 1 MiB of whitespace around a valid export is fine', () => {
    const e = JSON.stringify(validExport());
    refused(checkExportSubmission(Buffer.from(e + ' '.repeat(MAX_EXPORT_BODY_BYTES - e.length + 1)), ctx), 'BODY_TOO_LARGE');
    expect(checkExportSubmission(Buffer.from(e + ' '.repeat(MAX_EXPORT_BODY_BYTES - e.length)), ctx).ok).toBe(true);
  });
});

describe('DSSE signatures (fail closed)', () => {
  it('a signature by an unknown key, or for a tenant without keys, is refused', () => {
    refused(check(signed({}, testKey('orch-key-1'))), 'SIGNATURE_INVALID', 'signatures[0]'); // same keyid, other key
    refused(check(signed({}, testKey('stranger'))), 'SIGNATURE_UNTRUSTED', 'signatures[0]');
    refused(check(signed(), { tenant: TENANT, verify: testVerifier({}) }), 'SIGNATURE_UNTRUSTED');
    refused(check(signed(), { tenant: TENANT, verify: () => { throw new Error('boom'); } }), 'SIGNATURE_INVALID');
  });

  it('the signed statement must be about this export, field for field', () => {
    const e = validExport();
    const tamper = (f: (st: Record<string, unknown>) => void) => {
      const st = statementFor(e);
      f(st);
      return check({ ...e, signatures: [signStatement(st, KEY)] });
    };
    refused(tamper((st) => { (st.predicate as Record<string, unknown>).status = 'failed'; }), 'SIGNATURE_MISMATCH');
    refused(tamper((st) => { (st.predicate as Record<string, unknown>).logsPath = `cas://${TENANT}/${hex64('other')}`; }), 'SIGNATURE_MISMATCH');
    refused(tamper((st) => { delete (st.predicate as Record<string, unknown>).runId; }), 'SIGNATURE_MISMATCH');
    refused(tamper((st) => { (st.predicate as Record<string, unknown>).extra = 1; }), 'SIGNATURE_MISMATCH');
    refused(tamper((st) => { st.subject = [{ name: 'x', digest: { sha256: hex64('other') } }]; }), 'SIGNATURE_MISMATCH');
    refused(tamper((st) => { st.predicateType = 'https://slsa.dev/provenance/v1'; }), 'SIGNATURE_MISMATCH');
    refused(tamper((st) => { st._type = 'https://in-toto.io/Statement/v0.1'; }), 'SIGNATURE_MISMATCH');
    // Signed over the export, then the export is changed: refused.
    const s = signed();
    refused(check({ ...s, environment: 'staging' }), 'SIGNATURE_MISMATCH');
    // policyHash absent on both sides is the same as null.
    const { policyHash: _p, ...noPolicy } = validExport();
    expect(check({ ...noPolicy, signatures: [signStatement(statementFor(noPolicy), KEY)] }).ok).toBe(true);
  });

  it('every envelope must verify; malformed envelopes are named', () => {
    const s = signed();
    const good = (s.signatures as unknown[])[0] as Record<string, unknown>;
    refused(check({ ...s, signatures: [good, signStatement(statementFor(validExport()), testKey('stranger'))] }), 'SIGNATURE_UNTRUSTED', 'signatures[1]');
    refused(check({ ...s, signatures: [{ ...good, payloadType: 'application/json' }] }), 'SIGNATURE_MALFORMED');
    refused(check({ ...s, signatures: [{ ...good, payload: 'not base64!' }] }), 'SIGNATURE_MALFORMED');
    refused(check({ ...s, signatures: [{ ...good, signatures: [] }] }), 'SIGNATURE_MALFORMED');
    refused(check({ ...s, signatures: [{ ...good, signatures: [{ keyid: 'orch-key-1', sig: 'a-b+' }] }] }), 'SIGNATURE_MALFORMED'); // alphabets mixed
    refused(check({ ...s, signatures: [{ ...good, payload: `${String(good.payload).slice(0, 8)}.${String(good.payload).slice(9)}` }] }), 'SIGNATURE_MALFORMED');
    // The URL-safe, unpadded form DSSE allows is the same envelope.
    expect(check({ ...s, signatures: [{ ...good, payload: Buffer.from(String(good.payload), 'base64').toString('base64url') }] }).ok).toBe(true);
    refused(check({ ...s, signatures: [{ ...good, extra: 1 }] }), 'SIGNATURE_MALFORMED');
    refused(check({ ...s, signatures: ['envelope'] }), 'SIGNATURE_MALFORMED');
    refused(check({ ...s, signatures: Array(9).fill(good) }), 'SIGNATURE_MALFORMED');
    // A flipped bit in the signature.
    const sig = Buffer.from((good.signatures as { sig: string }[])[0]!.sig, 'base64');
    sig[5]! ^= 1;
    refused(check({ ...s, signatures: [{ ...good, signatures: [{ keyid: 'orch-key-1', sig: sig.toString('base64') }] }] }), 'SIGNATURE_INVALID');
  });
});

describe('records, events and rows', () => {
  it('the consumer re-validates and re-verifies the Kafka record, keyed by tenant', () => {
    const v = check(signed());
    if (!v.ok) throw new Error(v.message);
    const rec = exportRecord(v, TENANT, 1_764_583_500_000_000_000n, `sha256:${hex64('body')}`, 'ab'.repeat(16));
    const bytes = exportRecordBytes(rec);
    const { row } = exportRowFromRecord(bytes, TENANT, verify);
    expect(row).toMatchObject({ tenant_id: TENANT, run_id: 'run-0001', export_id: v.exportId, status: 'succeeded', status_rank: 3,
      started_at: '2026-12-01 10:00:00.000000000', completed_at: '2026-12-01 10:05:00.123456789', signer_keyids: ['orch-key-1'] });
    expect(() => exportRowFromRecord(bytes, 'globex', verify)).toThrow(ExportRecordRefused);
    // Keys removed from the trust config since: the consumer refuses (fail closed).
    expect(() => exportRowFromRecord(bytes, TENANT, testVerifier({}))).toThrow(/trust config/);
    const forged = JSON.parse(bytes.toString()) as { export: { environment: string } };
    forged.export.environment = 'staging';
    expect(() => exportRowFromRecord(Buffer.from(JSON.stringify(forged)), TENANT, verify)).toThrow(ExportRecordRefused);
  });

  it('the ledger_export event is deterministic and names what the contract asks', () => {
    const v = check(signed());
    if (!v.ok) throw new Error(v.message);
    const rec = exportRecord(v, TENANT, 5n, null);
    const a = ledgerExportEvent(rec, v), b = ledgerExportEvent(exportRecord(v, TENANT, 5n, null), v);
    expect(a).toEqual(b);
    expect(a.kind).toBe('ledger_export');
    expect(ledgerExportEventId(rec)).toMatch(/^[0-9a-f]{32}$/);
    expect(a.details).toMatchObject({ runId: 'run-0001', artifactHash: v.export.artifactHash, policyHash: v.export.policyHash,
      manifestPath: v.export.manifestPath, logsPath: v.export.logsPath, dsseEnvelopeDigest: v.envelopeDigests[0], idempotencyKey: v.export.idempotencyKey });
    // A later status is another event.
    const r = check(validExport({ status: 'running', completedAt: null }));
    if (!r.ok) throw new Error(r.message);
    expect(ledgerExportEventId(exportRecord(r, TENANT, 5n, null))).not.toBe(ledgerExportEventId(rec));
    // The receive time is part of the event but not of its identity: a re-publish is the same event.
    expect(ledgerExportEventId(exportRecord(v, TENANT, 6n, null))).toBe(ledgerExportEventId(rec));
  });
});
