// Structured JSON logs (pino) with the project's fixed fields. Secrets never reach a log: known
// secret-bearing keys are redacted, callers log identifiers and codes, never payload values, and
// every string a log line carries passes the scrubber's default rules (processors/scrub) on its
// way out, so a secret that slipped into an error message is redacted in the line too.
//
// Multi-line errors: an `err` (Error) field, or an `error_message` spanning lines, keeps its first
// line in `error_message` and the rest (the stack) in `details.stack`, at most STACK_MAX_CHARS.
import { randomUUID } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { parseScrubConfig } from '../processors/scrub/config.ts';
import { Scrubber, Tally } from '../processors/scrub/engine.ts';

export const VERSION = '0.1.0';
export const INSTANCE_ID = process.env.STELLA_INSTANCE_ID ?? randomUUID().slice(0, 8);

export type { Logger };

const redactPaths = ['authorization', 'token', 'password', 'secret', 'headers.authorization', 'req.headers.authorization',
  '*.authorization', '*.token', '*.password', '*.secret', 'signingKey', '*.signingKey'];

/** Longest `details.stack` kept (characters); the rest is cut with a note of how much. */
export const STACK_MAX_CHARS = 4096;

// ---- scrubbing the pipeline's own log fields ---------------------------------------------------

let scrubber: Scrubber | undefined;
const tally = new Tally();
/**
 * Log fields repeat (service names, routes, messages): strings found clean are remembered (only
 * those; a secret is never kept), so a repeated one costs a Map lookup instead of a scan.
 */
const clean = new Set<string>();
const CLEAN_MAX = 4096;
const CLEAN_MAX_CHARS = 256;

/** Fields whose values are ids or digests of fixed shape: not scanned (a hex id is not a secret). */
const ID_FIELD = /(?:^|_)(?:id|ids|sha256|digest|ts|level)$/;

function scrubText(s: string, key?: string): string {
  if (s.length < 6 || clean.has(s)) return s;
  scrubber ??= new Scrubber(parseScrubConfig({}, {}).defaults, new Set());
  const out = scrubber.string(s, tally, key);
  tally.reset();
  if (out === s && s.length <= CLEAN_MAX_CHARS) {
    if (clean.size >= CLEAN_MAX) clean.clear();
    clean.add(s);
  }
  return out;
}

/** Scrub a field value: strings, and strings inside plain objects and arrays (bounded depth). */
function scrubValue(v: unknown, key: string, depth: number): unknown {
  if (typeof v === 'string') return ID_FIELD.test(key) ? v : scrubText(v, key);
  if (depth >= 3 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x = scrubValue(v[i], key, depth + 1);
      if (x !== v[i]) (out ??= v.slice())[i] = x;
    }
    return out ?? v;
  }
  if (Object.getPrototypeOf(v) !== Object.prototype) return v;
  let out: Record<string, unknown> | undefined;
  for (const k in v as Record<string, unknown>) {
    const x = (v as Record<string, unknown>)[k];
    const y = sensitiveKey(k) && x !== null && x !== undefined ? '[REDACTED:sensitive_key]' : scrubValue(x, k, depth + 1);
    if (y !== x) (out ??= { ...(v as Record<string, unknown>) })[k] = y;
  }
  return out ?? v;
}

const sensitiveKey = (k: string): boolean => {
  scrubber ??= new Scrubber(parseScrubConfig({}, {}).defaults, new Set());
  return scrubber.isSensitiveKey(k);
};

/** `text` cut to `max` characters, saying how much was cut. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} more characters]`;
}

/**
 * A stack for details.stack: its head (the message, possibly several lines) scrubbed; the frames
 * (`    at fn (file:line:col)`, code locations) kept as they are, which keeps an error line cheap.
 */
function stackText(stack: string): string {
  const frames = stack.search(/\n\s+at /);
  const head = frames < 0 ? stack : stack.slice(0, frames);
  return truncate(scrubText(head) + (frames < 0 ? '' : stack.slice(frames)), STACK_MAX_CHARS);
}

