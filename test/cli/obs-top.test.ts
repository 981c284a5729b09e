// `stella obs top` against the real API server with the SLO processor's golden_signals table (rows
// written by the processor's own writer) when the API has no Kafka or cannot reach it (lag unknown),
// on a terminal (redraw in place, via script(1)'s pseudo-terminal), and the pure pieces: lag
// arithmetic, the window summary, the progress line.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { createKafka } from '../../lib/kafka/client.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kafkaLag, topicLag } from '../../api/kafka-lag.ts';
import { registerObsRoutes, summarizeSignals } from '../../api/obs-routes.ts';
import { startApiServer, type RunningApi } from '../../api/server.ts';
import { SCOPES, sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { progressLine } from '../../cli/progress.ts';
import { insertGoldenSignals } from '../../processors/slo/outputs.ts';
import { sloTestStore } from '../slo/support.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { buildBundle } from '../../processors/evidence/bundle.ts';
import { Sealer } from '../../processors/evidence/sealer.ts';
import { items, ORIGIN, TENANT, tempStore, testSigner } from '../evidence/helpers.ts';
import { writeFileSync } from 'node:fs';

const root = path.resolve(import.meta.dirname, '../..');
const ADMIN = `top-admin-${randomBytes(8).toString('hex')}`;
const tokens = new TokenRegistry([{ id: 'initech', tokens: [{ sha256: sha256Hex(ADMIN), scopes: [...SCOPES] }] }]);
let noKafka: RunningApi;
let deadKafka: RunningApi;
const lagToNowhere = kafkaLag({ kafka: createKafka({ clientId: 'top-test', brokers: ['127.0.0.1:1'], quiet: true, retries: 0, connectionTimeoutMs: 300 }), timeoutMs: 1500 });

function stella(args: string[], api: string, o: { tty?: boolean } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env, STELLA_LOG_LEVEL: 'silent', STELLA_API_URL: api, STELLA_TOKEN: ADMIN };
  const argv = [process.execPath, '--import', 'tsx', path.join(root, 'cli/stella.ts'), ...args];
  // script(1) runs the command on a pseudo-terminal (stdout and stderr both the terminal) and copies it to our stdout.
  const [cmd, cmdArgs] = o.tty ? ['script', ['-qefc', argv.map((a) => `'${a}'`).join(' '), '/dev/null']] as const : [argv[0]!, argv.slice(1)] as const;
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, [...cmdArgs], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
    p.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  const store = await sloTestStore();
  // The newest complete minutes (1 and 2 before the current one): a 5-minute window read up to
  // two minutes after this setup still covers both (at -3/-4, a setup slow enough to cross two
  // minute boundaries before the query dropped the older row: 120 where 180 was expected, in CI).
  const minute = Math.floor(Date.now() / 60_000) * 60_000 - 60_000;
  await insertGoldenSignals(store, [
    { tenant: 'initech', service: 'billing', minuteStartMs: minute, requests: 120, errors: 6, errorRate: 0.05, throughputPerSec: 2, p50Ms: 12, p95Ms: 80, p99Ms: 1500 },
    { tenant: 'initech', service: 'billing', minuteStartMs: minute - 60_000, requests: 60, errors: 0, errorRate: 0, throughputPerSec: 1, p50Ms: 10, p95Ms: 70, p99Ms: 90 },
    { tenant: 'initech', service: 'search', minuteStartMs: minute, requests: 30, errors: 0, errorRate: 0, throughputPerSec: 0.5, p50Ms: 3, p95Ms: 9, p99Ms: 11 },
    { tenant: 'umbrella', service: 'secret', minuteStartMs: minute, requests: 999, errors: 0, errorRate: 0, throughputPerSec: 16.65, p50Ms: 1, p95Ms: 1, p99Ms: 1 },
  ]);
  noKafka = await startApiServer({ tokens, port: 0, register: [(r) => registerObsRoutes(r, { store })] });
  deadKafka = await startApiServer({ tokens, port: 0, register: [(r) => registerObsRoutes(r, { store, lag: lagToNowhere })] });
}, 120_000);

afterAll(async () => {
  await noKafka?.close();
  await deadKafka?.close();
  await lagToNowhere.close();
});

