// The evidence runner on the real broker with embedded ClickHouse: entries in Kafka offset order,
// sealed checkpoints that verify, segment rows, committed offsets, timeline de-duplication, and
// crash (abandon) / restart mid-stream giving the same log as an uninterrupted run.
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureDevSigningKey } from '../../processors/evidence/dev-key.ts';
import { loadSigningKey } from '../../processors/evidence/keys.ts';
import { verifyNote } from '../../processors/evidence/note.ts';
import { buildBundle, verifyBundle } from '../../processors/evidence/bundle.ts';
import { EventIndex } from '../../processors/evidence/event-index.ts';
import { AssignerProtocol } from 'kafkajs';
import { CLEAN_BATCH_TYPE, COPARTITION_ASSIGNER, startEvidenceRunner, type RunningEvidence } from '../../processors/evidence/runner.ts';
import { forTenant } from '../../lib/store/index.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { testStore } from '../timeline/support.ts';
import { CrashingStore, tempStore, trustRootOf } from './helpers.ts';
import { logEntries, produce, sealedSize, tenantSigner, testEvent, waitFor } from './runner-support.ts';

const running: RunningEvidence[] = [];
afterAll(async () => { for (const r of running) await r.abandon().catch(() => undefined); });

async function start(o: { timeline: string; clean: string[]; root: string; group: string; entries?: number; seconds?: number }): Promise<RunningEvidence> {
  const r = await startEvidenceRunner({ kafka: testKafka('evidence-runner'), storeRoot: o.root, store: await testStore(), signer: tenantSigner,
    topics: { timelineEvents: o.timeline, clean: o.clean }, groupId: o.group, sealEverySeconds: o.seconds ?? 0.3, sealEveryEntries: o.entries ?? 16 });
  running.push(r);
  return r;
}

