// `stella` subcommands other than `run`. Each returns an exit code; output goes to stdout, problems
// to stderr. Exit codes: 0 ok, 1 not found / empty / failed verification (see forensic verify),
// 2 usage or configuration, 3 not authorized, 4 unreachable or other runtime failure.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { ensureDemoTenant } from '../lib/bootstrap.ts';
import path from 'node:path';
import YAML from 'yaml';
import { loadConfig, type StellaConfig } from '../lib/config.ts';
import type { KafkaAccess } from '../lib/kafka/auth.ts';
import { localBrokerAccess } from '../lib/kafka/broker.ts';
import { resolveAccess } from '../lib/kafka/client.ts';
import { SUPER_USER } from '../lib/kafka/acls.ts';
import { parseScrubConfig } from '../processors/scrub/config.ts';
import { scrubJsonCommand } from '../processors/scrub/cli.ts';
import { obsTrace } from '../processors/timeline/cli.ts';
import { attestShow, forensicVerify, readTrustRootFile, tenantKeysRotate, trustExport } from '../processors/evidence/cli.ts';
import { TrustRootError, type TrustRoot } from '../processors/evidence/trust-root.ts';
import { parseVerifierKey } from '../processors/evidence/note.ts';
import { parseEvidenceSection } from '../processors/evidence/section.ts';
import { validateTenantId } from '../lib/tenancy.ts';
import { traceLine, tracedFetch, type TracedFetch } from './api-client.ts';
import { chdbBusyMessage, chdbLockHolder } from './db-lock.ts';
import { runTop } from './obs-top.ts';
import { obsHealth, obsLogs, obsMetrics } from './obs-read.ts';
import { progressBar } from './progress.ts';
import { snapshotCreate } from '../processors/evidence/snapshot-cli.ts';
import { attestList, attestVerify } from '../processors/evidence/attest-api-cli.ts';
import { parseSloConfig } from '../processors/slo/config.ts';
import { renderPrometheusRules } from '../processors/slo/prometheus-rules.ts';
import { incidentSet, sloList } from '../processors/slo/cli.ts';
import { artifactsAdd, artifactsShow, symbolsAdd, symbolsShow } from '../processors/intake/artifacts-cli.ts';
import { createHash } from 'node:crypto';
import { exportsList, exportsShow } from '../processors/intake/exports-cli.ts';

export class UsageError extends Error {}

/**
 * How a CLI command that talks to Kafka itself reaches it: KAFKA_BROKERS (kafka.brokers) with
 * KAFKA_SASL_*, else the local broker `stella run` keeps under <dataDir>/kafka, logged in as
 * `localUser` from that broker's credentials. `what` starts the usage error when there is neither.
 */
export function cliKafkaAccess(cfg: StellaConfig, localUser: string, what: string): KafkaAccess {
  if (cfg.kafka.brokers) return resolveAccess(cfg.kafka.brokers, cfg.kafka);
  const kafkaDir = path.join(cfg.dataDir, 'kafka');
  const local = localBrokerAccess(kafkaDir, localUser);
  if (!local) throw new UsageError(`${what}: no local broker under ${kafkaDir} (start \`stella run\` with this data dir), or set KAFKA_BROKERS (or kafka.brokers) and KAFKA_SASL_*`);
  return local;
}

export type Flags = Map<string, string | true>;
export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  stdin: () => Promise<string>;
  /** Whether stdout / stderr are terminals (redraws, progress bars). */
  isTTY?: { stdout: boolean; stderr: boolean };
  /** Resolves on SIGINT (obs top stops after the current frame). */
  interrupted?: Promise<void>;
}

/** Progress bars go to stderr when it is a terminal or --progress is given. */
const showProgress = (flags: Flags, io: Io): boolean => flags.has('progress') || io.isTTY?.stderr === true;

/** --tenant, validated here so a malformed id is a usage error (exit 2) before any request. */
export function tenantFlag(flags: Flags): string | undefined {
  const t = flagString(flags, 'tenant');
  if (t === undefined) return undefined;
  const bad = validateTenantId(t);
  if (bad) throw new UsageError(`--tenant: ${bad}`);
  return t;
}

export const flagString = (flags: Flags, name: string, env?: string, fallback?: string): string | undefined => {
  const v = flags.get(name);
  if (v === true) throw new UsageError(`--${name} needs a value`);
  return v ?? (env ? process.env[env] : undefined) ?? fallback;
};

export function outputFormat(flags: Flags, allowed: readonly string[] = ['table', 'json', 'yaml']): string {
  const o = flagString(flags, 'output', undefined, 'table')!;
  if (!allowed.includes(o)) throw new UsageError(`--output takes one of: ${allowed.join(', ')}`);
  return o;
}

export function render(value: unknown, format: string, table: () => string): string {
  if (format === 'json') return JSON.stringify(value, null, 2) + '\n';
  if (format === 'yaml') return YAML.stringify(value);
  return table();
}

