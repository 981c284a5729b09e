// Shared test helpers for the SLO core: synthetic traffic, a deliberately naive reference
// evaluator (O(window) scans over raw samples, no rings) to cross-check the fast one, and a real
// Alertmanager launcher.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BURN_RULES } from '../../processors/slo/burn.ts';
import { parseSloConfig, type SloConfig } from '../../processors/slo/config.ts';
import type { SpanSample } from '../../processors/slo/samples.ts';

export const MIN = 60_000;
export const HOUR = 60 * MIN;

export function availabilityConfig(opts: { objective?: number; minEvents?: number; lateness?: string; name?: string; tenant?: string } = {}): SloConfig {
  return parseSloConfig(`
slos:
  - name: ${opts.name ?? 'checkout-availability'}
    tenant: ${opts.tenant ?? 'acme'}
    service: checkout
    journey: checkout
    objective: ${opts.objective ?? 0.999}
    minEvents: ${opts.minEvents ?? 10}
    lateness: ${opts.lateness ?? '10m'}
    runbook: https://runbooks.example/slo/checkout
    sli:
      type: availability
      spans: { name: "POST /checkout", kind: server }
`);
}

let traceCounter = 0;
export function span(tMs: number, isError = false, extra: Partial<SpanSample> = {}): SpanSample {
  traceCounter++;
  return {
    tenant: 'acme', service: 'checkout', spanName: 'POST /checkout', kind: 2, eventTimeMs: tMs, durationMs: 20,
    isError, traceId: traceCounter.toString(16).padStart(32, '0'), ...extra,
  };
}

export interface Traffic {
  startMs: number;
  minutes: number;
  perMinute: number;
  /** Burst minutes [from, to) carry `errorsPerMinute` errors among perMinute events. */
  burstFrom: number;
  burstTo: number;
  errorsPerMinute: number;
}

/** Per-minute span samples, spread evenly inside each minute (event time). */
export function trafficByMinute(t: Traffic): SpanSample[][] {
  const out: SpanSample[][] = [];
  for (let m = 0; m < t.minutes; m++) {
    const errors = m >= t.burstFrom && m < t.burstTo ? t.errorsPerMinute : 0;
    const minute: SpanSample[] = [];
    for (let i = 0; i < t.perMinute; i++) {
      const at = t.startMs + m * MIN + Math.floor((i * MIN) / t.perMinute);
      // Deterministic trace ids (minute, index) so two generations of the same traffic are identical.
      minute.push(span(at, i < errors, { traceId: (m * 1_000_000 + i + 1).toString(16).padStart(32, '0') }));
    }
    out.push(minute);
  }
  return out;
}

/** Evaluation time at the very end of minute m (the head bucket is minute m, complete). */
export const endOfMinute = (startMs: number, m: number): number => startMs + (m + 1) * MIN - 1;

/**
 * Naive reference: which rules (by "severity:windows") are burning at the end of minute `head`,
 * scanning raw per-minute counts. Independent of the ring/running-sum implementation.
 */
export function referenceBurning(perMinute: { good: number; total: number }[], head: number, objective: number, minEvents: number): string[] {
  const sum = (mins: number) => {
    let good = 0;
    let total = 0;
    for (let m = Math.max(0, head - mins + 1); m <= head; m++) {
      good += perMinute[m]?.good ?? 0;
      total += perMinute[m]?.total ?? 0;
    }
    return { good, total };
  };
  const out: string[] = [];
  for (const r of BURN_RULES) {
    const long = sum(r.longMs / MIN);
    const short = sum(r.shortMs / MIN);
    const th = r.factor * (1 - objective);
    const ratio = (w: { good: number; total: number }) => (w.total ? (w.total - w.good) / w.total : 0);
    if (long.total >= minEvents && long.total > 0 && ratio(long) > th && ratio(short) > th) out.push(`${r.severity}:${r.windows}`);
  }
  return out;
}

export const countsByMinute = (minutes: SpanSample[][]) =>
  minutes.map((m) => ({ good: m.filter((s) => !s.isError).length, total: m.length }));

// ---- real binaries ---------------------------------------------------------------------------

/** Finds a Debian-packaged binary or fails the test with how to get it (never skips). */
export function requireBinary(names: string[], pkg: string): string {
  for (const n of names) {
    for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/usr/local/bin'])) {
      const p = path.join(dir, n);
      if (existsSync(p)) return p;
    }
  }
  throw new Error(`required binary ${names.join(' or ')} not found on PATH: install the Debian package "${pkg}" (see .ci/apt-packages.txt)`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface RunningAlertmanager {
  url: string;
  stop(): Promise<void>;
  logs(): string;
}

export async function startAlertmanager(webhookUrl: string): Promise<RunningAlertmanager> {
  const bin = requireBinary(['prometheus-alertmanager', 'alertmanager'], 'prometheus-alertmanager');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-am-'));
  const port = await freePort();
  const config = `
route:
  receiver: test-webhook
  group_by: [alertname, tenant, slo, windows]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test-webhook
    webhook_configs:
      - url: ${webhookUrl}
        send_resolved: true
`;
  writeFileSync(path.join(dir, 'alertmanager.yml'), config);
  const check = spawnSync(bin, ['--help'], { encoding: 'utf8' });
  if (check.error) throw new Error(`cannot run ${bin}: ${check.error.message}`);
  let output = '';
  const child: ChildProcess = spawn(bin, [
    `--config.file=${path.join(dir, 'alertmanager.yml')}`, `--storage.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address=', '--log.level=warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`alertmanager exited with ${child.exitCode}: ${output}`);
    try {
      const res = await fetch(`${url}/-/ready`);
      if (res.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`alertmanager not ready after 20 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    logs: () => output,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Receiver {
  url: string;
  bodies: { at: number; path: string; body: unknown }[];
  /** Waits until some received body satisfies pred; rejects after timeoutMs. */
  waitFor(pred: (body: unknown) => boolean, timeoutMs: number): Promise<{ at: number; body: unknown }>;
  close(): Promise<void>;
}

/** A local HTTP server that records JSON bodies (stands in for a webhook receiver). */
export async function startReceiver(status = 200): Promise<Receiver> {
  const bodies: Receiver['bodies'] = [];
  const waiters: (() => void)[] = [];
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      let body: unknown = data;
      try { body = JSON.parse(data); } catch { /* keep raw */ }
      bodies.push({ at: performance.now(), path: req.url ?? '', body });
      res.writeHead(status).end();
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    bodies,
    waitFor: (pred, timeoutMs) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`receiver: no matching body within ${timeoutMs} ms; got ${JSON.stringify(bodies.map((b) => b.body)).slice(0, 2000)}`)), timeoutMs);
      const check = () => {
        const hit = bodies.find((b) => pred(b.body));
        if (hit) { clearTimeout(timer); resolve(hit); } else waiters.push(check);
      };
      check();
    }),
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
