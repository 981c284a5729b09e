// The timeline runner writes the frames of exception events (spans) and exception log records into
// the frames table through real Kafka and chdb: once per frame even when the record is delivered
// twice, readable only by its tenant.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Long from 'long';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafka } from '../../lib/kafka/client.ts';
import { encode, type KeyValue } from '../../lib/otlp/proto.ts';
import type { Store } from '../../lib/store/index.ts';
import { framesOfTrace } from '../../processors/provenance/frames-store.ts';
import { FRAME_ATTR } from '../../processors/timeline/frames.ts';
import { startTimelineRunner, type RunningTimeline } from '../../processors/timeline/runner.ts';
import { createTopics, testAccess, testKafka, uniq } from '../support/kafka.ts';
import { hexId, nowNs, testStore } from './support.ts';

const str = (key: string, value: string): KeyValue => ({ key, value: { stringValue: value } });
const arr = (key: string, values: string[]): KeyValue => ({ key, value: { arrayValue: { values: values.map((v) => ({ stringValue: v })) } } });
const u64 = (n: bigint) => Long.fromString(n.toString(), true);

let dir: string;
let pyTrace: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stella-frames-store-'));
  const file = path.join(dir, 'svc.py');
  writeFileSync(file, 'import traceback\ndef handler():\n    raise KeyError("k")\ntry:\n    handler()\nexcept Exception:\n    print(traceback.format_exc(), end="")\n');
  pyTrace = execFileSync('python3', [file], { encoding: 'utf8' });
});
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

function spansWithExceptions(tenant: string, traceId: string, spanId: string, t: bigint): Buffer {
  return Buffer.from(encode('traces', { resourceSpans: [{
    resource: { attributes: [str('service.name', 'checkout'), str('tenant.id', tenant), str('telemetry.sdk.language', 'python')] },
    scopeSpans: [{ scope: { name: 's' }, spans: [{
      traceId: Buffer.from(traceId, 'hex'), spanId: Buffer.from(spanId, 'hex'), name: 'POST /pay', kind: 2,
      startTimeUnixNano: u64(t), endTimeUnixNano: u64(t + 1000n), status: { code: 2 },
      events: [
        { name: 'exception', timeUnixNano: u64(t + 10n), attributes: [str('exception.type', 'KeyError'), str('exception.stacktrace', pyTrace)] },
        { name: 'not-an-exception', timeUnixNano: u64(t + 11n), attributes: [str('exception.stacktrace', pyTrace)] },
        { name: 'exception', timeUnixNano: u64(t + 12n), attributes: [str('exception.type', 'SIGSEGV'),
          arr(FRAME_ATTR.ips, ['0x55d1c7a0b149', '0x55d1c7a0b171']), arr(FRAME_ATTR.modules, ['/srv/pay', '/srv/pay']),
          arr(FRAME_ATTR.moduleOffsets, ['0x1149', '0x1171']), arr(FRAME_ATTR.buildIds, ['ab'.repeat(20), 'ab'.repeat(20)])] },
      ],
    }] }],
  }] }));
}

function logWithException(tenant: string, traceId: string, spanId: string, t: bigint): Buffer {
  return Buffer.from(encode('logs', { resourceLogs: [{
    resource: { attributes: [str('service.name', 'checkout'), str('tenant.id', tenant)] },
    scopeLogs: [{ scope: { name: 's' }, logRecords: [
      { timeUnixNano: u64(t), severityNumber: 17, body: { stringValue: 'unhandled' }, traceId: Buffer.from(traceId, 'hex'), spanId: Buffer.from(spanId, 'hex'),
        attributes: [str('exception.type', 'KeyError'), str('exception.stacktrace', pyTrace)] },
      { timeUnixNano: u64(t + 1n), severityNumber: 9, body: { stringValue: 'fine' }, traceId: Buffer.from(traceId, 'hex'), attributes: [] },
    ] }],
  }] }));
}

