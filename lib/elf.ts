// A small, hostile-input-safe ELF reader: ELF32/ELF64, little/big endian. It reads what symbol
// intake and frame resolution need: section headers, program headers, the GNU build-id note and
// the .symtab/.dynsym symbols, plus a sorted address -> symbol index for resolution.
//
// Every read is bounds-checked against the file; every table size is checked against the file
// before it is walked (so huge counts fail fast instead of looping), and every failure is an
// ElfError with a code naming the rule that was broken. No DWARF: symbol names + addresses only.

export const ELF_ERROR_CODES = [
  'ELF_NOT_ELF',          // no \x7fELF magic
  'ELF_UNSUPPORTED',      // class/data/version we do not read
  'ELF_TRUNCATED',        // a header, table or record runs past the end of the file
  'ELF_BAD_HEADER',       // header fields inconsistent (entry sizes, indexes)
  'ELF_SECTION_OVERLAP',  // two sections' file ranges overlap (or overlap the section header table)
  'ELF_BAD_STRING',       // a name offset outside its string table, or no terminating NUL
  'ELF_BAD_SYMTAB',       // symbol table entry size / link to its string table wrong
  'ELF_BAD_NOTE',         // a note record whose sizes do not fit its section/segment
  'ELF_BUILD_ID_CONFLICT', // two different GNU build-id notes in one file
  'ELF_LIMIT',            // more sections/symbols than the configured limit
] as const;
export type ElfErrorCode = (typeof ELF_ERROR_CODES)[number];

export class ElfError extends Error {
  override readonly name = 'ElfError';
  constructor(readonly code: ElfErrorCode, readonly detail: string) { super(`${code}: ${detail}`); }
}

export const SHT = { NULL: 0, PROGBITS: 1, SYMTAB: 2, STRTAB: 3, RELA: 4, HASH: 5, DYNAMIC: 6, NOTE: 7, NOBITS: 8, DYNSYM: 11 } as const;
export const PT = { NULL: 0, LOAD: 1, DYNAMIC: 2, INTERP: 3, NOTE: 4 } as const;
export const NT_GNU_BUILD_ID = 3;
const SHN_UNDEF = 0;
const SHN_LORESERVE = 0xff00;
const SHN_ABS = 0xfff1;
const SHN_XINDEX = 0xffff;

export type SymbolType = 'NOTYPE' | 'OBJECT' | 'FUNC' | 'SECTION' | 'FILE' | 'COMMON' | 'TLS' | 'IFUNC' | 'OTHER';
export type SymbolBind = 'LOCAL' | 'GLOBAL' | 'WEAK' | 'UNIQUE' | 'OTHER';
const SYMBOL_TYPES: Record<number, SymbolType> = { 0: 'NOTYPE', 1: 'OBJECT', 2: 'FUNC', 3: 'SECTION', 4: 'FILE', 5: 'COMMON', 6: 'TLS', 10: 'IFUNC' };
const SYMBOL_BINDS: Record<number, SymbolBind> = { 0: 'LOCAL', 1: 'GLOBAL', 2: 'WEAK', 10: 'UNIQUE' };

export interface ElfSection {
  index: number;
  name: string;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: bigint;
  entsize: number;
}

export interface ElfProgramHeader {
  type: number;
  flags: number;
  offset: number;
  vaddr: bigint;
  filesz: number;
  memsz: bigint;
  align: bigint;
}

export interface ElfSymbol {
  name: string;
  value: bigint;
  size: bigint;
  type: SymbolType;
  bind: SymbolBind;
  /** Section index (SHN_UNDEF = 0 for undefined symbols, 0xfff1 for absolute ones). */
  shndx: number;
  table: 'symtab' | 'dynsym';
}

export interface ElfFile {
  class: 32 | 64;
  endian: 'little' | 'big';
  /** e_type: 1 REL, 2 EXEC, 3 DYN, 4 CORE. */
  type: number;
  machine: number;
  entry: bigint;
  sections: ElfSection[];
  programHeaders: ElfProgramHeader[];
  /** Lowercase hex of the NT_GNU_BUILD_ID note's descriptor, when the file has one. */
  buildId: string | undefined;
  symbols: ElfSymbol[];
}

