// The trace -> symbol -> artifact -> provenance join end to end on real parts: a C program built
// here with gcc -g (build-id note), its provenance signed by an independent signer (Python's
// cryptography), artifact + symbol bundle (objcopy --only-keep-debug) registered through the
// intake sink into chdb and the CAS, a trace whose exception carries the frames the program itself
// printed (glibc backtrace), then GET /obs/trace/:id/provenance and `stella obs provenance`.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Long from 'long';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerProvenanceRoutes } from '../../api/provenance-routes.ts';
import { startApiServer, type RunningApi } from '../../api/server.ts';
import { FsBlobStore } from '../../lib/cas.ts';
import { encode, type KeyValue } from '../../lib/otlp/proto.ts';
import { BatchWriter, type Store } from '../../lib/store/index.ts';
import { artifactIntake, symbolsIntake } from '../../processors/intake/artifact-records.ts';
import { writeArtifactIntake } from '../../processors/intake/artifact-sink.ts';
import { elfBuildIdReader, validateArtifact, validateSymbolBundle, type IntakeEnvelopeVerifier } from '../../processors/intake/artifacts.ts';
import { obsProvenance, EXIT_GATE_FAILED, EXIT_MANIFEST_INCOMPLETE, replayManifestCli } from '../../processors/provenance/cli.ts';
import type { ProvenanceReport } from '../../processors/provenance/join.ts';
import { parseProvenanceSection, policyFor } from '../../processors/provenance/policy.ts';
import { ProvenanceService } from '../../processors/provenance/service.ts';
import { framesOfTrace } from '../../processors/provenance/frames-store.ts';
import { FRAME_ATTR } from '../../processors/timeline/frames.ts';
import { transformRecord } from '../../processors/timeline/transform.ts';
import { pythonSign, slsaStatement } from '../intake/sign.ts';
import { machOFromLlvm, pdbFromLlvm, yamlFat } from '../intake/symbol-fixtures.ts';
import { testVerifier } from '../intake/verifier.ts';
import { createEvidenceLinks } from '../../api/evidence-routes.ts';
import type { TimelineEventRow } from '../../lib/store/index.ts';
import { intakeEventRow } from '../../lib/intake/publish.ts';
import { leafHash } from '../../processors/evidence/hash.ts';
import { verifyInclusion } from '../../processors/evidence/merkle.ts';
import { parseCheckpoint } from '../../processors/evidence/note.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { startEvidenceRunner } from '../../processors/evidence/runner.ts';
import { eventMessageJson } from '../../processors/timeline/events.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { tempStore } from '../evidence/helpers.ts';
import { produce, sealedSize, tenantSigner, waitFor } from '../evidence/runner-support.ts';
import { hexId, nowNs, testStore, testTokens, TOKENS } from '../timeline/support.ts';
import { buildNativeFixture } from './native-fixture.ts';

const COMMIT = '3f2a'.repeat(10);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const str = (key: string, value: string): KeyValue => ({ key, value: { stringValue: value } });
const arr = (key: string, values: string[]): KeyValue => ({ key, value: { arrayValue: { values: values.map((v) => ({ stringValue: v })) } } });
const u64 = (n: bigint) => Long.fromString(n.toString(), true);

let dir: string;
let store: Store;
let writer: BatchWriter;
let api: RunningApi;
let service: ProvenanceService;
let verify: IntakeEnvelopeVerifier;
let buildId: string;
let artifactSha: string;
let bundleSha: string;
let libcBuildId: string;
/** The registrations' timeline events, as the evidence processor would receive them. */
let registrationEvents: TimelineEventRow[] = [];
let casStore: FsBlobStore;
/** Our binary's frames as the program printed them: module offset and ip. */
let ours: { ip: string; module_offset: string }[];

