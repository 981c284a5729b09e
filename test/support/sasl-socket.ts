// A raw TCP connection to the test broker, logged in with SASL/SCRAM-SHA-512 (RFC 5802/7677 over
// Kafka's SaslHandshake v1 + SaslAuthenticate v0), for tests that write hand-made protocol bytes.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import net from 'node:net';
import type { KafkaAccess } from '../../lib/kafka/auth.ts';

/** Reads whole size-prefixed responses off a socket, in order. */
export class FrameReader {
  private buf = Buffer.alloc(0);
  private waiters: ((b: Buffer) => void)[] = [];
  constructor(readonly sock: net.Socket) {
    sock.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      while (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readInt32BE(0) && this.waiters.length) {
        const n = 4 + this.buf.readInt32BE(0);
        const frame = this.buf.subarray(0, n);
        this.buf = this.buf.subarray(n);
        this.waiters.shift()!(frame);
      }
    });
  }
  next(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiters.push(resolve);
      this.sock.once('close', () => reject(new Error('connection closed')));
      this.sock.emit('data', Buffer.alloc(0));
    });
  }
}

function request(apiKey: number, apiVersion: number, correlationId: number, body: Buffer): Buffer {
  const clientId = Buffer.from('sasl-socket');
  const header = Buffer.alloc(4 + 2 + 2 + 4 + 2);
  header.writeInt32BE(header.length - 4 + clientId.length + body.length, 0);
  header.writeInt16BE(apiKey, 4);
  header.writeInt16BE(apiVersion, 6);
  header.writeInt32BE(correlationId, 8);
  header.writeInt16BE(clientId.length, 12);
  return Buffer.concat([header, clientId, body]);
}

const str16 = (s: string) => { const b = Buffer.from(s); const h = Buffer.alloc(2); h.writeInt16BE(b.length); return Buffer.concat([h, b]); };
const bytes32 = (b: Buffer) => { const h = Buffer.alloc(4); h.writeInt32BE(b.length); return Buffer.concat([h, b]); };

/** SaslAuthenticate v0 response (after size and correlation id): error_code, error_message, auth_bytes. */
function authResponse(frame: Buffer): Buffer {
  let at = 8;
  const error = frame.readInt16BE(at); at += 2;
  const msgLen = frame.readInt16BE(at); at += 2;
  const msg = msgLen >= 0 ? frame.subarray(at, at + msgLen).toString() : ''; at += Math.max(msgLen, 0);
  if (error !== 0) throw new Error(`SASL authentication failed (error ${error}): ${msg}`);
  const n = frame.readInt32BE(at); at += 4;
  return frame.subarray(at, at + n);
}

/** Connect and log in as `access`'s SCRAM-SHA-512 user; correlation ids 1-3 are used by the login. */
export async function scramSocket(access: KafkaAccess): Promise<{ sock: net.Socket; frames: FrameReader }> {
  const sasl = access.sasl!;
  const [host, port] = access.brokers[0]!.split(':');
  const sock = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(Number(port), host, () => resolve(s));
    s.on('error', reject);
  });
  const frames = new FrameReader(sock);
  sock.write(request(17, 1, 1, str16('SCRAM-SHA-512')));
  const hs = await frames.next();
  if (hs.readInt16BE(8) !== 0) throw new Error(`SaslHandshake refused: ${hs.readInt16BE(8)}`);
  const nonce = randomBytes(18).toString('base64');
  const clientFirstBare = `n=${sasl.username},r=${nonce}`;
  sock.write(request(36, 0, 2, bytes32(Buffer.from(`n,,${clientFirstBare}`))));
  const serverFirst = authResponse(await frames.next()).toString();
  const attrs = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
  const salted = pbkdf2Sync(sasl.password.reveal(), Buffer.from(attrs.s!, 'base64'), Number(attrs.i), 64, 'sha512');
  const clientKey = createHmac('sha512', salted).update('Client Key').digest();
  const storedKey = createHash('sha512').update(clientKey).digest();
  const finalNoProof = `c=biws,r=${attrs.r}`;
  const signature = createHmac('sha512', storedKey).update(`${clientFirstBare},${serverFirst},${finalNoProof}`).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
  sock.write(request(36, 0, 3, bytes32(Buffer.from(`${finalNoProof},p=${proof.toString('base64')}`))));
  authResponse(await frames.next());
  return { sock, frames };
}