export interface ElfLimits {
  /** At most this many section headers (default 65,536). */
  maxSections?: number;
  /** At most this many program headers (default 65,536). */
  maxProgramHeaders?: number;
  /** At most this many symbols over .symtab + .dynsym (default 10,000,000). */
  maxSymbols?: number;
  /** At most this many bytes of decoded names, per kind (sections, symbols) (default 256 MiB). */
  maxNameBytes?: number;
}

/** Bounds-checked reads in the file's byte order. */
class Reader {
  private readonly view: DataView;
  constructor(readonly bytes: Uint8Array, readonly little: boolean) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get length(): number { return this.bytes.byteLength; }
  check(off: number, len: number, what: string): void {
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > this.bytes.byteLength) {
      throw new ElfError('ELF_TRUNCATED', `${what} at offset ${off} (+${len}) is past the end of the file (${this.bytes.byteLength} bytes)`);
    }
  }
  u8(off: number, what: string): number { this.check(off, 1, what); return this.view.getUint8(off); }
  u16(off: number, what: string): number { this.check(off, 2, what); return this.view.getUint16(off, this.little); }
  u32(off: number, what: string): number { this.check(off, 4, what); return this.view.getUint32(off, this.little); }
  u64(off: number, what: string): bigint { this.check(off, 8, what); return this.view.getBigUint64(off, this.little); }
}

/** A 64-bit file quantity as a JS number, refusing anything that cannot be a position in this file. */
function fileQuantity(v: bigint, fileLength: number, what: string): number {
  if (v > BigInt(fileLength)) throw new ElfError('ELF_TRUNCATED', `${what} ${v} is past the end of the file (${fileLength} bytes)`);
  return Number(v);
}

/**
 * Names from a string table. gABI: a string table's last byte is NUL, so every name ends inside
 * the table; the total bytes decoded are capped, so a hostile table (one long string referenced
 * at every offset) cannot make the reader quadratic.
 */
class StringTable {
  private decoded = new Map<number, string>();
  constructor(private readonly r: Reader, private readonly table: { index: number; offset: number; size: number }, private readonly budget: { left: number }) {
    if (table.size > 0 && r.bytes[table.offset + table.size - 1] !== 0) {
      throw new ElfError('ELF_BAD_STRING', `string table section ${table.index} does not end with a NUL byte`);
    }
  }
  get(at: number, what: string): string {
    const hit = this.decoded.get(at);
    if (hit !== undefined) return hit;
    if (at >= this.table.size) throw new ElfError('ELF_BAD_STRING', `${what}: name offset ${at} outside its string table (${this.table.size} bytes)`);
    const start = this.table.offset + at;
    const nul = this.r.bytes.indexOf(0, start); // found inside the table: its last byte is NUL
    this.budget.left -= nul - start;
    if (this.budget.left < 0) throw new ElfError('ELF_LIMIT', 'symbol and section names exceed the name byte limit');
    const name = Buffer.from(this.r.bytes.buffer, this.r.bytes.byteOffset + start, nul - start).toString('utf8');
    this.decoded.set(at, name);
    return name;
  }
}

