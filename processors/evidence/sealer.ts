// The per-tenant sealer: a state machine {size, root, right edge, pending entries, Kafka high
// water} over an EvidenceStore. `append` queues entries (in the order given: the runner feeds
// Kafka offset order), `seal` writes tiles, entry bundles, the signed checkpoint and the DSSE
// envelope, in that order. The envelope is the commit record: recovery takes the largest sealed
// size that has one, so a crash anywhere leaves either the old or the new state, and re-sealing
// the same entries rewrites byte-identical files (Ed25519 and canonical JSON are deterministic).
import { counter, histogram } from '../../lib/metrics.ts';
import { logger } from '../../lib/log.ts';
import { bytesEqual, sha256Hex, toHex } from './hash.ts';
import { dsseKeyId, IN_TOTO_PAYLOAD_TYPE, serializeEnvelope, signEnvelope, parseEnvelope } from './dsse.ts';
import { keyRotationEntry } from './keys.ts';
import { CHECKPOINT_FILE, checkpointHistoryPath, defaultOrigin, envelopePath, keyRecordPath, type KeyRecord } from './layout.ts';
import { EMPTY_EDGE, edgeRoot, extendEdge, type LogEdge } from './log-edge.ts';
import { EMPTY_ROOT } from './hash.ts';
import { consistencyProofRanges, rangeHash } from './merkle.ts';
import { formatCheckpoint, signNote, type Signer } from './note.ts';
import { LogReader, readTile } from './reader.ts';
import { segmentStatement, statementBytes, type KafkaHighWater, type KafkaRange, type SegmentPredicate } from './statement.ts';
import type { EvidenceStore, StoreFile } from './store.ts';
import { MAX_ENTRY_SIZE, TILE_WIDTH, decodeEntryBundle, entryBundlePath, hashesAtTileLevel, parseTilePath, splitTileHashes, tileInTree, tileNodeSource, tilePath, tilesForRanges } from './tiles.ts';
import { validateTenantId } from '../../lib/tenancy.ts';

const log = logger('evidence');
const sealedEntries = counter('stella_evidence_entries_sealed_total', 'Entries sealed into tenant logs', ['tenant']);
const sealSeconds = histogram('stella_evidence_seal_seconds', 'Time to write one seal (tiles, checkpoint, envelope)');

export interface KafkaPosition { topic: string; partition: number; offset: string | number | bigint }
export interface AppendItem { entry: Uint8Array; kafka?: KafkaPosition }

/** The row the runner writes to ClickHouse `evidence_segments`. */
export interface SegmentRow { tenant: string; from_size: number; to_size: number; root_hex: string; statement_sha256: string; sealed_at: string }

export interface SealerOptions {
  store: EvidenceStore;
  tenant: string;
  /** The key valid for the log's next checkpoints. */
  signer: Signer;
  /** Checkpoint origin = note key name; defaults to stella-telemetry.example/tenants/<tenant>. */
  origin?: string;
}

const tpKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

export class SealerError extends Error {
  override readonly name = 'SealerError';
}

export class Sealer {
  readonly tenant: string;
  readonly origin: string;
  private signer: Signer;
  private edge: LogEdge;
  private rootHash: Uint8Array;
  private pending: AppendItem[] = [];
  private sealedHighWater: Map<string, { topic: string; partition: number; offset: bigint }>;
  private pendingHighWater = new Map<string, { topic: string; partition: number; offset: bigint }>();
  private keyRecorded: boolean;

  private constructor(private readonly store: EvidenceStore, opts: SealerOptions, edge: LogEdge, root: Uint8Array,
    highWater: KafkaHighWater[], keyRecorded: boolean) {
    this.tenant = opts.tenant;
    this.origin = opts.origin ?? defaultOrigin(opts.tenant);
    this.signer = opts.signer;
    if (opts.signer.name !== this.origin) throw new SealerError(`signing key name ${opts.signer.name} must equal the checkpoint origin ${this.origin}`);
    this.edge = edge;
    this.rootHash = root;
    this.sealedHighWater = new Map(highWater.map((h) => [tpKey(h.topic, h.partition), { topic: h.topic, partition: h.partition, offset: BigInt(h.offset) }]));
    this.keyRecorded = keyRecorded;
  }

  get size(): number { return this.edge.size; }
  get root(): Uint8Array { return this.rootHash; }
  get pendingCount(): number { return this.pending.length; }
  get currentKey(): Signer { return this.signer; }

