// Tenant-scoped reads of the artifact and symbol-bundle tables (clickhouse/0203): the query API of
// the trace -> symbol -> artifact -> provenance join (issue 14) and of the GET routes. Every
// statement goes through TenantStore, which refuses SQL without the tenant predicate.
import { forTenant, type Store } from '../../lib/store/index.ts';
import { dsymKey, elfKey, type SymbolKind } from './artifacts.ts';

/** The evidence reference of a registration: the sealed timeline event (inclusion proof by event_id). */
export interface EvidenceRef { event_id: string; event_kind: string }

export interface ArtifactRow {
  tenant_id: string; sha256: string; envelope_sha256: string; subject_name: string; builder_commit: string; compiler: string;
  flags: string[]; oci_digest: string; attested_fields: string[]; predicate_type: string; build_type: string; builder_id: string;
  build_finished_on: string; signer_keyid: string;
  /** The DSSE envelope (RFC 8785 JSON) exactly as verified at intake. */
  dsse_envelope: string;
  envelope_cas_uri: string; event_id: string; registered_at_unix_nano: string;
  evidence: EvidenceRef;
}

export interface SymbolBundleRow {
  tenant_id: string; symbol_key: string; kind: SymbolKind; bundle_sha256: string; artifact_sha256: string; build_id: string;
  pdb_age: number; size: string; cas_uri: string; key_verified: boolean; event_id: string; registered_at_unix_nano: string;
  evidence: EvidenceRef;
}

const FINAL_SETTINGS = 'SETTINGS do_not_merge_across_partitions_select_final = 1';
const LIMIT = 100;

const ARTIFACT_COLUMNS = `tenant_id, sha256, envelope_sha256, subject_name, builder_commit, compiler, flags, oci_digest, attested_fields,
  predicate_type, build_type, builder_id, build_finished_on, signer_keyid, dsse_envelope, envelope_cas_uri, event_id,
  toString(toUnixTimestamp64Nano(registered_at)) AS registered_at_unix_nano`;
const BUNDLE_COLUMNS = `tenant_id, symbol_key, kind, bundle_sha256, artifact_sha256, build_id, pdb_age, toString(size) AS size, cas_uri,
  key_verified, event_id, toString(toUnixTimestamp64Nano(registered_at)) AS registered_at_unix_nano`;

type RawBundle = Omit<SymbolBundleRow, 'key_verified' | 'evidence' | 'pdb_age'> & { key_verified: number | string; pdb_age: number | string };

/**
 * The attestations of one artifact of `tenant` (oldest first; a re-signed provenance is a second
 * row). Empty when the tenant has no such artifact: "known" and "attested" are the same thing here.
 */
export async function lookupArtifact(store: Store, tenant: string, sha256: string): Promise<ArtifactRow[]> {
  const h = sha256.toLowerCase().replace(/^sha256:/, '');
  if (!/^[0-9a-f]{64}$/.test(h)) return [];
  const rows = await forTenant(store, tenant).scopedRows<Omit<ArtifactRow, 'evidence'>>(`SELECT ${ARTIFACT_COLUMNS} FROM artifacts FINAL
    WHERE tenant_id = {tenant:String} AND sha256 = {sha:String} ORDER BY registered_at, envelope_sha256 LIMIT ${LIMIT} ${FINAL_SETTINGS}`, { sha: h });
  return rows.map((r) => ({ ...r, evidence: { event_id: r.event_id, event_kind: 'artifact.registered' } }));
}

/**
 * The symbol bundles of `tenant` for a frame's key: an ELF build-id (hex, any case), a PDB key
 * (GUID then age, as pdbKey() gives it) or a dSYM UUID (dashes allowed). `kind` narrows it.
 */
export async function lookupSymbolBundle(store: Store, tenant: string, buildId: string, kind?: SymbolKind): Promise<SymbolBundleRow[]> {
  const keys = new Set<string>();
  if (!kind || kind === 'elf') { const k = elfKey(buildId); if (k) keys.add(k); }
  if (!kind || kind === 'dsym') { const k = dsymKey(buildId); if (k) keys.add(k); }
  if (!kind || kind === 'pdb') {
    const g = buildId.replace(/-/g, '').toUpperCase();
    if (/^[0-9A-F]{33,40}$/.test(g)) keys.add(g);
  }
  if (keys.size === 0) return [];
  const where = ['tenant_id = {tenant:String}', 'symbol_key IN {keys:Array(String)}'];
  const params: Record<string, unknown> = { keys: [...keys] };
  if (kind) { where.push('kind = {kind:String}'); params.kind = kind; }
  const rows = await forTenant(store, tenant).scopedRows<RawBundle>(`SELECT ${BUNDLE_COLUMNS} FROM symbol_bundles FINAL
    WHERE ${where.join(' AND ')} ORDER BY registered_at, bundle_sha256 LIMIT ${LIMIT} ${FINAL_SETTINGS}`, params);
  return rows.map((r) => ({ ...r, pdb_age: Number(r.pdb_age), key_verified: Number(r.key_verified) === 1,
    evidence: { event_id: r.event_id, event_kind: 'symbols.registered' } }));
}

/**
 * The ages of `tenant`'s PDB bundles for each of `guids` (32 hex): what a frame whose GUID+age key
 * found nothing is told (PDB_AGE_MISMATCH). The symbol key starts with the GUID, so this is a
 * primary-key prefix range.
 */
