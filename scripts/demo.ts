// `npm run demo`: send a realistic multi-service workload through the running pipeline with the
// official OpenTelemetry SDK, then show what the pipeline made of it: the tenant's timeline, the
// latest signed checkpoint, a snapshot bundle of the trace, and that bundle's offline verification.
//
// Needs `npm start` running and the token it printed: STELLA_TOKEN=... npm run demo
// Endpoints: STELLA_OTLP_HTTP (default http://127.0.0.1:4318), STELLA_API_URL (default http://127.0.0.1:8080).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { context, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { forensicVerify } from '../processors/evidence/cli.ts';
import { snapshotCreate } from '../processors/evidence/snapshot-cli.ts';
import { parseTrustRootText } from '../processors/evidence/trust-root.ts';

const token = process.env.STELLA_TOKEN;
const otlp = process.env.STELLA_OTLP_HTTP ?? 'http://127.0.0.1:4318';
const api = process.env.STELLA_API_URL ?? 'http://127.0.0.1:8080';
const say = (s = '') => process.stdout.write(s + '\n');
if (!token) {
  process.stderr.write('npm run demo needs the token `npm start` printed: STELLA_TOKEN=<token> npm run demo\n');
  process.exit(2);
}
const headers = { Authorization: `Bearer ${token}` };

