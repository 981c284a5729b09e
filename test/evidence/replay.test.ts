// stella forensic replay on the real broker: the evidence runner seals a tenant's timeline events and
// clean span/log batches (interleaved with another tenant's on the same partition, one event
// published twice); replay re-derives a span of its segments from Kafka and finds identical roots;
// a copy of the span topic with one record changed is found at exactly that record's entry; a range
// deleted from the topic is "not available"; and the CLI speaks the same exit codes.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IHeaders } from 'kafkajs';
import { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { cleanBatchEntry, startEvidenceRunner, type RunningEvidence } from '../../processors/evidence/runner.ts';
import { forensicReplay, REPLAY_EXIT, type ReplayOptions, type ReplayReport } from '../../processors/evidence/replay-cli.ts';
import { leafHash, toHex } from '../../processors/evidence/hash.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { createTopics, kafkaEnv, testAccess, testKafka, uniq } from '../support/kafka.ts';
import { runStellaCli } from '../support/stella.ts';
import { testStore } from '../timeline/support.ts';
import { logEntries, sealedSize, tenantSigner, testEvent, waitFor } from './runner-support.ts';

const t = { timeline: uniq('timeline'), spans: uniq('spans_clean'), logs: uniq('logs_clean'), metrics: uniq('metrics_clean') };
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'stella-replay-test-'));
const evidence = new FsEvidenceStore(path.join(dataDir, 'evidence', 'logs'));
let runner: RunningEvidence;
const kafka = testKafka('replay-test');

interface Msg { key: string; value: Buffer | string; headers: IHeaders }
async function send(topic: string, messages: Msg[]): Promise<{ offset: bigint; msg: Msg }[]> {
  const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  const r = await p.send({ topic, acks: -1, messages: messages.map((m) => ({ ...m, partition: 0 })) });
  await p.disconnect();
  const base = BigInt(r[0]!.baseOffset!);
  return messages.map((msg, i) => ({ offset: base + BigInt(i), msg }));
}
const rec = (tenant: string, value: Buffer | string): Msg => ({ key: tenant, value, headers: { tenant } });

const opts = (o: Partial<ReplayOptions>): ReplayOptions => ({ kafka, evidence, tenant: 'acme', timelineTopic: t.timeline, cleanTopics: [t.spans, t.logs, t.metrics],
  rangeTopic: t.spans, from: { offset: 0n }, to: { offset: 0n }, readTimeoutMs: 20_000, ...o });

/** Copy `topic` offsets [from, to] into a new one-partition topic, changing the record at `tamper` (if given). */
async function copyRange(from: bigint, to: bigint, tamper?: bigint): Promise<string> {
  const copy = uniq('spans_copy');
  await createTopics([copy], 1);
  const { readRecordsAt } = await import('../support/kafka.ts');
  const all = (await readRecordsAt(testAccess(), [t.spans], Number(to) + 1)).filter((r) => BigInt(r.offset) >= from && BigInt(r.offset) <= to);
  expect(all.length).toBe(Number(to - from) + 1);
  await send(copy, all.map((r) => ({ key: r.key!, value: BigInt(r.offset) === tamper ? Buffer.concat([r.value, Buffer.from('!')]) : r.value, headers: r.headers })));
  return copy;
}

let spansSent: { offset: bigint; msg: Msg }[] = [];
let acmeEntries = 0;

beforeAll(async () => {
  await createTopics(Object.values(t), 1);
  runner = await startEvidenceRunner({ kafka: testKafka('replay-evidence'), evidenceStore: evidence, store: await testStore(), signer: tenantSigner,
    topics: { timelineEvents: t.timeline, clean: [t.spans, t.logs, t.metrics] }, groupId: uniq('evidence'), sealEverySeconds: 3600, sealEveryEntries: 8 });
  // Four rounds: acme's spans, logs and events sent concurrently (the runner's interleave of the
  // topics is whatever the fetches give), another tenant's records on the same partitions, and one
  // of acme's events published a second time (logged once).
  let republish: string | undefined;
  for (let round = 0; round < 4; round++) {
    const events = [testEvent('acme', round * 2), testEvent('acme', round * 2 + 1)].map((e) => JSON.stringify(e));
    if (round === 1) republish = events[0];
    const timeline = [rec('acme', events[0]!), rec('other', JSON.stringify(testEvent('other', round))), rec('acme', events[1]!), ...(round === 2 ? [rec('acme', republish!)] : [])];
    const spans = [0, 1, 2].map((i) => rec('acme', `span-batch-${round}-${i}`));
    spans.splice(1, 0, rec('other', `other-span-${round}`));
    const [, s] = await Promise.all([send(t.timeline, timeline), send(t.spans, spans), send(t.logs, [rec('acme', `log-${round}-a`), rec('acme', `log-${round}-b`)])]);
    spansSent.push(...s);
    acmeEntries += 2 + 3 + 2;
    // Round by round, so that every stretch of the log holds all three inputs.
    await waitFor('acme entries appended', () => { const st = runner.tenants.get('acme'); return st && st.size + st.pending === acmeEntries; });
  }
  await runner.sealAll();
  await waitFor('acme sealed', async () => (await sealedSize(evidence, 'acme')) === acmeEntries);
}, 120_000);

