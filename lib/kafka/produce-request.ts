// The one place the project replaces a kafkajs internal: the Produce request encoder (API versions
// 3–7, all of which kafkajs builds with protocol/requests/produce/v3/request.js).
//
// Why: kafkajs 2.2.4 (unmaintained) encodes each record into its own growing Encoder, copies every
// value five times on its way into the request (record → batch body → batch → partition → topic →
// request), zero-fills each doubling of those buffers, and checksums the batch with a byte-at-a-time
// JavaScript CRC-32C. For the receiver's ~70 KB records that was a quarter of its CPU. This encoder
// sizes the request first, writes it into one buffer (each value copied once) and uses lib/kafka/
// crc32c.ts. The bytes are the same as kafkajs' (test/lib/produce-request.test.ts compares them and
// round-trips through a real broker). Compressed batches still go to kafkajs' own encoder.
//
// How: kafkajs requires produce/v3/request.js lazily, when the first Produce request is built, and
// v4–v7 reach it through `require('../v3/request')`. `installProduceEncoder()` loads the original
// module and then swaps its `exports` in the CommonJS cache, so every later require gets ours. It
// must run before the first Produce request in the process (lib/kafka/producer.ts calls it on
// import); if kafkajs already built one, it leaves kafkajs alone and says so.
import { createRequire } from 'node:module';
import { crc32c } from './crc32c.ts';

const require = createRequire(import.meta.url);
const kafkajsDir = require.resolve('kafkajs').replace(/index\.js$/, '');
const V3_PATH = require.resolve(`${kafkajsDir}src/protocol/requests/produce/v3/request.js`);
const LATER_PATHS = [4, 5, 6, 7].map((v) => require.resolve(`${kafkajsDir}src/protocol/requests/produce/v${v}/request.js`));

interface KafkaLong { getHighBits(): number; getLowBits(): number }
const Long = require(`${kafkajsDir}src/utils/long.js`) as { fromValue(v: unknown): KafkaLong; fromInt(v: number): KafkaLong };
const Encoder = require(`${kafkajsDir}src/protocol/encoder.js`) as new (initialSize?: number) => { buf: Buffer; offset: number };
const { Produce: API_KEY } = require(`${kafkajsDir}src/protocol/requests/apiKeys.js`) as { Produce: number };
const { Types: Compression } = require(`${kafkajsDir}src/protocol/message/compression/index.js`) as { Types: { None: number } };

type HeaderValue = Buffer | string | null | undefined;
interface ProduceMessage {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: Record<string, HeaderValue | HeaderValue[]>;
  timestamp?: number | string;
}
interface PartitionData { partition: number; firstSequence?: number; messages: ProduceMessage[] }
interface TopicData { topic: string; partitions: PartitionData[] }
export interface ProduceRequestArgs {
  acks: number;
  timeout: number;
  transactionalId?: string | null;
  producerId?: unknown;
  producerEpoch?: number;
  compression?: number;
  topicData: TopicData[];
}
export interface ProduceRequest {
  apiKey: number;
  apiVersion: number;
  apiName: string;
  expectResponse(): boolean;
  encode(): Promise<{ buf: Buffer; offset: number }>;
}
type RequestFactory = (args: ProduceRequestArgs) => ProduceRequest;
/** Marks our factory in the CommonJS cache; its value is the kafkajs factory it replaced. */
const OURS = Symbol.for('stella.produceEncoder');

// ---- sizes (Kafka's varints are zigzag-encoded)

const zigzag32 = (n: number): number => ((n << 1) ^ (n >> 31)) >>> 0;
const uvarintSize = (u: number): number => (u < 0x80 ? 1 : u < 0x4000 ? 2 : u < 0x200000 ? 3 : u < 0x10000000 ? 4 : 5);
const varintSize = (n: number): number => uvarintSize(zigzag32(n));
const SMALL = 2 ** 30;
function varlongSize(n: number): number {
  if (n >= -SMALL && n < SMALL) return varintSize(n);
  let z = BigInt.asUintN(64, (BigInt(n) << 1n) ^ (BigInt(n) >> 63n));
  let size = 1;
  while (z >= 0x80n) { z >>= 7n; size++; }
  return size;
}

