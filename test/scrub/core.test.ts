// The scanner's safety (pathological inputs), rule behaviours that matter, config validation,
// deep-debug grants, the raw->clean record verdicts and the `stella scrub` JSON command.
import { describe, expect, it } from 'vitest';
import { H } from '../../lib/kafka/topics.ts';
import { decodeTraces, encode, types } from '../../lib/otlp/proto.ts';
import { parseScrubConfig, policyFor, ScrubConfigError } from '../../processors/scrub/config.ts';
import { Tally, scrubberFor } from '../../processors/scrub/engine.ts';
import { GrantTracker, grantEvent } from '../../processors/scrub/grants.ts';
import { scrubRecord, sha256Hex } from '../../processors/scrub/record.ts';
import { scrubPolicyVersion } from '../../processors/scrub/policy-version.ts';
import { scrubJsonCommand } from '../../processors/scrub/cli.ts';
import { DEFAULT_RULES, isCardNumber } from '../../processors/scrub/rules.ts';
import { repoRootRule } from '../../processors/scrub/scanner.ts';
import { scrubRequest } from '../../processors/scrub/wire.ts';
import { MAX_SLOWDOWN, slowdown } from '../support/slowdown.ts';

const now = new Date('2026-11-23T12:00:00Z');
const defaults = scrubberFor(policyFor(parseScrubConfig({ defaults: { repoRoots: ['/home/alice/src/repo'] } }), 't'), now);
const scrub = (x: string) => defaults.string(x, new Tally());

describe('pathological inputs do not stall the scanner', () => {
  const MB = 1 << 20;
  const shapes: [string, string][] = [
    ['letters', 'a'.repeat(MB)],
    ['local-part run then @', 'a.b-c_d%e+f'.repeat(MB / 11) + '@'],
    ['@ runs', 'a@'.repeat(MB / 2)],
    ['digits', '4'.repeat(MB)],
    ['digit-dash', '4-'.repeat(MB / 2)],
    ['hex-colon', 'ab:'.repeat(MB / 3)],
    ['dotted digits', '1.'.repeat(MB / 2)],
    ['PEM headers', '-----BEGIN PRIVATE KEY-----'.repeat(MB / 27)],
    ['PEM body without end', '-----BEGIN RSA PRIVATE KEY-----\n' + 'QUFB'.repeat(MB / 4)],
    ['kv keys', 'password='.repeat(MB / 9)],
    ['kv separators', 'token:: '.repeat(MB / 8)],
    ['jwt-ish', 'eyJaaaaaaaaaa.'.repeat(MB / 14)],
    ['home paths', '/home/'.repeat(MB / 6)],
    ['url schemes', 'postgres://u:'.repeat(MB / 13)],
    ['bearer', 'Bearer '.repeat(MB / 7)],
    ['words', 'hello world '.repeat(MB / 12)],
    // the normalised view and the newer rules
    ['percent escapes', '%41'.repeat(MB / 3)],
    ['percent-encoded zero-width', '%E2%80%8B'.repeat(MB / 9)],
    ['broken percent', '%E2%zz%'.repeat(MB / 7)],
    ['zero-width', '\u200b'.repeat(MB)],
    ['full-width', '\uff20\uff41'.repeat(MB / 2)],
    ['combining marks', 'e' + '\u0301'.repeat(MB)],
    ['phone plus', '+1 '.repeat(MB / 3)],
    ['digit groups', '1234 '.repeat(MB / 5)],
    ['dotted groups', '4111.'.repeat(MB / 5)],
    ['ssn-like', '123-45-'.repeat(MB / 7)],
    ['iban-like', 'DE89 '.repeat(MB / 5)],
    ['base64 40s after aws', ('aws ' + 'Ab1'.repeat(13) + 'x ').repeat(MB / 45)],
    ['prose', 'password is '.repeat(MB / 12)],
    ['quoted local parts', '"a'.repeat(MB / 2)],
    ['tilde users', '~a'.repeat(MB / 2)],
  ];
  // Ordinary log text with every character feature (so the scan uses the full alternation), cut to
  // the hostile input's length: the hostile input may cost a few times more per character (IBAN-like
  // groups are ~4-5x), a super-linear scan of 1 MB costs hundreds of times more.
  const LOG_LINE = 'INFO handled request for order 42: status=ok, items=3, region eu-west.1, path /orders/list @web; retry 0\n';
  const benignOf = (length: number) => LOG_LINE.repeat(Math.ceil(length / LOG_LINE.length)).slice(0, length);
  it('the benign baseline holds nothing to redact', () => {
    const benign = benignOf(MB);
    expect(scrub(benign)).toBe(benign);
  });

  it.each(shapes)('%s (1 MB) scans at most a few times slower than benign text of the same size', (_name, input) => {
    const benign = benignOf(input.length);
    const s = slowdown(() => scrub(input), () => scrub(benign));
    expect(s.ratio, s.text).toBeLessThan(MAX_SLOWDOWN);
  });

  it('a 1 MB attribute value inside a span is scrubbed at most a few times slower than a benign one', () => {
    const huge = 'x'.repeat(512 * 1024) + ' alice@example.com ' + 'a@'.repeat(256 * 1024);
    const request = (value: string) => encode('traces', types.ExportTraceServiceRequest.fromObject({ resourceSpans: [{ scopeSpans: [{ spans: [{ name: 'op', attributes: [{ key: 'blob', value: { stringValue: value } }] }] }] }] }));
    const [hostileReq, benignReq] = [request(huge), request(benignOf(huge.length))];
    const policy = policyFor(parseScrubConfig({}), 't');
    const s = slowdown(() => scrubRequest('traces', hostileReq, policy, now), () => scrubRequest('traces', benignReq, policy, now));
    expect(s.ratio, s.text).toBeLessThan(MAX_SLOWDOWN);
    expect(scrubRequest('traces', hostileReq, policy, now).summary.rules.email).toBe(1);
    expect(scrubRequest('traces', benignReq, policy, now).summary.rules).toEqual({});
  });
});