afterAll(async () => { await runner?.stop(); });

/** The live log index of acme's entry for a record of the span topic at `offset`. */
async function indexOfSpan(offset: bigint): Promise<number> {
  const entries = await logEntries(evidence, 'acme');
  return entries.findIndex((e) => e.topic === t.spans && e.offset === offset.toString());
}

describe('stella forensic replay', () => {
  let identical: ReplayReport;

  it('re-derives a span of sealed segments from Kafka with identical entries and roots', async () => {
    const acmeSpans = spansSent.filter((s) => s.msg.key === 'acme');
    // A range in the middle: the segments it touches, not the whole log.
    const from = acmeSpans[4]!.offset;
    const to = acmeSpans[7]!.offset;
    const scratch = path.join(dataDir, 'scratch-1');
    identical = await forensicReplay(opts({ from: { offset: from }, to: { offset: to }, scratch }));
    expect(identical.outcome).toBe('identical');
    expect(identical.exit_code).toBe(REPLAY_EXIT.IDENTICAL);
    expect(identical.first_difference).toBeUndefined();
    const span = identical.log!;
    expect(span.from_size).toBeGreaterThan(0); // started after the first segment: the live edge was reused
    expect(identical.entries).toBe(span.to_size - span.from_size);
    // Every re-derived root is the live signed checkpoint's root, at every sealed size of the span.
    const reader = new LogReader(evidence, 'acme');
    const sizes = (await reader.sealedSizes()).filter((s) => s > span.from_size && s <= span.to_size);
    expect(identical.checkpoints!.map((c) => c.size)).toEqual(sizes);
    for (const c of identical.checkpoints!) {
      expect(c.expected_root).toBe(toHex((await reader.checkpointAt(c.size))!.checkpoint.root));
      expect(c.roots_identical && c.kafka_identical).toBe(true);
    }
    // The span mixes the inputs (clean spans, logs and events), and the scratch tree's files are the live ones.
    const live = (await logEntries(evidence, 'acme')).slice(span.from_size, span.to_size);
    expect(new Set(live.map((e) => (e.topic as string | undefined) ?? 'event')).size).toBe(3);
    const scratchStore = new FsEvidenceStore(scratch);
    const bundle = 'tile/entries/000.p/' + String(span.to_size);
    expect(Buffer.from((await scratchStore.read('acme', bundle))!)).toEqual(Buffer.from((await evidence.read('acme', bundle))!));
    expect(JSON.parse(readFileSync(path.join(scratch, 'replay.json'), 'utf8')).outcome).toBe('identical');
  }, 60_000);

  it('is deterministic: frozen at the same checkpoint, the report is byte-identical', async () => {
    const again = await forensicReplay(opts({ from: { offset: BigInt(identical.range!.from) }, to: { offset: BigInt(identical.range!.to) },
      freeze: Date.parse(identical.frozen_at!.sealed_at), scratch: path.join(dataDir, 'scratch-2') }));
    const a = readFileSync(path.join(identical.scratch!, 'replay.json'), 'utf8').replace(identical.scratch!, '');
    const b = readFileSync(path.join(again.scratch!, 'replay.json'), 'utf8').replace(again.scratch!, '');
    expect(b).toBe(a);
  }, 60_000);

  it('takes --from/--to as record times too (ListOffsets): a range over all of time is the whole log', async () => {
    const r = await forensicReplay(opts({ from: { time: Date.parse('2000-01-01T00:00:00Z') }, to: { time: Date.now() + 60_000 } }));
    expect(r.outcome).toBe('identical');
    expect(r.range).toMatchObject({ from: '0', to: String(spansSent.length - 1) });
    // Every segment with a span record, from the first: the log's end only if its last segment holds
    // a span (the runner's interleave of the topics is whatever the fetches gave).
    const lastSpan = Math.max(...(await logEntries(evidence, 'acme')).map((e, i) => (e.topic === t.spans ? i : -1)));
    expect(r.log!.from_size).toBe(0);
    expect(r.log!.to_size).toBeGreaterThan(lastSpan);
    expect(r.log!.to_size).toBeLessThanOrEqual(acmeEntries);
    expect(r.log!.to_size - lastSpan).toBeLessThanOrEqual(8); // the segment that holds it (sealEveryEntries 8)
  }, 60_000);

  it('finds a tampered clean record in a copied range at exactly its entry', async () => {
    const src = identical.sources!.find((s) => s.topic === t.spans)!;
    const from = BigInt(src.from);
    const to = BigInt(src.to);
    // Tamper acme's second span record inside the span (not the first: the entries before it must match).
    const target = spansSent.filter((s) => s.msg.key === 'acme' && s.offset >= from && s.offset <= to)[1]!;
    const [clean, tampered] = await Promise.all([copyRange(from, to), copyRange(from, to, target.offset)]);

    const same = await forensicReplay(opts({ from: { offset: from }, to: { offset: to }, copy: { topic: clean, base: from } }));
    expect(same.outcome).toBe('identical');
    expect(same.sources!.find((s) => s.topic === t.spans)!.read_from.topic).toBe(clean);

    const r = await forensicReplay(opts({ from: { offset: from }, to: { offset: to }, copy: { topic: tampered, base: from } }));
    expect(r.outcome).toBe('diverged');
    expect(r.exit_code).toBe(REPLAY_EXIT.DIVERGED);
    const index = await indexOfSpan(target.offset);
    expect(index).toBeGreaterThanOrEqual(r.log!.from_size);
    const d = r.first_difference!;
    expect(d.index).toBe(index);
    expect(d.source).toEqual({ topic: t.spans, partition: 0, offset: target.offset.toString() });
    const pos = { topic: t.spans, partition: 0, offset: target.offset.toString() };
    expect(d.actual_leaf_hash).toBe(toHex(leafHash(cleanBatchEntry(Buffer.from(target.msg.value), pos))));
    expect(d.expected_leaf_hash).toBe(toHex(leafHash(cleanBatchEntry(Buffer.concat([Buffer.from(target.msg.value), Buffer.from('!')]), pos))));
    // The roots of the checkpoints at and after the tampered entry differ; those before it do not.
    for (const c of r.checkpoints!) expect(c.roots_identical).toBe(c.size <= index);
  }, 90_000);

  it('says a range is not available when its records were deleted from the topic, or a copy does not reach back far enough', async () => {
    const src = identical.sources!.find((s) => s.topic === t.spans)!;
    const from = BigInt(src.from);
    const to = BigInt(src.to);
    const copy = await copyRange(from, to);
    const admin = kafka.admin();
    await admin.connect();
    await admin.fetchTopicMetadata({ topics: [copy] });
    await admin.deleteTopicRecords({ topic: copy, partitions: [{ partition: 0, offset: '2' }] }); // what retention does
    await admin.disconnect();
    const r = await forensicReplay(opts({ from: { offset: from }, to: { offset: to }, copy: { topic: copy, base: from } }));
    expect(r.outcome).toBe('unavailable');
    expect(r.exit_code).toBe(REPLAY_EXIT.UNAVAILABLE);
    expect(r.unavailable!.cause).toBe('RETENTION');
    const short = await forensicReplay(opts({ from: { offset: from }, to: { offset: to }, copy: { topic: copy, base: from + 1n } }));
    expect(short.unavailable?.cause).toBe('NOT_IN_TOPIC');
  }, 60_000);

  it('the CLI: --output json and its exit codes (0 identical, 40 diverged with the entry named, 2 usage)', async () => {
    const cfg = path.join(dataDir, 'stella.yaml');
    writeFileSync(cfg, `kafka:\n  topics:\n    timelineEvents: ${t.timeline}\n    spansClean: ${t.spans}\n    logsClean: ${t.logs}\n    metricsClean: ${t.metrics}\n`);
    const env = { ...process.env as Record<string, string>, ...kafkaEnv(), STELLA_CONFIG: cfg, STELLA_DATA_DIR: dataDir, STELLA_LOG_LEVEL: 'silent' };
    const src = identical.sources!.find((s) => s.topic === t.spans)!;
    const target = spansSent.filter((s) => s.msg.key === 'acme' && s.offset >= BigInt(src.from) && s.offset <= BigInt(src.to))[0]!;
    const tampered = await copyRange(BigInt(src.from), BigInt(src.to), target.offset);
    const base = ['forensic', 'replay', '--tenant', 'acme', '--from', src.from, '--to', src.to, '--output', 'json'];
    const [ok, bad, usage] = await Promise.all([runStellaCli(base, env), runStellaCli([...base, '--topic', tampered], env),
      runStellaCli(['forensic', 'replay', '--tenant', 'acme', '--from', src.from], env)]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).outcome).toBe('identical');
    expect(bad.code, bad.stderr).toBe(40);
    const j = JSON.parse(bad.stdout) as ReplayReport;
    expect(j.first_difference!.index).toBe(await indexOfSpan(target.offset));
    expect(j.first_difference!.source!.offset).toBe(target.offset.toString());
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/usage: stella forensic replay/);

    // Without KAFKA_BROKERS: the local broker of the data dir (what `stella run` leaves under
    // dataDir/kafka; here the test broker's port and super user), else exit 2 naming both ways.
    const noKafka = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('KAFKA_')));
    const none = await runStellaCli(base, noKafka);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(`no local broker under ${path.join(dataDir, 'kafka')}`);
    mkdirSync(path.join(dataDir, 'kafka'), { recursive: true });
    const su = testAccess();
    writeFileSync(path.join(dataDir, 'kafka', 'identity.json'), JSON.stringify({ clusterId: 'x', port: Number(su.brokers[0]!.split(':')[1]), controllerPort: 1 }));
    writeFileSync(path.join(dataDir, 'kafka', 'credentials.json'), JSON.stringify({ mechanism: 'scram-sha-512', users: { [su.sasl!.username]: su.sasl!.password.reveal() } }));
    const local = await runStellaCli(base, noKafka);
    expect(local.code, local.stderr).toBe(0);
    expect(JSON.parse(local.stdout).outcome).toBe('identical');
  }, 180_000);
});

