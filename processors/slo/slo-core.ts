// One object the Kafka runner drives: feed decoded OTLP per tenant, call tick() once a minute,
// write what it returns (slo_events records, timeline rows, golden-signal rows, incident events),
// and store checkpoint() with the consumed offsets. Still pure apart from the fire-and-forget
// alert dispatcher it is given.
import type { TimelineEventRow } from '../../lib/store/index.ts';
import type { ExportMetricsServiceRequest, ExportTraceServiceRequest } from '../../lib/otlp/proto.ts';
import type { AlertDispatcher } from './alert-dispatcher.ts';
import type { SloConfig } from './config.ts';
import { SloEvaluator, type EvaluationResult } from './evaluator.ts';
import { GoldenSignals, type GoldenSignalRow } from './golden-signals.ts';
import { IncidentModes, type IncidentModeEvent, type IncidentModeOptions } from './incident-mode.ts';
import { CumulativeToDelta, samplesFromMetrics, samplesFromTraces } from './samples.ts';
import { sloEventRecord, sloTimelineEvent } from './slo-events.ts';
import { restoreEvaluator, snapshotEvaluator, type RestoreReport } from './snapshot.ts';

export interface SloCoreOptions {
  dispatcher?: AlertDispatcher;
  incident?: IncidentModeOptions;
  /** Golden-signal minutes are emitted once this far behind the tick time. Default 2 min. */
  goldenLatenessMs?: number;
}

export interface SloTick {
  evaluation: EvaluationResult;
  /** For the `slo_events` topic. */
  sloEvents: ReturnType<typeof sloEventRecord>[];
  /** `slo.breach.started|resolved` rows for the tenant timeline. */
  timelineEvents: TimelineEventRow[];
  goldenSignals: GoldenSignalRow[];
  incidentEvents: IncidentModeEvent[];
}

const MAGIC = 'SLOC';

export class SloCore {
  readonly evaluator: SloEvaluator;
  readonly golden = new GoldenSignals();
  readonly incidents: IncidentModes;
  readonly cumulative = new CumulativeToDelta();
  private readonly goldenLatenessMs: number;

  constructor(config: SloConfig, private readonly opts: SloCoreOptions = {}) {
    this.evaluator = new SloEvaluator(config);
    this.incidents = new IncidentModes(opts.incident);
    this.goldenLatenessMs = opts.goldenLatenessMs ?? 2 * 60_000;
  }

  /** `receiverKeepProbability`: with what probability the receiver kept the record's non-error
   * spans (its `sampling-th` header, see samplesFromTraces); 1 when it did not sample. */
  ingestTraces(tenant: string, req: ExportTraceServiceRequest, receiverKeepProbability = 1): void {
    for (const s of samplesFromTraces(tenant, req, receiverKeepProbability)) {
      this.evaluator.ingestOne(s);
      this.golden.add(s);
    }
  }

  ingestMetrics(tenant: string, req: ExportMetricsServiceRequest): void {
    this.evaluator.ingest(samplesFromMetrics(tenant, req, this.cumulative));
  }

  /** Evaluate at `nowMs` (event-time clock), enqueue alerts, and return what the runner must write. */
  tick(nowMs: number): SloTick {
    const evaluation = this.evaluator.evaluate(nowMs);
    this.opts.dispatcher?.handle(evaluation);
    return {
      evaluation,
      sloEvents: evaluation.transitions.map(sloEventRecord),
      timelineEvents: evaluation.transitions.map((t) => sloTimelineEvent(t)),
      goldenSignals: this.golden.flush(nowMs - this.goldenLatenessMs),
      incidentEvents: this.incidents.fromAlerts(evaluation.firing, nowMs),
    };
  }

  /** Evaluator state, open golden-signal minutes, incident modes and the last cumulative point per
   * metric series, as one blob. */
  checkpoint(): Uint8Array {
    const parts = [snapshotEvaluator(this.evaluator), Buffer.from(this.golden.snapshot()), Buffer.from(this.incidents.snapshot()),
      Buffer.from(this.cumulative.snapshot())];
    const out = Buffer.alloc(4 + parts.reduce((n, p) => n + 4 + p.length, 0));
    out.write(MAGIC, 0, 'latin1');
    let off = 4;
    for (const p of parts) {
      out.writeUInt32LE(p.length, off);
      out.set(p, off + 4);
      off += 4 + p.length;
    }
    return out;
  }

  /** Restores into a fresh core (call before ingesting anything). */
  restore(bytes: Uint8Array): RestoreReport {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (buf.toString('latin1', 0, 4) !== MAGIC) throw new Error('not an SLO core checkpoint (bad magic)');
    const parts: Buffer[] = [];
    let off = 4;
    // Checkpoints written before the cumulative-to-delta part have three parts; they still restore.
    for (let i = 0; i < 4; i++) {
      if (i === 3 && off === buf.length) break;
      if (off + 4 > buf.length) throw new Error('SLO core checkpoint is truncated');
      const len = buf.readUInt32LE(off);
      if (off + 4 + len > buf.length) throw new Error('SLO core checkpoint is truncated');
      parts.push(buf.subarray(off + 4, off + 4 + len));
      off += 4 + len;
    }
    const report = restoreEvaluator(this.evaluator, parts[0]!);
    this.golden.restore(parts[1]!.toString('utf8'));
    this.incidents.restore(parts[2]!.toString('utf8'));
    if (parts[3]) this.cumulative.restore(parts[3].toString('utf8'));
    return report;
  }
}
