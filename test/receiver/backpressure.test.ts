// Backpressure by expected wait: under a sustained overload (a real broker that acks slower than
// data arrives: it is frozen with SIGSTOP most of the time, and the receiver's records are small so
// each produce carries little), exporters with a 10 s timeout are answered in time. A request whose
// data reached Kafka while its client saw a failure or gave up is one the exporter resends: a
// duplicate. The same open-loop load runs against receivers with the wait budget off (the in-flight
// byte cap only, as before) and on (receiver.maxQueueWaitMs = 2000), and the test counts those
// duplicates from what is really in the topic.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../lib/kafka/broker.ts';
import { decodeTraces } from '../../lib/otlp/proto.ts';
import { readAllRecordsAt } from '../support/kafka.ts';
import { spanObject, tracesRequest } from '../support/otlp.ts';
import { startTestReceiver, TOKENS } from '../support/receiver.ts';

const CLIENT_TIMEOUT_MS = 10_000;
const BUDGET_MS = 2000;
let dir: string;
let broker: RunningBroker;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stella-backpressure-'));
  broker = await startBroker({ dataDir: dir, heapMb: 384 });
}, 180_000);

afterAll(async () => {
  if (broker?.pid) try { process.kill(broker.pid, 'SIGCONT'); } catch { /* gone */ }
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A slow Kafka: frozen 160 ms of every 200 ms. */
function slowBroker(): () => void {
  let stop = false;
  const loop = async () => {
    while (!stop) {
      process.kill(broker.pid!, 'SIGSTOP');
      await new Promise((r) => setTimeout(r, 160));
      process.kill(broker.pid!, 'SIGCONT');
      await new Promise((r) => setTimeout(r, 40));
    }
  };
  const done = loop();
  return () => { stop = true; void done.then(() => process.kill(broker.pid!, 'SIGCONT')); process.kill(broker.pid!, 'SIGCONT'); };
}

interface Outcome { sent: number; ok: number; refused503: number; other: number; timedOut: number; okOver10s: number; maxOkMs: number; duplicates: number }

async function overload(maxQueueWaitMs: number): Promise<Outcome> {
  const { cfg, receiver } = await startTestReceiver({
    receiver: { maxQueueWaitMs, retryAfterSeconds: 1 },
    kafka: { maxRecordBytes: 16 * 1024 },
  }, broker.access());
  const results = new Map<string, { status: number; ms: number }>();
  const inflight: Promise<void>[] = [];
  const resume = slowBroker();
  // Open loop: 25 requests/s of ~60 KB for 8 s, whatever the answers (many exporters).
  const started = Date.now();
  let seq = 0;
  while (Date.now() - started < 8000) {
    const id = `r${maxQueueWaitMs}-${seq++}`;
    const body = tracesRequest([{ scopes: [{ name: id, spans: Array.from({ length: 30 }, (_, i) => spanObject(`${id}/${i}`, { pad: 'x'.repeat(2000) })) }] }]);
    const t0 = performance.now();
    inflight.push(fetch(`http://127.0.0.1:${receiver.httpPort}/v1/traces`, {
      method: 'POST', body, headers: { 'content-type': 'application/x-protobuf', authorization: `Bearer ${TOKENS.acme}` },
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
    }).then(async (r) => { await r.arrayBuffer(); results.set(id, { status: r.status, ms: performance.now() - t0 }); },
      () => { results.set(id, { status: 0, ms: performance.now() - t0 }); }));
    await new Promise((r) => setTimeout(r, 40));
  }
  await Promise.all(inflight);
  resume();
  await receiver.close(); // lets the produces still in flight settle
  const inKafka = new Set<string>();
  for (const rec of await readAllRecordsAt(broker.access(), cfg.kafka.topics.spans)) {
    for (const rs of decodeTraces(rec.value).resourceSpans) for (const ss of rs.scopeSpans) inKafka.add(ss.scope!.name);
  }
  const out: Outcome = { sent: results.size, ok: 0, refused503: 0, other: 0, timedOut: 0, okOver10s: 0, maxOkMs: 0, duplicates: 0 };
  for (const [id, r] of results) {
    if (r.status === 200) { out.ok++; out.maxOkMs = Math.max(out.maxOkMs, r.ms); if (r.ms > CLIENT_TIMEOUT_MS) out.okOver10s++; }
    else if (r.status === 503) out.refused503++;
    else if (r.status === 0) out.timedOut++;
    else out.other++;
    // The exporter resends whatever it was not told succeeded; if Kafka has it, that is a duplicate.
    if (r.status !== 200 && inKafka.has(id)) out.duplicates++;
  }
  return out;
}

it('refuses before the wait would pass the budget: no duplicates from client timeouts, unlike the byte cap alone', async () => {
  const before = await overload(0);
  const after = await overload(BUDGET_MS);
  console.log(`overload (25 req/s x ~60 KB for 8 s, Kafka frozen 160 of every 200 ms):\n  budget off: ${JSON.stringify(before)}\n  budget ${BUDGET_MS} ms: ${JSON.stringify(after)}`);
  // The scenario is an overload: without the budget, clients waited past the ack timeout or their own.
  expect(before.duplicates).toBeGreaterThan(0);
  // With it: refusals are quick 503s with Retry-After, every 200 came well within the client's timeout,
  // and nothing the client was not told about is in Kafka.
  expect(after.refused503).toBeGreaterThan(0);
  expect(after.timedOut).toBe(0);
  expect(after.okOver10s).toBe(0);
  expect(after.duplicates).toBeLessThan(before.duplicates);
  expect(after.ok).toBeGreaterThan(0);
}, 180_000);
