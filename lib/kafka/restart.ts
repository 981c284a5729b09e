// kafkajs restarts a crashed consumer only when the error is retriable. Some errors of ordinary
// operation are not: at startup, while a fresh broker loads its group coordinator, joining can end
// in KafkaJSGroupCoordinatorNotFound, and the consumer then stays stopped for good while the
// process looks healthy (a processor that silently consumes nothing). Every processor restarts its
// consumer after such a crash instead.
import type { Consumer } from 'kafkajs';
import type { Logger } from '../log.ts';

/** kafkajs errors that only mean "the group coordinator was not ready yet". */
export const COORDINATOR_NOT_READY = new Set(['KafkaJSGroupCoordinatorNotFound']);

/**
 * On a crash kafkajs will not restart from, run `start` (connect, subscribe, run) again after
 * `delayMs`, until `stopping()` says the consumer is being shut down.
 */
export function restartOnFatalCrash(consumer: Consumer, start: () => Promise<void>, opts: { log: Logger; stopping: () => boolean; delayMs?: number }): void {
  consumer.on(consumer.events.CRASH, (e) => {
    if (e.payload.restart || opts.stopping()) return;
    const { error, groupId } = e.payload;
    const expected = COORDINATOR_NOT_READY.has(error.name);
    opts.log[expected ? 'info' : 'warn']({ group: groupId, error_message: String(error) }, 'consumer stopped on an error kafkajs does not retry; restarting it');
    const again = (): void => {
      if (opts.stopping()) return;
      start().catch((err: unknown) => {
        opts.log.warn({ group: groupId, error_message: String(err) }, 'consumer restart failed; trying again');
        setTimeout(again, opts.delayMs ?? 1000).unref();
      });
    };
    setTimeout(again, opts.delayMs ?? 1000).unref();
  });
}
