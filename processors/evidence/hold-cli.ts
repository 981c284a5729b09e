// `stella forensic hold place|release|list` (clients of the API's hold routes) and
// `stella forensic prune` (on this host's evidence store). Each returns {exitCode, stdout, stderr}
// in table or json; the CLI parses argv. Exit codes: 0 ok, 1 nothing to show / not found,
// 2 usage or bad parameter, 3 auth, 4 other.
import type { FsBlobStore } from '../../lib/cas.ts';
import type { RetentionConfig } from '../../lib/config.ts';
import { activeHoldCovers } from './holds.ts';
import type { HoldRecord } from './holds.ts';
import { checkStoredLog, latestIncident, pruneTenant, type PruneReport, type StoreCheck } from './prune.ts';
import { incidentOn, retentionMs } from './retention.ts';
import type { EvidenceStore, FsEvidenceStore } from './store.ts';

export interface CliResult { exitCode: number; stdout: string; stderr: string }
interface Common { baseUrl: string; token: string; tenant?: string; fetch?: typeof fetch; format?: 'table' | 'json' }

export interface HoldPlaceOptions extends Common { caseId: string; traceIds?: string[]; entries?: { from: number; to: number }[]; sealed?: { from: string; to: string }; reason?: string }

async function call(o: Common, method: string, path: string, body?: unknown, params: Record<string, string> = {}): Promise<{ status: number; body: any } | CliResult> {
  const url = new URL(path, o.baseUrl);
  if (o.tenant) url.searchParams.set('tenant', o.tenant);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, { method, headers: { authorization: `Bearer ${o.token}`, accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}) });
  } catch (err) {
    return { exitCode: 4, stdout: '', stderr: `cannot reach ${url.origin}: ${(err as Error).message}\n` };
  }
  const b = (await res.json().catch(() => ({}))) as any;
  const msg = (d: string) => `${res.status}: ${b.error?.message ?? d}\n`;
  if (res.status === 401 || res.status === 403) return { exitCode: 3, stdout: '', stderr: msg('not allowed') };
  if (res.status === 400) return { exitCode: 2, stdout: '', stderr: msg('bad request') };
  if (res.status === 404) return { exitCode: 1, stdout: '', stderr: msg('not found') };
  if (!res.ok) return { exitCode: 4, stdout: '', stderr: msg('request failed') };
  return { status: res.status, body: b };
}

const isResult = (x: unknown): x is CliResult => typeof (x as CliResult).exitCode === 'number';

