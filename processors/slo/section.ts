// The `slo` section of the stella config (cfg.sections.slo), validated with every problem listed:
//
//   slo:
//     file: /etc/stella/slos.yaml          # SLO definitions (docs/slo.md "The SLO file"); or `slos:` inline
//     alertmanagers: [http://127.0.0.1:9093]
//     webhooks: [{ name: ops, url: https://hooks.example/slo, receiver: ops }]
//     externalURL: https://stella.example   # base of generatorURL links (this deployment's API)
//     resendInterval: 60s
//     incident: { autoTtl: 2h, maxTtl: 24h, defaultTtl: 1h }
//     idleTick: 15s                          # how often idle partitions are evaluated
//     lag: 60s                               # idle partitions are evaluated at wall clock − lag
//     liveInterval: 1s                       # open golden-signal minutes written this often (obs top)
//     defaultCatalog: true                   # the four journeys' SLOs for every tenant (catalog.ts); default true
//
// Without an `slo` section the processor runs the default catalog alone (sloSectionOrDefault).
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { parseSloConfig, type SloConfig } from './config.ts';
import { withDefaultCatalog } from './catalog.ts';
import { parseDurationMs } from './duration.ts';
import type { SloRunnerOptions } from './runner.ts';

export class SloSectionError extends Error {}

export interface SloSection {
  config: SloConfig;
  /** Spread into startSloRunner({ kafka, store, ...runner }). */
  runner: Omit<SloRunnerOptions, 'kafka' | 'store' | 'config'>;
  /** For registerSloRoutes({ defaultIncidentTtlMs }). */
  defaultIncidentTtlMs: number;
  /** `slo.defaultCatalog` (default true): `config` plus the catalog is what the runner evaluates (runnerConfig). */
  defaultCatalog: boolean;
}

/** What the runner evaluates: the configured SLOs, plus the default catalog unless it is off. */
export const runnerConfig = (s: SloSection): SloConfig => (s.defaultCatalog ? withDefaultCatalog(s.config) : s.config);

/**
 * The section, or without one the default catalog with default settings: SLOs are on for every
 * tenant out of the box. undefined only when the config turns everything off (`slo: false`, or
 * `defaultCatalog: false` with no SLOs of its own).
 */
export function sloSectionOrDefault(section: unknown, readFile?: (p: string) => string): SloSection | undefined {
  if (section === false) return undefined;
  const s = section === undefined || section === null ? { defaultCatalog: true } : section;
  const parsed = parseSloSection(s, readFile);
  return parsed && (parsed.defaultCatalog || parsed.config.slos.length) ? parsed : undefined;
}

const KNOWN = ['file', 'slos', 'defaults', 'alertmanagers', 'webhooks', 'externalURL', 'resendInterval', 'incident', 'idleTick', 'lag', 'defaultCatalog', 'liveInterval'];

export function parseSloSection(section: unknown, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8')): SloSection | undefined {
  if (section === undefined || section === null) return undefined;
  if (typeof section !== 'object' || Array.isArray(section)) throw new SloSectionError('slo must be a mapping');
  const s = section as Record<string, unknown>;
  const problems: string[] = [];
  for (const k of Object.keys(s)) if (!KNOWN.includes(k)) problems.push(`slo.${k} is not a known field (allowed: ${KNOWN.join(', ')})`);
  const dur = (v: unknown, at: string, dflt: number): number => {
    if (v === undefined) return dflt;
    const ms = parseDurationMs(v);
    if (ms === undefined || ms <= 0) { problems.push(`${at} must be a duration like 30s, 5m, 2h (got ${JSON.stringify(v)})`); return dflt; }
    return ms;
  };
  const url = (v: unknown, at: string): string | undefined => {
    if (typeof v === 'string' && /^https?:\/\/\S+$/.test(v)) return v;
    problems.push(`${at} must be an http(s) URL (got ${JSON.stringify(v)})`);
    return undefined;
  };
  let defaultCatalog = true;
  if (s.defaultCatalog !== undefined) {
    if (typeof s.defaultCatalog !== 'boolean') problems.push(`slo.defaultCatalog must be true or false (got ${JSON.stringify(s.defaultCatalog)})`);
    else defaultCatalog = s.defaultCatalog;
  }
  let text: string | undefined;
  if (s.file !== undefined && s.slos !== undefined) problems.push('slo: give either file or slos, not both');
  else if (typeof s.file === 'string') {
    try { text = readFile(s.file); } catch (err) { problems.push(`slo.file: cannot read ${s.file}: ${(err as Error).message}`); }
  } else if (s.slos !== undefined) text = YAML.stringify({ defaults: s.defaults, slos: s.slos });
  // A section naming neither its SLOs nor the catalog is taken for an incomplete one.
  else if (typeof s.defaultCatalog === 'boolean') text = 'slos: []'; // the catalog alone, or (false) SLOs off
  else problems.push('slo.file (path of the SLO definitions) or slo.slos is required (or slo.defaultCatalog: true for the default catalog alone)');
  const alertmanagers = s.alertmanagers === undefined ? [] : Array.isArray(s.alertmanagers)
    ? s.alertmanagers.map((v, i) => url(v, `slo.alertmanagers[${i}]`)).filter((v): v is string => !!v)
    : (problems.push('slo.alertmanagers must be a list of URLs'), []);
  const webhooks: { name: string; url: string; receiver?: string }[] = [];
  if (s.webhooks !== undefined) {
    if (!Array.isArray(s.webhooks)) problems.push('slo.webhooks must be a list of {name, url}');
    else s.webhooks.forEach((w: unknown, i) => {
      const o = (w ?? {}) as Record<string, unknown>;
      if (typeof o.name !== 'string' || !o.name) { problems.push(`slo.webhooks[${i}].name is required`); return; }
      const u = url(o.url, `slo.webhooks[${i}].url`);
      if (u) webhooks.push({ name: o.name, url: u, receiver: typeof o.receiver === 'string' ? o.receiver : undefined });
    });
  }
  const inc = (s.incident ?? {}) as Record<string, unknown>;
  const autoTtlMs = dur(inc.autoTtl, 'slo.incident.autoTtl', 2 * 3_600_000);
  const maxTtlMs = dur(inc.maxTtl, 'slo.incident.maxTtl', 24 * 3_600_000);
  const defaultIncidentTtlMs = dur(inc.defaultTtl, 'slo.incident.defaultTtl', 3_600_000);
  const resendIntervalMs = dur(s.resendInterval, 'slo.resendInterval', 60_000);
  const idleTickMs = dur(s.idleTick, 'slo.idleTick', 15_000);
  const lagMs = dur(s.lag, 'slo.lag', 60_000);
  const goldenLiveMs = dur(s.liveInterval, 'slo.liveInterval', 1_000);
  const externalURL = s.externalURL === undefined ? undefined : url(s.externalURL, 'slo.externalURL');
  let config: SloConfig | undefined;
  if (text !== undefined) {
    try { config = parseSloConfig(text); } catch (err) { problems.push((err as Error).message); }
  }
  if (problems.length || !config) throw new SloSectionError(`invalid slo config:\n  - ${problems.join('\n  - ')}`);
  return {
    config, defaultIncidentTtlMs, defaultCatalog,
    runner: { alertmanagerUrl: alertmanagers, webhooks, externalURL, resendIntervalMs, incident: { autoTtlMs, maxTtlMs }, idleTickMs, lagMs, goldenLiveMs },
  };
}
