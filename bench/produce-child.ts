// One side of bench:produce (bench/produce.ts): a BatchingProducer from the tree given, receiver-like
// records, CPU per send after a warm-up. Prints one JSON line.
import { createHash } from 'node:crypto';

const [tree, topic] = [process.argv[2]!, process.argv[3]!];
const num = (name: string, d: number): number => Number(process.env[name] ?? d);
const { BatchingProducer } = await import(`${tree}/lib/kafka/producer.ts`);
const { createKafka } = await import(`${tree}/lib/kafka/client.ts`);
const { accessFromEnv } = await import(`${tree}/lib/kafka/auth.ts`);
const producer = new BatchingProducer(createKafka({ ...accessFromEnv(), clientId: 'bench-produce' }), { lingerMs: 5 });
await producer.connect();
const value = Buffer.alloc(num('BENCH_PRODUCE_BYTES', 20_000), 7);
const headers = { tenant: 'acme', 'content-sha256': createHash('sha256').update(value).digest('hex'),
  traceparent: '00-0123456789abcdef0123456789abcdef-0123456789abcdef-01' };
const senders = num('BENCH_PRODUCE_SENDERS', 4);
const rate = num('BENCH_PRODUCE_RATE', 0);
let sends = 0;
let running = true;
const sender = async (): Promise<void> => {
  while (running) {
    const t = performance.now();
    await producer.send(topic, [{ key: 'acme', value, headers }]);
    sends++;
    const wait = rate ? 1000 / rate - (performance.now() - t) : 0;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
};
const run = async (seconds: number): Promise<void> => {
  running = true;
  const all = Array.from({ length: senders }, sender);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  running = false;
  await Promise.all(all);
};
await run(num('BENCH_PRODUCE_WARMUP', 6));
sends = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await run(num('BENCH_PRODUCE_SECONDS', 6));
const cpu = process.cpuUsage(cpu0);
const wall = (performance.now() - t0) / 1000;
await producer.disconnect();
process.stdout.write(`${JSON.stringify({ sends, cpuUsPerSend: (cpu.user + cpu.system) / sends, sendsPerSec: sends / wall })}\n`);
process.exit(0);