/** kafkajs semantics: Buffers as they are, null/undefined as length -1, anything else as its UTF-8 string. */
function asBytes(v: unknown): Buffer | null {
  if (v == null) return null;
  return Buffer.isBuffer(v) ? v : Buffer.from(String(v), 'utf8');
}

interface RecordPlan { key: Buffer | null; value: Buffer | null; headers: [Buffer, Buffer | null][]; tsDelta: number; body: number }
interface BatchPlan { partition: number; firstSequence: number; records: RecordPlan[]; firstTimestamp: number | string; maxTimestamp: number | string; bodySize: number }

function planBatch(p: PartitionData): BatchPlan {
  // As kafkajs: the first and max timestamps are the first and last of the given ones in default
  // (string) sort order, else now; each record stores its offset from the first.
  const now = Date.now();
  const given = p.messages.map((m) => m.timestamp).filter((t) => t != null).sort();
  const firstTimestamp = given.length ? given[0]! : now;
  const maxTimestamp = given.length ? given[given.length - 1]! : now;
  const records: RecordPlan[] = [];
  // attributes(2) lastOffsetDelta(4) firstTimestamp(8) maxTimestamp(8) producerId(8) epoch(2) firstSequence(4) count(4)
  let bodySize = 40;
  for (let i = 0; i < p.messages.length; i++) {
    const m = p.messages[i]!;
    const tsDelta = Number(m.timestamp || now) - Number(firstTimestamp);
    const key = asBytes(m.key);
    const value = asBytes(m.value);
    const headers: [Buffer, Buffer | null][] = [];
    for (const [k, v] of Object.entries(m.headers ?? {})) {
      const kb = Buffer.from(k, 'utf8');
      if (Array.isArray(v)) for (const one of v) headers.push([kb, asBytes(one)]);
      else headers.push([kb, asBytes(v)]);
    }
    let body = 1 + varlongSize(tsDelta) + varintSize(i)
      + (key ? varintSize(key.length) + key.length : 1)
      + (value ? varintSize(value.length) + value.length : 1)
      + varintSize(headers.length);
    for (const [k, v] of headers) body += varintSize(k.length) + k.length + (v ? varintSize(v.length) + v.length : 1);
    records.push({ key, value, headers, tsDelta, body });
    bodySize += varintSize(body) + body;
  }
  return { partition: p.partition, firstSequence: p.firstSequence ?? 0, records, firstTimestamp, maxTimestamp, bodySize };
}

// ---- writing

class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  int8(n: number): void { this.buf.writeInt8(n, this.pos); this.pos += 1; }
  int16(n: number): void { this.buf.writeInt16BE(n, this.pos); this.pos += 2; }
  int32(n: number): void { this.buf.writeInt32BE(n, this.pos); this.pos += 4; }
  uint32(n: number): void { this.buf.writeUInt32BE(n, this.pos); this.pos += 4; }
  int64(v: unknown): void { const l = Long.fromValue(v); this.int32(l.getHighBits()); this.int32(l.getLowBits()); }
  uvarint(u: number): void {
    const b = this.buf;
    while (u >= 0x80) { b[this.pos++] = (u & 0x7f) | 0x80; u >>>= 7; }
    b[this.pos++] = u;
  }
  varint(n: number): void { this.uvarint(zigzag32(n)); }
  varlong(n: number): void {
    if (n >= -SMALL && n < SMALL) { this.varint(n); return; }
    let z = BigInt.asUintN(64, (BigInt(n) << 1n) ^ (BigInt(n) >> 63n));
    while (z >= 0x80n) { this.buf[this.pos++] = Number(z & 0x7fn) | 0x80; z >>= 7n; }
    this.buf[this.pos++] = Number(z);
  }
  bytes(b: Buffer): void { b.copy(this.buf, this.pos); this.pos += b.length; }
  varBytes(b: Buffer | null): void {
    if (!b) { this.varint(-1); return; }
    this.varint(b.length);
    this.bytes(b);
  }
  string(s: string | null | undefined): void {
    if (s == null) { this.int16(-1); return; }
    const n = this.buf.write(s, this.pos + 2, 'utf8');
    this.int16(n);
    this.pos += n;
  }
}

