// `stella exports list` and `stella exports show <id>`: thin clients of GET /internal/orchestrator/exports
// (api/export-routes.ts), shaped like the other API-reading commands: {exitCode, stdout, stderr}.
// Exit codes: 0 ok, 1 nothing listed / no such export, 2 bad request, 3 not allowed (401/403), 4 other.
import type { CliResult } from '../evidence/snapshot-cli.ts';

interface Common { baseUrl: string; token: string; tenant?: string; fetch?: typeof fetch; format?: 'table' | 'json' }
export interface ExportsListOptions extends Common { runId?: string; artifactHash?: string; status?: string; limit?: number; cursor?: string }
export interface ExportsShowOptions extends Common { id: string }

interface ExportView {
  id: string; runId: string; jobType: string; artifactHash: string; policyHash: string | null; startedAt: string; completedAt: string | null;
  status: string; manifestPath: string; logsPath: string; environment: string; idempotencyKey: string; exportDigest: string;
  dsseEnvelopeDigests: string[]; signerKeyids: string[]; eventId: string;
}
interface ListBody { tenant: string; exports: ExportView[]; next_cursor: string | null }
interface ShowBody { tenant: string; export: ExportView }

const PATH = '/internal/orchestrator/exports';

async function call(o: Common, path: string, params: Record<string, string>): Promise<{ body?: unknown; err?: CliResult }> {
  const url = new URL(path, o.baseUrl);
  if (o.tenant) url.searchParams.set('tenant', o.tenant);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, { headers: { authorization: `Bearer ${o.token}`, accept: 'application/json' } });
  } catch (err) {
    return { err: { exitCode: 4, stdout: '', stderr: `cannot reach ${url.origin}: ${(err as Error).message}\n` } };
  }
  const b = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
  const msg = (d: string) => `${res.status}: ${b.error?.message ?? d}\n`;
  if (res.status === 401 || res.status === 403) return { err: { exitCode: 3, stdout: '', stderr: msg('not allowed') } };
  if (res.status === 404) return { err: { exitCode: 1, stdout: '', stderr: msg('not found') } };
  if (res.status === 400) return { err: { exitCode: 2, stdout: '', stderr: msg('bad request') } };
  if (!res.ok) return { err: { exitCode: 4, stdout: '', stderr: msg('request failed') } };
  return { body: b };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => [...r[i]!].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - [...c].length))).join('  ').trimEnd()).join('\n') + '\n';
}

// Ids and paths come from clients: never let them move the terminal's cursor.
const printable = (s: string): string => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
const short = (h: string | null): string => (h ? `${h.slice(0, 19)}…` : '-');

export async function exportsList(o: ExportsListOptions): Promise<CliResult> {
  const params: Record<string, string> = {};
  if (o.runId !== undefined) params.run_id = o.runId;
  if (o.artifactHash !== undefined) params.artifact_hash = o.artifactHash;
  if (o.status !== undefined) params.status = o.status;
  if (o.limit !== undefined) params.limit = String(o.limit);
  if (o.cursor !== undefined) params.cursor = o.cursor;
  const r = await call(o, PATH, params);
  if (r.err) return r.err;
  const b = r.body as ListBody;
  const exitCode = b.exports.length ? 0 : 1;
  const more = b.next_cursor ? `more: --cursor ${b.next_cursor}\n` : '';
  if (o.format === 'json') return { exitCode, stdout: JSON.stringify(b, null, 2) + '\n', stderr: more };
  if (!b.exports.length) return { exitCode, stdout: '', stderr: `tenant ${b.tenant}: no orchestrator exports\n` };
  const rows = [['ID', 'RUN', 'JOB', 'STATUS', 'STARTED', 'COMPLETED', 'ARTIFACT', 'SIGNED BY']];
  for (const e of b.exports) {
    rows.push([e.id, printable(e.runId), printable(e.jobType), e.status, e.startedAt, e.completedAt ?? '-', short(e.artifactHash),
      e.signerKeyids.length ? e.signerKeyids.map(printable).join(',') : '(unsigned)']);
  }
  return { exitCode, stdout: `tenant ${b.tenant}: ${b.exports.length} exports (by run, then start)\n${table(rows)}`, stderr: more };
}

export async function exportsShow(o: ExportsShowOptions): Promise<CliResult> {
  const r = await call(o, `${PATH}/${encodeURIComponent(o.id)}`, {});
  if (r.err) return r.err;
  const b = r.body as ShowBody;
  if (o.format === 'json') return { exitCode: 0, stdout: JSON.stringify(b, null, 2) + '\n', stderr: '' };
  const e = b.export;
  const lines: [string, string][] = [
    ['id', e.id], ['tenant', b.tenant], ['run', printable(e.runId)], ['job type', printable(e.jobType)], ['environment', printable(e.environment)],
    ['status', e.status], ['started', e.startedAt], ['completed', e.completedAt ?? '-'], ['artifact', e.artifactHash], ['policy', e.policyHash ?? '-'],
    ['manifest', e.manifestPath], ['logs', e.logsPath], ['idempotency key', e.idempotencyKey], ['export digest', e.exportDigest],
    ['signed by', e.signerKeyids.length ? e.signerKeyids.map(printable).join(', ') : '(unsigned)'],
    ...e.dsseEnvelopeDigests.map((d, i): [string, string] => [`envelope ${i}`, d]),
    ['timeline event', e.eventId],
  ];
  const w = Math.max(...lines.map(([k]) => k.length));
  return { exitCode: 0, stdout: lines.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n', stderr: '' };
}
