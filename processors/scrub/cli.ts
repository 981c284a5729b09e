// `stella scrub`: OTLP JSON on stdin -> scrubbed OTLP JSON on stdout, to try rules offline.
// Accepts one Export*ServiceRequest document, or JSON Lines of them (the collector file exporter's
// format), converted with the receiver's OTLP/JSON codec (lib/otlp/json.ts) to protobuf and
// scrubbed by the same wire-level scrubber as the pipeline (wire.ts): one implementation.
import { messageToOtlpJson, otlpJsonToMessage } from '../../lib/otlp/json.ts';
import { encode, signals, type SignalName } from '../../lib/otlp/proto.ts';
import { parseScrubConfig, policyFor, type ScrubConfig } from './config.ts';
import { scrubRequest, type ScrubSummary } from './wire.ts';

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

function signalOf(doc: Record<string, unknown>): SignalName {
  if ('resourceSpans' in doc) return 'traces';
  if ('resourceLogs' in doc) return 'logs';
  if ('resourceMetrics' in doc) return 'metrics';
  throw new Error('input is not an OTLP export request: expected resourceSpans, resourceLogs or resourceMetrics');
}

function scrubDocument(doc: unknown, o: ScrubJsonOptions, config: ScrubConfig): unknown {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('each input document must be a JSON object');
  const signal = signalOf(doc as Record<string, unknown>);
  // The receiver's OTLP/JSON codec (hex ids, int enums, 64-bit strings) in both directions.
  const type = signals[signal].request;
  const bytes = encode(signal, otlpJsonToMessage(signal, doc));
  const { value, summary } = scrubRequest(signal, bytes, policyFor(config, o.tenant ?? 'default'), o.now ?? new Date());
  o.onSummary?.(summary, signal);
  return messageToOtlpJson(signal, type, type.decode(value));
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