interface Header {
  is64: boolean;
  type: number;
  machine: number;
  entry: bigint;
  phoff: number;
  shoff: number;
  phentsize: number;
  phnum: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

function readHeader(bytes: Uint8Array): { r: Reader; h: Header } {
  if (bytes.byteLength < 16 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    throw new ElfError('ELF_NOT_ELF', 'no ELF magic (\\x7fELF) at the start of the file');
  }
  const cls = bytes[4];
  const data = bytes[5];
  if (cls !== 1 && cls !== 2) throw new ElfError('ELF_UNSUPPORTED', `EI_CLASS ${cls} (want 1 = ELF32 or 2 = ELF64)`);
  if (data !== 1 && data !== 2) throw new ElfError('ELF_UNSUPPORTED', `EI_DATA ${data} (want 1 = little or 2 = big endian)`);
  if (bytes[6] !== 1) throw new ElfError('ELF_UNSUPPORTED', `EI_VERSION ${bytes[6]} (want 1)`);
  const r = new Reader(bytes, data === 1);
  const is64 = cls === 2;
  const ehsize = is64 ? 64 : 52;
  r.check(0, ehsize, 'ELF header');
  const w = is64 ? 8 : 4;
  const word = (off: number, what: string): bigint => (is64 ? r.u64(off, what) : BigInt(r.u32(off, what)));
  const type = r.u16(16, 'e_type');
  const machine = r.u16(18, 'e_machine');
  const entry = word(24, 'e_entry');
  const phoff = fileQuantity(word(24 + w, 'e_phoff'), r.length, 'e_phoff');
  const shoff = fileQuantity(word(24 + 2 * w, 'e_shoff'), r.length, 'e_shoff');
  const base = 24 + 3 * w + 4; // after e_flags
  const h: Header = {
    is64, type, machine, entry, phoff, shoff,
    phentsize: r.u16(base + 2, 'e_phentsize'),
    phnum: r.u16(base + 4, 'e_phnum'),
    shentsize: r.u16(base + 6, 'e_shentsize'),
    shnum: r.u16(base + 8, 'e_shnum'),
    shstrndx: r.u16(base + 10, 'e_shstrndx'),
  };
  return { r, h };
}

function readSectionHeaders(r: Reader, h: Header, limits: Required<ElfLimits>): ElfSection[] {
  if (h.shoff === 0) return [];
  const entsize = h.is64 ? 64 : 40;
  if (h.shentsize < entsize) throw new ElfError('ELF_BAD_HEADER', `e_shentsize ${h.shentsize} smaller than a section header (${entsize})`);
  const raw = (i: number) => {
    const at = h.shoff + i * h.shentsize;
    r.check(at, entsize, `section header ${i}`);
    if (h.is64) {
      return {
        name: r.u32(at, 'sh_name'), type: r.u32(at + 4, 'sh_type'), flags: r.u64(at + 8, 'sh_flags'),
        addr: r.u64(at + 16, 'sh_addr'), offset: r.u64(at + 24, 'sh_offset'), size: r.u64(at + 32, 'sh_size'),
        link: r.u32(at + 40, 'sh_link'), info: r.u32(at + 44, 'sh_info'), addralign: r.u64(at + 48, 'sh_addralign'),
        entsize: r.u64(at + 56, 'sh_entsize'),
      };
    }
    return {
      name: r.u32(at, 'sh_name'), type: r.u32(at + 4, 'sh_type'), flags: BigInt(r.u32(at + 8, 'sh_flags')),
      addr: BigInt(r.u32(at + 12, 'sh_addr')), offset: BigInt(r.u32(at + 16, 'sh_offset')), size: BigInt(r.u32(at + 20, 'sh_size')),
      link: r.u32(at + 24, 'sh_link'), info: r.u32(at + 28, 'sh_info'), addralign: BigInt(r.u32(at + 32, 'sh_addralign')),
      entsize: BigInt(r.u32(at + 36, 'sh_entsize')),
    };
  };
  // Extended numbering (gABI): e_shnum 0 / e_shstrndx SHN_XINDEX keep the real values in section 0.
  const first = raw(0);
  let count = h.shnum;
  if (count === 0) {
    if (first.size > BigInt(limits.maxSections)) throw new ElfError('ELF_LIMIT', `${first.size} section headers (limit ${limits.maxSections})`);
    count = Number(first.size);
  }
  if (count > limits.maxSections) throw new ElfError('ELF_LIMIT', `${count} section headers (limit ${limits.maxSections})`);
  if (count === 0) return [];
  // The whole table must be in the file before anything is walked.
  r.check(h.shoff, (count - 1) * h.shentsize + entsize, `section header table (${count} entries)`);
  const shstrndx = h.shstrndx === SHN_XINDEX ? first.link : h.shstrndx;
  if (shstrndx !== 0 && shstrndx >= count) throw new ElfError('ELF_BAD_HEADER', `e_shstrndx ${shstrndx} but only ${count} sections`);

  const rawAll = Array.from({ length: count }, (_, i) => (i === 0 ? first : raw(i)));
  const sections: ElfSection[] = rawAll.map((s, index) => {
    const inFile = s.type !== SHT.NOBITS && s.type !== SHT.NULL;
    // NOBITS/NULL sections occupy no file bytes: their offset and size are not checked against the file (clamped to safe integers).
    const clamp = (v: bigint) => (v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v));
    const offset = inFile ? fileQuantity(s.offset, r.length, `section ${index} sh_offset`) : clamp(s.offset);
    const size = inFile ? fileQuantity(s.size, r.length, `section ${index} sh_size`) : clamp(s.size);
    if (inFile) r.check(offset, size, `section ${index} contents`);
    if (s.entsize > BigInt(r.length)) throw new ElfError('ELF_BAD_HEADER', `section ${index} sh_entsize ${s.entsize} larger than the file`);
    return { index, name: '', type: s.type, flags: s.flags, addr: s.addr, offset, size, link: s.link, info: s.info, addralign: s.addralign, entsize: Number(s.entsize) };
  });
  checkOverlaps(sections, { offset: h.shoff, size: (count - 1) * h.shentsize + entsize });
  if (shstrndx !== 0) {
    const strtab = sections[shstrndx]!;
    if (strtab.type !== SHT.STRTAB) throw new ElfError('ELF_BAD_HEADER', `e_shstrndx ${shstrndx} is not a string table (type ${strtab.type})`);
    const names = new StringTable(r, strtab, { left: limits.maxNameBytes });
    for (const s of sections) s.name = names.get(rawAll[s.index]!.name, `section ${s.index} name`);
  }
  return sections;
}