export async function cmdScrub(flags: Flags, io: Io): Promise<number> {
  const file = flagString(flags, 'config', 'STELLA_SCRUB_CONFIG');
  const config = file ? parseScrubConfig(YAML.parse(readFileSync(file, 'utf8')) ?? {}) : parseScrubConfig(loadConfig().sections.scrub ?? {});
  const input = await io.stdin();
  if (input.trim() === '') throw new UsageError('stella scrub reads OTLP JSON on stdin (one Export request, or JSON Lines)');
  io.stdout(scrubJsonCommand(input, { config, tenant: flagString(flags, 'tenant'), pretty: flags.has('pretty'),
    onSummary: (s, signal) => io.stderr(`${signal}: ${JSON.stringify(s)}\n`) }));
  return 0;
}

/** Print a processor CLI function's result (and the request's trace id) and pass its exit code on. */
function relay(io: Io, r: { exitCode: number; stdout: string; stderr: string }, trace?: TracedFetch): number {
  io.stdout(r.stdout);
  io.stderr(r.stderr);
  if (trace) io.stderr(traceLine(trace));
  return r.exitCode;
}

/**
 * Run a processor CLI function that speaks table|json; yaml is its JSON re-rendered. The request
 * goes through a traced fetch so that the trace id can be printed.
 */
async function viaApi(io: Io, format: string, call: (fmt: 'table' | 'json', fetch: typeof globalThis.fetch) => Promise<{ exitCode: number; stdout: string; stderr: string }>): Promise<number> {
  const trace = tracedFetch();
  const r = await call(format === 'table' ? 'table' : 'json', trace.fetch);
  if (format === 'yaml' && r.stdout) r.stdout = YAML.stringify(JSON.parse(r.stdout));
  return relay(io, r, trace);
}

export function apiAccess(flags: Flags): { baseUrl: string; token: string } {
  const baseUrl = flagString(flags, 'api', 'STELLA_API_URL', 'http://127.0.0.1:8080')!;
  const token = flagString(flags, 'token', 'STELLA_TOKEN');
  if (!token) throw new UsageError('a token is needed: --token <token> or STELLA_TOKEN');
  return { baseUrl, token };
}

export async function cmdObsTrace(positional: string[], flags: Flags, io: Io): Promise<number> {
  const traceId = positional[0];
  if (!traceId) throw new UsageError('usage: stella obs trace <trace_id> [--tenant T] [--output table|json]');
  const format = outputFormat(flags);
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  return viaApi(io, format, (fmt, fetch) => obsTrace({ ...access, traceId, format: fmt, fetch }));
}

export async function cmdObsProvenance(positional: string[], flags: Flags, io: Io): Promise<number> {
  const traceId = positional[0];
  if (!traceId) throw new UsageError('usage: stella obs provenance <trace_id> [--tenant T] [--output table|json|yaml]');
  const format = outputFormat(flags);
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  const { obsProvenance } = await import('../processors/provenance/cli.ts');
  return viaApi(io, format, (fmt, fetch) => obsProvenance({ ...access, traceId, format: fmt, fetch }));
}

const REPLAY_USAGE = 'usage: stella forensic replay --tenant T --from <offset|time> --to <offset|time> [--range-topic <clean topic>] [--freeze <time>] [--topic <copy> [--topic-base <offset>]] [--scratch <dir>] [--output table|json|yaml]';

/** stella forensic replay: re-derive a sealed span of the tenant's log from Kafka and compare (processors/evidence/replay-cli.ts). */
export async function cmdForensicReplay(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const tenant = tenantFlag(flags);
  const fromS = flagString(flags, 'from');
  const toS = flagString(flags, 'to');
  if (!tenant || fromS === undefined || toS === undefined) throw new UsageError(REPLAY_USAGE);
  const { forensicReplay, parseRangeBound, replayTable, ReplayUsageError } = await import('../processors/evidence/replay-cli.ts');
  const from = parseRangeBound(fromS);
  const to = parseRangeBound(toS);
  if (!from) throw new UsageError(`--from: ${fromS} is neither an offset nor an RFC 3339 time`);
  if (!to) throw new UsageError(`--to: ${toS} is neither an offset nor an RFC 3339 time`);
  const freezeS = flagString(flags, 'freeze');
  const freeze = freezeS === undefined ? undefined : Date.parse(freezeS);
  if (freeze !== undefined && (!/^\d{4}-\d{2}-\d{2}T/.test(freezeS!) || !Number.isFinite(freeze))) throw new UsageError(`--freeze: ${freezeS} is not an RFC 3339 time`);
  const cfg = loadConfig();
  const topics = cfg.kafka.topics;
  const cleanTopics = [topics.spansClean, topics.logsClean, topics.metricsClean];
  const rangeTopic = flagString(flags, 'range-topic', undefined, topics.spansClean)!;
  if (!cleanTopics.includes(rangeTopic)) throw new UsageError(`--range-topic must be one of the clean topics the evidence processor reads: ${cleanTopics.join(', ')}`);
  const copyTopic = flagString(flags, 'topic');
  const baseS = flagString(flags, 'topic-base');
  if (baseS !== undefined && (!copyTopic || !/^(0|[1-9]\d{0,18})$/.test(baseS))) throw new UsageError('--topic-base takes the source offset of the copy\'s first record, with --topic');
  const base = baseS !== undefined ? BigInt(baseS) : 'offset' in from ? from.offset : undefined;
  if (copyTopic && base === undefined) throw new UsageError('--topic with a --from time needs --topic-base (the source offset the copy starts at)');
  // A consumer group of its own (stella-replay-*) and every input topic: on the local broker, as its super user.
  const access = cliKafkaAccess(cfg, SUPER_USER, 'stella forensic replay reads the Kafka cluster the evidence processor reads');
  const { createKafka } = await import('../lib/kafka/client.ts');
  const { FsEvidenceStore } = await import('../processors/evidence/store.ts');
  const kafka = createKafka({ ...access, clientId: `${cfg.kafka.clientId}-replay`, quiet: true });
  const scratch = flagString(flags, 'scratch');
  let report;
  try {
    report = await forensicReplay({ kafka, evidence: new FsEvidenceStore(path.join(cfg.dataDir, 'evidence', 'logs')), tenant, timelineTopic: topics.timelineEvents, cleanTopics,
      rangeTopic, from, to, ...(freeze !== undefined ? { freeze } : {}), ...(copyTopic ? { copy: { topic: copyTopic, base: base! } } : {}), ...(scratch ? { scratch } : {}) });
  } catch (err) {
    if (err instanceof ReplayUsageError) throw new UsageError(err.message);
    throw err;
  }
  io.stdout(render(report, format, () => replayTable(report)));
  if (report.outcome !== 'identical') io.stderr(`stella: forensic replay: ${report.outcome}${report.first_difference ? ` at entry ${report.first_difference.index}` : ''}${report.unavailable ? ` (${report.unavailable.cause})` : ''}\n`);
  return report.exit_code;
}

