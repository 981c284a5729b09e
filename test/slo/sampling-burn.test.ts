// Head sampling must not change SLO burn rates. The same traffic (20,000 server spans in one minute,
// 1% of them errors) goes, for acme at sampling ratio 0.1 and for globex at ratio 1, through the
// real receiver (head sampling: errors always kept), Kafka, the scrub processor and the SLO runner.
// Without weights acme's burn rate would be ~9× globex's (every error kept, ~10% of successes); with
// each kept success weighted by its adjusted count both are 1.0 within the sampling error; the
// golden signals (requests, errors, error rate per minute) are weighted the same way.
import { createHash } from 'node:crypto';
import Long from 'long';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafka } from '../../lib/kafka/client.ts';
import { registry } from '../../lib/metrics.ts';
import { ensurePipelineTopics } from '../../lib/kafka/setup.ts';
import type { StellaConfig } from '../../lib/config.ts';
import { encode } from '../../lib/otlp/proto.ts';
import { parseScrubConfig } from '../../processors/scrub/config.ts';
import { startScrub, type RunningScrub } from '../../processors/scrub/runner.ts';
import { parseSloConfig } from '../../processors/slo/config.ts';
import { startSloRunner, type RunningSloRunner } from '../../processors/slo/runner.ts';
import { goldenSignalsFor } from '../../processors/slo/outputs.ts';
import { quantizeWeight } from '../../processors/slo/samples.ts';
import type { Store } from '../../lib/store/index.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { HeadSampler, headSampler, otelThresholdHex, SAMPLING_TH_HEADER, traceIdHash } from '../../receiver/sampling.ts';
import { brokers, readAllRecordsAt, testAccess, uniq } from '../support/kafka.ts';
import { httpExport } from '../support/otlp.ts';
import { startTestReceiver, TOKENS } from '../support/receiver.ts';
import { MIN } from './helpers.ts';
import { sloTestStore } from './support.ts';

const SPANS = 20_000;
const ERRORS = 200; // 1%: burn rate 1.0 against a 99% objective
const RATIO = 0.1;
/** Allowed relative difference between the sampled and the unsampled burn rate. The estimate's
 * standard error is sqrt((1 − r) / (r · successes)) = sqrt(0.9 / 1980) ≈ 2.1%; 10% is ~4.7 σ. */
const TOLERANCE = 0.10;

const config = parseSloConfig(['acme', 'globex'].map((t) => `
  - name: checkout-availability
    tenant: ${t}
    service: checkout
    objective: 0.99
    sli: { type: availability, spans: { name: "POST /checkout", kind: server } }`).reduce((a, b) => a + b, 'slos:'));

let cfg: StellaConfig;
let receiver: RunningReceiver;
let scrub: RunningScrub;
let runner: RunningSloRunner;
let store: Store;

beforeAll(async () => {
  headSampler.configure({ defaultRatio: 1, tenants: { acme: RATIO } });
  ({ cfg, receiver } = await startTestReceiver());
  await ensurePipelineTopics(testAccess(), cfg.kafka);
  scrub = await startScrub({ kafka: createKafka({ ...testAccess(), clientId: 'slo-sampling-scrub' }), config: parseScrubConfig({}),
    topics: cfg.kafka.topics, groupId: uniq('scrub') });
  const t = cfg.kafka.topics;
  store = await sloTestStore();
  runner = await startSloRunner({ kafka: createKafka({ ...testAccess(), clientId: 'slo-sampling' }), config, store,
    topics: { spans: t.spansClean, metrics: t.metricsClean, sloEvents: t.sloEvents, timelineEvents: t.timelineEvents },
    groupId: uniq('slo-sampling'), idleTickMs: 3_600_000,
    sampler: new HeadSampler() }); // incident modes stay out of the receiver's process-wide sampler
});
afterAll(async () => {
  await runner?.stop();
  await scrub?.stop();
  await receiver?.close();
  headSampler.configure({ defaultRatio: 1, tenants: {} });
});

const ns = (ms: number) => Long.fromNumber(ms).multiply(1_000_000);
/** Deterministic, well-spread trace ids: the sampling decisions (and so the estimate) are reproducible. */
const traceId = (i: number) => createHash('sha256').update(`trace-${i}`).digest().subarray(0, 16);

function request(service: string, spans: { i: number; endMs: number; error: boolean }[]): Uint8Array {
  return encode('traces', { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
    scopeSpans: [{ scope: { name: 'test' }, spans: spans.map((s) => ({
      traceId: traceId(s.i), spanId: createHash('sha256').update(`span-${s.i}`).digest().subarray(0, 8), name: 'POST /checkout', kind: 2,
      startTimeUnixNano: ns(s.endMs - 20), endTimeUnixNano: ns(s.endMs),
      status: s.error ? { code: 2, message: 'failed' } : { code: 1 } })) }] }] });
}

async function send(tenant: 'acme' | 'globex', body: Uint8Array): Promise<void> {
  const res = await httpExport(receiver.httpPort, '/v1/traces', body, { 'content-type': 'application/x-protobuf', authorization: `Bearer ${TOKENS[tenant]}` });
  expect(res.status).toBe(200);
}

