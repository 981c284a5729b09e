// The project's broker (SASL/SCRAM-SHA-512, StandardAuthorizer, deny by default) with the pipeline's
// ACLs (lib/kafka/acls.ts), against the test run's real broker: who gets in, and what each part's user
// may read and write. Then the tenant boundary of the Kafka-direct path: a collector user writes only
// its own tenant's direct topics, and a record there claiming another tenant never reaches that
// tenant's clean data. Last, the DLQ (processors/scrub/dlq.ts): no dead letter exposes a secret.
import Long from 'long';
import kafkajs, { type Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directTopics, ensurePipelineAcls } from '../../lib/kafka/acls.ts';
import { Secret, type KafkaAccess } from '../../lib/kafka/auth.ts';
import { createKafka } from '../../lib/kafka/client.ts';
import { ensurePipelineTopics } from '../../lib/kafka/setup.ts';
import { H } from '../../lib/kafka/topics.ts';
import { decodeTraces, encode, types } from '../../lib/otlp/proto.ts';
import { parseScrubConfig } from '../../processors/scrub/config.ts';
import { sha256Hex } from '../../processors/scrub/record.ts';
import { startScrub, type RunningScrub } from '../../processors/scrub/runner.ts';
import { readAllRecordsAt, readRecords, testAccess, testKafka, uniq } from '../support/kafka.ts';
import { testConfig } from '../support/receiver.ts';

const cfg = testConfig({ kafka: { groupIdPrefix: `${uniq('acl')}-`, directTenants: ['acme', 'globex'] } });
const T = cfg.kafka.topics;
const plan = { topics: T, groupIdPrefix: cfg.kafka.groupIdPrefix, directTenants: cfg.kafka.directTenants };
const EMAIL = 'alice.secret@example.com';
const AWS_KEY = 'AKIAIOSFODNN7EXAMPLE';

const as = (user: string, clientId = `acl-${user}`): Kafka => testKafka(clientId, testAccess(user));

function spans(tenant: string, name: string): Buffer {
  return Buffer.from(encode('traces', types.ExportTraceServiceRequest.fromObject({ resourceSpans: [{
    resource: { attributes: [{ key: 'tenant.id', value: { stringValue: tenant } }] },
    scopeSpans: [{ spans: [{ traceId: Buffer.from('4bf92f3577b34da6a3ce929d0e0e4736', 'hex'), spanId: Buffer.from('00f067aa0ba902b7', 'hex'),
      name, kind: 2, startTimeUnixNano: Long.fromString('1795436000000000000', true), endTimeUnixNano: Long.fromString('1795436000250000000', true) }] }] }] })));
}

/** Kafka's error name; kafkajs reports a topic refused in its metadata step as a plain error with this message. */
function errorType(err: unknown): string {
  const e = err as { type?: string; message: string };
  return e.type ?? (/^Not authorized to access topics/.test(e.message) ? 'TOPIC_AUTHORIZATION_FAILED' : e.message);
}

/** One acks=all produce as `kafka`'s user; resolves to the error type, or 'OK'. Idempotent (as the
 * pipeline's producers are) only when asked: it first needs a producer id, a cluster-level permission
 * that would hide which topic refused. */
async function produceAs(kafka: Kafka, topic: string, messages: { key?: string | null; value: Buffer; headers?: Record<string, string> }[], idempotent = false): Promise<string> {
  const producer = kafka.producer(idempotent ? { idempotent: true, maxInFlightRequests: 1, retry: { retries: 1 } } : { retry: { retries: 0 } });
  try {
    await producer.connect();
    await producer.send({ topic, acks: -1, messages });
    return 'OK';
  } catch (err) {
    return errorType(err);
  } finally {
    await producer.disconnect().catch(() => {});
  }
}

/** Consume `topic` as `kafka`'s user in `groupId`; resolves to the error type, or 'OK' once subscribed and fetching. */
async function consumeAs(kafka: Kafka, topic: string, groupId: string): Promise<string> {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, retry: { retries: 0 } });
  const crashed = new Promise<string>((resolve) => consumer.on(consumer.events.CRASH, (e) => resolve(errorType(e.payload.error))));
  const fetched = new Promise<string>((resolve) => consumer.on(consumer.events.FETCH, () => resolve('OK')));
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({ eachMessage: async () => {} });
    return await Promise.race([crashed, fetched, new Promise<string>((r) => setTimeout(() => r('TIMEOUT'), 20_000))]);
  } catch (err) {
    return errorType(err);
  } finally {
    await consumer.disconnect().catch(() => {});
  }
}

