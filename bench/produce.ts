// bench:produce — the receiver's produce path alone (lib/kafka/producer.ts into one real broker,
// acks=all, idempotent), A/B between source trees in alternating rounds.
//
//   npm run bench:produce -- <tree> [<tree> ...]     (default: this tree)
//
// Each round starts one child process per tree (its own lib/kafka/producer.ts and kafkajs patches),
// which sends receiver-like records (BENCH_PRODUCE_BYTES, default 20,000 bytes, key = tenant, the
// receiver's three headers) from BENCH_PRODUCE_SENDERS concurrent senders (4), each awaiting its ack
// before the next send, back to back or at BENCH_PRODUCE_RATE sends/s per sender; after
// BENCH_PRODUCE_WARMUP seconds (6: V8 optimises the path) it measures the process's CPU (user+system)
// per send over BENCH_PRODUCE_SECONDS (6). BENCH_PRODUCE_ROUNDS rounds (7), the order reversed every
// other round; prints per-round and median ratios to the first tree. The broker's CPU is not counted.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { accessEnv } from '../lib/kafka/auth.ts';
import { startBroker } from '../lib/kafka/broker.ts';
import { createKafka, ensureTopics } from '../lib/kafka/client.ts';
import { NODE_FLAGS } from '../lib/node-flags.ts';
import { pct } from './ingest.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const trees = (process.argv.slice(2).length ? process.argv.slice(2) : [path.resolve(here, '..')]).map((t) => path.resolve(t));
const rounds = Number(process.env.BENCH_PRODUCE_ROUNDS ?? 7);
const TOPIC = 'bench_produce';

const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-bench-produce-'));
const broker = await startBroker({ dataDir: path.join(dir, 'kafka'), heapMb: 512 });
try {
  await ensureTopics(createKafka({ ...broker.access(), clientId: 'bench-produce' }), [{ name: TOPIC, partitions: 6, replicationFactor: 1 }]);
  const res = new Map<string, { cpu: number; rate: number }[]>(trees.map((t) => [t, []]));
  const load0 = os.loadavg();
  for (let i = 0; i < rounds; i++) {
    for (const tree of i % 2 ? [...trees].reverse() : trees) {
      const out = spawnSync(process.execPath, [...NODE_FLAGS, '--import', 'tsx', path.join(here, 'produce-child.ts'), tree, TOPIC],
        { env: { ...process.env, ...accessEnv(broker.access()), STELLA_LOG_LEVEL: 'warn' }, encoding: 'utf8', cwd: tree });
      const line = out.stdout.trim().split('\n').pop() ?? '';
      if (out.status !== 0 || !line.startsWith('{')) throw new Error(`${tree}: child failed (${out.status}): ${out.stderr.slice(-2000)}`);
      const r = JSON.parse(line) as { cpuUsPerSend: number; sendsPerSec: number };
      res.get(tree)!.push({ cpu: r.cpuUsPerSend, rate: r.sendsPerSec });
      process.stderr.write(`[bench:produce] round ${i + 1}, ${tree}: ${r.cpuUsPerSend.toFixed(1)} CPU-µs/send, ${r.sendsPerSec.toFixed(0)} sends/s\n`);
    }
  }
  const load1 = os.loadavg();
  const first = res.get(trees[0]!)!;
  process.stdout.write(`\nbench:produce — ${rounds} alternating rounds; load averages ${load0.map((x) => x.toFixed(2)).join(' ')} → ${load1.map((x) => x.toFixed(2)).join(' ')}\n\n`
    + '| tree | CPU-µs/send | sends/s | CPU/send ratio to the first (per round) |\n|---|---|---|---|\n');
  for (const [tree, xs] of res) {
    const ratios = xs.map((x, j) => x.cpu / first[j]!.cpu);
    process.stdout.write(`| ${tree} | ${pct(xs.map((x) => x.cpu), 50).toFixed(1)} | ${pct(xs.map((x) => x.rate), 50).toFixed(0)} | `
      + `**${pct(ratios, 50).toFixed(2)}** (${ratios.map((x) => x.toFixed(2)).join(', ')}) |\n`);
  }
} finally {
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
}
