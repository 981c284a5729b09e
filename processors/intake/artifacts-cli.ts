// `stella artifacts add|show` and `stella symbols add|show`: thin clients of POST/GET
// /api/v1/artifacts and /api/v1/symbols. cli/commands.ts parses argv and calls these. Exit codes:
// 0 ok, 1 refused by the server (named reason) or not found, 2 usage, 3 auth, 4 other.
import type { CliResult } from '../timeline/cli.ts';

interface Common { baseUrl: string; token: string; tenant?: string; fetch?: typeof fetch; format?: 'table' | 'json' }

export interface ArtifactAddOptions extends Common { record: unknown }
export interface ArtifactShowOptions extends Common { sha256: string }
export interface SymbolsAddOptions extends Common { bytes: Buffer; params: Record<string, string> }
export interface SymbolsShowOptions extends Common { key: string; kind?: string }

async function call(o: Common, method: 'GET' | 'POST', path: string, params: Record<string, string>, body?: { bytes: Buffer; type: string; headers?: Record<string, string> }):
  Promise<{ body?: any; status?: number; err?: CliResult }> {
  const url = new URL(path, o.baseUrl);
  if (o.tenant) url.searchParams.set('tenant', o.tenant);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, { method, headers: { authorization: `Bearer ${o.token}`, accept: 'application/json',
      ...(body ? { 'content-type': body.type, ...body.headers } : {}) }, body: body ? new Uint8Array(body.bytes) : undefined });
  } catch (err) {
    return { err: { exitCode: 4, stdout: '', stderr: `cannot reach ${url.origin}: ${(err as Error).message}\n` } };
  }
  const b = (await res.json().catch(() => ({}))) as any;
  const msg = (fallback: string) => `${b.error?.code ? `${b.error.code}: ` : ''}${b.error?.message ?? fallback}`;
  if (res.status === 401 || res.status === 403) return { err: { exitCode: 3, stdout: '', stderr: `${res.status}: ${msg('not allowed')}\n` } };
  if (res.status === 404) return { err: { exitCode: 1, stdout: '', stderr: `404: ${msg('not found')}\n` } };
  // A refusal with a named reason (bad provenance, unattested origin, build-id mismatch, too large).
  if (res.status >= 400 && res.status < 500) return { err: { exitCode: 1, stdout: '', stderr: `refused (${res.status}) ${msg('bad request')}\n` } };
  if (!res.ok) return { err: { exitCode: 4, stdout: '', stderr: `${res.status}: ${msg('request failed')}\n` } };
  return { body: b, status: res.status };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

const json = (b: unknown): string => JSON.stringify(b, null, 2) + '\n';

export async function artifactsAdd(o: ArtifactAddOptions): Promise<CliResult> {
  const r = await call(o, 'POST', '/api/v1/artifacts', {}, { bytes: Buffer.from(JSON.stringify(o.record)), type: 'application/json' });
  if (r.err) return r.err;
  const b = r.body;
  if (o.format === 'json') return { exitCode: 0, stdout: json(b), stderr: '' };
  const a = b.artifact;
  return { exitCode: 0, stdout: `${b.replay ? 'already registered' : 'registered'}: artifact ${a.sha256} (tenant ${b.tenant})\n` + table([
    ['FIELD', 'VALUE'], ['builder_commit', a.builder_commit], ['compiler', a.compiler], ['flags', a.flags.join(' ') || '-'],
    ['oci_digest', a.oci_digest || '-'], ['attested', a.attested_fields.join(',')], ['builder', a.builder_id], ['signer_keyid', a.signer_keyid],
    ['envelope', a.envelope_cas_uri], ['event_id', b.event_id]]), stderr: '' };
}

export async function artifactsShow(o: ArtifactShowOptions): Promise<CliResult> {
  if (!/^(?:sha256:)?[0-9a-fA-F]{64}$/.test(o.sha256)) return { exitCode: 2, stdout: '', stderr: 'artifact sha256 must be 64 hex characters\n' };
  const r = await call(o, 'GET', `/api/v1/artifacts/${o.sha256.toLowerCase().replace(/^sha256:/, '')}`, {});
  if (r.err) return r.err;
  const b = r.body;
  if (o.format === 'json') return { exitCode: 0, stdout: json(b), stderr: '' };
  const rows = [['ENVELOPE SHA256', 'COMMIT', 'COMPILER', 'FLAGS', 'ATTESTED', 'SIGNER', 'BUILDER', 'EVENT']];
  for (const a of b.attestations) {
    rows.push([a.envelope_sha256.slice(0, 16), a.builder_commit.slice(0, 12), a.compiler, a.flags.join(' ') || '-', a.attested_fields.join(','), a.signer_keyid, a.builder_id, a.event_id]);
  }
  const sym = [['KIND', 'SYMBOL KEY', 'BUNDLE SHA256', 'SIZE', 'VERIFIED']];
  for (const s of b.symbol_bundles) sym.push([s.kind, s.symbol_key, s.bundle_sha256.slice(0, 16), s.size, s.key_verified ? 'yes' : 'declared']);
  return { exitCode: 0, stdout: `artifact ${b.sha256} (tenant ${b.tenant}): ${b.attestations.length} attestation(s)\n${table(rows)}`
    + (b.symbol_bundles.length ? `symbol bundles:\n${table(sym)}` : 'no symbol bundles\n'), stderr: '' };
}

export async function symbolsAdd(o: SymbolsAddOptions): Promise<CliResult> {
  const { createHash } = await import('node:crypto');
  const digest = createHash('sha256').update(o.bytes).digest('hex');
  const r = await call(o, 'POST', '/api/v1/symbols', o.params, { bytes: o.bytes, type: 'application/octet-stream', headers: { 'content-sha256': digest } });
  if (r.err) return r.err;
  const b = r.body;
  if (o.format === 'json') return { exitCode: 0, stdout: json(b), stderr: '' };
  const s = b.bundle;
  return { exitCode: 0, stdout: `${b.replay ? 'already registered' : 'registered'}: ${s.kind} symbols ${s.symbol_key} (tenant ${b.tenant})\n` + table([
    ['FIELD', 'VALUE'], ['bundle_sha256', s.bundle_sha256], ['artifact_sha256', s.artifact_sha256], ['size', String(s.size)],
    ['key', s.key_verified ? 'read from the bytes' : 'declared'], ['cas_uri', s.cas_uri], ['event_id', b.event_id]]), stderr: '' };
}

export async function symbolsShow(o: SymbolsShowOptions): Promise<CliResult> {
  if (!/^[0-9A-Fa-f-]{8,160}$/.test(o.key)) return { exitCode: 2, stdout: '', stderr: 'symbol key must be a build-id, PDB GUID+age or dSYM UUID (hex)\n' };
  const r = await call(o, 'GET', `/api/v1/symbols/${o.key}`, o.kind ? { kind: o.kind } : {});
  if (r.err) return r.err;
  const b = r.body;
  if (o.format === 'json') return { exitCode: 0, stdout: json(b), stderr: '' };
  const rows = [['KIND', 'SYMBOL KEY', 'BUNDLE SHA256', 'ARTIFACT SHA256', 'SIZE', 'KEY', 'EVENT']];
  for (const s of b.bundles) rows.push([s.kind, s.symbol_key, s.bundle_sha256, s.artifact_sha256, s.size, s.key_verified ? 'verified' : 'declared', s.event_id]);
  return { exitCode: 0, stdout: `tenant ${b.tenant}: ${b.bundles.length} symbol bundle(s)\n${table(rows)}`, stderr: '' };
}
