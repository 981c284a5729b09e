// The alert sender against real local HTTP servers: retries 5xx and connection failures with
// exponential backoff + jitter, does not retry 4xx, bounds its queue, and reports via lib/metrics.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { registry } from '../../lib/metrics.ts';
import { RetryingPoster } from '../../processors/slo/retrying-poster.ts';
import { freePort } from './helpers.ts';

const servers: http.Server[] = [];
afterEach(() => { for (const s of servers.splice(0)) { s.closeAllConnections(); s.close(); } });

/** A server answering statuses[i] to the i-th request (then 200), recording bodies and arrival times. */
async function scripted(statuses: number[]): Promise<{ url: string; hits: { at: number; body: string }[] }> {
  const hits: { at: number; body: string }[] = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      hits.push({ at: performance.now(), body });
      res.writeHead(statuses[hits.length - 1] ?? 200).end();
    });
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/x`, hits };
}

async function metricValue(target: string, outcome: string): Promise<number> {
  const m = await registry.getSingleMetric('stella_slo_alert_deliveries_total')?.get();
  return m?.values.find((v) => v.labels.target === target && v.labels.outcome === outcome)?.value ?? 0;
}

describe('RetryingPoster', () => {
  it('backoff doubles per retry up to the cap, with half of it jittered', () => {
    const lo = new RetryingPoster({ url: 'http://x', target: 't', baseDelayMs: 100, maxDelayMs: 1000, random: () => 0 });
    const hi = new RetryingPoster({ url: 'http://x', target: 't', baseDelayMs: 100, maxDelayMs: 1000, random: () => 0.999999 });
    expect([1, 2, 3, 4, 5, 6].map((n) => lo.backoffMs(n))).toEqual([50, 100, 200, 400, 500, 500]);
    expect(hi.backoffMs(3)).toBeCloseTo(400, 3);
  });

  it('retries 503s with growing delays and delivers in order', async () => {
    const srv = await scripted([503, 503, 503]);
    const p = new RetryingPoster({ url: srv.url, target: 'retry-test', baseDelayMs: 40, random: () => 0 });
    p.enqueue({ n: 1 });
    p.enqueue({ n: 2 });
    await p.idle();
    expect(srv.hits.map((h) => JSON.parse(h.body).n)).toEqual([1, 1, 1, 1, 2]);
    const gaps = srv.hits.slice(1, 4).map((h, i) => h.at - srv.hits[i]!.at);
    expect(gaps[0]).toBeGreaterThanOrEqual(18); // 20 ms
    expect(gaps[1]).toBeGreaterThanOrEqual(38); // 40 ms
    expect(gaps[2]).toBeGreaterThanOrEqual(78); // 80 ms
    expect(await metricValue('retry-test', 'retried')).toBe(3);
    expect(await metricValue('retry-test', 'sent')).toBe(2);
  });

  it('does not retry a 400 (the same body would be rejected again)', async () => {
    const srv = await scripted([400]);
    const p = new RetryingPoster({ url: srv.url, target: 'reject-test', baseDelayMs: 10 });
    p.enqueue({ bad: true });
    p.enqueue({ ok: true });
    await p.idle();
    expect(srv.hits).toHaveLength(2);
    expect(await metricValue('reject-test', 'rejected')).toBe(1);
  });

  it('gives up after maxAttempts on a closed port, and bounds its queue by dropping the oldest', async () => {
    const port = await freePort();
    const p = new RetryingPoster({ url: `http://127.0.0.1:${port}/`, target: 'dead-test', baseDelayMs: 5, maxDelayMs: 10, maxAttempts: 3, maxQueue: 3 });
    // enqueue never waits: it returns nothing to await (the connect attempts run on their own).
    // Not timed: a wall-clock bound fails whenever the box is busy.
    const returned: unknown[] = [];
    for (let i = 0; i < 10; i++) returned.push(p.enqueue({ i }));
    expect(returned.every((r) => r === undefined)).toBe(true);
    expect(p.depth).toBeLessThanOrEqual(3);
    await p.idle();
    expect(await metricValue('dead-test', 'dropped_queue_full')).toBeGreaterThanOrEqual(6);
    expect(await metricValue('dead-test', 'dropped_gave_up')).toBeGreaterThanOrEqual(1);
    expect(p.depth).toBe(0);
  });
});
