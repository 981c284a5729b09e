// `stella attest runtime` and `stella ingest runtime` as a user runs them (child processes) against
// the test broker as the pipeline's `api` Kafka user: the envelope the CLI makes verifies under a
// PAE and Ed25519 check written here; an air-gap ingest with a manifest lands in the CAS and on the
// intake and timeline topics; a Python-signed envelope (independent signer) is accepted; a file
// that does not match its manifest, an untrusted signer or another tenant's manifest is refused
// with its named reason and exit 1, storing nothing.
import { createHash, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ensurePipelineAcls } from '../../lib/kafka/acls.ts';
import { ensurePipelineTopics } from '../../lib/kafka/setup.ts';
import { H } from '../../lib/kafka/topics.ts';
import { GraphRegistry } from '../../lib/intake/graphs.ts';
import { ingestIdFor, runtimeFactsStatement } from '../../processors/intake/runtime-facts.ts';
import { kafkaEnv, readAllRecordsAt, testAccess, testKafka, uniq } from '../support/kafka.ts';
import { testConfig } from '../support/receiver.ts';
import { runStellaCli } from '../support/stella.ts';
import { pythonSign } from './sign.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-rt-cli-'));
const cfg = testConfig({ kafka: { groupIdPrefix: `${uniq('rtcli')}-` } });
const T = cfg.kafka.topics;
const GRAPH = `sha256:${'7'.repeat(64)}`;
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const keyFile = path.join(dir, 'signer.pem');
let pythonKeys: Record<string, string>;
let env: Record<string, string>;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function facts(n: number, seed: string): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => JSON.stringify({ symbol_id: `${seed}!f${i}`, purl: 'pkg:golang/example.com/app@v1.2.3',
    timestamp: `2026-12-03T10:00:${String(i).padStart(2, '0')}.5Z`, pid: 42, container: 'ctr', count: 3 })).join('\n') + '\n');
}
const stella = (args: string[]) => runStellaCli(args, env);
const casFiles = (): string[] => {
  const root = path.join(dir, 'data', 'cas', 'acme');
  return existsSync(root) ? readdirSync(root).flatMap((d) => readdirSync(path.join(root, d))).sort() : [];
};