export async function cmdForensicReplayManifest(positional: string[], flags: Flags, io: Io): Promise<number> {
  const traceId = positional[0];
  if (!traceId) throw new UsageError('usage: stella forensic replay-manifest <trace_id> [--tenant T] [--output json|yaml]');
  const format = outputFormat(flags);
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  const { replayManifestCli } = await import('../processors/provenance/cli.ts');
  return viaApi(io, format === 'yaml' ? 'yaml' : 'json', (_fmt, fetch) => replayManifestCli({ ...access, traceId, fetch }));
}

export async function cmdForensicVerify(positional: string[], flags: Flags, io: Io): Promise<number> {
  const file = positional[0];
  if (!file) throw new UsageError('usage: stella forensic verify <bundle.tar.gz> [--trust <trust-root.json>] [--trusted-key <vkey>]... [--output table|json]');
  const format = outputFormat(flags);
  // A path that names no file is not a corrupt bundle: exit 1 (not found) with that said plainly.
  const stat = statSync(path.resolve(file), { throwIfNoEntry: false });
  if (!stat) { io.stderr(`stella: no such bundle file: ${file}\n`); return 1; }
  if (stat.isDirectory()) throw new UsageError(`${file} is a directory; forensic verify takes a bundle file (.tar.gz)`);
  // The anchor: --trust (else STELLA_TRUST_ROOT) and/or --trusted-key; none → TRUST_ROOT_MISSING from the verifier.
  const trustFile = flagString(flags, 'trust', 'STELLA_TRUST_ROOT');
  let trustRoot: TrustRoot | undefined;
  if (trustFile) {
    try { trustRoot = await readTrustRootFile(path.resolve(trustFile)); } catch (e) {
      if (e instanceof TrustRootError) throw new UsageError(`${flags.has('trust') ? '--trust' : 'STELLA_TRUST_ROOT'}: ${e.message}`);
      throw e;
    }
  }
  const trustedKeys = flagString(flags, 'trusted-key')?.split('\n');
  for (const k of trustedKeys ?? []) {
    try { parseVerifierKey(k); } catch (e) { throw new UsageError(`--trusted-key ${JSON.stringify(k.slice(0, 80))}: ${(e as Error).message}`); }
  }
  const bar = progressBar(io.stderr, showProgress(flags, io), 'verify');
  const out = await forensicVerify(path.resolve(file), { onProgress: (p) => bar.update(p.done, p.total, `verify: ${p.phase}`),
    ...(trustRoot ? { trustRoot } : {}), ...(trustedKeys ? { trustedKeys } : {}) });
  bar.end();
  const r = out.result;
  io.stdout(render({ ...r, exit_code: out.exitCode, seconds: out.seconds }, format, () => r.ok
    ? `OK: bundle verified in ${out.seconds.toFixed(2)} s\n`
    : `FAILED: ${r.cause}: ${r.detail}\n`));
  return out.exitCode;
}

/** `stella proof verify --bundle B` (seed 004's name): exactly `stella forensic verify B`. */
export async function cmdProofVerify(flags: Flags, io: Io): Promise<number> {
  const bundle = flagString(flags, 'bundle');
  if (!bundle) throw new UsageError('usage: stella proof verify --bundle <bundle.tar.gz> [--trust <trust-root.json>] [--trusted-key <vkey>]... [--output table|json]');
  const rest = new Map(flags);
  rest.delete('bundle');
  return cmdForensicVerify([bundle], rest, io);
}

