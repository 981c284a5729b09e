// Kafka stopped mid-run: clients get retryable answers (503 + Retry-After / UNAVAILABLE), the
// receiver's in-flight bytes stay under the cap, /readyz reports not ready, and once Kafka is back
// the receiver recovers by itself and every record a client was told was accepted is in Kafka.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { startAdminServer, type AdminServer } from '../../lib/admin.ts';
import { startBroker, type RunningBroker } from '../../lib/kafka/broker.ts';
import { decodeTraces } from '../../lib/otlp/proto.ts';
import type { StellaConfig } from '../../lib/config.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { readAllRecordsAt } from '../support/kafka.ts';
import { grpcExport, httpExport, spanObject, tracesRequest } from '../support/otlp.ts';
import { startTestReceiver, TOKENS } from '../support/receiver.ts';

const CAP = 2 * 1024 * 1024;
let dir: string;
let broker: RunningBroker;
let cfg: StellaConfig;
let receiver: RunningReceiver;
let admin: AdminServer;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stella-outage-'));
  broker = await startBroker({ dataDir: dir, heapMb: 384 });
  ({ cfg, receiver } = await startTestReceiver({
    receiver: { maxInflightBytes: CAP, maxRequestBytes: 512 * 1024, retryAfterSeconds: 1 },
    kafka: { produceTimeoutMs: 1500 },
  }, broker.access()));
  admin = await startAdminServer('127.0.0.1', 0);
  admin.addCheck('kafka', () => ({ ok: receiver.health.isUp }));
}, 180_000);

afterAll(async () => {
  await receiver?.close();
  await admin?.close();
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const readyz = async () => (await fetch(`http://127.0.0.1:${admin.port}/readyz`)).status;

it('refuses retryably while Kafka is down, stays under the cap, and loses nothing it acked', async () => {
  const acked = new Set<string>();
  const answers = new Map<string, number>();
  const count = (k: string) => answers.set(k, (answers.get(k) ?? 0) + 1);
  let maxInflight = 0;
  let running = true;
  let seq = 0;
  const sampler = setInterval(() => { maxInflight = Math.max(maxInflight, receiver.ingestor.inflightBytes); }, 10);

  const client = async (id: number) => {
    while (running) {
      const name = `c${id}-${seq++}`;
      // ~20 KB requests so the cap matters.
      const body = tracesRequest([{ scopes: [{ name: 'load', spans: Array.from({ length: 10 }, (_, i) => spanObject(`${name}/${i}`, { pad: 'x'.repeat(2000) })) }] }]);
      if (id % 2 === 0) {
        const a = await grpcExport(receiver.grpcPort, 'traces', body, TOKENS.acme);
        count(`grpc:${status[a.code]}`);
        if (a.code === 0) acked.add(name);
        else {
          expect(a.code).toBe(status.UNAVAILABLE);
          expect(a.retryDelaySeconds).toBe(1);
        }
      } else {
        const r = await httpExport(receiver.httpPort, '/v1/traces', body, { 'content-type': 'application/x-protobuf', authorization: `Bearer ${TOKENS.acme}` });
        count(`http:${r.status}`);
        if (r.status === 200) acked.add(name);
        else {
          expect(r.status).toBe(503);
          expect(r.headers.get('retry-after')).toBe('1');
        }
      }
      await new Promise((res) => setTimeout(res, 5));
    }
  };
  const clients = Array.from({ length: 6 }, (_, i) => client(i));

  await new Promise((r) => setTimeout(r, 1500));
  const ackedBeforeOutage = acked.size;
  expect(ackedBeforeOutage).toBeGreaterThan(0);
  expect(await readyz()).toBe(200);

  await broker.stop();
  await new Promise((r) => setTimeout(r, 4000));
  expect(receiver.health.isUp).toBe(false);
  expect(await readyz()).toBe(503);
  const refusedDuringOutage = (answers.get('grpc:UNAVAILABLE') ?? 0) + (answers.get('http:503') ?? 0);
  expect(refusedDuringOutage).toBeGreaterThan(10);

  broker = await startBroker({ dataDir: dir, heapMb: 384 });
  const deadline = Date.now() + 30_000;
  while (!receiver.health.isUp && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  const ackedAtRecovery = acked.size;
  await new Promise((r) => setTimeout(r, 2500));
  running = false;
  await Promise.all(clients);
  clearInterval(sampler);

  expect(receiver.health.isUp).toBe(true);
  expect(await readyz()).toBe(200);
  expect(acked.size).toBeGreaterThan(ackedAtRecovery); // recovered by itself
  expect(maxInflight).toBeLessThanOrEqual(CAP);
  // Only success or the retryable answers were ever given.
  for (const k of answers.keys()) expect(['grpc:OK', 'grpc:UNAVAILABLE', 'http:200', 'http:503']).toContain(k);

  // Every acked request's spans are in Kafka. Extra records are allowed: a produce that timed out
  // (the client was told to retry) may still land later. Losses are not.
  const records = (await readAllRecordsAt(broker.access(), cfg.kafka.topics.spans)).map((r) => r.value);
  const inKafka = new Set<string>();
  for (const r of records) for (const rs of decodeTraces(r).resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) inKafka.add(s.name.split('/')[0]!);
  const missing = [...acked].filter((n) => !inKafka.has(n));
  expect(missing).toEqual([]);
  expect(inKafka.size).toBeGreaterThanOrEqual(acked.size);
  expect(acked.size).toBeGreaterThan(ackedBeforeOutage);
}, 180_000);