const pyBody = facts(4, 'python');
beforeAll(async () => {
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const signed = pythonSign(['py', 'stranger'], [
    { key: 'py', keyid: 'py-ci', payload: JSON.stringify(runtimeFactsStatement('acme', GRAPH, `sha256:${sha(pyBody)}`)) },
    { key: 'stranger', keyid: 'py-ci', payload: JSON.stringify(runtimeFactsStatement('acme', GRAPH, `sha256:${sha(pyBody)}`)) },
  ]);
  pythonKeys = signed.keys;
  writeFileSync(path.join(dir, 'py.dsse.json'), JSON.stringify(signed.envelopes[0]));
  writeFileSync(path.join(dir, 'stranger.dsse.json'), JSON.stringify(signed.envelopes[1]));
  writeFileSync(path.join(dir, 'py.ndjson'), pyBody);
  const config = { dataDir: path.join(dir, 'data'), kafka: { topics: T },
    intake: { trust: { acme: { keys: [{ keyid: 'cli-key', publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() },
      { keyid: 'py-ci', publicKey: pythonKeys.py }] } } } };
  writeFileSync(path.join(dir, 'stella.json'), JSON.stringify(config));
  env = { PATH: process.env.PATH ?? '', HOME: dir, STELLA_CONFIG: path.join(dir, 'stella.json'), ...kafkaEnv('api') };
  await ensurePipelineTopics(testAccess(), cfg.kafka);
  await ensurePipelineAcls(testKafka('acl-setup'), { topics: T, groupIdPrefix: cfg.kafka.groupIdPrefix, directTenants: [] });
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function manifest(name: string, over: Record<string, unknown>): string {
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify({ schema: 'stella.runtime-facts.manifest/v1', tenant: 'acme', graph_hash: GRAPH, ...over }));
  return file;
}

it('attest runtime signs the facts\' digest (checked here with Ed25519 over DSSE PAE), ingest runtime stores and publishes them', async () => {
  const body = facts(30, 'cli');
  const gz = path.join(dir, 'runtime.ndjson.gz');
  writeFileSync(gz, gzipSync(body));
  const bundle = path.join(dir, 'runtime.dsse.json');
  const man = path.join(dir, 'manifest.json');
  const a = await stella(['attest', 'runtime', '--runtime', gz, '--graph-hash', GRAPH, '--tenant', 'acme', '--key', keyFile, '--keyid', 'cli-key', '--bundle', bundle, '--manifest', man]);
  expect(a.stderr).toContain('signed runtime facts');
  expect(a.code).toBe(0);
  const e = JSON.parse(readFileSync(bundle, 'utf8')) as { payload: string; payloadType: string; signatures: { keyid: string; sig: string }[] };
  const payload = Buffer.from(e.payload, 'base64');
  const paeBytes = Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(e.payloadType)} ${e.payloadType} ${payload.length} `), payload]);
  expect(verify(null, paeBytes, createPublicKey(publicKey.export({ type: 'spki', format: 'pem' })), Buffer.from(e.signatures[0]!.sig, 'base64'))).toBe(true);
  expect(JSON.parse(payload.toString())).toMatchObject({ subject: [{ digest: { sha256: sha(body) } }], predicate: { tenant: 'acme', graph_hash: GRAPH } });
  expect(JSON.parse(readFileSync(man, 'utf8'))).toEqual({ schema: 'stella.runtime-facts.manifest/v1', tenant: 'acme', graph_hash: GRAPH,
    runtime: { file: 'runtime.ndjson.gz', sha256: sha(readFileSync(gz)), content_sha256: sha(body) }, dsse: { file: 'runtime.dsse.json', sha256: sha(readFileSync(bundle)) } });

  const r = await stella(['ingest', 'runtime', '--tenant', 'acme', '--graph-hash', GRAPH, '--runtime', gz, '--manifest', man, '--output', 'json']);
  expect(r.stderr).not.toContain('refused');
  expect(r.code).toBe(0);
  const ingestId = ingestIdFor('acme', GRAPH, `sha256:${sha(body)}`);
  expect(JSON.parse(r.stdout)).toEqual({ ingest_id: ingestId, tenant: 'acme', graph_hash: GRAPH, content_sha256: `sha256:${sha(body)}`,
    cas_uri: `cas://acme/${sha(body)}`, records: 30, size: body.length, signed_by: 'cli-key' });
  expect(readFileSync(path.join(dir, 'data', 'cas', 'acme', sha(body).slice(0, 2), sha(body)))).toEqual(body);
  const intake = await readAllRecordsAt(testAccess(), T.intakeRuntimeFacts);
  const rec = intake.find((x) => JSON.parse(x.value.toString()).ingest_id === ingestId)!;
  expect(rec.key).toBe('acme');
  expect(rec.headers[H.contentSha256]).toBe(sha(rec.value));
  expect(JSON.parse(rec.value.toString())).toMatchObject({ via: 'cli', signed_by: 'cli-key', records: 30 });
  const events = (await readAllRecordsAt(testAccess(), T.timelineEvents)).map((x) => JSON.parse(x.value.toString()) as { kind: string; resource_id: string; details: Record<string, unknown> });
  expect(events.find((x) => x.kind === 'reach.runtime.ingested' && x.resource_id === ingestId)?.details).toMatchObject({ ingest_id: ingestId, tenant: 'acme', graph_hash: GRAPH });
}, 120_000);