function coverText(h: HoldRecord): string {
  const parts: string[] = [];
  if (h.cover.trace_ids.length) parts.push(`traces ${h.cover.trace_ids.join(',')}`);
  if (h.cover.entries.length) parts.push(`entries ${h.cover.entries.map((r) => `${r.from}-${r.to}`).join(',')}`);
  if (h.cover.sealed) parts.push(`sealed ${h.cover.sealed.from}..${h.cover.sealed.to}`);
  return parts.join('; ') || '-';
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

const eventNote = (b: { event_published?: boolean; event_error?: string }): string => (b.event_error ? `warning: ${b.event_error}\n` : '');

export async function holdPlace(o: HoldPlaceOptions): Promise<CliResult> {
  const body: Record<string, unknown> = {};
  if (o.traceIds?.length) body.trace_ids = o.traceIds;
  if (o.entries?.length) body.entries = o.entries;
  if (o.sealed) body.sealed = o.sealed;
  if (o.reason) body.reason = o.reason;
  const r = await call(o, 'POST', `/evidence/hold/${encodeURIComponent(o.caseId)}`, body);
  if (isResult(r)) return r;
  const b = r.body as { tenant: string; hold: HoldRecord; created: boolean; event_published?: boolean; event_error?: string };
  if (o.format === 'json') return { exitCode: 0, stdout: JSON.stringify(b, null, 2) + '\n', stderr: eventNote(b) };
  return { exitCode: 0, stderr: eventNote(b),
    stdout: `tenant ${b.tenant}: case ${b.hold.case_id} ${b.created ? 'is now' : 'was already'} on legal hold (since ${b.hold.at}, by ${b.hold.by})\n  covers ${coverText(b.hold)}\n` };
}

export async function holdRelease(o: Common & { caseId: string; reason?: string }): Promise<CliResult> {
  const r = await call(o, 'DELETE', `/evidence/hold/${encodeURIComponent(o.caseId)}`, undefined, o.reason ? { reason: o.reason } : {});
  if (isResult(r)) return r;
  const b = r.body as { tenant: string; hold: HoldRecord; released: boolean; event_error?: string };
  if (o.format === 'json') return { exitCode: 0, stdout: JSON.stringify(b, null, 2) + '\n', stderr: eventNote(b) };
  return { exitCode: 0, stderr: eventNote(b), stdout: `tenant ${b.tenant}: case ${b.hold.case_id} ${b.released ? 'released from' : 'was not on'} legal hold; retention applies to it again\n` };
}

export async function holdList(o: Common & { all?: boolean }): Promise<CliResult> {
  const r = await call(o, 'GET', '/evidence/holds', undefined, o.all ? { all: 'true' } : {});
  if (isResult(r)) return r;
  const b = r.body as { tenant: string; holds: HoldRecord[] };
  const code = b.holds.length ? 0 : 1;
  if (o.format === 'json') return { exitCode: code, stdout: JSON.stringify(b, null, 2) + '\n', stderr: '' };
  if (!b.holds.length) return { exitCode: 1, stdout: '', stderr: `tenant ${b.tenant}: no ${o.all ? '' : 'active '}legal holds\n` };
  const rows = [['CASE', 'STATE', 'SINCE', 'BY', 'COVERS']];
  for (const h of b.holds) rows.push([h.case_id, h.action === 'placed' ? 'held' : 'released', h.at, h.by, coverText(h)]);
  return { exitCode: 0, stdout: table(rows), stderr: '' };
}

export interface PruneCliOptions {
  logs: FsEvidenceStore;
  cases: EvidenceStore;
  retention: RetentionConfig;
  tenants: string[];
  nowMs?: number;
  dryRun?: boolean;
  batch?: number;
  onBatch?: (tenant: string, done: number) => void;
  /** The record store (`intake.casDir`): pruned bundles' record packs and unreferenced record blobs go too. */
  records?: Pick<FsBlobStore, 'remove'>;
}

export interface PruneCliTenant extends PruneReport { retention_days: number; incident_mode: boolean; check: StoreCheck }

/**
 * `stella forensic prune`: for each tenant, claim its writer epoch (the evidence processor, if it
 * writes the tenant, is fenced out and re-claims it, its unsealed records re-delivered), prune past
 * retention, then check that what remains verifies. Exit 0, or 1 when a check fails.
 */
export async function pruneCommand(o: PruneCliOptions): Promise<{ exitCode: number; tenants: PruneCliTenant[] }> {
  const out: PruneCliTenant[] = [];
  const nowMs = o.nowMs ?? Date.now();
  for (const tenant of o.tenants) {
    const writer = o.dryRun ? o.logs : await o.logs.claimWriter(tenant);
    const incident = incidentOn(await latestIncident(o.logs, tenant), nowMs);
    const ms = retentionMs(o.retention, tenant, incident);
    const report = await pruneTenant({ store: writer, tenant, holds: await activeHoldCovers(o.cases, tenant), nowMs, retentionMs: ms, dryRun: o.dryRun,
      ...(o.batch ? { batch: o.batch } : {}), ...(o.records ? { records: o.records } : {}), ...(o.onBatch ? { onBatch: (n: number) => o.onBatch!(tenant, n) } : {}) });
    out.push({ ...report, retention_days: ms / 86_400_000, incident_mode: incident, check: await checkStoredLog(o.logs, tenant) });
  }
  return { exitCode: out.every((t) => t.check.ok) ? 0 : 1, tenants: out };
}

export function pruneTable(ts: readonly PruneCliTenant[]): string {
  const rows = [['TENANT', 'RETENTION', 'CUTOFF', 'PRUNED', 'RESUMED', 'HELD', 'CHECK']];
  for (const t of ts) {
    rows.push([t.tenant, `${t.retention_days} d${t.incident_mode ? ' (incident)' : ''}`, t.cutoff, `${t.pruned.length}${t.dry_run ? ' (dry run)' : ''}`, String(t.resumed.length),
      String(new Set(t.held.map((h) => h.bundle)).size), t.check.ok ? `ok (${t.check.bundles_checked} bundles verified, ${t.check.bundles_pruned} pruned)` : `FAILED ${t.check.cause}: ${t.check.detail}`]);
  }
  return table(rows);
}
