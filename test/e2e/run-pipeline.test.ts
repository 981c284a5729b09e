// `stella run` as wired: every part in one process on the test broker and an embedded ClickHouse
// under a temp data dir. An OTLP event goes in at the receiver, comes out of the API on the tenant's
// timeline with its evidence link, is sealed into a signed checkpoint, and stop() ends cleanly.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildConfig } from '../../lib/config.ts';
import { defaultTopicNames } from '../../lib/kafka/topics.ts';
import { SCOPES, sha256Hex } from '../../lib/tenancy.ts';
import { PARTS, runPipeline, type RunningPipeline } from '../../cli/run.ts';
import { incidentSet, sloList } from '../../processors/slo/cli.ts';
import { brokers, kafkaEnv, testAccess, testKafka, uniq } from '../support/kafka.ts';

const TOKEN = 'run-pipeline-token-0123456789';
const OTHER = 'run-pipeline-other-tenant-token';
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-run-'));
let pipeline: RunningPipeline;
let groupPrefix = '';
let topicNames: string[] = [];
const lines: string[] = [];

beforeAll(async () => {
  const p = uniq('run');
  groupPrefix = `${p}-`;
  const cfg = buildConfig({
    dataDir: dir,
    receiver: { grpcPort: 0, httpPort: 0 }, admin: { port: 0 }, api: { port: 0 },
    // Consumer groups of this test's own (kafka.groupIdPrefix), not the stella-* groups other files' pipelines use.
    kafka: { partitions: 2, groupIdPrefix: `${p}-`, topics: Object.fromEntries(Object.keys(defaultTopicNames).map((k) => [k, `${p}_${k}`])) }, // every topic its own, the intake ones too
    tenants: [
      { id: 'acme', tokens: [{ sha256: sha256Hex(TOKEN), scopes: [...SCOPES] }] },
      { id: 'globex', tokens: [{ sha256: sha256Hex(OTHER), scopes: [...SCOPES] }] },
    ],
    evidence: { sealEverySeconds: 2 },
  }, kafkaEnv());
  topicNames = Object.values(cfg.kafka.topics);
  pipeline = await runPipeline(cfg, new Set(PARTS), (l) => lines.push(l));
}, 180_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function poll<T>(fn: () => Promise<T | undefined>, ms = 45_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 300));
  }
}

it('out of the box (no slo section): the default SLO catalog, slo list / incident on|off, and live golden signals', async () => {
  expect(lines.some((l) => l.startsWith('SLO: 0 configured SLOs + the default catalog'))).toBe(true);
  const api = `http://127.0.0.1:${pipeline.ports.api}`;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  const spans = Array.from({ length: 5 }, (_, i) => ({ traceId: `${'ab'.repeat(15)}0${i}`, spanId: `${'cd'.repeat(7)}0${i}`, name: 'policy.evaluate', kind: 2,
    startTimeUnixNano: `${nowNs - 5_000_000n}`, endTimeUnixNano: `${nowNs}`, status: { code: i === 0 ? 2 : 1 } }));
  const body = { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'policy-engine' } }] }, scopeSpans: [{ spans }] }] };
  const sent = Date.now();
  const res = await fetch(`http://127.0.0.1:${pipeline.ports.http}/v1/traces`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(200);
  type Top = { services: { service: string; requests: number; errors: number; latest_minute_partial: boolean }[] };
  const top = await poll(async () => {
    const r = await (await fetch(`${api}/obs/top?tenant=acme`, { headers: auth })).json() as Top;
    return r.services.find((x) => x.service === 'policy-engine');
  });
  expect(Date.now() - sent).toBeLessThan(15_000);
  expect(top).toMatchObject({ requests: 5, errors: 1, latest_minute_partial: true });

  const list = await sloList({ baseUrl: api, token: TOKEN, tenant: 'acme', format: 'json' });
  expect(list.exitCode, list.stderr).toBe(0);
  const slos = (JSON.parse(list.stdout) as { slos: { slo: string; journey: string }[] }).slos;
  expect(slos.map((x) => x.slo).sort()).toEqual(['advisory-link-availability', 'advisory-link-latency', 'export-availability', 'export-latency',
    'policy-evaluation-availability', 'policy-evaluation-latency', 'sbom-ingest-availability', 'sbom-ingest-latency']);
  const on = await incidentSet({ baseUrl: api, token: OTHER, tenant: 'globex', mode: 'on', ttlSeconds: 60 });
  expect(on.exitCode, on.stderr).toBe(0);
  expect(on.stdout).toMatch(/^tenant globex: incident mode on until /);
  // The token of acme cannot act for globex.
  expect((await incidentSet({ baseUrl: api, token: TOKEN, tenant: 'globex', mode: 'off' })).exitCode).toBe(3);
  const off = await incidentSet({ baseUrl: api, token: OTHER, tenant: 'globex', mode: 'off' });
  expect(off.stdout).toBe("tenant globex: incident mode off\n");
}, 90_000);

