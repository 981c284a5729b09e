import { describe, expect, it } from 'vitest';
import { createTopics, readRecords, testKafka, uniq } from '../support/kafka.ts';
import { newClusterId } from '../../lib/kafka/broker.ts';

describe('the project-started Kafka broker', () => {
  it('accepts an acks=all write and serves it back', async () => {
    const topic = uniq('smoke');
    await createTopics([topic], 1);
    const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const [meta] = await producer.send({ topic, acks: -1, messages: [{ key: 'acme', value: 'hello', headers: { tenant: 'acme' } }] });
    await producer.disconnect();
    expect(meta?.errorCode).toBe(0);
    const recs = await readRecords([topic], 1);
    expect(recs).toHaveLength(1);
    expect(recs[0]).toMatchObject({ key: 'acme', headers: { tenant: 'acme' } });
    expect(recs[0]!.value.toString()).toBe('hello');
  });
});

describe('newClusterId', () => {
  it('draws 22-character URL-safe ids and never one kafka-storage would read as an option', () => {
    const ids = Array.from({ length: 5000 }, () => newClusterId());
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
