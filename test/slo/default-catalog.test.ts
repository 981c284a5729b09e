// The default SLO catalog: the four journeys for every tenant without any `slo` section, matched
// by span name on any service and span kind; a tenant's own SLO of the same name replaces the
// catalog's; `slo: false` / `defaultCatalog: false` turn it off; the catalog state survives a
// snapshot; and with SLOs off the SLO routes say what to configure (503 feature_off), never 404.
import { describe, expect, it } from 'vitest';
import { startApiServer } from '../../api/server.ts';
import { registerSloRoutes, SLO_IN_OTHER_PROCESS, SLO_OFF_BY_CONFIG } from '../../api/slo-routes.ts';
import { sha256Hex, TokenRegistry } from '../../lib/tenancy.ts';
import { defaultCatalog, withDefaultCatalog } from '../../processors/slo/catalog.ts';
import { incidentSet, sloList } from '../../processors/slo/cli.ts';
import { parseSloConfig } from '../../processors/slo/config.ts';
import { SloEvaluator } from '../../processors/slo/evaluator.ts';
import { runnerConfig, sloSectionOrDefault } from '../../processors/slo/section.ts';
import { restoreEvaluator, snapshotEvaluator } from '../../processors/slo/snapshot.ts';
import { MIN, span } from './helpers.ts';

const JOURNEYS = ['advisory-link', 'export', 'policy-evaluation', 'sbom-ingest'];
const t0 = Math.floor(Date.UTC(2026, 0, 5, 10) / MIN) * MIN;

/** 100 spans per minute for 10 minutes of each demo job span; policy.evaluate fails 20%. */
function feed(ev: SloEvaluator, tenant: string): void {
  for (let m = 0; m < 10; m++) for (let i = 0; i < 100; i++) {
    const t = t0 + m * MIN + i * 100;
    ev.ingestOne(span(t, false, { tenant, service: 'sbom-builder', spanName: 'sbom.compute', kind: 1 }));
    ev.ingestOne(span(t, i < 20, { tenant, service: 'policy-engine', spanName: 'policy.evaluate', kind: 1 }));
    ev.ingestOne(span(t, false, { tenant, service: 'advisory-linker', spanName: 'advisory.link', kind: 1, durationMs: 9_000 }));
    ev.ingestOne(span(t, false, { tenant, service: 'evidence-exporter', spanName: 'evidence.export', kind: 1 }));
    ev.ingestOne(span(t, true, { tenant, service: 'checkout', spanName: 'POST /checkout', kind: 2 })); // no journey
  }
  ev.evaluate(t0 + 10 * MIN - 1);
}

