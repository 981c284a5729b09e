// kafkajs logs every error response at error level, also the ones it retries as a matter of course
// (every start: the group coordinator is loading / not available); those must not be errors in our logs.
import { logLevel } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { kafkaLogLevel } from '../../lib/kafka/log-levels.ts';

const response = (error: string) => ({ error, correlationId: 2, size: 20, broker: '127.0.0.1:9092' });

describe('kafkaLogLevel', () => {
  it('retried coordinator and leader errors are debug', () => {
    expect(kafkaLogLevel(logLevel.ERROR, 'Response InitProducerId(key: 22, version: 1)', response("The coordinator is loading and hence can't process requests for this group"))).toBe('debug');
    expect(kafkaLogLevel(logLevel.ERROR, 'Response GroupCoordinator(key: 10, version: 2)', response('The group coordinator is not available'))).toBe('debug');
    expect(kafkaLogLevel(logLevel.ERROR, 'Response Metadata(key: 3, version: 6)', response('There is no leader for this topic-partition as we are in the middle of a leadership election'))).toBe('debug');
  });
  it('group membership changes are info', () => {
    expect(kafkaLogLevel(logLevel.ERROR, 'Response Heartbeat(key: 12, version: 3)', response('The group is rebalancing, so a rejoin is needed'))).toBe('info');
  });
  it('a consumer crash on a coordinator that is not ready yet, and a consumer restart, are info (restarted)', () => {
    expect(kafkaLogLevel(logLevel.ERROR, 'Crash: KafkaJSGroupCoordinatorNotFound: Failed to find group coordinator', { groupId: 'g' })).toBe('info');
    expect(kafkaLogLevel(logLevel.ERROR, 'Restarting the consumer in 200ms', { groupId: 'g' })).toBe('info');
    expect(kafkaLogLevel(logLevel.ERROR, 'Crash: KafkaJSNonRetriableError: Topic authorization failed', { groupId: 'g' })).toBe('error');
  });
  it('the bounded-retries warning of the idempotent producer is debug; other warnings stay', () => {
    expect(kafkaLogLevel(logLevel.WARN, 'Limiting retries for the idempotent producer may invalidate EoS guarantees', {})).toBe('debug');
    expect(kafkaLogLevel(logLevel.WARN, 'something else', {})).toBe('warn');
  });
  it('a SASL login whose connection was lost is info (logged in again on a new connection); a wrong password stays an error', () => {
    expect(kafkaLogLevel(logLevel.ERROR, 'SASL SCRAM SHA512 authentication failed: Closed connection', { broker: '127.0.0.1:9092' })).toBe('info');
    expect(kafkaLogLevel(logLevel.ERROR, 'SASL PLAIN authentication failed: Connection closed by the server', { broker: '127.0.0.1:9092' })).toBe('info');
    expect(kafkaLogLevel(logLevel.ERROR, 'SASL SCRAM SHA512 authentication failed: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512', { broker: '127.0.0.1:9092' })).toBe('error');
  });
  it('errors that are not retried stay errors', () => {
    expect(kafkaLogLevel(logLevel.ERROR, 'Response Produce(key: 0, version: 7)', response('Not authorized to access topics: [Topic authorization failed]'))).toBe('error');
    expect(kafkaLogLevel(logLevel.ERROR, 'Connection error: connect ECONNREFUSED 127.0.0.1:9092', {})).toBe('error');
    expect(kafkaLogLevel(logLevel.ERROR, 'Response Produce(key: 0, version: 7)', response('The request included a message larger than the max message size the server will accept'))).toBe('error');
  });
});