describe('rule fragments are linear-time by construction', () => {
  // Strip escapes and character classes, then look for unbounded quantifiers (*, +, {n,}).
  const skeleton = (src: string) => src.replace(/\\./g, 'x').replace(/\[[^\]]*\]/g, 'x');
  it.each([...DEFAULT_RULES, repoRootRule(['/home/alice/src/repo'])!].map((r) => [r.id, r] as const))('%s has only bounded quantifiers', (_id, r) => {
    for (const part of [r.keep ?? '', r.value]) {
      const sk = skeleton(part);
      expect(sk, part).not.toMatch(/[*+]|\{\d+,\}/);
    }
  });
});

describe('rules', () => {
  it('checks cards with Luhn and brand prefixes', () => {
    expect(isCardNumber('4111111111111111')).toBe(true);
    expect(isCardNumber('4111111111111112')).toBe(false);
    expect(isCardNumber('1700000000000000000')).toBe(false); // a nanosecond timestamp, not a card
    expect(scrub('pan 4111 1111 1111 1111 36.5')).toBe('pan [REDACTED:card] 36.5');
  });
  it('rewrites paths: repo root to <repo>, home directories lose the user', () => {
    expect(scrub('at /home/alice/src/repo/a/b.ts:3')).toBe('at <repo>/a/b.ts:3');
    expect(scrub('/home/alice/x')).toBe('/home/<user>/x');
    expect(scrub('/Users/bob/Library/x')).toBe('/Users/<user>/Library/x');
    expect(scrub('/var/lib/app/x')).toBe('/var/lib/app/x');
    expect(scrub('see ~alice/notes and ~/x, ~5 minutes')).toBe('see ~<user>/notes and ~/x, ~5 minutes');
  });
  it('keeps what surrounds a secret: scheme, user, key names', () => {
    expect(scrub('postgres://svc:pa#ss@db:5432/x')).toBe('postgres://svc:[REDACTED:url_password]@db:5432/x');
    expect(scrub('Authorization: Bearer abc.def.ghi123')).toBe('Authorization: [REDACTED:authorization]');
    expect(scrub('retry with bearer abcdefgh1234')).toBe('retry with bearer [REDACTED:bearer]');
    expect(scrub('bearer of bad news, basic plan')).toBe('bearer of bad news, basic plan');
    expect(scrub('export GITHUB_TOKEN=ghp_' + 'a1'.repeat(18))).toBe('export GITHUB_TOKEN=[REDACTED:github_token]');
    // The kept prefix of a keyword rule is scanned too: a token used as the URL user name goes.
    expect(scrub('https://ghp_' + 'a1'.repeat(18) + ':x-oauth-basic@github.com/o/r.git')).toBe('https://[REDACTED:github_token]:[REDACTED:url_password]@github.com/o/r.git');
    expect(scrub('curl -u admin:s3cret https://registry.example.com/v2/')).toBe('curl -u admin:[REDACTED:cli_password] https://registry.example.com/v2/');
  });
  it('sees through percent-encoding, full-width forms and invisible characters, and rewrites only the secret', () => {
    expect(scrub('GET /u?email=alice%40example.com&x=%C3%A9')).toBe('GET /u?email=[REDACTED:email]&x=%C3%A9');
    expect(scrub('q=password%3Dhunter2&page=2')).toBe('q=password%3D[REDACTED:kv_secret]&page=2');
    expect(scrub('from bob\uff20example.com (café)')).toBe('from [REDACTED:email] (café)');
    expect(scrub('tok ghp_' + 'a1'.repeat(9) + '\u200b' + 'a1'.repeat(9) + ' end')).toBe('tok [REDACTED:github_token] end');
    expect(scrub('pan 4111\u00a01111\u00a01111\u00a01111')).toBe('pan [REDACTED:card]');
    // Nothing to find: the very same string (no re-encoding, no normalisation of the output).
    for (const clean of ['caf%C3%A9 50% off', 'ﬁle ＡＢＣ', 'zero\u200bwidth', 'e\u0301t\u00e9', '%zz%4']) {
      expect(scrub(clean)).toBe(clean);
    }
  });
  it('gives a disguised secret the pseudonym of its plain form', () => {
    const cfg = parseScrubConfig({ tenants: { p: { pseudonymKey: 'hex:000102030405060708090a0b0c0d0e0f', rules: { email: 'pseudonym' } } } });
    const sp = scrubberFor(policyFor(cfg, 'p'), now);
    const plain = sp.string('alice@example.com', new Tally());
    expect(sp.string('alice\uff20example.com', new Tally())).toBe(plain);
    expect(sp.string('alice%40example.com', new Tally())).toBe(plain);
  });
  it('checks national ids, IBANs and phone numbers by check digit or numbering plan', () => {
    expect(scrub('IBAN DE89 3704 0044 0532 0130 00')).toBe('IBAN [REDACTED:iban]');
    expect(scrub('IBAN DE89 3704 0044 0532 0130 01')).toBe('IBAN DE89 3704 0044 0532 0130 01'); // mod-97 fails
    expect(scrub('cpf 111.444.777-35 / 111.444.777-36')).toBe('cpf [REDACTED:br_cpf] / 111.444.777-36');
    expect(scrub('aadhaar 2345 6789 0124, 2345 6789 0125')).toBe('aadhaar [REDACTED:in_aadhaar], 2345 6789 0125'); // Verhoeff
    expect(scrub('dni 12345678Z 12345678A')).toBe('dni [REDACTED:es_dni] 12345678A');
    expect(scrub('SIN 046-454-286 046-454-287')).toBe('SIN [REDACTED:ca_sin] 046-454-287'); // Luhn
    expect(scrub('SSN 123-45-6789, not 000-45-6789 nor 666-12-3456')).toBe('SSN [REDACTED:us_ssn], not 000-45-6789 nor 666-12-3456');
    expect(scrub('ssn 078051120 vs id 078051120')).toBe('ssn [REDACTED:us_ssn] vs id 078051120'); // bare digits only when named
    expect(scrub('+1 (415) 555-2671 / +1 (115) 555-2671')).toBe('[REDACTED:phone] / +1 (115) 555-2671'); // NANP area code
    expect(scrub('tel: 020 7946 0958, ref 020 7946 0958')).toBe('tel: [REDACTED:phone], ref 020 7946 0958');
    expect(scrub('card 4111.1111.1111.1111, pi 41.11111111111111')).toBe('card [REDACTED:card], pi 41.11111111111111');
  });
  it('redacts a bare AWS secret access key only where it is named, never a SHA-1', () => {
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    expect(scrub(`aws_secret_access_key ${secret}`)).toBe('aws_secret_access_key [REDACTED:aws_secret_key]');
    expect(scrub(`AKIAIOSFODNN7EXAMPLE,${secret}`)).toBe('[REDACTED:aws_access_key],[REDACTED:aws_secret_key]');
    expect(scrub(`blob ${secret}`)).toBe(`blob ${secret}`);
    expect(scrub('aws sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709')).toBe('aws sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709');
  });
  it('reads prose: "password is ..." unless the word is an ordinary one', () => {
    expect(scrub('my password is hunter2.')).toBe('my password is [REDACTED:prose_secret].');
    expect(scrub('password for bob is swordfish')).toBe('password for bob is [REDACTED:prose_secret]');
    for (const x of ['the password is incorrect', 'password is required', 'token was revoked', 'the secret is missing', 'pin is set']) expect(scrub(x)).toBe(x);
  });
  it('can turn IP redaction off per tenant', () => {
    const noIp = scrubberFor(policyFor(parseScrubConfig({ tenants: { acme: { ip: false } } }), 'acme'), now);
    expect(noIp.string('from 203.0.113.9 alice@example.com', new Tally())).toBe('from 203.0.113.9 [REDACTED:email]');
  });
});

