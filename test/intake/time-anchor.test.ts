// The runtime-facts time anchor (intake.runtimeFacts.timeAnchor, docs/intake.md "Time anchor"):
// intake is refused while the anchor is older than its budget, answered 503 TIME_ANCHOR_STALE with
// staleness_seconds in the body, and accepted again once the anchor is refreshed; the staleness is
// exported as stella_runtime_time_anchor_staleness_seconds. Both sides of the budget, on the pure
// rule and through `stella run`'s API on the test broker; the config is validated at startup.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipeline, type RunningPipeline } from '../../cli/run.ts';
import { buildConfig } from '../../lib/config.ts';
import { parseIntakeSection } from '../../lib/intake/trust.ts';
import { defaultTopicNames } from '../../lib/kafka/topics.ts';
import { registry } from '../../lib/metrics.ts';
import { sha256Hex } from '../../lib/tenancy.ts';
import { timeAnchorVerdict } from '../../processors/intake/runtime-facts.ts';
import { kafkaEnv, uniq } from '../support/kafka.ts';

const BUDGET = 3600;
const TOKEN = 'time-anchor-acme-token-0123456789abcdef';
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-anchor-'));
const anchorFile = path.join(dir, 'time-anchor');
const writeAnchor = (secondsAgo: number) => writeFileSync(anchorFile, `${new Date(Date.now() - secondsAgo * 1000).toISOString()}\n`);
let pipeline: RunningPipeline;
let api: string;

afterAll(async () => {
  await pipeline?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the rule', () => {
  const now = Date.parse('2026-12-03T12:00:00Z');
  it('accepts an anchor exactly at its budget and refuses one a second older, naming the staleness', () => {
    expect(timeAnchorVerdict(now - BUDGET * 1000, now, BUDGET)).toEqual({ ok: true, stalenessSeconds: BUDGET });
    expect(timeAnchorVerdict(now - (BUDGET + 1) * 1000, now, BUDGET)).toMatchObject({ ok: false, reason: 'TIME_ANCHOR_STALE', status: 503,
      staleness_seconds: BUDGET + 1, budget_seconds: BUDGET });
  });
  it('refuses an anchor further ahead of the clock than the budget (the clock is behind)', () => {
    expect(timeAnchorVerdict(now + BUDGET * 1000, now, BUDGET).ok).toBe(true);
    expect(timeAnchorVerdict(now + (BUDGET + 1) * 1000, now, BUDGET)).toMatchObject({ ok: false, reason: 'TIME_ANCHOR_STALE', staleness_seconds: -(BUDGET + 1) });
  });
});

describe('the config, validated at startup', () => {
  it('needs a readable anchor file holding one RFC 3339 UTC time, and a budget', () => {
    const problems = (rf: unknown) => { const p: string[] = []; parseIntakeSection({ runtimeFacts: rf }, dir, p); return p; };
    writeAnchor(0);
    expect(problems({ timeAnchor: { file: anchorFile, maxStalenessSeconds: BUDGET } })).toEqual([]);
    expect(problems({ timeAnchor: { file: path.join(dir, 'missing'), maxStalenessSeconds: BUDGET } }).join()).toMatch(/cannot be read \(ENOENT\)/);
    expect(problems({ timeAnchor: { file: anchorFile } }).join()).toMatch(/maxStalenessSeconds is required/);
    expect(problems({ timeAnchor: { file: anchorFile, maxStalenessSeconds: 0 } }).join()).toMatch(/maxStalenessSeconds must be an integer/);
    writeFileSync(path.join(dir, 'bad'), 'yesterday');
    expect(problems({ timeAnchor: { file: path.join(dir, 'bad'), maxStalenessSeconds: BUDGET } }).join()).toMatch(/RFC 3339 UTC time/);
    expect(() => buildConfig({ dataDir: dir, intake: { runtimeFacts: { timeAnchor: { file: path.join(dir, 'missing'), maxStalenessSeconds: 60 } } } }, {}))
      .toThrow(/timeAnchor\.file/);
  });
});

describe('POST /api/v1/runtime-facts with a time anchor', () => {
  beforeAll(async () => {
    writeAnchor(0);
    const p = uniq('anchor');
    const cfg = buildConfig({
      dataDir: dir, receiver: { grpcPort: 0, httpPort: 0 }, admin: { port: 0 }, api: { port: 0 },
      kafka: { partitions: 1, groupIdPrefix: `${p}-`, topics: Object.fromEntries(Object.keys(defaultTopicNames).map((k) => [k, `${p}_${k}`])) },
      tenants: [{ id: 'acme', tokens: [{ sha256: sha256Hex(TOKEN), scopes: ['runtime:write'] }] }],
      intake: { runtimeFacts: { timeAnchor: { file: anchorFile, maxStalenessSeconds: BUDGET } } },
    }, kafkaEnv());
    pipeline = await runPipeline(cfg, new Set(['api'] as const), () => {});
    api = `http://127.0.0.1:${pipeline.ports.api}`;
  }, 180_000);

  const post = (seed: string) => fetch(`${api}/api/v1/runtime-facts?graph_hash=sha256:${'5'.repeat(64)}`, { method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-ndjson' },
    body: `${JSON.stringify({ symbol_id: `${seed}!f`, purl: 'pkg:generic/app@1', timestamp: new Date().toISOString(), pid: 1, container: '', count: 1 })}\n` });
  const casCount = () => { const r = path.join(dir, 'cas', 'acme'); return existsSync(r) ? readdirSync(r).flatMap((d) => readdirSync(path.join(r, d))).length : 0; };
  const gaugeValue = async () => (await registry.getSingleMetric('stella_runtime_time_anchor_staleness_seconds')?.get())?.values[0]?.value;

  it('inside the budget: accepted', async () => {
    writeAnchor(BUDGET - 30);
    const r = await post('inside');
    expect(r.status).toBe(202);
    const g = await gaugeValue();
    expect(g).toBeGreaterThanOrEqual(BUDGET - 30);
    expect(g).toBeLessThanOrEqual(BUDGET);
  });

  it('past the budget: 503 TIME_ANCHOR_STALE with staleness_seconds, nothing stored; refreshed: accepted again', async () => {
    const before = casCount();
    writeAnchor(BUDGET + 30);
    const r = await post('stale');
    expect(r.status).toBe(503);
    const body = await r.json() as { error: { code: string; staleness_seconds: number; budget_seconds: number } };
    expect(body.error.code).toBe('TIME_ANCHOR_STALE');
    expect(body.error.staleness_seconds).toBeGreaterThanOrEqual(BUDGET + 30);
    expect(body.error.staleness_seconds).toBeLessThan(BUDGET + 60);
    expect(body.error.budget_seconds).toBe(BUDGET);
    expect(await gaugeValue()).toBe(body.error.staleness_seconds);
    expect(casCount()).toBe(before);

    writeAnchor(0);
    expect((await post('refreshed')).status).toBe(202);
  });

  it('an anchor file that became unreadable refuses (fail closed): TIME_ANCHOR_UNAVAILABLE', async () => {
    writeFileSync(anchorFile, 'garbage');
    const r = await post('garbage');
    expect(r.status).toBe(503);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('TIME_ANCHOR_UNAVAILABLE');
  });
});