const MAGIC = 2;
const TRANSACTIONAL = 16;
// partition(4) batch size(4) firstOffset(8) length(4) partitionLeaderEpoch(4) magic(1) crc(4)
const BATCH_OVERHEAD = 29;

function writeBatch(w: Writer, b: BatchPlan, args: ProduceRequestArgs, producerId: unknown): void {
  w.int32(b.partition);
  w.int32(21 + b.bodySize); // the RecordBatch's size: firstOffset(8) length(4) epoch(4) magic(1) crc(4) body
  w.int64(0); // firstOffset
  w.int32(4 + 1 + 4 + b.bodySize); // length of what follows
  w.int32(0); // partitionLeaderEpoch
  w.int8(MAGIC);
  const crcAt = w.pos;
  w.pos += 4;
  const bodyAt = w.pos;
  w.int16(args.transactionalId ? TRANSACTIONAL : 0); // attributes: no compression, create time
  w.int32(b.records.length - 1); // lastOffsetDelta
  w.int64(b.firstTimestamp);
  w.int64(b.maxTimestamp);
  w.int64(producerId);
  w.int16(args.producerEpoch ?? 0);
  w.int32(b.firstSequence);
  w.int32(b.records.length);
  for (let i = 0; i < b.records.length; i++) {
    const r = b.records[i]!;
    w.varint(r.body);
    w.int8(0); // record attributes
    w.varlong(r.tsDelta);
    w.varint(i);
    w.varBytes(r.key);
    w.varBytes(r.value);
    w.varint(r.headers.length);
    for (const [k, v] of r.headers) { w.varBytes(k); w.varBytes(v); }
  }
  w.buf.writeUInt32BE(crc32c(w.buf.subarray(bodyAt, w.pos)), crcAt);
}

/** The request body (after kafkajs' request header) for uncompressed batches, as one exact-size
 * buffer; with `headroom`, that many spare bytes precede it in the same memory (see adoptInto). */
export function encodeProduceRequest(args: ProduceRequestArgs, headroom = 0): Buffer {
  const producerId = args.producerId ?? Long.fromInt(-1);
  const topics = args.topicData.map((t) => ({ topic: t.topic, batches: t.partitions.map(planBatch) }));
  let size = 2 + (args.transactionalId == null ? 0 : Buffer.byteLength(args.transactionalId, 'utf8')) + 2 + 4 + 4;
  for (const t of topics) {
    size += 2 + Buffer.byteLength(t.topic, 'utf8') + 4;
    for (const b of t.batches) size += BATCH_OVERHEAD + b.bodySize;
  }
  const w = new Writer(Buffer.allocUnsafe(headroom + size).subarray(headroom));
  w.string(args.transactionalId);
  w.int16(args.acks);
  w.int32(args.timeout);
  w.int32(topics.length);
  for (const t of topics) {
    w.string(t.topic);
    w.int32(t.batches.length);
    for (const b of t.batches) writeBatch(w, b, args, producerId);
  }
  if (w.pos !== size) throw new Error(`produce request encoder: wrote ${w.pos} bytes of ${size} planned`);
  return w.buf;
}