/** Sections with file contents must not share bytes with each other or with the section header table. */
function checkOverlaps(sections: ElfSection[], shdrTable: { offset: number; size: number }): void {
  const ranges = sections
    .filter((s) => s.type !== SHT.NOBITS && s.type !== SHT.NULL && s.size > 0)
    .map((s) => ({ start: s.offset, end: s.offset + s.size, what: `section ${s.index}` }));
  ranges.push({ start: shdrTable.offset, end: shdrTable.offset + shdrTable.size, what: 'the section header table' });
  ranges.sort((a, b) => a.start - b.start || a.end - b.end);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1]!;
    const cur = ranges[i]!;
    if (cur.start < prev.end) throw new ElfError('ELF_SECTION_OVERLAP', `${cur.what} [${cur.start}, ${cur.end}) overlaps ${prev.what} [${prev.start}, ${prev.end})`);
  }
}

function readProgramHeaders(r: Reader, h: Header, sections: ElfSection[], limits: Required<ElfLimits>): ElfProgramHeader[] {
  if (h.phoff === 0) return [];
  let count = h.phnum;
  // PN_XNUM: the real count is in section 0's sh_info.
  if (count === 0xffff && sections.length > 0) count = sections[0]!.info;
  if (count === 0) return [];
  if (count > limits.maxProgramHeaders) throw new ElfError('ELF_LIMIT', `${count} program headers (limit ${limits.maxProgramHeaders})`);
  const entsize = h.is64 ? 56 : 32;
  if (h.phentsize < entsize) throw new ElfError('ELF_BAD_HEADER', `e_phentsize ${h.phentsize} smaller than a program header (${entsize})`);
  r.check(h.phoff, (count - 1) * h.phentsize + entsize, `program header table (${count} entries)`);
  const out: ElfProgramHeader[] = [];
  for (let i = 0; i < count; i++) {
    const at = h.phoff + i * h.phentsize;
    const p = h.is64
      ? { type: r.u32(at, 'p_type'), flags: r.u32(at + 4, 'p_flags'), offset: r.u64(at + 8, 'p_offset'), vaddr: r.u64(at + 16, 'p_vaddr'),
        filesz: r.u64(at + 32, 'p_filesz'), memsz: r.u64(at + 40, 'p_memsz'), align: r.u64(at + 48, 'p_align') }
      : { type: r.u32(at, 'p_type'), offset: BigInt(r.u32(at + 4, 'p_offset')), vaddr: BigInt(r.u32(at + 8, 'p_vaddr')),
        filesz: BigInt(r.u32(at + 16, 'p_filesz')), memsz: BigInt(r.u32(at + 20, 'p_memsz')), flags: r.u32(at + 24, 'p_flags'), align: BigInt(r.u32(at + 28, 'p_align')) };
    const offset = fileQuantity(p.offset, r.length, `program header ${i} p_offset`);
    const filesz = fileQuantity(p.filesz, r.length, `program header ${i} p_filesz`);
    r.check(offset, filesz, `program header ${i} contents`);
    out.push({ type: p.type, flags: p.flags, offset, vaddr: p.vaddr, filesz, memsz: p.memsz, align: p.align });
  }
  return out;
}

