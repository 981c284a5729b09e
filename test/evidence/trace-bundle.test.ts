// A trace's bundle carries the trace's clean OTLP records (the scrubbed bytes) with their inclusion
// proofs: on the real broker, the evidence runner stores each clean record in the content-addressed
// store (lib/cas.ts) before sealing it and indexes it by trace id; the real API builds the trace
// snapshot; verification recomputes each record's SHA-256 against its sealed entry and names a
// tampered (RECORD_MISMATCH) or missing (RECORD_MISSING) record.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { registerEvidenceRoutes } from '../../api/evidence-routes.ts';
import { FsBlobStore } from '../../lib/cas.ts';
import { H } from '../../lib/kafka/topics.ts';
import { encode, types } from '../../lib/otlp/proto.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { RecordUnavailableError, buildBundle, verifyBundle, type Manifest } from '../../processors/evidence/bundle.ts';
import { causeExitCode } from '../../processors/evidence/causes.ts';
import { canonicalBytes } from '../../processors/evidence/jcs.ts';
import { CLEAN_BATCH_V2_TYPE, startEvidenceRunner } from '../../processors/evidence/runner.ts';
import { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { gunzip, gzipDeterministic, readTar, writeTar } from '../../processors/evidence/tar.ts';
import { traceIdsOfRecord, traceRecordIndices, tracesPath } from '../../processors/evidence/trace-index.ts';
import { PackedRecords, packIndexFiles } from '../../processors/evidence/record-packs.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { testStore } from '../timeline/support.ts';
import { startHarness } from './api-harness.ts';
import { tempStore, trustRootOf } from './helpers.ts';
import { logEntries, sealedSize, tenantSigner, waitFor } from './runner-support.ts';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
const stops: (() => Promise<void>)[] = [];
afterAll(async () => { for (const s of stops.reverse()) await s().catch(() => undefined); });

const A = '0af7651916cd43dd8448eb211c80319c';
const B = '4bf92f3577b34da6a3ce929d0e0e4736';
const spans = (name: string, ...traceIds: string[]): Buffer => Buffer.from(encode('traces', types.ExportTraceServiceRequest.fromObject({ resourceSpans: [{
  resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] },
  scopeSpans: [{ scope: { name: 'http' }, spans: traceIds.map((t, i) => ({ traceId: Buffer.from(t, 'hex'), spanId: Buffer.alloc(8, i + 1), name, kind: 2,
    startTimeUnixNano: '1795436000000000000', endTimeUnixNano: '1795436000250000000' })) }] }] })));
const logs = (body: string, traceId: string): Buffer => Buffer.from(encode('logs', types.ExportLogsServiceRequest.fromObject({ resourceLogs: [{ resource: { attributes: [] },
  scopeLogs: [{ logRecords: [{ timeUnixNano: '1795436000000000000', body: { stringValue: body }, traceId: Buffer.from(traceId, 'hex'), spanId: Buffer.alloc(8, 9) }] }] }] })));

/** Rewrite a bundle: change files, then re-gzip (what someone editing a bundle by hand does). */
function edit(bundle: Buffer, fn: (files: Map<string, Uint8Array>, m: Manifest) => void): Buffer {
  const files = new Map(readTar(gunzip(bundle)).map((f) => [f.path, f.bytes]));
  const m = JSON.parse(Buffer.from(files.get('manifest.json')!).toString('utf8')) as Manifest;
  fn(files, m);
  files.set('manifest.json', canonicalBytes(m));
  return gzipDeterministic(writeTar([...files].sort(([a], [b]) => (a < b ? -1 : 1)).map(([p, bytes]) => ({ path: p, bytes }))));
}

describe('trace ids off the OTLP wire', () => {
  it('reads the distinct trace ids of spans and log records, leaving out absent and all-zero ids', () => {
    expect(traceIdsOfRecord('traces', spans('x', B, A, B, '00000000000000000000000000000000'))).toEqual([A, B]);
    expect(traceIdsOfRecord('logs', logs('hello', A))).toEqual([A]);
    expect(traceIdsOfRecord('traces', logs('hello', A))).toEqual([]); // a log request read as spans: field 1 of a LogRecord is its time, not an id
    expect(traceIdsOfRecord('traces', Buffer.from([0x0a, 0xff, 0xff]))).toEqual([]);
  });
});

