// lib/intake/trust.ts: the intake config section is validated with named problems, and envelope
// verification fails closed. Every envelope here is made by Python's `cryptography` (dsse_sign.py).
import { generateKeyPairSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildConfig, ConfigError } from '../../lib/config.ts';
import { IntakeTrust, parseIntakeSection } from '../../lib/intake/trust.ts';
import { pythonSign, type Envelope } from './sign.ts';

const TYPE = 'application/vnd.stella.runtime-facts+json';
let keys: Record<string, string>;
let env: Envelope[];
let trust: IntakeTrust;
beforeAll(() => {
  const s = pythonSign(['a', 'b'], [
    { key: 'a', keyid: 'ka', payloadType: TYPE, payload: '{"x":1}' },
    { key: 'b', keyid: 'ka', payloadType: TYPE, payload: '{"x":1}' }, // claims ka, signed by b
    { key: 'b', keyid: 'kb', payloadType: TYPE, payload: '{"x":1}' },
  ]);
  keys = s.keys;
  env = s.envelopes;
  trust = new IntakeTrust({ acme: { keys: [{ keyid: 'ka', publicKey: keys.a! }] }, globex: { keys: [{ keyid: 'kb', publicKey: keys.b! }] }, empty: { keys: [] } });
});

describe('verifyIntakeEnvelope', () => {
  it('accepts a signature by a trusted key, returning its keyid and payload', () => {
    const v = trust.verifyIntakeEnvelope(env[0], 'acme', TYPE);
    expect(v).toEqual({ ok: true, keyid: 'ka', payload: Buffer.from('{"x":1}') });
    // Handed around as a plain function (the cores take it so).
    const f = trust.verifyIntakeEnvelope;
    expect(f(env[0], 'acme').ok).toBe(true);
  });

  it('fails closed: no keys, unknown keyid, forged signature, wrong payload type, other tenant\'s key', () => {
    expect(trust.verifyIntakeEnvelope(env[0], 'empty')).toEqual({ ok: false, reason: expect.stringMatching(/no intake trust keys configured/) });
    expect(trust.verifyIntakeEnvelope(env[0], 'initech')).toEqual({ ok: false, reason: expect.stringMatching(/no intake trust keys configured/) });
    expect(trust.verifyIntakeEnvelope(env[2], 'acme')).toEqual({ ok: false, reason: expect.stringMatching(/unknown keyid/) });
    expect(trust.verifyIntakeEnvelope(env[1], 'acme')).toEqual({ ok: false, reason: expect.stringMatching(/does not verify/) });
    expect(trust.verifyIntakeEnvelope(env[0], 'acme', 'application/vnd.in-toto+json')).toEqual({ ok: false, reason: expect.stringMatching(/payloadType/) });
    // globex trusts b, not a: acme's envelope proves nothing for globex.
    expect(trust.verifyIntakeEnvelope(env[0], 'globex').ok).toBe(false);
    expect(trust.verifyIntakeEnvelope(env[2], 'globex').ok).toBe(true);
  });

  it('a bad signature by a trusted key is refused even beside a good one', () => {
    const both = { ...env[0]!, signatures: [env[0]!.signatures[0]!, env[1]!.signatures[0]!] };
    expect(trust.verifyIntakeEnvelope(both, 'acme').ok).toBe(false);
    // An extra signature by a key acme does not know neither helps nor hurts.
    expect(trust.verifyIntakeEnvelope({ ...env[0]!, signatures: [env[2]!.signatures[0]!, env[0]!.signatures[0]!] }, 'acme').ok).toBe(true);
  });

  it('refuses altered payloads and malformed envelopes', () => {
    const e = env[0]!;
    expect(trust.verifyIntakeEnvelope({ ...e, payload: Buffer.from('{"x":2}').toString('base64') }, 'acme').ok).toBe(false);
    expect(trust.verifyIntakeEnvelope({ ...e, payloadType: 'text/plain' }, 'acme').ok).toBe(false);
    for (const bad of [null, 'x', [], {}, { ...e, signatures: [] }, { ...e, payload: '***' }, { ...e, signatures: [{ keyid: 'ka' }] },
      { ...e, signatures: [{ keyid: 'ka', sig: 'AAAA' }] }, { ...e, payload: 5 }]) {
      expect(trust.verifyIntakeEnvelope(bad, 'acme').ok, JSON.stringify(bad)).toBe(false);
    }
  });
});

describe('the intake config section', () => {
  it('loads trust keys and limits, and reports every problem by key', () => {
    const problems: string[] = [];
    const c = parseIntakeSection({ trust: { acme: { keys: [{ keyid: 'ka', publicKey: keys.a }] } }, runtimeFacts: { maxBodyBytes: 4096 } }, '/d', problems);
    expect(problems).toEqual([]);
    expect(c.trust.acme!.keys[0]!.keyid).toBe('ka');
    expect(c.runtimeFacts.maxBodyBytes).toBe(4096);
    expect(c.casDir).toBe('/d/cas');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const file = { intake: { trust: { 'Bad Tenant': { keys: [] }, acme: { keys: [{ keyid: 'k', publicKey: rsa }, { keyid: 'k2', publicKey: 'nope' },
      { keyid: 'k3', publicKey: keys.a }, { keyid: 'k3', publicKey: keys.a }, { keyid: 'has space', publicKey: keys.a }] } },
    runtimeFacts: { maxLineBytes: 1, extra: 1 }, bogus: true } };
    let err: ConfigError | undefined;
    try { buildConfig(file, {}); } catch (e) { err = e as ConfigError; }
    expect(err).toBeInstanceOf(ConfigError);
    const text = err!.problems.join('\n');
    for (const want of [/intake\.trust\.Bad Tenant: tenant id must match/, /intake\.trust\.acme\.keys\[0\]\.publicKey must be an Ed25519 key \(got rsa\)/,
      /intake\.trust\.acme\.keys\[1\]\.publicKey must be a PEM/, /keys\[3\]\.keyid "k3" is configured twice/, /keys\[4\]\.keyid must be/,
      /intake\.runtimeFacts\.maxLineBytes must be an integer from 256/, /intake\.runtimeFacts\.extra is not a known key/, /intake\.bogus is not a known key/]) {
      expect(text).toMatch(want);
    }
  });

  it('defaults: no trust (so every envelope is refused), CAS under the data dir', () => {
    const cfg = buildConfig({ dataDir: '/srv/stella' }, {});
    expect(cfg.intake.trust).toEqual({});
    expect(cfg.intake.casDir).toBe('/srv/stella/cas');
    expect(new IntakeTrust(cfg.intake.trust).verifyIntakeEnvelope(env[0], 'acme').ok).toBe(false);
  });
});
