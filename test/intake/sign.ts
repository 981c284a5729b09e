// Test helpers for the artifact intake: an independent signer (Python's `cryptography`, see
// dsse_sign.py) and SLSA v1 provenance statements for a given artifact.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface SignRequest { key: string; keyid: string; payloadType?: string; payload: Buffer | string }
export interface Envelope { payload: string; payloadType: string; signatures: { keyid: string; sig: string }[] }

/** Generate the named Ed25519 keys and sign each request with Python; returns SPKI PEMs and envelopes. */
export function pythonSign(keys: string[], sign: SignRequest[]): { keys: Record<string, string>; envelopes: Envelope[] } {
  const input = JSON.stringify({
    keys,
    sign: sign.map((s) => ({ key: s.key, keyid: s.keyid, payloadType: s.payloadType ?? 'application/vnd.in-toto+json',
      payload_b64: Buffer.from(s.payload).toString('base64') })),
  });
  const out = execFileSync('python3', [path.join(here, 'dsse_sign.py')], { input, encoding: 'utf8' });
  return JSON.parse(out) as { keys: Record<string, string>; envelopes: Envelope[] };
}

export interface StatementOptions {
  subjects?: { name?: string; digest: Record<string, string> }[];
  gitCommit?: string;
  compiler?: string;
  flags?: string[];
  predicateType?: string;
  type?: string;
  invocationId?: string;
  /** Replace the predicate entirely. */
  predicate?: unknown;
}

/** An in-toto Statement v1 with an SLSA Provenance v1 predicate for a build of `sha256`. */
export function slsaStatement(sha256: string, o: StatementOptions = {}): Buffer {
  const external: Record<string, unknown> = { source: 'git+https://git.example/app@refs/heads/main' };
  if (o.compiler !== undefined) external.compiler = o.compiler;
  if (o.flags !== undefined) external.flags = o.flags;
  return Buffer.from(JSON.stringify({
    _type: o.type ?? 'https://in-toto.io/Statement/v1',
    subject: o.subjects ?? [{ name: 'app', digest: { sha256 } }],
    predicateType: o.predicateType ?? 'https://slsa.dev/provenance/v1',
    predicate: o.predicate ?? {
      buildDefinition: {
        buildType: 'https://stella-telemetry.example/build/make@v1',
        externalParameters: external,
        internalParameters: {},
        resolvedDependencies: [{ uri: 'git+https://git.example/app', digest: { gitCommit: o.gitCommit ?? 'a'.repeat(40) } }],
      },
      runDetails: { builder: { id: 'https://ci.example/builders/linux' }, metadata: { invocationId: o.invocationId ?? 'run-1', finishedOn: '2026-12-03T12:00:00Z' } },
    },
  }));
}
