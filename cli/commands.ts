// `stella` subcommands other than `run`. Each returns an exit code; output goes to stdout, problems
// to stderr. Exit codes: 0 ok, 1 not found / empty / failed verification (see forensic verify),
// 2 usage or configuration, 3 not authorized, 4 unreachable or other runtime failure.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { loadConfig } from '../lib/config.ts';
import { parseScrubConfig } from '../processors/scrub/config.ts';
import { scrubJsonCommand } from '../processors/scrub/cli.ts';
import { obsTrace } from '../processors/timeline/cli.ts';
import { attestShow, forensicVerify } from '../processors/evidence/cli.ts';
import { snapshotCreate } from '../processors/evidence/snapshot-cli.ts';
import { parseSloConfig } from '../processors/slo/config.ts';
import { renderPrometheusRules } from '../processors/slo/prometheus-rules.ts';
import { incidentSet, sloList } from '../processors/slo/cli.ts';

export class UsageError extends Error {}

export type Flags = Map<string, string | true>;
export interface Io { stdout: (s: string) => void; stderr: (s: string) => void; stdin: () => Promise<string> }

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

function render(value: unknown, format: string, table: () => string): string {
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

/** Print a processor CLI function's result and pass its exit code on. */
function relay(io: Io, r: { exitCode: number; stdout: string; stderr: string }): number {
  io.stdout(r.stdout);
  io.stderr(r.stderr);
  return r.exitCode;
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
  const format = outputFormat(flags, ['table', 'json']) as 'table' | 'json';
  return relay(io, await obsTrace({ ...apiAccess(flags), traceId, format, tenant: flagString(flags, 'tenant') }));
}

export async function cmdForensicVerify(positional: string[], flags: Flags, io: Io): Promise<number> {
  const file = positional[0];
  if (!file) throw new UsageError('usage: stella forensic verify <bundle.tar.gz> [--output table|json]');
  const format = outputFormat(flags);
  let last = '';
  const out = await forensicVerify(path.resolve(file), {
    onProgress: (p) => {
      if (format !== 'table') return;
      const line = `\r${p.phase} ${p.total ? `${p.done}/${p.total}` : ''}`;
      if (line !== last) { io.stderr(line); last = line; }
    },
  });
  if (last) io.stderr('\n');
  const r = out.result;
  io.stdout(render({ ...r, exit_code: out.exitCode, seconds: out.seconds }, format, () => r.ok
    ? `OK: bundle verified in ${out.seconds.toFixed(2)} s\n`
    : `FAILED: ${r.cause}: ${r.detail}\n`));
  return out.exitCode;
}

export async function cmdSnapshotCreate(flags: Flags, io: Io): Promise<number> {
  const caseId = flagString(flags, 'case');
  const scope = flagString(flags, 'scope');
  const id = flagString(flags, 'id');
  if (!caseId || !scope || !id) throw new UsageError('usage: stella forensic snapshot create --case <case id> --scope <trace|event|resource|<resource type>> --id <id> [--out <file>] [--tenant T]');
  const out = flagString(flags, 'out');
  return relay(io, await snapshotCreate({ ...apiAccess(flags), tenant: flagString(flags, 'tenant'), caseId, scope, id, out: out ? path.resolve(out) : undefined }));
}

export async function cmdAttestShow(positional: string[], flags: Flags, io: Io): Promise<number> {
  const file = positional[0];
  if (!file) throw new UsageError('usage: stella forensic attest show <bundle.tar.gz> [--output table|json|yaml]');
  const format = outputFormat(flags);
  const r = await attestShow(path.resolve(file));
  io.stdout(render(r.attestations, format, () => r.text));
  return 0;
}

export async function cmdSloRules(flags: Flags, io: Io): Promise<number> {
  const file = flagString(flags, 'slo-config', 'STELLA_SLO_CONFIG');
  if (!file) throw new UsageError('usage: stella slo rules --slo-config <slos.yaml> (or STELLA_SLO_CONFIG)');
  io.stdout(renderPrometheusRules(parseSloConfig(readFileSync(file, 'utf8'))));
  return 0;
}

export async function cmdSloList(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags, ['table', 'json']) as 'table' | 'json';
  return relay(io, await sloList({ ...apiAccess(flags), tenant: flagString(flags, 'tenant'), format }));
}

export async function cmdIncident(mode: string | undefined, flags: Flags, io: Io): Promise<number> {
  if (mode !== 'on' && mode !== 'off') throw new UsageError('usage: stella incident on|off --tenant <id> [--ttl <seconds>]');
  const tenant = flagString(flags, 'tenant');
  if (!tenant) throw new UsageError('--tenant is required for stella incident');
  const ttl = flagString(flags, 'ttl');
  const ttlSeconds = ttl === undefined ? undefined : Number(ttl);
  if (ttlSeconds !== undefined && (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0)) throw new UsageError('--ttl takes a whole number of seconds');
  const format = outputFormat(flags, ['table', 'json']) as 'table' | 'json';
  return relay(io, await incidentSet({ ...apiAccess(flags), tenant, mode, ttlSeconds, format }));
}

export async function cmdDbMigrate(io: Io): Promise<number> {
  const { migrate, openStore } = await import('../lib/store/index.ts');
  const cfg = loadConfig();
  const store = await openStore({ url: cfg.clickhouse.url ?? undefined, dataPath: path.join(cfg.dataDir, 'chdb') });
  try {
    const r = await migrate(store);
    io.stdout(`applied: ${r.applied.join(', ') || 'none'}\nalready applied: ${r.skipped.join(', ') || 'none'}\n` +
      (r.ttlChanged.length ? `retention changed: ${r.ttlChanged.join(', ')}\n` : ''));
    return 0;
  } finally {
    await store.close();
  }
}
