// `stella forensic attest list` and `stella forensic attest verify <envelope>`: thin clients of
// GET /attestations and POST /attestations/verify (api/attestation-routes.ts). Like snapshot-cli.ts
// they return {exitCode, stdout, stderr, data}; the CLI parses argv and prints.
// Exit codes: list 0 (1 when there is nothing to list); verify 0 verified, else the cause's code of
// causes.ts (docs/evidence.md); both 1 file not found, 2 usage, 3 auth (401/403), 4 other.
import { promises as fsp } from 'node:fs';
import type { CliResult } from './snapshot-cli.ts';

interface Common { baseUrl: string; token: string; tenant?: string; fetch?: typeof fetch; format?: 'table' | 'json' }
export interface AttestListOptions extends Common { type?: string; limit?: number; cursor?: string }
export interface AttestVerifyOptions extends Common { file: string }

interface ListBody {
  tenant: string;
  attestations: { type: string; size: number; previous_size: number; sealed_at: string; signed_by: string; statement_sha256: string;
    rotation?: { new_key: string; valid_from_size: number } }[];
  next_cursor: string | null;
}
interface VerifyBody { tenant: string; exit_code: number; result: { ok: boolean; cause?: string; detail?: string; type?: string; size?: number; signed_by?: string; statement_sha256?: string } }

async function call(o: Common, method: 'GET' | 'POST', path: string, params: Record<string, string>, body?: Buffer): Promise<{ body?: unknown; err?: CliResult }> {
  const url = new URL(path, o.baseUrl);
  if (o.tenant) url.searchParams.set('tenant', o.tenant);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, { method, body, headers: { authorization: `Bearer ${o.token}`, accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) } });
  } catch (err) {
    return { err: { exitCode: 4, stdout: '', stderr: `cannot reach ${url.origin}: ${(err as Error).message}\n` } };
  }
  const b = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
  const msg = (d: string) => `${res.status}: ${b.error?.message ?? d}\n`;
  if (res.status === 401 || res.status === 403) return { err: { exitCode: 3, stdout: '', stderr: msg('not allowed') } };
  if (res.status === 400 || res.status === 413) return { err: { exitCode: 2, stdout: '', stderr: msg('bad request') } };
  if (!res.ok) return { err: { exitCode: 4, stdout: '', stderr: msg('request failed') } };
  return { body: b };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

export async function attestList(o: AttestListOptions): Promise<CliResult> {
  const params: Record<string, string> = {};
  if (o.type !== undefined) params.type = o.type;
  if (o.limit !== undefined) params.limit = String(o.limit);
  if (o.cursor !== undefined) params.cursor = o.cursor;
  const r = await call(o, 'GET', '/attestations', params);
  if (r.err) return r.err;
  const b = r.body as ListBody;
  const exitCode = b.attestations.length ? 0 : 1;
  const more = b.next_cursor ? `more: --cursor ${b.next_cursor}\n` : '';
  if (o.format === 'json') return { exitCode, stdout: JSON.stringify(b, null, 2) + '\n', stderr: more };
  if (!b.attestations.length) return { exitCode, stdout: '', stderr: `tenant ${b.tenant}: no attestations yet (the first appears with the first seal)\n` };
  const rows = [['SIZE', 'TYPE', 'FROM', 'SEALED AT', 'SIGNED BY', 'STATEMENT SHA-256']];
  for (const a of b.attestations) rows.push([String(a.size), a.type, String(a.previous_size), a.sealed_at, a.signed_by.slice(a.signed_by.lastIndexOf('+') + 1), a.statement_sha256]);
  return { exitCode, stdout: `tenant ${b.tenant}: ${b.attestations.length} attestations (newest first; key ids in SIGNED BY)\n${table(rows)}`, stderr: more };
}

export async function attestVerify(o: AttestVerifyOptions): Promise<CliResult> {
  let bytes: Buffer;
  try { bytes = await fsp.readFile(o.file); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { exitCode: 1, stdout: '', stderr: `no such envelope file: ${o.file}\n` };
    if (code === 'EISDIR') return { exitCode: 2, stdout: '', stderr: `${o.file} is a directory; attest verify takes a DSSE envelope file (.dsse.json)\n` };
    return { exitCode: 4, stdout: '', stderr: `cannot read ${o.file}: ${code ?? (e as Error).message}\n` };
  }
  const r = await call(o, 'POST', '/attestations/verify', {}, bytes);
  if (r.err) return r.err;
  const b = r.body as VerifyBody;
  const v = b.result;
  if (o.format === 'json') return { exitCode: b.exit_code, stdout: JSON.stringify(b, null, 2) + '\n', stderr: '' };
  return { exitCode: b.exit_code, stdout: v.ok
    ? `OK: ${v.type} statement for size ${v.size} of tenant ${b.tenant}, signed by ${v.signed_by} (the tenant's trust root on the server)\n`
    : `FAILED: ${v.cause}: ${v.detail}\n`, stderr: '' };
}