describe('parseScrubConfig', () => {
  const bad = (raw: unknown, msg: RegExp) => expect(() => parseScrubConfig(raw, {})).toThrow(msg);
  it('names the offending path in every error', () => {
    bad({ tenants: { acme: { rules: { emial: 'off' } } } }, /tenants\.acme\.rules\.emial: unknown rule or family/);
    bad({ tenants: { acme: { rules: { email: 'hash' } } } }, /tenants\.acme\.rules\.email: must be placeholder, pseudonym or off/);
    bad({ tenants: { acme: { rules: { email: 'pseudonym' } } } }, /tenants\.acme\.pseudonymKey: is required/);
    bad({ tenants: { acme: { pseudonymKey: 'hex:00' } } }, /at least 16 bytes/);
    bad({ tenants: { acme: { pseudonymKey: { env: 'NOPE' } } } }, /environment variable NOPE is not set/);
    bad({ tenants: { Acme: {} } }, /tenants\.Acme: tenant id/);
    bad({ tenants: { acme: { repoRoots: ['src/repo'] } } }, /repoRoots\[0\]: must be an absolute path/);
    bad({ tenants: { acme: { colour: 1 } } }, /tenants\.acme\.colour: unknown key/);
    bad({ tenants: { acme: { deepDebug: [{ id: 'g', rules: ['email'], startsAt: '2026-11-23T00:00:00Z', expiresAt: '2026-12-23T00:00:00Z', actor: 'ops', reason: 'r' }] } } }, /at most 7 days/);
    bad({ tenants: { acme: { deepDebug: [{ id: 'g', rules: ['email'], startsAt: '2026-11-23T00:00:00Z', expiresAt: 'soon', actor: 'ops', reason: 'r' }] } } }, /expiresAt: must be an RFC 3339/);
    expect(() => parseScrubConfig(7)).toThrow(ScrubConfigError);
  });
  it('applies families, then rules, and resolves keys from the environment', () => {
    const cfg = parseScrubConfig({ tenants: { acme: { pseudonymKey: { env: 'K' }, rules: { token: 'pseudonym', aws_access_key: 'off' } } } }, { K: 'base64:' + Buffer.alloc(32, 7).toString('base64') });
    const p = policyFor(cfg, 'acme');
    expect(p.styles.get('github_token')).toBe('pseudonym');
    expect(p.styles.has('aws_access_key')).toBe(false);
    expect(p.styles.get('email')).toBe('placeholder');
    expect(policyFor(cfg, 'other').styles.get('github_token')).toBe('placeholder');
  });
});

