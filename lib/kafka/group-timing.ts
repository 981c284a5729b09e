// How fast the processors' consumer groups notice a member that died. kafkajs 2.2.4 has no static
// membership (KIP-345: its JoinGroup never sends group.instance.id), so a part that was killed and
// restarts joins as a new member and the group waits for the dead member's session to expire
// before it hands out its partitions. kafkajs' default session timeout (30 s) made a restarted part
// idle for ~30 s; 6 s is the smallest a default broker accepts (group.min.session.timeout.ms).
// A short session needs heartbeats while a batch is handled: kafkajs heartbeats only between
// batches and when the handler calls heartbeat(), so long handlers run under keepHeartbeating().
// Configured by kafka.sessionTimeoutMs / heartbeatIntervalMs / rebalanceTimeoutMs (README).

export interface ConsumerGroupTiming {
  /** A member that sent no heartbeat for this long is dropped and its partitions reassigned. */
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** How long a rebalance waits for live members to finish their batch and rejoin. */
  rebalanceTimeoutMs: number;
}

export const DEFAULT_GROUP_TIMING: ConsumerGroupTiming = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 1000, rebalanceTimeoutMs: 30_000 };

let timing: ConsumerGroupTiming = DEFAULT_GROUP_TIMING;

/** Set at startup from the validated config (stella run), before any consumer is created. */
export function setConsumerGroupTiming(t: ConsumerGroupTiming): void { timing = t; }

/** kafkajs consumer options for the processors' groups. */
export function consumerGroupOptions(): { sessionTimeout: number; heartbeatInterval: number; rebalanceTimeout: number } {
  return { sessionTimeout: timing.sessionTimeoutMs, heartbeatInterval: timing.heartbeatIntervalMs, rebalanceTimeout: timing.rebalanceTimeoutMs };
}

/**
 * Run `work` while heartbeating every heartbeat interval, so a batch that takes longer than the
 * session timeout (a slow ClickHouse insert, a seal) does not get the member dropped. A failed
 * heartbeat (a rebalance began) is left to the batch: it finds itself stale or its commit fails.
 */
export async function keepHeartbeating<T>(heartbeat: () => Promise<void>, work: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => { heartbeat().catch(() => undefined); }, timing.heartbeatIntervalMs);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
