// Audit bundles end to end on real parts: a C program built here with gcc -g (build-id note), its
// provenance signed by an independent signer (Python's cryptography), artifact + symbol bundle
// registered through the intake sink (chdb + CAS) with their registration events sealed by the
// real evidence runner on a real broker, and a trace whose exception frames point into the
// program sent as a clean span record (stored in the CAS, sealed, trace-indexed). The real API
// builds `stella forensic snapshot create --scope trace --with-provenance`; the real `stella`
// CLI verifies it in an empty directory holding only the bundle and the trust root.
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Long from 'long';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEvidenceLinks, registerEvidenceRoutes } from '../../api/evidence-routes.ts';
import { FsBlobStore } from '../../lib/cas.ts';
import { intakeEventRow } from '../../lib/intake/publish.ts';
import { H } from '../../lib/kafka/topics.ts';
import { encode, type KeyValue } from '../../lib/otlp/proto.ts';
import { BatchWriter, type Store } from '../../lib/store/index.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { verifyBundle, type Manifest } from '../../processors/evidence/bundle.ts';
import { causeExitCode } from '../../processors/evidence/causes.ts';
import { fromB64Strict, leafHash } from '../../processors/evidence/hash.ts';
import { canonicalBytes } from '../../processors/evidence/jcs.ts';
import { verifyInclusion } from '../../processors/evidence/merkle.ts';
import { startEvidenceRunner } from '../../processors/evidence/runner.ts';
import { snapshotCreate } from '../../processors/evidence/snapshot-cli.ts';
import { formatSpine, type Spine } from '../../processors/evidence/spine.ts';
import { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { gunzip, gzipDeterministic, readTar, writeTar } from '../../processors/evidence/tar.ts';
import { traceRecordIndices } from '../../processors/evidence/trace-index.ts';
import { exportTrustRoot, parseTrustRootText, serializeTrustRoot, withIntakePins, type TrustRoot } from '../../processors/evidence/trust-root.ts';
import { artifactIntake, symbolsIntake } from '../../processors/intake/artifact-records.ts';
import { writeArtifactIntake } from '../../processors/intake/artifact-sink.ts';
import { elfBuildIdReader, validateArtifact, validateSymbolBundle } from '../../processors/intake/artifacts.ts';
import { P, type SymbolRef } from '../../processors/provenance/audit-bundle.ts';
import type { ProvenanceReport } from '../../processors/provenance/join.ts';
import { ProvenanceService } from '../../processors/provenance/service.ts';
import { eventMessageJson } from '../../processors/timeline/events.ts';
import { FRAME_ATTR } from '../../processors/timeline/frames.ts';
import { transformRecord } from '../../processors/timeline/transform.ts';
import { pythonSign, slsaStatement } from '../intake/sign.ts';
import { testVerifier } from '../intake/verifier.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { startHarness } from '../evidence/api-harness.ts';
import { tempStore } from '../evidence/helpers.ts';
import { produce, sealedSize, tenantSigner, testEvent, waitFor } from '../evidence/runner-support.ts';
import { hexId, nowNs, testStore } from '../timeline/support.ts';
import { buildNativeFixture } from './native-fixture.ts';

const COMMIT = '5e1d'.repeat(10);
const TOKEN = 'audit-acme';
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const str = (key: string, value: string): KeyValue => ({ key, value: { stringValue: value } });
const arr = (key: string, values: string[]): KeyValue => ({ key, value: { arrayValue: { values: values.map((v) => ({ stringValue: v })) } } });
const u64 = (n: bigint) => Long.fromString(n.toString(), true);
const root = path.resolve(import.meta.dirname, '../..');
const tsxLoader = import.meta.resolve('tsx');

const dirs: string[] = [];
const stops: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const s of stops.reverse()) await s().catch(() => undefined);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = (p: string) => { const d = mkdtempSync(path.join(os.tmpdir(), p)); dirs.push(d); return d; };

