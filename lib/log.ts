// Structured JSON logs (pino) with the project's fixed fields. Secrets never reach a log: known
// secret-bearing keys are redacted, and callers log identifiers and codes, never payload values.
import { randomUUID } from 'node:crypto';
import { pino, type Logger } from 'pino';

export const VERSION = '0.1.0';
export const INSTANCE_ID = process.env.STELLA_INSTANCE_ID ?? randomUUID().slice(0, 8);

export type { Logger };

const redactPaths = ['authorization', 'token', 'password', 'secret', 'headers.authorization', 'req.headers.authorization',
  '*.authorization', '*.token', '*.password', '*.secret', 'signingKey', '*.signingKey'];

let root: Logger | undefined;

// Where log lines go: stdout for `stella run` (a service's logs), stderr for every other command,
// whose stdout holds only its output (a table, JSON or YAML a script may parse). Chosen when the
// first line is written, so module-level loggers created at import time follow logToStderr().
// Asynchronous like pino's default destination; pino flushes it on exit.
let logFd: 1 | 2 = 1;
let sink: pino.DestinationStream | undefined;
const destination = { write: (line: string) => (sink ??= pino.destination({ fd: logFd, sync: false })).write(line) };

/** Send log lines to stderr from now on (CLI commands other than `run`). */
export function logToStderr(): void {
  if (logFd === 2) return;
  logFd = 2;
  sink = undefined;
}

export function rootLogger(): Logger {
  if (!root) {
    root = pino({
      level: process.env.STELLA_LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info'),
      base: { version: VERSION, env: process.env.STELLA_ENV ?? 'dev', instance_id: INSTANCE_ID },
      messageKey: 'msg',
      timestamp: () => `,"ts":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: redactPaths, censor: '[REDACTED]' },
    }, destination);
  }
  return root;
}

/** A logger for one component; its `service` field names it (receiver, scrub, timeline, ...). */
export function logger(service: string, fields: Record<string, unknown> = {}): Logger {
  return rootLogger().child({ service, ...fields });
}