it('accepts an envelope made by Python\'s cryptography; refuses mismatching files, untrusted signers and other tenants\' manifests', async () => {
  const py = path.join(dir, 'py.ndjson');
  const ok = await stella(['ingest', 'runtime', '--tenant', 'acme', '--graph-hash', GRAPH, '--runtime', py, '--output', 'json', '--manifest',
    manifest('py.json', { runtime: { file: 'py.ndjson', sha256: sha(pyBody), content_sha256: sha(pyBody) }, dsse: { file: 'py.dsse.json', sha256: sha(readFileSync(path.join(dir, 'py.dsse.json'))) } })]);
  expect(ok.code).toBe(0);
  expect(JSON.parse(ok.stdout).signed_by).toBe('py-ci');

  const before = casFiles();
  const tampered = path.join(dir, 'tampered.ndjson');
  writeFileSync(tampered, facts(4, 'tampered'));
  const refusals: [string, string[]][] = [
    ['MANIFEST_HASH_MISMATCH', ['--runtime', tampered, '--manifest', manifest('t.json', { runtime: { file: 'tampered.ndjson', sha256: sha(pyBody), content_sha256: sha(pyBody) } })]],
    ['CONTENT_SHA256_MISMATCH', ['--runtime', py, '--manifest', manifest('c.json', { runtime: { file: 'py.ndjson', sha256: sha(pyBody), content_sha256: 'a'.repeat(64) } })]],
    ['SIGNATURE_INVALID', ['--runtime', py, '--manifest', manifest('s.json', { runtime: { file: 'py.ndjson', sha256: sha(pyBody), content_sha256: sha(pyBody) },
      dsse: { file: 'stranger.dsse.json', sha256: sha(readFileSync(path.join(dir, 'stranger.dsse.json'))) } })]],
    ['MANIFEST_MISMATCH', ['--runtime', py, '--manifest', manifest('g.json', { tenant: 'globex', runtime: { file: 'py.ndjson', sha256: sha(pyBody), content_sha256: sha(pyBody) } })]],
    ['MANIFEST_INVALID', ['--runtime', py, '--manifest', manifest('x.json', { runtime: { file: 'py.ndjson', sha256: sha(pyBody), content_sha256: sha(pyBody) },
      dsse: { file: '../outside.dsse.json', sha256: 'b'.repeat(64) } })]],
  ];
  const results = await Promise.all(refusals.map(([, args]) => stella(['ingest', 'runtime', '--tenant', 'acme', '--graph-hash', GRAPH, ...args])));
  results.forEach((r, i) => {
    const reason = refusals[i]![0];
    expect(r.code, `${reason}: ${r.stderr}`).toBe(1);
    expect(r.stderr).toContain(`refused: ${reason}:`);
  });
  expect(casFiles()).toEqual(before);
  const failed = (await readAllRecordsAt(testAccess(), T.timelineEvents)).map((x) => JSON.parse(x.value.toString()) as { kind: string; details: { reason?: string; via?: string } })
    .filter((x) => x.kind === 'runtime.ingest.failed').map((x) => `${x.details.reason}/${x.details.via}`).sort();
  expect(failed).toEqual(refusals.map(([reason]) => `${reason}/cli`).sort());
}, 180_000);