/** `stella proof spine --bundle B [--output json]`: the bundle's checkpoints, consistency and inclusion paths (read only). */
export async function cmdProofSpine(flags: Flags, io: Io): Promise<number> {
  const bundle = flagString(flags, 'bundle');
  if (!bundle) throw new UsageError('usage: stella proof spine --bundle <bundle.tar.gz> [--output table|json|yaml]');
  const format = outputFormat(flags);
  const stat = statSync(path.resolve(bundle), { throwIfNoEntry: false });
  if (!stat) { io.stderr(`stella: no such bundle file: ${bundle}\n`); return 1; }
  if (stat.isDirectory()) throw new UsageError(`${bundle} is a directory; proof spine takes a bundle file (.tar.gz)`);
  const { bundleSpine, formatSpine } = await import('../processors/evidence/spine.ts');
  const { VerifyFailure, causeExitCode } = await import('../processors/evidence/causes.ts');
  try {
    const spine = bundleSpine(readFileSync(path.resolve(bundle)));
    io.stdout(render(spine, format, () => formatSpine(spine)));
    return 0;
  } catch (e) {
    if (!(e instanceof VerifyFailure)) throw e;
    io.stderr(`FAILED: ${e.code}: ${e.detail}\n`);
    return causeExitCode[e.code];
  }
}

export async function cmdTrustExport(flags: Flags, io: Io): Promise<number> {
  const tenant = tenantFlag(flags);
  if (!tenant) throw new UsageError('usage: stella forensic trust export --tenant <tenant> [--output json|yaml]');
  const format = outputFormat(flags, ['table', 'json', 'yaml']);
  const cfg = loadConfig();
  // The configured witnesses (k of n) and TSA certificates go into the root, as the API serves it.
  let policy;
  try {
    const { parseProvenanceSection, policyFor } = await import('../processors/provenance/policy.ts');
    const { withIntakePins } = await import('../processors/evidence/trust-root.ts');
    // The tenant's intake keys and completeness policy are pinned too (audit bundles' provenance).
    policy = withIntakePins(parseEvidenceSection(cfg.sections.evidence).trustPolicy, cfg.intake.trust[tenant]?.keys,
      policyFor(parseProvenanceSection(cfg.sections.provenance), tenant));
  } catch (err) { throw new UsageError((err as Error).message); }
  const { FsEvidenceStore } = await import('../processors/evidence/store.ts');
  const r = await trustExport({ store: new FsEvidenceStore(path.join(cfg.dataDir, 'evidence', 'logs')), tenant, policy });
  // table and json: the canonical document itself (what --trust reads); yaml for reading.
  if (r.root && format === 'yaml') r.stdout = YAML.stringify(r.root);
  return relay(io, r);
}

export async function cmdSnapshotCreate(flags: Flags, io: Io): Promise<number> {
  const caseId = flagString(flags, 'case');
  const scope = flagString(flags, 'scope');
  const id = flagString(flags, 'id');
  if (!caseId || !scope || !id) throw new UsageError('usage: stella forensic snapshot create --case <case id> --scope <trace|event|resource|<resource type>> --id <id> [--out <file>] [--tenant T]');
  const out = flagString(flags, 'out');
  const format = outputFormat(flags);
  const withProvenance = flags.has('with-provenance');
  const withSymbolBytes = flags.has('with-symbol-bytes');
  if (withSymbolBytes && !withProvenance) throw new UsageError('--with-symbol-bytes needs --with-provenance');
  if (withProvenance && scope !== 'trace') throw new UsageError('--with-provenance needs --scope trace');
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  const trace = tracedFetch();
  const bar = progressBar(io.stderr, showProgress(flags, io), 'download', 'bytes');
  const r = await snapshotCreate({ ...access, caseId, scope, id, out: out ? path.resolve(out) : undefined, fetch: trace.fetch, withProvenance, withSymbolBytes,
    onProgress: (done, total) => bar.update(done, total) });
  bar.end();
  if (r.exitCode === 0 && r.data && format !== 'table') r.stdout = render(r.data, format, () => '');
  return relay(io, r, trace);
}

export async function cmdAttestShow(positional: string[], flags: Flags, io: Io): Promise<number> {
  const file = positional[0];
  if (!file) throw new UsageError('usage: stella forensic attest show <bundle.tar.gz> [--output table|json|yaml]');
  const format = outputFormat(flags);
  const r = await attestShow(path.resolve(file));
  io.stdout(render(r.attestations, format, () => r.text));
  return 0;
}

export async function cmdAttestList(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const type = flagString(flags, 'type');
  if (type !== undefined && type !== 'seal' && type !== 'key_rotation') throw new UsageError('--type takes seal or key_rotation');
  const limitFlag = flagString(flags, 'limit');
  const limit = limitFlag === undefined ? undefined : Number(limitFlag);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 500)) throw new UsageError('--limit takes a whole number from 1 to 500');
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  const cursor = flagString(flags, 'cursor');
  return viaApi(io, format, (fmt, fetch) => attestList({ ...access, type, limit, cursor, format: fmt, fetch }));
}

