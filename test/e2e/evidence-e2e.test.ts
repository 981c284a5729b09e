// End to end on real Kafka: the official OTel exporter → receiver → scrub → timeline (ClickHouse +
// timeline_events topic) → evidence runner (per-tenant Merkle logs); snapshot a case through the
// API with the CLI function; verify the bundle offline, in a clean temp directory, in a separate
// process (exit 0); a flipped byte fails with a named cause.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SpanKind } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { registerEvidenceRoutes } from '../../api/evidence-routes.ts';
import type { StellaConfig } from '../../lib/config.ts';
import { createKafka } from '../../lib/kafka/client.ts';
import { ensurePipelineTopics } from '../../lib/kafka/setup.ts';
import { forTenant } from '../../lib/store/index.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { CLEAN_BATCH_V2_TYPE, startEvidenceRunner, type RunningEvidence } from '../../processors/evidence/runner.ts';
import { snapshotCreate } from '../../processors/evidence/snapshot-cli.ts';
import { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { gunzip, gzipDeterministic, readTar, writeTar } from '../../processors/evidence/tar.ts';
import { parseScrubConfig } from '../../processors/scrub/config.ts';
import { startScrub, type RunningScrub } from '../../processors/scrub/runner.ts';
import { startTimelineRunner, type RunningTimeline } from '../../processors/timeline/runner.ts';
import type { RunningReceiver } from '../../receiver/index.ts';
import { startHarness } from '../evidence/api-harness.ts';
import { tempStore } from '../evidence/helpers.ts';
import { logEntries, tenantSigner, waitFor } from '../evidence/runner-support.ts';
import { brokers, kafkaEnv, testAccess, uniq } from '../support/kafka.ts';
import { startTestReceiver, TOKENS } from '../support/receiver.ts';
import { testStore } from '../timeline/support.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const INVESTIGATOR = 'e2e-acme-investigator';
let cfg: StellaConfig;
let receiver: RunningReceiver;
let scrub: RunningScrub;
let timeline: RunningTimeline;
let evidenceRunner: RunningEvidence;
let api: { url: string; close(): Promise<void> };
const evidence = tempStore();

beforeAll(async () => {
  ({ cfg, receiver } = await startTestReceiver());
  await ensurePipelineTopics(testAccess(), cfg.kafka);
  const kafka = (id: string) => createKafka({ ...testAccess(), clientId: id });
  const t = cfg.kafka.topics;
  const store = await testStore();
  scrub = await startScrub({ kafka: kafka('e2e-scrub'), config: parseScrubConfig({}), topics: t, groupId: uniq('scrub') });
  timeline = await startTimelineRunner({ kafka: kafka('e2e-timeline'), store, groupId: uniq('timeline'), writer: { maxDelayMs: 10 },
    topics: { spans: t.spansClean, logs: t.logsClean, metrics: t.metricsClean, timelineEvents: t.timelineEvents, dlq: t.dlq } });
  evidenceRunner = await startEvidenceRunner({ kafka: kafka('e2e-evidence'), storeRoot: evidence.root, store, signer: tenantSigner,
    topics: { timelineEvents: t.timelineEvents, clean: [t.spansClean, t.logsClean, t.metricsClean] }, groupId: uniq('evidence'),
    sealEverySeconds: 0.3, sealEveryEntries: 50 });
  const tokens = new TokenRegistry([{ id: 'acme', tokens: [{ sha256: sha256Hex(INVESTIGATOR), scopes: ['evidence:read', 'evidence:create', 'evidence:export'] }] }]);
  api = await startHarness(tokens, [(r) => registerEvidenceRoutes(r, { evidence, cases: new FsEvidenceStore(path.join(evidence.root, 'cases')), store })]);
});
afterAll(async () => {
  await evidenceRunner?.stop(); await timeline?.stop(); await scrub?.stop(); await receiver?.close(); await api?.close();
});

it('OTel exporter → receiver → scrub → timeline → evidence; snapshot via the API; offline verify in a clean directory', async () => {
  const exporter = new OTLPTraceExporter({ url: `http://127.0.0.1:${receiver.httpPort}/v1/traces`, headers: { Authorization: `Bearer ${TOKENS.acme}` } });
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'policy-engine' }), spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracer = provider.getTracer('e2e');
  for (let i = 0; i < 3; i++) {
    const span = tracer.startSpan('policy.evaluate', { kind: SpanKind.INTERNAL, attributes: {
      'stella.job.name': 'policy.evaluate', 'stella.job.id': `eval-${i}`, 'stella.resource.type': 'component',
      'stella.resource.id': 'pkg:npm/lodash@4.17.20', 'stella.project.id': 'proj-1', 'user.email': 'alice@example.com' } });
    span.end();
  }
  await provider.forceFlush();
  await provider.shutdown();

  // The timeline derived job.started + job.finished per span; the evidence log holds them and the clean batches.
  const store = await testStore();
  const events = await waitFor('6 timeline events', async () => {
    const e = await forTenant(store, 'acme').listEvents({ fromUnixNano: 0n, toUnixNano: BigInt(Date.now() + 60_000) * 1_000_000n,
      resourceType: 'component', resourceId: 'pkg:npm/lodash@4.17.20', limit: 100 });
    return e.length === 6 ? e : false;
  });
  await waitFor('events sealed in the evidence log', async () => {
    const entries = await logEntries(evidence, 'acme').catch(() => []);
    const ids = new Set(entries.map((x) => x.event_id));
    return events.every((e) => ids.has(e.event_id)) && entries.some((x) => x.type === CLEAN_BATCH_V2_TYPE);
  });
  const entries = await logEntries(evidence, 'acme');
  expect(JSON.stringify(entries)).not.toContain('alice@example.com'); // only scrubbed data reaches evidence

  const work = mkdtempSync(path.join(os.tmpdir(), 'stella-e2e-snap-'));
  const out = path.join(work, 'case.tar.gz');
  const snap = await snapshotCreate({ baseUrl: api.url, token: INVESTIGATOR, caseId: 'INC-7', scope: 'component', id: 'pkg:npm/lodash@4.17.20', out });
  expect(snap.exitCode, snap.stderr).toBe(0);
  expect(snap.stdout).toContain('6 events');

  // Offline, in a clean directory, in a fresh process with no broker or store configured.
  const clean = mkdtempSync(path.join(os.tmpdir(), 'stella-e2e-verify-'));
  // The tenant's trust root, pinned once from the API (scope evidence:read), is the verifier's only anchor.
  const trustRes = await fetch(`${api.url}/evidence/acme/trust-root`, { headers: { authorization: `Bearer ${INVESTIGATOR}` } });
  expect(trustRes.status).toBe(200);
  writeFileSync(path.join(clean, 'acme.trust-root.json'), await trustRes.text());
  const verify = (file: string) => spawnSync(process.execPath, ['--import', pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href, '--input-type=module', '-e',
    `import { forensicVerify, readTrustRootFile } from ${JSON.stringify(path.join(ROOT, 'processors/evidence/cli.ts'))};
     const r = await forensicVerify(process.argv[1], { trustRoot: await readTrustRootFile('acme.trust-root.json') }); process.stdout.write(JSON.stringify(r.result)); process.exit(r.exitCode);`, file],
  { cwd: clean, env: { PATH: process.env.PATH ?? '', HOME: clean }, encoding: 'utf8', timeout: 60_000 });
  copyFileSync(out, path.join(clean, 'case.tar.gz'));
  const ok = verify('case.tar.gz');
  expect(ok.status, ok.stderr).toBe(0);
  expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, tenant: 'acme', caseId: 'INC-7', entries: 6 });

  // A byte flipped in a logged event (bundle re-packed so the archive itself is well-formed) → MERKLE_MISMATCH (14).
  const files = readTar(gunzip(readFileSync(out)));
  const entry = files.find((f) => f.path.startsWith('entries/'))!;
  const tampered = Buffer.from(entry.bytes);
  tampered[tampered.indexOf('job.')]! ^= 0x20; // job. → Job.
  entry.bytes = tampered;
  writeFileSync(path.join(clean, 'tampered.tar.gz'), gzipDeterministic(writeTar(files)));
  const bad = verify('tampered.tar.gz');
  expect(bad.status).toBe(14);
  expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, cause: 'MERKLE_MISMATCH' });
  // A raw byte flipped in the file → BUNDLE_CORRUPT (10).
  const raw = readFileSync(out);
  raw[Math.floor(raw.length / 2)]! ^= 0x01;
  writeFileSync(path.join(clean, 'flipped.tar.gz'), raw);
  const corrupt = verify('flipped.tar.gz');
  expect(corrupt.status).toBe(10);
  expect(JSON.parse(corrupt.stdout)).toMatchObject({ ok: false, cause: 'BUNDLE_CORRUPT' });
});
