// npm run bench:scrub — spans/s on one core with the default rules, on a realistic mix (20
// attributes per span, 10% of spans carrying PII or a secret): the full record path of the
// wire-level scrubber (bytes in -> scrubbed bytes out) against protobufjs decode+encode alone in the
// same run. Prints medians of RUNS runs and a markdown block for BENCHMARKS.md.
//   SCRUB_BENCH_RUNS (default 5), SCRUB_BENCH_SECONDS per measurement (default 2)
import os from 'node:os';
import Long from 'long';
import { decodeTraces, encode, types } from '../lib/otlp/proto.ts';
import { parseScrubConfig, policyFor } from '../processors/scrub/config.ts';
import { Scrubber } from '../processors/scrub/engine.ts';
import { scrubRecord, sha256Hex } from '../processors/scrub/record.ts';
import { scrubRequest } from '../processors/scrub/wire.ts';

const RUNS = Number(process.env.SCRUB_BENCH_RUNS ?? 5);
const SECONDS = Number(process.env.SCRUB_BENCH_SECONDS ?? 2);
const SPANS_PER_REQUEST = 50;

let seed = 42;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32); // 32-bit LCG (imul: no float precision loss)
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const hex = (n: number) => Array.from({ length: n }, () => '0123456789abcdef'[Math.floor(rand() * 16)]).join('');
const str = (stringValue: string) => ({ stringValue });

const ROUTES = ['/api/v1/orders/{id}', '/api/v1/users/{id}/cart', '/healthz', '/api/v2/search', '/checkout/{step}'];
const SERVICES = ['checkout', 'cart', 'payments', 'search', 'frontend'];

/** 20 attributes, as an instrumented HTTP server span would carry; `pii` swaps some for personal data. */
function attributes(i: number, pii: boolean) {
  const route = pick(ROUTES);
  const id = Math.floor(rand() * 1e6);
  const attrs = [
    { key: 'http.request.method', value: str(pick(['GET', 'POST', 'PUT'])) },
    { key: 'http.route', value: str(route) },
    { key: 'url.path', value: str(route.replace('{id}', String(id)).replace('{step}', 'payment')) },
    { key: 'url.scheme', value: str('https') },
    { key: 'url.query', value: str(`page=${id % 7}&limit=50&sort=created_at`) },
    { key: 'server.address', value: str('api.example.com') },
    { key: 'server.port', value: { intValue: 443 } },
    { key: 'network.protocol.version', value: str('1.1') },
    { key: 'user_agent.original', value: str('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36') },
    { key: 'http.response.status_code', value: { intValue: pick([200, 200, 200, 201, 404, 503]) } },
    { key: 'http.request.body.size', value: { intValue: Math.floor(rand() * 4096) } },
    { key: 'k8s.pod.name', value: str(`${pick(SERVICES)}-7d9f8b6c5d-${hex(5)}`) },
    { key: 'k8s.namespace.name', value: str('shop-prod') },
    { key: 'request.id', value: str(`${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`) },
    { key: 'db.system', value: str('postgresql') },
    { key: 'db.query.text', value: str('SELECT id, total FROM orders WHERE customer_id = $1 AND status = $2') },
    { key: 'code.function', value: str(`OrderHandler.handle${i % 5}`) },
    { key: 'thread.name', value: str(`pool-3-thread-${i % 16}`) },
    { key: 'feature_flag.key', value: str('new-checkout') },
    { key: 'app.cache.hit', value: { boolValue: rand() < 0.5 } },
  ];
  if (pii) {
    attrs[13] = { key: 'enduser.id', value: str(`user${id}@example.com`) };
    attrs[4] = { key: 'url.query', value: str(`page=1&access_token=${hex(32)}`) };
    attrs[19] = { key: 'client.address', value: str(`203.0.113.${id % 250 + 1}`) };
  }
  return attrs;
}

function request(): Buffer {
  const spans = Array.from({ length: SPANS_PER_REQUEST }, (_, i) => ({
    traceId: Buffer.from(hex(32), 'hex'), spanId: Buffer.from(hex(16), 'hex'), parentSpanId: Buffer.from(hex(16), 'hex'),
    name: `${pick(['GET', 'POST'])} ${pick(ROUTES)}`, kind: 2,
    startTimeUnixNano: Long.fromString('1795436000000000000', true), endTimeUnixNano: Long.fromString('1795436000250000000', true),
    attributes: attributes(i, rand() < 0.1), status: { code: 0 },
  }));
  const msg = { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: str(pick(SERVICES)) }, { key: 'tenant.id', value: str('acme') },
    { key: 'host.name', value: str(`node-${hex(6)}`) }, { key: 'telemetry.sdk.version', value: str('1.30.0') }] },
  scopeSpans: [{ scope: { name: '@opentelemetry/instrumentation-http', version: '0.57.0' }, spans }] }] };
  return Buffer.from(encode('traces', types.ExportTraceServiceRequest.fromObject(msg)));
}