describe('deep debug', () => {
  const cfg = parseScrubConfig({ tenants: { acme: { deepDebug: [{ id: 'INC-42', rules: ['email', 'ip'], startsAt: '2026-11-23T12:00:00Z', expiresAt: '2026-11-23T13:00:00Z', actor: 'ops-7', reason: 'checkout incident' }] } } });
  const policy = policyFor(cfg, 'acme');
  const x = 'alice@example.com from 203.0.113.9 token=abcdef';
  it('relaxes the named rules only while the grant is active, then expires by itself', () => {
    expect(scrubberFor(policy, new Date('2026-11-23T11:59:59Z')).string(x, new Tally())).toBe('[REDACTED:email] from [REDACTED:ipv4] token=[REDACTED:kv_secret]');
    const during = scrubberFor(policy, new Date('2026-11-23T12:30:00Z'));
    expect(during.string(x, new Tally())).toBe('alice@example.com from 203.0.113.9 token=[REDACTED:kv_secret]');
    expect([...during.relaxed].sort()).toEqual(['email', 'ipv4', 'ipv6']);
    expect(scrubberFor(policy, new Date('2026-11-23T13:00:00Z')).string(x, new Tally())).toBe('[REDACTED:email] from [REDACTED:ipv4] token=[REDACTED:kv_secret]');
    expect(scrubberFor(policyFor(cfg, 'other'), new Date('2026-11-23T12:30:00Z')).string(x, new Tally())).toContain('[REDACTED:email]');
  });
  it('reports grant start and expiry once each, with stable event ids', () => {
    const tr = new GrantTracker(cfg);
    expect(tr.due(new Date('2026-11-23T11:00:00Z'))).toEqual([]);
    const started = tr.due(new Date('2026-11-23T12:00:01Z'));
    expect(started.map((e) => e.kind)).toEqual(['scrub.deep_debug.granted']);
    expect(started[0]).toMatchObject({ tenant_id: 'acme', actor: 'ops-7', resource_type: 'scrub_grant', resource_id: 'INC-42',
      ts: '2026-11-23T12:00:00.000000000Z', ts_unix_nano: '1795435200000000000', details: { rules: ['email', 'ip'], reason: 'checkout incident' } });
    expect(tr.due(new Date('2026-11-23T12:00:02Z'))).toHaveLength(1); // not acked yet: still due
    tr.ack(started);
    expect(tr.due(new Date('2026-11-23T12:30:00Z'))).toEqual([]);
    const expired = tr.due(new Date('2026-11-23T13:00:00Z'));
    expect(expired.map((e) => [e.kind, e.actor])).toEqual([['scrub.deep_debug.expired', 'system:stella-scrub']]);
    tr.ack(expired);
    expect(tr.due(new Date('2026-11-24T00:00:00Z'))).toEqual([]);
    // A restarted scrubber re-announces with the same ids (the timeline deduplicates by event_id).
    expect(new GrantTracker(cfg).due(new Date('2026-11-24T00:00:00Z')).map((e) => e.event_id)).toEqual([started[0]!.event_id, expired[0]!.event_id]);
    expect(grantEvent('acme', policyFor(cfg, 'acme').grants[0]!, 'scrub.deep_debug.granted').event_id).toMatch(/^[0-9a-f]{32}$/);
    // A reloaded config with a new grant: only the new grant is due.
    tr.setConfig(parseScrubConfig({ tenants: { acme: { deepDebug: [
      { id: 'INC-42', rules: ['email', 'ip'], startsAt: '2026-11-23T12:00:00Z', expiresAt: '2026-11-23T13:00:00Z', actor: 'ops-7', reason: 'checkout incident' },
      { id: 'INC-43', rules: ['card'], startsAt: '2026-11-24T00:00:00Z', expiresAt: '2026-11-24T01:00:00Z', actor: 'ops-2', reason: 'refunds' }] } } }));
    expect(tr.due(new Date('2026-11-24T00:30:00Z')).map((e) => [e.resource_id, e.kind])).toEqual([['INC-43', 'scrub.deep_debug.granted']]);
  });
  it('marks the batch summary with the relaxed rules', () => {
    const req = encode('traces', types.ExportTraceServiceRequest.fromObject({ resourceSpans: [{ scopeSpans: [{ spans: [{ name: 'x', attributes: [{ key: 'a', value: { stringValue: x } }] }] }] }] }));
    expect(scrubRequest('traces', req, policy, new Date('2026-11-23T12:30:00Z')).summary.relaxed).toEqual(['email', 'ipv4', 'ipv6']);
  });
});