// ---- framing without copies
//
// kafkajs frames every request in protocol/request.js: a new Encoder gets the request header and
// then `writeEncoder(payload)`, a copy of the whole payload into a buffer grown to the next power
// of two; a second Encoder does the same again to prepend the size. For a produce request that is
// two more copies of every record and 2-4x its size in fresh external memory, and external memory
// is what drove V8 into back-to-back full GCs in the receiver (--trace-gc: ~7 mark-compacts/s at a
// heap of 18 MB). Our payload is written behind HEADROOM spare bytes; `writeEncoder` (patched on
// kafkajs' Encoder class) moves the few header bytes written so far into that headroom instead of
// copying the payload after them, and the encoder takes the payload's memory over, headroom left
// included, so the size prefix lands the same way. Any other Encoder copies as before.
const HEADROOM = 256;
const SPARE = Symbol('stella.headroom');
type Enc = { buf: Buffer; offset: number; [SPARE]?: number };

function adoptInto(target: Enc, value: Enc): boolean {
  const spare = value[SPARE] ?? 0;
  if (target.offset > spare) return false;
  const start = value.buf.byteOffset - target.offset;
  const view = Buffer.from(value.buf.buffer, start, target.offset + value.buf.length);
  target.buf.copy(view, 0, 0, target.offset);
  target.buf = view;
  target[SPARE] = spare - (value.buf.byteOffset - start);
  target.offset += value.offset;
  value[SPARE] = 0; // its memory now belongs to target
  return true;
}

function patchWriteEncoder(): void {
  const proto = (Encoder as unknown as { prototype: { writeEncoder(this: Enc, v: Enc): Enc; [SPARE]?: true } }).prototype;
  if (proto[SPARE]) return;
  const copying = proto.writeEncoder;
  proto.writeEncoder = function writeEncoder(this: Enc, value: Enc): Enc {
    // Only a payload that covers its whole buffer can be taken over (nothing after `offset`).
    if (value && value[SPARE] && value.offset === value.buf.length && adoptInto(this, value)) return this;
    return copying.call(this, value);
  };
  proto[SPARE] = true;
}

function ourFactory(original: RequestFactory): RequestFactory {
  return (args) => {
    if ((args.compression ?? Compression.None) !== Compression.None) return original(args);
    return {
      apiKey: API_KEY,
      apiVersion: 3,
      apiName: 'Produce',
      expectResponse: () => args.acks !== 0,
      encode: async () => {
        // kafkajs' request framing only reads `buf` and `offset` of the Encoder it is given.
        const enc = new Encoder(0) as Enc;
        enc.buf = encodeProduceRequest(args, HEADROOM);
        enc.offset = enc.buf.length;
        enc[SPARE] = HEADROOM;
        return enc;
      },
    };
  };
}

/** kafkajs' own Produce request factory (what compressed batches still use; tests compare against it). */
export const kafkajsProduceRequest = (): RequestFactory => {
  const current = require(V3_PATH) as RequestFactory & { [OURS]?: RequestFactory };
  return current[OURS] ?? current;
};

let state: 'ours' | 'kafkajs' | undefined;

/** Make kafkajs build Produce requests (v3–v7) with `encodeProduceRequest`. Idempotent; returns
 * 'kafkajs' when it was too late (a Produce request was already built in this process). */
export function installProduceEncoder(): 'ours' | 'kafkajs' {
  if (state) return state;
  // Already ours (this module evaluated again over the same CommonJS cache, e.g. in test workers).
  if ((require.cache[V3_PATH]?.exports as { [OURS]?: unknown } | undefined)?.[OURS]) { patchWriteEncoder(); return (state = 'ours'); }
  // v4–v7 hold the factory they required when loaded: after a first Produce request it is too late.
  if (LATER_PATHS.some((p) => require.cache[p])) return (state = 'kafkajs');
  const original = require(V3_PATH) as RequestFactory;
  require.cache[V3_PATH]!.exports = Object.assign(ourFactory(original), { [OURS]: original });
  patchWriteEncoder();
  return (state = 'ours');
}
