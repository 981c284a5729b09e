// SLO definitions (YAML) → validated, normalized config. Validation errors name the exact path
// (`slos[2].objective must be in (0,1)`) and all problems are reported at once, so a bad file is
// fixed in one round instead of one error per restart.
import { parse as parseYaml } from 'yaml';
import { parseDurationMs } from './duration.ts';

export type SliType = 'availability' | 'latency';
/** OTLP span kinds by name; `any` disables the kind check. */
export type SpanKindName = 'internal' | 'server' | 'client' | 'producer' | 'consumer' | 'any';
export const SPAN_KIND_NUMBER: Record<Exclude<SpanKindName, 'any'>, number> = {
  internal: 1, server: 2, client: 3, producer: 4, consumer: 5,
};

export interface SpanMatcher {
  /** Exact span name; when absent (and no nameRegex) every span of the service matches. */
  name?: string;
  nameRegex?: RegExp;
  /** The regex as written (RE2-compatible when rendered to Prometheus rules); anchored when matching. */
  namePattern?: string;
  kind: SpanKindName;
}
export interface MetricMatcher {
  /** OTLP metric name, e.g. http.server.request.duration (a histogram). */
  name: string;
  /** Data-point attributes that must be equal (string compare). */
  attributes: Record<string, string>;
}

export interface SloDefinition {
  /** Unique per tenant; used in labels, rule names and state keys. */
  name: string;
  tenant: string;
  service: string;
  journey: string;
  objective: number;
  windowMs: number;
  sli: {
    type: SliType;
    /** Latency SLIs: a sample is good when its duration is ≤ thresholdMs. */
    thresholdMs?: number;
    source: 'spans' | 'metric';
    spans?: SpanMatcher;
    metric?: MetricMatcher;
  };
  /** Minimum-traffic guard: events needed in an alert's long window before it may fire. */
  minEvents: number;
  /** Samples older than watermark − latenessMs are dropped (counted) instead of applied. */
  latenessMs: number;
  runbook: string;
  description: string;
}

export interface SloConfig {
  slos: SloDefinition[];
}

