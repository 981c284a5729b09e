// Custody from receipt on the real broker: a raw record as the receiver writes it (content-sha256
// header) goes through the real scrub runner and the evidence runner; the sealed entry commits to
// the raw digest as received, the clean record's digest and the scrub policy version in effect.
import { afterAll, describe, expect, it } from 'vitest';
import { H } from '../../lib/kafka/topics.ts';
import { encode, types } from '../../lib/otlp/proto.ts';
import { parseScrubConfig, policyFor } from '../../processors/scrub/config.ts';
import { scrubPolicyVersion } from '../../processors/scrub/policy-version.ts';
import { sha256Hex } from '../../processors/scrub/record.ts';
import { startScrub, type RunningScrub } from '../../processors/scrub/runner.ts';
import { CLEAN_BATCH_V2_TYPE, startEvidenceRunner, type RunningEvidence } from '../../processors/evidence/runner.ts';
import { createTopics, readRecords, testKafka, uniq } from '../support/kafka.ts';
import { testStore } from '../timeline/support.ts';
import { tempStore } from './helpers.ts';
import { logEntries, sealedSize, tenantSigner, waitFor } from './runner-support.ts';

const stops: (() => Promise<void>)[] = [];
afterAll(async () => { for (const s of stops.reverse()) await s().catch(() => undefined); });

const TRACE = Buffer.from('4bf92f3577b34da6a3ce929d0e0e4736', 'hex');
export function spanBatch(name: string, traceId = TRACE): Buffer {
  return Buffer.from(encode('traces', types.ExportTraceServiceRequest.fromObject({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] },
    scopeSpans: [{ spans: [{ traceId, spanId: Buffer.alloc(8, 7), name, kind: 2, startTimeUnixNano: '1795436000000000000', endTimeUnixNano: '1795436000250000000' }] }] }] })));
}

describe('custody from receipt', () => {
  it('the evidence entry of a clean record holds the raw content-sha256 as received, the clean sha256 and the scrub policy version', async () => {
    const t = { spans: uniq('raw_spans'), metrics: uniq('raw_metrics'), logs: uniq('raw_logs'), spansClean: uniq('clean_spans'), metricsClean: uniq('clean_metrics'),
      logsClean: uniq('clean_logs'), dlq: uniq('dlq'), timelineEvents: uniq('timeline') };
    await createTopics(Object.values(t), 1);
    const config = parseScrubConfig({ tenants: { acme: { rules: { email: 'placeholder' } } } });
    const scrub: RunningScrub = await startScrub({ kafka: testKafka('custody-scrub'), config, topics: t, groupId: uniq('scrub') });
    stops.push(() => scrub.stop());
    const store = tempStore();
    const ev: RunningEvidence = await startEvidenceRunner({ kafka: testKafka('custody-evidence'), storeRoot: store.root, store: await testStore(), signer: tenantSigner,
      topics: { timelineEvents: t.timelineEvents, clean: [t.spansClean] }, groupId: uniq('evidence'), sealEverySeconds: 0.3, sealEveryEntries: 16 });
    stops.push(() => ev.stop());

    const raws = [spanBatch('GET /u/alice@example.com'), spanBatch('GET /healthz')];
    const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic: t.spans, acks: -1, messages: raws.map((v) => ({ key: 'acme', value: v, headers: { [H.tenant]: 'acme', [H.contentSha256]: sha256Hex(v) } })) });
    await producer.disconnect();

    const clean = await readRecords([t.spansClean], 2);
    await waitFor('2 sealed entries', async () => (await sealedSize(store, 'acme')) === 2);
    const entries = await logEntries(store, 'acme');
    const policy = scrubPolicyVersion(policyFor(config, 'acme'), new Set());
    expect(entries).toEqual(raws.map((raw, i) => ({
      type: CLEAN_BATCH_V2_TYPE, topic: t.spansClean, partition: 0, offset: clean[i]!.offset,
      sha256: sha256Hex(clean[i]!.value), size: clean[i]!.value.length, raw_sha256: sha256Hex(raw), scrub_policy: policy,
    })));
    // The first record was rewritten (its raw and clean digests differ), the second kept its bytes.
    expect(entries[0]!.raw_sha256).not.toBe(entries[0]!.sha256);
    expect(entries[1]!.raw_sha256).toBe(entries[1]!.sha256);
  });
});