type Exception = { ips: string[]; offsets: string[]; buildIds: string[]; modules: string[] };
function traceRecord(tenant: string, traceId: string, exceptions: Exception[], t: bigint): Buffer {
  return Buffer.from(encode('traces', { resourceSpans: [{
    resource: { attributes: [str('service.name', 'native-svc'), str('tenant.id', tenant), str('telemetry.sdk.language', 'cpp'), str('os.type', 'linux'),
      str('stella.replay.seed', '7')] },
    scopeSpans: [{ scope: { name: 's' }, spans: [{ traceId: Buffer.from(traceId, 'hex'), spanId: Buffer.from('00000000000000a1', 'hex'), name: 'handle', kind: 2,
      startTimeUnixNano: u64(t), endTimeUnixNano: u64(t + 1000n), status: { code: 2 },
      events: exceptions.map((e, i) => ({ name: 'exception', timeUnixNano: u64(t + BigInt(i)), attributes: [str('exception.type', 'SIGABRT'),
        arr(FRAME_ATTR.ips, e.ips), arr(FRAME_ATTR.moduleOffsets, e.offsets), arr(FRAME_ATTR.buildIds, e.buildIds), arr(FRAME_ATTR.modules, e.modules)] })),
    }] }],
  }] }));
}

/** `stella <args>` in `cwd` with nothing but PATH and HOME (and `extraEnv`): no API, no config, no data directory. */
function stella(args: string[], cwd: string, extraEnv: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', tsxLoader, path.join(root, 'cli/stella.ts'), ...args], { cwd, env: { PATH: process.env.PATH ?? '', HOME: cwd, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
    p.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('error', reject);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/** Rewrite a bundle as a careful forger would: change files, then fix every digest the manifest lists. */
function edit(bundle: Buffer, fn: (files: Map<string, Uint8Array>, m: Manifest) => void): Buffer {
  const files = new Map(readTar(gunzip(bundle)).map((f) => [f.path, f.bytes]));
  const m = JSON.parse(Buffer.from(files.get('manifest.json')!).toString('utf8')) as Manifest;
  fn(files, m);
  if (m.provenance) m.provenance.files = m.provenance.files.map((f) => ({ path: f.path, sha256: sha256Hex(files.get(f.path)!) }));
  if (m.tiles) m.tiles = m.tiles.map((t) => ({ path: t.path, sha256: files.has(t.path) ? sha256Hex(files.get(t.path)!) : t.sha256 }));
  files.set('manifest.json', canonicalBytes(m));
  return gzipDeterministic(writeTar([...files].sort(([a], [b]) => (a < b ? -1 : 1)).map(([p, bytes]) => ({ path: p, bytes }))));
}
const readJson = <T>(files: Map<string, Uint8Array>, p: string): T => JSON.parse(Buffer.from(files.get(p)!).toString('utf8')) as T;
const filesOf = (bundle: Buffer) => new Map(readTar(gunzip(bundle)).map((f) => [f.path, f.bytes]));

let store: Store;
let evidence: FsEvidenceStore;
let api: { url: string };
let acmeRoot: TrustRoot;
let globexRoot: TrustRoot;
let intakeKeys: { keyid: string; publicKey: string }[];
let buildId: string;
let bundleSha: string;
let artifactSha: string;
let full: string;     // trace whose frames all join
let partial: string;  // trace with one libc frame (no symbols registered)
let bundle: Buffer;   // the audit bundle of `full`
let exportedAcmeRoot: string; // what `stella forensic trust export --tenant acme` printed

beforeAll(async () => {
  const dir = tmp('stella-audit-');
  const fx = buildNativeFixture(dir);
  const { binary, debug, libcBuildId, printed } = fx;
  buildId = fx.buildId;
  const ours = printed.frames.filter((f) => f.module.endsWith('svc') && f.module_offset !== '').slice(0, 3);
  expect(ours).toHaveLength(3);
  const oursException: Exception = { ips: ours.map((f) => f.ip), offsets: ours.map((f) => f.module_offset), buildIds: ours.map(() => buildId), modules: ours.map(() => '/srv/native-svc') };
  const libc: Exception = { ips: ['0x7f0000027249'], offsets: ['0x27249'], buildIds: [libcBuildId], modules: ['/lib/x86_64-linux-gnu/libc.so.6'] };

  // Intake: provenance signed by Python, artifact + symbols through the sink into chdb and the CAS.
  store = await testStore();
  const writer = new BatchWriter(store, { maxDelayMs: 5 });
  artifactSha = sha(binary);
  const signed = pythonSign(['acme'], [{ key: 'acme', keyid: 'acme-ci', payload: slsaStatement(artifactSha, { gitCommit: COMMIT, compiler: 'gcc 12.2.0', flags: ['-g', '-O0'] }) }]);
  intakeKeys = [{ keyid: 'acme-ci', publicKey: signed.keys.acme! }];
  const verify = testVerifier({ acme: intakeKeys });
  const a = validateArtifact('acme', { sha256: artifactSha, builder_commit: COMMIT, compiler: 'gcc 12.2.0', flags: ['-g', '-O0'], provenance: signed.envelopes[0] }, verify);
  if (!a.ok) throw new Error(a.message);
  const cas = new FsBlobStore(tmp('stella-audit-cas-'));
  const ref = await cas.put('acme', debug);
  bundleSha = ref.digest.slice(7);
  const b = validateSymbolBundle('acme', { kind: 'elf', build_id: buildId, artifact_sha256: artifactSha }, debug, { sha256: artifactSha, attested: true }, elfBuildIdReader);
  if (!b.ok) throw new Error(b.message);
  const ctx = { nowUnixNano: '1795436000000000000', actor: 'ci', traceId: '' };
  const artIntake = artifactIntake(a.artifact, `cas://acme/${a.artifact.envelope_sha256}`, ctx);
  const symIntake = symbolsIntake(b.bundle, ref.uri, ctx);
  expect(await writeArtifactIntake(writer, [{ key: 'acme', value: artIntake.value }], [{ key: 'acme', value: symIntake.value }],
    { verify, casGet: (t, d) => cas.get(t, d), readElfBuildId: elfBuildIdReader })).toEqual([]);

  // The evidence runner on the real broker seals the registrations and the traces' clean records.
  evidence = tempStore();
  const topics = { timeline: uniq('audit_timeline'), spans: uniq('audit_clean_spans') };
  await createTopics(Object.values(topics), 1);
  const runner = await startEvidenceRunner({ kafka: testKafka('audit-evidence'), storeRoot: evidence.root, store, signer: tenantSigner,
    topics: { timelineEvents: topics.timeline, clean: [topics.spans] }, groupId: uniq('audit-evidence'), sealEverySeconds: 0.2, sealEveryEntries: 100,
    records: cas, recordSignals: { [topics.spans]: 'traces' } });
  stops.push(() => runner.stop());
  await produce(topics.timeline, [artIntake.timelineEvent, symIntake.timelineEvent].map((e) => ({ tenant: 'acme', value: eventMessageJson(intakeEventRow('acme', e, 'intake')) }))
    .concat([{ tenant: 'globex', value: JSON.stringify(testEvent('globex', 1)) }]));
  full = hexId(16);
  partial = hexId(16);
  const t0 = nowNs();
  const records = [traceRecord('acme', full, [oursException, oursException], t0), traceRecord('acme', partial, [oursException, libc], t0 + 10n)];
  const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (const value of records) {
    await producer.send({ topic: topics.spans, acks: -1, messages: [{ key: 'acme', value, headers: { [H.tenant]: 'acme', [H.contentSha256]: sha256Hex(value),
      [H.rawContentSha256]: 'ab'.repeat(32), [H.scrubPolicy]: `sha256:${'cd'.repeat(32)}` } }] });
  }
  await producer.disconnect();
  // The spans as the timeline processor stores them (the replay manifest reads their resource).
  for (const value of records) {
    const out = transformRecord('traces', { topic: topics.spans, partition: 0, offset: '0', key: 'acme', value, headers: { tenant: 'acme' } });
    await writer.write('otel_traces', out.rows.get('otel_traces')!);
  }
  await waitFor('registrations and records sealed and indexed', async () => {
    const n = await sealedSize(evidence, 'acme');
    return n === 4 && (await sealedSize(evidence, 'globex')) === 1 && (await traceRecordIndices(evidence, 'acme', full, n)).length === 1
      && (await traceRecordIndices(evidence, 'acme', partial, n)).length === 1;
  });
  await runner.stop();

  const service = new ProvenanceService({ store, cas, policy: () => ({ topFrames: 20, minCompleteness: 0.95 }), evidenceLinks: createEvidenceLinks(evidence) });
  const trustPolicy = (t: string) => withIntakePins({}, t === 'acme' ? intakeKeys : undefined, { topFrames: 20, minCompleteness: 0.95 });
  const tokens = new TokenRegistry([{ id: 'acme', tokens: [{ sha256: sha256Hex(TOKEN), scopes: ['evidence:read', 'evidence:create', 'evidence:export', 'obs:read'] }] }]);
  const cases = new FsEvidenceStore(tmp('stella-audit-cases-'));
  const h = await startHarness(tokens, [(r) => registerEvidenceRoutes(r, { evidence, cases, store, records: cas, trustPolicy, provenance: { service, store, cas } })]);
  stops.push(() => h.close());
  api = h;
  acmeRoot = (await exportTrustRoot(evidence, 'acme', trustPolicy('acme')))!;
  globexRoot = (await exportTrustRoot(evidence, 'globex', trustPolicy('globex')))!;
}, 120_000);

const snapshot = async (traceId: string, out: string, withSymbolBytes = false) => {
  const r = await snapshotCreate({ baseUrl: api.url, token: TOKEN, caseId: 'AUDIT-1', scope: 'trace', id: traceId, out, withProvenance: true, withSymbolBytes });
  expect(r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
  return readFileSync(out);
};

describe('stella forensic snapshot create --scope trace --with-provenance', () => {
  it('is content-addressed and byte-identical when built twice; it holds the frames, join, symbol refs, envelope, replay manifest and the registrations\' proofs', async () => {
    const d = tmp('stella-audit-out-');
    bundle = await snapshot(full, path.join(d, 'a.tar.gz'));
    const again = await snapshot(full, path.join(d, 'b.tar.gz'));
    expect(again.equals(bundle)).toBe(true);
    const files = filesOf(bundle);
    const m = readJson<Manifest>(files, 'manifest.json');
    expect(m.provenance).toMatchObject({ trace_id: full, with_symbol_bytes: false });
    const report = readJson<ProvenanceReport>(files, P.join);
    expect(report.completeness).toMatchObject({ considered: 3, joined: 3, ratio: 1 });
    expect(report.frames.map((f) => f.status)).toEqual(Array(6).fill('joined'));
    expect(readJson<unknown[]>(files, P.frames)).toHaveLength(6);
    const [ref] = readJson<SymbolRef[]>(files, P.symbols);
    expect(ref).toMatchObject({ bundle_sha256: bundleSha, build_id: buildId, artifact_sha256: artifactSha });
    const envelopePath = [...files.keys()].find((p) => p.startsWith('provenance/envelopes/'))!;
    expect(sha256Hex(files.get(envelopePath)!)).toBe(report.frames[0]!.provenance!.envelope_sha256);
    expect(readJson<{ build_id: string; artifact_sha256: string }>(files, P.replay)).toMatchObject({ build_id: buildId, artifact_sha256: artifactSha, trace_id: full });
    // The registrations are case entries with inclusion proofs, next to the trace's clean record.
    const regs = m.entries.filter((e) => files.get(`entries/${e.index}.json`)!.toString().includes('"kind":"'));
    expect(regs.map((e) => JSON.parse(Buffer.from(files.get(`entries/${e.index}.json`)!).toString()).kind).sort()).toEqual(['artifact.registered', 'symbols.registered']);
    for (const e of m.entries) expect(files.has(`proofs/${e.index}.tlog-proof`)).toBe(true);
    expect(m.records).toHaveLength(1);
    // The log's C2SP hash tiles at the bundle's size, byte for byte as the API serves them (here one partial tile: the log has 4 entries).
    expect(m.tree_size).toBe(4);
    expect(m.tiles!.map((t) => t.path)).toEqual(['tile/0/000.p/4']);
    for (const t of m.tiles!) {
      const served = await fetch(`${api.url}/evidence/acme/${t.path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(served.status).toBe(200);
      expect(Buffer.from(await served.arrayBuffer()).equals(Buffer.from(files.get(t.path)!))).toBe(true);
    }
  });

  it('`stella forensic trust export` pins the configured intake keys and the completeness policy (the root a verifier pins)', async () => {
    // The operator's host: its data directory holds the evidence logs, its config the tenants' intake keys.
    const dataDir = tmp('stella-audit-host-');
    mkdirSync(path.join(dataDir, 'evidence'));
    symlinkSync(evidence.root, path.join(dataDir, 'evidence', 'logs'));
    writeFileSync(path.join(dataDir, 'stella.json'), JSON.stringify({ intake: { trust: { acme: { keys: intakeKeys } } }, provenance: { minCompleteness: 0.9 } }));
    const env = { STELLA_DATA_DIR: dataDir, STELLA_CONFIG: path.join(dataDir, 'stella.json'), STELLA_LOG_LEVEL: 'silent' };
    const [a, g] = await Promise.all([stella(['forensic', 'trust', 'export', '--tenant', 'acme'], dataDir, env), stella(['forensic', 'trust', 'export', '--tenant', 'globex'], dataDir, env)]);
    expect(a.code).toBe(0);
    const exported = parseTrustRootText(a.stdout);
    expect(exported.intake_keys).toEqual([{ keyid: 'acme-ci', public_key: intakeKeys[0]!.publicKey }]);
    expect(exported.provenance_policy).toEqual({ top_frames: 20, min_completeness: 0.9 });
    expect({ ...exported, provenance_policy: acmeRoot.provenance_policy }).toEqual(acmeRoot);
    // A tenant without intake keys: its root is as before (no intake fields).
    expect(g.code).toBe(0);
    expect(g.stdout).not.toContain('intake_keys');
    exportedAcmeRoot = a.stdout;
  }, 60_000);

  it('verifies offline with `stella forensic verify` in an empty directory holding only the bundle and the trust root; `proof verify` and `proof spine` too', async () => {
    const d = tmp('stella-audit-empty-');
    writeFileSync(path.join(d, 'b.tar.gz'), bundle);
    writeFileSync(path.join(d, 'trust.json'), exportedAcmeRoot);
    const [v, pv, sp] = await Promise.all([
      stella(['forensic', 'verify', 'b.tar.gz', '--trust', 'trust.json', '--output', 'json'], d),
      stella(['proof', 'verify', '--bundle', 'b.tar.gz', '--trust', 'trust.json'], d),
      stella(['proof', 'spine', '--bundle', 'b.tar.gz', '--output', 'json'], d),
    ]);
    expect(v.stderr).toBe('');
    expect(v.code).toBe(0);
    const r = JSON.parse(v.stdout) as { ok: boolean; provenance: { frames: number; joined: number; considered: number; ratio: number; envelopes: number } };
    expect(r).toMatchObject({ ok: true, provenance: { frames: 6, joined: 3, considered: 3, ratio: 1, envelopes: 1 } });
    expect(pv.code).toBe(0);
    expect(pv.stdout).toMatch(/^OK: bundle verified/);
    expect(sp.code).toBe(0);
    // The spine's inclusion paths lead from each entry to the newest checkpoint's root.
    const spine = JSON.parse(sp.stdout) as Spine;
    const m = readJson<Manifest>(filesOf(bundle), 'manifest.json');
    expect(spine.tree_size).toBe(m.tree_size);
    expect(spine.inclusion.map((e) => e.index)).toEqual(m.entries.map((e) => e.index));
    for (const e of spine.inclusion) {
      expect(verifyInclusion(Buffer.from(e.leaf_hash, 'hex'), e.index, spine.tree_size, e.path.map((h) => Buffer.from(h, 'hex')), Buffer.from(spine.root, 'hex'))).toBe(true);
    }
    expect(spine.checkpoints.find((c) => c.size === spine.tree_size)!.signatures[0]!.name).toBe(acmeRoot.origin);
    expect(formatSpine(spine)).toContain(`tree size ${m.tree_size}, root ${spine.root}`);
    // Nothing was written next to them.
    expect(readdirSync(d).sort()).toEqual(['b.tar.gz', 'trust.json']);
  }, 60_000);

  it('names each tamper through the CLI: a frame, a symbol ref, a provenance envelope, a proof hash', async () => {
    const files = filesOf(bundle);
    const m = readJson<Manifest>(files, 'manifest.json');
    const artifactEntry = m.entries.find((e) => Buffer.from(files.get(`entries/${e.index}.json`)!).toString().includes('"kind":"artifact.registered"'))!.index;
    const tampered: Record<string, Buffer> = {
      frame: edit(bundle, (f) => {
        const frames = readJson<{ module_offset: string }[]>(f, P.frames);
        frames[0]!.module_offset = String(BigInt(frames[0]!.module_offset) + 4n);
        f.set(P.frames, canonicalBytes(frames));
      }),
      symbolRef: edit(bundle, (f) => {
        const refs = readJson<SymbolRef[]>(f, P.symbols);
        refs[0]!.build_id = 'ff'.repeat(20);
        f.set(P.symbols, canonicalBytes(refs));
      }),
      envelope: edit(bundle, (f) => {
        const p = [...f.keys()].find((x) => x.startsWith('provenance/envelopes/'))!;
        const env = readJson<{ payload: string }>(f, p);
        env.payload = Buffer.from(Buffer.from(env.payload, 'base64').toString('utf8').replace('builders/linux', 'builders/evil')).toString('base64');
        f.set(p, canonicalBytes(env));
      }),
      proof: edit(bundle, (f) => {
        const p = `proofs/${artifactEntry}.tlog-proof`;
        const lines = Buffer.from(f.get(p)!).toString('utf8').split('\n');
        const h = fromB64Strict(lines[2]!)!;
        h[0] = h[0]! ^ 1;
        lines[2] = h.toString('base64');
        f.set(p, Buffer.from(lines.join('\n')));
      }),
    };
    const d = tmp('stella-audit-tamper-');
    writeFileSync(path.join(d, 'trust.json'), serializeTrustRoot(acmeRoot));
    for (const [k, b] of Object.entries(tampered)) writeFileSync(path.join(d, `${k}.tar.gz`), b);
    const want = { frame: 'FRAME_MISMATCH', symbolRef: 'SYMBOL_REF_MISMATCH', envelope: 'PROVENANCE_SIGNATURE_INVALID', proof: 'MERKLE_MISMATCH' } as const;
    const results = await Promise.all(Object.keys(tampered).map((k) => stella(['forensic', 'verify', `${k}.tar.gz`, '--trust', 'trust.json'], d)));
    Object.keys(tampered).forEach((k, i) => {
      const cause = want[k as keyof typeof want];
      expect({ k, code: results[i]!.code, out: results[i]!.stdout.split(':')[1]?.trim() }).toEqual({ k, code: causeExitCode[cause], out: cause });
    });
  }, 60_000);

  it('names each tile tamper TILE_MISMATCH (exit 39): a flipped byte (through the CLI), a removed tile, all tiles stripped, a tile from another tree size', async () => {
    const tampered: Record<string, Buffer> = {
      tileFlipped: edit(bundle, (f) => {
        const t = Buffer.from(f.get('tile/0/000.p/4')!);
        t[70] = t[70]! ^ 1;
        f.set('tile/0/000.p/4', t);
      }),
      // The tile gone, and the manifest no longer listing it: the verifier knows which tiles the proofs need.
      tileRemoved: edit(bundle, (f, man) => { f.delete('tile/0/000.p/4'); man.tiles = man.tiles!.filter((t) => t.path !== 'tile/0/000.p/4'); }),
      tilesStripped: edit(bundle, (f, man) => { f.delete('tile/0/000.p/4'); delete man.tiles; }),
      // The log's tile at size 3 (its first three hashes), listed instead of the size-4 one.
      tileOtherSize: edit(bundle, (f, man) => {
        f.set('tile/0/000.p/3', Buffer.from(f.get('tile/0/000.p/4')!).subarray(0, 96));
        f.delete('tile/0/000.p/4');
        man.tiles = [{ path: 'tile/0/000.p/3', sha256: '' }];
      }),
    };
    const d = tmp('stella-audit-tiles-');
    writeFileSync(path.join(d, 'trust.json'), serializeTrustRoot(acmeRoot));
    writeFileSync(path.join(d, 'tile.tar.gz'), tampered.tileFlipped!);
    const cli = await stella(['forensic', 'verify', 'tile.tar.gz', '--trust', 'trust.json'], d);
    expect({ code: cli.code, out: cli.stdout.split(':').slice(0, 2).join(':') }).toEqual({ code: causeExitCode.TILE_MISMATCH, out: 'FAILED: TILE_MISMATCH' });
    expect(causeExitCode.TILE_MISMATCH).toBe(39);
    const causes = Object.fromEntries(Object.entries(tampered).map(([k, b]) => { const r = verifyBundle(b, { trustRoot: acmeRoot }); return [k, r.ok ? 'ok' : r.cause]; }));
    expect(causes).toEqual({ tileFlipped: 'TILE_MISMATCH', tileRemoved: 'TILE_MISMATCH', tilesStripped: 'TILE_MISMATCH', tileOtherSize: 'TILE_MISMATCH' });
  }, 60_000);

  it('fails against another tenant\'s trust root, and against a trust root without (or with other) intake keys', async () => {
    const d = tmp('stella-audit-other-');
    writeFileSync(path.join(d, 'b.tar.gz'), bundle);
    writeFileSync(path.join(d, 'globex.json'), serializeTrustRoot(globexRoot));
    const r = await stella(['forensic', 'verify', 'b.tar.gz', '--trust', 'globex.json'], d);
    expect(r.code).toBe(causeExitCode.ORIGIN_MISMATCH);
    expect(r.stdout).toContain('ORIGIN_MISMATCH');
    // The log checks pass, but no envelope is believed without a pinned intake key.
    const { intake_keys: _dropped, ...withoutKeys } = acmeRoot;
    expect(verifyBundle(bundle, { trustRoot: withoutKeys })).toMatchObject({ ok: false, cause: 'PROVENANCE_KEY_UNTRUSTED' });
    const other = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(verifyBundle(bundle, { trustRoot: { ...acmeRoot, intake_keys: [{ keyid: 'someone-else', public_key: other }] } })).toMatchObject({ ok: false, cause: 'PROVENANCE_KEY_UNTRUSTED' });
    // The pinned keyid with another key: the signature by that keyid does not verify.
    expect(verifyBundle(bundle, { trustRoot: { ...acmeRoot, intake_keys: [{ keyid: 'acme-ci', public_key: other }] } })).toMatchObject({ ok: false, cause: 'PROVENANCE_SIGNATURE_INVALID' });
  }, 60_000);

  it('checks the join\'s claims and its completeness against the trust root\'s policy', async () => {
    const forged = edit(bundle, (f) => {
      const j = readJson<ProvenanceReport>(f, P.join);
      j.frames[1]!.artifact!.builder_commit = 'b'.repeat(40);
      f.set(P.join, canonicalBytes(j));
    });
    expect(verifyBundle(forged, { trustRoot: acmeRoot })).toMatchObject({ ok: false, cause: 'JOIN_MISMATCH' });
    // The frame fields the report shows are the derived frames', not whatever the report says.
    for (const forge of [(l: ProvenanceReport['frames'][number]) => { l.module_offset = '0x1'; }, (l: ProvenanceReport['frames'][number]) => { l.count = 1; },
      (l: ProvenanceReport['frames'][number]) => { (l.provenance!.evidence as { index: string }).index = '999'; }]) {
      const shown = edit(bundle, (f) => {
        const j = readJson<ProvenanceReport>(f, P.join);
        forge(j.frames[2]!);
        f.set(P.join, canonicalBytes(j));
      });
      expect(verifyBundle(shown, { trustRoot: acmeRoot })).toMatchObject({ ok: false, cause: 'JOIN_MISMATCH' });
    }
    const d = tmp('stella-audit-partial-');
    const part = await snapshot(partial, path.join(d, 'p.tar.gz'));
    expect(readJson<ProvenanceReport>(filesOf(part), P.join).completeness).toMatchObject({ considered: 4, joined: 3 });
    const r = verifyBundle(part, { trustRoot: acmeRoot });
    expect(r).toMatchObject({ ok: false, cause: 'JOIN_INCOMPLETE' });
    expect(!r.ok && r.detail).toContain(`@0x27249`);
    // The policy is the pinned one, never the bundle's: a root allowing 75% accepts it.
    expect(verifyBundle(part, { trustRoot: { ...acmeRoot, provenance_policy: { top_frames: 20, min_completeness: 0.75 } } })).toMatchObject({ ok: true, provenance: { joined: 3, considered: 4 } });
  }, 60_000);

  it('--with-symbol-bytes carries the symbol bundle, re-resolves every joined frame from it, and names altered bytes', async () => {
    const d = tmp('stella-audit-bytes-');
    const withBytes = await snapshot(full, path.join(d, 'w.tar.gz'), true);
    const files = filesOf(withBytes);
    expect(sha256Hex(files.get(P.symbolBytes(bundleSha))!)).toBe(bundleSha);
    expect(verifyBundle(withBytes, { trustRoot: acmeRoot })).toMatchObject({ ok: true, provenance: { symbolBytes: true, joined: 3 } });
    const renamed = edit(withBytes, (f) => {
      const j = readJson<ProvenanceReport>(f, P.join);
      j.frames[0]!.symbol!.name = 'main';
      f.set(P.join, canonicalBytes(j));
    });
    expect(verifyBundle(renamed, { trustRoot: acmeRoot })).toMatchObject({ ok: false, cause: 'JOIN_MISMATCH' });
    const flipped = edit(withBytes, (f) => {
      const b = Buffer.from(f.get(P.symbolBytes(bundleSha))!);
      b[b.length - 1] = b[b.length - 1]! ^ 1;
      f.set(P.symbolBytes(bundleSha), b);
    });
    expect(verifyBundle(flipped, { trustRoot: acmeRoot })).toMatchObject({ ok: false, cause: 'SYMBOL_BYTES_MISMATCH' });
  }, 60_000);
});