/** Split an error off a log object: first line → error_message; the rest (the stack) returned apart. */
function foldError(obj: Record<string, unknown>): { obj: Record<string, unknown>; stack: string | undefined } {
  if (obj.err !== undefined && !(obj.err instanceof Error)) {
    const { err, ...rest } = obj;
    obj = { ...rest, error_message: String(err) };
  }
  const err = obj.err instanceof Error ? obj.err : undefined;
  const msg = typeof obj.error_message === 'string' ? obj.error_message : err ? `${err.name}: ${err.message}` : undefined;
  if (msg === undefined || (!err && !msg.includes('\n'))) return { obj, stack: undefined };
  const nl = msg.indexOf('\n');
  const out: Record<string, unknown> = { ...obj, error_message: nl < 0 ? msg : msg.slice(0, nl) };
  if (err) { delete out.err; out.error_type ??= err.name; }
  return { obj: out, stack: (err?.stack ?? msg.slice(nl + 1)) || undefined };
}

/** The log-object formatter: errors folded, sensitive keys redacted, strings scrubbed. */
export function formatLogObject(obj: Record<string, unknown>): Record<string, unknown> {
  const f = foldError(obj);
  const out = scrubValue(f.obj, '', 0) as Record<string, unknown>;
  if (f.stack === undefined) return out;
  const details = out.details && typeof out.details === 'object' && !Array.isArray(out.details) ? out.details as Record<string, unknown> : {};
  return { ...out, details: { ...details, stack: stackText(f.stack) } };
}

// ---- the root logger -----------------------------------------------------------------------------

let root: Logger | undefined;

// Where log lines go: stdout for `stella run` (a service's logs), stderr for every other command,
// whose stdout holds only its output (a table, JSON or YAML a script may parse). Chosen when the
// first line is written, so module-level loggers created at import time follow logToStderr().
// Asynchronous like pino's default destination; pino flushes it on exit.
let logFd: 1 | 2 = 1;
let sink: pino.DestinationStream | undefined;
/** While set, lines go here instead of stdout/stderr (tests read the lines a component wrote). */
let tap: ((line: string) => void) | undefined;
const destination = { write: (line: string) => (tap ? tap(line) : (sink ??= pino.destination({ fd: logFd, sync: false })).write(line)) };

/** Send log lines to stderr from now on (CLI commands other than `run`). */
export function logToStderr(): void {
  if (logFd === 2) return;
  logFd = 2;
  sink = undefined;
}

/** Divert log lines to `fn` until the returned function is called (tests). */
export function tapLogLines(fn: (line: string) => void): () => void {
  tap = fn;
  return () => { if (tap === fn) tap = undefined; };
}

export interface LoggerOptions {
  level?: string;
  /** Run formatLogObject over every log object (default true; false only for the benchmark's baseline). */
  scrub?: boolean;
}

/** A root logger with the project's fixed fields, writing to `dest`. */
export function createLogger(dest: pino.DestinationStream, opts: LoggerOptions = {}): Logger {
  return pino({
    level: opts.level ?? 'info',
    base: { version: VERSION, env: process.env.STELLA_ENV ?? 'dev', instance_id: INSTANCE_ID },
    messageKey: 'msg',
    timestamp: () => `,"ts":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ level: label }), ...(opts.scrub === false ? {} : { log: formatLogObject }) },
    // The message (often interpolated) is scrubbed like the fields.
    ...(opts.scrub === false ? {} : { hooks: { logMethod(args: unknown[], method: (...a: unknown[]) => void) {
      for (let i = 0; i < args.length; i++) if (typeof args[i] === 'string') args[i] = scrubText(args[i] as string);
      method.apply(this, args);
    } } }),
    redact: { paths: redactPaths, censor: '[REDACTED]' },
  }, dest);
}

export function rootLogger(): Logger {
  root ??= createLogger(destination, { level: process.env.STELLA_LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info') });
  return root;
}

/** A logger for one component; its `service` field names it (receiver, scrub, timeline, ...). */
export function logger(service: string, fields: Record<string, unknown> = {}): Logger {
  return rootLogger().child({ service, ...fields });
}