export class SloConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid SLO config:\n  - ${problems.join('\n  - ')}`);
    this.name = 'SloConfigError';
  }
}

export const THIRTY_DAYS_MS = 30 * 86_400_000;
const NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const DEFAULTS = { minEvents: 10, latenessMs: 10 * 60_000, runbookBase: '' };
const MAX_LATENESS_MS = 6 * 3_600_000; // beyond this a "late" sample would miss every short window anyway

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses and validates SLO YAML; throws SloConfigError listing every problem with its path. */
export function parseSloConfig(text: string): SloConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new SloConfigError([`YAML syntax: ${(e as Error).message.split('\n')[0]}`]);
  }
  const problems: string[] = [];
  if (!isObj(doc)) throw new SloConfigError(['top level must be a mapping with a `slos` list']);
  checkKeys(doc, ['version', 'defaults', 'slos'], '', problems);
  if (doc.version !== undefined && doc.version !== 1) problems.push('version must be 1');

  const defaults = { ...DEFAULTS };
  if (doc.defaults !== undefined) {
    if (!isObj(doc.defaults)) problems.push('defaults must be a mapping');
    else {
      const d = doc.defaults;
      checkKeys(d, ['minEvents', 'lateness', 'runbookBase'], 'defaults', problems);
      if (d.minEvents !== undefined) defaults.minEvents = nonNegInt(d.minEvents, 'defaults.minEvents', problems) ?? defaults.minEvents;
      if (d.lateness !== undefined) defaults.latenessMs = lateness(d.lateness, 'defaults.lateness', problems) ?? defaults.latenessMs;
      if (d.runbookBase !== undefined) {
        if (typeof d.runbookBase !== 'string') problems.push('defaults.runbookBase must be a string URL');
        else defaults.runbookBase = d.runbookBase.replace(/\/+$/, '');
      }
    }
  }

  if (!Array.isArray(doc.slos)) {
    problems.push('slos must be a list');
    throw new SloConfigError(problems);
  }
  const slos: SloDefinition[] = [];
  const seen = new Map<string, number>();
  doc.slos.forEach((raw, i) => {
    const def = parseSlo(raw, `slos[${i}]`, defaults, problems);
    if (!def) return;
    const key = `${def.tenant}/${def.name}`;
    const prev = seen.get(key);
    if (prev !== undefined) problems.push(`slos[${i}].name "${def.name}" duplicates slos[${prev}] for tenant "${def.tenant}"`);
    else seen.set(key, i);
    slos.push(def);
  });
  if (problems.length) throw new SloConfigError(problems);
  return { slos };
}

function parseSlo(raw: unknown, p: string, defaults: typeof DEFAULTS, problems: string[]): SloDefinition | undefined {
  if (!isObj(raw)) {
    problems.push(`${p} must be a mapping`);
    return undefined;
  }
  const before = problems.length;
  checkKeys(raw, ['name', 'tenant', 'service', 'journey', 'objective', 'window', 'sli', 'minEvents', 'lateness', 'runbook', 'description'], p, problems);
  const name = str(raw.name, `${p}.name`, problems);
  if (name !== undefined && !NAME_RE.test(name)) problems.push(`${p}.name must match ${NAME_RE} (got "${name}")`);
  const tenant = str(raw.tenant, `${p}.tenant`, problems);
  const service = str(raw.service, `${p}.service`, problems);
  const journey = raw.journey === undefined ? name : str(raw.journey, `${p}.journey`, problems);
  const description = raw.description === undefined ? '' : str(raw.description, `${p}.description`, problems) ?? '';

  const objective = parseObjective(raw.objective, `${p}.objective`, problems);
  let windowMs = THIRTY_DAYS_MS;
  if (raw.window !== undefined) {
    const w = parseDurationMs(raw.window);
    // The burn-rate factors (14.4, 6, 3, 1) are derived for a 30-day budget; other windows would need other factors.
    if (w !== THIRTY_DAYS_MS) problems.push(`${p}.window must be 30d (the burn-rate factors assume a 30-day budget)`);
    else windowMs = w;
  }
  const minEvents = raw.minEvents === undefined ? defaults.minEvents : nonNegInt(raw.minEvents, `${p}.minEvents`, problems) ?? 0;
  const latenessMs = raw.lateness === undefined ? defaults.latenessMs : lateness(raw.lateness, `${p}.lateness`, problems) ?? 0;
  let runbook = '';
  if (raw.runbook !== undefined) runbook = str(raw.runbook, `${p}.runbook`, problems) ?? '';
  else if (defaults.runbookBase && name) runbook = `${defaults.runbookBase}/${name}`;

  const sli = parseSli(raw.sli, `${p}.sli`, problems);
  if (problems.length > before || !name || !tenant || !service || !journey || objective === undefined || !sli) return undefined;
  return { name, tenant, service, journey, objective, windowMs, sli, minEvents, latenessMs, runbook, description };
}

function parseSli(raw: unknown, p: string, problems: string[]): SloDefinition['sli'] | undefined {
  if (!isObj(raw)) {
    problems.push(`${p} must be a mapping with type (availability|latency) and spans or metric`);
    return undefined;
  }
  checkKeys(raw, ['type', 'threshold', 'spans', 'metric'], p, problems);
  const type = raw.type;
  if (type !== 'availability' && type !== 'latency') {
    problems.push(`${p}.type must be "availability" or "latency"`);
    return undefined;
  }
  let thresholdMs: number | undefined;
  if (type === 'latency') {
    thresholdMs = parseDurationMs(raw.threshold);
    if (raw.threshold === undefined) problems.push(`${p}.threshold is required for latency SLIs (e.g. "2s")`);
    else if (thresholdMs === undefined || thresholdMs <= 0) problems.push(`${p}.threshold must be a positive duration like "2s" or "250ms"`);
  } else if (raw.threshold !== undefined) problems.push(`${p}.threshold applies only to latency SLIs`);

  if ((raw.spans === undefined) === (raw.metric === undefined)) {
    problems.push(`${p} needs exactly one of spans or metric`);
    return undefined;
  }
  if (raw.spans !== undefined) {
    const spans = parseSpanMatcher(raw.spans, `${p}.spans`, type, problems);
    return spans ? { type, thresholdMs, source: 'spans', spans } : undefined;
  }
  const metric = parseMetricMatcher(raw.metric, `${p}.metric`, problems);
  return metric ? { type, thresholdMs, source: 'metric', metric } : undefined;
}

function parseSpanMatcher(raw: unknown, p: string, type: SliType, problems: string[]): SpanMatcher | undefined {
  if (raw === null) raw = {};
  if (!isObj(raw)) {
    problems.push(`${p} must be a mapping (name, nameRegex, kind)`);
    return undefined;
  }
  checkKeys(raw, ['name', 'nameRegex', 'kind'], p, problems);
  const m: SpanMatcher = { kind: type === 'availability' ? 'server' : 'any' };
  if (raw.name !== undefined) m.name = str(raw.name, `${p}.name`, problems);
  if (raw.nameRegex !== undefined) {
    const src = str(raw.nameRegex, `${p}.nameRegex`, problems);
    if (src !== undefined) {
      try {
        m.nameRegex = new RegExp(`^(?:${src})$`);
        m.namePattern = src;
      } catch (e) {
        problems.push(`${p}.nameRegex is not a valid regular expression: ${(e as Error).message}`);
      }
    }
  }
  if (m.name !== undefined && raw.nameRegex !== undefined) problems.push(`${p} takes name or nameRegex, not both`);
  if (raw.kind !== undefined) {
    const kinds = [...Object.keys(SPAN_KIND_NUMBER), 'any'];
    if (typeof raw.kind !== 'string' || !kinds.includes(raw.kind)) problems.push(`${p}.kind must be one of ${kinds.join(', ')}`);
    else m.kind = raw.kind as SpanKindName;
  }
  return m;
}

function parseMetricMatcher(raw: unknown, p: string, problems: string[]): MetricMatcher | undefined {
  if (!isObj(raw)) {
    problems.push(`${p} must be a mapping (name, attributes)`);
    return undefined;
  }
  checkKeys(raw, ['name', 'attributes'], p, problems);
  const name = str(raw.name, `${p}.name`, problems);
  const attributes: Record<string, string> = {};
  if (raw.attributes !== undefined) {
    if (!isObj(raw.attributes)) problems.push(`${p}.attributes must be a mapping of attribute → value`);
    else for (const [k, v] of Object.entries(raw.attributes)) {
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') problems.push(`${p}.attributes.${k} must be a scalar`);
      else attributes[k] = String(v);
    }
  }
  return name === undefined ? undefined : { name, attributes };
}

/** Accepts 0.999 or "99.9%"; must be strictly inside (0,1): 1 leaves no budget, 0 has no meaning. */
function parseObjective(v: unknown, p: string, problems: string[]): number | undefined {
  let n: number | undefined;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(v);
    if (m) n = Number(`${m[1]}e-2`); // decimal shift, not /100: "99.9%" must be exactly the double 0.999
  }
  if (v === undefined) problems.push(`${p} is required (e.g. 0.999 or "99.9%")`);
  else if (n === undefined || !Number.isFinite(n)) problems.push(`${p} must be a number like 0.999 or a percentage like "99.9%"`);
  else if (!(n > 0 && n < 1)) problems.push(`${p} must be in (0,1) (got ${n})`);
  else return n;
  return undefined;
}

function lateness(v: unknown, p: string, problems: string[]): number | undefined {
  const ms = parseDurationMs(v);
  if (ms === undefined) problems.push(`${p} must be a duration like "10m"`);
  else if (ms > MAX_LATENESS_MS) problems.push(`${p} must be at most 6h`);
  else return ms;
  return undefined;
}

function str(v: unknown, p: string, problems: string[]): string | undefined {
  if (v === undefined) problems.push(`${p} is required`);
  else if (typeof v !== 'string' || v.trim() === '') problems.push(`${p} must be a non-empty string`);
  else return v;
  return undefined;
}

function nonNegInt(v: unknown, p: string, problems: string[]): number | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) problems.push(`${p} must be a non-negative integer`);
  else return v;
  return undefined;
}

function checkKeys(o: Obj, allowed: string[], p: string, problems: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) problems.push(`${p ? `${p}.` : ''}${k} is not a known field (allowed: ${allowed.join(', ')})`);
}

/** Stable identity of what an SLO's buckets mean; a restored state is kept only if this is unchanged. */
export function sliFingerprint(d: SloDefinition): string {
  const s = d.sli;
  return JSON.stringify([d.tenant, d.service, s.type, s.source, s.thresholdMs ?? null, s.spans?.name ?? null,
    s.spans?.namePattern ?? null, s.spans?.kind ?? null, s.metric?.name ?? null,
    s.metric ? Object.entries(s.metric.attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : null]);
}
