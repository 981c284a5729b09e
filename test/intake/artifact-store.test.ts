// The artifact tables in real chdb: the sink's rows from intake records, the join's lookups, tenant
// isolation, redelivery (same record again, also as a retried block) collapsing to one visible row,
// and records that must write nothing (tampered, re-verification refused).
import { beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { BatchWriter, type Store } from '../../lib/store/index.ts';
import { validateArtifact, validateSymbolBundle, type AcceptedArtifact, type AcceptedSymbolBundle, type IntakeEnvelopeVerifier } from '../../processors/intake/artifacts.ts';
import { artifactIntake, symbolsIntake } from '../../processors/intake/artifact-records.ts';
import { writeArtifactIntake } from '../../processors/intake/artifact-sink.ts';
import { intakeLookup, pdbAgesByGuid } from '../../processors/intake/lookup.ts';
import { testStore } from '../timeline/support.ts';
import { writeMachO, writePdb } from './symbol-fixtures.ts';
import { pythonSign, slsaStatement } from './sign.ts';
import { IntakeTrust } from '../../lib/intake/trust.ts';

const COMMIT = 'c'.repeat(40);
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
let store: Store;
let writer: BatchWriter;
let verify: IntakeEnvelopeVerifier;
const accepted: Record<string, AcceptedArtifact> = {};
const ctx = (n: number) => ({ nowUnixNano: String(1_764_000_000_000_000_000n + BigInt(n)), actor: 'ci', traceId: '' });
const count = async (table: string, tenant: string) =>
  Number((await store.selectRows<{ n: string }>(`SELECT count() AS n FROM ${table} FINAL WHERE tenant_id = {t:String}`, { t: tenant }))[0]!.n);

beforeAll(async () => {
  store = await testStore();
  writer = new BatchWriter(store, { maxDelayMs: 5 });
  const arts = { acme: sha('acme app'), globex: sha('globex app') };
  const signed = pythonSign(['acme', 'globex'], [
    { key: 'acme', keyid: 'acme-ci', payload: slsaStatement(arts.acme, { gitCommit: COMMIT, compiler: 'gcc 12', flags: ['-g'] }) },
    { key: 'globex', keyid: 'globex-ci', payload: slsaStatement(arts.globex, { gitCommit: COMMIT }) },
  ]);
  verify = new IntakeTrust({ acme: { keys: [{ keyid: 'acme-ci', publicKey: signed.keys.acme! }] }, globex: { keys: [{ keyid: 'globex-ci', publicKey: signed.keys.globex! }] } }).verifyIntakeEnvelope;
  for (const [i, t] of (['acme', 'globex'] as const).entries()) {
    const v = validateArtifact(t, { sha256: arts[t], builder_commit: COMMIT, compiler: 'gcc 12', flags: ['-g'], provenance: signed.envelopes[i] }, verify);
    if (!v.ok) throw new Error(v.reason);
    accepted[t] = v.artifact;
  }
});

const bundleFor = (tenant: string, a: AcceptedArtifact, bytes: Buffer, uuid: string): AcceptedSymbolBundle => {
  const v = validateSymbolBundle(tenant, { kind: 'dsym', dsym_uuid: uuid, artifact_sha256: a.sha256 }, bytes, { sha256: a.sha256, attested: true },
    () => ({ ok: false, error: 'not elf' }));
  if (!v.ok) throw new Error(v.reason);
  return v.bundle;
};

describe('artifact tables', () => {
  it('stores what the sink is given, once, and the lookups return it per tenant only', async () => {
    const a = accepted.acme!;
    const art = artifactIntake(a, `cas://acme/${a.envelope_sha256}`, ctx(1));
    // Mach-O files carrying the UUID (a dSYM's DWARF file; its key is read from the bytes).
    const bytes = writeMachO({ cputype: 0x0100000c, uuid: 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE' });
    const b = bundleFor('acme', a, bytes, 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE');
    const sym = symbolsIntake(b, `cas://acme/${b.bundle_sha256}`, ctx(2));
    const msgA = { key: 'acme', value: art.value };
    const msgS = { key: 'acme', value: sym.value };
    expect(await writeArtifactIntake(writer, [msgA], [msgS], verify)).toEqual([]);
    // Redelivery: the same records again, alone and together with new ones.
    expect(await writeArtifactIntake(writer, [msgA, msgA], [msgS], verify)).toEqual([]);
    const g = accepted.globex!;
    const artG = artifactIntake(g, `cas://globex/${g.envelope_sha256}`, ctx(3));
    const bG = bundleFor('globex', g, writeMachO({ cputype: 0x0100000c, uuid: 'aaaaaaaabbbbccccddddeeeeeeeeeeee', extraCommands: 1 }), 'aaaaaaaabbbbccccddddeeeeeeeeeeee'); // same key as acme's
    expect(await writeArtifactIntake(writer, [msgA, { key: 'globex', value: artG.value }], [{ key: 'globex', value: symbolsIntake(bG, `cas://globex/${bG.bundle_sha256}`, ctx(4)).value }], verify)).toEqual([]);

    expect(await count('artifacts', 'acme')).toBe(1);
    expect(await count('symbol_bundles', 'acme')).toBe(1);
    expect(await count('provenance_evidence', 'acme')).toBe(2);

    const look = intakeLookup(store);
    const rows = await look.lookupArtifact('acme', a.sha256);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ sha256: a.sha256, builder_commit: COMMIT, compiler: 'gcc 12', flags: ['-g'], signer_keyid: 'acme-ci',
      attested_fields: ['builder_commit', 'compiler', 'flags'], envelope_cas_uri: `cas://acme/${a.envelope_sha256}`,
      registered_at_unix_nano: ctx(1).nowUnixNano, evidence: { event_id: art.record.event_id, event_kind: 'artifact.registered' } });
    expect(JSON.parse(rows[0]!.dsse_envelope)).toEqual(JSON.parse(a.envelope_json));

    const bundles = await look.lookupSymbolBundle('acme', 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee');
    expect(bundles.map((r) => [r.tenant_id, r.bundle_sha256, r.artifact_sha256, r.kind, r.key_verified])).toEqual([['acme', b.bundle_sha256, a.sha256, 'dsym', true]]);
    expect(bundles[0]!.evidence.event_id).toBe(sym.record.event_id);

    // Cross-tenant: globex cannot see acme's artifact, and the shared symbol key gives each its own.
    expect(await look.lookupArtifact('globex', a.sha256)).toEqual([]);
    expect((await look.lookupSymbolBundle('globex', 'aaaaaaaabbbbccccddddeeeeeeeeeeee')).map((r) => r.bundle_sha256)).toEqual([bG.bundle_sha256]);
    expect((await look.bundlesOfArtifact('acme', a.sha256)).map((r) => r.bundle_sha256)).toEqual([b.bundle_sha256]);
    await expect(look.lookupArtifact("acme' OR 1=1 --", a.sha256)).rejects.toThrow(/invalid tenant/);
  });

  it('writes nothing for a record that is tampered, for another tenant, or whose provenance no longer verifies', async () => {
    const a = { ...accepted.acme!, sha256: sha('never registered') };
    const good = artifactIntake(accepted.acme!, `cas://acme/${accepted.acme!.envelope_sha256}`, ctx(5));
    // Claims another artifact with acme's (valid) envelope: the subject does not match on re-verification.
    const forged = artifactIntake(a, `cas://acme/${a.envelope_sha256}`, ctx(5));
    const wrongKey = { key: 'globex', value: good.value };
    const notJson = { key: 'acme', value: Buffer.from('{') };
    const noVerifier: IntakeEnvelopeVerifier = () => ({ ok: false, reason: 'no intake trust keys configured' });
    const dead = await writeArtifactIntake(writer, [{ key: 'acme', value: forged.value }, wrongKey, notJson], [], verify);
    expect(dead.map((d) => d.reason)).toEqual([
      'provenance refused on re-verification: SUBJECT_DIGEST_MISMATCH', 'artifact tenant does not match the record key', 'intake record is not JSON']);
    const dead2 = await writeArtifactIntake(writer, [{ key: 'acme', value: good.value }], [], noVerifier);
    expect(dead2.map((d) => d.reason)).toEqual(['provenance refused on re-verification: SIGNATURE_NOT_TRUSTED']);
    expect(await intakeLookup(store).lookupArtifact('acme', a.sha256)).toEqual([]);
    expect(await count('artifacts', 'globex')).toBe(1);
  });

  it('re-reads PDB and dSYM keys from the CAS bytes: a record whose key the stored bytes do not carry writes nothing', async () => {
    const a = accepted.acme!;
    const blobs = new Map<string, Buffer>();
    const casGet = async (_t: string, d: string) => blobs.get(d);
    const pdb = writePdb({ guid: '0123ABCD-4567-89EF-0123-456789ABCDEF', infoAge: 4, dbiAge: 2 });
    const v = validateSymbolBundle('acme', { kind: 'pdb', pdb_guid: '0123ABCD-4567-89EF-0123-456789ABCDEF', pdb_age: '2', artifact_sha256: a.sha256 }, pdb,
      { sha256: a.sha256, attested: true }, () => ({ ok: false, error: 'not elf' }));
    if (!v.ok) throw new Error(v.reason);
    blobs.set(`sha256:${v.bundle.bundle_sha256}`, pdb);
    const honest = symbolsIntake(v.bundle, `cas://acme/${v.bundle.bundle_sha256}`, ctx(7));
    // A record that did not come through the API: the same bytes claimed under another age, and a dSYM claim on PDB bytes.
    const lyingAge = symbolsIntake({ ...v.bundle, symbol_key: '0123ABCD456789EF0123456789ABCDEF4', pdb_age: 4 }, `cas://acme/${v.bundle.bundle_sha256}`, ctx(8));
    const asDsym = symbolsIntake({ ...v.bundle, kind: 'dsym', symbol_key: '0123abcd456789ef0123456789abcdef', pdb_age: 0 }, `cas://acme/${v.bundle.bundle_sha256}`, ctx(9));
    const dead = await writeArtifactIntake(writer, [], [honest, lyingAge, asDsym].map((x) => ({ key: 'acme', value: x.value })), { verify, casGet });
    expect(dead.map((d) => d.reason)).toEqual(['the PDB GUID+age in the CAS bytes is not the bundle\'s key', 'the Mach-O LC_UUID in the CAS bytes is not the bundle\'s key']);
    const look = intakeLookup(store);
    expect((await look.lookupSymbolBundle('acme', '0123ABCD456789EF0123456789ABCDEF2', 'pdb')).map((r) => [r.pdb_age, r.key_verified])).toEqual([[2, true]]);
    expect(await look.lookupSymbolBundle('acme', '0123ABCD456789EF0123456789ABCDEF4', 'pdb')).toEqual([]);
    // What the join tells a frame with age 4: the GUID is known with age 2 (this tenant only).
    expect(await pdbAgesByGuid(store, 'acme', ['0123abcd-4567-89ef-0123-456789abcdef', 'F'.repeat(32)])).toEqual(new Map([['0123ABCD456789EF0123456789ABCDEF', [2]]]));
    expect(await pdbAgesByGuid(store, 'globex', ['0123ABCD456789EF0123456789ABCDEF'])).toEqual(new Map());
  });
});