describe('scrubRecord', () => {
  const cfg = parseScrubConfig({});
  const raw = (name: string) => Buffer.from(encode('traces', types.ExportTraceServiceRequest.fromObject({ resourceSpans: [{ scopeSpans: [{ spans: [{ name, traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 1) }] }] }] })));
  const rec = (value: Buffer, key: string | null = 'acme', extra: Record<string, string> = {}) => ({ key, value, headers: { [H.tenant]: key ?? '', [H.contentSha256]: sha256Hex(value), traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', ...extra } });

  it('scrubs, recomputes content-sha256, carries headers and adds the summary header', () => {
    const v = scrubRecord('traces', rec(raw('GET /u/alice@example.com')), cfg, now);
    if (v.kind !== 'clean') throw new Error(v.reason);
    expect(decodeTraces(v.value).resourceSpans[0]!.scopeSpans[0]!.spans[0]!.name).toBe('GET /u/[REDACTED:email]');
    expect(v.headers[H.contentSha256]).toBe(sha256Hex(v.value));
    expect(v.headers.traceparent).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    expect(JSON.parse(v.headers[H.scrubSummary]!)).toEqual({ v: 1, total: 1, items: 1, rules: { email: 1 } });
    expect(v.headers[H.scrubSummary]).not.toContain('alice');
  });
  it('carries only trace context and the sampling threshold: any other producer header (free text nothing scrubs) is dropped', () => {
    const secrets = { 'x-api-key': 'AKIAIOSFODNN7EXAMPLE', authorization: 'Bearer hunter2', 'x-user': 'alice@example.com' };
    const v = scrubRecord('traces', rec(raw('GET /healthz'), 'acme', { ...secrets, tracestate: 'ot=th:c', [H.samplingTh]: 'c' }), cfg, now);
    if (v.kind !== 'clean') throw new Error(v.reason);
    expect(Object.keys(v.headers).sort()).toEqual([H.contentSha256, H.rawContentSha256, H.samplingTh, H.scrubPolicy, H.scrubSummary, H.tenant, 'traceparent', 'tracestate'].sort());
    expect(JSON.stringify(v.headers)).not.toMatch(/AKIA|hunter2|alice/);
  });
  it('keeps the exact bytes of a record with nothing to redact', () => {
    const value = raw('GET /healthz');
    const v = scrubRecord('traces', rec(value), cfg, now);
    expect(v.kind === 'clean' && v.value).toBe(value);
  });
  it('sends undecodable, mismatched or unkeyed records to the DLQ with a reason', () => {
    const junk = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
    expect(scrubRecord('traces', rec(junk), cfg, now)).toMatchObject({ kind: 'dlq', reason: expect.stringMatching(/^scrub: undecodable traces request/) });
    expect(scrubRecord('traces', { ...rec(raw('x')), headers: { [H.contentSha256]: '00' } }, cfg, now)).toMatchObject({ kind: 'dlq', reason: expect.stringMatching(/content-sha256/) });
    expect(scrubRecord('traces', rec(raw('x'), null), cfg, now)).toMatchObject({ kind: 'dlq', reason: expect.stringMatching(/tenant id/) });
    expect(scrubRecord('traces', rec(raw('x'), 'acme', { [H.tenant]: 'other' }), cfg, now)).toMatchObject({ kind: 'dlq', reason: expect.stringMatching(/tenant header/) });
  });
  it('custody from receipt: the raw digest as received and the policy version go onto the clean record; a producer cannot set them', () => {
    const value = raw('GET /u/alice@example.com');
    const forged = { [H.rawContentSha256]: 'f'.repeat(64), [H.scrubPolicy]: `sha256:${'0'.repeat(64)}` };
    const v = scrubRecord('traces', rec(value, 'acme', forged), cfg, now);
    if (v.kind !== 'clean') throw new Error(v.reason);
    expect(v.headers[H.rawContentSha256]).toBe(sha256Hex(value));
    expect(v.headers[H.contentSha256]).toBe(sha256Hex(v.value));
    expect(v.headers[H.contentSha256]).not.toBe(v.headers[H.rawContentSha256]);
    expect(v.headers[H.scrubPolicy]).toBe(scrubPolicyVersion(policyFor(cfg, 'acme'), new Set()));
    expect(v.headers[H.scrubPolicy]).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Unchanged bytes: both digests are the raw one. No receiver header: computed from the bytes.
    const same = raw('GET /healthz');
    const u = scrubRecord('traces', { key: 'acme', value: same, headers: {} }, cfg, now);
    expect(u.kind === 'clean' && [u.headers[H.rawContentSha256], u.headers[H.contentSha256]]).toEqual([sha256Hex(same), sha256Hex(same)]);
  });
  it('the scrub policy version is stable across restarts and changes with the effective rules, styles, key and grants', () => {
    const version = (c: unknown, tenant = 'acme', at = now) => {
      const v = scrubRecord('traces', rec(raw('GET /x'), tenant), parseScrubConfig(c, { K1: 'hex:' + '11'.repeat(16), K2: 'hex:' + '22'.repeat(16) }), at);
      if (v.kind !== 'clean') throw new Error(v.reason);
      return v.headers[H.scrubPolicy]!;
    };
    const base = { tenants: { acme: { pseudonymKey: { env: 'K1' }, rules: { email: 'pseudonym' } } } };
    const v0 = version(base);
    expect(version(JSON.parse(JSON.stringify(base)))).toBe(v0); // a fresh parse (a restart) gives the same version
    expect(version({ tenants: { acme: { ...base.tenants.acme, rules: { email: 'placeholder' } } } })).not.toBe(v0);
    expect(version({ tenants: { acme: { ...base.tenants.acme, rules: { email: 'pseudonym', ip: 'off' } } } })).not.toBe(v0);
    expect(version({ tenants: { acme: { ...base.tenants.acme, pseudonymKey: { env: 'K2' } } } })).not.toBe(v0);
    expect(version({ tenants: { acme: { ...base.tenants.acme, sensitiveKeys: ['pin'] } } })).not.toBe(v0);
    expect(v0).not.toContain('11'.repeat(16));
    // A deep-debug grant changes the version only while it relaxes rules; its actor and reason do not enter.
    const grant = (actor: string) => ({ tenants: { acme: { ...base.tenants.acme, deepDebug: [{ id: 'INC-1', rules: ['email'], startsAt: '2026-11-23T12:00:00Z', expiresAt: '2026-11-23T13:00:00Z', actor, reason: 'r' }] } } });
    expect(version(grant('ops-1'), 'acme', new Date('2026-11-23T11:00:00Z'))).toBe(v0);
    const during = version(grant('ops-1'), 'acme', new Date('2026-11-23T12:30:00Z'));
    expect(during).not.toBe(v0);
    expect(version(grant('ops-2'), 'acme', new Date('2026-11-23T12:30:00Z'))).toBe(during);
    // Tenants under the same defaults share a version.
    expect(version({}, 'acme')).toBe(version({}, 'beta'));
  });
});

describe('stella scrub (scrubJsonCommand)', () => {
  const doc = { resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'api' } }] }, scopeLogs: [{ scope: { name: 's' }, logRecords: [{
    timeUnixNano: '1700000000000000000', severityNumber: 9, traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7',
    body: { stringValue: 'login alice@example.com' }, attributes: [{ key: 'n', value: { intValue: '7' } }] }] }] }] };
  it('scrubs OTLP JSON and keeps hex ids, int enums and string int64s', () => {
    const out = JSON.parse(scrubJsonCommand(JSON.stringify(doc)));
    const r = out.resourceLogs[0].scopeLogs[0].logRecords[0];
    expect(r.body.stringValue).toBe('login [REDACTED:email]');
    expect(r.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(r.spanId).toBe('00f067aa0ba902b7');
    expect(r.severityNumber).toBe(9);
    expect(r.timeUnixNano).toBe('1700000000000000000');
    expect(r.attributes[0]).toEqual({ key: 'n', value: { intValue: '7' } });
  });
  it('handles JSON Lines, a tenant policy, and is idempotent', () => {
    const cfg = parseScrubConfig({ tenants: { acme: { pseudonymKey: 'hex:' + '11'.repeat(16), rules: { email: 'pseudonym' } } } });
    const lines = [JSON.stringify(doc), JSON.stringify(doc)].join('\n');
    const out = scrubJsonCommand(lines, { config: cfg, tenant: 'acme' });
    const [a, b] = out.trim().split('\n').map((l) => JSON.parse(l));
    expect(a.resourceLogs[0].scopeLogs[0].logRecords[0].body.stringValue).toMatch(/^login \[email:[0-9a-f]{12}\]$/);
    expect(b).toEqual(a);
    expect(scrubJsonCommand(out, { config: cfg, tenant: 'acme' })).toBe(out);
  });
  it('explains bad input', () => {
    expect(() => scrubJsonCommand('')).toThrow(/no input/);
    expect(() => scrubJsonCommand('{"foo": 1}')).toThrow(/resourceSpans, resourceLogs or resourceMetrics/);
    expect(() => scrubJsonCommand('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}')).toThrow(/traceId must be 32 hex characters \(got 2 characters\)/);
    expect(() => scrubJsonCommand('{"resourceSpans": []}\nnot json')).toThrow(/line 2 is not JSON/);
  });
});