function traceWith(tenant: string, traceId: string, exceptions: { ips: string[]; offsets: string[]; buildIds: string[]; modules: string[]; pdbs?: string[]; dsyms?: string[] }[], resource: Record<string, string> = {}): Buffer {
  const t = nowNs();
  return Buffer.from(encode('traces', { resourceSpans: [{
    resource: { attributes: [str('service.name', 'native-svc'), str('tenant.id', tenant), str('telemetry.sdk.language', 'cpp'), ...Object.entries(resource).map(([k, v]) => str(k, v))] },
    scopeSpans: [{ scope: { name: 's' }, spans: [{ traceId: Buffer.from(traceId, 'hex'), spanId: Buffer.from(hexId(8), 'hex'), name: 'handle', kind: 2,
      startTimeUnixNano: u64(t), endTimeUnixNano: u64(t + 1000n), status: { code: 2 },
      events: exceptions.map((e, i) => ({ name: 'exception', timeUnixNano: u64(t + BigInt(i)), attributes: [str('exception.type', 'SIGABRT'),
        arr(FRAME_ATTR.ips, e.ips), arr(FRAME_ATTR.moduleOffsets, e.offsets), arr(FRAME_ATTR.buildIds, e.buildIds), arr(FRAME_ATTR.modules, e.modules),
        ...(e.pdbs ? [arr(FRAME_ATTR.pdbs, e.pdbs)] : []), ...(e.dsyms ? [arr(FRAME_ATTR.dsyms, e.dsyms)] : [])] })),
    }] }],
  }] }));
}

async function storeTrace(tenant: string, traceId: string, exceptions: Parameters<typeof traceWith>[2], resource: Record<string, string> = {}): Promise<void> {
  const out = transformRecord('traces', { topic: 's', partition: 0, offset: '0', key: tenant, value: traceWith(tenant, traceId, exceptions, resource), headers: { tenant } });
  await Promise.all([...out.rows].map(([table, rows]) => writer.write(table, rows)));
}

const oursException = () => ({ ips: ours.map((f) => f.ip), offsets: ours.map((f) => f.module_offset), buildIds: ours.map(() => buildId), modules: ours.map(() => '/srv/native-svc') });

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stella-join-'));
  const fx = buildNativeFixture(dir);
  const { binary, debug, printed } = fx;
  buildId = fx.buildId;
  libcBuildId = fx.libcBuildId;
  // The program's own backtrace: its frames in svc (module offsets = ELF addresses).
  ours = printed.frames.filter((f) => f.module.endsWith('svc') && f.module_offset !== '').slice(0, 3).map((f) => ({ ip: f.ip, module_offset: f.module_offset }));
  expect(ours).toHaveLength(3);

  store = await testStore();
  writer = new BatchWriter(store, { maxDelayMs: 5 });
  artifactSha = sha(binary);
  const signed = pythonSign(['acme'], [{ key: 'acme', keyid: 'acme-ci', payload: slsaStatement(artifactSha, { gitCommit: COMMIT, compiler: 'gcc 12.2.0', flags: ['-g', '-O0'] }) }]);
  verify = testVerifier({ acme: [{ keyid: 'acme-ci', publicKey: signed.keys.acme! }] });
  const a = validateArtifact('acme', { sha256: artifactSha, builder_commit: COMMIT, compiler: 'gcc 12.2.0', flags: ['-g', '-O0'], provenance: signed.envelopes[0] }, verify);
  if (!a.ok) throw new Error(a.reason);
  const cas = new FsBlobStore(path.join(dir, 'cas'));
  const ref = await cas.put('acme', debug);
  bundleSha = ref.digest.slice(7);
  const b = validateSymbolBundle('acme', { kind: 'elf', build_id: buildId, artifact_sha256: artifactSha }, debug, { sha256: artifactSha, attested: true }, elfBuildIdReader);
  if (!b.ok) throw new Error(b.reason);
  const ctx = { nowUnixNano: String(nowNs()), actor: 'ci', traceId: '' };
  const artIntake = artifactIntake(a.artifact, `cas://acme/${a.artifact.envelope_sha256}`, ctx);
  const symIntake = symbolsIntake(b.bundle, ref.uri, ctx);
  // Exactly the rows publishIntake puts on timeline_events for these registrations.
  registrationEvents = [artIntake.timelineEvent, symIntake.timelineEvent].map((e) => intakeEventRow('acme', e, 'intake'));
  casStore = cas;
  const dead = await writeArtifactIntake(writer, [{ key: 'acme', value: artIntake.value }],
    [{ key: 'acme', value: symIntake.value }], { verify, casGet: (t, d) => cas.get(t, d), readElfBuildId: elfBuildIdReader });
  expect(dead).toEqual([]);

  const section = parseProvenanceSection({ topFrames: 20, minCompleteness: 0.95, tenants: { globex: { minCompleteness: 0.5 } } });
  service = new ProvenanceService({ store, cas, policy: (t) => policyFor(section, t) });
  api = await startApiServer({ tokens: testTokens(), port: 0, register: [(r) => registerProvenanceRoutes(r, { service })] });
});