it('receiver -> scrub -> timeline -> evidence -> API, then a clean stop', async () => {
  expect(lines).toContain('Scrub: raw -> clean topics');
  const api = `http://127.0.0.1:${pipeline.ports.api}`;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const now = `${BigInt(Date.now()) * 1_000_000n}`;
  const body = { resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'policy-engine' } }] },
    scopeLogs: [{ logRecords: [{ timeUnixNano: now, eventName: 'policy.changed', body: { stringValue: 'changed by bob@example.org' },
      attributes: [{ key: 'stella.resource.type', value: { stringValue: 'policy' } }, { key: 'stella.resource.id', value: { stringValue: 'p-77' } }] }] }] }] };
  const res = await fetch(`http://127.0.0.1:${pipeline.ports.http}/v1/logs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(200);

  type Ev = { event_id: string; kind: string; resource: { id: string }; details: { body: string } };
  const event = await poll(async () => {
    const r = await (await fetch(`${api}/timeline?resource_id=p-77`, { headers: auth })).json() as { events: Ev[] };
    return r.events[0];
  });
  expect(event.kind).toBe('policy.changed');
  expect(event.details.body).toBe('changed by [REDACTED:email]'); // scrubbed before it was stored

  const checkpoint = await poll(async () => {
    const r = await fetch(`${api}/evidence/acme/checkpoint`, { headers: auth });
    return r.status === 200 ? r.text() : undefined;
  });
  expect(checkpoint).toMatch(/^stella-telemetry\.example\/tenants\/acme\n[1-9]\d*\n[A-Za-z0-9+/]{43}=\n\n\u2014 stella-telemetry\.example\/tenants\/acme /);
  const proof = await poll(async () => {
    const r = await fetch(`${api}/evidence/proof/inclusion?event_id=${event.event_id}`, { headers: auth });
    return r.status === 200 ? r.text() : undefined;
  });
  expect(proof.startsWith('c2sp.org/tlog-proof@v1\n')).toBe(true);

  // Another tenant sees none of it.
  const other = await (await fetch(`${api}/timeline?resource_id=p-77`, { headers: { authorization: `Bearer ${OTHER}` } })).json() as { events: Ev[] };
  expect(other.events).toEqual([]);
  expect((await fetch(`${api}/evidence/acme/checkpoint`, { headers: { authorization: `Bearer ${OTHER}` } })).status).toBe(403);

  // Every processor consumed under the configured prefix, and nothing under the default groups' names for these topics.
  const admin = testKafka().admin();
  await admin.connect();
  try {
    for (const name of ['scrub', 'timeline', 'evidence']) {
      const committed = await admin.fetchOffsets({ groupId: `${groupPrefix}${name}` });
      expect(committed.some((t) => t.partitions.some((q) => Number(q.offset) > 0)), name).toBe(true);
    }
    const topics = new Set(topicNames);
    const defaults = await admin.fetchOffsets({ groupId: 'stella-scrub' });
    expect(defaults.filter((t) => topics.has(t.topic) && t.partitions.some((q) => Number(q.offset) >= 0))).toEqual([]);
  } finally { await admin.disconnect(); }

  const t0 = Date.now();
  await pipeline.stop();
  expect(Date.now() - t0).toBeLessThan(30_000);
  await expect(fetch(`http://127.0.0.1:${pipeline.ports.http}/v1/logs`, { method: 'POST' })).rejects.toThrow();
}, 120_000);

it('kafka.groupIdPrefix: default stella-, env over file, bad characters refused at startup', () => {
  expect(buildConfig({}, {}).kafka.groupIdPrefix).toBe('stella-');
  expect(buildConfig({ kafka: { groupIdPrefix: 'eu1-' } }, {}).kafka.groupIdPrefix).toBe('eu1-');
  expect(buildConfig({ kafka: { groupIdPrefix: 'eu1-' } }, { STELLA_KAFKA_GROUP_PREFIX: 'eu2-' }).kafka.groupIdPrefix).toBe('eu2-');
  expect(() => buildConfig({ kafka: { groupIdPrefix: 'a b' } }, {})).toThrow(/kafka\.groupIdPrefix/);
  expect(() => buildConfig({}, { STELLA_KAFKA_GROUP_PREFIX: 'a/b' })).toThrow(/kafka\.groupIdPrefix/);
});
