// kafkajs 2.2.4's RequestQueue re-arms a timer after every check of its pending requests, even when
// nothing is pending and nothing is throttled; its delay is then negative (throttledUntil starts at
// -1), so every broker connection spins a 1 ms setTimeout loop for as long as it is open
// (tulios/kafkajs#1556, #1704; the fixes #1667 and #1768 are unmerged). Measured on the receiver:
// ~50 ms of CPU per second while idle, ~0.5 CPU-µs per span at its peak and ~10 at 50 requests/s.
//
// A check is only ever needed for a request that waits: push() queues one and schedules a check
// (pending > 0), and every response or timeout checks the queue again. So with nothing pending no
// timer is armed; with requests pending the schedule is kafkajs' own (throttle end, else 10 ms).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const kafkajsDir = require.resolve('kafkajs').replace(/index\.js$/, '');
const REQUEST_QUEUE_PATH = require.resolve(`${kafkajsDir}src/network/requestQueue/index.js`);
/** kafkajs' CHECK_PENDING_REQUESTS_INTERVAL (src/network/requestQueue/index.js). */
const CHECK_INTERVAL_MS = 10;

interface RequestQueueLike {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

const FIXED = Symbol.for('stella.kafkajs.requestQueueFixed');

/** Replace RequestQueue.prototype.scheduleCheckPendingRequests once per process; idempotent. */
export function installRequestQueueFix(): void {
  const RequestQueue = require(REQUEST_QUEUE_PATH) as { prototype: RequestQueueLike & { [FIXED]?: true } };
  const proto = RequestQueue.prototype;
  if (proto[FIXED]) return;
  proto.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(this: RequestQueueLike): void {
    if (this.throttleCheckTimeoutId || this.pending.length === 0) return;
    const untilUnthrottled = this.throttledUntil - Date.now();
    this.throttleCheckTimeoutId = setTimeout(() => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    }, untilUnthrottled > 0 ? untilUnthrottled : CHECK_INTERVAL_MS);
  };
  proto[FIXED] = true;
}

/** For tests: the RequestQueue class kafkajs' connections are built from. */
export const requestQueueClass = (): unknown => require(REQUEST_QUEUE_PATH);
