// POST/GET /api/v1/artifacts and /api/v1/symbols end to end on real parts: a real ELF built here
// with the C compiler (`-g`, build-id note), its provenance signed by Python's `cryptography`, the
// API with its Kafka producer, the CAS on disk, the timeline processor's intake sink writing
// chdb. Happy path, every refusal (nothing published, nothing in the CAS), cross-tenant refusals,
// replays and concurrent duplicates (one record), sink redelivery (one row), and the CLI.
import { machOFromLlvm, pdbFromLlvm, yamlFat } from './symbol-fixtures.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Producer } from 'kafkajs';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { startApiServer, type RunningApi } from '../../api/server.ts';
import { artifactRouteDeps, registerArtifactRoutes } from '../../api/artifact-routes.ts';
import { intakeLookup } from '../../processors/intake/lookup.ts';
import { artifactEventId, symbolsEventId } from '../../processors/intake/artifact-records.ts';
import type { AcceptedSymbolBundle } from '../../processors/intake/artifacts.ts';
import { startTimelineRunner, type RunningTimeline } from '../../processors/timeline/runner.ts';
import { FsBlobStore } from '../../lib/cas.ts';
import { IntakeTrust } from '../../lib/intake/trust.ts';
import { artifactSink } from '../../processors/timeline/intake-sinks.ts';
import { createTopics, readAllRecordsAt, testAccess, testKafka, uniq, type ReadRecord } from '../support/kafka.ts';
import { runStellaCli } from '../support/stella.ts';
import { testStore } from '../timeline/support.ts';
import { buildElfFixture, readBytes, type ElfFixture } from './elf-fixture.ts';
import { pythonSign, slsaStatement, type Envelope } from './sign.ts';

const topics = { intakeArtifacts: uniq('intake_artifacts'), intakeSymbols: uniq('intake_symbols'), timelineEvents: uniq('timeline_events'),
  spans: uniq('spans_clean'), logs: uniq('logs_clean'), metrics: uniq('metrics_clean'), dlq: uniq('dlq') };
const TOK = { acmeWriter: 'tok-acme-artifacts', acmeReader: 'tok-acme-attest-read', globexWriter: 'tok-globex-artifacts', acmeTimelineOnly: 'tok-acme-timeline' };
const tokens = () => {
  const t = (tok: string, scopes: string[], name: string) => ({ sha256: sha256Hex(tok), scopes, name });
  return new TokenRegistry([
    { id: 'acme', tokens: [t(TOK.acmeWriter, ['artifacts:write', 'symbols:write', 'attest:read'], 'acme-ci'), t(TOK.acmeReader, ['attest:read'], 'acme-auditor'),
      t(TOK.acmeTimelineOnly, ['timeline:read'], 'acme-timeline')] },
    { id: 'globex', tokens: [t(TOK.globexWriter, ['artifacts:write', 'symbols:write', 'attest:read'], 'globex-ci')] },
  ]);
};

const COMMIT = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
let elf: ElfFixture;
let artifactSha: string;
let env: Record<string, Envelope>;
let keys: Record<string, string>;
let api: RunningApi;
let runner: RunningTimeline;
let casRoot: string;
let producer: Producer;
const store = () => testStore();