it('without KAFKA_BROKERS, ingest runtime reaches the local broker of its data dir as the api user; with none there, exit 2 naming both ways', async () => {
  const local = path.join(dir, 'local');
  const kafkaDir = path.join(local, 'data', 'kafka');
  mkdirSync(kafkaDir, { recursive: true });
  // What `stella run` leaves under dataDir/kafka for its local broker (here: the test broker's port and api login).
  writeFileSync(path.join(kafkaDir, 'identity.json'), JSON.stringify({ clusterId: 'x', port: Number(testAccess().brokers[0]!.split(':')[1]), controllerPort: 1 }));
  writeFileSync(path.join(kafkaDir, 'credentials.json'), JSON.stringify({ mechanism: 'scram-sha-512', users: { api: testAccess('api').sasl!.password.reveal() } }));
  const config = { ...JSON.parse(readFileSync(path.join(dir, 'stella.json'), 'utf8')) as object, dataDir: path.join(local, 'data') };
  writeFileSync(path.join(local, 'stella.json'), JSON.stringify(config));
  const body = facts(3, 'local');
  writeFileSync(path.join(local, 'local.ndjson'), body);
  const man = path.join(local, 'm.json');
  writeFileSync(man, JSON.stringify({ schema: 'stella.runtime-facts.manifest/v1', tenant: 'acme', graph_hash: GRAPH,
    runtime: { file: 'local.ndjson', sha256: sha(body), content_sha256: sha(body) } }));
  const noKafkaEnv = { PATH: process.env.PATH ?? '', HOME: dir, STELLA_CONFIG: path.join(local, 'stella.json') };
  const args = ['ingest', 'runtime', '--tenant', 'acme', '--graph-hash', GRAPH, '--runtime', path.join(local, 'local.ndjson'), '--manifest', man, '--output', 'json'];
  const r = await runStellaCli(args, noKafkaEnv);
  expect(r.stderr).not.toContain('refused');
  expect(r.code).toBe(0);
  const ingestId = JSON.parse(r.stdout).ingest_id as string;
  const intake = await readAllRecordsAt(testAccess(), T.intakeRuntimeFacts);
  expect(intake.some((x) => JSON.parse(x.value.toString()).ingest_id === ingestId)).toBe(true);

  rmSync(kafkaDir, { recursive: true });
  const none = await runStellaCli(args, noKafkaEnv);
  expect(none.code).toBe(2);
  expect(none.stderr).toContain(`no local broker under ${kafkaDir}`);
  expect(none.stderr).toContain('KAFKA_BROKERS');
}, 120_000);

it('ingest graph registers a graph offline as the API route does (CAS + marker; again: replay); a wrong --sha256 is refused, storing nothing', async () => {
  const graph = Buffer.from(JSON.stringify({ nodes: ['a', 'b'], edges: [['a', 'b']], seed: 'cli-graph' }));
  const file = path.join(dir, 'graph.json');
  writeFileSync(file, graph);
  const hex = sha(graph);
  const before = casFiles();
  const bad = await stella(['ingest', 'graph', '--tenant', 'acme', '--graph', file, '--sha256', 'c'.repeat(64)]);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain('refused: CONTENT_SHA256_MISMATCH');
  expect(casFiles()).toEqual(before);
  expect(existsSync(path.join(dir, 'data', 'intake', 'graphs', 'acme', hex))).toBe(false);

  const first = await stella(['ingest', 'graph', '--tenant', 'acme', '--graph', file, '--sha256', hex, '--output', 'json']);
  expect(first.code, first.stderr).toBe(0);
  const firstOut = JSON.parse(first.stdout) as { event_id: string };
  expect(firstOut).toEqual({ tenant: 'acme', graph_hash: `sha256:${hex}`, cas_uri: `cas://acme/${hex}`, size: graph.length, replay: false, event_id: expect.stringMatching(/^[0-9a-f]{32}$/) });
  // Published as the API publishes: the intake_graphs record and its reach.graph.registered event (sealed by the evidence processor).
  const rec = (await readAllRecordsAt(testAccess(), T.intakeGraphs)).map((x) => JSON.parse(x.value.toString())).find((x) => x.graph_hash === `sha256:${hex}`);
  expect(rec).toMatchObject({ tenant: 'acme', cas_uri: `cas://acme/${hex}`, size: graph.length, via: 'cli', actor: 'stella-cli' });
  const ev = (await readAllRecordsAt(testAccess(), T.timelineEvents)).map((x) => JSON.parse(x.value.toString())).find((x) => x.event_id === firstOut.event_id);
  expect(ev).toMatchObject({ kind: 'reach.graph.registered', tenant_id: 'acme', digest: `sha256:${hex}` });
  expect(await GraphRegistry.under(path.join(dir, 'data')).isKnown('acme', `sha256:${hex}`)).toBe(true);
  expect(await GraphRegistry.under(path.join(dir, 'data')).isKnown('globex', `sha256:${hex}`)).toBe(false);
  const again = await stella(['ingest', 'graph', '--tenant', 'acme', '--graph', file, '--output', 'json']);
  expect(JSON.parse(again.stdout)).toMatchObject({ replay: true, event_id: firstOut.event_id });
}, 120_000);
