// `stella scrub`: OTLP JSON on stdin -> scrubbed OTLP JSON on stdout, to try rules offline.
// Accepts one Export*ServiceRequest document, or JSON Lines of them (the collector file exporter's
// format). OTLP JSON differs from protobufjs' JSON mapping in one place that matters here: trace and
// span ids are hex, not base64, so ids are converted around fromObject/toObject.
import type protobuf from 'protobufjs';
import { signals, type SignalName } from '../../lib/otlp/proto.ts';
import { parseScrubConfig, type ScrubConfig } from './config.ts';
import { type ScrubSummary } from './otlp.ts';
import { scrubDecoded } from './record.ts';

export interface ScrubJsonOptions {
  /** Parsed config (default: the default rules, placeholder style). */
  config?: ScrubConfig;
  /** Tenant whose policy applies (default `default`, i.e. the config's defaults). */
  tenant?: string;
  now?: Date;
  pretty?: boolean;
  /** Receives each document's summary (e.g. to print counts on stderr). */
  onSummary?: (s: ScrubSummary, signal: SignalName) => void;
}

const ID_FIELDS = new Set(['traceId', 'spanId', 'parentSpanId']);

/** Convert id fields in place between OTLP JSON hex and protobufjs base64. */
function convertIds(node: unknown, to: 'base64' | 'hex'): void {
  if (Array.isArray(node)) { for (const n of node) convertIds(n, to); return; }
  if (typeof node !== 'object' || node === null) return;
  const o = node as Record<string, unknown>;
  for (const [k, v] of Object.entries(o)) {
    if (ID_FIELDS.has(k) && typeof v === 'string') {
      if (to === 'base64') {
        if (!/^([0-9a-fA-F]{2})*$/.test(v)) throw new Error(`${k} "${v.slice(0, 40)}" is not hex`);
        o[k] = Buffer.from(v, 'hex').toString('base64');
      } else {
        o[k] = Buffer.from(v, 'base64').toString('hex');
      }
    } else if (k !== 'attributes' && k !== 'body') convertIds(v, to); // attribute trees hold no ids
  }
}

function signalOf(doc: Record<string, unknown>): SignalName {
  if ('resourceSpans' in doc) return 'traces';
  if ('resourceLogs' in doc) return 'logs';
  if ('resourceMetrics' in doc) return 'metrics';
  throw new Error('input is not an OTLP export request: expected resourceSpans, resourceLogs or resourceMetrics');
}

function scrubDocument(doc: unknown, o: ScrubJsonOptions, config: ScrubConfig): unknown {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('each input document must be a JSON object');
  const signal = signalOf(doc as Record<string, unknown>);
  convertIds(doc, 'base64');
  const type: protobuf.Type = signals[signal].request;
  const msg = type.fromObject(doc as Record<string, unknown>);
  const summary = scrubDecoded(signal, msg, config, o.tenant ?? 'default', o.now ?? new Date());
  o.onSummary?.(summary, signal);
  const out = type.toObject(msg, { longs: String, enums: Number, bytes: String });
  convertIds(out, 'hex');
  return out;
}

/** Scrub OTLP JSON text; returns the scrubbed JSON text (same document layout: one or JSON Lines). */
export function scrubJsonCommand(stdinText: string, options: ScrubJsonOptions = {}): string {
  const config = options.config ?? parseScrubConfig(undefined);
  const text = stdinText.trim();
  if (text.length === 0) throw new Error('stella scrub: no input on stdin (expected OTLP JSON)');
  const fmt = (v: unknown) => JSON.stringify(v, null, options.pretty ? 2 : undefined);
  let whole: unknown;
  try { whole = JSON.parse(text); } catch { whole = undefined; }
  if (whole !== undefined) return fmt(scrubDocument(whole, options, config)) + '\n';
  // JSON Lines: one export request per line.
  return text.split('\n').filter((l) => l.trim()).map((line, i) => {
    let doc: unknown;
    try { doc = JSON.parse(line); } catch (e) { throw new Error(`stella scrub: line ${i + 1} is not JSON: ${(e as Error).message}`); }
    return JSON.stringify(scrubDocument(doc, options, config));
  }).join('\n') + '\n';
}