async function post(p: string, token: string, body: Buffer | string, type = 'application/json', headers: Record<string, string> = {}) {
  const res = await fetch(api.url + p, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': type, ...headers }, body });
  return { status: res.status, body: (await res.json()) as any };
}
async function get(p: string, token: string) {
  const res = await fetch(api.url + p, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as any };
}
const record = (provenance: unknown, over: Record<string, unknown> = {}) => JSON.stringify({ sha256: artifactSha, builder_commit: COMMIT,
  compiler: `${elf.cc} ${elf.version}`, flags: ['-g', '-O0'], provenance, ...over });
const casFiles = (tenant: string): string[] => {
  const d = path.join(casRoot, tenant);
  if (!existsSync(d)) return [];
  return readdirSync(d, { recursive: true }).map(String).filter((f) => /[0-9a-f]{64}$/.test(f));
};
const all = async (topic: string): Promise<ReadRecord[]> => readAllRecordsAt(testAccess(), topic);

async function eventually<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  elf = buildElfFixture();
  artifactSha = createHash('sha256').update(readBytes(elf.withId)).digest('hex');
  const compiler = `${elf.cc} ${elf.version}`;
  const other = createHash('sha256').update('not the artifact').digest('hex');
  const cases: Record<string, { key?: string; keyid?: string; payloadType?: string; payload: Buffer }> = {
    good: { payload: slsaStatement(artifactSha, { gitCommit: COMMIT, compiler, flags: ['-g', '-O0'] }) },
    rebuilt: { payload: slsaStatement(artifactSha, { gitCommit: COMMIT, compiler, flags: ['-g', '-O0'], invocationId: 'run-2' }) },
    wrongSubject: { payload: slsaStatement(other, { gitCommit: COMMIT }) },
    wrongType: { payloadType: 'text/plain', payload: slsaStatement(artifactSha, { gitCommit: COMMIT }) },
    unknownKey: { key: 'mallory', keyid: 'acme-ci', payload: slsaStatement(artifactSha, { gitCommit: COMMIT }) },
    globex: { key: 'globex', keyid: 'globex-ci', payload: slsaStatement(artifactSha, { gitCommit: COMMIT }) },
  };
  const names = Object.keys(cases);
  const signed = pythonSign(['acme', 'mallory', 'globex'], names.map((n) => ({ key: cases[n]!.key ?? 'acme', keyid: cases[n]!.keyid ?? 'acme-ci',
    payloadType: cases[n]!.payloadType, payload: cases[n]!.payload })));
  env = Object.fromEntries(names.map((n, i) => [n, signed.envelopes[i]!]));
  keys = signed.keys;

  const s = await store();
  await createTopics(Object.values(topics), 3);
  casRoot = mkdtempSync(path.join(os.tmpdir(), 'stella-cas-'));
  const trust = { acme: { keys: [{ keyid: 'acme-ci', publicKey: keys.acme! }] }, globex: { keys: [{ keyid: 'globex-ci', publicKey: keys.globex! }] } };
  const verify = new IntakeTrust(trust).verifyIntakeEnvelope;
  const blobs = new FsBlobStore(casRoot);
  runner = await startTimelineRunner({ kafka: testKafka('timeline'), store: s, groupId: uniq('timeline'), writer: { maxDelayMs: 10 },
    topics: { spans: topics.spans, logs: topics.logs, metrics: topics.metrics, timelineEvents: topics.timelineEvents, dlq: topics.dlq },
    intakeSinks: [artifactSink({ verify, cas: blobs })], intakeTopics: topics });
  api = await startApiServer({ tokens: tokens(), port: 0, kafka: testKafka('api'), register: [(r, ctx) => registerArtifactRoutes(r,
    artifactRouteDeps({ store: s, blobs, producer: ctx.producer!, verify, topics, originWaitMs: 500 }))] });
  producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
});

afterAll(async () => {
  await api?.close();
  await runner?.stop();
  await producer?.disconnect();
});

