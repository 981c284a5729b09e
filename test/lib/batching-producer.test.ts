// lib/kafka/producer.ts against a real broker of its own, which the test freezes (SIGSTOP) to hold
// one produce in flight: sends made meanwhile wait for it and then go out together (one produce in
// flight at a time, each batch under maxBatchBytes), every send resolves only once Kafka acked it,
// nothing is lost or reordered, and disconnect() still sends what is queued. The produce path is
// the producer's own (partitioning, producer id, sequence numbers, retries): a produce retried after
// a timeout is written once, one that failed for good does not take the next one down, and keys land
// on the partitions Java's (and kafkajs') murmur2 partitioner picks.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../lib/kafka/broker.ts';
import { createKafka, ensureTopics } from '../../lib/kafka/client.ts';
import { BatchingProducer } from '../../lib/kafka/producer.ts';
import { Partitioners } from 'kafkajs';
import { readAllRecordsAt, readRecordsAt } from '../support/kafka.ts';

let dir: string;
let broker: RunningBroker;
beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stella-batching-'));
  broker = await startBroker({ dataDir: dir, heapMb: 384 });
}, 180_000);
afterAll(async () => {
  if (broker?.pid) try { process.kill(broker.pid, 'SIGCONT'); } catch { /* gone */ }
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Produce requests answered, from kafkajs' instrumentation of the producer's connections. */
function countProduces(bp: BatchingProducer): { sizes: number[] } {
  const out = { sizes: [] as number[] };
  bp.onRequest((e) => { if (e.apiName === 'Produce') out.sizes.push(e.size); });
  return out;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGSTOP returns before every thread of the JVM has stopped (on a loaded box a broker thread can
 * still answer a request meanwhile): freeze, then wait until /proc shows every thread stopped. */
async function freeze(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(2)) {
    const states = readdirSync(`/proc/${pid}/task`).map((t) => {
      try { return readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8').replace(/^.*\) /s, '')[0]; } catch { return 'T'; }
    });
    if (states.every((s) => s === 'T' || s === 't')) return;
  }
  throw new Error(`broker ${pid} did not stop within 10 s of SIGSTOP`);
}

it('sends made while a produce is in flight go out together once it is answered, under maxBatchBytes', async () => {
  const topic = 'batching';
  const kafka = createKafka({ ...broker.access(), clientId: 'batching-test' });
  await ensureTopics(kafka, [{ name: topic, partitions: 1, replicationFactor: 1 }]);
  const bp = new BatchingProducer(kafka, { lingerMs: 2, maxBatchBytes: 50_000 });
  await bp.connect();
  const value = (i: number) => Buffer.from(`${String(i).padStart(4, '0')}:${'x'.repeat(2_000)}`);
  await bp.send(topic, [{ key: 'k', value: value(0) }]); // connected, producer id assigned
  const produces = countProduces(bp);
  let acked = 0;
  const sends: Promise<void>[] = [];
  const send = (i: number) => { const p = bp.send(topic, [{ key: 'k', value: value(i) }]); void p.then(() => { acked++; }); sends.push(p); };
  await freeze(broker.pid!);
  try {
    send(1); // its produce goes out after the 2 ms linger and hangs on the frozen broker
    await sleep(20);
    // 60 sends over ~300 ms, each past a linger window: the old producer made each window a
    // produce of its own, chained behind the hung one (~60 produces).
    for (let i = 2; i <= 61; i++) { send(i); await sleep(5); }
    expect(acked).toBe(0); // nothing acked while Kafka cannot have acked it
  } finally {
    process.kill(broker.pid!, 'SIGCONT');
  }
  await Promise.all(sends);
  expect(acked).toBe(61);
  // The hung produce, then ~122 KB that queued behind it at 50 KB per batch: 4-5 produces in all.
  expect(produces.sizes.length).toBeGreaterThanOrEqual(4);
  expect(produces.sizes.length).toBeLessThanOrEqual(6);
  for (const size of produces.sizes) expect(size).toBeLessThan(60_000); // a batch's payload + framing
  // Queued at disconnect: still sent.
  const late = bp.send(topic, [{ key: 'k', value: value(62) }]);
  await bp.disconnect();
  await late;
  const got = await readRecordsAt(broker.access(), [topic], 63);
  expect(got.map((r) => r.value.subarray(0, 4).toString())).toEqual(Array.from({ length: 63 }, (_, i) => String(i).padStart(4, '0')));
}, 120_000);

it('a produce retried after a request timeout is written once: the retry carries the same sequence numbers', async () => {
  const topic = 'retried';
  const kafka = createKafka({ ...broker.access(), clientId: 'retry-test', requestTimeoutMs: 700, retryBackoffMs: { initial: 100, max: 300 } });
  await ensureTopics(kafka, [{ name: topic, partitions: 1, replicationFactor: 1 }]);
  const bp = new BatchingProducer(kafka, { lingerMs: 0 });
  await bp.connect();
  await bp.send(topic, [{ key: 'k', value: Buffer.from('first') }]);
  await freeze(broker.pid!);
  let sent: Promise<void>;
  try {
    sent = bp.send(topic, [{ key: 'k', value: Buffer.from('second') }]);
    await sleep(1_200); // the first attempt timed out on the frozen broker; a retry is on its way
  } finally {
    process.kill(broker.pid!, 'SIGCONT');
  }
  // The broker gets the batch twice (the timed-out attempt was still in its socket) and keeps one:
  // with new sequence numbers on the retry, 'second' would be in the topic twice.
  await sent;
  const third = bp.send(topic, [{ key: 'k', value: Buffer.from('third') }]);
  await third;
  await bp.disconnect();
  const got = await readAllRecordsAt(broker.access(), topic);
  expect(got.map((r) => r.value.toString())).toEqual(['first', 'second', 'third']);
}, 120_000);

it('a produce that failed for good rejects its sends, and the next one is written (new producer id)', async () => {
  const topic = 'failed';
  const kafka = createKafka({ ...broker.access(), clientId: 'fail-test', requestTimeoutMs: 600, retries: 0 });
  await ensureTopics(kafka, [{ name: topic, partitions: 1, replicationFactor: 1 }]);
  const bp = new BatchingProducer(kafka, { lingerMs: 0 });
  await bp.connect();
  await bp.send(topic, [{ key: 'k', value: Buffer.from('before') }]);
  await freeze(broker.pid!);
  let failed: unknown;
  try {
    failed = await bp.send(topic, [{ key: 'k', value: Buffer.from('timed-out') }]).then(() => 'acked', (e: unknown) => e);
  } finally {
    process.kill(broker.pid!, 'SIGCONT');
  }
  expect(failed).toBeInstanceOf(Error); // not acked: the client is told to retry
  await bp.send(topic, [{ key: 'k', value: Buffer.from('after') }]);
  await bp.disconnect();
  const values = (await readAllRecordsAt(broker.access(), topic)).map((r) => r.value.toString());
  // The timed-out batch may or may not have been appended once the broker woke; the next one is there.
  expect(values[0]).toBe('before');
  expect(values.at(-1)).toBe('after');
  expect(values.filter((v) => v === 'timed-out').length).toBeLessThanOrEqual(1);
}, 120_000);

it('keys land on the partition murmur2 picks (Java and kafkajs default partitioner); explicit partitions are kept', async () => {
  const topic = 'keyed';
  const kafka = createKafka({ ...broker.access(), clientId: 'keyed-test' });
  await ensureTopics(kafka, [{ name: topic, partitions: 6, replicationFactor: 1 }]);
  const bp = new BatchingProducer(kafka, { lingerMs: 5 });
  await bp.connect();
  const keys = ['acme', 'globex', 'initech', ...Array.from({ length: 30 }, (_, i) => `tenant-${i}`)];
  // Two rounds: the second comes from the producer's per-key cache.
  await Promise.all([...keys, ...keys].map((key, i) => bp.send(topic, [{ key, value: Buffer.from(`${key}#${i}`) }])));
  await bp.send(topic, [{ key: 'acme', value: Buffer.from('pinned'), partition: 5 }]);
  await bp.disconnect();
  const got = await readRecordsAt(broker.access(), [topic], keys.length * 2 + 1);
  expect(got).toHaveLength(keys.length * 2 + 1);
  const murmur2 = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: 6 }, (_, i) => ({ partitionId: i, leader: 1, replicas: [1], isr: [1], partitionErrorCode: 0 }));
  for (const r of got) {
    if (r.value.toString() === 'pinned') { expect(r.partition).toBe(5); continue; }
    expect(r.partition).toBe(murmur2({ topic, partitionMetadata, message: { key: r.key!, value: r.value } }));
  }
  expect(new Set(got.map((r) => r.partition)).size).toBeGreaterThan(3);
}, 120_000);
