// Test helpers for orchestrator exports: valid bodies, and DSSE envelopes signed with node:crypto's
// Ed25519 and a PAE written here from the DSSE spec (not the project's signing code).
import { createHash, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

export const TENANT = 'acme';
export const hex64 = (seed: string): string => createHash('sha256').update(seed).digest('hex');

export function idemKey(runId: string, artifactHash: string, tenantId: string): string {
  return `sha256:${createHash('sha256').update(Buffer.from(runId + artifactHash + tenantId, 'utf8')).digest('hex')}`;
}

export function validExport(over: Record<string, unknown> = {}, tenant = TENANT): Record<string, unknown> {
  const runId = (over.runId as string | undefined) ?? 'run-0001';
  const artifactHash = (over.artifactHash as string | undefined) ?? `sha256:${hex64('artifact')}`;
  const tenantId = (over.tenantId as string | undefined) ?? tenant;
  return {
    runId, jobType: 'build', artifactHash, policyHash: `sha256:${hex64('policy')}`,
    startedAt: '2026-12-01T10:00:00Z', completedAt: '2026-12-01T10:05:00.123456789Z', status: 'succeeded',
    manifestPath: `cas://${tenant}/${hex64('manifest')}`, logsPath: `cas://${tenant}/${hex64('logs')}`,
    tenantId, environment: 'prod', idempotencyKey: idemKey(runId, artifactHash, tenantId), signatures: [],
    ...over,
  };
}

/** DSSE v1 pre-authentication encoding, from the spec. */
export function pae(type: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${body.length} `), body]);
}

export interface TestKey { keyid: string; privateKey: KeyObject; publicPem: string }

export function testKey(keyid = 'orchestrator-1'): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { keyid, privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export const PREDICATE = 'https://stella-telemetry.example/orchestrator-export/v1';

export function statementFor(exp: Record<string, unknown>): Record<string, unknown> {
  const predicate: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(exp)) if (k !== 'signatures') predicate[k] = v;
  return {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name: String(exp.runId), digest: { sha256: String(exp.artifactHash).slice(7).toLowerCase() } }],
    predicateType: PREDICATE, predicate,
  };
}

export function signStatement(statement: unknown, key: TestKey): { payload: string; payloadType: string; signatures: { keyid: string; sig: string }[] } {
  const type = 'application/vnd.in-toto+json';
  const body = Buffer.from(JSON.stringify(statement));
  return { payload: body.toString('base64'), payloadType: type, signatures: [{ keyid: key.keyid, sig: sign(null, pae(type, body), key.privateKey).toString('base64') }] };
}

/** A trust verifier as lib/intake/trust.ts describes it (fail closed), over the given keys. */
export function testVerifier(keys: Record<string, TestKey[]>) {
  return (env: { payload: string; payloadType: string; signatures: { keyid: string; sig: string }[] }, tenant: string, type?: string) => {
    const ks = keys[tenant] ?? [];
    if (ks.length === 0) return { ok: false as const, reason: `no intake trust keys configured for tenant ${tenant}` };
    if (type !== undefined && env.payloadType !== type) return { ok: false as const, reason: `malformed envelope: payloadType must be ${type}` };
    const body = Buffer.from(env.payload, 'base64');
    for (const s of env.signatures) {
      const k = ks.find((x) => x.keyid === s.keyid);
      if (!k) continue;
      const good = verify(null, pae(env.payloadType, body), createPublicKey(k.publicPem), Buffer.from(s.sig, 'base64'));
      return good ? { ok: true as const, keyid: k.keyid, payload: body } : { ok: false as const, reason: `signature by ${s.keyid} does not verify` };
    }
    return { ok: false as const, reason: 'unknown keyid: no signature by a key in the tenant\'s intake trust config' };
  };
}