/** One service: its own resource, tracer and logger, as a real deployment would have. */
function service(name: string) {
  const resource = resourceFromAttributes({ 'service.name': name, 'service.version': '1.0.0', 'deployment.environment.name': 'demo' });
  const tracing = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${otlp}/v1/traces`, headers }))] });
  const logging = new LoggerProvider({ resource, processors: [new BatchLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `${otlp}/v1/logs`, headers }) })] });
  return {
    tracer: tracing.getTracer('stella-demo', '1.0.0'),
    logger: logging.getLogger('stella-demo', '1.0.0'),
    flush: async () => { await tracing.forceFlush(); await logging.forceFlush(); await tracing.shutdown(); await logging.shutdown(); },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function workload(): Promise<string> {
  const svc = { source: service('source-fetcher'), sbom: service('sbom-builder'), policy: service('policy-engine'),
    advisory: service('advisory-linker'), exporter: service('evidence-exporter') };
  const project = { 'stella.project.id': 'proj-checkout' };
  const job = (s: ReturnType<typeof service>, name: string, attrs: Record<string, string>, parent?: Span) =>
    s.tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes: { 'stella.job.name': name, ...project, ...attrs } },
      parent ? trace.setSpan(context.active(), parent) : undefined);

  const root = svc.source.tracer.startSpan('release.assess', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'POST', 'http.route': '/releases/{id}/assess', ...project } });
  const traceId = root.spanContext().traceId;
  const fetch = job(svc.source, 'source.fetch', { 'stella.resource.type': 'repository', 'stella.resource.id': 'git:checkout-service@4f2a9c1', 'vcs.ref': 'main' }, root);
  await sleep(20); fetch.end();
  const sbom = job(svc.sbom, 'sbom.compute', { 'stella.resource.type': 'component', 'stella.resource.id': 'pkg:npm/checkout-service@2.3.0', 'sbom.format': 'cyclonedx-1.6' }, root);
  await sleep(30); sbom.end();
  const evalSpan = job(svc.policy, 'policy.evaluate', { 'stella.resource.type': 'policy', 'stella.resource.id': 'pol-licensing' }, root);
  svc.policy.logger.emit({ eventName: 'policy.decision', severityNumber: SeverityNumber.WARN, body: 'release blocked: GPL-3.0 dependency',
    attributes: { 'stella.actor': 'service:policy-engine', 'stella.resource.type': 'policy', 'stella.resource.id': 'pol-licensing', ...project, 'decision': 'deny', 'rule': 'deny-gpl' },
    context: trace.setSpan(context.active(), evalSpan) });
  await sleep(15); evalSpan.end();
  const link = job(svc.advisory, 'advisory.link', { 'stella.resource.type': 'component', 'stella.resource.id': 'pkg:npm/lodash@4.17.20' }, root);
  link.setStatus({ code: SpanStatusCode.ERROR, message: 'advisory feed timed out' });
  await sleep(10); link.end();
  svc.policy.logger.emit({ eventName: 'policy.changed', severityNumber: SeverityNumber.INFO, body: 'exception granted by alice@example.com for 7 days',
    attributes: { 'stella.actor': 'user:alice@example.com', 'stella.resource.type': 'policy', 'stella.resource.id': 'pol-licensing', ...project } });
  const exp = job(svc.exporter, 'evidence.export', { 'stella.resource.type': 'release', 'stella.resource.id': 'rel-2.3.0' }, root);
  await sleep(10); exp.end();
  root.end();
  await Promise.all(Object.values(svc).map((s) => s.flush()));
  return traceId;
}

async function getJson<T>(p: string): Promise<{ status: number; body: T }> {
  const r = await fetch(`${api}${p}`, { headers });
  return { status: r.status, body: (await r.json().catch(() => ({}))) as T };
}

/** Polls fn until it answers; `progress` (if given) is told the seconds waited, every 500 ms. */
async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 90_000, progress?: (waitedS: number) => void): Promise<T> {
  const start = Date.now();
  const end = start + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    progress?.((Date.now() - start) / 1000);
    await sleep(500);
  }
}

/**
 * A waiting line: redrawn in place on a terminal, else one line every 10 s (a log stays short).
 * Returns the updater and a function that ends the line.
 */
function waitingLine(text: (waitedS: number) => string): { update: (waitedS: number) => void; done: (final: string) => void } {
  const tty = process.stdout.isTTY === true;
  let lastPlain = -10;
  return {
    update: (w) => {
      if (tty) process.stdout.write(`\r\x1b[K${text(w)}`);
      else if (w - lastPlain >= 10) { lastPlain = w; say(text(w)); }
    },
    done: (final) => { if (tty) process.stdout.write('\r\x1b[K'); say(final); },
  };
}

type Ev = { ts: string; kind: string; actor: string; resource: { type: string; id: string }; event_id: string };

const traceId = await workload();
say(`Sent a 5-service workload (trace ${traceId}) through ${otlp} with the OpenTelemetry SDK.`);

const events = await until('the timeline', async () => {
  const r = await getJson<{ tenant: string; events: Ev[] }>(`/timeline?trace_id=${traceId}&limit=100`);
  if (r.status !== 200) throw new Error(`GET /timeline: ${r.status}`);
  return r.body.events.length >= 10 ? r.body : undefined;
});
say(`\nTimeline of tenant ${events.tenant} for the trace (GET ${api}/timeline?trace_id=${traceId}):`);
for (const e of events.events) say(`  ${e.ts}  ${e.kind.padEnd(16)} ${e.actor.padEnd(28)} ${e.resource.type}/${e.resource.id}`);

// While the evidence processor has not sealed yet: what the live read API already shows.
type Top = { services: { service: string; requests: number; errors: number; p95_ms: number; latest_minute_partial?: boolean }[] };
const top = await getJson<Top>('/obs/top').catch(() => undefined);
if (top?.status === 200 && top.body.services.length) {
  say(`\nGolden signals (GET ${api}/obs/top; stella obs top):`);
  for (const s of top.body.services) say(`  ${s.service.padEnd(18)} ${String(s.requests).padStart(4)} requests  ${s.errors} errors  P95 ${s.p95_ms.toFixed(1)} ms${s.latest_minute_partial ? '  (current minute, partial)' : ''}`);
}
type Slos = { slos: { slo: string; journey: string; objective: number; burn_rates: Record<string, number> }[] };
const slos = await getJson<Slos & { error?: { message?: string } }>('/obs/slo').catch(() => undefined);
if (slos?.status === 200) {
  say(`\nSLOs (GET ${api}/obs/slo; stella slo list): ${slos.body.slos.length}, evaluated once their minute closes`);
  for (const s of slos.body.slos) say(`  ${s.slo.padEnd(32)} ${s.journey.padEnd(18)} objective ${(s.objective * 100).toFixed(1)}%`);
} else if (slos) say(`\nSLOs: ${slos.body.error?.message ?? `GET /obs/slo answered ${slos.status}`}`);

// Evidence is sealed every evidence.sealEverySeconds (60 s by default), not per event: say so while waiting.
const last = events.events[events.events.length - 1]!;
const waiting = waitingLine((w) => `Waiting for the evidence processor's next seal (every evidence.sealEverySeconds, 60 s by default): ${Math.floor(w)} s`);
const waitStart = Date.now();
const proof = await until('the events to be sealed into the evidence log', async () => {
  const r = await fetch(`${api}/evidence/proof/inclusion?event_id=${last.event_id}`, { headers });
  return r.status === 200 ? r.text() : undefined;
}, 90_000, waiting.update);
waiting.done(`\nSealed after ${((Date.now() - waitStart) / 1000).toFixed(0)} s of waiting.`);
const checkpoint = proof.split('\n\n').slice(1).join('\n\n');
say(`\nLatest signed checkpoint (C2SP tlog-checkpoint, signed note):\n${checkpoint.replace(/^/gm, '  ')}`);

const out = path.resolve('data', 'demo', `case-${traceId.slice(0, 8)}.tar.gz`);
mkdirSync(path.dirname(out), { recursive: true });
const snap = await snapshotCreate({ baseUrl: api, token, caseId: `demo-${traceId.slice(0, 8)}`, scope: 'trace', id: traceId, out });
process.stdout.write(snap.stdout);
process.stderr.write(snap.stderr);
if (snap.exitCode !== 0) process.exit(snap.exitCode);

// The tenant's trust root, pinned beside the bundle (a real auditor gets it once, from a source they trust).
const tenant = String(snap.data?.tenant ?? 'demo');
const trustRes = await fetch(`${api}/evidence/${tenant}/trust-root`, { headers });
if (!trustRes.ok) { process.stderr.write(`GET /evidence/${tenant}/trust-root: ${trustRes.status}\n`); process.exit(4); }
const trustFile = path.resolve('data', 'demo', `trust-root-${tenant}.json`);
const trustText = await trustRes.text();
writeFileSync(trustFile, trustText);
const verdict = await forensicVerify(out, { trustRoot: parseTrustRootText(trustText) });
say(`\nTrust root of tenant ${tenant} written to ${trustFile}`);
say(`verify offline: stella forensic verify ${out} --trust ${trustFile}`);
say(verdict.result.ok ? `\nOffline verification: OK (${verdict.seconds.toFixed(2)} s) — npm run stella -- forensic verify ${out} --trust ${trustFile}`
  : `\nOffline verification FAILED: ${verdict.result.cause}: ${verdict.result.detail}`);
process.exit(verdict.exitCode);
