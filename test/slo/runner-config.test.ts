// The `slo` config section the lead passes to startSloRunner: defaults, inline SLOs or a file, and
// every problem reported at once.
import { describe, expect, it } from 'vitest';
import { parseSloSection } from '../../processors/slo/section.ts';

const SLOS = `
slos:
  - name: checkout-availability
    tenant: acme
    service: checkout
    objective: 0.999
    sli: { type: availability, spans: { name: "POST /checkout" } }
`;

describe('slo config section', () => {
  it('is optional, reads a file, applies defaults', () => {
    expect(parseSloSection(undefined)).toBeUndefined();
    const s = parseSloSection({ file: '/etc/slos.yaml', alertmanagers: ['http://127.0.0.1:9093'] }, (p) => { expect(p).toBe('/etc/slos.yaml'); return SLOS; })!;
    expect(s.config.slos.map((d) => d.name)).toEqual(['checkout-availability']);
    expect(s.runner).toMatchObject({ alertmanagerUrl: ['http://127.0.0.1:9093'], webhooks: [], resendIntervalMs: 60_000,
      incident: { autoTtlMs: 7_200_000, maxTtlMs: 86_400_000 }, idleTickMs: 15_000, lagMs: 60_000 });
    expect(s.defaultIncidentTtlMs).toBe(3_600_000);
  });

  it('takes inline slos with defaults and durations', () => {
    const s = parseSloSection({ defaults: { minEvents: 50 }, slos: [{ name: 'a', tenant: 'acme', service: 'x', objective: 0.99,
      sli: { type: 'availability', spans: { name: 'op' } } }], incident: { autoTtl: '30m', defaultTtl: '10m' }, lag: '2m',
      webhooks: [{ name: 'ops', url: 'https://hooks.example/x' }] })!;
    expect(s.config.slos[0]!.minEvents).toBe(50);
    expect(s.runner.incident).toEqual({ autoTtlMs: 1_800_000, maxTtlMs: 86_400_000 });
    expect(s.runner.lagMs).toBe(120_000);
    expect(s.defaultIncidentTtlMs).toBe(600_000);
    expect(s.runner.webhooks).toEqual([{ name: 'ops', url: 'https://hooks.example/x', receiver: undefined }]);
  });

  it('lists every problem', () => {
    let msg = '';
    try {
      parseSloSection({ colour: 1, alertmanagers: ['ftp://x'], webhooks: [{ url: 'http://h' }], resendInterval: 'soon',
        slos: [{ name: 'a', tenant: 'acme', service: 'x', objective: 2, sli: { type: 'availability', spans: { name: 'op' } } }] });
    } catch (err) { msg = (err as Error).message; }
    expect(msg).toMatch(/slo\.colour is not a known field/);
    expect(msg).toMatch(/slo\.alertmanagers\[0\] must be an http\(s\) URL/);
    expect(msg).toMatch(/slo\.webhooks\[0\]\.name is required/);
    expect(msg).toMatch(/slo\.resendInterval must be a duration/);
    expect(msg).toMatch(/objective must be in \(0,1\)/);
    expect(() => parseSloSection({})).toThrow(/slo\.file .* or slo\.slos is required/);
  });
});