describe('clean-value byte cache', () => {
  it('never lets a value through on a hash match alone: a secret sharing head, tail and length with a cached clean value is redacted', () => {
    const policy = policyFor(parseScrubConfig({}), 'bytecache');
    const head = 'GET /api/v1/orders/items?page=1 ', tail = ' sort=created_at&limit=50&x=y ok';
    const clean = head + 'nothing to see here, really!' + tail;
    const secret = head + 'mail alice@example.com now !' + tail;
    expect(secret.length).toBe(clean.length);
    const req = (v: string) => encode('traces', types.ExportTraceServiceRequest.fromObject({ resourceSpans: [{ scopeSpans: [{ spans: [{ name: 'op', attributes: [{ key: 'q', value: { stringValue: v } }] }] }] }] }));
    const s = scrubberFor(policy, now);
    for (let i = 0; i < 3; i++) expect(scrubRequest('traces', req(clean), policy, now).summary.total).toBe(0); // admitted on its second sighting
    const cachedBefore = s.stats.cached;
    expect(scrubRequest('traces', req(clean), policy, now).summary.total).toBe(0);
    expect(s.stats.cached).toBe(cachedBefore + 1); // the clean value is answered by the cache...
    const out = scrubRequest('traces', req(secret), policy, now);
    expect(out.summary.rules).toEqual({ email: 1 }); // ...its look-alike is scanned
    expect(decodeTraces(out.value).resourceSpans[0]!.scopeSpans[0]!.spans[0]!.attributes[0]!.value!.stringValue).toContain('[REDACTED:email]');
  });
});
