// One real Kafka broker for the whole test run (KRaft, loopback, SASL/SCRAM with ACLs), started by
// the project's own launcher; reused from KAFKA_BROKERS when that is set (e.g. a developer's
// long-running broker), logging in as KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD (a super user).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { collectorUser, SUPER_USER } from '../../lib/kafka/acls.ts';
import { startBroker, type RunningBroker } from '../../lib/kafka/broker.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    /** The broker's SCRAM-SHA-512 users and passwords: `admin` (super user) and the pipeline's parts. */
    kafkaUsers: Record<string, string>;
    /** The user test helpers log in as by default (a super user). */
    kafkaSuperUser: string;
  }
}

let broker: RunningBroker | undefined;
let dir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  if (process.env.KAFKA_BROKERS) {
    project.provide('kafkaBrokers', process.env.KAFKA_BROKERS);
    const user = process.env.KAFKA_SASL_USERNAME ?? SUPER_USER;
    project.provide('kafkaUsers', { [user]: process.env.KAFKA_SASL_PASSWORD ?? '' });
    project.provide('kafkaSuperUser', user);
    return;
  }
  dir = mkdtempSync(path.join(os.tmpdir(), 'stella-kafka-'));
  // Two Kafka-direct collector users for the ACL tests (test/lib/kafka-auth.test.ts).
  broker = await startBroker({ dataDir: dir, heapMb: 512, log: (m) => process.stderr.write(`[kafka] ${m}\n`),
    extraUsers: [collectorUser('acme'), collectorUser('globex')] });
  project.provide('kafkaBrokers', broker.brokers);
  project.provide('kafkaUsers', broker.credentials.users);
  project.provide('kafkaSuperUser', SUPER_USER);
}

export async function teardown(): Promise<void> {
  await broker?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