export async function cmdAttestVerify(positional: string[], flags: Flags, io: Io): Promise<number> {
  const file = positional[0];
  if (!file) throw new UsageError('usage: stella forensic attest verify <envelope.dsse.json> [--tenant T] [--output table|json|yaml]');
  const format = outputFormat(flags);
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  return viaApi(io, format, (fmt, fetch) => attestVerify({ ...access, file: path.resolve(file), format: fmt, fetch }));
}

export async function cmdExportsList(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const limitFlag = flagString(flags, 'limit');
  const limit = limitFlag === undefined ? undefined : Number(limitFlag);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 1000)) throw new UsageError('--limit takes a whole number from 1 to 1000');
  const status = flagString(flags, 'status');
  if (status !== undefined && !['pending', 'running', 'succeeded', 'failed', 'canceled'].includes(status)) {
    throw new UsageError('--status takes pending, running, succeeded, failed or canceled');
  }
  const artifactHash = flagString(flags, 'artifact');
  if (artifactHash !== undefined && !/^sha256:[A-Fa-f0-9]{64}$/.test(artifactHash)) throw new UsageError('--artifact takes sha256:<64 hex>');
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  return viaApi(io, format, (fmt, fetch) => exportsList({ ...access, runId: flagString(flags, 'run'), artifactHash, status, limit,
    cursor: flagString(flags, 'cursor'), format: fmt, fetch }));
}

export async function cmdExportsShow(positional: string[], flags: Flags, io: Io): Promise<number> {
  const id = positional[0];
  if (!id || !/^[0-9a-fA-F]{32}$/.test(id)) throw new UsageError('usage: stella exports show <id (32 hex)> [--tenant T] [--output table|json|yaml]');
  const format = outputFormat(flags);
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  return viaApi(io, format, (fmt, fetch) => exportsShow({ ...access, id, format: fmt, fetch }));
}

export async function cmdSloRules(flags: Flags, io: Io): Promise<number> {
  const file = flagString(flags, 'slo-config', 'STELLA_SLO_CONFIG');
  if (file) {
    io.stdout(renderPrometheusRules(parseSloConfig(readFileSync(file, 'utf8'))));
    return 0;
  }
  // Without a file: what `stella run` evaluates, the config's slo section plus the default catalog.
  const { runnerConfig, sloSectionOrDefault } = await import('../processors/slo/section.ts');
  const section = sloSectionOrDefault(loadConfig().sections.slo);
  if (!section) throw new UsageError('SLOs are off in the configuration (slo: false, or slo.defaultCatalog: false without SLOs): nothing to render; or pass --slo-config <slos.yaml>');
  io.stdout(renderPrometheusRules(runnerConfig(section)));
  return 0;
}

export async function cmdSloList(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  return viaApi(io, format, (fmt, fetch) => sloList({ ...access, format: fmt, fetch }));
}

export async function cmdIncident(mode: string | undefined, flags: Flags, io: Io): Promise<number> {
  if (mode !== 'on' && mode !== 'off') throw new UsageError('usage: stella incident on|off --tenant <id> [--ttl <seconds>]');
  const tenant = tenantFlag(flags);
  if (!tenant) throw new UsageError('--tenant is required for stella incident');
  const ttl = flagString(flags, 'ttl');
  const ttlSeconds = ttl === undefined ? undefined : Number(ttl);
  if (ttlSeconds !== undefined && (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0)) throw new UsageError('--ttl takes a whole number of seconds');
  const format = outputFormat(flags);
  const access = apiAccess(flags);
  return viaApi(io, format, (fmt, fetch) => incidentSet({ ...access, tenant, mode, ttlSeconds, format: fmt, fetch }));
}

export async function cmdObsTop(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags) as 'table' | 'json' | 'yaml';
  const interval = Number(flagString(flags, 'interval', undefined, '2'));
  if (!Number.isFinite(interval) || interval < 0.5 || interval > 3600) throw new UsageError('--interval takes seconds from 0.5 to 3600');
  const countFlag = flagString(flags, 'count');
  const count = flags.has('once') ? 1 : countFlag === undefined ? undefined : Number(countFlag);
  if (count !== undefined && (!Number.isInteger(count) || count < 1)) throw new UsageError('--count takes a whole number of refreshes ≥ 1');
  const window = flagString(flags, 'window');
  const windowSeconds = window === undefined ? undefined : Number(window) * 60;
  if (windowSeconds !== undefined && (!Number.isInteger(windowSeconds) || windowSeconds < 60 || windowSeconds > 86_400)) throw new UsageError('--window takes whole minutes from 1 to 1440');
  return runTop({ ...apiAccess(flags), tenant: tenantFlag(flags), windowSeconds, format, intervalMs: interval * 1000, count,
    redraw: format === 'table' && io.isTTY?.stdout === true, stdout: io.stdout, stderr: io.stderr, stopped: io.interrupted });
}