let scrub: RunningScrub;
beforeAll(async () => {
  await ensurePipelineTopics(testAccess(), cfg.kafka);
  await ensurePipelineAcls(testKafka('acl-setup'), plan);
  // The scrubber runs as its own user, in the group its ACL names.
  scrub = await startScrub({ kafka: as('scrub'), config: parseScrubConfig({}), topics: T, groupId: `${cfg.kafka.groupIdPrefix}scrub`,
    directTenants: cfg.kafka.directTenants });
}, 120_000);
afterAll(async () => { await scrub?.stop(); });

describe('who gets in', () => {
  it('refuses a client without credentials', async () => {
    const admin = createKafka({ brokers: [testAccess().brokers[0]!], clientId: 'anonymous', quiet: true, retries: 0, connectionTimeoutMs: 2000, requestTimeoutMs: 3000 }).admin();
    await expect(admin.connect().then(() => admin.listTopics())).rejects.toThrow();
    await admin.disconnect().catch(() => {});
  });

  it('refuses a wrong password, and lets the right one in', async () => {
    const wrong: KafkaAccess = { ...testAccess('receiver'), sasl: { mechanism: 'scram-sha-512', username: 'receiver', password: new Secret('not-the-password') } };
    const admin = createKafka({ ...wrong, clientId: 'wrong-password', quiet: true, retries: 0 }).admin();
    await expect(admin.connect()).rejects.toThrow(/SASL SCRAM SHA512 authentication failed/i);
    await admin.disconnect().catch(() => {});
    const right = as('receiver').admin();
    await right.connect();
    await right.disconnect();
  });
});

describe('what each part may do', () => {
  it('the receiver writes the raw topics, and neither reads nor writes clean ones', async () => {
    expect(await produceAs(as('receiver'), T.spans, [{ key: 'acme', value: spans('acme', 'receiver ok'), headers: { [H.tenant]: 'acme' } }], true)).toBe('OK');
    expect(await produceAs(as('receiver'), T.spansClean, [{ key: 'acme', value: spans('acme', 'forged clean'), headers: { [H.tenant]: 'acme' } }])).toBe('TOPIC_AUTHORIZATION_FAILED');
    // Given a group of its own (so only the topic can refuse), it still cannot read a clean topic.
    const group = uniq('receiver-reader');
    const admin = testKafka('acl-setup').admin();
    await admin.connect();
    await admin.createAcls({ acl: [{ resourceType: kafkajs.AclResourceTypes.GROUP, resourceName: group,
      resourcePatternType: kafkajs.ResourcePatternTypes.LITERAL, principal: 'User:receiver', host: '*',
      operation: kafkajs.AclOperationTypes.READ, permissionType: kafkajs.AclPermissionTypes.ALLOW }] });
    await admin.disconnect();
    expect(await consumeAs(as('receiver'), T.spansClean, group)).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await consumeAs(as('receiver'), T.spans, group)).toBe('TOPIC_AUTHORIZATION_FAILED');
  });

  it('scrub cannot write raw topics; timeline, evidence and slo cannot write clean ones or read raw ones', async () => {
    expect(await produceAs(as('scrub'), T.spans, [{ key: 'acme', value: spans('acme', 'scrub forging raw') }])).toBe('TOPIC_AUTHORIZATION_FAILED');
    for (const user of ['timeline', 'evidence', 'slo']) {
      expect(await produceAs(as(user), T.spansClean, [{ key: 'acme', value: spans('acme', `${user} forging clean`) }]), user).toBe('TOPIC_AUTHORIZATION_FAILED');
      expect(await consumeAs(as(user), T.spans, `${cfg.kafka.groupIdPrefix}${user}`), user).toBe('TOPIC_AUTHORIZATION_FAILED');
    }
    // What they are for, they may do: the timeline reads the clean spans in its group.
    expect(await consumeAs(as('timeline'), T.spansClean, `${cfg.kafka.groupIdPrefix}timeline`)).toBe('OK');
  });
});