describe('trace bundles carry the clean records', () => {
  it('runner stores and indexes records; the trace snapshot holds them; verify checks their bytes and names tampering', async () => {
    const t = { timeline: uniq('timeline'), spans: uniq('clean_spans'), logs: uniq('clean_logs') };
    await createTopics(Object.values(t), 1);
    const evidence = tempStore();
    const casDir = mkdtempSync(path.join(os.tmpdir(), 'stella-cas-'));
    dirs.push(casDir);
    const cas = new FsBlobStore(casDir);
    const group = uniq('evidence');
    const r = await startEvidenceRunner({ kafka: testKafka('trace-bundle'), storeRoot: evidence.root, store: await testStore(), signer: tenantSigner,
      topics: { timelineEvents: t.timeline, clean: [t.spans, t.logs] }, groupId: group, sealEverySeconds: 0.3, sealEveryEntries: 3,
      records: cas, recordSignals: { [t.spans]: 'traces', [t.logs]: 'logs' } });
    stops.push(() => r.stop());

    // Clean records as the scrubber writes them (custody headers set): A in two span batches and a log batch, B in one.
    const records = [
      { topic: t.spans, value: spans('GET /cart', A) }, { topic: t.spans, value: spans('GET /other', B) },
      { topic: t.spans, value: spans('POST /pay', A, B) }, { topic: t.logs, value: logs('payment declined', A) },
    ];
    const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (const rec of records) {
      await producer.send({ topic: rec.topic, acks: -1, messages: [{ key: 'acme', value: rec.value, headers: { [H.tenant]: 'acme', [H.contentSha256]: sha256Hex(rec.value),
        [H.rawContentSha256]: 'ab'.repeat(32), [H.scrubPolicy]: `sha256:${'cd'.repeat(32)}` } }] });
    }
    await producer.disconnect();
    // The trace index file is written after the seal (derived data): wait for it too.
    await waitFor('4 sealed entries, indexed', async () => (await sealedSize(evidence, 'acme')) === 4 && (await evidence.read('acme', tracesPath(4))) !== undefined);
    const entries = await logEntries(evidence, 'acme');
    expect(entries.every((e) => e.type === CLEAN_BATCH_V2_TYPE)).toBe(true);
    const indexOf = (v: Buffer) => entries.findIndex((e) => e.sha256 === sha256Hex(v));
    const aIdx = [records[0]!, records[2]!, records[3]!].map((x) => indexOf(x.value)).sort((x, y) => x - y);
    // Stored before sealing, packed (one CAS pack per entry bundle per seal, not a blob per record):
    // every logged record is found by its log index through the seals' pack index files.
    const source = new PackedRecords(evidence, cas);
    for (const rec of records) expect(await source.record('acme', indexOf(rec.value), sha256Hex(rec.value))).toEqual(rec.value);
    for (const rec of records) expect(await cas.has('acme', `sha256:${sha256Hex(rec.value)}`)).toBe(false);
    const packed = (await packIndexFiles(evidence, 'acme')).flatMap((f) => f.packs.flatMap((p) => p.records.map((x) => x.index)));
    expect(packed.sort((x, y) => x - y)).toEqual([0, 1, 2, 3]);
    // One trace index file per seal (plus the empty marker written when the log was opened at size 0).
    const sealedSizes = await new LogReader(evidence, 'acme').sealedSizes();
    expect((await evidence.list('acme', 'traces')).map((n) => Number(n.replace('.json', ''))).sort((x, y) => x - y)).toEqual([0, ...sealedSizes]);
    expect(await traceRecordIndices(evidence, 'acme', A, 4)).toEqual(aIdx);
    expect(await traceRecordIndices(evidence, 'acme', B, 4)).toEqual([indexOf(records[1]!.value), indexOf(records[2]!.value)].sort((x, y) => x - y));

    // The real API: a trace with no timeline events still has its records.
    const tokens = new TokenRegistry([{ id: 'acme', tokens: [{ sha256: sha256Hex('tb-acme'), scopes: ['evidence:read', 'evidence:create', 'evidence:export'] }] }]);
    const cases = new FsEvidenceStore(mkdtempSync(path.join(os.tmpdir(), 'stella-cases-')));
    dirs.push(cases.root);
    const ch = await testStore();
    const api = await startHarness(tokens, [(x) => registerEvidenceRoutes(x, { evidence, cases, store: ch, records: cas })]);
    stops.push(() => api.close());
    const auth = { authorization: 'Bearer tb-acme', 'content-type': 'application/json' };
    const snap = async () => {
      const res = await fetch(`${api.url}/evidence/snapshot`, { method: 'POST', headers: auth, body: JSON.stringify({ kind: 'trace', resource_id: A.toUpperCase(), case_id: 'INC-9' }) });
      return { status: res.status, body: await res.json() as { bundle_id: string; records: number; events: number } };
    };
    const s1 = await snap();
    expect(s1).toMatchObject({ status: 201, body: { records: 3, events: 0 } });
    const bundle = Buffer.from(await (await fetch(`${api.url}/evidence/bundles/${s1.body.bundle_id}`, { headers: auth })).arrayBuffer());
    // Deterministic: the same case over the same log gives the same bytes (and id).
    expect((await snap()).body.bundle_id).toBe(s1.body.bundle_id);
    expect(await buildBundle(evidence, 'acme', { caseId: 'INC-9', indices: aIdx, atSize: 4, records: source })).toEqual(bundle);

    const root = await trustRootOf(evidence, 'acme');
    expect(verifyBundle(bundle, { trustRoot: root })).toMatchObject({ ok: true, entries: 3, records: 3 });
    const files = new Map(readTar(gunzip(bundle)).map((f) => [f.path, f.bytes]));
    for (const i of aIdx) expect(sha256Hex(Buffer.from(files.get(`records/${i}.binpb`)!))).toBe(entries[i]!.sha256); // the scrubbed bytes themselves
    const verifyApi = async (b: Buffer) => (await (await fetch(`${api.url}/evidence/verify`, { method: 'POST', body: b, headers: { ...auth, 'content-type': 'application/gzip' } })).json()) as { exit_code: number; result: { cause?: string } };
    expect(await verifyApi(bundle)).toMatchObject({ exit_code: 0 });

    // Tampered span bytes (the manifest updated to match, as a careful forger would): RECORD_MISMATCH.
    const victim = indexOf(records[2]!.value);
    const tampered = edit(bundle, (f, m) => {
      const b = Buffer.from(f.get(`records/${victim}.binpb`)!);
      const at = b.indexOf('POST /pay');
      b.write('POST /PAY', at);
      f.set(`records/${victim}.binpb`, b);
      m.records!.find((x) => x.index === victim)!.sha256 = sha256Hex(b);
    });
    expect(verifyBundle(tampered, { trustRoot: root })).toMatchObject({ ok: false, cause: 'RECORD_MISMATCH' });
    expect(await verifyApi(tampered)).toMatchObject({ exit_code: causeExitCode.RECORD_MISMATCH, result: { cause: 'RECORD_MISMATCH' } });
    // A record file removed (with or without its manifest line): RECORD_MISSING.
    const noFile = edit(bundle, (f) => { f.delete(`records/${victim}.binpb`); });
    const noLine = edit(bundle, (f, m) => { f.delete(`records/${victim}.binpb`); m.records = m.records!.filter((x) => x.index !== victim); });
    for (const b of [noFile, noLine]) {
      expect(verifyBundle(b, { trustRoot: root })).toMatchObject({ ok: false, cause: 'RECORD_MISSING' });
      expect(await verifyApi(b)).toMatchObject({ exit_code: causeExitCode.RECORD_MISSING });
    }
    // Records are never left out silently at build time either.
    await expect(buildBundle(evidence, 'acme', { caseId: 'x', indices: aIdx, atSize: 4 })).rejects.toBeInstanceOf(RecordUnavailableError);

    // A trace index file lost (a crash between a seal and its index write) is rebuilt from the stored
    // records when the tenant is next opened, byte for byte.
    const lastFile = (await evidence.list('acme', 'traces')).sort((x, y) => parseInt(x) - parseInt(y)).pop()!;
    const before = Buffer.from((await evidence.read('acme', `traces/${lastFile}`))!);
    await r.stop();
    rmSync(path.join(evidence.root, 'tenants', 'acme', 'traces', lastFile));
    const r2 = await startEvidenceRunner({ kafka: testKafka('trace-bundle'), storeRoot: evidence.root, store: await testStore(), signer: tenantSigner,
      topics: { timelineEvents: t.timeline, clean: [t.spans, t.logs] }, groupId: group, sealEverySeconds: 0.3, sealEveryEntries: 3,
      records: cas, recordSignals: { [t.spans]: 'traces', [t.logs]: 'logs' } });
    stops.push(() => r2.stop());
    const more = spans('GET /again', A);
    const p2 = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
    await p2.connect();
    await p2.send({ topic: t.spans, acks: -1, messages: [{ key: 'acme', value: more, headers: { [H.tenant]: 'acme', [H.contentSha256]: sha256Hex(more) } }] });
    await p2.disconnect();
    await waitFor('5 sealed entries, indexed', async () => (await sealedSize(evidence, 'acme')) === 5 && (await evidence.read('acme', tracesPath(5))) !== undefined);
    expect(Buffer.from((await evidence.read('acme', `traces/${lastFile}`))!)).toEqual(before);
    expect(await traceRecordIndices(evidence, 'acme', A, 5)).toEqual([...aIdx, 4]);
  });
});
