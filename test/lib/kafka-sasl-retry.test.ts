// A broker that closes the connection in the middle of the SASL exchange gave no verdict on the
// credentials: the project's clients (admin, producer, consumer) log in again on a new connection.
// A wrong password is the broker's verdict: it fails at once, on one connection, with a clear error.
// The test broker is reached through a small TCP proxy that reads the client's Kafka request frames
// and, on the first connection only, closes it (FIN to the client) when the first SaslAuthenticate
// request arrives, after the SaslHandshake: what a loaded CI run once saw as "SASL SCRAM SHA512
// authentication failed: Closed connection".
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Secret } from '../../lib/kafka/auth.ts';
import { createKafka } from '../../lib/kafka/client.ts';
import { testAccess, uniq } from '../support/kafka.ts';

const SASL_HANDSHAKE = 17;
const SASL_AUTHENTICATE = 36;

interface Proxy { address: string; connections: number[][]; dropped: number; close(): Promise<void> }

/** Forwards to `target`; `dropFirst`: the first connection is closed when its first SaslAuthenticate arrives. */
async function saslProxy(target: string, dropFirst: boolean): Promise<Proxy> {
  const [host, port] = target.split(':');
  const sockets = new Set<net.Socket>();
  const proxy: Proxy = { address: '', connections: [], dropped: 0, close: async () => {} };
  const server = net.createServer((client) => {
    const apiKeys: number[] = [];
    proxy.connections.push(apiKeys);
    const first = proxy.connections.length === 1;
    const upstream = net.connect(Number(port), host);
    for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}); }
    upstream.on('data', (c: Buffer) => client.write(c));
    upstream.on('end', () => client.end());
    client.on('end', () => upstream.end());
    let pending = Buffer.alloc(0);
    client.on('data', (c: Buffer) => {
      pending = Buffer.concat([pending, c]);
      // Whole request frames: int32 size, then int16 api key.
      while (pending.length >= 6 && pending.length >= 4 + pending.readInt32BE(0)) {
        const frame = pending.subarray(0, 4 + pending.readInt32BE(0));
        pending = pending.subarray(frame.length);
        const apiKey = frame.readInt16BE(4);
        apiKeys.push(apiKey);
        if (dropFirst && first && apiKey === SASL_AUTHENTICATE) {
          proxy.dropped++;
          upstream.destroy();
          client.end(); // the client reads the end of the stream, as when a broker closes it
          pending = Buffer.alloc(0);
          return;
        }
        upstream.write(frame);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  proxy.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return proxy;
}

const proxies: Proxy[] = [];
afterEach(async () => { for (const p of proxies.splice(0)) await p.close(); });

const access = testAccess();
const clientThrough = (proxy: Proxy, password = access.sasl!.password) => createKafka({
  brokers: [proxy.address], clientId: uniq('sasl-retry'), quiet: true, sasl: { ...access.sasl!, password },
  connectionTimeoutMs: 3000, requestTimeoutMs: 30_000, retries: 5, retryBackoffMs: { initial: 100, max: 1000 } });

describe('a connection closed during the SASL exchange', () => {
  it.each(['admin', 'producer', 'consumer'] as const)('%s: logs in again on a new connection', async (kind) => {
    const proxy = await saslProxy(access.brokers[0]!, true);
    proxies.push(proxy);
    const kafka = clientThrough(proxy);
    const admin = kind === 'admin' ? kafka.admin() : undefined;
    const client = admin ?? (kind === 'producer' ? kafka.producer() : kafka.consumer({ groupId: uniq('sasl-retry') }));
    await client.connect();
    try {
      if (admin) expect((await admin.describeCluster()).brokers.length).toBe(1);
    } finally {
      await client.disconnect();
    }
    // The first connection got as far as the handshake and the first SaslAuthenticate, then lost it;
    // the login was made again on a new connection through the same address.
    expect(proxy.dropped).toBe(1);
    expect(proxy.connections[0]).toContain(SASL_HANDSHAKE);
    expect(proxy.connections[0]!.at(-1)).toBe(SASL_AUTHENTICATE);
    expect(proxy.connections.length).toBeGreaterThanOrEqual(2);
    expect(proxy.connections[1]).toContain(SASL_AUTHENTICATE);
  });
});

describe('a wrong password', () => {
  it('fails at once: one connection, the broker\'s verdict in the error, no password in it', async () => {
    const proxy = await saslProxy(access.brokers[0]!, false);
    proxies.push(proxy);
    const wrong = 'not-the-password-' + uniq('pw');
    const admin = clientThrough(proxy, new Secret(wrong)).admin();
    const err = await admin.connect().then(() => undefined, (e: unknown) => e as Error);
    await admin.disconnect().catch(() => {});
    expect(err?.name).toBe('KafkaJSSASLAuthenticationError');
    expect(err?.message).toMatch(/SASL SCRAM SHA512 authentication failed: .*invalid credentials/);
    expect(err?.message).not.toContain(wrong);
    expect(proxy.connections).toHaveLength(1);
    expect(proxy.connections[0]).toContain(SASL_AUTHENTICATE);
  });
});
