// stop() with entries appended but not yet sealed (the seal interval far away): the final seal
// covers them, and its offsets are committed although the consumer has already left its group.
import { expect, it } from 'vitest';
import { startEvidenceRunner } from '../../processors/evidence/runner.ts';
import { groupLag } from '../../lib/kafka/drain.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { testStore } from '../timeline/support.ts';
import { tempStore } from './helpers.ts';
import { produce, sealedSize, tenantSigner, testEvent, waitFor } from './runner-support.ts';

it('stop() seals what is pending and commits the offsets that seal covers', async () => {
  const timeline = uniq('evstop_timeline');
  const spans = uniq('evstop_spans_clean');
  await createTopics([timeline, spans], 2);
  await produce(timeline, Array.from({ length: 10 }, (_, i) => ({ tenant: 'acme', value: JSON.stringify(testEvent('acme', i)) })));
  await produce(spans, Array.from({ length: 4 }, (_, i) => ({ tenant: 'acme', value: Buffer.from(`otlp-batch-${i}`) })));
  const store = tempStore();
  const groupId = uniq('evidence');
  const r = await startEvidenceRunner({ kafka: testKafka('evidence-runner'), storeRoot: store.root, store: await testStore(), signer: tenantSigner,
    topics: { timelineEvents: timeline, clean: [spans] }, groupId, sealEverySeconds: 3600, sealEveryEntries: 100_000 });
  await waitFor('14 entries appended, none sealed', () => r.tenants.get('acme')?.pending === 14);
  expect(await sealedSize(store, 'acme')).toBe(0);

  await r.stop();
  expect(await sealedSize(store, 'acme')).toBe(14);
  const admin = testKafka('evidence-stop-check').admin();
  await admin.connect();
  try {
    const lag = await groupLag(admin, groupId, [timeline, spans]);
    expect(lag.reduce((s, p) => s + p.high, 0n)).toBe(14n);
    expect(lag.filter((p) => p.lag > 0n)).toEqual([]);
  } finally {
    await admin.disconnect();
  }
});
