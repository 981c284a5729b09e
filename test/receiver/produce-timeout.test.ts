// kafka.produceTimeoutMs with several produces waiting at once (the broker frozen with SIGSTOP): one
// timer serves all of them (receiver/ingestor.ts), armed for the oldest; each request must still be
// refused retryably about produceTimeoutMs after its own produce started, not after the first one's
// or whenever another request happens to arrive. Kafka keeps nothing the client was not told about
// beyond what the module comment of grpc-h2.ts documents: a timed-out produce may still land.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../lib/kafka/broker.ts';
import { signals } from '../../lib/otlp/proto.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { decodeStatus, httpExport, spanObject, tracesRequest } from '../support/otlp.ts';
import { startTestReceiver, TOKENS } from '../support/receiver.ts';

const TIMEOUT_MS = 1500;
let dir: string;
let broker: RunningBroker;
let receiver: RunningReceiver;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stella-produce-timeout-'));
  broker = await startBroker({ dataDir: dir, heapMb: 384 });
  ({ receiver } = await startTestReceiver({ receiver: { maxQueueWaitMs: 0 }, kafka: { produceTimeoutMs: TIMEOUT_MS } }, broker.access()));
}, 180_000);
afterAll(async () => {
  if (broker?.pid) try { process.kill(broker.pid, 'SIGCONT'); } catch { /* gone */ }
  await receiver?.close();
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const send = async (name: string) => {
  const t0 = performance.now();
  const r = await httpExport(receiver.httpPort, signals.traces.httpPath, tracesRequest([{ scopes: [{ name: 's', spans: [spanObject(name)] }] }]),
    { 'content-type': 'application/x-protobuf', authorization: `Bearer ${TOKENS.acme}` });
  return { status: r.status, retryAfter: r.headers.get('retry-after'), message: decodeStatus(r.body, false).message, ms: performance.now() - t0 };
};

it('each of several stalled produces times out on its own deadline, with one timer for all', async () => {
  expect((await send('warm')).status).toBe(200); // producer connected, metadata known
  process.kill(broker.pid!, 'SIGSTOP');
  let answers;
  try {
    // Started 500 ms apart: the second and third are not due when the first times out.
    const calls = [];
    for (let i = 0; i < 3; i++) {
      calls.push(send(`stalled-${i}`));
      await new Promise((r) => setTimeout(r, 500));
    }
    answers = await Promise.all(calls);
  } finally {
    process.kill(broker.pid!, 'SIGCONT');
  }
  for (const a of answers) {
    expect(a.status).toBe(503);
    expect(a.retryAfter).not.toBeNull();
    expect(a.message).toMatch(new RegExp(`Kafka did not acknowledge within ${TIMEOUT_MS} ms; retry later`));
    expect(a.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    // Not held until a later request or another timeout comes along (generous for a loaded box).
    expect(a.ms).toBeLessThan(TIMEOUT_MS + 1200);
  }
  // The receiver takes data again once Kafka answers.
  let ok = 0;
  for (let i = 0; i < 60 && ok === 0; i++) {
    if ((await send(`after-${i}`)).status === 200) ok++;
    else await new Promise((r) => setTimeout(r, 500));
  }
  expect(ok).toBe(1);
}, 120_000);
