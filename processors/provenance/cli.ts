// `stella obs provenance <trace_id>`: the trace's per-frame chain of custody from the read API
// (GET /obs/trace/:trace_id/provenance), as a table or JSON. Exit codes: 0 joined and the
// completeness gate passed (or no native frames), 1 no frames, 2 usage, 3 auth, 4 other,
// 5 the completeness gate failed (the failing frames and causes are printed).
import { getForTrace, type CliResult, type TraceGetOptions } from '../../cli/api-client.ts';
import type { ProvenanceReport } from './join.ts';

export interface ObsProvenanceOptions extends TraceGetOptions { format?: 'table' | 'json' }
export type { CliResult };
export const EXIT_GATE_FAILED = 5;

export async function obsProvenance(opts: ObsProvenanceOptions): Promise<CliResult> {
  const got = await getForTrace<ProvenanceReport>(opts, (id) => `/obs/trace/${id}/provenance`);
  if ('result' in got) return got.result;
  const { res, body } = got;
  if (res.status === 404) return { exitCode: 1, stdout: '', stderr: `no frames recorded for trace ${opts.traceId.toLowerCase()}\n` };
  if (!res.ok) return { exitCode: 4, stdout: '', stderr: `${res.status}: ${body.error?.message ?? 'request failed'}\n` };
  const c = body.completeness;
  const exitCode = c.gate === 'fail' ? EXIT_GATE_FAILED : 0;
  const gateLine = c.gate === 'no_native_frames' ? 'completeness: no native frames\n'
    : `completeness: ${c.joined}/${c.considered} of the top ${c.top_frames} native frames joined (${(c.ratio! * 100).toFixed(1)}%, policy >= ${(c.min * 100).toFixed(1)}%): ${c.gate.toUpperCase()}\n`;
  const failures = c.failed.map((f) => `  ${f.key} (x${f.count}): ${f.cause}: ${f.detail}\n`).join('');
  if (opts.format === 'json') return { exitCode, stdout: JSON.stringify(body, null, 2) + '\n', stderr: c.gate === 'fail' ? gateLine + failures : '' };
  return { exitCode, stdout: provenanceTable(body) + gateLine + failures, stderr: '' };
}

export function provenanceTable(r: ProvenanceReport): string {
  const header = ['#', 'IP', 'SYMBOL', 'BUNDLE', 'ARTIFACT', 'COMMIT', 'SIGNER', 'EVIDENCE', 'STATUS'];
  const rows = r.frames.map((f) => [
    String(f.frame_index), f.ip || f.module_offset || '-',
    f.symbol ? `${f.symbol.name}+${f.symbol.offset}` : f.function || '-',
    f.symbol_bundle ? f.symbol_bundle.sha256.slice(0, 12) : '-',
    f.artifact ? f.artifact.sha256.slice(0, 12) : '-',
    f.artifact ? f.artifact.builder_commit.slice(0, 12) : '-',
    f.provenance?.signer_keyid ?? '-',
    f.provenance ? f.provenance.evidence.status : '-',
    f.status === 'failed' ? `FAILED ${f.cause}` : f.status,
  ]);
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  const lines = all.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
  return `trace ${r.trace_id}: ${r.frames.length} frames\n${lines.join('\n')}\n`;
}

/**
 * `stella forensic replay-manifest <trace_id>`: the trace's replay manifest (GET
 * /forensic/trace/:trace_id/replay-manifest) as JSON; the fields that could not be filled are
 * named on stderr. Exit codes: 0 complete, 1 no such trace, 2 usage, 3 auth, 4 other,
 * 6 printed but incomplete (fields missing).
 */
export const EXIT_MANIFEST_INCOMPLETE = 6;

export async function replayManifestCli(opts: ObsProvenanceOptions): Promise<CliResult> {
  const got = await getForTrace<{ manifest_sha256: string; manifest: { missing: { field: string; reason: string }[] } }>(opts, (id) => `/forensic/trace/${id}/replay-manifest`);
  if ('result' in got) return got.result;
  const { res, body } = got;
  if (res.status === 404) return { exitCode: 1, stdout: '', stderr: `no spans or frames recorded for trace ${opts.traceId.toLowerCase()}\n` };
  if (!res.ok) return { exitCode: 4, stdout: '', stderr: `${res.status}: ${body.error?.message ?? 'request failed'}\n` };
  const missing = body.manifest.missing;
  return {
    exitCode: missing.length ? EXIT_MANIFEST_INCOMPLETE : 0,
    stdout: JSON.stringify(body.manifest, null, 2) + '\n',
    stderr: `manifest sha256:${body.manifest_sha256}\n` + missing.map((m) => `missing ${m.field}: ${m.reason}\n`).join(''),
  };
}
