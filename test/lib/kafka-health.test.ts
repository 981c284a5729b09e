// lib/kafka/health.ts against the real test broker: stop() waits for a probe in flight, so a verdict
// set after stop() stands. Before, a probe still running when stop() returned could mark Kafka up
// after the caller marked it down (a CI run of grpc-clients.test.ts: the receiver kept accepting
// while "down", so no UNAVAILABLE answer ever came).
import { describe, expect, it } from 'vitest';
import { KafkaHealth } from '../../lib/kafka/health.ts';
import { testKafka } from '../support/kafka.ts';

describe('KafkaHealth', () => {
  it('a probe in flight at stop() gives its verdict before stop() resolves; markDown after stop() stands', async () => {
    for (let round = 0; round < 5; round++) {
      const health = new KafkaHealth(testKafka(`health-${round}`), 60_000);
      const inflight = health.probeNow(); // connect + describeCluster: takes a while
      let probeDone = false;
      void inflight.then(() => { probeDone = true; });
      await health.stop();
      expect(probeDone, 'stop() resolved before the probe in flight finished').toBe(true);
      health.markDown(new Error('test: reported down'));
      await new Promise((r) => setTimeout(r, 300));
      expect(health.isUp).toBe(false);
    }
  }, 60_000);

  it('probes up against the real broker, and concurrent probes share one', async () => {
    const health = new KafkaHealth(testKafka('health-up'), 60_000);
    const a = health.probeNow();
    const b = health.probeNow();
    expect(a).toBe(b);
    await a;
    expect(health.isUp).toBe(true);
    await health.stop();
  }, 30_000);
});