describe('frames table via the timeline runner', () => {
  let store: Store;
  let runner: RunningTimeline;
  const t = { spans: uniq('spans_clean'), logs: uniq('logs_clean'), metrics: uniq('metrics_clean'), timelineEvents: uniq('timeline_events'), dlq: uniq('dlq') };
  beforeAll(async () => {
    store = await testStore();
    await createTopics(Object.values(t), 1);
    runner = await startTimelineRunner({ kafka: createKafka({ ...testAccess(), clientId: 'frames' }), store, topics: t, groupId: uniq('timeline') });
  });
  afterAll(async () => { await runner?.stop(); });

  it('stores each frame once (redelivered records collapse), per tenant', async () => {
    const traceId = hexId(16);
    const spanId = hexId(8);
    const now = nowNs();
    const spans = spansWithExceptions('acme', traceId, spanId, now);
    const logs = logWithException('acme', traceId, spanId, now + 100n);
    const p = testKafka().producer();
    await p.connect();
    // Twice each: a redelivery after a crash before the offset commit looks exactly like this.
    for (let i = 0; i < 2; i++) {
      await p.send({ topic: t.spans, acks: -1, messages: [{ key: 'acme', value: spans, headers: { tenant: 'acme' } }] });
      await p.send({ topic: t.logs, acks: -1, messages: [{ key: 'acme', value: logs, headers: { tenant: 'acme' } }] });
    }
    await p.disconnect();
    // python traceback: 2 frames (<module>, handler) on the span event and on the log; 2 native frames.
    const want = 2 + 2 + 2;
    const deadline = Date.now() + 30_000;
    let frames = await framesOfTrace(store, 'acme', traceId);
    while (Date.now() < deadline) {
      frames = await framesOfTrace(store, 'acme', traceId);
      const raw = await store.selectRows<{ n: string }>('SELECT count() AS n FROM frames WHERE trace_id = {t:String}', { t: traceId });
      // Both deliveries written (4 inserts) before checking that FINAL shows each frame once.
      if (frames.length >= want && Number(raw[0]!.n) >= want) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    await new Promise((r) => setTimeout(r, 1500));
    frames = await framesOfTrace(store, 'acme', traceId);
    expect(frames).toHaveLength(want);
    const bySource = (s: string) => frames.filter((f) => f.source === s);
    expect(bySource('log').map((f) => [f.frame_index, f.function, f.runtime, f.exception_type])).toEqual([[0, 'handler', 'python', 'KeyError'], [1, '<module>', 'python', 'KeyError']]);
    const native = frames.filter((f) => f.runtime === 'native');
    expect(native.map((f) => [f.frame_index, f.ip, f.module_offset, f.build_id, f.module])).toEqual([
      [0, String(0x55d1c7a0b149n), String(0x1149), 'ab'.repeat(20), '/srv/pay'],
      [1, String(0x55d1c7a0b171n), String(0x1171), 'ab'.repeat(20), '/srv/pay'],
    ]);
    expect(frames.every((f) => f.span_id === spanId && f.service_name === 'checkout')).toBe(true);
    const py = frames.find((f) => f.runtime === 'python' && f.source === 'span_event')!;
    expect(py.ip).toBeNull();
    // Another tenant asking for the same trace id sees nothing.
    expect(await framesOfTrace(store, 'globex', traceId)).toEqual([]);
  });

  it('orders the frames as the engine does (span, ts, exception, frame), whatever order the parts hold them in', async () => {
    const traceId = hexId(16);
    const row = (span: string, ts: string, exc: string, i: number) => ({ tenant_id: 'acme', ts, trace_id: traceId, span_id: span, source: 'span_event',
      exception_id: exc, service_name: 's', exception_type: 'X', runtime: 'native', frame_index: i, function: `${span}/${exc}/${i}`, module: '/m', file: '', line: 0, column: 0,
      ip: null, module_offset: null, build_id: '', pdb_guid: '', pdb_age: 0, dsym_uuid: '', resolved_symbol: '', resolved_version: 0 });
    // Frame indexes past 9 compare as numbers; ts before exception_id.
    const rows = [row('bb', '2026-12-01 00:00:00.000000002', 'e1', 10), row('bb', '2026-12-01 00:00:00.000000002', 'e1', 9), row('aa', '2026-12-01 00:00:00.000000009', 'e0', 0),
      row('aa', '2026-11-30 00:00:00.000000000', 'e9', 1), row('bb', '2026-12-01 00:00:00.000000001', 'e2', 0), row('aa', '2026-12-01 00:00:00.000000009', 'd0', 3)];
    for (const r of rows) await store.insertRows('frames', [r]); // one part each
    const engine = await store.selectRows<{ function: string }>(`SELECT function FROM frames WHERE tenant_id = 'acme' AND trace_id = {t:String}
      ORDER BY span_id, ts, exception_id, frame_index`, { t: traceId });
    expect(engine).toHaveLength(6);
    expect((await framesOfTrace(store, 'acme', traceId)).map((f) => f.function)).toEqual(engine.map((r) => r.function));
  });

  it('reads each frame once while duplicates are still unmerged, the highest resolved_version winning', async () => {
    const traceId = hexId(16);
    const row = (i: number, v = 0, sym = '') => ({ tenant_id: 'acme', ts: '2026-12-01 00:00:00.000000001', trace_id: traceId, span_id: 'aa'.repeat(8), source: 'span_event',
      exception_id: 'e'.repeat(32), service_name: 's', exception_type: 'X', runtime: 'native', frame_index: i, function: '', module: '/m', file: '', line: 0, column: 0,
      ip: String(4096 + i), module_offset: String(16 + i), build_id: 'ab'.repeat(20), pdb_guid: '', pdb_age: 0, dsym_uuid: '', resolved_symbol: sym, resolved_version: v });
    await store.command('SYSTEM STOP MERGES frames');
    try {
      // Separate blocks (identical blocks would be dropped by insert dedup): frame 0 three times, once resolved.
      await store.insertRows('frames', [row(0)]);
      await store.insertRows('frames', [row(0), row(1)]);
      await store.insertRows('frames', [row(0, 1, 'crash_here'), row(2)]);
      const raw = await store.selectRows<{ n: string }>('SELECT count() AS n FROM frames WHERE trace_id = {t:String}', { t: traceId });
      expect(Number(raw[0]!.n)).toBe(5);
      const frames = await framesOfTrace(store, 'acme', traceId);
      expect(frames.map((f) => [f.frame_index, f.resolved_symbol])).toEqual([[0, 'crash_here'], [1, ''], [2, '']]);
      // More rows than the limit: the engine orders and cuts, keeping the first frames.
      expect((await framesOfTrace(store, 'acme', traceId, 2)).map((f) => [f.frame_index, f.resolved_symbol])).toEqual([[0, 'crash_here'], [1, '']]);
      expect((await framesOfTrace(store, 'acme', traceId, 4)).map((f) => [f.frame_index, f.resolved_symbol])).toEqual([[0, 'crash_here'], [1, ''], [2, '']]);
    } finally {
      await store.command('SYSTEM START MERGES frames');
    }
  });
});