afterAll(async () => {
  await api?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const get = async (p: string, token: string) => {
  const res = await fetch(new URL(p, api.url), { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as ProvenanceReport & { error?: { code: string } } };
};

describe('GET /obs/trace/:trace_id/provenance', () => {
  it('joins 100% of the frames: ip -> symbol -> bundle -> artifact (commit, compiler, flags) -> DSSE provenance', async () => {
    const traceId = hexId(16);
    await storeTrace('acme', traceId, [oursException(), oursException()]);
    const r = await get(`/obs/trace/${traceId}/provenance`, TOKENS.acme);
    expect(r.status).toBe(200);
    expect(r.body.frames).toHaveLength(6);
    expect(r.body.frames.slice(0, 3).map((f) => f.symbol?.name)).toEqual(['crash_here', 'middle', 'main']);
    for (const f of r.body.frames) {
      expect(f.status).toBe('joined');
      expect(f.count).toBe(2);
      expect(f.symbol_bundle).toMatchObject({ sha256: bundleSha, kind: 'elf', cas_uri: `cas://acme/${bundleSha}` });
      expect(f.artifact).toMatchObject({ sha256: artifactSha, builder_commit: COMMIT, compiler: 'gcc 12.2.0', flags: ['-g', '-O0'] });
      expect(f.provenance).toMatchObject({ signer_keyid: 'acme-ci', predicate_type: 'https://slsa.dev/provenance/v1' });
      expect(f.provenance!.envelope_sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(f.provenance!.evidence_event_id).toMatch(/^[0-9a-f]{32}$/);
      expect(f.symbol_bundle!.evidence_event_id).toMatch(/^[0-9a-f]{32}$/);
    }
    expect(r.body.completeness).toMatchObject({ considered: 3, joined: 3, ratio: 1, gate: 'pass', failed: [] });
    // Resolution came from the cache the second time the same (bundle, address) was asked.
    expect(service.resolutions.hits).toBeGreaterThanOrEqual(3);
  });

  it('writes the resolved symbols back to frames.resolved_symbol once; later queries use them without a lookup', async () => {
    const traceId = hexId(16);
    await storeTrace('acme', traceId, [oursException()]);
    const first = await get(`/obs/trace/${traceId}/provenance`, TOKENS.acme);
    await service.flushWriteBacks();
    const written = service.writtenBack;
    const rows = await framesOfTrace(store, 'acme', traceId);
    expect(rows.map((f) => [f.resolved_symbol, f.resolved_version])).toEqual(first.body.frames.map((f) => [`${f.symbol!.name}+${f.symbol!.offset}`, 1]));
    expect(rows[0]!.resolved_symbol).toMatch(/^crash_here\+0x[0-9a-f]+$/);
    // The next query reads them: no lookup, the same answer, nothing written again.
    const stored0 = service.resolutions.stored;
    const lookups0 = service.resolutions.hits + service.resolutions.misses;
    const second = await get(`/obs/trace/${traceId}/provenance`, TOKENS.acme);
    await service.flushWriteBacks();
    expect(second.body).toEqual(first.body);
    expect(service.resolutions.stored - stored0).toBe(3);
    expect(service.resolutions.hits + service.resolutions.misses).toBe(lookups0);
    expect(service.writtenBack).toBe(written);
    // One visible row per frame (the version-1 row wins), also for the table as ClickHouse merges it.
    const n = await store.selectRows<{ n: string; v: string }>(`SELECT count() AS n, min(resolved_version) AS v FROM frames FINAL WHERE tenant_id = 'acme' AND trace_id = {t:String}`, { t: traceId });
    expect(n[0]).toMatchObject({ n: '3', v: 1 });
  });

  it('never writes back between two queries: the write-back waits for a pause, then fills frames.resolved_symbol by itself', async () => {
    const idle = new ProvenanceService({ store, cas: casStore, policy: () => ({ topFrames: 20, minCompleteness: 0.95 }), writeBack: { idleMs: 400 } });
    const [a, b] = [hexId(16), hexId(16)];
    await storeTrace('acme', a, [oursException()]);
    await storeTrace('acme', b, [oursException()]);
    const first = await idle.traceProvenance('acme', a);
    await idle.traceProvenance('acme', b);
    // chdb runs statements one at a time: a write-back started after the first query would have
    // run before these reads.
    expect((await framesOfTrace(store, 'acme', a)).map((f) => f.resolved_version)).toEqual([0, 0, 0]);
    expect(idle.writeBackPending).toBe(6);
    expect(idle.writtenBack).toBe(0);
    for (let i = 0; i < 100 && idle.writtenBack < 6; i++) await new Promise((r) => setTimeout(r, 50));
    expect(idle.writtenBack).toBe(6);
    const rows = await framesOfTrace(store, 'acme', a);
    expect(rows.map((f) => [f.resolved_symbol, f.resolved_version])).toEqual(first.frames.map((f) => [`${f.symbol!.name}+${f.symbol!.offset}`, 1]));
  });

  it('reads artifacts in the acting tenant only: a bundle pointing at an artifact only another tenant attested is ARTIFACT_UNATTESTED', async () => {
    // initech registers the same symbols under acme's artifact digest, without an attestation of its own.
    const ref = await casStore.put('initech', (await casStore.get('acme', `sha256:${bundleSha}`))!);
    await store.insertRows('symbol_bundles', [{ tenant_id: 'initech', symbol_key: buildId, kind: 'elf', bundle_sha256: ref.digest.slice(7), artifact_sha256: artifactSha,
      build_id: buildId, pdb_age: 0, size: 1, cas_uri: ref.uri, key_verified: 1, event_id: hexId(16), registered_at: '2026-01-01 00:00:00.000000000' }]);
    const traceId = hexId(16);
    await storeTrace('initech', traceId, [oursException()]);
    const r = await service.traceProvenance('initech', traceId);
    expect(r.frames.map((f) => [f.cause, f.symbol?.name, f.artifact])).toEqual([['ARTIFACT_UNATTESTED', 'crash_here', undefined], ['ARTIFACT_UNATTESTED', 'middle', undefined],
      ['ARTIFACT_UNATTESTED', 'main', undefined]]);
    expect(r.frames[0]!.symbol_bundle!.sha256).toBe(ref.digest.slice(7));
  });

  it('names the frames that fail and why, and the gate fails below the policy', async () => {
    const traceId = hexId(16);
    const libc = { ips: ['0x7f0000027249'], offsets: ['0x27249'], buildIds: [libcBuildId], modules: ['/lib/x86_64-linux-gnu/libc.so.6'] };
    const noBuildId = { ips: ['0x7f0000001000'], offsets: ['0x1000'], buildIds: [''], modules: ['/opt/vendor.so'] };
    const farAway = { ips: ['0x55550fffffff'], offsets: ['0xfffffff'], buildIds: [buildId], modules: ['/srv/native-svc'] };
    await storeTrace('acme', traceId, [oursException(), libc, noBuildId, farAway]);
    const r = await get(`/obs/trace/${traceId}/provenance`, TOKENS.acme);
    expect(r.status).toBe(200);
    const c = r.body.completeness;
    expect(c).toMatchObject({ considered: 6, joined: 3, ratio: 0.5, gate: 'fail' });
    expect(Object.fromEntries(c.failed.map((f) => [f.cause, f.key]))).toEqual({
      SYMBOLS_MISSING: `${libcBuildId}@0x27249`, NO_BUILD_ID: '/opt/vendor.so@0x1000', SYMBOL_NOT_FOUND: `${buildId}@0xfffffff`,
    });
    // The CLI prints the failures and exits with the gate's code.
    const cli = await obsProvenance({ baseUrl: api.url, token: TOKENS.acme, traceId });
    expect(cli.exitCode).toBe(EXIT_GATE_FAILED);
    expect(cli.stdout).toMatch(/3\/6 .* FAIL/);
    expect(cli.stdout).toContain(`SYMBOLS_MISSING`);
    expect(cli.stdout).toMatch(/crash_here\+0x[0-9a-f]+/);
  });

  it('is tenant-scoped: another tenant gets 404 for the trace, and a token without obs:read 403', async () => {
    const traceId = hexId(16);
    await storeTrace('acme', traceId, [oursException()]);
    expect((await get(`/obs/trace/${traceId}/provenance`, TOKENS.globex)).status).toBe(404);
    expect((await get(`/obs/trace/${traceId}/provenance`, TOKENS.acmeIngest)).status).toBe(403);
    expect((await get(`/obs/trace/not-a-trace/provenance`, TOKENS.acme)).status).toBe(400);
    // The same frames stored for globex (same build-id) do not reach acme's bundle or artifact.
    await storeTrace('globex', traceId, [oursException()]);
    const g = await get(`/obs/trace/${traceId}/provenance`, TOKENS.globex);
    expect(g.status).toBe(200);
    expect(g.body.frames.every((f) => f.status === 'failed' && f.cause === 'SYMBOLS_MISSING' && !f.artifact)).toBe(true);
    expect(g.body.completeness).toMatchObject({ gate: 'fail', min: 0.5 });
    const cli = await obsProvenance({ baseUrl: api.url, token: TOKENS.acme, traceId, format: 'json' });
    expect(cli.exitCode).toBe(0);
    expect(JSON.parse(cli.stdout).completeness.gate).toBe('pass');
  });

  it('links each registration to its sealed evidence entry, whose inclusion proof verifies against the signed checkpoint', async () => {
    const evidence = tempStore();
    const topic = uniq('prov_timeline');
    const clean = uniq('prov_clean');
    await createTopics([topic, clean], 1);
    const runner = await startEvidenceRunner({ kafka: testKafka('prov-evidence'), storeRoot: evidence.root, store, signer: tenantSigner,
      topics: { timelineEvents: topic, clean: [clean] }, groupId: uniq('prov-evidence'), sealEverySeconds: 0.2, sealEveryEntries: 10 });
    try {
      await produce(topic, registrationEvents.map((e) => ({ tenant: 'acme', value: eventMessageJson(e) })));
      await waitFor('registrations sealed', async () => (await sealedSize(evidence, 'acme')) >= 2);
    } finally { await runner.stop(); }
    const sealedService = new ProvenanceService({ store, cas: casStore, policy: () => ({ topFrames: 20, minCompleteness: 0.95 }), evidenceLinks: createEvidenceLinks(evidence) });
    const traceId = hexId(16);
    await storeTrace('acme', traceId, [oursException()]);
    const r = await sealedService.traceProvenance('acme', traceId);
    const f = r.frames[0]!;
    expect(f.status).toBe('joined');
    const reader = new LogReader(evidence, 'acme');
    const latest = (await reader.latest())!;
    const cp = parseCheckpoint(latest.note.slice(0, latest.note.indexOf('\n\n') + 1));
    for (const [link, eventId] of [[f.provenance!.evidence, f.provenance!.evidence_event_id], [f.symbol_bundle!.evidence, f.symbol_bundle!.evidence_event_id]] as const) {
      expect(link).toMatchObject({ status: 'sealed', checkpoint: '/evidence/acme/checkpoint', inclusion_proof: `/evidence/proof/inclusion?event_id=${eventId}` });
      const index = Number((link as { index: string }).index);
      const entry = await reader.entry(index, cp.size);
      expect(JSON.parse(Buffer.from(entry).toString()).event_id).toBe(eventId);
      expect(verifyInclusion(leafHash(entry), index, cp.size, await reader.inclusionProof(index, cp.size), cp.root)).toBe(true);
    }
  });

  it('builds the replay manifest from the join and the resource, names what is missing, stores it once', async () => {
    const traceId = hexId(16);
    const image = 'ab'.repeat(32);
    await storeTrace('acme', traceId, [oursException()], { 'os.type': 'linux', 'os.version': '6.1.0-18-amd64', 'container.image.id': `sha256:${image}`,
      'stella.replay.harness_version': 'harness 2.3', 'stella.replay.seed': '42', 'stella.replay.run_instructions': './svc' });
    const cli = await replayManifestCli({ baseUrl: api.url, token: TOKENS.acme, traceId });
    expect(cli.exitCode).toBe(EXIT_MANIFEST_INCOMPLETE);
    const m = JSON.parse(cli.stdout) as Record<string, unknown> & { missing: { field: string }[] };
    expect(m).toMatchObject({ trace_id: traceId, os: 'linux', kernel_version: '6.1.0-18-amd64', harness_version: 'harness 2.3', seed: '42', run_instructions: './svc',
      sandbox_image_sha256: image, compiler: 'gcc 12.2.0', compiler_flags: ['-g', '-O0'], build_id: buildId, symbol_bundle_sha256: bundleSha, artifact_sha256: artifactSha,
      dsse_envelope: { signer_keyid: 'acme-ci' }, libc_version: null, rekor_tile_ref: null });
    expect(m.verifier_version).toMatch(/^stella-telemetry \d/);
    // Not invented: named, with the attribute (or evidence state) that would fill them.
    expect(m.missing.map((x) => x.field).sort()).toEqual(['libc_version', 'rekor_tile_ref']);
    expect(cli.stderr).toContain('stella.replay.libc_version');
    // Same inputs, same manifest: one row however often it is asked for.
    await replayManifestCli({ baseUrl: api.url, token: TOKENS.acme, traceId });
    const rows = await store.selectRows<{ n: string; sha: string }>('SELECT count() AS n, any(manifest_sha256) AS sha FROM replays FINAL WHERE tenant_id = {t:String} AND trace_id = {id:String}', { t: 'acme', id: traceId });
    expect(Number(rows[0]!.n)).toBe(1);
    expect(cli.stderr).toContain(`sha256:${rows[0]!.sha}`);
    expect((await replayManifestCli({ baseUrl: api.url, token: TOKENS.globex, traceId })).exitCode).toBe(1);
  });

  it('joins PDB and dSYM frames to their bundles (keys read from the bytes) and names a PDB age mismatch', async () => {
    // A PDB (llvm-pdbutil yaml2pdb: info age 7, DBI age 3) and a universal dSYM (yaml2obj), both of the attested artifact.
    const pdb = pdbFromLlvm({ guid: 'C0FFEE00-1234-5678-9ABC-DEF012345678', infoAge: 7, dbiAge: 3 }).bytes;
    const dsym = machOFromLlvm(yamlFat([{ cputype: 0x01000007, uuid: '11111111-2222-3333-4444-555555555555' }, { cputype: 0x0100000c, uuid: 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE' }])).bytes;
    const origin = { sha256: artifactSha, attested: true };
    const p = validateSymbolBundle('acme', { kind: 'pdb', pdb_guid: 'C0FFEE00-1234-5678-9ABC-DEF012345678', pdb_age: '3', artifact_sha256: artifactSha }, pdb, origin, elfBuildIdReader);
    const d = validateSymbolBundle('acme', { kind: 'dsym', dsym_uuid: 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE', artifact_sha256: artifactSha }, dsym, origin, elfBuildIdReader);
    if (!p.ok || !d.ok) throw new Error('bundle refused');
    const ctx = { nowUnixNano: String(nowNs()), actor: 'ci', traceId: '' };
    const msgs = [];
    for (const [b, bytes] of [[p.bundle, pdb], [d.bundle, dsym]] as const) {
      const ref = await casStore.put('acme', bytes);
      msgs.push({ key: 'acme', value: symbolsIntake(b, ref.uri, ctx).value });
    }
    expect(await writeArtifactIntake(writer, [], msgs, { verify, casGet: (t, dg) => casStore.get(t, dg), readElfBuildId: elfBuildIdReader })).toEqual([]);
    const traceId = hexId(16);
    await storeTrace('acme', traceId, [{ ips: ['0x140001000', '0x140002000', '0x100003f00'], offsets: ['0x1000', '0x2000', '0x3f00'], buildIds: ['', '', ''],
      modules: ['C:\\svc\\svc.exe', 'C:\\svc\\svc.exe', '/Applications/Svc.app/Contents/MacOS/Svc'],
      pdbs: ['{C0FFEE00-1234-5678-9ABC-DEF012345678}+3', '{C0FFEE00-1234-5678-9ABC-DEF012345678}+7', ''],
      dsyms: ['', '', 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE'] }]);
    const r = await get(`/obs/trace/${traceId}/provenance`, TOKENS.acme);
    expect(r.status).toBe(200);
    expect(r.body.frames.map((f) => [f.status, f.cause ?? ''])).toEqual([['joined', ''], ['failed', 'PDB_AGE_MISMATCH'], ['joined', '']]);
    expect(r.body.frames[0]).toMatchObject({ symbol_bundle: { sha256: p.bundle.bundle_sha256, kind: 'pdb' }, artifact: { sha256: artifactSha, builder_commit: COMMIT } });
    expect(r.body.frames[0]!.symbol_unresolved).toMatch(/not read/);
    expect(r.body.frames[1]!.detail).toContain('age is 7, the registered bundles have age 3');
    expect(r.body.frames[2]).toMatchObject({ symbol_bundle: { sha256: d.bundle.bundle_sha256, kind: 'dsym' }, provenance: { signer_keyid: 'acme-ci' } });
    expect(r.body.completeness).toMatchObject({ considered: 3, joined: 2 });
    // Another tenant with the same keys reaches nothing of acme's.
    await storeTrace('globex', traceId, [{ ips: ['0x140001000'], offsets: ['0x1000'], buildIds: [''], modules: ['svc.exe'], pdbs: ['{C0FFEE00-1234-5678-9ABC-DEF012345678}+7'] }]);
    expect((await get(`/obs/trace/${traceId}/provenance`, TOKENS.globex)).body.frames.map((f) => f.cause)).toEqual(['SYMBOLS_MISSING']);
  });

  it('drops to ARTIFACT_UNATTESTED when the attestation is gone', async () => {
    const traceId = hexId(16);
    await storeTrace('acme', traceId, [oursException()]);
    expect((await get(`/obs/trace/${traceId}/provenance`, TOKENS.acme)).body.completeness.gate).toBe('pass');
    await store.command(`DELETE FROM artifacts WHERE tenant_id = 'acme' AND sha256 = '${artifactSha}'`);
    const r = await get(`/obs/trace/${traceId}/provenance`, TOKENS.acme);
    expect(r.body.completeness).toMatchObject({ joined: 0, gate: 'fail' });
    expect(r.body.frames.map((f) => f.cause)).toEqual(['ARTIFACT_UNATTESTED', 'ARTIFACT_UNATTESTED', 'ARTIFACT_UNATTESTED']);
    // Still resolved to symbols: the chain breaks at the artifact, and says so.
    expect(r.body.frames[0]!.symbol?.name).toBe('crash_here');
    expect(r.body.frames[0]!.artifact).toBeUndefined();
  });
});
