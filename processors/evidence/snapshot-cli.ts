// `stella forensic snapshot create --case <id> --scope <kind> --id <resource id> [--out file]`:
// asks the API to build the case bundle, downloads it, writes it. Like obsTrace (timeline/cli.ts)
// it returns {exitCode, stdout, stderr}; the CLI parses argv and prints.
// Exit codes: 0 written, 1 nothing to snapshot (no matching events, or not sealed yet), 2 usage,
// 3 auth (401/403), 4 other (network, server, write), 26 (ENTRY_PRUNED) the case needs an entry
// that retention pruned.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { causeExitCode } from './causes.ts';
import { sha256Hex } from './hash.ts';

export interface SnapshotCreateOptions {
  baseUrl: string;
  token: string;
  tenant?: string;
  caseId: string;
  /** What to snapshot: trace | event | resource | a resource type (service, component, ...). */
  scope: string;
  /** The trace id, event id or resource id. */
  id: string;
  /** Audit bundle (scope trace): frames, join, symbol refs, provenance envelopes (docs/provenance.md "Audit bundles"). */
  withProvenance?: boolean;
  /** With withProvenance: the symbol bundles' bytes too. */
  withSymbolBytes?: boolean;
  /** Output file; default ./<case id>.tar.gz */
  out?: string;
  fetch?: typeof fetch;
  /** Download progress: bytes received of the bundle's length (undefined when the server sends none). */
  onProgress?: (received: number, total: number | undefined) => void;
}

/** Read a response body chunk by chunk, reporting progress. */
async function readBody(r: Response, onProgress?: (received: number, total: number | undefined) => void): Promise<Buffer> {
  const len = Number(r.headers.get('content-length'));
  const total = Number.isSafeInteger(len) && len > 0 ? len : undefined;
  if (!r.body) return Buffer.from(await r.arrayBuffer());
  const chunks: Buffer[] = [];
  let received = 0;
  onProgress?.(0, total);
  for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(Buffer.from(c));
    received += c.length;
    onProgress?.(received, total);
  }
  return Buffer.concat(chunks);
}

export interface CliResult { exitCode: number; stdout: string; stderr: string; data?: Record<string, unknown> }

export async function snapshotCreate(opts: SnapshotCreateOptions): Promise<CliResult> {
  if (!opts.caseId || !opts.scope || !opts.id) return { exitCode: 2, stdout: '', stderr: 'usage: stella forensic snapshot create --case <id> --scope <trace|event|resource|type> --id <id> [--out file]\n' };
  const f = opts.fetch ?? fetch;
  const q = opts.tenant ? `?tenant=${encodeURIComponent(opts.tenant)}` : '';
  const headers = { authorization: `Bearer ${opts.token}` };
  const url = new URL(`/evidence/snapshot${q}`, opts.baseUrl);
  let res: Response;
  try {
    res = await f(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ kind: opts.scope, resource_id: opts.id, case_id: opts.caseId,
        ...(opts.withProvenance ? { with_provenance: true } : {}), ...(opts.withSymbolBytes ? { with_symbol_bytes: true } : {}) }) });
  } catch (err) {
    return { exitCode: 4, stdout: '', stderr: `cannot reach ${url.origin}: ${(err as Error).message}\n` };
  }
  const body = (await res.json().catch(() => ({}))) as { tenant?: string; bundle_id?: string; events?: number; records?: number; tree_size?: number;
    provenance?: { frames: number; registrations: number; symbol_bytes: boolean }; error?: { code?: string; message?: string } };
  if (res.status === 401 || res.status === 403) return { exitCode: 3, stdout: '', stderr: `${res.status}: ${body.error?.message ?? 'not allowed'}\n` };
  if (res.status === 404 || res.status === 409) return { exitCode: 1, stdout: '', stderr: `${res.status}: ${body.error?.message ?? 'nothing to snapshot'}\n` };
  if (res.status === 501) return { exitCode: 4, stdout: '', stderr: `501: ${body.error?.message ?? 'not configured'}\n` };
  if (res.status === 400) return { exitCode: 2, stdout: '', stderr: `400: ${body.error?.message ?? 'bad request'}\n` };
  // A case needing an entry that retention pruned: the verify exit code of ENTRY_PRUNED.
  if (res.status === 410 && body.error?.code === 'entry_pruned') return { exitCode: causeExitCode.ENTRY_PRUNED, stdout: '', stderr: `FAILED: ENTRY_PRUNED: ${body.error.message ?? ''}\n` };
  if (!res.ok || !body.bundle_id) return { exitCode: 4, stdout: '', stderr: `${res.status}: ${body.error?.message ?? 'snapshot failed'}\n` };

  const id = body.bundle_id;
  const dl = new URL(`/evidence/bundles/${id}${q}`, opts.baseUrl);
  let bytes: Buffer;
  try {
    const r = await f(dl, { headers: { ...headers, accept: 'application/gzip' } });
    if (r.status === 401 || r.status === 403) {
      const e = (await r.json().catch(() => ({}))) as { error?: { message?: string } };
      return { exitCode: 3, stdout: '', stderr: `${r.status}: ${e.error?.message ?? 'not allowed'} (downloading needs evidence:export)\n` };
    }
    if (!r.ok) return { exitCode: 4, stdout: '', stderr: `${r.status}: bundle download failed\n` };
    bytes = await readBody(r, opts.onProgress);
  } catch (err) {
    return { exitCode: 4, stdout: '', stderr: `cannot reach ${dl.origin}: ${(err as Error).message}\n` };
  }
  // The id is the SHA-256 of the bundle: check what arrived is what the server built.
  if (sha256Hex(bytes) !== id) return { exitCode: 4, stdout: '', stderr: `downloaded bundle does not match its id ${id}\n` };
  const out = opts.out ?? `${opts.caseId.replace(/[^A-Za-z0-9._-]/g, '_')}.tar.gz`;
  const tmp = path.join(path.dirname(out), `.${path.basename(out)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await fsp.writeFile(tmp, bytes, { mode: 0o644 });
    await fsp.rename(tmp, out);
  } catch (err) {
    await fsp.unlink(tmp).catch(() => undefined);
    return { exitCode: 4, stdout: '', stderr: `cannot write ${out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n` };
  }
  const data = { ...(body.tenant ? { tenant: body.tenant } : {}), bundle_id: id, case_id: opts.caseId, events: body.events, records: body.records ?? 0, tree_size: body.tree_size, bytes: bytes.length, file: out,
    ...(body.provenance ? { provenance: body.provenance } : {}) };
  const prov = body.provenance ? `  provenance: ${body.provenance.frames} frames, ${body.provenance.registrations} sealed registrations${body.provenance.symbol_bytes ? ', symbol bytes' : ''}\n` : '';
  return { data, exitCode: 0, stdout: `bundle ${id}\n  case ${opts.caseId}, ${body.events} events${body.records ? `, ${body.records} records` : ''}, tree size ${body.tree_size}, ${bytes.length} bytes\n${prov}  written to ${out}\n`
    // Verification needs an anchor the bundle does not carry: the tenant's pinned trust root.
    + `  verify offline: stella forensic verify ${out} --trust <trust root>\n`
    + `  (pin the trust root once, from a source you trust: stella forensic trust export --tenant ${body.tenant ?? '<tenant>'} on the evidence host, or GET /evidence/${body.tenant ?? '<tenant>'}/trust-root)\n`, stderr: '' };
}
