// The local broker's users across restarts (lib/kafka/broker.ts), on a broker of its own: the
// credentials are written once, owner-only; a user asked for after the storage was formatted (a new
// Kafka-direct tenant) is added to the running broker and can log in; a wrong password cannot.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { Secret } from '../../lib/kafka/auth.ts';
import { startBroker, type RunningBroker } from '../../lib/kafka/broker.ts';
import { createKafka } from '../../lib/kafka/client.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-broker-users-'));
let broker: RunningBroker | undefined;
afterAll(async () => { await broker?.stop(); rmSync(dir, { recursive: true, force: true }); });

const login = async (b: RunningBroker, user: string, password?: string): Promise<void> => {
  const access = b.access(user);
  const admin = createKafka({ ...access, ...(password ? { sasl: { ...access.sasl!, password: new Secret(password) } } : {}),
    clientId: 'users-test', quiet: true, retries: 0 }).admin();
  try { await admin.connect(); await admin.listTopics(); } finally { await admin.disconnect().catch(() => {}); }
};
const mode = (f: string) => statSync(f).mode & 0o777;

it('keeps its credentials owner-only and adds a user asked for after the format', async () => {
  broker = await startBroker({ dataDir: dir, heapMb: 384 });
  const file = path.join(dir, 'credentials.json');
  expect(mode(file)).toBe(0o600);
  expect(mode(path.join(dir, 'server.properties'))).toBe(0o600);
  const first = JSON.parse(readFileSync(file, 'utf8')) as { users: Record<string, string> };
  expect(Object.keys(first.users).sort()).toEqual(['admin', 'api', 'evidence', 'receiver', 'scrub', 'slo', 'timeline']);
  expect(() => broker!.access('collector-late')).toThrow(/no user "collector-late"/);
  await broker.stop();

  broker = await startBroker({ dataDir: dir, heapMb: 384, extraUsers: ['collector-late'] });
  const after = JSON.parse(readFileSync(file, 'utf8')) as { users: Record<string, string> };
  expect(mode(file)).toBe(0o600);
  // The format-time users keep their passwords; the new one got its own and logs in with it.
  for (const [u, pw] of Object.entries(first.users)) expect(after.users[u]).toBe(pw);
  expect(after.users['collector-late']).toMatch(/^[A-Za-z0-9_-]{32}$/);
  await login(broker, 'collector-late');
  await expect(login(broker, 'collector-late', 'not-its-password')).rejects.toThrow(/authentication failed/i);
  // Nothing the tool needed is left behind.
  expect(() => statSync(path.join(dir, 'add-user.properties'))).toThrow();
  expect(() => statSync(path.join(dir, 'admin-client.properties'))).toThrow();
}, 300_000);