const policy = policyFor(parseScrubConfig({}), 'acme');
const config = parseScrubConfig({});
const now = new Date();
const POOL = 40; // requests generated fresh (untimed) before each timed slice: unique values stay unique

interface Pool { bufs: Buffer[]; digests: string[] }
const freshPool = (): Pool => { const bufs = Array.from({ length: POOL }, request); return { bufs, digests: bufs.map(sha256Hex) }; };

type Work = (pool: Pool) => void;
/** One long-lived scrubber per variant, as in the runner (its clean-string cache persists across records). */
const cached = new Scrubber(policy, new Set());
const uncached = new Scrubber(policy, new Set(), { cleanCache: false });
const variants: Record<string, Work> = {
  'protobufjs decode + encode alone': (p) => { for (const b of p.bufs) encode('traces', decodeTraces(b)); },
  'wire scrub, full record path (bytes -> scrubbed bytes)': (p) => { for (const b of p.bufs) scrubRequest('traces', b, policy, now, { scrubber: cached }); },
  // What the runner does per record: verify and recompute content-sha256, headers, summary header.
  'runner per-record work (`scrubRecord`: + content-sha256 check and recompute, headers)': (p) => {
    p.bufs.forEach((b, i) => scrubRecord('traces', { key: 'acme', value: b, headers: { 'content-sha256': p.digests[i]! } }, config, now));
  },
  'wire scrub, clean-value cache off': (p) => { for (const b of p.bufs) scrubRequest('traces', b, policy, now, { scrubber: uncached }); },
};

const cpuNow = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

/**
 * Spans per CPU-second of this single-threaded process, over fresh requests: CPU time, not wall
 * time, so other processes on the shared 2-core machine do not count against the measurement.
 */
function measure(work: Work): number {
  let spans = 0;
  let cpu = 0;
  while (cpu < SECONDS) {
    const pool = freshPool();
    const t0 = cpuNow();
    work(pool);
    cpu += cpuNow() - t0;
    spans += POOL * SPANS_PER_REQUEST;
  }
  return spans / cpu;
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

// Sanity: the mix really carries PII, and scrubbing finds it.
const sample = freshPool();
const sampleSummaries = sample.bufs.map((b) => scrubRequest('traces', b, policy, now).summary);
const piiSpans = sampleSummaries.reduce((n, x) => n + x.items, 0);
const ruleHits: Record<string, number> = {};
for (const x of sampleSummaries) for (const [k, v] of Object.entries(x.rules)) ruleHits[k] = (ruleHits[k] ?? 0) + v;

for (const w of Object.values(variants)) w(freshPool()); // warm-up (JIT)
const results: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let r = 0; r < RUNS; r++) {
  for (const [name, w] of Object.entries(variants)) results[name]!.push(measure(w));
  process.stderr.write(`run ${r + 1}/${RUNS}: ${Object.entries(results).map(([k, v]) => `${k} ${Math.round(v[r]!)}`).join(', ')}\n`);
}

const base = median(results['protobufjs decode + encode alone']!);
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const hitShare = cached.stats.cached / Math.max(1, cached.stats.cached + cached.stats.scanned);
const row = (k: string) => `| ${k} | ${Math.round(median(results[k]!)).toLocaleString('en-US')} | ${(base / median(results[k]!)).toFixed(2)}x |`;
const lines = [
  `Machine: ${os.cpus().length} cores (${cpu}), Node ${process.version}, shared with other work (throughput per CPU-second of the single-threaded process).`,
  `Mix: fresh requests of ${SPANS_PER_REQUEST} HTTP server spans, 20 attributes each (3 unique per span: path with id, pod name, request id), ${(piiSpans / (POOL * SPANS_PER_REQUEST) * 100).toFixed(0)}% of spans carrying PII (sample: ${JSON.stringify(ruleHits)}).`,
  `Medians of ${RUNS} runs x ${SECONDS} CPU-s per variant, variants interleaved. Clean-value cache answered ${(hitShare * 100).toFixed(0)}% of value scans.`,
  '',
  '| variant | spans/s per core (median) | time vs decode+encode |',
  '|---|---:|---:|',
  ...Object.keys(variants).map(row),
];
console.log(lines.join('\n'));
