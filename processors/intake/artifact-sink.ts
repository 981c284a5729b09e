// The artifact / symbol-bundle part of the intake -> ClickHouse sink: turns intake_artifacts and
// intake_symbols records into rows of artifacts, symbol_bundles and provenance_evidence. The
// timeline processor's intake hook calls it with the records of one batch and commits the batch's
// offsets once it resolved (rows durable). It trusts nothing the API did: each artifact's
// provenance is verified again against the tenant's trust keys, and each symbol bundle's bytes are
// read back from the CAS (digest, and the key: ELF build-id note, PDB GUID+age, Mach-O LC_UUID). A record that fails is returned
// as dead with its reason and writes nothing.
import type { BatchWriter, Row } from '../../lib/store/index.ts';
import { dateTime64 } from '../../lib/store/tables.ts';
import { artifactRowsFromRecord, BadIntakeRecord, symbolRowsFromRecord } from './artifact-records.ts';
import { bundleKeysFromBytes, type ElfBuildIdReader, type IntakeEnvelopeVerifier } from './artifacts.ts';

export const ARTIFACT_TABLES = { artifacts: 'artifacts', symbolBundles: 'symbol_bundles', provenanceEvidence: 'provenance_evidence' } as const;

export interface IntakeMessage { key: string | null; value: Buffer }
export interface DeadIntake<M extends IntakeMessage = IntakeMessage> { message: M; reason: string }

export interface ArtifactSinkChecks {
  /** The tenants' intake trust (lib/intake/trust.ts): artifact provenance is verified again. */
  verify?: IntakeEnvelopeVerifier;
  /** Reads a bundle back from the CAS (BlobStore.get, which checks the digest). */
  casGet?: (tenant: string, digest: `sha256:${string}`) => Promise<Buffer | undefined>;
  readElfBuildId?: ElfBuildIdReader;
}

/** Rows for one batch: artifacts from `artifactMessages`, bundles from `symbolMessages`. */
export async function artifactIntakeRows<M extends IntakeMessage>(artifactMessages: M[], symbolMessages: M[], checks: ArtifactSinkChecks = {}):
  Promise<{ artifacts: Row[]; bundles: Row[]; evidence: Row[]; dead: DeadIntake<M>[] }> {
  const out = { artifacts: [] as Row[], bundles: [] as Row[], evidence: [] as Row[], dead: [] as DeadIntake<M>[] };
  for (const m of artifactMessages) {
    try {
      const r = artifactRowsFromRecord(m.value, m.key, checks.verify);
      out.artifacts.push({ ...r.artifact, registered_at: dateTime64(r.artifact.registered_at as string) });
      out.evidence.push({ ...r.evidence, recorded_at: dateTime64(r.evidence.recorded_at as string) });
    } catch (err) {
      if (!(err instanceof BadIntakeRecord)) throw err;
      out.dead.push({ message: m, reason: err.message });
    }
  }
  for (const m of symbolMessages) {
    try {
      const r = symbolRowsFromRecord(m.value, m.key);
      if (checks.casGet) await checkBundleBytes(r.bundle, checks);
      out.bundles.push({ ...r.bundle, registered_at: dateTime64(r.bundle.registered_at as string) });
      out.evidence.push({ ...r.evidence, recorded_at: dateTime64(r.evidence.recorded_at as string) });
    } catch (err) {
      if (!(err instanceof BadIntakeRecord)) throw err;
      out.dead.push({ message: m, reason: err.message });
    }
  }
  return out;
}

async function checkBundleBytes(b: Record<string, unknown>, checks: ArtifactSinkChecks): Promise<void> {
  let bytes: Buffer | undefined;
  try {
    bytes = await checks.casGet!(b.tenant_id as string, `sha256:${b.bundle_sha256 as string}`);
  } catch (err) {
    // A blob whose bytes do not match its digest (CasIntegrityError) is not this bundle.
    if ((err as Error).name === 'CasIntegrityError') throw new BadIntakeRecord('symbol bundle bytes in the CAS do not match their digest');
    throw err;
  }
  if (!bytes) throw new BadIntakeRecord('symbol bundle bytes are not in the CAS');
  if (bytes.length !== Number(b.size)) throw new BadIntakeRecord('symbol bundle size differs from the CAS blob');
  if (b.kind === 'elf' && checks.readElfBuildId) {
    const r = checks.readElfBuildId(bytes);
    if (!r.ok || r.buildId === undefined || r.buildId.toLowerCase() !== b.symbol_key) throw new BadIntakeRecord('the ELF build-id in the CAS bytes is not the bundle\'s key');
    if (b.key_verified !== 1) throw new BadIntakeRecord('an ELF bundle\'s key must be verified');
  }
  if (b.kind === 'pdb' || b.kind === 'dsym') {
    const r = bundleKeysFromBytes(b.kind, bytes);
    if (!r.ok || !r.keys.includes(b.symbol_key as string)) throw new BadIntakeRecord(`the ${b.kind === 'pdb' ? 'PDB GUID+age' : 'Mach-O LC_UUID'} in the CAS bytes is not the bundle's key`);
    if (b.key_verified !== 1) throw new BadIntakeRecord(`a ${b.kind} bundle's key must be verified`);
  }
}

/** Write one batch's rows; resolves when all three tables hold them. Returns the dead records. */
export async function writeArtifactIntake<M extends IntakeMessage>(writer: BatchWriter, artifactMessages: M[], symbolMessages: M[],
  checks: ArtifactSinkChecks | IntakeEnvelopeVerifier = {}): Promise<DeadIntake<M>[]> {
  const rows = await artifactIntakeRows(artifactMessages, symbolMessages, typeof checks === 'function' ? { verify: checks } : checks);
  await Promise.all([
    writer.write(ARTIFACT_TABLES.artifacts, rows.artifacts),
    writer.write(ARTIFACT_TABLES.symbolBundles, rows.bundles),
    writer.write(ARTIFACT_TABLES.provenanceEvidence, rows.evidence),
  ]);
  return rows.dead;
}