describe('default SLO catalog', () => {
  it('is on without an slo section and covers the four journeys (availability + latency each)', () => {
    const s = sloSectionOrDefault(undefined)!;
    expect(s.defaultCatalog).toBe(true);
    const slos = runnerConfig(s).slos;
    expect(slos).toHaveLength(8);
    expect([...new Set(slos.map((d) => d.journey))].sort()).toEqual(JOURNEYS);
    expect(slos.every((d) => d.tenant === '*' && d.service === '*' && d.sli.spans?.kind === 'any')).toBe(true);
    expect(sloSectionOrDefault(false)).toBeUndefined();
    expect(sloSectionOrDefault({ defaultCatalog: false })).toBeUndefined();
    expect(() => sloSectionOrDefault({ defaultCatalog: 'yes' })).toThrow(/slo\.defaultCatalog must be true or false/);
    const own = sloSectionOrDefault({ defaultCatalog: false, slos: [{ name: 'a', tenant: 'acme', service: 'x', objective: 0.99, sli: { type: 'availability', spans: { name: 'op' } } }] })!;
    expect(runnerConfig(own).slos.map((d) => d.name)).toEqual(['a']);
    expect(runnerConfig(sloSectionOrDefault({ alertmanagers: ['http://127.0.0.1:9093'], defaultCatalog: true })!).slos).toHaveLength(8);
  });

  it('evaluates every tenant from its spans, by span name on any service and kind', () => {
    const ev = new SloEvaluator(withDefaultCatalog({ slos: [] }));
    feed(ev, 'acme');
    const acme = ev.summaries('acme');
    expect(acme.map((x) => x.slo).sort()).toEqual(defaultCatalog().map((d) => d.name).sort());
    const by = Object.fromEntries(acme.map((x) => [x.slo, x]));
    // 20% errors against a 99.9% objective: burn 200 over 5m; the others are clean.
    expect(by['policy-evaluation-availability']!.burnRates['5m']).toBeCloseTo(200, 6);
    expect(by['policy-evaluation-latency']!.burnRates['5m']).toBe(0);
    expect(by['sbom-ingest-availability']!.burnRates['5m']).toBe(0);
    expect(by['export-availability']!.evaluatedAtMs).toBe(t0 + 10 * MIN - 1);
    // 9 s advisory links against a 5 s threshold: every one is slow, burn 1/0.05 = 20.
    expect(by['advisory-link-latency']!.burnRates['5m']).toBeCloseTo(20, 6);
    expect(by['policy-evaluation-availability']!.firing.length).toBeGreaterThan(0);
    // Another tenant that sent nothing sees the catalog, unevaluated, and reading it created no state.
    const globex = ev.summaries('globex');
    expect(globex).toHaveLength(8);
    expect(globex.every((x) => x.evaluatedAtMs === null && x.tenant === 'globex')).toBe(true);
    expect(ev.sortedStates().some((st) => st.def.tenant === 'globex')).toBe(false);
  });

  it("a tenant's own SLO of a catalog name replaces the catalog's for that tenant only", () => {
    const own = parseSloConfig(`
slos:
  - name: policy-evaluation-availability
    tenant: acme
    service: policy-engine
    objective: 0.5
    sli: { type: availability, spans: { name: policy.evaluate, kind: any } }
`);
    const ev = new SloEvaluator(withDefaultCatalog(own));
    feed(ev, 'acme');
    feed(ev, 'globex');
    const acme = ev.summaries('acme').find((x) => x.slo === 'policy-evaluation-availability')!;
    expect(acme.objective).toBe(0.5);
    expect(acme.service).toBe('policy-engine');
    expect(acme.burnRates['5m']).toBeCloseTo(0.4, 6); // 20% errors / 50% budget
    const globex = ev.summaries('globex').find((x) => x.slo === 'policy-evaluation-availability')!;
    expect(globex.objective).toBe(0.999);
  });

  it("a tenant's catalog state survives a snapshot and restore", () => {
    const ev = new SloEvaluator(withDefaultCatalog({ slos: [] }));
    feed(ev, 'acme');
    const bytes = snapshotEvaluator(ev);
    const back = new SloEvaluator(withDefaultCatalog({ slos: [] }));
    const report = restoreEvaluator(back, bytes);
    expect(report.discarded).toEqual([]);
    expect(report.restored).toHaveLength(8);
    expect(Buffer.from(snapshotEvaluator(back)).equals(Buffer.from(bytes))).toBe(true);
    back.evaluate(t0 + 10 * MIN - 1);
    expect(back.summaries('acme').find((x) => x.slo === 'policy-evaluation-availability')!.burnRates['5m']).toBeCloseTo(200, 6);
  });
});

describe('SLO routes when SLOs are off', () => {
  const TOKEN = 'catalog-off-token-0123456789';
  const tokens = new TokenRegistry([{ id: 'acme', tokens: [{ sha256: sha256Hex(TOKEN), scopes: ['obs:read', 'obs:write'] }] }]);

  for (const [what, off] of [['by configuration', SLO_OFF_BY_CONFIG], ['in another process', SLO_IN_OTHER_PROCESS]] as const) {
    it(`answer what to configure (${what}): HTTP 503 feature_off with the config key, and the CLI says it`, async () => {
      const api = await startApiServer({ tokens, port: 0, register: [(r) => registerSloRoutes(r, { off })] });
      try {
        for (const [method, p] of [['GET', '/obs/slo'], ['GET', '/obs/incident'], ['POST', '/obs/incident?mode=on']] as const) {
          const res = await fetch(`${api.url}${p}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
          expect(res.status, p).toBe(503);
          const body = await res.json() as { error: { code: string; message: string; config_key: string } };
          expect(body.error.code).toBe('feature_off');
          expect(body.error.config_key).toBe(off.configKey);
          expect(body.error.message).toBe(off.message);
        }
        // Unauthenticated callers learn nothing about the configuration.
        expect((await fetch(`${api.url}/obs/slo`)).status).toBe(401);
        const list = await sloList({ baseUrl: api.url, token: TOKEN });
        expect(list.exitCode).toBe(4);
        expect(list.stderr).toContain(off.message);
        expect(list.stderr).not.toMatch(/no such route/);
        const inc = await incidentSet({ baseUrl: api.url, token: TOKEN, mode: 'on' });
        expect(inc.exitCode).toBe(4);
        expect(inc.stderr).toContain(off.configKey === 'slo' ? 'slo.defaultCatalog' : '--only');
      } finally { await api.close(); }
    });
  }
});
