// SLO YAML: a full valid file normalizes as documented; invalid files fail with every problem
// named by its path.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseSloConfig, SloConfigError, sliFingerprint } from '../../processors/slo/config.ts';
import { requireBinary } from './helpers.ts';

const fixture = readFileSync(new URL('./fixtures/slos.yaml', import.meta.url), 'utf8');

function problemsOf(yaml: string): string[] {
  try {
    parseSloConfig(yaml);
  } catch (e) {
    expect(e).toBeInstanceOf(SloConfigError);
    return (e as SloConfigError).problems;
  }
  throw new Error('expected the config to be rejected');
}

const base = (sli: string, extra = '') => `
slos:
  - name: a
    tenant: t
    service: s
    objective: 0.99${extra}
    sli:
${sli}`;

describe('parseSloConfig', () => {
  it('normalizes the documented example file', () => {
    const { slos } = parseSloConfig(fixture);
    expect(slos).toHaveLength(4);
    const [checkout, policy, api, hist] = slos;
    expect(checkout).toMatchObject({
      name: 'checkout-availability', tenant: 'acme', objective: 0.999, windowMs: 30 * 86_400_000, minEvents: 20, latenessMs: 300_000,
      runbook: 'https://runbooks.example/slo/checkout-availability',
      sli: { type: 'availability', source: 'spans', spans: { name: 'POST /checkout', kind: 'server' } },
    });
    expect(policy!.sli).toMatchObject({ type: 'latency', thresholdMs: 2000, spans: { name: 'policy.evaluate', kind: 'any' } });
    expect(policy!.journey).toBe('policy-evaluation');
    expect(api!.minEvents).toBe(50);
    expect(api!.runbook).toBe('https://wiki.example/api-down');
    expect(api!.journey).toBe('api-availability'); // defaults to the name
    expect(api!.sli.spans!.nameRegex!.test('GET /v2/items')).toBe(true);
    expect(api!.sli.spans!.nameRegex!.test('xGET /v2/items')).toBe(false); // anchored
    expect(hist!.sli).toMatchObject({ source: 'metric', thresholdMs: 500, metric: { name: 'http.server.request.duration', attributes: { 'http.route': '/search' } } });
  });

  it('reports objective outside (0,1) with its path', () => {
    expect(problemsOf(base('      type: availability\n      spans: {}').replace('0.99', '1'))).toEqual(['slos[0].objective must be in (0,1) (got 1)']);
    expect(problemsOf(base('      type: availability\n      spans: {}').replace('0.99', '0'))).toEqual(['slos[0].objective must be in (0,1) (got 0)']);
    expect(problemsOf(base('      type: availability\n      spans: {}').replace('0.99', '"100%"'))).toEqual(['slos[0].objective must be in (0,1) (got 1)']);
    expect(problemsOf(base('      type: availability\n      spans: {}').replace('0.99', 'high'))[0]).toMatch(/^slos\[0\]\.objective must be a number/);
  });

  it('names the third SLO when only it is wrong', () => {
    const doc = parseSloConfig(fixture); // sanity: the fixture itself is valid
    expect(doc.slos).toHaveLength(4);
    const bad = fixture.replace('objective: 0.995', 'objective: 1.5');
    expect(problemsOf(bad)).toEqual(['slos[2].objective must be in (0,1) (got 1.5)']);
  });

  it('lists every problem at once, each with a path', () => {
    const problems = problemsOf(`
slos:
  - name: Bad Name
    service: s
    objective: 0.9
    window: 7d
    sli:
      type: latency
      spans: { kind: sideways }
  - name: ok
    tenant: t
    service: s
    objective: 0.9
    colour: blue
    sli:
      type: availability
      threshold: 1s
      spans: {}
      metric: { name: m }
  - name: ok
    tenant: t
    service: s
    objective: 0.9
    sli: { type: latency, threshold: fast, metric: { name: m } }
`);
    expect(problems).toEqual(expect.arrayContaining([
      expect.stringMatching(/^slos\[0\]\.name must match/),
      'slos[0].tenant is required',
      'slos[0].window must be 30d (the burn-rate factors assume a 30-day budget)',
      'slos[0].sli.threshold is required for latency SLIs (e.g. "2s")',
      expect.stringMatching(/^slos\[0\]\.sli\.spans\.kind must be one of internal, server, client, producer, consumer, any/),
      expect.stringMatching(/^slos\[1\]\.colour is not a known field/),
      'slos[1].sli.threshold applies only to latency SLIs',
      'slos[1].sli needs exactly one of spans or metric',
      'slos[2].sli.threshold must be a positive duration like "2s" or "250ms"',
    ]));
  });

  it('rejects duplicate names per tenant, bad regexes and bad defaults', () => {
    expect(problemsOf(`
defaults: { minEvents: -1, lateness: 1d }
slos:
  - { name: a, tenant: t, service: s, objective: 0.9, sli: { type: availability, spans: {} } }
  - { name: a, tenant: t, service: s, objective: 0.9, sli: { type: availability, spans: {} } }
  - { name: a, tenant: u, service: s, objective: 0.9, sli: { type: availability, spans: {} } }
  - { name: b, tenant: t, service: s, objective: 0.9, sli: { type: availability, spans: { nameRegex: "(" } } }
`)).toEqual([
      'defaults.minEvents must be a non-negative integer',
      'defaults.lateness must be at most 6h',
      'slos[1].name "a" duplicates slos[0] for tenant "t"',
      expect.stringMatching(/^slos\[3\]\.sli\.spans\.nameRegex is not a valid regular expression/),
    ]);
  });

  it('rejects non-YAML and wrong top-level shapes clearly', () => {
    expect(problemsOf('slos: [')[0]).toMatch(/^YAML syntax:/);
    expect(problemsOf('- 1')).toEqual(['top level must be a mapping with a `slos` list']);
    expect(problemsOf('slos: {}')).toEqual(['slos must be a list']);
  });

  it('fingerprints what the buckets mean, not the alerting knobs', () => {
    const a = parseSloConfig(fixture).slos[1]!;
    const b = parseSloConfig(fixture.replace('objective: 0.95 ', 'objective: 0.9 ')).slos[1]!;
    const c = parseSloConfig(fixture.replace('threshold: 2s', 'threshold: 3s')).slos[1]!;
    expect(b.objective).toBe(0.9);
    expect(sliFingerprint(a)).toBe(sliFingerprint(b)); // objective change keeps the state
    expect(sliFingerprint(a)).not.toBe(sliFingerprint(c)); // a new threshold changes what "good" means
  });
});

describe('test prerequisites', () => {
  it('a missing Debian binary fails loudly with the package to install (tests never skip)', () => {
    expect(() => requireBinary(['stella-no-such-binary'], 'prometheus-alertmanager'))
      .toThrow('required binary stella-no-such-binary not found on PATH: install the Debian package "prometheus-alertmanager" (see .ci/apt-packages.txt)');
  });
});