describe('stella obs top without Kafka', () => {
  it('an API without Kafka: golden signals of this tenant only, lag unknown', async () => {
    const r = await stella(['obs', 'top', '--once', '--output', 'json'], noKafka.url);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout) as { services: { service: string; requests: number; errors: number; p99_ms: number }[]; totals: { requests: number }; lag: { status: string; reason: string } };
    expect(d.services.map((s) => [s.service, s.requests, s.errors, s.p99_ms])).toEqual([['billing', 180, 6, 1500], ['search', 30, 0, 11]]);
    expect(d.totals.requests).toBe(210); // not umbrella's 999
    expect(d.lag).toEqual({ status: 'unknown', reason: 'this API runs without Kafka', checked_at: null });
    expect(r.stderr).toMatch(/^trace_id: [0-9a-f]{32}\n$/);
    const t = await stella(['obs', 'top', '--once'], noKafka.url);
    expect(t.stdout).toContain('lag: unknown (this API runs without Kafka)\n');
    expect(t.stdout).toMatch(/^billing\s+180\s+0\.60\s+6\s+3\.33%\s+12\.0ms\s+80\.0ms\s+1\.50s$/m);
  });

  it('an API whose Kafka is down answers within its bound and says lag unknown', async () => {
    const r = await stella(['obs', 'top', '--once', '--output', 'json'], deadKafka.url);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { lag: { status: string } }).lag.status).toBe('unknown');
  });

  it('window_seconds out of range is a 400 the CLI reports as usage (2)', async () => {
    const r = await stella(['obs', 'top', '--once', '--window', '0'], noKafka.url);
    expect([r.code, r.stderr]).toEqual([2, 'stella: --window takes whole minutes from 1 to 1440\n']);
    const res = await fetch(`${noKafka.url}/obs/top?window_seconds=5`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(res.status).toBe(400);
    expect(res.headers.get('x-trace-id')).toMatch(/^[0-9a-f]{32}$/);
  });

  it('echoes the caller\'s traceparent trace id as x-trace-id', async () => {
    const id = randomBytes(16).toString('hex');
    const res = await fetch(`${noKafka.url}/obs/top`, { headers: { authorization: `Bearer ${ADMIN}`, traceparent: `00-${id}-${randomBytes(8).toString('hex')}-01` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-trace-id')).toBe(id);
    const bad = await fetch(`${noKafka.url}/obs/top`, { headers: { authorization: `Bearer ${ADMIN}`, traceparent: `00-${'0'.repeat(32)}-${randomBytes(8).toString('hex')}-01` } });
    expect(bad.headers.get('x-trace-id')).not.toBe('0'.repeat(32));
  });
});

describe('consumer lag from the real broker', () => {
  it('committed offsets against high watermarks per group; a group that committed nothing shows "-"', async () => {
    const topic = uniq('top_lag');
    const group = uniq('top-lag-group');
    await createTopics([topic], 2);
    const producer = testKafka('top-lag').producer();
    await producer.connect();
    await producer.send({ topic, messages: Array.from({ length: 10 }, (_, i) => ({ partition: i % 2, value: `r${i}` })) });
    await producer.disconnect();
    const admin = testKafka('top-lag').admin();
    await admin.connect();
    await admin.setOffsets({ groupId: group, topic, partitions: [{ partition: 0, offset: '2' }, { partition: 1, offset: '5' }] });
    await admin.disconnect();
    const lag = kafkaLag({ kafka: testKafka('top-lag'), groups: { worker: group, ghost: uniq('ghost') } });
    const store = await sloTestStore();
    const api = await startApiServer({ tokens, port: 0, register: [(r) => registerObsRoutes(r, { store, lag })] });
    try {
      const j = await stella(['obs', 'top', '--once', '--output', 'json'], api.url);
      expect(j.code).toBe(0);
      expect((JSON.parse(j.stdout) as { lag: unknown }).lag).toMatchObject({ status: 'ok', groups: [
        { processor: 'worker', group, lag: 3, topics: [{ topic, lag: 3, partitions: 2 }] },
        { processor: 'ghost', lag: null, topics: [] }] });
      const t = await stella(['obs', 'top', '--once'], api.url);
      expect(t.stdout).toMatch(new RegExp(`^worker\\s+${group}\\s+3$`, 'm'));
      expect(t.stdout).toMatch(/^ghost\s+ghost_[0-9a-f]+\s+-$/m);
      expect(t.stdout).toContain('(-: the group has committed no offsets');
    } finally {
      await api.close();
      await lag.close();
    }
  });
});

describe('stella on a terminal', () => {
  it('obs top redraws in place (clear screen before each frame) and keeps the trace id in the frame', async () => {
    const r = await stella(['obs', 'top', '--count', '2', '--interval', '0.5'], noKafka.url, { tty: true });
    expect(r.code).toBe(0);
    const frames = r.stdout.split('\x1b[H\x1b[2J');
    expect(frames).toHaveLength(3); // '' before the first clear, then two frames
    for (const f of frames.slice(1)) expect(f).toMatch(/^stella obs top — tenant initech — .* — trace_id [0-9a-f]{32}\r?\n/);
    expect(r.stdout).not.toMatch(/^trace_id: /m); // not printed as a separate line into the redrawn screen
  });

  it('forensic verify draws its progress bar on a terminal without --progress, and not elsewhere', async () => {
    const store = tempStore();
    const sealer = await Sealer.recover({ store, tenant: TENANT, signer: testSigner(), origin: ORIGIN });
    sealer.append(items(0, 300));
    await sealer.seal('2026-11-23T10:00:00Z');
    const file = path.join(store.root, 'case.tar.gz');
    writeFileSync(file, await buildBundle(store, TENANT, { caseId: 'tty', indices: [1, 200] }));
    const tty = await stella(['forensic', 'verify', file, '--trusted-key', testSigner().verifierKey], noKafka.url, { tty: true });
    expect(tty.code).toBe(0);
    expect(tty.stdout).toMatch(/\rverify: \w+/); // the bar, on the terminal
    expect(tty.stdout).toMatch(/OK: bundle verified in \d+\.\d\d s\r?\n$/);
    const piped = await stella(['forensic', 'verify', file, '--trusted-key', testSigner().verifierKey], noKafka.url);
    expect([piped.code, piped.stderr]).toEqual([0, '']);
  });
});

describe('obs top pieces', () => {
  it('topicLag: from the committed offset, from the log start when nothing is committed, never negative', () => {
    expect(topicLag([{ partition: 0, offset: '10' }, { partition: 1, offset: '-1' }],
      [{ partition: 0, high: '25', low: '0' }, { partition: 1, high: '7', low: '3' }, { partition: 2, high: '4', low: '4' }])).toBe(15 + 4);
    expect(topicLag([{ partition: 0, offset: '30' }], [{ partition: 0, high: '25', low: '0' }])).toBe(0);
  });

  it('summarizeSignals: window totals per service, newest minute latency, busiest first', () => {
    const s = summarizeSignals([
      { service: 'a', minute: '2026-01-01T00:01:00Z', requests: 10, errors: 1, error_rate: 0.1, throughput_per_sec: 0.16, p50_ms: 5, p95_ms: 6, p99_ms: 7 },
      { service: 'a', minute: '2026-01-01T00:00:00Z', requests: 30, errors: 0, error_rate: 0, throughput_per_sec: 0.5, p50_ms: 50, p95_ms: 60, p99_ms: 70 },
      { service: 'b', minute: '2026-01-01T00:00:00Z', requests: 50, errors: 5, error_rate: 0.1, throughput_per_sec: 0.83, p50_ms: 1, p95_ms: 2, p99_ms: 3 },
    ], 300);
    expect(s.services.map((x) => [x.service, x.requests, x.errors, x.error_rate, x.p99_ms, x.latest_minute])).toEqual([
      ['b', 50, 5, 0.1, 3, '2026-01-01T00:00:00Z'], ['a', 40, 1, 0.025, 7, '2026-01-01T00:01:00Z']]);
    expect(s.totals).toEqual({ requests: 90, errors: 6, error_rate: 0.066667, rps: 0.3 });
  });

  it('progressLine: a bar with percent and sizes, a counter when the total is unknown', () => {
    expect(progressLine('download', 512 * 1024, 2 * 1024 * 1024, 'bytes')).toBe('download [######------------------]  25% 512.0 KiB/2.0 MiB');
    expect(progressLine('verify: tiles', 7, undefined, 'items')).toBe('verify: tiles 7');
    expect(progressLine('x', 9, 9, 'items')).toBe('x [########################] 100% 9/9');
  });
});
