// One clean Kafka record -> everything the timeline processor writes (pure; no I/O).
import { decodeLogs, decodeMetrics, decodeTraces } from '../../lib/otlp/proto.ts';
import { validateTenantId } from '../../lib/tenancy.ts';
import { TABLES, type Row, type TimelineEventRow } from '../../lib/store/index.ts';
import { eventsFromLogs, eventsFromSpans, type SourceRef } from './events.ts';
import { FRAMES_TABLE, frameRowsFromLogs, frameRowsFromSpans } from './frames.ts';
import { logRows, metricRows, spanRows } from './otel-rows.ts';

export type SignalKind = 'traces' | 'logs' | 'metrics';

export interface CleanRecord extends SourceRef { key: string | null; value: Buffer; headers: Record<string, string> }

export interface Transformed {
  /** table -> rows */
  rows: Map<string, Row[]>;
  events: TimelineEventRow[];
}

export class PoisonRecord extends Error {}

/** The record's tenant: the `tenant` header (set by the receiver), else the key. */
export function recordTenant(rec: CleanRecord): string {
  const tenant = rec.headers.tenant || rec.key || '';
  if (validateTenantId(tenant)) throw new PoisonRecord('record has no valid tenant header or key');
  return tenant;
}

export function transformRecord(signal: SignalKind, rec: CleanRecord): Transformed {
  const tenant = recordTenant(rec);
  const rows = new Map<string, Row[]>();
  let events: TimelineEventRow[] = [];
  try {
    if (signal === 'traces') {
      const req = decodeTraces(rec.value);
      rows.set(TABLES.traces, spanRows(req, tenant));
      const frames = frameRowsFromSpans(req, tenant);
      if (frames.length) rows.set(FRAMES_TABLE, frames);
      events = eventsFromSpans(req, tenant, rec);
    } else if (signal === 'logs') {
      const req = decodeLogs(rec.value);
      rows.set(TABLES.logs, logRows(req, tenant));
      const frames = frameRowsFromLogs(req, tenant);
      if (frames.length) rows.set(FRAMES_TABLE, frames);
      events = eventsFromLogs(req, tenant, rec);
    } else {
      for (const [t, r] of metricRows(decodeMetrics(rec.value), tenant)) rows.set(t, r);
    }
  } catch (err) {
    if (err instanceof PoisonRecord) throw err;
    throw new PoisonRecord(`undecodable ${signal} record: ${(err as Error).message}`);
  }
  return { rows, events };
}

/** Merge several records' outputs (one Kafka batch) into one write set. */
export function mergeTransformed(parts: Transformed[]): Transformed {
  const rows = new Map<string, Row[]>();
  const events: TimelineEventRow[] = [];
  for (const p of parts) {
    for (const [t, r] of p.rows) { let l = rows.get(t); if (!l) rows.set(t, (l = [])); l.push(...r); }
    events.push(...p.events);
  }
  return { rows, events };
}
