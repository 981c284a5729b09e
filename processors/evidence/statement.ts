// The in-toto Statement v1 that each seal signs (in a DSSE envelope): its subject is the signed
// checkpoint file, its predicate says what the segment added and which Kafka records it covers.
import { sha256Hex } from './hash.ts';
import { canonicalBytes } from './jcs.ts';

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const SEGMENT_PREDICATE_TYPE = 'https://stella-telemetry.example/evidence-segment/v1';

/** Kafka records covered by a segment, per topic-partition (offsets inclusive, decimal strings). */
export interface KafkaRange { topic: string; partition: number; fromOffset: string; toOffset: string }
/** Highest sealed offset per topic-partition over the whole log: what a restart skips up to. */
export interface KafkaHighWater { topic: string; partition: number; offset: string }

export interface SegmentPredicate {
  tenant: string;
  origin: string;
  previous: { size: number; root: string };
  new: { size: number; root: string };
  consistency_proof: string[];
  kafka: KafkaRange[];
  kafka_high_water: KafkaHighWater[];
  signing_key: { name: string; key_id: string; verifier_key: string };
  sealed_at: string;
}

export interface SegmentStatement {
  _type: typeof STATEMENT_TYPE;
  subject: { name: string; digest: { sha256: string } }[];
  predicateType: typeof SEGMENT_PREDICATE_TYPE;
  predicate: SegmentPredicate;
}

export const checkpointSubjectName = (origin: string, size: number): string => `${origin}/checkpoints/${size}`;

export function segmentStatement(checkpointNote: Uint8Array, predicate: SegmentPredicate): SegmentStatement {
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: checkpointSubjectName(predicate.origin, predicate.new.size), digest: { sha256: sha256Hex(checkpointNote) } }],
    predicateType: SEGMENT_PREDICATE_TYPE,
    predicate,
  };
}

export const statementBytes = (s: SegmentStatement): Buffer => canonicalBytes(s);

/** Structural check of a parsed statement; returns a reason string when it is not one of ours. */
export function checkStatementShape(s: unknown): string | undefined {
  const st = s as Partial<SegmentStatement> | null;
  if (!st || typeof st !== 'object') return 'statement is not an object';
  if (st._type !== STATEMENT_TYPE) return `statement _type must be ${STATEMENT_TYPE}`;
  if (st.predicateType !== SEGMENT_PREDICATE_TYPE) return `predicateType must be ${SEGMENT_PREDICATE_TYPE}`;
  if (!Array.isArray(st.subject) || st.subject.length !== 1 || typeof st.subject[0]?.digest?.sha256 !== 'string') return 'statement must have one subject with a sha256 digest';
  const p = st.predicate;
  if (!p || typeof p.tenant !== 'string' || typeof p.new?.size !== 'number' || typeof p.new.root !== 'string'
    || typeof p.previous?.size !== 'number' || typeof p.previous.root !== 'string' || !Array.isArray(p.consistency_proof)
    || typeof p.sealed_at !== 'string' || !Array.isArray(p.kafka)) return 'statement predicate is incomplete';
  return undefined;
}

