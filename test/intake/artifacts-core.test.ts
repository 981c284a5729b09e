// The pure artifact / symbol-bundle intake core against hostile input. Every envelope is made by an
// independent signer (Python `cryptography`, test/intake/dsse_sign.py); trust keys are the PEMs it
// generated, checked through the tenant verifier.
import { beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { machOFromLlvm, pdbFromLlvm, writeMachO, writePdb, yamlFat } from './symbol-fixtures.ts';
import { validateArtifact, validateSymbolBundle, elfKey, pdbKey, dsymKey, elfBuildIdReader, type IntakeEnvelopeVerifier,
  type ElfBuildIdReader } from '../../processors/intake/artifacts.ts';
import { pythonSign, slsaStatement, type Envelope } from './sign.ts';
import { IntakeTrust } from '../../lib/intake/trust.ts';
import { buildElfFixture, readBytes } from './elf-fixture.ts';

const TENANT = 'acme';
const ART = createHash('sha256').update('the artifact').digest('hex');
const OTHER = createHash('sha256').update('another artifact').digest('hex');
const COMMIT = '0123456789abcdef0123456789abcdef01234567';

let env: Record<string, Envelope>;
let verify: IntakeEnvelopeVerifier;

beforeAll(() => {
  const cases: Record<string, { key?: string; keyid?: string; payloadType?: string; payload: Buffer }> = {
    good: { payload: slsaStatement(ART, { gitCommit: COMMIT, compiler: 'gcc 12.2.0', flags: ['-O2', '-g'] }) },
    bare: { payload: slsaStatement(ART, { gitCommit: COMMIT }) },
    multiMatch: { payload: slsaStatement(ART, { gitCommit: COMMIT, subjects: [{ name: 'lib', digest: { sha256: OTHER } }, { name: 'app', digest: { sha256: ART, sha512: 'ab'.repeat(64) } }] }) },
    multiNoMatch: { payload: slsaStatement(ART, { gitCommit: COMMIT, subjects: [{ name: 'lib', digest: { sha256: OTHER } }, { name: 'x', digest: { sha512: 'ab'.repeat(64) } }] }) },
    otherSubject: { payload: slsaStatement(OTHER, { gitCommit: COMMIT }) },
    wrongType: { payloadType: 'application/json', payload: slsaStatement(ART, { gitCommit: COMMIT }) },
    v02: { payload: slsaStatement(ART, { gitCommit: COMMIT, predicateType: 'https://slsa.dev/provenance/v0.2' }) },
    stmtV01: { payload: slsaStatement(ART, { gitCommit: COMMIT, type: 'https://in-toto.io/Statement/v0.1' }) },
    noBuilder: { payload: slsaStatement(ART, { predicate: { buildDefinition: { buildType: 'x', externalParameters: {} }, runDetails: {} } }) },
    otherCommit: { payload: slsaStatement(ART, { gitCommit: 'f'.repeat(40) }) },
    otherCompiler: { payload: slsaStatement(ART, { gitCommit: COMMIT, compiler: 'clang 17', flags: ['-O2', '-g'] }) },
    otherFlags: { payload: slsaStatement(ART, { gitCommit: COMMIT, compiler: 'gcc 12.2.0', flags: ['-O0', '-g'] }) },
    notJson: { payload: Buffer.from('{"_type": "https://in-toto.io/Statement/v1", ') },
    unknownKey: { key: 'mallory', keyid: 'ci-key', payload: slsaStatement(ART, { gitCommit: COMMIT }) },
    otherTenantKey: { key: 'globex', keyid: 'globex-ci', payload: slsaStatement(ART, { gitCommit: COMMIT }) },
  };
  const names = Object.keys(cases);
  const signed = pythonSign(['ci', 'mallory', 'globex'], names.map((n) => ({ key: cases[n]!.key ?? 'ci', keyid: cases[n]!.keyid ?? 'ci-key',
    payloadType: cases[n]!.payloadType, payload: cases[n]!.payload })));
  env = Object.fromEntries(names.map((n, i) => [n, signed.envelopes[i]!]));
  verify = new IntakeTrust({ acme: { keys: [{ keyid: 'ci-key', publicKey: signed.keys.ci! }] }, globex: { keys: [{ keyid: 'globex-ci', publicKey: signed.keys.globex! }] } }).verifyIntakeEnvelope;
});

const record = (provenance: unknown, over: Record<string, unknown> = {}) =>
  ({ sha256: ART, builder_commit: COMMIT, compiler: 'gcc 12.2.0', flags: ['-O2', '-g'], provenance, ...over });

function refusedWith(body: unknown, reason: string, tenant = TENANT): void {
  const v = validateArtifact(tenant, body, verify);
  expect(v.ok ? 'accepted' : v.reason).toBe(reason);
}

describe('artifact provenance', () => {
  it('accepts a record whose signed SLSA v1 statement names the artifact, commit, compiler and flags', () => {
    const v = validateArtifact(TENANT, record(env.good), verify);
    if (!v.ok) throw new Error(`${v.reason}: ${v.message}`);
    expect(v.artifact).toMatchObject({ tenant: TENANT, sha256: ART, subject_name: 'app', builder_commit: COMMIT, signer_keyid: 'ci-key',
      builder_id: 'https://ci.example/builders/linux', predicate_type: 'https://slsa.dev/provenance/v1', build_finished_on: '2026-12-03T12:00:00Z' });
    expect(v.artifact.attested_fields).toEqual(['builder_commit', 'compiler', 'flags']);
    expect(JSON.parse(v.artifact.envelope_json)).toEqual(env.good);
    expect(v.artifact.envelope_sha256).toBe(createHash('sha256').update(v.artifact.envelope_json).digest('hex'));
  });

  it('keeps compiler and flags the predicate does not state, marked as not attested', () => {
    const v = validateArtifact(TENANT, record(env.bare, { oci_digest: `sha256:${OTHER}` }), verify);
    if (!v.ok) throw new Error(v.reason);
    expect(v.artifact.attested_fields).toEqual(['builder_commit']);
    expect(v.artifact.oci_digest).toBe(`sha256:${OTHER}`);
  });

  it('accepts several subjects when one is the artifact; refuses when none is', () => {
    const v = validateArtifact(TENANT, record(env.multiMatch), verify);
    expect(v.ok && v.artifact.subject_name).toBe('app');
    refusedWith(record(env.multiNoMatch), 'SUBJECT_DIGEST_MISMATCH');
    refusedWith(record(env.otherSubject), 'SUBJECT_DIGEST_MISMATCH');
  });

  it('refuses a statement signed by a key the tenant does not trust, or by another tenant\'s key', () => {
    refusedWith(record(env.unknownKey), 'SIGNATURE_NOT_TRUSTED');
    refusedWith(record(env.otherTenantKey), 'SIGNATURE_NOT_TRUSTED');
    // globex trusts that key: the same envelope is fine there (for globex's own artifact record).
    expect(validateArtifact('globex', record(env.otherTenantKey), verify).ok).toBe(true);
    // A tenant with no trust keys at all: fail closed.
    refusedWith(record(env.good), 'SIGNATURE_NOT_TRUSTED', 'initech');
  });

  it('refuses a signature that does not cover the payload (payload swapped, sig flipped)', () => {
    refusedWith(record({ ...env.good, payload: env.otherSubject!.payload }), 'SIGNATURE_NOT_TRUSTED');
    const sig = Buffer.from(env.good!.signatures[0]!.sig, 'base64');
    sig.writeUInt8(sig[5]! ^ 1, 5);
    refusedWith(record({ ...env.good, signatures: [{ keyid: 'ci-key', sig: sig.toString('base64') }] }), 'SIGNATURE_NOT_TRUSTED');
    // The keyid claims a trusted key, the signature is another key's.
    refusedWith(record({ ...env.unknownKey, signatures: [{ keyid: 'ci-key', sig: env.unknownKey!.signatures[0]!.sig }] }), 'SIGNATURE_NOT_TRUSTED');
  });

  it('refuses a wrong payloadType, another statement type, SLSA v0.2 and a predicate without builder', () => {
    refusedWith(record(env.wrongType), 'PAYLOAD_TYPE_UNSUPPORTED');
    refusedWith(record(env.stmtV01), 'STATEMENT_TYPE_UNSUPPORTED');
    refusedWith(record(env.v02), 'PREDICATE_TYPE_UNSUPPORTED');
    refusedWith(record(env.noBuilder), 'PREDICATE_MALFORMED');
    refusedWith(record(env.notJson), 'STATEMENT_MALFORMED');
  });

  it('refuses a builder commit, compiler or flags the provenance contradicts', () => {
    refusedWith(record(env.otherCommit), 'BUILDER_COMMIT_NOT_ATTESTED');
    refusedWith(record(env.otherCompiler), 'COMPILER_MISMATCH');
    refusedWith(record(env.otherFlags), 'FLAGS_MISMATCH');
    refusedWith(record(env.good, { flags: ['-g', '-O2'] }), 'FLAGS_MISMATCH');
  });

  it('refuses truncated, malformed and non-base64 envelopes', () => {
    const good = env.good!;
    refusedWith(record(undefined), 'PROVENANCE_MISSING');
    refusedWith(record('not an envelope'), 'ENVELOPE_MALFORMED');
    refusedWith(record({ payload: good.payload, payloadType: good.payloadType }), 'ENVELOPE_MALFORMED');
    refusedWith(record({ ...good, signatures: [] }), 'ENVELOPE_MALFORMED');
    refusedWith(record({ ...good, signatures: [{ sig: good.signatures[0]!.sig }] }), 'ENVELOPE_MALFORMED');
    refusedWith(record({ ...good, payload: good.payload.slice(0, -7) }), 'ENVELOPE_NOT_BASE64');
    refusedWith(record({ ...good, payload: good.payload.slice(0, 40) }), 'SIGNATURE_NOT_TRUSTED'); // valid base64, cut
    refusedWith(record({ ...good, payload: `${good.payload.slice(0, 8)}!${good.payload.slice(9)}` }), 'ENVELOPE_NOT_BASE64');
    refusedWith(record({ ...good, payload: `${good.payload.slice(0, 8)}.${good.payload.slice(9)}` }), 'ENVELOPE_NOT_BASE64');
    refusedWith(record({ ...good, payload: `${good.payload.slice(0, 8)}-${good.payload.slice(9, -1)}=` }), 'ENVELOPE_NOT_BASE64'); // alphabets mixed
    refusedWith(record({ ...good, signatures: [{ keyid: 'ci-key', sig: 'not base64!' }] }), 'ENVELOPE_NOT_BASE64');
    // JSON text truncated on the way in never parses into an envelope object.
    const truncated = JSON.stringify(good).slice(0, 60);
    refusedWith(record(truncated), 'ENVELOPE_MALFORMED');
  });

  it('accepts the URL-safe base64 form DSSE allows (same payload bytes, same signature)', () => {
    const good = env.good!;
    const url = Buffer.from(good.payload, 'base64').toString('base64url');
    const v = validateArtifact(TENANT, record({ ...good, payload: url }), verify);
    expect(v.ok ? 'accepted' : v.reason).toBe('accepted');
  });

  it('names each bad record field', () => {
    refusedWith([], 'ARTIFACT_RECORD_MALFORMED');
    refusedWith(record(env.good, { extra: 1 }), 'ARTIFACT_RECORD_MALFORMED');
    refusedWith(record(env.good, { sha256: ART.toUpperCase() }), 'ARTIFACT_SHA256_INVALID');
    refusedWith(record(env.good, { sha256: `sha256:${ART}` }), 'ARTIFACT_SHA256_INVALID');
    refusedWith(record(env.good, { builder_commit: 'main' }), 'BUILDER_COMMIT_INVALID');
    refusedWith(record(env.good, { compiler: '' }), 'COMPILER_INVALID');
    refusedWith(record(env.good, { compiler: 'gcc\nevil' }), 'COMPILER_INVALID');
    refusedWith(record(env.good, { flags: '-O2 -g' }), 'FLAGS_INVALID');
    refusedWith(record(env.good, { flags: ['-O2', 3] }), 'FLAGS_INVALID');
    refusedWith(record(env.good, { oci_digest: OTHER }), 'OCI_DIGEST_INVALID');
  });

  it('never lets the artifact sha256 of one record ride on another artifact\'s envelope', () => {
    refusedWith(record(env.good, { sha256: OTHER }), 'SUBJECT_DIGEST_MISMATCH');
  });
});

describe('symbol bundle declarations (keys, origin)', () => {
  const origin = { sha256: ART, attested: true };
  const noElf: ElfBuildIdReader = () => { throw new Error('not an ELF bundle: the reader must not be called'); };
  const bytes = Buffer.from('neither PDB nor Mach-O bytes');

  it('normalizes the join keys', () => {
    expect(elfKey('ABCDEF0123456789')).toBe('abcdef0123456789');
    expect(elfKey('abc')).toBeUndefined();
    expect(pdbKey('{01234567-89ab-cdef-0123-456789abcdef}', '10')).toBe('0123456789ABCDEF0123456789ABCDEFA');
    expect(pdbKey('0123', '1')).toBeUndefined();
    expect(pdbKey('0123456789abcdef0123456789abcdef', '-1')).toBeUndefined();
    expect(pdbKey('0123456789abcdef0123456789abcdef', '4294967296')).toBeUndefined();
    expect(dsymKey('01234567-89AB-CDEF-0123-456789ABCDEF')).toBe('0123456789abcdef0123456789abcdef');
  });

  it('reads the PDB GUID+age from the bytes (DBI age, as the image records it) and refuses declarations that differ', () => {
    // Written by llvm-pdbutil yaml2pdb: info-stream age 7, DBI age 3.
    const pdb = pdbFromLlvm({ guid: '01234567-89AB-CDEF-0123-456789ABCDEF', infoAge: 7, dbiAge: 3 }).bytes;
    const check = (guid: string, age: string, b: Uint8Array = pdb) => {
      const r = validateSymbolBundle(TENANT, { kind: 'pdb', pdb_guid: guid, pdb_age: age, artifact_sha256: ART }, b, origin, noElf);
      return r.ok ? r.bundle : r.reason;
    };
    expect(check('{01234567-89ab-cdef-0123-456789abcdef}', '3')).toMatchObject({ kind: 'pdb', symbol_key: '0123456789ABCDEF0123456789ABCDEF3',
      build_id: '0123456789ABCDEF0123456789ABCDEF', pdb_age: 3, key_verified: true, bundle_sha256: createHash('sha256').update(pdb).digest('hex'), size: pdb.length });
    expect(check('01234567-89ab-cdef-0123-456789abcdef', '7')).toBe('PDB_AGE_MISMATCH'); // the info-stream age is not the key
    expect(check('01234567-89ab-cdef-0123-456789abcdee', '3')).toBe('PDB_GUID_MISMATCH');
    // Data1..3 are little-endian in the file: the byte-order-naive reading of the GUID is refused too.
    expect(check('67452301-ab89-efcd-0123-456789abcdef', '3')).toBe('PDB_GUID_MISMATCH');
    expect(check('01234567-89ab-cdef-0123-456789abcdef', '3', bytes)).toBe('PDB_MALFORMED');
    expect(check('01234567-89ab-cdef-0123-456789abcdef', '3', pdb.subarray(0, 8192))).toBe('PDB_MALFORMED');
    // Without a DBI stream the info-stream age is the key (spec-built file).
    const noDbi = writePdb({ guid: '01234567-89AB-CDEF-0123-456789ABCDEF', infoAge: 5 });
    expect(check('01234567-89ab-cdef-0123-456789abcdef', '5', noDbi)).toMatchObject({ symbol_key: '0123456789ABCDEF0123456789ABCDEF5', key_verified: true });
  });

  it('reads the dSYM UUID of every slice of a universal Mach-O and refuses a UUID no slice has', () => {
    const fat = machOFromLlvm(yamlFat([{ cputype: 0x01000007, uuid: '11111111-2222-3333-4444-555555555555' }, { cputype: 0x0100000c, uuid: 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE' }])).bytes;
    const check = (uuid: string, b: Uint8Array = fat) => {
      const r = validateSymbolBundle(TENANT, { kind: 'dsym', dsym_uuid: uuid, artifact_sha256: ART }, b, origin, noElf);
      return r.ok ? r.bundle : r.reason;
    };
    expect(check('11111111-2222-3333-4444-555555555555')).toMatchObject({ kind: 'dsym', symbol_key: '11111111222233334444555555555555', arch: 'x86_64', key_verified: true });
    expect(check('aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee')).toMatchObject({ symbol_key: 'aaaaaaaabbbbccccddddeeeeeeeeeeee', arch: 'arm64', key_verified: true });
    expect(check('11111111-2222-3333-4444-555555555556')).toBe('DSYM_UUID_MISMATCH');
    expect(check('11111111-2222-3333-4444-555555555555', bytes)).toBe('MACHO_MALFORMED');
    expect(check('11111111-2222-3333-4444-555555555555', fat.subarray(0, 4100))).toBe('MACHO_MALFORMED');
    expect(check('11111111-2222-3333-4444-555555555555', writeMachO({ cputype: 0x01000007, extraCommands: 1 }))).toBe('DSYM_UUID_MISSING');
  });

  it('refuses symbols without an attested origin artifact', () => {
    const decl = { kind: 'dsym', dsym_uuid: '0123456789abcdef0123456789abcdef', artifact_sha256: ART };
    const r1 = validateSymbolBundle(TENANT, decl, bytes, undefined, noElf);
    const r2 = validateSymbolBundle(TENANT, decl, bytes, { sha256: ART, attested: false }, noElf);
    const r3 = validateSymbolBundle(TENANT, decl, bytes, { sha256: OTHER, attested: true }, noElf);
    expect([r1, r2, r3].map((r) => (r.ok ? 'accepted' : r.reason))).toEqual(Array(3).fill('ORIGIN_ARTIFACT_UNATTESTED'));
    const r4 = validateSymbolBundle(TENANT, { ...decl, artifact_sha256: undefined }, bytes, origin, noElf);
    expect(r4.ok ? 'accepted' : r4.reason).toBe('ORIGIN_ARTIFACT_SHA256_INVALID');
  });

  it('names bad kinds, keys and empty bundles', () => {
    const reason = (d: Record<string, string | undefined>, b: Uint8Array = bytes) => {
      const r = validateSymbolBundle(TENANT, { kind: undefined, artifact_sha256: ART, ...d }, b, origin, noElf);
      return r.ok ? 'accepted' : r.reason;
    };
    expect(reason({ kind: 'macho' })).toBe('SYMBOL_KIND_INVALID');
    expect(reason({})).toBe('SYMBOL_KIND_INVALID');
    expect(reason({ kind: 'elf' })).toBe('SYMBOL_KEY_INVALID');
    expect(reason({ kind: 'elf', build_id: 'xyz' })).toBe('SYMBOL_KEY_INVALID');
    expect(reason({ kind: 'elf', build_id: 'abcdef0123', pdb_age: '1' })).toBe('SYMBOL_KEY_INVALID');
    expect(reason({ kind: 'pdb', pdb_guid: '0123456789abcdef0123456789abcdef' })).toBe('SYMBOL_KEY_INVALID');
    expect(reason({ kind: 'dsym', build_id: 'abcdef0123' })).toBe('SYMBOL_KEY_INVALID');
    expect(reason({ kind: 'dsym', dsym_uuid: '0123456789abcdef0123456789abcdef' }, new Uint8Array(0))).toBe('SYMBOL_BUNDLE_EMPTY');
  });
});

describe('ELF symbol bundles: the build-id comes from the bytes', () => {
  // A real program compiled here with -g (and once without a build-id note); readelf is the oracle.
  const fx = buildElfFixture();
  const withId = readBytes(fx.withId);
  const origin = { sha256: ART, attested: true };
  const check = (bytes: Uint8Array, buildId: string) => {
    const r = validateSymbolBundle(TENANT, { kind: 'elf', build_id: buildId, artifact_sha256: ART }, bytes, origin, elfBuildIdReader);
    return r.ok ? r.bundle : r.reason;
  };

  it('accepts the build-id readelf reports (any case) and marks the key verified', () => {
    expect(check(withId, fx.buildId.toUpperCase())).toMatchObject({ kind: 'elf', symbol_key: fx.buildId, build_id: fx.buildId, key_verified: true,
      bundle_sha256: createHash('sha256').update(withId).digest('hex') });
  });

  it('refuses a lying declared build-id, an ELF without the note, and bytes that are not (a whole) ELF', () => {
    const lie = fx.buildId.slice(0, -2) + (fx.buildId.endsWith('00') ? '01' : '00');
    expect(check(withId, lie)).toBe('BUILD_ID_MISMATCH');
    expect(check(withId, fx.buildId + '00')).toBe('BUILD_ID_MISMATCH');
    expect(check(readBytes(fx.withoutId), fx.buildId)).toBe('ELF_BUILD_ID_MISSING');
    expect(check(Buffer.from('#!/bin/sh\necho not elf\n'), fx.buildId)).toBe('ELF_MALFORMED');
    expect(check(withId.subarray(0, 40), fx.buildId)).toBe('ELF_MALFORMED');
  });

  it('never accepts an ELF bundle for an unattested origin, even with a true build-id', () => {
    const r = validateSymbolBundle(TENANT, { kind: 'elf', build_id: fx.buildId, artifact_sha256: ART }, withId, undefined, elfBuildIdReader);
    expect(r.ok ? 'accepted' : r.reason).toBe('ORIGIN_ARTIFACT_UNATTESTED');
  });
});