describe('artifact and symbol intake over the API', () => {
  it('registers an attested artifact and its ELF symbols; the join finds them by build-id', async () => {
    const a = await post('/api/v1/artifacts', TOK.acmeWriter, record(env.good));
    expect(a.status, JSON.stringify(a.body)).toBe(201);
    expect(a.body).toMatchObject({ tenant: 'acme', replay: false, artifact: { sha256: artifactSha, builder_commit: COMMIT, signer_keyid: 'acme-ci',
      attested_fields: ['builder_commit', 'compiler', 'flags'] } });
    const envelopeSha = a.body.artifact.envelope_sha256 as string;
    expect(casFiles('acme')).toContain(path.join(envelopeSha.slice(0, 2), envelopeSha));

    // Straight after the artifact: the symbols route knows it (no wait for the sink needed).
    const sym = await post(`/api/v1/symbols?kind=elf&build_id=${elf.buildId.toUpperCase()}&artifact_sha256=${artifactSha}`, TOK.acmeWriter,
      readBytes(elf.withId), 'application/octet-stream', { 'content-sha256': artifactSha });
    expect(sym.status, JSON.stringify(sym.body)).toBe(201);
    expect(sym.body.bundle).toMatchObject({ kind: 'elf', symbol_key: elf.buildId, key_verified: true, artifact_sha256: artifactSha, bundle_sha256: artifactSha });

    // Kafka: one record per intake and one timeline event each.
    expect((await all(topics.intakeArtifacts)).filter((r) => r.key === 'acme')).toHaveLength(1);
    const events = (await all(topics.timelineEvents)).map((r) => JSON.parse(r.value.toString()) as { kind: string; event_id: string });
    expect(events.map((e) => e.kind).sort()).toEqual(['artifact.registered', 'symbols.registered']);
    expect(events.find((e) => e.kind === 'artifact.registered')!.event_id).toBe(a.body.event_id);

    // The sink wrote the tables; the join's reads and the GET routes return them.
    const look = intakeLookup(await store());
    const bundles = await eventually(() => look.lookupSymbolBundle('acme', elf.buildId), (r) => r.length > 0);
    expect(bundles.map((b) => [b.kind, b.bundle_sha256, b.artifact_sha256, b.key_verified, b.evidence.event_id])).toEqual([['elf', artifactSha, artifactSha, true, sym.body.event_id]]);
    const arts = await eventually(() => look.lookupArtifact('acme', artifactSha), (r) => r.length > 0);
    expect(arts).toHaveLength(1);
    expect(JSON.parse(arts[0]!.dsse_envelope)).toEqual(env.good);
    const shown = await get(`/api/v1/artifacts/${artifactSha}`, TOK.acmeReader);
    expect(shown.status).toBe(200);
    expect(shown.body.attestations[0]).toMatchObject({ sha256: artifactSha, compiler: `${elf.cc} ${elf.version}`, dsse_envelope: env.good });
    expect(shown.body.symbol_bundles.map((b: { symbol_key: string }) => b.symbol_key)).toEqual([elf.buildId]);
    const byKey = await get(`/api/v1/symbols/${elf.buildId}?kind=elf`, TOK.acmeReader);
    expect(byKey.status).toBe(200);
    expect(byKey.body.bundles).toHaveLength(1);
  });

  it('answers a replay and concurrent duplicates with the first registration: one Kafka record, one row', async () => {
    const before = (await all(topics.intakeArtifacts)).length;
    const answers = await Promise.all(Array.from({ length: 5 }, () => post('/api/v1/artifacts', TOK.acmeWriter, record(env.good))));
    expect(answers.map((x) => x.status)).toEqual([200, 200, 200, 200, 200]);
    expect(new Set(answers.map((x) => x.body.event_id)).size).toBe(1);
    expect((await all(topics.intakeArtifacts)).length).toBe(before);
    const symAgain = await post(`/api/v1/symbols?kind=elf&build_id=${elf.buildId}&artifact_sha256=${artifactSha}`, TOK.acmeWriter, readBytes(elf.withId), 'application/octet-stream');
    expect([symAgain.status, symAgain.body.replay]).toEqual([200, true]);
  });

  it('keeps one row when Kafka redelivers an intake record to the sink', async () => {
    const recs = (await all(topics.intakeArtifacts)).filter((r) => r.key === 'acme');
    expect(recs).toHaveLength(1);
    await producer.send({ topic: topics.intakeArtifacts, acks: -1, messages: recs.map((r) => ({ key: r.key, value: r.value, headers: r.headers })) });
    // A second attestation of the same artifact, published after the redelivery on the same
    // partition (key = tenant): once its row is there, the redelivered record was consumed too.
    const second = await post('/api/v1/artifacts', TOK.acmeWriter, record(env.rebuilt));
    expect(second.status, JSON.stringify(second.body)).toBe(201);
    const look = intakeLookup(await store());
    const rows = await eventually(() => look.lookupArtifact('acme', artifactSha), (x) => x.length >= 2);
    expect(rows.map((r) => r.envelope_sha256).sort()).toEqual([createHash('sha256').update(rows[0]!.dsse_envelope).digest('hex'),
      createHash('sha256').update(rows[1]!.dsse_envelope).digest('hex')].sort());
    expect(rows).toHaveLength(2);
    const s = await store();
    const n = Number((await s.selectRows<{ n: string }>("SELECT count() AS n FROM provenance_evidence FINAL WHERE tenant_id = 'acme' AND subject_type = 'artifact'"))[0]!.n);
    expect(n).toBe(2);
    // The timeline holds each registration once (replays, duplicates and the redelivery added none).
    const kinds = await eventually(async () => (await s.selectRows<{ kind: string; n: string }>(`SELECT kind, toString(count()) AS n FROM timeline_events FINAL
      WHERE tenant_id = 'acme' GROUP BY kind ORDER BY kind`)).map((r) => `${r.kind}=${r.n}`), (x) => x.join() === 'artifact.registered=2,symbols.registered=1');
    expect(kinds).toEqual(['artifact.registered=2', 'symbols.registered=1']);
  });

  it('the sink writes nothing for records that did not come through the API (forged provenance, bundle not in the CAS): DLQ with the reason', async () => {
    const [rec] = (await all(topics.intakeArtifacts)).filter((r) => r.key === 'acme');
    // A forger with Kafka write access but no signing key: a valid-looking record (ids recomputed) for another artifact.
    const forged = JSON.parse(rec!.value.toString()) as { event_id: string; artifact: { tenant: string; sha256: string; envelope_sha256: string } };
    const other = createHash('sha256').update('forged artifact').digest('hex');
    forged.artifact.sha256 = other;
    forged.event_id = artifactEventId(forged.artifact);
    const symRec = JSON.parse((await all(topics.intakeSymbols)).find((r) => r.key === 'acme')!.value.toString()) as { event_id: string; bundle: AcceptedSymbolBundle; cas_uri: string };
    const missing = createHash('sha256').update('bytes nobody uploaded').digest('hex');
    symRec.bundle.bundle_sha256 = missing;
    symRec.cas_uri = `cas://acme/${missing}`;
    symRec.event_id = symbolsEventId(symRec.bundle);
    await producer.send({ topic: topics.intakeArtifacts, acks: -1, messages: [{ key: 'acme', value: Buffer.from(JSON.stringify(forged)) }] });
    await producer.send({ topic: topics.intakeSymbols, acks: -1, messages: [{ key: 'acme', value: Buffer.from(JSON.stringify(symRec)) }] });
    const dead = await eventually(() => all(topics.dlq), (d) => d.length >= 2);
    const reasons = dead.map((d) => d.headers['dlq-reason']);
    expect(reasons).toHaveLength(2);
    expect(reasons.some((r) => /provenance refused on re-verification: SUBJECT_DIGEST_MISMATCH/.test(r ?? ''))).toBe(true);
    expect(reasons.some((r) => /symbol bundle bytes are not in the CAS/.test(r ?? ''))).toBe(true);
    expect(await intakeLookup(await store()).lookupArtifact('acme', other)).toEqual([]);
    expect((await intakeLookup(await store()).lookupSymbolBundle('acme', elf.buildId)).map((b) => b.bundle_sha256)).toEqual([artifactSha]);
  });

  it('refuses bad provenance with a named reason and publishes and stores nothing', async () => {
    const other = createHash('sha256').update('an artifact nobody attested').digest('hex');
    const before = { art: (await all(topics.intakeArtifacts)).length, sym: (await all(topics.intakeSymbols)).length, ev: (await all(topics.timelineEvents)).length, cas: casFiles('acme').length };
    const cases: [string, string, number, string][] = [
      ['subject digest mismatch', record(env.wrongSubject), 400, 'SUBJECT_DIGEST_MISMATCH'],
      ['another artifact on a good envelope', record(env.good, { sha256: other }), 400, 'SUBJECT_DIGEST_MISMATCH'],
      ['unknown key', record(env.unknownKey), 400, 'SIGNATURE_NOT_TRUSTED'],
      ['another tenant\'s key', record(env.globex), 400, 'SIGNATURE_NOT_TRUSTED'],
      ['wrong payloadType', record(env.wrongType), 400, 'PAYLOAD_TYPE_UNSUPPORTED'],
      ['truncated envelope', record(JSON.stringify(env.good).slice(0, 50)), 400, 'ENVELOPE_MALFORMED'],
      ['non-base64 payload', record({ ...env.good, payload: '%%%%' }), 400, 'ENVELOPE_NOT_BASE64'],
      ['no provenance', JSON.stringify({ sha256: artifactSha, builder_commit: COMMIT, compiler: 'gcc', flags: [] }), 400, 'PROVENANCE_MISSING'],
      ['not JSON', '{"sha256":', 400, 'ARTIFACT_RECORD_MALFORMED'],
      ['lying compiler', record(env.good, { compiler: 'clang 99' }), 400, 'COMPILER_MISMATCH'],
      ['too large', JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }), 413, 'BODY_TOO_LARGE'],
    ];
    for (const [what, body, status, code] of cases) {
      const r = await post('/api/v1/artifacts', TOK.acmeWriter, body);
      expect([what, r.status, r.body.error?.code]).toEqual([what, status, code]);
    }
    const pdbBytes = pdbFromLlvm({ guid: '0123ABCD-4567-89EF-0123-456789ABCDEF', infoAge: 7, dbiAge: 3 }).bytes;
    const fatBytes = machOFromLlvm(yamlFat([{ cputype: 0x01000007, uuid: '11111111-2222-3333-4444-555555555555' }, { cputype: 0x0100000c, uuid: 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE' }])).bytes;
    const syms: [string, string, Buffer, number, string, Record<string, string>?][] = [
      ['ELF without build-id note', `kind=elf&build_id=${elf.buildId}&artifact_sha256=${artifactSha}`, readBytes(elf.withoutId), 400, 'ELF_BUILD_ID_MISSING'],
      ['lying build-id', `kind=elf&build_id=${'ab'.repeat(20)}&artifact_sha256=${artifactSha}`, readBytes(elf.withId), 400, 'BUILD_ID_MISMATCH'],
      ['not an ELF', `kind=elf&build_id=${elf.buildId}&artifact_sha256=${artifactSha}`, Buffer.from('MZ not an elf at all'), 400, 'ELF_MALFORMED'],
      ['unattested origin', `kind=elf&build_id=${elf.buildId}&artifact_sha256=${other}`, readBytes(elf.withId), 409, 'ORIGIN_ARTIFACT_UNATTESTED'],
      ['no origin', `kind=elf&build_id=${elf.buildId}`, readBytes(elf.withId), 400, 'ORIGIN_ARTIFACT_SHA256_INVALID'],
      ['bad kind', `kind=so&build_id=${elf.buildId}&artifact_sha256=${artifactSha}`, readBytes(elf.withId), 400, 'SYMBOL_KIND_INVALID'],
      ['content digest', `kind=elf&build_id=${elf.buildId}&artifact_sha256=${artifactSha}`, readBytes(elf.withId), 400, 'CONTENT_SHA256_MISMATCH', { 'content-sha256': other }],
      ['empty', `kind=pdb&pdb_guid=${'0'.repeat(32)}&pdb_age=1&artifact_sha256=${artifactSha}`, Buffer.alloc(0), 400, 'SYMBOL_BUNDLE_EMPTY'],
      // PDB (llvm-pdbutil yaml2pdb; DBI age 3, info age 7) and universal Mach-O (yaml2obj): the declared key is checked against the bytes.
      ['pdb: the info-stream age', `kind=pdb&pdb_guid=0123ABCD-4567-89EF-0123-456789ABCDEF&pdb_age=7&artifact_sha256=${artifactSha}`, pdbBytes, 400, 'PDB_AGE_MISMATCH'],
      ['pdb: another GUID', `kind=pdb&pdb_guid=0123ABCD-4567-89EF-0123-456789ABCDEE&pdb_age=3&artifact_sha256=${artifactSha}`, pdbBytes, 400, 'PDB_GUID_MISMATCH'],
      ['pdb: not a PDB', `kind=pdb&pdb_guid=0123ABCD-4567-89EF-0123-456789ABCDEF&pdb_age=3&artifact_sha256=${artifactSha}`, readBytes(elf.withId), 400, 'PDB_MALFORMED'],
      ['dsym: no slice has it', `kind=dsym&dsym_uuid=11111111-2222-3333-4444-555555555556&artifact_sha256=${artifactSha}`, fatBytes, 400, 'DSYM_UUID_MISMATCH'],
      ['dsym: not Mach-O', `kind=dsym&dsym_uuid=11111111-2222-3333-4444-555555555555&artifact_sha256=${artifactSha}`, pdbBytes, 400, 'MACHO_MALFORMED'],
    ];
    for (const [what, q, bytes, status, code, headers] of syms) {
      const r = await post(`/api/v1/symbols?${q}`, TOK.acmeWriter, bytes, 'application/octet-stream', headers);
      expect([what, r.status, r.body.error?.code]).toEqual([what, status, code]);
    }
    expect((await all(topics.intakeArtifacts)).length).toBe(before.art);
    expect((await all(topics.intakeSymbols)).length).toBe(before.sym);
    expect((await all(topics.timelineEvents)).length).toBe(before.ev);
    expect(casFiles('acme').length).toBe(before.cas);
  });

  it('keeps tenants apart: reads, symbol origins and scopes', async () => {
    // globex cannot see acme's artifact or symbols...
    expect((await get(`/api/v1/artifacts/${artifactSha}`, TOK.globexWriter)).status).toBe(404);
    expect((await get(`/api/v1/symbols/${elf.buildId}`, TOK.globexWriter)).status).toBe(404);
    // ... nor hang symbols on it (the artifact is acme's, not globex's).
    const r = await post(`/api/v1/symbols?kind=elf&build_id=${elf.buildId}&artifact_sha256=${artifactSha}`, TOK.globexWriter, readBytes(elf.withId), 'application/octet-stream');
    expect([r.status, r.body.error?.code]).toEqual([409, 'ORIGIN_ARTIFACT_UNATTESTED']);
    // acme's token acting for globex, or the header naming another tenant: refused.
    expect((await post('/api/v1/artifacts?tenant=globex', TOK.acmeWriter, record(env.globex))).status).toBe(403);
    expect((await post('/api/v1/artifacts', TOK.acmeWriter, record(env.good), 'application/json', { 'x-stella-tenant': 'globex' })).status).toBe(403);
    expect((await get(`/api/v1/artifacts/${artifactSha}?tenant=globex`, TOK.acmeReader)).status).toBe(403);
    // Scopes: a reader cannot write, a timeline-only token cannot read artifacts.
    expect((await post('/api/v1/artifacts', TOK.acmeReader, record(env.good))).status).toBe(403);
    expect((await get(`/api/v1/artifacts/${artifactSha}`, TOK.acmeTimelineOnly)).status).toBe(403);
    // globex registers the same binary under its own key: its own row, acme's untouched.
    const g = await post('/api/v1/artifacts', TOK.globexWriter, record(env.globex, { compiler: 'gcc', flags: [] }));
    expect(g.status, JSON.stringify(g.body)).toBe(201);
    const look = intakeLookup(await store());
    const rows = await eventually(() => look.lookupArtifact('globex', artifactSha), (x) => x.length > 0);
    expect(rows.map((x) => x.signer_keyid)).toEqual(['globex-ci']);
    // acme's two attestations (the second from the redelivery test), both by acme's key.
    expect((await look.lookupArtifact('acme', artifactSha)).map((x) => x.signer_keyid)).toEqual(['acme-ci', 'acme-ci']);
  });

  // Node start-ups of the CLI on a shared 2-core box: allow more than the default 60 s.
  it('stella artifacts add|show and symbols show', { timeout: 180_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-cli-art-'));
    const envFile = path.join(dir, 'app.dsse.json');
    writeFileSync(envFile, JSON.stringify(env.good));
    const cliEnv = { PATH: process.env.PATH ?? '', HOME: dir, STELLA_API_URL: api.url, STELLA_TOKEN: TOK.acmeWriter };
    // Independent invocations, run side by side (each is a node start-up).
    const [add, bad, show, symShow] = await Promise.all([
      runStellaCli(['artifacts', 'add', '--artifact', elf.withId, '--provenance', envFile, '--commit', COMMIT,
        '--compiler', `${elf.cc} ${elf.version}`, '--flags', '-g -O0', '--output', 'json'], cliEnv),
      runStellaCli(['artifacts', 'add', '--artifact', elf.withoutId, '--provenance', envFile, '--commit', COMMIT, '--compiler', 'gcc'], cliEnv),
      runStellaCli(['artifacts', 'show', artifactSha, '--output', 'yaml'], cliEnv),
      runStellaCli(['symbols', 'show', elf.buildId], cliEnv),
    ]);
    expect(add.code, add.stderr).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ replay: true, artifact: { sha256: artifactSha } });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/refused \(400\) SUBJECT_DIGEST_MISMATCH/);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(new RegExp(`sha256: ${artifactSha}`));
    expect(show.stdout).toMatch(/signer_keyid: acme-ci/);
    expect(symShow.code, symShow.stderr).toBe(0);
    expect(symShow.stdout).toContain(elf.buildId);
  });
});
