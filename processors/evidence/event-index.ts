// event_id → log index, for inclusion-proof lookups and timeline-event de-duplication.
//
// After each seal the runner writes `index/<to_size>.json` (immutable, canonical JSON
// `{"from":F,"to":T,"events":{"<event_id>":<index>,...}}`) for the entries [F, T) that carry an
// `event_id`. The file is derived from sealed entries only, so rewriting it after a crash gives the
// same bytes. Readers load the files in order and scan any sealed tail no file covers yet (a crash
// between a seal and its index write), so the index never misses a sealed entry.
import { canonicalBytes } from './jcs.ts';
import { LogReader } from './reader.ts';
import type { EvidenceStore } from './store.ts';
import { sizesFromNames } from './layout.ts';

export const indexPath = (toSize: number): string => `index/${toSize}.json`;

export interface IndexFile { from: number; to: number; events: Record<string, number> }

/** The event_id of an entry, when it has one (timeline events and their oversize summaries). */
export function entryEventId(entry: Uint8Array): string | undefined {
  // Cheap pre-check: clean-batch and key-rotation entries never contain the key.
  if (Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength).indexOf('"event_id":') < 0) return undefined;
  try {
    const v = JSON.parse(Buffer.from(entry).toString('utf8')) as { event_id?: unknown };
    return typeof v.event_id === 'string' ? v.event_id : undefined;
  } catch { return undefined; }
}

export class EventIndex {
  readonly events = new Map<string, number>();
  /** Entries [0, indexedSize) are in `events`. */
  indexedSize = 0;

  constructor(private readonly store: EvidenceStore, private readonly tenant: string) {}

  /** Load index files and scan the sealed tail up to `sealedSize`. Returns the sizes whose files were missing. */
  async refresh(sealedSize: number, reader = new LogReader(this.store, this.tenant)): Promise<void> {
    if (sealedSize <= this.indexedSize) return;
    const sizes = sizesFromNames(await this.store.list(this.tenant, 'index'), '.json').filter((s) => s > this.indexedSize && s <= sealedSize);
    for (const s of sizes) {
      const b = await this.store.read(this.tenant, indexPath(s));
      if (!b) continue;
      const f = JSON.parse(Buffer.from(b).toString('utf8')) as IndexFile;
      if (f.from !== this.indexedSize) break; // a gap: scan from here instead
      for (const [id, i] of Object.entries(f.events)) this.events.set(id, i);
      this.indexedSize = f.to;
    }
    for (let i = this.indexedSize; i < sealedSize; i++) {
      const id = entryEventId(await reader.entry(i, sealedSize));
      if (id !== undefined && !this.events.has(id)) this.events.set(id, i);
    }
    this.indexedSize = Math.max(this.indexedSize, sealedSize);
  }
}

/** The index file for entries [from, to) given their event ids. */
export function indexFileBytes(from: number, to: number, events: Iterable<[string, number]>): Buffer {
  const e: Record<string, number> = {};
  for (const [id, i] of events) if (i >= from && i < to) e[id] = i;
  return canonicalBytes({ from, to, events: e } satisfies IndexFile);
}