export async function pdbAgesByGuid(store: Store, tenant: string, guids: readonly string[]): Promise<Map<string, number[]>> {
  const gs = [...new Set(guids.map((g) => g.replace(/-/g, '').toUpperCase()))].filter((g) => /^[0-9A-F]{32}$/.test(g));
  const out = new Map<string, number[]>();
  if (gs.length === 0) return out;
  const rows = await forTenant(store, tenant).scopedRows<{ g: string; pdb_age: number | string }>(`SELECT DISTINCT substring(symbol_key, 1, 32) AS g, pdb_age
    FROM symbol_bundles WHERE tenant_id = {tenant:String} AND kind = 'pdb' AND (${gs.map((g) => `startsWith(symbol_key, '${g}')`).join(' OR ')})
    ORDER BY g, pdb_age LIMIT ${LIMIT * gs.length}`);
  for (const r of rows) { const l = out.get(r.g) ?? []; l.push(Number(r.pdb_age)); out.set(r.g, l); }
  return out;
}

/** An attestation as the join reads it: every column but the DSSE envelope itself (the audit bundle reads that with lookupArtifact). */
export type JoinArtifactRow = Omit<ArtifactRow, 'dsse_envelope'>;

const JOIN_ARTIFACT_COLUMNS = ARTIFACT_COLUMNS.replace('dsse_envelope, ', '');

/**
 * The join's lookups: `tenant`'s symbol bundles for all of a trace's normalized keys
 * (frameSymbolKey) in one statement, then the attestations of all their artifacts in one more;
 * two round trips whatever the number of binaries in the trace (it was one per key, then one per
 * artifact, and embedded chdb runs one session, so round trips add up). Same rows and order as
 * lookupSymbolBundle per key and lookupArtifact per artifact (100 per key, 100 per artifact,
 * oldest first). One statement for both was measured slower in chdb (bench: UNION ALL ~1.6x,
 * LEFT JOIN ~2.5-3.5x the two statements), so it stays two. Both carry the tenant predicate.
 */
export async function lookupBundlesWithArtifacts(store: Store, tenant: string, keys: readonly { key: string; kind: SymbolKind }[]):
Promise<{ bundles: Map<string, SymbolBundleRow[]>; artifacts: Map<string, JoinArtifactRow[]> }> {
  const bundles = new Map<string, SymbolBundleRow[]>(keys.map(({ key }) => [key, []]));
  const artifacts = new Map<string, JoinArtifactRow[]>();
  if (keys.length === 0) return { bundles, artifacts };
  const wanted = new Set(keys.map(({ key, kind }) => `${kind}:${key}`));
  const scoped = forTenant(store, tenant);
  const rows = await scoped.scopedRows<RawBundle>(`SELECT ${BUNDLE_COLUMNS} FROM symbol_bundles FINAL
    WHERE tenant_id = {tenant:String} AND symbol_key IN {keys:Array(String)} AND kind IN {kinds:Array(String)}
    ORDER BY registered_at, bundle_sha256 LIMIT ${LIMIT} BY symbol_key, kind ${FINAL_SETTINGS}`,
  { keys: [...new Set(keys.map((k) => k.key))], kinds: [...new Set(keys.map((k) => k.kind))] });
  for (const r of rows) {
    if (!wanted.has(`${r.kind}:${r.symbol_key}`)) continue; // symbol_key IN x kind IN: keep only the pairs asked for
    bundles.get(r.symbol_key)!.push({ ...r, pdb_age: Number(r.pdb_age), key_verified: Number(r.key_verified) === 1,
      evidence: { event_id: r.event_id, event_kind: 'symbols.registered' } });
  }
  const shas = [...new Set([...bundles.values()].flat().map((b) => b.artifact_sha256))].filter((h) => /^[0-9a-f]{64}$/.test(h));
  if (shas.length === 0) return { bundles, artifacts };
  const arts = await scoped.scopedRows<Omit<JoinArtifactRow, 'evidence'>>(`SELECT ${JOIN_ARTIFACT_COLUMNS} FROM artifacts FINAL
    WHERE tenant_id = {tenant:String} AND sha256 IN {shas:Array(String)} ORDER BY registered_at, envelope_sha256 LIMIT ${LIMIT} BY sha256 ${FINAL_SETTINGS}`, { shas });
  for (const a of arts) {
    const list = artifacts.get(a.sha256) ?? [];
    list.push({ ...a, evidence: { event_id: a.event_id, event_kind: 'artifact.registered' } });
    artifacts.set(a.sha256, list);
  }
  return { bundles, artifacts };
}

/** The symbol bundles registered for one artifact. */
export async function bundlesOfArtifact(store: Store, tenant: string, artifactSha256: string): Promise<SymbolBundleRow[]> {
  if (!/^[0-9a-f]{64}$/.test(artifactSha256)) return [];
  const rows = await forTenant(store, tenant).scopedRows<RawBundle>(`SELECT ${BUNDLE_COLUMNS} FROM symbol_bundles FINAL
    WHERE tenant_id = {tenant:String} AND artifact_sha256 = {a:String} ORDER BY registered_at, bundle_sha256 LIMIT ${LIMIT} ${FINAL_SETTINGS}`, { a: artifactSha256 });
  return rows.map((r) => ({ ...r, pdb_age: Number(r.pdb_age), key_verified: Number(r.key_verified) === 1,
    evidence: { event_id: r.event_id, event_kind: 'symbols.registered' } }));
}

/** The join's entry points bound to one store: `lookupSymbolBundle(tenant, buildId)`, `lookupArtifact(tenant, sha256)`. */
export function intakeLookup(store: Store) {
  return {
    lookupArtifact: (tenant: string, sha256: string) => lookupArtifact(store, tenant, sha256),
    lookupSymbolBundle: (tenant: string, buildId: string, kind?: SymbolKind) => lookupSymbolBundle(store, tenant, buildId, kind),
    bundlesOfArtifact: (tenant: string, artifactSha256: string) => bundlesOfArtifact(store, tenant, artifactSha256),
  };
}