export interface ElfNote { name: string; type: number; desc: Uint8Array }

/** Walks the note records in [offset, offset+size). Each step advances >= 12 bytes, so this ends. */
function readNotes(r: Reader, offset: number, size: number, align: number, what: string): ElfNote[] {
  const notes: ElfNote[] = [];
  const end = offset + size;
  const pad = (n: number) => Math.ceil(n / align) * align;
  let at = offset;
  while (at < end) {
    if (end - at < 12) throw new ElfError('ELF_BAD_NOTE', `${what}: ${end - at} trailing bytes, less than a note header`);
    const namesz = r.u32(at, 'n_namesz');
    const descsz = r.u32(at + 4, 'n_descsz');
    const type = r.u32(at + 8, 'n_type');
    const nameAt = at + 12;
    if (namesz > end - nameAt) throw new ElfError('ELF_BAD_NOTE', `${what}: note at ${at} (namesz ${namesz}) runs past its end`);
    // Padding is relative to the note's start (with 8-byte alignment the descriptor follows header+name rounded to 8).
    const descAt = at + pad(12 + namesz);
    const next = descAt + pad(descsz);
    if (namesz > end - nameAt || descAt + descsz > end) {
      throw new ElfError('ELF_BAD_NOTE', `${what}: note at ${at} (namesz ${namesz}, descsz ${descsz}) runs past its end`);
    }
    r.check(nameAt, namesz, 'note name');
    r.check(descAt, descsz, 'note descriptor');
    // The name is NUL-terminated and namesz counts the NUL.
    const nameBytes = r.bytes.subarray(nameAt, nameAt + namesz);
    const nul = nameBytes.indexOf(0);
    const name = Buffer.from(nameBytes.buffer, nameBytes.byteOffset, nul < 0 ? namesz : nul).toString('latin1');
    notes.push({ name, type, desc: r.bytes.slice(descAt, descAt + descsz) });
    at = Math.min(next, end);
  }
  return notes;
}

function noteAlign(a: bigint): number { return a === 8n ? 8 : 4; }

function findBuildId(r: Reader, sections: ElfSection[], phdrs: ElfProgramHeader[]): string | undefined {
  const ids = new Set<string>();
  const collect = (notes: ElfNote[]) => {
    for (const n of notes) if (n.name === 'GNU' && n.type === NT_GNU_BUILD_ID && n.desc.length > 0) ids.add(Buffer.from(n.desc).toString('hex'));
  };
  for (const s of sections) if (s.type === SHT.NOTE) collect(readNotes(r, s.offset, s.size, noteAlign(s.addralign), `note section ${s.index} (${s.name})`));
  // Program headers cover the same bytes in a linked file; they are the only source when section headers are stripped.
  for (const p of phdrs) if (p.type === PT.NOTE) collect(readNotes(r, p.offset, p.filesz, noteAlign(p.align), `PT_NOTE segment at ${p.offset}`));
  if (ids.size > 1) throw new ElfError('ELF_BUILD_ID_CONFLICT', `${ids.size} different GNU build-id notes: ${[...ids].join(', ')}`);
  return ids.values().next().value;
}

