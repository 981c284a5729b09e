// Events other processors publish on timeline_events (here: scrub's deep-debug grant and expiry)
// become rows of their tenant's timeline; a malformed or mis-keyed event goes to the DLQ.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafka } from '../../lib/kafka/client.ts';
import { forTenant, type Store } from '../../lib/store/index.ts';
import { eventRowFromMessage } from '../../processors/timeline/external-events.ts';
import { startTimelineRunner, type RunningTimeline } from '../../processors/timeline/runner.ts';
import { PoisonRecord } from '../../processors/timeline/transform.ts';
import { grantEvent } from '../../processors/scrub/grants.ts';
import { brokers, kafkaEnv, testAccess, createTopics, readRecords, testKafka, uniq } from '../support/kafka.ts';
import { testStore } from './support.ts';

const grant = { id: 'g-42', rules: ['email'], startsAt: new Date(Date.now() - 60_000), expiresAt: new Date(Date.now() + 3_600_000), actor: 'ops:alice', reason: 'INC-7 debugging' };

describe('eventRowFromMessage', () => {
  const msg = Buffer.from(JSON.stringify(grantEvent('acme', grant as never, 'scrub.deep_debug.granted')));
  it('maps a published event to a timeline row', () => {
    const row = eventRowFromMessage(msg, 'acme');
    expect(row).toMatchObject({ tenant_id: 'acme', kind: 'scrub.deep_debug.granted', actor: 'ops:alice', resource_type: 'scrub_grant', resource_id: 'g-42' });
    expect(JSON.parse(row.details)).toMatchObject({ rules: ['email'], reason: 'INC-7 debugging' });
  });
  it('refuses an event whose tenant is not the record key, and malformed ones', () => {
    expect(() => eventRowFromMessage(msg, 'globex')).toThrow(PoisonRecord);
    expect(() => eventRowFromMessage(Buffer.from('{'), 'acme')).toThrow(/not JSON/);
    const bad = JSON.parse(msg.toString()) as Record<string, unknown>;
    expect(() => eventRowFromMessage(Buffer.from(JSON.stringify({ ...bad, event_id: "x' OR 1=1" })), 'acme')).toThrow(/event_id/);
    expect(() => eventRowFromMessage(Buffer.from(JSON.stringify({ ...bad, ts_unix_nano: 'soon' })), 'acme')).toThrow(/ts_unix_nano/);
  });
});

describe('timeline runner with published events', () => {
  let store: Store;
  let runner: RunningTimeline;
  const t = { spans: uniq('spans_clean'), logs: uniq('logs_clean'), metrics: uniq('metrics_clean'), timelineEvents: uniq('timeline_events'), dlq: uniq('dlq') };
  beforeAll(async () => {
    store = await testStore();
    await createTopics(Object.values(t), 1);
    runner = await startTimelineRunner({ kafka: createKafka({ ...testAccess(), clientId: 'ext-events' }), store, topics: t, groupId: uniq('timeline') });
  });
  afterAll(async () => { await runner?.stop(); });

  it("puts a scrub grant and its expiry on the tenant's timeline, not on another's", async () => {
    const p = testKafka().producer();
    await p.connect();
    const events = [grantEvent('acme', grant as never, 'scrub.deep_debug.granted'), grantEvent('acme', grant as never, 'scrub.deep_debug.expired')];
    await p.send({ topic: t.timelineEvents, acks: -1, messages: [
      ...events.map((e) => ({ key: 'acme', value: JSON.stringify(e) })),
      { key: 'globex', value: JSON.stringify(events[0]) }, // mis-keyed: refused, not stored under either tenant
    ] });
    await p.disconnect();
    const deadline = Date.now() + 20_000;
    let kinds: string[] = [];
    while (Date.now() < deadline) {
      const found = await Promise.all(events.map((e) => forTenant(store, 'acme').getEvent(e.event_id)));
      kinds = found.filter((x) => x).map((x) => x!.kind);
      if (kinds.length === 2) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(kinds.sort()).toEqual(['scrub.deep_debug.expired', 'scrub.deep_debug.granted']);
    expect(await forTenant(store, 'globex').getEvent(events[0]!.event_id)).toBeUndefined();
    const dead = await readRecords([t.dlq], 1, 10_000);
    expect(dead).toHaveLength(1);
    expect(dead[0]!.key).toBe('globex');
  });
});