describe('evidence runner', () => {
  it('appends timeline events and clean batches per tenant in offset order, seals, writes rows, commits', async () => {
    const timeline = uniq('ev_timeline');
    const spans = uniq('ev_spans_clean');
    await createTopics([timeline, spans], 3);
    const events = { acme: Array.from({ length: 30 }, (_, i) => testEvent('acme', i)), globex: Array.from({ length: 20 }, (_, i) => testEvent('globex', i)) };
    const msgs = (t: 'acme' | 'globex', from: number, to: number) => events[t].slice(from, to).map((e) => ({ tenant: t, value: JSON.stringify(e) }));
    await produce(timeline, [...msgs('acme', 0, 30), ...msgs('globex', 0, 20)]);
    // At-least-once republish of three acme events: logged once.
    await produce(timeline, msgs('acme', 5, 8));
    await produce(spans, Array.from({ length: 12 }, (_, i) => ({ tenant: i % 2 ? 'globex' : 'acme', value: Buffer.from(`otlp-batch-${i}`) })));
    const store = tempStore();
    const group = uniq('evidence');
    const r = await start({ timeline, clean: [spans], root: store.root, group });
    await waitFor('acme log of 36 and globex of 26', async () => (await sealedSize(store, 'acme')) === 36 && (await sealedSize(store, 'globex')) === 26);

    for (const [tenant, n] of [['acme', 30], ['globex', 20]] as const) {
      const entries = await logEntries(store, tenant);
      const ev = entries.filter((e) => e.type === undefined);
      const batches = entries.filter((e) => e.type === CLEAN_BATCH_TYPE);
      expect(ev.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i)); // offset order, no duplicates
      expect(ev.every((e) => e.tenant_id === tenant)).toBe(true);
      expect(batches).toHaveLength(6);
      const offs = batches.map((b) => BigInt(b.offset as string));
      expect([...offs].sort((a, b) => (a < b ? -1 : 1))).toEqual(offs);
      expect(new Set(batches.map((b) => b.partition)).size).toBe(1);
      // The checkpoint chain verifies offline.
      const v = verifyBundle(await buildBundle(store, tenant, { caseId: 'runner-test' }), { trustRoot: await trustRootOf(store, tenant) });
      expect(v).toMatchObject({ ok: true, treeSize: n + 6 });
      // event_id → index.
      const idx = new EventIndex(store, tenant);
      await idx.refresh(n + 6);
      expect(idx.events.size).toBe(n);
      for (const e of events[tenant]) expect(JSON.parse(JSON.stringify(entries[idx.events.get(e.event_id)!]))).toMatchObject({ event_id: e.event_id });
      // Segment rows: contiguous from 0 to the sealed size.
      // Sorted here: listEvidenceSegments orders by the toString alias (lexicographic), reported to lib/store's owner.
      const rows = (await forTenant(await testStore(), tenant).listEvidenceSegments()).sort((x, y) => Number(x.to_size) - Number(y.to_size));
      expect(rows.length).toBeGreaterThan(1);
      expect(rows[0]!.from_size).toBe('0');
      rows.slice(1).forEach((row, i) => expect(row.from_size).toBe(rows[i]!.to_size));
      expect(rows[rows.length - 1]!.to_size).toBe(String(n + 6));
    }
    // Offsets committed up to the end of every partition once everything is sealed.
    const admin = testKafka().admin();
    await admin.connect();
    await waitFor('offsets committed', async () => {
      for (const topic of [timeline, spans]) {
        const high = await admin.fetchTopicOffsets(topic);
        const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
        for (const h of high) {
          const c = committed!.partitions.find((p) => p.partition === h.partition)!;
          if (h.high !== '0' && c.offset !== h.high) return false;
        }
      }
      return true;
    });
    await admin.disconnect();
    await r.stop();
  });

  it('abandoned (crashed) and restarted mid-stream three times: the same log as an uninterrupted run', async () => {
    const timeline = uniq('ev_timeline');
    const clean = uniq('ev_logs_clean');
    await createTopics([timeline, clean], 2);
    const evs = Array.from({ length: 90 }, (_, i) => testEvent('acme', i));
    const wave = async (k: number) => {
      await produce(timeline, evs.slice(k * 30, k * 30 + 30).map((e) => ({ tenant: 'acme', value: JSON.stringify(e) })));
      await produce(timeline, evs.slice(k * 30, k * 30 + 2).map((e) => ({ tenant: 'acme', value: JSON.stringify(e) }))); // republished
    };
    const crashed = tempStore();
    const group = uniq('evidence-crash');
    let total = 0;
    const pendingAtCrash: number[] = [];
    for (let k = 0; k < 3; k++) {
      await wave(k);
      const r = await start({ timeline, clean: [clean], root: crashed.root, group, entries: 7, seconds: 30 });
      // Abandon once at least one more seal happened and entries past it are appended but unsealed
      // (each wave leaves a remainder below `entries: 7` that waits 30 s for its seal). Waiting for
      // both, rather than catching the runner between appends, makes every crash drop entries.
      const before = total;
      const [sealed, pending] = await waitFor('a seal, then unsealed entries', async () => {
        const s = await sealedSize(crashed, 'acme');
        const p = r.tenants.get('acme')?.pending ?? 0;
        return s > before && p > 0 ? [s, p] as const : false;
      });
      await r.abandon();
      total = sealed;
      pendingAtCrash.push(pending);
    }
    // The crashes dropped appended-but-unsealed entries (the interesting case), not only idle state.
    expect(pendingAtCrash.every((p) => p > 0)).toBe(true);
    expect(total).toBeLessThan(90);
    const last = await start({ timeline, clean: [clean], root: crashed.root, group, entries: 7, seconds: 0.2 });
    await waitFor('90 sealed', async () => (await sealedSize(crashed, 'acme')) === 90);
    await last.stop();

    const clean2 = tempStore();
    const once = await start({ timeline, clean: [clean], root: clean2.root, group: uniq('evidence-once'), entries: 1000, seconds: 0.2 });
    await waitFor('90 sealed (uninterrupted)', async () => (await sealedSize(clean2, 'acme')) === 90);
    await once.stop();

    const a = await logEntries(crashed, 'acme');
    const b = await logEntries(clean2, 'acme');
    expect(a.map((e) => e.seq)).toEqual(Array.from({ length: 90 }, (_, i) => i));
    expect(a).toEqual(b);
    expect(verifyBundle(await buildBundle(crashed, 'acme', { caseId: 'crash' }), { trustRoot: await trustRootOf(crashed, 'acme') })).toMatchObject({ ok: true, treeSize: 90 });
  });

  it('two runners in one group (a rebalance mid-stream): each tenant has one writer, every log complete and in order', async () => {
    const timeline = uniq('ev_timeline');
    const clean = uniq('ev_spans_clean');
    await createTopics([timeline, clean], 4);
    const tenants = ['t-a', 't-b', 't-c', 't-d', 't-e', 't-f'];
    const evs = new Map(tenants.map((t) => [t, Array.from({ length: 40 }, (_, i) => testEvent(t, i))]));
    const wave = async (from: number, to: number) => {
      await produce(timeline, tenants.flatMap((t) => evs.get(t)!.slice(from, to).map((e) => ({ tenant: t, value: JSON.stringify(e) }))));
      await produce(clean, tenants.map((t) => ({ tenant: t, value: Buffer.from(`batch ${t} ${from}`) })));
    };
    const store = tempStore();
    const group = uniq('evidence-rebalance');
    await wave(0, 20);
    const a = await start({ timeline, clean: [clean], root: store.root, group, entries: 8, seconds: 0.2 });
    await waitFor('first seals', async () => (await sealedSize(store, 't-a')) > 0);
    const b = await start({ timeline, clean: [clean], root: store.root, group, entries: 8, seconds: 0.2 });
    await wave(20, 40);
    for (const t of tenants) await waitFor(`${t} complete`, async () => (await sealedSize(store, t)) === 42);
    // The co-partition assignment: the same partition numbers of both topics on one member.
    const adm = testKafka().admin();
    await adm.connect();
    const { groups } = await adm.describeGroups([group]);
    await adm.disconnect();
    expect(groups[0]!.protocol).toBe(COPARTITION_ASSIGNER);
    const plans = groups[0]!.members.map((m) => AssignerProtocol.MemberAssignment.decode(m.memberAssignment)!.assignment);
    expect(plans).toHaveLength(2);
    for (const plan of plans) {
      expect(plan[timeline]!.length).toBe(2);
      expect([...plan[timeline]!].sort()).toEqual([...plan[clean]!].sort());
    }
    await b.stop();
    await a.stop();
    for (const t of tenants) {
      const entries = await logEntries(store, t);
      expect(entries.filter((e) => e.type === undefined).map((e) => e.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i));
      expect(entries.filter((e) => e.type === CLEAN_BATCH_TYPE)).toHaveLength(2);
      expect(verifyBundle(await buildBundle(store, t, { caseId: 'rebalance' }), { trustRoot: await trustRootOf(store, t) })).toMatchObject({ ok: true, treeSize: 42 });
    }
    // Graceful stop committed everything it sealed.
    const admin = testKafka().admin();
    await admin.connect();
    for (const topic of [timeline, clean]) {
      const high = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      for (const h of high) expect(committed!.partitions.find((p) => p.partition === h.partition)!.offset, `${topic}/${h.partition}`).toBe(h.high === '0' ? '-1' : h.high);
    }
    await admin.disconnect();
  });

  it('ensureDevSigningKey creates a 0600 Ed25519 key once and the runner can sign with it', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-devkey-'));
    const first = await ensureDevSigningKey(dir);
    expect(first.created).toBe(true);
    expect(statSync(first.file).mode & 0o777).toBe(0o600);
    const pem = readFileSync(first.file, 'utf8');
    expect(pem).toContain('BEGIN PRIVATE KEY');
    expect(JSON.stringify(first)).not.toContain('PRIVATE');
    const again = await ensureDevSigningKey(dir);
    expect(again).toEqual({ file: first.file, created: false });
    expect(readFileSync(first.file, 'utf8')).toBe(pem); // never regenerated
    const signer = await loadSigningKey(first.file, 'stella-telemetry.example/tenants/acme');
    expect(String(signer)).not.toContain(pem.split('\n')[1]!);
    // The runner signs with it (keyFile), under each tenant's origin.
    const timeline = uniq('ev_timeline');
    const clean = uniq('ev_clean');
    await createTopics([timeline, clean], 1);
    await produce(timeline, [testEvent('acme', 0), testEvent('acme', 1)].map((e) => ({ tenant: 'acme', value: JSON.stringify(e) })));
    const store = tempStore();
    const r = await startEvidenceRunner({ kafka: testKafka('evidence-runner'), storeRoot: store.root, store: await testStore(), keyFile: first.file,
      topics: { timelineEvents: timeline, clean: [clean] }, groupId: uniq('evidence-devkey'), sealEverySeconds: 0.2 });
    running.push(r);
    await waitFor('sealed', async () => (await sealedSize(store, 'acme')) === 2);
    await r.stop();
    const note = Buffer.from((await store.read('acme', 'checkpoint'))!).toString();
    expect(verifyNote(note, [signer]).ok).toBe(true);
    expect(verifyNote(note, [tenantSigner('acme')]).ok).toBe(false);
  });

  for (const at of [/^envelopes\//, /^checkpoint$/, /^tile\//]) {
    it(`a seal that fails (before ${at.source}) is recovered from the store and its records re-delivered: no loss, no duplicates`, async () => {
      const timeline = uniq('ev_timeline');
      const clean = uniq('ev_clean');
      await createTopics([timeline, clean], 2);
      const evs = Array.from({ length: 30 }, (_, i) => testEvent('acme', i));
      await produce(timeline, evs.map((e) => ({ tenant: 'acme', value: JSON.stringify(e) })));
      const fs = tempStore();
      const crashing = new CrashingStore(fs, at);
      const r = await startEvidenceRunner({ kafka: testKafka('evidence-runner'), evidenceStore: crashing, store: await testStore(), signer: tenantSigner,
        topics: { timelineEvents: timeline, clean: [clean] }, groupId: uniq('evidence-fail'), sealEverySeconds: 0.2, sealEveryEntries: 8 });
      running.push(r);
      await waitFor('30 sealed', async () => (await sealedSize(fs, 'acme')) === 30);
      expect(crashing.crashed).toBe(true);
      await r.stop();
      const entries = await logEntries(fs, 'acme');
      expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i));
      expect(verifyBundle(await buildBundle(fs, 'acme', { caseId: 'fail' }), { trustRoot: await trustRootOf(fs, 'acme') })).toMatchObject({ ok: true, treeSize: 30 });
    });
  }

  it('a failing evidence_segments insert holds the offset commit back until the row is written', async () => {
    const timeline = uniq('ev_timeline');
    const clean = uniq('ev_clean');
    await createTopics([timeline, clean], 1);
    await produce(timeline, Array.from({ length: 12 }, (_, i) => testEvent('rowfail', i)).map((e) => ({ tenant: 'rowfail', value: JSON.stringify(e) })));
    const real = await testStore();
    let failures = 0;
    let blocked = true;
    const flaky = new Proxy(real, { get(target, prop, recv) {
      if (prop === 'insertRows') return async (table: string, rows: unknown[], ...rest: unknown[]) => {
        if (table === 'evidence_segments' && blocked) { failures++; throw new Error('clickhouse unavailable (test)'); }
        return (target.insertRows as (...a: unknown[]) => Promise<void>).call(target, table, rows, ...rest);
      };
      return Reflect.get(target, prop, recv) as unknown;
    } });
    const fs = tempStore();
    const group = uniq('evidence-rowfail');
    const r = await startEvidenceRunner({ kafka: testKafka('evidence-runner'), storeRoot: fs.root, store: flaky, signer: tenantSigner,
      topics: { timelineEvents: timeline, clean: [clean] }, groupId: group, sealEverySeconds: 0.1, sealEveryEntries: 5 });
    running.push(r);
    await waitFor('sealed while ClickHouse fails', async () => (await sealedSize(fs, 'rowfail')) === 12 && failures >= 3);
    const admin = testKafka().admin();
    await admin.connect();
    const committed = async () => (await admin.fetchOffsets({ groupId: group, topics: [timeline] }))[0]!.partitions[0]!.offset;
    await new Promise((res) => setTimeout(res, 500));
    expect(await committed()).toBe('-1'); // sealed, but the rows are not in ClickHouse: nothing committed
    blocked = false;
    await waitFor('offsets committed after the rows', async () => (await committed()) === '12');
    const rows = (await forTenant(real, 'rowfail').listEvidenceSegments()).sort((x, y) => Number(x.to_size) - Number(y.to_size));
    expect(rows.map((x) => `${x.from_size}..${x.to_size}`)).toEqual(['0..5', '5..10', '10..12']);
    await admin.disconnect();
    await r.stop();
  });
});
