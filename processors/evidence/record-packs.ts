// Clean records in packs (docs/evidence.md "Records and the trace index"): the runner keeps the
// bytes of the clean records a seal logs as one CAS pack per entry bundle (lib/cas.ts putPack: one
// file, one fsync, one directory fsync for up to 256 records) instead of one blob per record (an
// fsync and a directory fsync each). Before the seal's commit record it writes the seal's pack index
// `packs/<from>.json` into the tenant's log directory (immutable, fsynced; canonical JSON):
//   {"from":F,"packs":[{"bundle":N,"pack":"<pack id>","size":S,
//                       "records":[{"index":i,"offset":o,"size":n},...]},...]}
// so every sealed record can be found by its log index: index -> (pack id, offset, size). Pack ids
// are content addresses (lib/cas.ts packId) and every read verifies the record's bytes against the
// sha256 its sealed entry commits to. One pack per entry bundle and seal, records in index order, its
// id scoped to the bundle (packLabel), so a pack lives exactly as long as its entry bundle does under
// retention (prune.ts). Records stored before packs existed (one blob per record, addressed by the
// same sha256) are still read.
import type { CasDigest, FsBlobStore, PackPart } from '../../lib/cas.ts';
import { packRef } from '../../lib/cas.ts';
import { canonicalBytes } from './jcs.ts';
import { sizesFromNames } from './layout.ts';
import type { EvidenceStore } from './store.ts';
import { TILE_WIDTH } from './tiles.ts';

export const packIndexPath = (from: number): string => `packs/${from}.json`;

/** Where the record of entry `index` is in its pack (its sha256 is the entry's: not repeated here). */
export interface PackedRecord { index: number; offset: number; size: number }
export interface PackEntry { bundle: number; pack: string; size: number; records: PackedRecord[] }
export interface PackIndexFile { from: number; packs: PackEntry[] }

/** What the runner needs of the CAS for records (FsBlobStore). */
export type RecordPackStore = Pick<FsBlobStore, 'putPack' | 'getPacked' | 'get' | 'remove'>;

/** Where bundles read a sealed clean record from: by log index and the sha256 its entry commits to. */
export interface RecordSource {
  /** The verified bytes, or undefined when not stored (or pruned). */
  record(tenant: string, index: number, sha256: string): Promise<Buffer | undefined>;
}

const PACK_PUTS = 4;

/**
 * Packs are scoped to their entry bundle (lib/cas.ts packId label): two bundles never share a pack,
 * so retention deletes a pruned bundle's packs without asking whether anything else uses them.
 */
export const packLabel = (bundle: number): string => `stella-evidence-records/bundle/${bundle}`;

interface OpenPack { bundle: number; parts: PackPart[]; at: Map<string, number>; records: { index: number; part: number }[] }

/**
 * The packs of one seal being written. Records are added in index order; when a record of the next
 * entry bundle arrives, the previous bundle's pack is complete and its write starts (at most
 * PACK_PUTS at a time), so the bytes held in memory are about one bundle's, not one seal's.
 */
