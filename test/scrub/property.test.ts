// Properties over generated inputs: scrubbing is idempotent, and no rule matches anything in the
// scrubber's own output (placeholders and pseudonyms are inert), for both redaction styles.
import { describe, expect, it } from 'vitest';
import { parseScrubConfig, policyFor } from '../../processors/scrub/config.ts';
import { Tally, scrubberFor } from '../../processors/scrub/engine.ts';
import { findAll, findAllNormalized } from '../../processors/scrub/scanner.ts';
import { gen, prng } from './support.ts';
import { scrubRequest } from '../../processors/scrub/wire.ts';
import { encode, types } from '../../lib/otlp/proto.ts';

const FRAGMENTS = ['hello', 'GET', '/api/v1/users', 'user', 'password', 'token', 'secret', 'Bearer', 'basic', 'Authorization:', 'Cookie:',
  'set-cookie', '=', ':', '::', '@', '://', 'https://', 'postgres://u:', '-----BEGIN PRIVATE KEY-----', '-----END PRIVATE KEY-----', '[', ']', '<', '>',
  '/home/', '/Users/', '/home/alice/src/repo', '10.0.0.', '2001:db8', 'eyJ', 'sk_live_', 'ghp_', 'AKIA', '?', '&', 'sig=', '"', "'", ',', ';',
  'curl -u a:', '--user=', '[REDACTED:email]', '[email:0123456789ab]', '<user>', '<repo>', 'REDACTED', 'x'.repeat(40), '4111', '1111', '-', '_', '.', 'example.com',
  // disguises (normalised view) and the shapes of the newer rules
  '%40', '%3D', '%2F', '%20', '%', '%E2%80%8B', '\u200b', '\u00ad', '\uff20', '\uff1d', '\uff14\uff11', '\u3002', 'é', '用户', '"john doe"@', '~alice/',
  'password is ', 'my pin is ', 'ssn ', '123-45-6789', '+1 (415) 555-2671', '+44 20 7946 0958', 'tel: 020 7946 0958', 'DE89 3704 0044 0532 0130 00',
  'GB82WEST12345698765432', '111.444.777-35', '12345678Z', 'AB 12 34 56 C', '2345 6789 0124', '046-454-286', '4111.1111.1111.1111', 'aws ',
  'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'];
const SLOTS = ['aws_secret', 'aws_access_key', 'github_token', 'gitlab_token', 'slack_token', 'slack_webhook', 'stripe_key', 'gcp_api_key', 'jwt', 'opaque', 'basic',
  'password', 'card', 'traceid', 'uuid', 'sha256', 'b64id', 'ts_iso', 'openai_key', 'sendgrid_key', 'vault_token'];
const SEPS = ['', ' ', ' ', '\n', '=', ': ', '/', '&', '"', ', '];

/** A tiny generator: fragments, synthetic secrets, e-mails, IPs and separators glued at random. */
function randomText(seed: number): string {
  const rand = prng(seed);
  const g = gen(rand);
  const n = 1 + Math.floor(rand() * 14);
  let s = '';
  for (let i = 0; i < n; i++) {
    const r = rand();
    const piece = r < 0.45 ? g.pick(FRAGMENTS)
      : r < 0.75 ? g.slots[g.pick(SLOTS)]!()
      : r < 0.85 ? `${g.str('abcdefgh.', 1 + Math.floor(rand() * 8))}@${g.pick(['example.com', 'ex.io', 'a.b.example.org'])}`
      : r < 0.92 ? `${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}`
      : g.pem(g.pick(['RSA', 'EC', '']));
    s += piece + g.pick(SEPS);
  }
  return s;
}

const config = parseScrubConfig({
  defaults: { repoRoots: ['/home/alice/src/repo'] },
  tenants: { pseudo: { pseudonymKey: 'hex:000102030405060708090a0b0c0d0e0f', rules: { email: 'pseudonym', token: 'pseudonym', path: 'pseudonym', ip: 'pseudonym', sensitive_key: 'pseudonym' } } },
});
const now = new Date('2026-11-23T12:00:00Z');

describe.each(['default', 'pseudo'])('scrub properties (%s style)', (tenant) => {
  const s = scrubberFor(policyFor(config, tenant), now);
  const once = (x: string) => s.string(x, new Tally());

  it('is idempotent and leaves nothing any rule matches, over 3000 generated strings', () => {
    let changed = 0;
    for (let seed = 1; seed <= 3000; seed++) {
      const x = randomText(seed);
      const y = once(x);
      if (y !== x) changed++;
      const z = once(y);
      expect(z, `seed ${seed}: ${JSON.stringify(x)}`).toBe(y);
      const left = [...findAll(y, s.scanner), ...findAllNormalized(y, s.scanner)].map((f) => `${f.rule.id}:${JSON.stringify(f.value)}`);
      expect(left, `seed ${seed}: ${JSON.stringify(x)} -> ${JSON.stringify(y)}`).toEqual([]);
    }
    // The generator must actually exercise the rules, or the property says nothing.
    expect(changed).toBeGreaterThan(2000);
  });

  it('is idempotent on attribute trees, including sensitive keys and nested values (wire path)', () => {
    const policy = policyFor(config, tenant);
    for (let seed = 1; seed <= 300; seed++) {
      const attributes = [
        { key: 'db.password', value: { stringValue: randomText(seed) } },
        { key: 'msg', value: { stringValue: randomText(seed + 1) } },
        { key: 'nested', value: { kvlistValue: { values: [{ key: 'api_key', value: { intValue: seed } }, { key: 'list', value: { arrayValue: { values: [{ stringValue: randomText(seed + 2) }] } } }] } } },
      ];
      const req = encode('traces', types.ExportTraceServiceRequest.fromObject({ resourceSpans: [{ scopeSpans: [{ spans: [{ name: randomText(seed + 3), attributes }] }] }] }));
      const once = scrubRequest('traces', req, policy, now);
      expect(once.summary.total).toBeGreaterThan(0); // db.password at least
      const twice = scrubRequest('traces', once.value, policy, now);
      expect(twice.value).toBe(once.value); // nothing left to redact: the exact same bytes
      expect(twice.summary.total).toBe(0);
    }
  });
});

describe('pseudonyms', () => {
  it('are keyed per tenant: stable within a tenant, different across keys, and unreadable', () => {
    const cfg = parseScrubConfig({ tenants: {
      a: { pseudonymKey: 'hex:000102030405060708090a0b0c0d0e0f', rules: { email: 'pseudonym' } },
      b: { pseudonymKey: 'hex:ff0102030405060708090a0b0c0d0e0f', rules: { email: 'pseudonym' } } } });
    const sa = scrubberFor(policyFor(cfg, 'a'), now);
    const sb = scrubberFor(policyFor(cfg, 'b'), now);
    const x = 'mail from alice@example.com to bob@example.com';
    const a1 = sa.string(x, new Tally());
    const m = /^mail from (\[email:[0-9a-f]{12}\]) to (\[email:[0-9a-f]{12}\])$/.exec(a1);
    expect(m).not.toBeNull();
    expect(sa.string('again alice@example.com', new Tally())).toBe(`again ${m![1]}`);
    expect(m![1]).not.toBe(m![2]);
    expect(sb.string(x, new Tally())).not.toBe(a1);
    expect(a1).not.toContain('alice');
  });
});