  /** Highest sealed offset per topic-partition: the runner may commit these to Kafka. */
  highWater(): KafkaHighWater[] {
    return [...this.sealedHighWater.values()].map((h) => ({ topic: h.topic, partition: h.partition, offset: h.offset.toString() }))
      .sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
  }

  /**
   * Rebuild the sealer from the store: the largest sealed size with an envelope, its right-edge
   * tiles and partial entry bundle (root re-computed and checked against the checkpoint), the
   * Kafka high water from its statement, and the key schedule. First removes what an interrupted
   * seal left beyond that commit record; rolls `checkpoint` forward if a crash came between the
   * envelope and the checkpoint pointer.
   */
  static async recover(opts: SealerOptions): Promise<Sealer> {
    const bad = validateTenantId(opts.tenant);
    if (bad) throw new SealerError(bad);
    const { store, tenant } = opts;
    const reader = new LogReader(store, tenant);
    const sizes = await reader.sealedSizes();
    const size = sizes[sizes.length - 1] ?? 0;
    // Files an interrupted seal wrote beyond the last commit record are not sealed: remove them so
    // the re-seal may carry the same records in another order (e.g. another partition interleave).
    const keyRecords = new Map<string, KeyRecord>();
    for (const n of await store.list(tenant, 'keys')) {
      const b = await store.read(tenant, `keys/${n}`);
      if (b) keyRecords.set(`keys/${n}`, JSON.parse(Buffer.from(b).toString('utf8')) as KeyRecord);
    }
    const removed = (await store.removeIncompleteWrites?.(tenant, (f) => isCommittedFile(f, size, keyRecords))) ?? [];
    if (removed.length > 0) log.warn({ tenant, size, removed: removed.length }, 'removed files of an interrupted seal');
    if (size === 0) {
      const keyRecorded = (await store.read(tenant, keyRecordPath(opts.signer.keyIdHex))) !== undefined;
      return new Sealer(store, opts, EMPTY_EDGE, EMPTY_ROOT, [], keyRecorded);
    }
    const cp = await reader.checkpointAt(size);
    if (!cp) throw new SealerError(`tenant ${tenant}: envelope for size ${size} exists but checkpoints/${size} does not`);
    const edge = await loadEdge(store, tenant, size);
    const root = edgeRoot(edge);
    if (!bytesEqual(root, cp.checkpoint.root)) throw new SealerError(`tenant ${tenant}: tiles give root ${toHex(root)} for size ${size}, checkpoint says ${toHex(cp.checkpoint.root)}`);
    const env = parseEnvelope((await reader.envelopeAt(size))!);
    const predicate = (JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as { predicate: SegmentPredicate }).predicate;
    const schedule = await reader.keySchedule(size);
    const current = schedule[schedule.length - 1]!;
    if (current.verifier.verifierKey !== opts.signer.verifierKey) {
      throw new SealerError(`tenant ${tenant}: the log's current key is ${current.verifier.name}+${current.verifier.keyIdHex}, configured ${opts.signer.name}+${opts.signer.keyIdHex}; rotate with rotateKey() while holding the current key`);
    }
    const latest = await store.read(tenant, CHECKPOINT_FILE);
    if (!latest || !bytesEqual(latest, cp.bytes)) await store.writeMutable(tenant, CHECKPOINT_FILE, cp.bytes);
    log.info({ tenant, size }, 'evidence sealer recovered');
    return new Sealer(store, opts, edge, root, predicate.kafka_high_water, true);
  }

  /**
   * Queue entries for the next seal. Items whose Kafka offset is at or below the partition's high
   * water (sealed or already queued) are skipped: that is what makes re-delivery after a crash
   * between seal and offset commit harmless.
   */
  append(items: readonly AppendItem[]): { accepted: number; skipped: number; indices: number[] } {
    let accepted = 0;
    let skipped = 0;
    // Log index each item will have once sealed (-1 when skipped): the runner records
    // event_id → index for inclusion-proof lookups.
    const indices = new Array<number>(items.length);
    // Validate the whole batch first so a refused batch leaves nothing half-queued.
    for (const item of items) {
      if (item.entry.length > MAX_ENTRY_SIZE) throw new SealerError(`entry of ${item.entry.length} bytes exceeds the ${MAX_ENTRY_SIZE}-byte limit`);
    }
    for (let n = 0; n < items.length; n++) {
      const item = items[n]!;
      indices[n] = -1;
      if (item.kafka) {
        const k = tpKey(item.kafka.topic, item.kafka.partition);
        const off = BigInt(item.kafka.offset);
        const hw = this.pendingHighWater.get(k)?.offset ?? this.sealedHighWater.get(k)?.offset;
        if (hw !== undefined && off <= hw) { skipped++; continue; }
        this.pendingHighWater.set(k, { topic: item.kafka.topic, partition: item.kafka.partition, offset: off });
      }
      indices[n] = this.edge.size + this.pending.length;
      this.pending.push(item);
      accepted++;
    }
    return { accepted, skipped, indices };
  }

