// The artifact / symbol-bundle part of the intake -> ClickHouse sink: turns intake_artifacts and
// intake_symbols records into rows of artifacts, symbol_bundles and provenance_evidence. Called by
// the timeline processor's intake hook with the records of one batch; resolves once the rows are
// durable (the hook commits offsets after that). A record that is not a valid intake record (or
// whose provenance no longer verifies) is returned as dead, with its reason, and writes nothing.
import { dateTime64, type BatchWriter, type Row } from '../../lib/store/index.ts';
import { artifactRowsFromRecord, BadIntakeRecord, symbolRowsFromRecord } from './artifact-records.ts';
import type { IntakeEnvelopeVerifier } from './artifacts.ts';

export const ARTIFACT_TABLES = { artifacts: 'artifacts', symbolBundles: 'symbol_bundles', provenanceEvidence: 'provenance_evidence' } as const;

export interface IntakeMessage { key: string | null; value: Buffer }
export interface DeadIntake { message: IntakeMessage; reason: string }

/** Rows for one batch (pure): artifacts from `artifactMessages`, bundles from `symbolMessages`. */
export function artifactIntakeRows(artifactMessages: IntakeMessage[], symbolMessages: IntakeMessage[], verify?: IntakeEnvelopeVerifier):
  { artifacts: Row[]; bundles: Row[]; evidence: Row[]; dead: DeadIntake[] } {
  const out = { artifacts: [] as Row[], bundles: [] as Row[], evidence: [] as Row[], dead: [] as DeadIntake[] };
  for (const m of artifactMessages) {
    try {
      const r = artifactRowsFromRecord(m.value, m.key, verify);
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
      out.bundles.push({ ...r.bundle, registered_at: dateTime64(r.bundle.registered_at as string) });
      out.evidence.push({ ...r.evidence, recorded_at: dateTime64(r.evidence.recorded_at as string) });
    } catch (err) {
      if (!(err instanceof BadIntakeRecord)) throw err;
      out.dead.push({ message: m, reason: err.message });
    }
  }
  return out;
}

/** Write one batch's rows; resolves when all three tables hold them. Returns the dead records. */
export async function writeArtifactIntake(writer: BatchWriter, artifactMessages: IntakeMessage[], symbolMessages: IntakeMessage[],
  verify?: IntakeEnvelopeVerifier): Promise<DeadIntake[]> {
  const rows = artifactIntakeRows(artifactMessages, symbolMessages, verify);
  await Promise.all([
    writer.write(ARTIFACT_TABLES.artifacts, rows.artifacts),
    writer.write(ARTIFACT_TABLES.symbolBundles, rows.bundles),
    writer.write(ARTIFACT_TABLES.provenanceEvidence, rows.evidence),
  ]);
  return rows.dead;
}
