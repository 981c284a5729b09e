// Frame -> symbol resolution (pure; no I/O): a symbol bundle's bytes become a SymbolIndex once per
// build-id, and each (build-id, address) lookup is cached. docs/provenance.md "Resolution".
import { ElfError, parseElf, SymbolIndex, type ElfFile } from '../../lib/elf.ts';
import { bundleKeysFromBytes } from '../intake/artifacts.ts';

const ET_EXEC = 2;

export interface FrameAddress {
  /** 0x-hex or decimal string, bigint; '' / null when unknown. */
  ip?: string | bigint | null;
  module_offset?: string | bigint | null;
  frame_index: number;
}

const big = (v: string | bigint | null | undefined): bigint | undefined => {
  if (v === null || v === undefined || v === '') return undefined;
  if (typeof v === 'bigint') return v;
  try { return BigInt(v); } catch { return undefined; }
};

/**
 * The ELF virtual address a frame points at. A module offset is ip - load bias (what glibc's
 * backtrace_symbols and the sanitizers print, and what the stella.frames.module_offset convention
 * carries), which is the virtual address itself; a fixed-address executable (ET_EXEC) has load
 * bias 0, so there the ip is the address. A PIE/shared object frame with only an ip cannot be
 * placed (its load bias is unknown): undefined.
 */
export function frameVaddr(elfType: number, f: FrameAddress): bigint | undefined {
  const off = big(f.module_offset);
  if (off !== undefined) return off;
  const ip = big(f.ip);
  return ip !== undefined && elfType === ET_EXEC ? ip : undefined;
}

/** Outer frames hold return addresses (the instruction after the call): look up the call itself. */
export const lookupAddress = (vaddr: bigint, frameIndex: number): bigint => (frameIndex > 0 && vaddr > 0n ? vaddr - 1n : vaddr);

/**
 * `key` names the bundle the symbols came from (`<tenant>/<bundle sha256>`): results are cached per
 * bundle, not per bare build-id, so a tenant's bundle with a forged build-id note can never answer
 * for another tenant's frames.
 */
export interface LoadedSymbols { key: string; buildId: string; elfType: number; index: SymbolIndex; symbolCount: number }

export type LoadFailure = { ok: false; cause: 'SYMBOLS_UNREADABLE' | 'BUILD_ID_MISMATCH'; detail: string };

/** Parses a symbol bundle (ELF, e.g. the objcopy --only-keep-debug file) and checks its build-id is the frame's. */
export function loadElfSymbols(bytes: Uint8Array, expectedBuildId: string, key: string): { ok: true; symbols: LoadedSymbols } | LoadFailure {
  let elf: ElfFile;
  try { elf = parseElf(bytes); } catch (e) {
    if (e instanceof ElfError) return { ok: false, cause: 'SYMBOLS_UNREADABLE', detail: e.message };
    throw e;
  }
  const want = expectedBuildId.toLowerCase();
  if (elf.buildId !== want) {
    return { ok: false, cause: 'BUILD_ID_MISMATCH', detail: `bundle build-id ${elf.buildId ?? '(none)'} is not the frame's ${want}` };
  }
  const index = SymbolIndex.fromElf(elf, { types: ['FUNC', 'IFUNC', 'NOTYPE'] });
  return { ok: true, symbols: { key, buildId: want, elfType: elf.type, index, symbolCount: index.size } };
}

/**
 * A PDB / dSYM bundle: its symbol tables are not read, but its bytes must still carry the key it is
 * registered under (PDB GUID + age, or one slice's LC_UUID), as at intake.
 */
export function loadKeyOnly(kind: 'pdb' | 'dsym', bytes: Uint8Array, symbolKey: string): { ok: true; keyOnly: true } | LoadFailure {
  const r = bundleKeysFromBytes(kind, bytes);
  if (!r.ok) return { ok: false, cause: 'SYMBOLS_UNREADABLE', detail: r.error };
  if (!r.keys.includes(symbolKey)) return { ok: false, cause: 'BUILD_ID_MISMATCH', detail: `the ${kind} bundle's bytes carry ${r.keys.join(', ') || 'no key'}, not ${symbolKey}` };
  return { ok: true, keyOnly: true };
}

export interface Resolved { symbol: string; offset: bigint }

/**
 * Results per (symbol bundle, address) — for a given tenant's bundle that is (build-id, address) — bounded: when full, the oldest build-id's results are dropped
 * (frames of one trace cluster in few binaries, so this keeps the hot ones).
 */
export class ResolutionCache {
  private readonly byBuild = new Map<string, Map<bigint, Resolved | null>>();
  private entries = 0;
  hits = 0;
  misses = 0;
  /** Frames whose symbol came from frames.resolved_symbol (written back earlier): no lookup at all. */
  stored = 0;
  constructor(private readonly maxEntries = 1_000_000) {}

  resolve(symbols: LoadedSymbols, vaddr: bigint): Resolved | null {
    let m = this.byBuild.get(symbols.key);
    if (m) {
      const hit = m.get(vaddr);
      if (hit !== undefined) { this.hits++; return hit; }
    } else {
      this.byBuild.set(symbols.key, (m = new Map()));
    }
    this.misses++;
    const s = symbols.index.lookup(vaddr);
    const r = s ? { symbol: s.name, offset: s.offset } : null;
    if (this.entries >= this.maxEntries) this.evict(symbols.key);
    m.set(vaddr, r);
    this.entries++;
    return r;
  }

  /** A cached result without touching the index (undefined = not cached). */
  peek(key: string, vaddr: bigint): Resolved | null | undefined {
    return this.byBuild.get(key)?.get(vaddr);
  }

  private evict(keep: string): void {
    for (const [k, m] of this.byBuild) {
      if (k === keep) continue;
      this.entries -= m.size;
      this.byBuild.delete(k);
      if (this.entries < this.maxEntries) return;
    }
    const own = this.byBuild.get(keep);
    if (own) { this.entries -= own.size; own.clear(); }
  }
}