  /** Seal the queued entries; undefined when there is nothing to seal. */
  async seal(sealedAt: Date | string): Promise<SegmentRow | undefined> {
    if (this.pending.length === 0) return undefined;
    return this.sealWith(this.signer, sealedAt, []);
  }

  /**
   * Rotate the signing key: a rotation entry naming both keys goes in as the last entry of a seal
   * signed by the current key; checkpoints after it are signed by `next`.
   */
  async rotateKey(next: Signer, sealedAt: Date | string): Promise<SegmentRow> {
    if (next.name !== this.origin) throw new SealerError(`new key name ${next.name} must equal the checkpoint origin ${this.origin}`);
    const index = this.size + this.pending.length;
    this.pending.push({ entry: keyRotationEntry(this.signer, next, index + 2) });
    const record: KeyRecord = { verifier_key: next.verifierKey, valid_from_size: index + 2, rotation_index: index };
    const row = await this.sealWith(this.signer, sealedAt, [{ path: keyRecordPath(next.keyIdHex), bytes: Buffer.from(`${JSON.stringify(record)}\n`) }]);
    this.signer = next;
    log.info({ tenant: this.tenant, key_id: next.keyIdHex, valid_from_size: index + 2 }, 'evidence signing key rotated');
    return row;
  }

  private async sealWith(signer: Signer, sealedAt: Date | string, extraFiles: StoreFile[]): Promise<SegmentRow> {
    const started = process.hrtime.bigint();
    const sealedAtIso = typeof sealedAt === 'string' ? new Date(sealedAt).toISOString() : sealedAt.toISOString();
    const items = this.pending;
    const oldSize = this.edge.size;
    const oldRoot = this.rootHash;
    const ext = extendEdge(this.edge, items.map((i) => i.entry));
    const newSize = ext.edge.size;

    // Consistency proof old → new from tiles: the ones just built, else the stored ones.
    const built = new Map(ext.files.map((f) => [f.path, f.bytes]));
    const ranges = consistencyProofRanges(oldSize, newSize);
    const needed = tilesForRanges(ranges, newSize);
    const loaded = new Map<string, Uint8Array>();
    await Promise.all(needed.map(async (t) => {
      const p = tilePath(t);
      const b = built.get(p) ?? (await readTile(this.store, this.tenant, t));
      if (!b) throw new SealerError(`tile ${p} needed for the consistency proof is missing`);
      loaded.set(p, b);
    }));
    const node = tileNodeSource(newSize, (t) => loaded.get(tilePath(t)));
    const proof = ranges.map(([a, b]) => rangeHash(a, b, node));

    const note = signNote(formatCheckpoint({ origin: this.origin, size: newSize, root: ext.root, extensions: [] }), [signer]);
    const noteBytes = Buffer.from(note, 'utf8');
    const kafka = kafkaRanges(items);
    const highWater = new Map(this.sealedHighWater);
    for (const [k, v] of this.pendingHighWater) highWater.set(k, v);
    const predicate: SegmentPredicate = {
      tenant: this.tenant,
      origin: this.origin,
      previous: { size: oldSize, root: toHex(oldRoot) },
      new: { size: newSize, root: toHex(ext.root) },
      consistency_proof: proof.map(toHex),
      kafka,
      kafka_high_water: [...highWater.values()].map((h) => ({ topic: h.topic, partition: h.partition, offset: h.offset.toString() }))
        .sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition)),
      signing_key: { name: signer.name, key_id: signer.keyIdHex, verifier_key: signer.verifierKey },
      sealed_at: sealedAtIso,
    };
    const statement = statementBytes(segmentStatement(noteBytes, predicate));
    const envelope = serializeEnvelope(signEnvelope(IN_TOTO_PAYLOAD_TYPE, statement, signer));

    // Write order: tiles and bundles → checkpoint history (+ key records) → envelope (commit) → pointer.
    await this.store.writeImmutableMany(this.tenant, ext.files);
    const history: StoreFile[] = [{ path: checkpointHistoryPath(newSize), bytes: noteBytes }, ...extraFiles];
    if (!this.keyRecorded) {
      const genesis: KeyRecord = { verifier_key: signer.verifierKey, valid_from_size: 1, rotation_index: null };
      history.push({ path: keyRecordPath(signer.keyIdHex), bytes: Buffer.from(`${JSON.stringify(genesis)}\n`) });
    }
    await this.store.writeImmutableMany(this.tenant, history);
    await this.store.writeImmutable(this.tenant, envelopePath(newSize), envelope);
    await this.store.writeMutable(this.tenant, CHECKPOINT_FILE, noteBytes);

    this.keyRecorded = true;
    this.edge = ext.edge;
    this.rootHash = ext.root;
    this.pending = [];
    this.sealedHighWater = highWater;
    this.pendingHighWater = new Map();
    sealedEntries.inc({ tenant: this.tenant }, items.length);
    sealSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    log.debug({ tenant: this.tenant, from_size: oldSize, to_size: newSize, key_id: dsseKeyId(signer) }, 'evidence segment sealed');
    return { tenant: this.tenant, from_size: oldSize, to_size: newSize, root_hex: toHex(ext.root), statement_sha256: sha256Hex(statement), sealed_at: sealedAtIso };
  }
}

