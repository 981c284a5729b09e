// IdleWriteBack (processors/provenance/writeback.ts): the resolved-symbol write-back runs only
// between provenance queries, in bounded inserts, with a bounded queue. The write function here
// records what it is given (the ClickHouse side is tested in join.test.ts).
import { describe, expect, it } from 'vitest';
import type { FrameRow } from '../../processors/provenance/frames-store.ts';
import { IdleWriteBack, type WriteBackUpdate } from '../../processors/provenance/writeback.ts';

const frame = (trace: string, i: number): FrameRow => ({
  trace_id: trace, span_id: 's', source: 'span_event', exception_id: 'e', service_name: 'svc', exception_type: 'X', runtime: 'native', frame_index: i,
  function: '', module: 'm', file: '', line: 0, column: 0, ip: '1', module_offset: '1', build_id: 'ab'.repeat(20), pdb_guid: '', pdb_age: 0, dsym_uuid: '',
  resolved_symbol: '', ts_unix_nano: '1', resolved_version: 0,
});
const updates = (trace: string, n: number, sym = 'f+0x1'): WriteBackUpdate[] => Array.from({ length: n }, (_, i) => ({ frame: frame(trace, i), resolved_symbol: sym }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (ok: () => boolean) => { for (let i = 0; i < 500 && !ok(); i++) await sleep(10); };

function recorder(opts: { failFirst?: boolean } = {}) {
  const calls: { tenant: string; n: number; at: number; symbols: string[] }[] = [];
  let fail = opts.failFirst ?? false;
  const write = async (tenant: string, u: readonly WriteBackUpdate[]) => {
    calls.push({ tenant, n: u.length, at: performance.now(), symbols: u.map((x) => x.resolved_symbol) });
    await sleep(5);
    if (fail) { fail = false; throw new Error('insert refused'); }
    return u.length;
  };
  return { calls, write };
}

describe('IdleWriteBack', () => {
  it('writes nothing while a query runs or within idleMs of the last one, then in chunks of chunkRows, one tenant per insert', async () => {
    const r = recorder();
    const w = new IdleWriteBack(r.write, { idleMs: 80, chunkRows: 40 }, {}, () => performance.now());
    const end1 = w.queryStarted();
    w.add('acme', updates('t1', 100));
    w.add('globex', updates('t2', 10));
    await sleep(150);
    expect(r.calls).toEqual([]); // the query is still running
    end1();
    const ended = performance.now();
    // Back-to-back queries keep it waiting.
    for (let i = 0; i < 4; i++) { const end = w.queryStarted(); await sleep(30); end(); }
    expect(r.calls).toEqual([]);
    const lastEnd = performance.now();
    await until(() => w.written === 110);
    expect(r.calls.map((c) => [c.tenant, c.n])).toEqual([['acme', 40], ['acme', 40], ['acme', 20], ['globex', 10]]);
    expect(r.calls[0]!.at - lastEnd).toBeGreaterThanOrEqual(70);
    expect(r.calls[0]!.at).toBeGreaterThan(ended);
    expect(w.written).toBe(110);
    expect(w.pendingCount).toBe(0);
  });

  it('stops between chunks when a query starts, and goes on after the next pause', async () => {
    const r = recorder();
    let end: (() => void) | undefined;
    const w: IdleWriteBack = new IdleWriteBack(async (t, u) => {
      // A query arrives while the first insert runs.
      if (!end) end = w.queryStarted();
      return r.write(t, u);
    }, { idleMs: 50, chunkRows: 10 });
    w.add('acme', updates('t1', 50));
    await sleep(250);
    expect(r.calls.map((c) => c.n)).toEqual([10]); // the insert in flight finished; no next one while the query runs
    end!();
    await until(() => r.calls.length === 5);
    expect(r.calls.map((c) => c.n)).toEqual([10, 10, 10, 10, 10]);
  });

  it('keeps one update per frame (the latest), drops beyond maxPending and counts it, and a failed insert is counted, not thrown', async () => {
    const r = recorder({ failFirst: true });
    const dropped: number[] = [];
    const failed: number[] = [];
    const w = new IdleWriteBack(r.write, { idleMs: 10_000, maxPending: 30, chunkRows: 100 }, { dropped: (n) => dropped.push(n), failed: (_t, n) => failed.push(n) });
    w.add('acme', updates('t1', 20, 'old+0x1'));
    w.add('acme', updates('t1', 20, 'new+0x1')); // the same 20 frames: replaced, not added
    expect(w.pendingCount).toBe(20);
    w.add('acme', updates('t2', 25));
    expect(w.pendingCount).toBe(30);
    expect(dropped).toEqual([15]);
    expect(w.dropped).toBe(15);
    await w.flush(); // the insert fails: counted, the queue moves on
    expect(failed).toEqual([30]);
    expect(r.calls[0]!.symbols.slice(0, 20)).toEqual(Array(20).fill('new+0x1'));
    w.add('acme', updates('t3', 5));
    await w.flush();
    expect(w.written).toBe(5);
    expect(w.failed).toBe(30);
  });
});
