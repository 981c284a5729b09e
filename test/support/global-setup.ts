// One real Kafka broker for the whole test run (KRaft, loopback), started by the project's own
// launcher; reused from KAFKA_BROKERS when that is set (e.g. a developer's long-running broker).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startBroker, type RunningBroker } from '../../lib/kafka/broker.ts';

declare module 'vitest' {
  export interface ProvidedContext { kafkaBrokers: string }
}

let broker: RunningBroker | undefined;
let dir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  if (process.env.KAFKA_BROKERS) {
    project.provide('kafkaBrokers', process.env.KAFKA_BROKERS);
    return;
  }
  dir = mkdtempSync(path.join(os.tmpdir(), 'stella-kafka-'));
  broker = await startBroker({ dataDir: dir, heapMb: 512, log: (m) => process.stderr.write(`[kafka] ${m}\n`) });
  project.provide('kafkaBrokers', broker.brokers);
}

export async function teardown(): Promise<void> {
  await broker?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
