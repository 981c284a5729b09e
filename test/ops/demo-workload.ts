// A small, realistic demo workload written to the store through the pipeline's own row builders:
// OTLP exports are encoded, decoded and turned into otel_traces / otel_logs / timeline_events rows
// by the timeline transform; the SLO core (fed the same spans, ticked once a minute) yields the
// golden_signals rows, the slo.breach.* events of a checkout error burst and the incident mode it
// switches on; evidence segments cover the tenant's events like the evidence processor's seals.
import { createHash } from 'node:crypto';
import Long from 'long';
import { decodeTraces, encode } from '../../lib/otlp/proto.ts';
import { insertEvidenceSegment, timelineInsertRow, type Store, type TimelineEventRow } from '../../lib/store/index.ts';
import { transformRecord } from '../../processors/timeline/transform.ts';
import { parseSloConfig } from '../../processors/slo/config.ts';
import { SloCore } from '../../processors/slo/slo-core.ts';
import { incidentTimelineEvent, insertGoldenSignals } from '../../processors/slo/outputs.ts';

export const DEMO_TENANT = 'demo';
export const OTHER_TENANT = 'globex';
const MIN = 60_000;

const SLOS = parseSloConfig(`
slos:
  - name: checkout-availability
    tenant: ${DEMO_TENANT}
    service: checkout
    objective: 0.999
    runbook: https://runbooks.example/slo/checkout
    sli: { type: availability, spans: { name: "POST /checkout", kind: server } }
  - name: search-availability
    tenant: ${OTHER_TENANT}
    service: search
    objective: 0.995
    sli: { type: availability, spans: { nameRegex: "GET /v1/.*", kind: server } }
`);

interface SpanSpec { name: string; kind: number; startMs: number; durMs: number; error?: boolean; attrs?: Record<string, string> }

const kv = (o: Record<string, string>) => Object.entries(o).map(([key, v]) => ({ key, value: { stringValue: v } }));
const ns = (ms: number) => Long.fromNumber(Math.round(ms)).multiply(1_000_000);
let counter = 0;
const id = (bytes: number) => createHash('sha256').update(`demo-${counter++}`).digest().subarray(0, bytes);

function traces(tenant: string, service: string, spans: SpanSpec[]): Buffer {
  return Buffer.from(encode('traces', {
    resourceSpans: [{ resource: { attributes: kv({ 'service.name': service, 'tenant.id': tenant, 'deployment.environment': 'demo' }) },
      scopeSpans: [{ scope: { name: 'demo-app', version: '1.0.0' }, spans: spans.map((s) => ({
        traceId: id(16), spanId: id(8), name: s.name, kind: s.kind, startTimeUnixNano: ns(s.startMs), endTimeUnixNano: ns(s.startMs + s.durMs),
        attributes: kv(s.attrs ?? {}), status: s.error ? { code: 2, message: 'upstream failed' } : { code: 1 },
      })) }] }],
  }));
}

function logs(tenant: string, service: string, records: { atMs: number; eventName?: string; body: string; attrs?: Record<string, string> }[]): Buffer {
  return Buffer.from(encode('logs', {
    resourceLogs: [{ resource: { attributes: kv({ 'service.name': service, 'tenant.id': tenant }) }, scopeLogs: [{ scope: { name: 'demo-app' },
      logRecords: records.map((r) => ({ timeUnixNano: ns(r.atMs), observedTimeUnixNano: ns(r.atMs), severityNumber: 9, severityText: 'INFO',
        body: { stringValue: r.body }, attributes: kv(r.attrs ?? {}), eventName: r.eventName ?? '' })) }] }],
  }));
}

export interface DemoSummary { fromMs: number; toMs: number; timelineEvents: number; breachEvents: number; incidentEvents: number; segments: number }

/**
 * Writes `minutes` minutes of traffic ending two minutes before `nowMs`: checkout (POST /checkout,
 * GET /cart) with a 50% error burst, a policy service emitting policy.changed events, advisory
 * jobs (one failing) for the demo tenant; a search API for a second, smaller tenant.
 */