describe('sampling-aware SLO counts, end to end', () => {
  it('the same traffic at ratio 1 and at ratio 0.1 gives the same burn rates in every window', async () => {
    const minuteStart = Math.floor((Date.now() - 10 * MIN) / MIN) * MIN;
    const spans = Array.from({ length: SPANS }, (_, i) => ({ i, endMs: minuteStart + Math.floor((i * MIN) / SPANS), error: i % (SPANS / ERRORS) === 0 }));
    for (const tenant of ['acme', 'globex'] as const) {
      for (let b = 0; b < SPANS; b += 1000) await send(tenant, request('checkout', spans.slice(b, b + 1000)));
      // An error span (kept at any ratio) of an unwatched service 4 minutes later: the minutes up to
      // it are evaluated, and the traffic's golden-signal minute (flushed 2 minutes behind) is written.
      await send(tenant, request('closer', [{ i: SPANS + 1, endMs: minuteStart + 4 * MIN + 1000, error: true }]));
    }
    const evaluated = async (tenant: string) => (await runner.summaries(tenant))[0]!;
    const deadline = Date.now() + 90_000;
    const closed = minuteStart + 4 * MIN - 1;
    while ((await evaluated('acme')).evaluatedAtMs !== closed || (await evaluated('globex')).evaluatedAtMs !== closed) {
      if (Date.now() > deadline) {
        const m = await registry.getMetricsAsJSON();
        const pick = m.filter((x) => /stella_(slo|stage|scrub|receiver_items)/.test(x.name)).map((x) => [x.name, x.values.map((v) => [v.labels, v.value])]);
        throw new Error(`the traffic minute was not evaluated: ${JSON.stringify([(await evaluated('acme')).evaluatedAtMs, (await evaluated('globex')).evaluatedAtMs, closed, pick])}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const sampled = await evaluated('acme');
    const full = await evaluated('globex');

    // Unsampled: exactly 1% errors.
    for (const v of Object.values(full.burnRates)) expect(v).toBeCloseTo(1, 9);
    // Sampled: what the receiver kept is known (deterministic ids), so the weighted estimate is exact:
    // every error (weight 1) plus each kept success weighted 1/p, p = the receiver's keep ratio.
    const threshold = headSampler.thresholdFor('acme')!;
    const keptSuccesses = spans.filter((s) => !s.error && traceIdHash(traceId(s.i), 0, 16) < threshold).length;
    expect(keptSuccesses).toBeGreaterThan(0.08 * SPANS);
    expect(keptSuccesses).toBeLessThan(0.12 * SPANS);
    const estimatedTotal = ERRORS + keptSuccesses * quantizeWeight(2 ** 32 / threshold);
    const expectedBurn = ERRORS / estimatedTotal / 0.01;
    // Unweighted (the bug) this would be ERRORS / (ERRORS + keptSuccesses) / 0.01 ≈ 9.2.
    expect(ERRORS / (ERRORS + keptSuccesses) / 0.01).toBeGreaterThan(5);
    for (const [w, v] of Object.entries(sampled.burnRates)) {
      expect(v, w).toBeCloseTo(expectedBurn, 9);
      expect(Math.abs(v - full.burnRates[w]!) / full.burnRates[w]!, w).toBeLessThan(TOLERANCE);
    }
    expect(sampled.budgetRemaining).toBeCloseTo(full.budgetRemaining, 1);

    // Golden signals of that minute are estimates of all traffic too (requests, errors, error rate).
    const golden = async (tenant: string) => (await goldenSignalsFor(store, tenant, { fromMs: minuteStart, toMs: minuteStart + MIN, service: 'checkout' }))[0];
    while (!(await golden('acme')) || !(await golden('globex'))) {
      if (Date.now() > deadline) throw new Error('golden signals of the traffic minute were not written');
      await new Promise((r) => setTimeout(r, 200));
    }
    const g = { sampled: (await golden('acme'))!, full: (await golden('globex'))! };
    expect(g.full).toMatchObject({ requests: SPANS, errors: ERRORS, error_rate: ERRORS / SPANS });
    expect(g.sampled.errors).toBe(ERRORS);
    expect(g.sampled.requests).toBe(Math.round(estimatedTotal));
    expect(Math.abs(g.sampled.error_rate - g.full.error_rate) / g.full.error_rate).toBeLessThan(TOLERANCE);
    expect(g.sampled.p50_ms).toBe(g.full.p50_ms); // every span took 20 ms

    // The carrier: sampled span records carry the receiver's `th` through scrub; unsampled ones carry none.
    const clean = await readAllRecordsAt(brokers(), cfg.kafka.topics.spansClean);
    expect(clean.length).toBeGreaterThanOrEqual(42); // 21 requests per tenant
    const th = (tenant: string) => new Set(clean.filter((r) => r.headers.tenant === tenant).map((r) => r.headers[SAMPLING_TH_HEADER]));
    expect(th('acme')).toEqual(new Set([otelThresholdHex(threshold)]));
    expect(th('globex')).toEqual(new Set([undefined]));
  }, 150_000);
});