const intFlag = (flags: Flags, name: string, min: number, max: number): number | undefined => {
  const v = flagString(flags, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${name} takes a whole number from ${min} to ${max}`);
  return Number(v);
};

export async function cmdObsLogs(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  return viaApi(io, format, (fmt, fetch) => obsLogs({ ...access, format: fmt, fetch, service: flagString(flags, 'service'), severity: flagString(flags, 'severity'),
    traceId: flagString(flags, 'trace-id'), from: flagString(flags, 'from'), to: flagString(flags, 'to'), text: flagString(flags, 'text'),
    limit: intFlag(flags, 'limit', 1, 1000), cursor: flagString(flags, 'cursor') }));
}

export async function cmdObsMetrics(positional: string[], flags: Flags, io: Io): Promise<number> {
  const name = positional[0] ?? flagString(flags, 'name');
  if (!name) throw new UsageError('usage: stella obs metrics <name> [--service S] [--attr k=v]... [--from T] [--to T] [--step SECONDS]');
  const format = outputFormat(flags);
  const attrRaw = flags.get('attr');
  const attributes: [string, string][] = [];
  for (const a of attrRaw === undefined ? [] : String(attrRaw).split(',')) {
    const i = a.indexOf('=');
    if (i < 1) throw new UsageError('--attr takes key=value (comma-separated for several)');
    attributes.push([a.slice(0, i), a.slice(i + 1)]);
  }
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  return viaApi(io, format, (fmt, fetch) => obsMetrics({ ...access, format: fmt, fetch, name, service: flagString(flags, 'service'), attributes,
    from: flagString(flags, 'from'), to: flagString(flags, 'to'), step: intFlag(flags, 'step', 1, 86_400) }));
}

export async function cmdObsHealth(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const window = intFlag(flags, 'window', 1, 1440);
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  return viaApi(io, format, (fmt, fetch) => obsHealth({ ...access, format: fmt, fetch, windowSeconds: window === undefined ? undefined : window * 60 }));
}

export async function cmdKeysRotate(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const tenant = tenantFlag(flags);
  const cfg = loadConfig();
  let section;
  try { section = parseEvidenceSection(cfg.sections.evidence); } catch (err) { throw new UsageError((err as Error).message); }
  const keyDir = path.resolve(section.keyDir ?? path.join(cfg.dataDir, 'evidence-keys'));
  const { FsEvidenceStore } = await import('../processors/evidence/store.ts');
  // Tenants: configured, the generated demo tenant (if any), and every tenant with an evidence log.
  const demoFile = path.join(cfg.dataDir, 'demo-tenant.json');
  const demo = existsSync(demoFile) ? ensureDemoTenant(cfg.dataDir).tenants : [];
  const known = new Set([...cfg.tenants.map((t) => t.id), ...demo.map((t) => t.id), ...await new FsEvidenceStore(path.join(cfg.dataDir, 'evidence', 'logs')).listTenants()]);
  if (tenant !== undefined && !known.has(tenant)) {
    io.stderr(`stella: tenant ${tenant} is neither configured nor has an evidence log here (${[...known].sort().join(', ') || 'none'})\n`);
    return 1;
  }
  const tenants = tenant !== undefined ? [tenant] : [...known].sort();
  let r;
  try {
    r = await tenantKeysRotate({ keyDir, origins: tenants.map((t) => ({ tenant: t, origin: `${section.originPrefix}/${t}` })) });
  } catch (err) {
    io.stderr(`stella: cannot write a new key in ${keyDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
    return 4;
  }
  for (const p of r.problems) io.stderr(`stella: ${p}\n`);
  if (r.keys.length === 0) {
    if (!r.problems.length) io.stderr(`stella: no tenant has a signing key in ${keyDir} yet (a tenant's key is created when its log is first sealed): nothing to rotate\n`);
    return 1;
  }
  const doc = { status: 'pending', key_dir: keyDir, keys: r.keys, skipped: r.skipped };
  io.stdout(render(doc, format, () => [
    ...r.keys.map((k) => `new signing key for tenant ${k.tenant} written to ${k.pending_file} (mode 0600)`),
    'the evidence processor rotates each of these tenant logs at its next seal tick (or when it next starts) and then makes the new key',
    'the tenant\'s key. Old bundles keep verifying; re-export the trust roots (stella forensic trust export) and publish these verifier keys:',
    ...r.keys.map((k) => `  ${k.tenant}: ${k.verifier_key}`),
    ...(r.skipped.length ? [`skipped (no key yet): ${r.skipped.join(', ')}`] : []),
  ].join('\n') + '\n'));
  return r.problems.length ? 1 : 0;
}

export async function cmdDbMigrate(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const { migrate, openStore } = await import('../lib/store/index.ts');
  const cfg = loadConfig();
  const dataPath = path.resolve(cfg.dataDir, 'chdb');
  // The embedded engine's directory opens in one process only: name the holder instead of chdb's
  // "Cannot lock file ... Another server instance" (exit 4, runtime failure).
  const busy = () => { io.stderr(`stella: ${chdbBusyMessage(dataPath, chdbLockHolder(dataPath))}\n`); return 4; };
  if (!cfg.clickhouse.url && chdbLockHolder(dataPath)) return busy();
  let store;
  try {
    store = await openStore({ url: cfg.clickhouse.url ?? undefined, dataPath });
  } catch (err) {
    if (!cfg.clickhouse.url && /create connection/i.test((err as Error).message) && chdbLockHolder(dataPath)) return busy();
    throw err;
  }
  try {
    const r = await migrate(store);
    io.stdout(render({ applied: r.applied, already_applied: r.skipped, retention_changed: r.ttlChanged, changed_since_applied: r.changed }, format, () =>
      `applied: ${r.applied.join(', ') || 'none'}\nalready applied: ${r.skipped.join(', ') || 'none'}\n` +
      (r.ttlChanged.length ? `retention changed: ${r.ttlChanged.join(', ')}\n` : '') +
      // Comment edits do not count (lib/store/migrate.ts); a statement edit is never re-applied.
      (r.changed.length ? `changed since applied (not re-applied; ship changes as a new migration): ${r.changed.join(', ')}\n` : '')));
    return 0;
  } finally {
    await store.close();
  }
}

const HOLD_USAGE = 'usage: stella forensic hold place <case> [--trace-id <id>]... [--entries <from>-<to>[,...]] [--from <time> --to <time>] [--reason R]\n'
  + '       stella forensic hold release <case> [--reason R]\n       stella forensic hold list [--all]';

export async function cmdHold(sub: string | undefined, positional: string[], flags: Flags, io: Io): Promise<number> {
  const { holdPlace, holdRelease, holdList } = await import('../processors/evidence/hold-cli.ts');
  const format = outputFormat(flags);
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  const reason = flagString(flags, 'reason');
  if (sub === 'list') {
    if (positional.length) throw new UsageError(HOLD_USAGE);
    return viaApi(io, format, (fmt, fetch) => holdList({ ...access, all: flags.has('all'), format: fmt, fetch }));
  }
  const caseId = positional[0];
  if ((sub !== 'place' && sub !== 'release') || !caseId || positional.length > 1) throw new UsageError(HOLD_USAGE);
  if (sub === 'release') return viaApi(io, format, (fmt, fetch) => holdRelease({ ...access, caseId, ...(reason ? { reason } : {}), format: fmt, fetch }));
  const traceIds = flagString(flags, 'trace-id')?.split('\n');
  const entriesFlag = flagString(flags, 'entries');
  const entries = entriesFlag?.split(',').map((r) => {
    const m = /^(\d+)-(\d+)$/.exec(r.trim());
    if (!m || Number(m[1]) >= Number(m[2])) throw new UsageError(`--entries takes index ranges <from>-<to> (to exclusive, from < to), comma-separated; got ${JSON.stringify(r.slice(0, 40))}`);
    return { from: Number(m[1]), to: Number(m[2]) };
  });
  const from = flagString(flags, 'from');
  const to = flagString(flags, 'to');
  if ((from === undefined) !== (to === undefined)) throw new UsageError('--from and --to go together: the sealing-time range (RFC 3339) the hold covers');
  return viaApi(io, format, (fmt, fetch) => holdPlace({ ...access, caseId, ...(traceIds ? { traceIds } : {}), ...(entries ? { entries } : {}),
    ...(from && to ? { sealed: { from, to } } : {}), ...(reason ? { reason } : {}), format: fmt, fetch }));
}

export async function cmdPrune(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const tenant = tenantFlag(flags);
  const cfg = loadConfig();
  const { FsEvidenceStore } = await import('../processors/evidence/store.ts');
  const { pruneCommand, pruneTable } = await import('../processors/evidence/hold-cli.ts');
  const logs = new FsEvidenceStore(path.join(cfg.dataDir, 'evidence', 'logs'));
  const cases = new FsEvidenceStore(path.join(cfg.dataDir, 'evidence', 'cases'));
  const all = await logs.listTenants();
  if (tenant !== undefined && !all.includes(tenant)) { io.stderr(`stella: tenant ${tenant} has no evidence log in ${logs.root}\n`); return 1; }
  const batch = flagString(flags, 'batch');
  if (batch !== undefined && !/^[1-9]\d{0,5}$/.test(batch)) throw new UsageError('--batch takes a whole number of entry bundles ≥ 1');
  const { FsBlobStore } = await import('../lib/cas.ts');
  const r = await pruneCommand({ logs, cases, retention: cfg.evidenceRetention, tenants: tenant ? [tenant] : all, dryRun: flags.has('dry-run'),
    records: new FsBlobStore(cfg.intake.casDir), // where the evidence processor keeps the clean records (stella run)
    ...(batch ? { batch: Number(batch) } : {}),
    // One line per deleted batch on stderr: progress for a long prune (and what the kill test waits for).
    ...(flags.has('progress') ? { onBatch: (t: string, n: number) => io.stderr(`prune ${t}: ${n} bundles\n`) } : {}) });
  io.stdout(render({ tenants: r.tenants, exit_code: r.exitCode }, format, () => pruneTable(r.tenants)));
  return r.exitCode;
}

// ---- stella artifacts add|show, stella symbols add|show (processors/intake/artifacts-cli.ts)

function readFileFlag(flags: Flags, name: string): Buffer | undefined {
  const f = flagString(flags, name);
  if (f === undefined) return undefined;
  try { return readFileSync(f); } catch (err) { throw new UsageError(`--${name}: cannot read ${f} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`); }
}

function parseJsonFile(bytes: Buffer, what: string): unknown {
  try { return JSON.parse(bytes.toString('utf8')) as unknown; } catch { throw new UsageError(`${what} is not JSON`); }
}

export async function cmdArtifactsAdd(flags: Flags, io: Io): Promise<number> {
  const usage = 'usage: stella artifacts add (--record <record.json> | (--sha256 <hex> | --artifact <file>) --provenance <envelope.dsse.json> --commit <git commit> --compiler <text> [--flags "<args>"] [--oci-digest sha256:<hex>]) [--tenant T] [--output table|json|yaml]';
  const format = outputFormat(flags);
  let record: unknown;
  const recordFile = readFileFlag(flags, 'record');
  if (recordFile) {
    for (const f of ['sha256', 'artifact', 'provenance', 'commit', 'compiler', 'flags', 'oci-digest']) if (flags.has(f)) throw new UsageError(`--record carries the whole record; drop --${f}`);
    record = parseJsonFile(recordFile, '--record');
  } else {
    const artifact = readFileFlag(flags, 'artifact');
    const given = flagString(flags, 'sha256');
    if ((artifact === undefined) === (given === undefined)) throw new UsageError(`${usage}\n(give one of --sha256 and --artifact)`);
    const sha256 = artifact ? createHash('sha256').update(artifact).digest('hex') : given!.toLowerCase().replace(/^sha256:/, '');
    const provenance = readFileFlag(flags, 'provenance');
    const commit = flagString(flags, 'commit');
    const compiler = flagString(flags, 'compiler');
    if (!provenance || !commit || !compiler) throw new UsageError(usage);
    const flagText = flagString(flags, 'flags', undefined, '')!;
    const oci = flagString(flags, 'oci-digest');
    record = { sha256, builder_commit: commit, compiler, flags: flagText.split(/\s+/).filter((s) => s.length > 0),
      ...(oci ? { oci_digest: oci } : {}), provenance: parseJsonFile(provenance, '--provenance') };
  }
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  return viaApi(io, format, (fmt, fetch) => artifactsAdd({ ...access, record, format: fmt, fetch }));
}

export async function cmdArtifactsShow(positional: string[], flags: Flags, io: Io): Promise<number> {
  const sha256 = positional[0];
  if (!sha256) throw new UsageError('usage: stella artifacts show <sha256> [--tenant T] [--output table|json|yaml]');
  const format = outputFormat(flags);
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  return viaApi(io, format, (fmt, fetch) => artifactsShow({ ...access, sha256, format: fmt, fetch }));
}

export async function cmdSymbolsAdd(positional: string[], flags: Flags, io: Io): Promise<number> {
  const usage = 'usage: stella symbols add <file> --kind elf|pdb|dsym --artifact-sha256 <hex> [--build-id <hex> | --pdb-guid <guid> --pdb-age <n> | --dsym-uuid <uuid>] [--tenant T] [--output table|json|yaml]';
  const file = positional[0];
  if (!file) throw new UsageError(usage);
  const format = outputFormat(flags);
  let bytes: Buffer;
  try { bytes = readFileSync(file); } catch (err) { io.stderr(`stella: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})\n`); return 1; }
  const kind = flagString(flags, 'kind');
  const artifactSha = flagString(flags, 'artifact-sha256');
  if (!kind || !artifactSha) throw new UsageError(usage);
  const params: Record<string, string> = { kind, artifact_sha256: artifactSha.toLowerCase().replace(/^sha256:/, '') };
  for (const [flag, param] of [['build-id', 'build_id'], ['pdb-guid', 'pdb_guid'], ['pdb-age', 'pdb_age'], ['dsym-uuid', 'dsym_uuid']] as const) {
    const v = flagString(flags, flag);
    if (v !== undefined) params[param] = v;
  }
  if (kind === 'elf' && params.build_id === undefined) throw new UsageError('--build-id is required for --kind elf (readelf -n <file> prints it)');
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  return viaApi(io, format, (fmt, fetch) => symbolsAdd({ ...access, bytes, params, format: fmt, fetch }));
}

export async function cmdSymbolsShow(positional: string[], flags: Flags, io: Io): Promise<number> {
  const key = positional[0];
  if (!key) throw new UsageError('usage: stella symbols show <build-id | pdb GUID+age | dsym UUID> [--kind elf|pdb|dsym] [--tenant T] [--output table|json|yaml]');
  const format = outputFormat(flags);
  const access = { ...apiAccess(flags), tenant: tenantFlag(flags) };
  return viaApi(io, format, (fmt, fetch) => symbolsShow({ ...access, key, kind: flagString(flags, 'kind'), format: fmt, fetch }));
}