function readSymbols(r: Reader, h: Header, sections: ElfSection[], limits: Required<ElfLimits>): ElfSymbol[] {
  const out: ElfSymbol[] = [];
  const entsize = h.is64 ? 24 : 16;
  const budget = { left: limits.maxNameBytes };
  for (const s of sections) {
    if (s.type !== SHT.SYMTAB && s.type !== SHT.DYNSYM) continue;
    const table = s.type === SHT.SYMTAB ? 'symtab' : 'dynsym';
    if (s.entsize !== entsize) throw new ElfError('ELF_BAD_SYMTAB', `${s.name || `section ${s.index}`}: sh_entsize ${s.entsize}, want ${entsize}`);
    if (s.size % entsize !== 0) throw new ElfError('ELF_BAD_SYMTAB', `${s.name || `section ${s.index}`}: size ${s.size} not a multiple of ${entsize}`);
    const strtab = sections[s.link];
    if (!strtab || strtab.type !== SHT.STRTAB) throw new ElfError('ELF_BAD_SYMTAB', `${s.name || `section ${s.index}`}: sh_link ${s.link} is not a string table`);
    const names = new StringTable(r, strtab, budget);
    const count = s.size / entsize;
    if (out.length + count > limits.maxSymbols) throw new ElfError('ELF_LIMIT', `more than ${limits.maxSymbols} symbols`);
    // Entry 0 is the reserved null symbol.
    for (let i = 1; i < count; i++) {
      const at = s.offset + i * entsize;
      let nameOff: number, value: bigint, size: bigint, info: number, shndx: number;
      if (h.is64) {
        nameOff = r.u32(at, 'st_name'); info = r.u8(at + 4, 'st_info'); shndx = r.u16(at + 6, 'st_shndx');
        value = r.u64(at + 8, 'st_value'); size = r.u64(at + 16, 'st_size');
      } else {
        nameOff = r.u32(at, 'st_name'); value = BigInt(r.u32(at + 4, 'st_value')); size = BigInt(r.u32(at + 8, 'st_size'));
        info = r.u8(at + 12, 'st_info'); shndx = r.u16(at + 14, 'st_shndx');
      }
      out.push({
        name: names.get(nameOff, `${table} symbol ${i}`),
        value, size,
        type: SYMBOL_TYPES[info & 0xf] ?? 'OTHER',
        bind: SYMBOL_BINDS[info >> 4] ?? 'OTHER',
        shndx, table,
      });
    }
  }
  return out;
}

const DEFAULT_LIMITS: Required<ElfLimits> = { maxSections: 65_536, maxProgramHeaders: 65_536, maxSymbols: 10_000_000, maxNameBytes: 256 * 1024 * 1024 };

/** Parses an ELF file; throws ElfError (never reads out of bounds) on anything malformed. */
export function parseElf(bytes: Uint8Array, limits: ElfLimits = {}): ElfFile {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  const { r, h } = readHeader(bytes);
  const sections = readSectionHeaders(r, h, lim);
  const programHeaders = readProgramHeaders(r, h, sections, lim);
  const buildId = findBuildId(r, sections, programHeaders);
  const symbols = readSymbols(r, h, sections, lim);
  return { class: h.is64 ? 64 : 32, endian: r.little ? 'little' : 'big', type: h.type, machine: h.machine, entry: h.entry, sections, programHeaders, buildId, symbols };
}

/** The GNU build-id (lowercase hex) of an ELF file, or undefined when it has none. */
export function readBuildId(bytes: Uint8Array): string | undefined {
  return parseElf(bytes).buildId;
}

/** True when the bytes start with the ELF magic (cheap sniff before parseElf). */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

export interface ResolvedSymbol {
  name: string;
  /** The symbol's start address. */
  start: bigint;
  size: bigint;
  /** addr - start. */
  offset: bigint;
}