export async function seedDemoWorkload(store: Store, nowMs: number, minutes = 60): Promise<DemoSummary> {
  const start = Math.floor(nowMs / MIN) * MIN - (minutes + 2) * MIN;
  const core = new SloCore(SLOS);
  const events: TimelineEventRow[] = [];
  let offset = 0;
  let breachEvents = 0;
  let incidentEvents = 0;
  const write = async (signal: 'traces' | 'logs', tenant: string, value: Buffer) => {
    const topic = signal === 'traces' ? 'otlp_spans_clean' : 'otlp_logs_clean';
    const out = transformRecord(signal, { topic, partition: 0, offset: String(offset++), key: tenant, value, headers: { tenant } });
    for (const [table, rows] of out.rows) await store.insertRows(table, rows);
    await store.insertRows('timeline_events', out.events.map(timelineInsertRow));
    events.push(...out.events);
    if (signal === 'traces') core.ingestTraces(tenant, decodeTraces(value));
  };
  const tick = async (atMs: number) => {
    const t = core.tick(atMs);
    await insertGoldenSignals(store, t.goldenSignals);
    const rows = [...t.timelineEvents, ...t.incidentEvents.map(incidentTimelineEvent)];
    breachEvents += t.timelineEvents.length;
    incidentEvents += t.incidentEvents.length;
    await store.insertRows('timeline_events', rows.map(timelineInsertRow));
    events.push(...rows);
  };

  for (let m = 0; m < minutes; m++) {
    const t0 = start + m * MIN;
    const burst = m >= minutes - 25 && m < minutes - 15; // ten bad minutes, then recovery
    const checkout: SpanSpec[] = [];
    for (let i = 0; i < 30; i++) {
      checkout.push({ name: 'POST /checkout', kind: 2, startMs: t0 + i * 1900, durMs: 40 + (i % 7) * 15, error: burst && i % 2 === 0,
        attrs: { 'http.request.method': 'POST', 'http.route': '/checkout', 'http.response.status_code': burst && i % 2 === 0 ? '502' : '200' } });
      if (i % 2 === 0) checkout.push({ name: 'GET /cart', kind: 2, startMs: t0 + i * 1900 + 300, durMs: i === 0 ? 2500 : 12, error: i === 4 && m % 10 === 0 });
    }
    await write('traces', DEMO_TENANT, traces(DEMO_TENANT, 'checkout', checkout));
    await write('traces', DEMO_TENANT, traces(DEMO_TENANT, 'policy', Array.from({ length: 8 }, (_, i) => (
      { name: 'policy.evaluate', kind: 2, startMs: t0 + i * 7000, durMs: 5 + i }))));
    if (m % 10 === 5) {
      const failing = m === minutes - 25;
      await write('traces', DEMO_TENANT, traces(DEMO_TENANT, 'advisory-linker', [{ name: 'advisory.link', kind: 1, startMs: t0 + 1000, durMs: 900, error: failing,
        attrs: { 'stella.job.name': 'advisory.link', 'stella.resource.type': 'component', 'stella.resource.id': failing ? 'pkg:npm/lodash@4.17.20' : `pkg:npm/react@18.${m}.0` } }]));
    }
    if (m % 15 === 3) {
      await write('logs', DEMO_TENANT, logs(DEMO_TENANT, 'policy', [
        { atMs: t0 + 2000, eventName: 'policy.changed', body: 'rule updated', attrs: { 'stella.actor': 'user:alice', 'stella.resource.type': 'policy', 'stella.resource.id': 'pol-7', rule: 'deny-gpl' } },
        { atMs: t0 + 2500, body: 'cache refreshed' },
      ]));
    }
    await write('traces', OTHER_TENANT, traces(OTHER_TENANT, 'search', Array.from({ length: 6 }, (_, i) => (
      { name: 'GET /v1/search', kind: 2, startMs: t0 + i * 9000, durMs: 30 }))));
    await tick(t0 + MIN - 1);
  }
  // Close the last golden minutes, then an operator ends the incident mode the burst switched on.
  await tick(start + (minutes + 2) * MIN);
  const stopped = core.incidents.off(DEMO_TENANT, start + (minutes + 2) * MIN, 'user:oncall');
  incidentEvents += stopped.length;
  const stopRows = stopped.map(incidentTimelineEvent);
  await store.insertRows('timeline_events', stopRows.map(timelineInsertRow));
  events.push(...stopRows);

  // Evidence seals over the demo tenant's events, one segment per 10 minutes of event time.
  const demoEvents = events.filter((e) => e.tenant_id === DEMO_TENANT).sort((a, b) => (BigInt(a.ts) < BigInt(b.ts) ? -1 : 1));
  let from = 0;
  let segments = 0;
  for (let cut = start + 10 * MIN; from < demoEvents.length; cut += 10 * MIN) {
    const to = demoEvents.filter((e) => BigInt(e.ts) < BigInt(cut) * 1_000_000n).length;
    if (to <= from) continue;
    const root = createHash('sha256').update(demoEvents.slice(0, to).map((e) => e.event_id).join('\n')).digest('hex');
    await insertEvidenceSegment(store, { tenant_id: DEMO_TENANT, from_size: from, to_size: to, root_hex: root,
      statement_sha256: createHash('sha256').update(`statement ${root}`).digest('hex'), sealed_at: (BigInt(cut + 5_000) * 1_000_000n).toString() });
    from = to;
    segments++;
  }
  return { fromMs: start, toMs: start + (minutes + 2) * MIN, timelineEvents: events.length, breachEvents, incidentEvents, segments };
}
