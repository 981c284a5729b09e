// Runner test helpers: a chdb store per worker, clean-topic records built from synthetic traffic.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Long from 'long';
import { encode } from '../../lib/otlp/proto.ts';
import { migrate, openStore, type Store } from '../../lib/store/index.ts';
import { testKafka } from '../support/kafka.ts';
import { MIN } from './helpers.ts';

let storePromise: Promise<Store> | undefined;
export function sloTestStore(): Promise<Store> {
  storePromise ??= (async () => {
    const store = await openStore({ dataPath: mkdtempSync(path.join(os.tmpdir(), 'stella-chdb-slo-')) });
    await migrate(store, { timelineTtlDays: 180, otelTtlDays: 30 });
    return store;
  })();
  return storePromise;
}

const ns = (ms: number) => Long.fromString((BigInt(Math.round(ms)) * 1_000_000n).toString(), true);

/** One clean-spans record value: `perMinute` server spans of `service` in minute m, the first `errors` failing. */
export function minuteRequest(o: { tenant: string; service: string; spanName: string; startMs: number; minute: number; perMinute: number; errors: number; durationMs?: number }): Buffer {
  const spans = [];
  for (let i = 0; i < o.perMinute; i++) {
    const end = o.startMs + o.minute * MIN + Math.floor((i * MIN) / o.perMinute);
    const traceId = Buffer.from((o.minute * 1_000_000 + i + 1).toString(16).padStart(32, '0'), 'hex');
    spans.push({ traceId, spanId: Buffer.from((i + 1).toString(16).padStart(16, '0'), 'hex'), name: o.spanName, kind: 2,
      startTimeUnixNano: ns(end - (o.durationMs ?? 20)), endTimeUnixNano: ns(end),
      status: i < o.errors ? { code: 2, message: 'failed' } : { code: 1 } });
  }
  return Buffer.from(encode('traces', { resourceSpans: [{
    resource: { attributes: [{ key: 'service.name', value: { stringValue: o.service } }, { key: 'tenant.id', value: { stringValue: o.tenant } }] },
    scopeSpans: [{ scope: { name: 'test' }, spans }] }] }));
}

/** Produces one tenant's records (key = tenant, header tenant): they share a partition. Returns it and the last offset. */
export async function produceTenant(topic: string, tenant: string, values: Buffer[]): Promise<{ partition: number; lastOffset: bigint }> {
  const producer = testKafka('slo-test-producer').producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  let out = { partition: -1, lastOffset: -1n };
  try {
    for (let i = 0; i < values.length; i += 50) {
      const chunk = values.slice(i, i + 50);
      const meta = await producer.send({ topic, acks: -1, messages: chunk.map((value) => ({ key: tenant, value, headers: { tenant } })) });
      if (meta.length !== 1) throw new Error('one tenant per call: records must land on one partition');
      out = { partition: meta[0]!.partition, lastOffset: BigInt(meta[0]!.baseOffset!) + BigInt(chunk.length - 1) };
    }
  } finally {
    await producer.disconnect();
  }
  return out;
}