describe('stella forensic replay: offsets without records', () => {
  it('transaction markers in a topic that only deletes from its start are not missing records; in a compacted topic they make the range unavailable', async () => {
    const { ensureTopics } = await import('../../lib/kafka/client.ts');
    const u = { timeline: uniq('tx_timeline'), spans: uniq('tx_spans'), compacted: uniq('tx_compacted') };
    await ensureTopics(kafka, [{ name: u.timeline, partitions: 1, replicationFactor: 1 }, { name: u.spans, partitions: 1, replicationFactor: 1 },
      { name: u.compacted, partitions: 1, replicationFactor: 1, configs: { 'cleanup.policy': 'compact' } }]);
    const store = new FsEvidenceStore(mkdtempSync(path.join(os.tmpdir(), 'stella-replay-tx-')));
    const ev = await startEvidenceRunner({ kafka: testKafka('replay-tx-evidence'), evidenceStore: store, store: await testStore(), signer: tenantSigner,
      topics: { timelineEvents: u.timeline, clean: [u.spans, u.compacted] }, groupId: uniq('evidence'), sealEverySeconds: 3600, sealEveryEntries: 4 });
    try {
      // Each record in its own transaction: its commit marker takes the next offset (0, 2, 4, 6).
      // The span topic's records first (one segment of 4), then the compacted topic's (the next one).
      const p = kafka.producer({ transactionalId: uniq('replay-tx'), idempotent: true, maxInFlightRequests: 1 });
      await p.connect();
      for (const [topic, sealed] of [[u.spans, 4], [u.compacted, 8]] as const) {
        for (let i = 0; i < 4; i++) {
          const tx = await p.transaction();
          await tx.send({ topic, acks: -1, messages: [{ key: `acme-${i}`, value: `${topic}-${i}`, headers: { tenant: 'acme' }, partition: 0 }] });
          await tx.commit();
        }
        await waitFor(`${sealed} entries sealed`, async () => (await sealedSize(store, 'acme')) === sealed);
      }
      await p.disconnect();
      const base = { kafka, evidence: store, tenant: 'acme', timelineTopic: u.timeline, cleanTopics: [u.spans, u.compacted], from: { offset: 0n }, to: { offset: 6n }, readTimeoutMs: 20_000 };
      const spans = await forensicReplay({ ...base, rangeTopic: u.spans });
      expect(spans.outcome).toBe('identical');
      expect(spans.sources).toEqual([expect.objectContaining({ topic: u.spans, from: '0', to: '6', records: 4 })]);
      const compacted = await forensicReplay({ ...base, rangeTopic: u.compacted });
      expect(compacted.outcome).toBe('unavailable');
      expect(compacted.exit_code).toBe(REPLAY_EXIT.UNAVAILABLE);
      expect(compacted.unavailable).toMatchObject({ cause: 'OFFSETS_MISSING' });
      expect(compacted.unavailable!.detail).toContain(`${u.compacted}/0 is compacted`);
    } finally { await ev.stop(); }
  }, 90_000);
});
