import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../processors/evidence/hash.ts';
import {
  TRUST_ROOT_TYPE, TrustRootError, parseCosignatureKey, parseTrustRoot, parseTrustRootText, serializeTrustRoot, trustRootDigest, type TrustRoot,
} from '../../processors/evidence/trust-root.ts';
import { ORIGIN, TENANT, testSigner } from './helpers.ts';

/** A C2SP tlog-cosignature/v1 vkey (alg 0x04) for a fresh Ed25519 key, built from the spec's rules. */
function cosignerVkey(name: string): string {
  const pub = (generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }) as Buffer).subarray(12);
  const id = sha256(Buffer.concat([Buffer.from(name), Buffer.from([0x0a, 0x04]), pub])).subarray(0, 4).toString('hex');
  return `${name}+${id}+${Buffer.concat([Buffer.from([0x04]), pub]).toString('base64')}`;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-trust-root-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
/** A self-signed certificate from the real openssl binary. */
function certificate(cn: string): string {
  const key = path.join(dir, `${cn}.key`);
  const crt = path.join(dir, `${cn}.crt`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ed25519', '-nodes', '-keyout', key, '-out', crt, '-subj', `/CN=${cn}`, '-days', '1'], { stdio: 'ignore' });
  return readFileSync(crt, 'utf8');
}

const genesis = testSigner('key-1').verifierKey;
const next = testSigner('key-2').verifierKey;
const witnessA = cosignerVkey('witness.example/a');
const witnessB = cosignerVkey('witness.example/b');
const tsaCert = certificate('tsa-one');

function root(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: TRUST_ROOT_TYPE, tenant: TENANT, origin: ORIGIN, log_keys: [genesis],
    rotations: [{ previous_key: genesis, new_key: next, valid_from_size: 513 }],
    witnesses: { k: 1, keys: [{ name: 'witness.example/a', vkey: witnessA }, { name: 'witness.example/b', vkey: witnessB }] },
    tsa: { k: 1, certificates: [tsaCert] },
    ...over,
  };
}

