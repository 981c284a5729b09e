// grpc-timeout against a Kafka that does not ack (its broker frozen with SIGSTOP): a deadline that
// passes after the records went to the producer is answered DEADLINE_EXCEEDED saying the data may
// still be stored — and it is, once Kafka acks (at-least-once; receiver/grpc-h2.ts). A call whose
// remaining deadline is shorter than the expected wait for Kafka is refused before anything is
// produced, and nothing of it is stored.
import http2 from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { startBroker, type RunningBroker } from '../../lib/kafka/broker.ts';
import { decodeTraces, signals } from '../../lib/otlp/proto.ts';
import type { StellaConfig } from '../../lib/config.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { readAllRecordsAt } from '../support/kafka.ts';
import { spanObject, tracesRequest } from '../support/otlp.ts';
import { startTestReceiver, TOKENS } from '../support/receiver.ts';

let dir: string;
let broker: RunningBroker;
let cfg: StellaConfig;
let receiver: RunningReceiver;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stella-grpc-deadline-'));
  broker = await startBroker({ dataDir: dir, heapMb: 384 });
  ({ cfg, receiver } = await startTestReceiver({ receiver: { maxQueueWaitMs: 0 }, kafka: { produceTimeoutMs: 20_000 } }, broker.access()));
}, 180_000);
afterAll(async () => {
  if (broker?.pid) try { process.kill(broker.pid, 'SIGCONT'); } catch { /* gone */ }
  await receiver?.close();
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function call(marker: string, timeout: string): Promise<{ code: number; message: string; ms: number }> {
  const session = http2.connect(`http://127.0.0.1:${receiver.grpcPort}`);
  const msg = tracesRequest([{ scopes: [{ name: 's', spans: [spanObject(marker)] }] }]);
  const f = Buffer.alloc(5 + msg.length);
  f.writeUInt32BE(msg.length, 1);
  f.set(msg, 5);
  const t0 = performance.now();
  const req = session.request({ ':method': 'POST', ':path': signals.traces.grpcPath, 'content-type': 'application/grpc', te: 'trailers',
    authorization: `Bearer ${TOKENS.acme}`, 'grpc-timeout': timeout });
  return new Promise((resolve, reject) => {
    let h: http2.IncomingHttpHeaders = {};
    req.on('response', (x) => { h = { ...h, ...x }; });
    req.on('trailers', (x) => { h = { ...h, ...x }; });
    req.on('data', () => {});
    req.on('error', () => {});
    req.on('close', () => {
      session.close();
      if (h['grpc-status'] === undefined) reject(new Error('no grpc-status'));
      else resolve({ code: Number(h['grpc-status']), message: decodeURIComponent(String(h['grpc-message'] ?? '')), ms: performance.now() - t0 });
    });
    req.end(f);
  });
}

it('deadline after the produce: DEADLINE_EXCEEDED that says so, and the data lands when Kafka acks; a deadline shorter than the expected wait: nothing produced', async () => {
  const m = `deadline-${Date.now()}`;
  expect((await call(`${m}-warm`, '20S')).code).toBe(0); // producer connected, metadata known

  process.kill(broker.pid!, 'SIGSTOP');
  let late, refused;
  try {
    late = await call(`${m}-after-produce`, '700m');
    // The produce above is still pending: the expected wait is now at least its age (> 700 ms).
    refused = await call(`${m}-refused`, '400m');
  } finally {
    process.kill(broker.pid!, 'SIGCONT');
  }
  expect(late.code).toBe(status.DEADLINE_EXCEEDED);
  expect(late.message).toMatch(/deadline passed while waiting for Kafka's acknowledgement; the data may still be stored/);
  expect(late.ms).toBeGreaterThanOrEqual(650);
  expect(refused.code).toBe(status.DEADLINE_EXCEEDED);
  expect(refused.message).toMatch(/expected acknowledgement wait \(\d+ ms\) exceeds the call's remaining deadline \(\d+ ms\); nothing was stored/);

  const after = `${m}-after-thaw`;
  expect((await call(after, '20S')).code).toBe(0);
  const names = (await readAllRecordsAt(broker.access(), cfg.kafka.topics.spans))
    .flatMap((r) => decodeTraces(r.value).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans.map((x) => x.name))));
  expect(names).toContain(after);
  expect(names).toContain(`${m}-after-produce`); // stored although the client was told DEADLINE_EXCEEDED (documented)
  expect(names).not.toContain(`${m}-refused`);
}, 120_000);
