// The level a kafkajs log line deserves in our logs. kafkajs logs every error response at error
// level, also those it retries itself as part of normal operation: on every start the group
// coordinator is "loading" or "not available" for a moment, and a rebalance answers heartbeats
// with REBALANCE_IN_PROGRESS. Those are expected and retried, so they are debug (retriable protocol
// errors) or info (group membership changes). If the retries run out, the caller gets the error
// and logs or reports it where it matters.
import { createRequire } from 'node:module';
import { logLevel } from 'kafkajs';
import { COORDINATOR_NOT_READY } from './restart.ts';

export type PinoLevel = 'error' | 'warn' | 'info' | 'debug';

const levels: Record<number, PinoLevel> = {
  [logLevel.ERROR]: 'error', [logLevel.WARN]: 'warn', [logLevel.INFO]: 'info', [logLevel.DEBUG]: 'debug',
};

interface ProtocolErrorCode { type: string; retriable: boolean; message: string }
// kafkajs' own table of Kafka protocol errors (its log lines carry the message, not the code).
const { errorCodes } = createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as { errorCodes: ProtocolErrorCode[] };

/** Errors the consumer group protocol answers while membership changes; kafkajs rejoins. */
const MEMBERSHIP = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'MEMBER_ID_REQUIRED']);
const byMessage = new Map<string, PinoLevel>(errorCodes.flatMap((e): [string, PinoLevel][] =>
  MEMBERSHIP.has(e.type) ? [[e.message, 'info']] : e.retriable ? [[e.message, 'debug']] : []));

// The producers bound their retries on purpose (a client gets 503 within its produce timeout rather
// than waiting forever); kafkajs warns that bounded retries weaken exactly-once, which the pipeline
// does not rely on (consumers and sinks are idempotent).
const EXPECTED_WARNINGS = new Set(['Limiting retries for the idempotent producer may invalidate EoS guarantees']);

// A login whose connection was lost in the middle of the exchange is made again on a new
// connection (./sasl-retry.ts); kafkajs' authenticator logs it at error level first. A broker's
// verdict (invalid credentials) stays an error.
const LOST_DURING_SASL = /^SASL (?:SCRAM SHA(?:256|512)|PLAIN) authentication failed: (?:Closed connection|Connection closed by the server|Connection error: )/;

/** The pino level for one kafkajs log entry. */
export function kafkaLogLevel(level: number, message: string, fields: Record<string, unknown>): PinoLevel {
  const mapped = levels[level] ?? 'info';
  if (mapped === 'warn' && EXPECTED_WARNINGS.has(message)) return 'debug';
  // A consumer that crashed because the coordinator was not ready yet is restarted (./restart.ts),
  // as kafkajs restarts those that crash on retriable errors: not errors either.
  if (mapped === 'error' && (message.startsWith('Restarting the consumer in ') || [...COORDINATOR_NOT_READY].some((n) => message.startsWith(`Crash: ${n}:`)))) return 'info';
  if (mapped === 'error' && LOST_DURING_SASL.test(message)) return 'info';
  if (mapped === 'error' && message.startsWith('Response ') && typeof fields.error === 'string') {
    return byMessage.get(fields.error) ?? mapped;
  }
  return mapped;
}
