// Shared by the evidence runner, API and e2e tests: producing timeline events / clean batches,
// reading a tenant's log back, waiting.
import { randomBytes } from 'node:crypto';
import { Partitioners } from 'kafkajs';
import { defaultOrigin } from '../../processors/evidence/layout.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import type { EvidenceStore } from '../../processors/evidence/store.ts';
import type { Signer } from '../../processors/evidence/note.ts';
import { testKafka } from '../support/kafka.ts';
import { testSigner } from './helpers.ts';

export const tenantSigner = (tenant: string): Signer => testSigner(`runner-key-${tenant}`, defaultOrigin(tenant));

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 45_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try { const v = await fn(); if (v) return v; } catch (e) { last = e; }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface TestEvent { event_id: string; tenant_id: string; kind: string; resource_type: string; resource_id: string; seq: number; details: Record<string, unknown> }

export function testEvent(tenant: string, seq: number, resourceId = `res-${seq % 3}`): TestEvent {
  return { event_id: randomBytes(16).toString('hex'), tenant_id: tenant, kind: 'deploy.finished', resource_type: 'service', resource_id: resourceId, seq, details: { n: seq } };
}

export async function produce(topic: string, msgs: { tenant: string; value: Buffer | string }[]): Promise<void> {
  const p = testKafka('evidence-test-producer').producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await p.connect();
  await p.send({ topic, acks: -1, messages: msgs.map((m) => ({ key: m.tenant, value: m.value, headers: { tenant: m.tenant } })) });
  await p.disconnect();
}

export async function sealedSize(store: EvidenceStore, tenant: string): Promise<number> {
  const cp = await new LogReader(store, tenant).latest();
  return cp?.checkpoint.size ?? 0;
}

/** Every entry of the tenant's latest sealed tree, parsed. */
export async function logEntries(store: EvidenceStore, tenant: string): Promise<Record<string, unknown>[]> {
  const r = new LogReader(store, tenant);
  const n = await sealedSize(store, tenant);
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < n; i++) out.push(JSON.parse(Buffer.from(await r.entry(i, n)).toString('utf8')) as Record<string, unknown>);
  return out;
}
