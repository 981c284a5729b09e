// The timeline processor's intake hook: it consumes the intake topics (runtime facts, orchestrator
// exports, artifacts, symbol bundles) in the same consumer group and batch as telemetry, and hands
// each intake kind's records to the ClickHouse writer that kind registered (an IntakeSink). The
// batch's offsets are committed only after every sink resolved (its rows are durable), so a crash
// replays the batch; sinks must be idempotent (deterministic rows in ReplacingMergeTree tables), so
// the replay changes nothing visible. A record a sink cannot use is returned with its reason and
// goes to the DLQ; the rest of the batch goes on.
import type { BatchWriter, Store } from '../../lib/store/index.ts';
import type { IntakeTopicKey, TopicNames } from '../../lib/kafka/topics.ts';
import type { StageRecord } from '../../lib/kafka/stage.ts';

export interface IntakeSinkContext { writer: BatchWriter; store: Store }
export interface DeadIntakeRecord { record: StageRecord; reason: string }
/** What a sink's background work (start) gets: the runner's writer and a way to dead-letter a record later. */
export interface IntakeSinkRuntime extends IntakeSinkContext { deadLetter(d: DeadIntakeRecord[]): Promise<void> }

export interface IntakeSink {
  /** For logs and metrics, e.g. `runtime-facts`. */
  name: string;
  /** The intake topics (TopicNames keys) whose records this sink writes. */
  topics: readonly IntakeTopicKey[];
  /**
   * Write one batch's records of this sink's topics (grouped by topic key; a key is present only when
   * the batch held records of it). Resolve only when the rows are durable. Return the records that
   * are not valid intake records (nothing written for them).
   */
  write(records: Partial<Record<IntakeTopicKey, StageRecord[]>>, ctx: IntakeSinkContext): Promise<DeadIntakeRecord[]>;
  /** Optional background work (the runtime sink's orphan retries), started with the runner; returns its stop. */
  start?(rt: IntakeSinkRuntime): Promise<() => Promise<void>>;
}

/** Maps topic names to their sink; throws when two sinks claim one topic. */
export class IntakeRouting {
  private readonly byTopic = new Map<string, { key: IntakeTopicKey; sink: IntakeSink }>();

  constructor(readonly sinks: readonly IntakeSink[], names: Pick<TopicNames, IntakeTopicKey>) {
    for (const sink of sinks) {
      for (const key of sink.topics) {
        const topic = names[key];
        const prior = this.byTopic.get(topic);
        if (prior) throw new Error(`intake topic ${topic} is claimed by two sinks: ${prior.sink.name} and ${sink.name}`);
        this.byTopic.set(topic, { key, sink });
      }
    }
  }

  get topics(): string[] { return [...this.byTopic.keys()]; }

  handles(topic: string): boolean { return this.byTopic.has(topic); }

  /** Hand each sink its records (concurrently); resolves when all are durable, with the dead ones. */
  async write(records: readonly StageRecord[], ctx: IntakeSinkContext): Promise<DeadIntakeRecord[]> {
    const perSink = new Map<IntakeSink, Partial<Record<IntakeTopicKey, StageRecord[]>>>();
    for (const r of records) {
      const route = this.byTopic.get(r.topic);
      if (!route) continue;
      const group = perSink.get(route.sink) ?? {};
      (group[route.key] ??= []).push(r);
      perSink.set(route.sink, group);
    }
    const dead = await Promise.all([...perSink].map(([sink, group]) => sink.write(group, ctx)));
    return dead.flat();
  }
}