const TYPE_RANK: Partial<Record<SymbolType, number>> = { FUNC: 3, IFUNC: 3, OBJECT: 2, NOTYPE: 1 };
const BIND_RANK: Partial<Record<SymbolBind, number>> = { GLOBAL: 3, WEAK: 2, UNIQUE: 2, LOCAL: 1 };

/**
 * Address -> symbol for resolution: defined code/data symbols flattened into disjoint, sorted
 * ranges (the innermost symbol owns an address; of aliases at the same range the global function
 * wins), looked up by binary search. A size-0 symbol covers only its own address.
 */
export class SymbolIndex {
  private constructor(
    private readonly starts: BigUint64Array,
    private readonly ends: BigUint64Array,
    private readonly owners: Uint32Array,
    private readonly symbols: ElfSymbol[],
  ) {}

  get size(): number { return this.starts.length; }

  static fromSymbols(all: readonly ElfSymbol[], opts: { types?: readonly SymbolType[] } = {}): SymbolIndex {
    const types = new Set<SymbolType>(opts.types ?? ['FUNC', 'IFUNC', 'OBJECT', 'NOTYPE']);
    const syms = all.filter((s) => types.has(s.type) && s.shndx !== SHN_UNDEF && (s.shndx < SHN_LORESERVE || s.shndx === SHN_ABS || s.shndx === SHN_XINDEX) && s.name !== '');
    const MAX = 0xffff_ffff_ffff_ffffn;
    const iv = syms.map((s, i) => {
      const end = s.value + (s.size === 0n ? 1n : s.size);
      return { s: s.value, e: end > MAX ? MAX : end, i, rank: (TYPE_RANK[s.type] ?? 0) * 10 + (BIND_RANK[s.bind] ?? 0) };
    });
    // Start ascending; outer (longer) first; among identical ranges the preferred one last, so it is pushed last and owns the range.
    iv.sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : a.e > b.e ? -1 : a.e < b.e ? 1 : a.rank - b.rank || syms[b.i]!.name.localeCompare(syms[a.i]!.name)));
    const segS: bigint[] = [];
    const segE: bigint[] = [];
    const segO: number[] = [];
    const emit = (s: bigint, e: bigint, owner: number) => {
      if (e <= s) return;
      const n = segS.length;
      if (n > 0 && segO[n - 1] === owner && segE[n - 1] === s) { segE[n - 1] = e; return; }
      segS.push(s); segE.push(e); segO.push(owner);
    };
    const stack: { s: bigint; e: bigint; i: number }[] = [];
    let pos = 0n;
    const flushUntil = (x: bigint) => {
      while (stack.length > 0 && stack[stack.length - 1]!.e <= x) {
        const top = stack.pop()!;
        if (top.e > pos) { emit(pos, top.e, top.i); pos = top.e; }
      }
      if (stack.length > 0 && pos < x) { emit(pos, x, stack[stack.length - 1]!.i); pos = x; }
    };
    for (const it of iv) {
      flushUntil(it.s);
      if (pos < it.s) pos = it.s;
      stack.push(it);
    }
    flushUntil(MAX);
    return new SymbolIndex(BigUint64Array.from(segS), BigUint64Array.from(segE), Uint32Array.from(segO), syms);
  }

  static fromElf(elf: ElfFile, opts: { types?: readonly SymbolType[] } = {}): SymbolIndex {
    // .symtab is a superset of .dynsym when present; use .dynsym only for stripped files.
    const hasSymtab = elf.symbols.some((s) => s.table === 'symtab');
    return SymbolIndex.fromSymbols(hasSymtab ? elf.symbols.filter((s) => s.table === 'symtab') : elf.symbols, opts);
  }

  /** The symbol covering addr, or undefined. */
  lookup(addr: bigint): ResolvedSymbol | undefined {
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! <= addr) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (found < 0 || addr >= this.ends[found]!) return undefined;
    const sym = this.symbols[this.owners[found]!]!;
    return { name: sym.name, start: sym.value, size: sym.size, offset: addr - sym.value };
  }
}