describe('the Kafka-direct collector', () => {
  it('writes only its own tenant\'s direct topics, and a record claiming another tenant never reaches that tenant\'s clean data', async () => {
    const collector = as('collector-acme');
    const mine = directTopics(T, 'acme');
    // Not the receiver's raw topics, not another tenant's direct topics.
    expect(await produceAs(collector, T.spans, [{ key: 'globex', value: spans('globex', 'forged raw'), headers: { [H.tenant]: 'globex' } }])).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await produceAs(collector, directTopics(T, 'globex').spans, [{ key: 'globex', value: spans('globex', 'forged direct') }])).toBe('TOPIC_AUTHORIZATION_FAILED');
    // Its own topic: a record claiming globex (key and header), one claiming globex by header only,
    // then an honest keyless one (the topic says whose it is).
    expect(await produceAs(collector, mine.spans, [
      { key: 'globex', value: spans('globex', 'claims globex'), headers: { [H.tenant]: 'globex' } },
      { key: null, value: spans('globex', 'claims globex by header'), headers: { [H.tenant]: 'globex' } },
      { key: null, value: spans('acme', 'honest acme') },
    ], true)).toBe('OK');
    const dead = (await readRecords([T.dlq], 2, 30_000)).filter((r) => r.headers[H.dlqSourceTopic] === mine.spans);
    expect(dead).toHaveLength(2);
    for (const d of dead) expect(d.headers[H.dlqReason]).toBe('scrub: record on tenant acme\'s direct topic claims another tenant');
    // Everything in the clean topic once the honest record is through.
    let names: { key: string | null; tenant: string | undefined; name: string }[] = [];
    for (const until = Date.now() + 30_000; !names.some((n) => n.name === 'honest acme') && Date.now() < until;) {
      if (names.length) await new Promise((r) => setTimeout(r, 300));
      names = (await readAllRecordsAt(testAccess(), T.spansClean)).map((r) => ({ key: r.key, tenant: r.headers[H.tenant], name: decodeTraces(r.value).resourceSpans[0]!.scopeSpans[0]!.spans[0]!.name }));
      if (!names.length) await new Promise((r) => setTimeout(r, 300));
    }
    expect(names).toContainEqual({ key: 'acme', tenant: 'acme', name: 'honest acme' });
    expect(names.filter((n) => n.key === 'globex' || n.tenant === 'globex')).toEqual([]);
    expect(names.map((n) => n.name)).not.toContain('claims globex');
    expect(names.map((n) => n.name)).not.toContain('claims globex by header');
  });
});

describe('the DLQ', () => {
  it('never exposes an e-mail or API key: decodable records are dead-lettered scrubbed, undecodable ones as a digest only', async () => {
    const secretName = `GET /users/${EMAIL}/keys/${AWS_KEY}`;
    const decodable = spans('acme', secretName);
    // Bytes that do not decode as a request, with the secrets in them in clear.
    const undecodable = Buffer.concat([Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from(` ${EMAIL} ${AWS_KEY} `)]);
    const sender = as('receiver');
    expect(await produceAs(sender, T.spans, [
      // Refused for its tenant header, but decodable.
      { key: 'acme', value: decodable, headers: { [H.tenant]: 'globex', 'x-note': `from ${EMAIL}` } },
      { key: 'acme', value: undecodable, headers: { [H.tenant]: 'acme', 'x-note': `key ${AWS_KEY}` } },
    ], true)).toBe('OK');
    const dead = (await readAllRecordsAt(testAccess(), T.dlq)).filter((r) => r.headers[H.dlqSourceTopic] === T.spans);
    expect(dead).toHaveLength(2);
    for (const d of dead) {
      const everything = [d.key ?? '', d.value.toString('latin1'), ...Object.entries(d.headers).flat()].join('\n');
      expect(everything).not.toContain(EMAIL);
      expect(everything).not.toContain(AWS_KEY);
      expect(everything).not.toContain('alice.secret');
      expect(d.headers['x-note']).toBeUndefined();
    }
    const [scrubbed, digestOnly] = [dead.find((d) => d.headers['dlq-content'] === 'scrubbed')!, dead.find((d) => d.headers['dlq-content'] === 'digest-only')!];
    expect(scrubbed.headers[H.dlqReason]).toMatch(/tenant header/);
    // Scrubbed, not blanked: the request is still there, with the secrets replaced.
    const name = decodeTraces(scrubbed.value).resourceSpans[0]!.scopeSpans[0]!.spans[0]!.name;
    expect(name).toMatch(/^GET \/users\/.+\/keys\/.+$/);
    expect(scrubbed.headers[H.contentSha256]).toBe(sha256Hex(scrubbed.value));
    expect(scrubbed.headers['dlq-raw-sha256']).toBe(sha256Hex(decodable));
    expect(digestOnly.value.length).toBe(0);
    expect(digestOnly.headers).toMatchObject({ 'dlq-raw-sha256': sha256Hex(undecodable), 'dlq-raw-bytes': String(undecodable.length), [H.tenant]: 'acme' });
    expect(digestOnly.headers[H.dlqReason]).toMatch(/^scrub: undecodable traces request/);
  });

  it('has its own short retention', async () => {
    const admin = testKafka('acl-setup').admin();
    await admin.connect();
    try {
      const d = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: T.dlq, configNames: ['retention.ms'] }] });
      expect(d.resources[0]!.configEntries.find((e) => e.configName === 'retention.ms')?.configValue).toBe(String(cfg.kafka.dlqRetentionMs));
      expect(cfg.kafka.dlqRetentionMs).toBe(24 * 3600_000);
    } finally {
      await admin.disconnect();
    }
  });
});
