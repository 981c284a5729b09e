// The replay-harness contract of a trace (pure; no I/O): what an auditor needs to re-run the
// failing code, filled from the trace's resource attributes and the provenance join. A field that
// cannot be filled from either is null and named in `missing` with the attribute that would fill
// it: never guessed. docs/provenance.md "Replay manifests".
import { createHash } from 'node:crypto';
import { canonicalBytes } from '../evidence/jcs.ts';
import type { FrameLink, ProvenanceReport } from './join.ts';

export const REPLAY_MANIFEST_VERSION = 'stella.replay-manifest/v1';

/** Resource attributes read for each field (first present wins). */
export const REPLAY_ATTRS = {
  harness_version: ['stella.replay.harness_version'],
  os: ['os.type', 'os.name'],
  kernel_version: ['stella.replay.kernel_version', 'os.version'],
  libc_version: ['stella.replay.libc_version'],
  sandbox_image_sha256: ['stella.replay.sandbox_image_sha256', 'container.image.id'],
  seed: ['stella.replay.seed'],
  run_instructions: ['stella.replay.run_instructions'],
} as const;

export interface ReplayManifest {
  manifest_version: typeof REPLAY_MANIFEST_VERSION;
  trace_id: string;
  harness_version: string | null;
  os: string | null;
  kernel_version: string | null;
  libc_version: string | null;
  compiler: string | null;
  compiler_flags: string[] | null;
  build_id: string | null;
  symbol_bundle_sha256: string | null;
  artifact_sha256: string | null;
  dsse_envelope: { sha256: string; cas_uri: string; signer_keyid: string } | null;
  /** The tenant log's entry for the artifact's provenance: tile reference and inclusion proof. */
  rekor_tile_ref: { log: 'stella-tenant-log'; index: string; segment: string; checkpoint: string; inclusion_proof: string } | null;
  sandbox_image_sha256: string | null;
  seed: string | null;
  run_instructions: string | null;
  verifier_version: string;
  missing: { field: string; reason: string }[];
}

const SHA256 = /^(?:sha256:)?([0-9a-f]{64})$/;

/** The frame whose build the replay is of: the innermost joined frame of the first exception, else the first joined one. */
function primaryFrame(report: ProvenanceReport): FrameLink | undefined {
  const joined = report.frames.filter((f) => f.status === 'joined');
  return joined.find((f) => f.frame_index === 0) ?? joined[0];
}

export function buildReplayManifest(report: ProvenanceReport, resource: Readonly<Record<string, string>>, verifierVersion: string): ReplayManifest {
  const missing: { field: string; reason: string }[] = [];
  const attr = (field: keyof typeof REPLAY_ATTRS): string | null => {
    for (const k of REPLAY_ATTRS[field]) { const v = resource[k]; if (v !== undefined && v !== '') return v; }
    missing.push({ field, reason: `no resource attribute ${REPLAY_ATTRS[field].join(' or ')} on the trace` });
    return null;
  };
  const harness_version = attr('harness_version');
  const os = attr('os');
  const kernel_version = attr('kernel_version');
  const libc_version = attr('libc_version');
  let sandbox = attr('sandbox_image_sha256');
  if (sandbox !== null) {
    const m = SHA256.exec(sandbox);
    if (!m) { missing.push({ field: 'sandbox_image_sha256', reason: 'the image id on the trace is not a sha256 digest' }); sandbox = null; } else sandbox = m[1]!;
  }
  const seed = attr('seed');
  const run_instructions = attr('run_instructions');
  const f = primaryFrame(report);
  const fromJoin = (field: string) => missing.push({ field, reason: f ? 'the joined artifact does not carry it' : 'no frame of the trace joins to an attested artifact' });
  const compiler = f?.artifact?.compiler || null;
  if (!compiler) fromJoin('compiler');
  const compiler_flags = f?.artifact && f.artifact.flags.length > 0 ? f.artifact.flags : null;
  if (!compiler_flags) fromJoin('compiler_flags');
  const build_id = f?.build_id || null;
  if (!build_id) fromJoin('build_id');
  const symbol_bundle_sha256 = f?.symbol_bundle?.sha256 ?? null;
  if (!symbol_bundle_sha256) fromJoin('symbol_bundle_sha256');
  const artifact_sha256 = f?.artifact?.sha256 ?? null;
  if (!artifact_sha256) fromJoin('artifact_sha256');
  const p = f?.provenance;
  const dsse_envelope = p ? { sha256: p.envelope_sha256, cas_uri: p.envelope_cas_uri, signer_keyid: p.signer_keyid } : null;
  if (!dsse_envelope) fromJoin('dsse_envelope');
  let rekor_tile_ref: ReplayManifest['rekor_tile_ref'] = null;
  if (p?.evidence.status === 'sealed') {
    rekor_tile_ref = { log: 'stella-tenant-log', index: p.evidence.index, segment: p.evidence.segment, checkpoint: p.evidence.checkpoint, inclusion_proof: p.evidence.inclusion_proof };
  } else {
    missing.push({ field: 'rekor_tile_ref', reason: p ? `the provenance's evidence entry is ${p.evidence.status}` : 'no joined provenance' });
  }
  return {
    manifest_version: REPLAY_MANIFEST_VERSION, trace_id: report.trace_id, harness_version, os, kernel_version, libc_version, compiler, compiler_flags,
    build_id, symbol_bundle_sha256, artifact_sha256, dsse_envelope, rekor_tile_ref, sandbox_image_sha256: sandbox, seed, run_instructions,
    verifier_version: verifierVersion, missing,
  };
}

/** Canonical bytes (RFC 8785) and their sha256: the manifest's identity in the replays table. */
export function manifestDigest(m: ReplayManifest): { bytes: Buffer; sha256: string } {
  const bytes = Buffer.from(canonicalBytes(m));
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}