export class SealPacks {
  private open: OpenPack | undefined;
  private readonly packs: PackEntry[] = [];
  private readonly puts: Promise<unknown>[] = [];
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly tenant: string, private readonly cas: Pick<RecordPackStore, 'putPack'>) {}

  get empty(): boolean { return this.packs.length === 0 && this.open === undefined; }

  /** Ids of the packs of this seal (written or being written): retention must not delete them. */
  packIds(): string[] { return this.packs.map((p) => p.pack); }

  add(index: number, sha256: string, bytes: Uint8Array): void {
    const bundle = Math.floor(index / TILE_WIDTH);
    if (this.open && this.open.bundle !== bundle) this.close();
    const o: OpenPack = (this.open ??= { bundle, parts: [], at: new Map(), records: [] });
    let part = o.at.get(sha256);
    if (part === undefined) { // a record repeated within the bundle is stored once
      part = o.parts.length;
      o.at.set(sha256, part);
      o.parts.push({ digest: `sha256:${sha256}` as CasDigest, bytes });
    }
    o.records.push({ index, part });
  }

  private close(): void {
    const o = this.open;
    if (!o) return;
    this.open = undefined;
    const ref = packRef(o.parts, packLabel(o.bundle));
    this.packs.push({ bundle: o.bundle, pack: ref.pack, size: ref.size,
      records: o.records.map((r) => ({ index: r.index, offset: ref.parts[r.part]!.offset, size: ref.parts[r.part]!.size })) });
    const put = (async () => {
      while (this.running >= PACK_PUTS) await new Promise<void>((r) => this.waiting.push(r));
      this.running++;
      try { await this.cas.putPack(this.tenant, o.parts, packLabel(o.bundle)); } finally { this.running--; this.waiting.shift()?.(); }
    })();
    put.catch(() => undefined); // awaited by finish(); a dropped seal's failed put is not an unhandled rejection
    this.puts.push(put);
  }

  /** Close the last pack, wait until every pack is durable; the pack index file (undefined: no records). */
  async finish(from: number): Promise<Buffer | undefined> {
    this.close();
    await Promise.all(this.puts);
    return this.packs.length ? canonicalBytes({ from, packs: this.packs } satisfies PackIndexFile) : undefined;
  }
}

/** Reads sealed records: through the pack index files, else (stored before packs) a blob per record. */
export class PackedRecords implements RecordSource {
  // Committed index files never change (and only sealed indices are asked for): cached, a few.
  private readonly files = new Map<string, PackIndexFile>();

  constructor(private readonly evidence: EvidenceStore, private readonly cas: Pick<RecordPackStore, 'getPacked' | 'get'>) {}

  /** Where the record at `index` is packed, if a pack index lists it. */
  async locate(tenant: string, index: number): Promise<{ pack: string; record: PackedRecord } | undefined> {
    const froms = sizesFromNames(await this.evidence.list(tenant, 'packs'), '.json');
    let from: number | undefined;
    for (const f of froms) if (f <= index) from = f; else break;
    if (from === undefined) return undefined;
    const key = `${tenant}\u0000${from}`;
    let file = this.files.get(key);
    if (!file) {
      const b = await this.evidence.read(tenant, packIndexPath(from));
      if (!b) return undefined;
      file = JSON.parse(Buffer.from(b).toString('utf8')) as PackIndexFile;
      if (this.files.size >= 64) this.files.delete(this.files.keys().next().value!);
      this.files.set(key, file);
    }
    const bundle = Math.floor(index / TILE_WIDTH);
    for (const p of file.packs) {
      if (p.bundle !== bundle) continue;
      const record = p.records.find((r) => r.index === index);
      if (record) return { pack: p.pack, record };
    }
    return undefined;
  }

  async record(tenant: string, index: number, sha256: string): Promise<Buffer | undefined> {
    // Verified against the entry's sha256: bytes at the indexed place that do not hash to it are
    // refused (CasIntegrityError), whatever the index file says.
    const at = await this.locate(tenant, index);
    if (at) {
      const b = await this.cas.getPacked(tenant, at.pack, at.record.offset, at.record.size, `sha256:${sha256}`);
      if (b) return b;
    }
    return this.cas.get(tenant, `sha256:${sha256}`);
  }
}

/** Pack index files (by `from`) of a tenant, parsed, in order. */
export async function packIndexFiles(evidence: EvidenceStore, tenant: string): Promise<PackIndexFile[]> {
  const out: PackIndexFile[] = [];
  for (const from of sizesFromNames(await evidence.list(tenant, 'packs'), '.json')) {
    const b = await evidence.read(tenant, packIndexPath(from));
    if (b) out.push(JSON.parse(Buffer.from(b).toString('utf8')) as PackIndexFile);
  }
  return out;
}