/** The Kafka offsets a segment's items cover, per topic-partition (the statement's `kafka`). */
export function kafkaRanges(items: readonly AppendItem[]): KafkaRange[] {
  const m = new Map<string, { topic: string; partition: number; from: bigint; to: bigint }>();
  for (const i of items) {
    if (!i.kafka) continue;
    const k = tpKey(i.kafka.topic, i.kafka.partition);
    const off = BigInt(i.kafka.offset);
    const r = m.get(k);
    if (!r) m.set(k, { topic: i.kafka.topic, partition: i.kafka.partition, from: off, to: off });
    else { if (off < r.from) r.from = off; if (off > r.to) r.to = off; }
  }
  return [...m.values()].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition))
    .map((r) => ({ topic: r.topic, partition: r.partition, fromOffset: r.from.toString(), toOffset: r.to.toString() }));
}

/** The right edge of a stored tree of `size`: partial tiles per level and the partial entry bundle. */
export async function loadEdge(store: EvidenceStore, tenant: string, size: number): Promise<LogEdge> {
  const partialTiles: Uint8Array[][] = [];
  for (let level = 0; hashesAtTileLevel(size, level) > 0; level++) {
    const count = hashesAtTileLevel(size, level);
    const width = count % TILE_WIDTH;
    if (width === 0) { partialTiles.push([]); continue; }
    const t = tileInTree(level, Math.floor(count / TILE_WIDTH), size)!;
    const b = await readTile(store, tenant, t);
    if (!b) throw new SealerError(`tenant ${tenant}: tile ${tilePath(t)} is missing`);
    partialTiles.push(splitTileHashes(b.subarray(0, width * 32), width).map((h) => Buffer.from(h)));
  }
  let partialEntries: Uint8Array[] = [];
  const w = size % TILE_WIDTH;
  if (w > 0) {
    const b = await store.read(tenant, entryBundlePath(Math.floor(size / TILE_WIDTH), w));
    if (!b) throw new SealerError(`tenant ${tenant}: entry bundle ${entryBundlePath(Math.floor(size / TILE_WIDTH), w)} is missing`);
    partialEntries = decodeEntryBundle(b);
    if (partialEntries.length !== w) throw new SealerError(`tenant ${tenant}: partial entry bundle holds ${partialEntries.length} entries, expected ${w}`);
  }
  return { size, partialTiles, partialEntries };
}

/** Whether a store file belongs to the log as committed at `size` (or to an earlier committed size). */
export function isCommittedFile(file: string, size: number, keyRecords: ReadonlyMap<string, KeyRecord>): boolean {
  const t = parseTilePath(file);
  if (t) return t.index * TILE_WIDTH + t.width <= (t.entries ? size : hashesAtTileLevel(size, t.level));
  const cp = /^checkpoints\/(0|[1-9]\d*)$/.exec(file);
  if (cp) return Number(cp[1]) <= size;
  // A seal's record pack index (record-packs.ts) is written before its commit record, named by the seal's first index.
  const pk = /^packs\/(0|[1-9]\d*)\.json$/.exec(file);
  if (pk) return Number(pk[1]) < size;
  const key = keyRecords.get(file);
  if (key) return size > 0 && (key.rotation_index === null || key.rotation_index < size);
  return true; // anything else is not ours to judge
}
