// lib/kafka/crc32c.ts and lib/kafka/produce-request.ts: the CRC-32C against published check values,
// the Produce request bytes against kafkajs' own encoder, and a real broker that accepts our
// batches, refuses one whose CRC is wrong, and hands every record back as it was sent.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { expect, it } from 'vitest';
import { createKafka } from '../../lib/kafka/client.ts';
import { crc32c, crc32cImpl, crc32cJs } from '../../lib/kafka/crc32c.ts';
import { encodeProduceRequest, kafkajsProduceRequest, type ProduceRequestArgs } from '../../lib/kafka/produce-request.ts';
import { BatchingProducer, produceEncoder } from '../../lib/kafka/producer.ts';
import { testAccess, createTopics, readRecords, uniq } from '../support/kafka.ts';
import { scramSocket } from '../support/sasl-socket.ts';

const require = createRequire(import.meta.url);
const kafkajsCrc = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (b: Buffer) => number;
const Long = require('kafkajs/src/utils/long.js') as { fromValue(v: unknown): unknown };
const createRequest = require('kafkajs/src/protocol/request.js') as (a: { correlationId: number; clientId: string; request: unknown }) => Promise<{ buffer: Buffer }>;
// What kafkajs requires for Produce v3-v7 once installProduceEncoder ran (producer.ts, imported above).
const ourProduceRequest = require('kafkajs/src/protocol/requests/produce/v3/request.js') as ReturnType<typeof kafkajsProduceRequest>;