describe('trust root', () => {
  it('parses a full root and serialises it canonically (key order and whitespace do not matter)', () => {
    const r = parseTrustRoot(root());
    expect(r.witnesses.k).toBe(1);
    expect(r.rotations).toHaveLength(1);
    const bytes = serializeTrustRoot(r);
    // Canonical: sorted keys, no whitespace; parse(serialise(r)) gives the same bytes again.
    expect(bytes.toString()).toMatch(/^\{"log_keys":\[.*\],"origin":".*","rotations":\[.*\],"tenant":"acme","tsa":\{"certificates":\[.*\],"k":1\},"type":"stella\.evidence\.trust-root\/v1","witnesses":\{"k":1,"keys":\[.*\]\}\}$/);
    const reordered = JSON.stringify(Object.fromEntries(Object.entries(root()).reverse()), null, 2);
    expect(serializeTrustRoot(parseTrustRootText(reordered)).equals(bytes)).toBe(true);
    expect(trustRootDigest(r)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('treats absent rotations as none, and k = 0 as no witness / no TSA required', () => {
    const r = parseTrustRoot(root({ rotations: undefined, witnesses: { k: 0, keys: [] }, tsa: { k: 0, certificates: [] } }));
    expect(r.rotations).toEqual([]);
    expect(serializeTrustRoot(r).toString()).toContain('"rotations":[]');
  });

  const bad: [string, Record<string, unknown> | unknown, RegExp][] = [
    ['not an object', [], /must be a JSON object/],
    ['wrong type', root({ type: 'stella.evidence.trust-root/v2' }), /type must be "stella\.evidence\.trust-root\/v1" \(got/],
    ['unknown field', root({ extra: 1 }), /unknown field "extra"/],
    ['bad tenant', root({ tenant: 'Acme!' }), /tenant: tenant id must match/],
    ['origin with a space', root({ origin: 'a b' }), /origin: key name/],
    ['no log keys', root({ log_keys: [] }), /at least one genesis key/],
    ['duplicate log key', root({ log_keys: [genesis, genesis] }), /lists a key twice/],
    ['log key of another origin', root({ log_keys: [testSigner('key-1', 'stella-telemetry.example/tenants/other').verifierKey] }), /is named stella-telemetry\.example\/tenants\/other, not the log origin/],
    ['log key with a wrong id', root({ log_keys: [genesis.replace(/\+[0-9a-f]{8}\+/, '+00000000+')] }), /log_keys\[0\]: verifier key id 00000000 does not match/],
    ['rotation not from a log key', root({ rotations: [{ previous_key: next, new_key: genesis, valid_from_size: 9 }] }), /rotations\[0\]\.previous_key is not one of log_keys/],
    ['rotation out of order', root({ rotations: [{ previous_key: genesis, new_key: next, valid_from_size: 9 }, { previous_key: next, new_key: testSigner('k3').verifierKey, valid_from_size: 9 }] }), /in log order/],
    ['rotation size', root({ rotations: [{ previous_key: genesis, new_key: next, valid_from_size: 1 }] }), /valid_from_size must be an integer ≥ 2/],
    ['k above n', root({ witnesses: { k: 3, keys: [{ name: 'witness.example/a', vkey: witnessA }] } }), /witnesses\.k is 3 but only 1 key is listed/],
    ['negative k', root({ tsa: { k: -1, certificates: [] } }), /tsa\.k must be a non-negative integer/],
    ['witness name differs from its vkey', root({ witnesses: { k: 1, keys: [{ name: 'witness.example/z', vkey: witnessA }] } }), /vkey is named witness\.example\/a, not witness\.example\/z/],
    ['witness key with note alg 0x01', root({ witnesses: { k: 1, keys: [{ name: ORIGIN.replace('tenants', 'w'), vkey: testSigner('w', ORIGIN.replace('tenants', 'w')).verifierKey }] } }), /0x04 ‖ 32-byte Ed25519/],
    ['same witness twice', root({ witnesses: { k: 1, keys: [{ name: 'witness.example/a', vkey: witnessA }, { name: 'witness.example/a', vkey: witnessA }] } }), /names a witness twice/],
    ['witness field typo', root({ witnesses: { k: 0, keys: [], threshold: 1 } }), /witnesses: unknown field "threshold"/],
    ['TSA certificate not PEM', root({ tsa: { k: 0, certificates: ['hello'] } }), /tsa\.certificates\[0\] must be one PEM certificate/],
    ['TSA certificate garbage inside PEM', root({ tsa: { k: 0, certificates: ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'] } }), /not a parsable X\.509 certificate/],
    ['TSA certificate twice', root({ tsa: { k: 1, certificates: [tsaCert, tsaCert] } }), /lists a certificate twice/],
  ];
  it.each(bad)('refuses %s with a clear error', (_, json, msg) => {
    expect(() => parseTrustRoot(json)).toThrow(TrustRootError);
    expect(() => parseTrustRoot(json)).toThrow(msg);
  });

  it('refuses text that is not JSON', () => {
    expect(() => parseTrustRootText('{"type":')).toThrow(/trust root is not JSON/);
  });

  it('checks a cosignature vkey id the way C2SP tlog-cosignature defines it', () => {
    const k = parseCosignatureKey(witnessA);
    expect(k.name).toBe('witness.example/a');
    expect(k.publicKey).toHaveLength(32);
    const flipped = witnessA.replace(/\+([0-9a-f]{8})\+/, (_m, id: string) => `+${id.slice(0, 7)}${id[7] === '0' ? '1' : '0'}+`);
    expect(() => parseCosignatureKey(flipped)).toThrow(/does not match the key/);
  });

  it('round-trips a typed root unchanged', () => {
    const r: TrustRoot = parseTrustRoot(root());
    expect(parseTrustRootText(serializeTrustRoot(r))).toEqual(r);
  });
});

describe('trust root: intake keys and provenance policy (audit bundles)', () => {
  const pem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  it('parses them strictly and leaves roots without them byte-identical', () => {
    const base = serializeTrustRoot(parseTrustRoot(root()));
    expect(base.toString()).not.toContain('intake_keys');
    const r = parseTrustRoot(root({ intake_keys: [{ keyid: 'ci', public_key: pem }], provenance_policy: { top_frames: 5, min_completeness: 1 } }));
    expect(r.intake_keys).toEqual([{ keyid: 'ci', public_key: pem }]);
    expect(r.provenance_policy).toEqual({ top_frames: 5, min_completeness: 1 });
    expect(parseTrustRootText(serializeTrustRoot(r))).toEqual(r);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const refused: [Record<string, unknown>, RegExp][] = [
      [{ intake_keys: [{ keyid: 'ci', public_key: rsa }] }, /intake_keys\[0\]\.public_key must be an Ed25519 key/],
      [{ intake_keys: [{ keyid: 'ci', public_key: 'nope' }] }, /not a parsable PEM/],
      [{ intake_keys: [{ keyid: 'ci', public_key: pem, extra: 1 }] }, /unknown field "extra"/],
      [{ intake_keys: [{ keyid: 'ci', public_key: pem }, { keyid: 'ci', public_key: pem }] }, /keyid twice/],
      [{ intake_keys: [{ keyid: 'a b', public_key: pem }] }, /printable ASCII/],
      [{ provenance_policy: { top_frames: 0, min_completeness: 1 } }, /top_frames/],
      [{ provenance_policy: { top_frames: 5, min_completeness: 1.5 } }, /min_completeness/],
    ];
    for (const [over, msg] of refused) expect(() => parseTrustRoot(root(over))).toThrow(msg);
  });
});