it('computes CRC-32C check values (RFC 3720 B.4 and the standard "123456789")', () => {
  const vectors: [Buffer, number][] = [
    [Buffer.from('123456789'), 0xe3069283],
    [Buffer.alloc(32, 0), 0x8a9136aa],
    [Buffer.alloc(32, 0xff), 0x62a8ab43],
    [Buffer.from(Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e],
    [Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c],
    [Buffer.alloc(0), 0],
  ];
  for (const [input, want] of vectors) {
    expect(crc32cJs(input)).toBe(want);
    expect(crc32c(input)).toBe(want);
  }
  expect(crc32cImpl).toBe('native'); // @node-rs/crc32's binary is there on this platform
});

it('agrees with kafkajs\' CRC on every length and alignment, and continues across chunks', () => {
  const big = randomBytes(5000);
  for (let start = 0; start < 9; start++) {
    for (const len of [0, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4096 - start]) {
      const view = big.subarray(start, start + len);
      const want = kafkajsCrc(view);
      expect(crc32cJs(view)).toBe(want);
      expect(crc32c(view)).toBe(want);
    }
  }
  const whole = crc32cJs(big);
  expect(crc32cJs(big.subarray(1234), crc32cJs(big.subarray(0, 1234)))).toBe(whole);
  expect(crc32c(big.subarray(77), crc32c(big.subarray(0, 77)))).toBe(whole);
});

function sampleArgs(): ProduceRequestArgs {
  return {
    acks: -1, timeout: 30_000, transactionalId: null, producerId: Long.fromValue(12345), producerEpoch: 3,
    topicData: [
      { topic: 'otlp_spans', partitions: [
        { partition: 0, firstSequence: 7, messages: [
          { key: 'acme', value: randomBytes(70_000), headers: { tenant: 'acme', 'content-sha256': 'ab'.repeat(32), multi: ['a', Buffer.from('b')] }, timestamp: 1_700_000_000_000 },
          { key: null, value: 'a string value', timestamp: '1700000000005' },
          { key: Buffer.from('k'), value: Buffer.alloc(0), timestamp: 1_700_000_000_001 },
          { key: 'late', value: Buffer.from('x'), timestamp: 1_600_000_000_000 + 2 ** 31 * 1000 }, // delta beyond 32 bits
        ] },
        { partition: 2, firstSequence: 0, messages: [{ key: 'b', value: Buffer.from('y'.repeat(300)), timestamp: 1_699_999_999_999, headers: {} }] },
      ] },
      { topic: 'tópico', partitions: [{ partition: 1, messages: [{ key: 'ü', value: 'välue', timestamp: 5, headers: { 'ключ': 'значение' } }] }] },
    ],
  };
}

it('writes the same Produce request bytes as kafkajs\' encoder', async () => {
  const args = sampleArgs();
  const theirs = await kafkajsProduceRequest()(args).encode() as unknown as { buffer: Buffer };
  const ours = encodeProduceRequest(args);
  expect(ours.length).toBe(theirs.buffer.length);
  expect(ours.equals(theirs.buffer)).toBe(true);
  // Framed as kafkajs sends it (size, header, body): ours is taken over without copies, same bytes.
  for (const clientId of ['stella-receiver', 'x'.repeat(300)]) { // the second is longer than our headroom: copied
    const framedTheirs = await createRequest({ correlationId: 7, clientId, request: kafkajsProduceRequest()(args) });
    const framedOurs = await createRequest({ correlationId: 7, clientId, request: ourProduceRequest(args) });
    expect(framedOurs.buffer.equals(framedTheirs.buffer)).toBe(true);
    // Taken over: the frame sits inside the payload's own allocation, just before the body.
    expect(framedOurs.buffer.byteOffset).toBe(clientId.length < 200 ? 256 - (4 + 2 + 2 + 4 + 2 + clientId.length) : 0);
  }
  // A transactional request sets the batch's transactional bit; the rest is the same layout.
  const tx = { ...sampleArgs(), transactionalId: 'tx-1' };
  tx.topicData[0]!.partitions[0]!.messages[0]!.value = Buffer.from('fixed');
  const txTheirs = await kafkajsProduceRequest()(tx).encode() as unknown as { buffer: Buffer };
  expect(encodeProduceRequest(tx).equals(txTheirs.buffer)).toBe(true);
});

/** One Produce v3 request over a raw (logged-in) socket; returns the partition's error code. */
async function rawProduce(topic: string, corruptCrc: boolean): Promise<number> {
  const body = encodeProduceRequest({ acks: -1, timeout: 10_000, topicData: [{ topic, partitions: [{ partition: 0, messages: [
    { key: 'acme', value: Buffer.from(corruptCrc ? 'corrupted' : 'intact'), headers: { tenant: 'acme' }, timestamp: Date.now() },
  ] }] }] });
  // body: transactional_id(2) acks(2) timeout(4) topics(4) topic(2+n) partitions(4) partition(4) size(4)
  //       firstOffset(8) length(4) epoch(4) magic(1) crc(4)
  const crcAt = 12 + 2 + Buffer.byteLength(topic) + 4 + 4 + 4 + 8 + 4 + 4 + 1;
  if (corruptCrc) body[crcAt] = body[crcAt]! ^ 0xff;
  const clientId = Buffer.from('crc-test');
  const header = Buffer.alloc(4 + 2 + 2 + 4 + 2);
  header.writeInt32BE(header.length - 4 + clientId.length + body.length, 0);
  header.writeInt16BE(0, 4); // Produce
  header.writeInt16BE(3, 6);
  header.writeInt32BE(42, 8); // correlation id
  header.writeInt16BE(clientId.length, 12);
  // The broker takes requests only after a SASL login (test/support/sasl-socket.ts).
  const { sock, frames } = await scramSocket(testAccess());
  sock.write(Buffer.concat([header, clientId, body]));
  const response = await frames.next().finally(() => sock.destroy());
  // size(4) correlation(4) topics(4) topic(2+n) partitions(4) partition(4) error_code(2)
  expect(response.readInt32BE(4)).toBe(42);
  return response.readInt16BE(12 + 2 + Buffer.byteLength(topic) + 4 + 4);
}

it('the broker checks the batch CRC: ours is accepted, a flipped one refused as CORRUPT_MESSAGE', async () => {
  const topic = uniq('crc');
  await createTopics([topic], 1);
  expect(await rawProduce(topic, true)).toBe(2); // CORRUPT_MESSAGE
  expect(await rawProduce(topic, false)).toBe(0);
  const [rec] = await readRecords([topic], 1);
  expect(rec!.value.toString()).toBe('intact');
});

it('round-trips through a real broker via the idempotent producer: keys, values and headers intact', async () => {
  expect(produceEncoder).toBe('ours');
  const topic = uniq('produce_enc');
  await createTopics([topic], 3);
  const producer = new BatchingProducer(createKafka({ ...testAccess(), clientId: 'produce-enc-test' }), { maxBatchBytes: 300_000 });
  await producer.connect();
  const sent = Array.from({ length: 24 }, (_, i) => ({
    key: `tenant-${i % 5}`,
    value: randomBytes(i % 4 === 0 ? 90_000 : 1 + i * 37),
    headers: { tenant: `tenant-${i % 5}`, 'content-sha256': String(i).repeat(3), traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` },
  }));
  // Concurrent sends coalesce into multi-partition requests, split under maxBatchBytes.
  await Promise.all([producer.send(topic, sent.slice(0, 10)), producer.send(topic, sent.slice(10))]);
  await producer.disconnect();
  const got = await readRecords([topic], sent.length);
  expect(got).toHaveLength(sent.length);
  const byHash = new Map(got.map((r) => [r.value.toString('hex'), r]));
  for (const m of sent) {
    const r = byHash.get(m.value.toString('hex'));
    expect(r, 'record missing').toBeDefined();
    expect(r!.key).toBe(m.key);
    expect(r!.headers).toEqual(m.headers);
  }
});
