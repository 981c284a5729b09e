// Mach-O UUID reader (docs/provenance.md "PDB and Mach-O readers"): the LC_UUID of each
// architecture slice of a thin or universal (fat) Mach-O file, e.g. the DWARF file inside a dSYM
// bundle (Foo.dSYM/Contents/Resources/DWARF/Foo). Formats: <mach-o/loader.h> (mach_header[_64],
// load_command, uuid_command) and <mach-o/fat.h> (fat_header, fat_arch[_64], big-endian). Symbol
// tables (LC_SYMTAB) are not read. Every read is bounds-checked; failures are MachOError with a code.

export type MachOErrorCode =
  | 'MACHO_NOT_MACHO'      // no Mach-O or fat magic
  | 'MACHO_TRUNCATED'      // a header, load command or slice runs past the end of its bytes
  | 'MACHO_BAD_HEADER'     // a fat header / slice / load command that breaks the format's rules
  | 'MACHO_UUID_CONFLICT'  // two different LC_UUID commands in one slice
  | 'MACHO_LIMIT';         // more slices or load commands than allowed

export class MachOError extends Error {
  constructor(readonly code: MachOErrorCode, message: string) { super(`${code}: ${message}`); this.name = 'MachOError'; }
}

const MH_MAGIC = 0xfeedface;
const MH_MAGIC_64 = 0xfeedfacf;
const FAT_MAGIC = 0xcafebabe;
const FAT_MAGIC_64 = 0xcafebabf;
const LC_UUID = 0x1b;
/** Real universal files carry a handful of slices; a Java class file (also 0xcafebabe) has its version here. */
export const MAX_FAT_ARCHS = 32;
export const MAX_LOAD_COMMANDS = 65_536;

const CPU_NAMES: Record<number, string> = {
  7: 'i386', 0x01000007: 'x86_64', 12: 'arm', 0x0100000c: 'arm64', 0x0200000c: 'arm64_32', 18: 'ppc', 0x01000012: 'ppc64',
};

export interface MachOSlice {
  cputype: number;
  cpusubtype: number;
  /** i386, x86_64, arm, arm64, arm64e, arm64_32, ppc, ppc64, else cpu<type>. */
  arch: string;
  /** mh_filetype (0xa = MH_DSYM, 2 = MH_EXECUTE, 6 = MH_DYLIB, ...). */
  filetype: number;
  is64: boolean;
  bigEndian: boolean;
  /** Where the slice starts in the file (0 for a thin file). */
  offset: number;
  size: number;
  /** LC_UUID as 32 lowercase hex digits (the bytes in order), undefined when the slice has none. */
  uuid: string | undefined;
}

export interface MachOFile { fat: boolean; slices: MachOSlice[] }

const archName = (cputype: number, cpusubtype: number): string =>
  cputype === 0x0100000c && (cpusubtype & 0xffffff) === 2 ? 'arm64e' : CPU_NAMES[cputype] ?? `cpu${cputype}`;

export function isMachO(b: Uint8Array): boolean {
  if (b.length < 4) return false;
  const v = Buffer.from(b.buffer, b.byteOffset, 4);
  const le = v.readUInt32LE(0);
  const be = v.readUInt32BE(0);
  return le === MH_MAGIC || le === MH_MAGIC_64 || be === MH_MAGIC || be === MH_MAGIC_64 || be === FAT_MAGIC || be === FAT_MAGIC_64;
}

/** One thin Mach-O image at `[offset, offset + size)` of `buf`. */
function readSlice(buf: Buffer, offset: number, size: number, expectCpu?: number): MachOSlice {
  const img = buf.subarray(offset, offset + size);
  if (img.length < 4) throw new MachOError('MACHO_TRUNCATED', `the Mach-O header at offset ${offset} is cut short`);
  const le = img.readUInt32LE(0);
  const be = img.readUInt32BE(0);
  let bigEndian: boolean;
  let is64: boolean;
  if (le === MH_MAGIC || le === MH_MAGIC_64) { bigEndian = false; is64 = le === MH_MAGIC_64; }
  else if (be === MH_MAGIC || be === MH_MAGIC_64) { bigEndian = true; is64 = be === MH_MAGIC_64; }
  else if (be === FAT_MAGIC || be === FAT_MAGIC_64) throw new MachOError('MACHO_BAD_HEADER', `a universal file nested in a slice at offset ${offset}`);
  else throw new MachOError('MACHO_NOT_MACHO', offset === 0 ? 'no Mach-O magic' : `the slice at offset ${offset} has no Mach-O magic`);
  const u32 = (o: number) => (bigEndian ? img.readUInt32BE(o) : img.readUInt32LE(o));
  const i32 = (o: number) => (bigEndian ? img.readInt32BE(o) : img.readInt32LE(o));
  const headerSize = is64 ? 32 : 28;
  if (img.length < headerSize) throw new MachOError('MACHO_TRUNCATED', `the Mach-O header at offset ${offset} is cut short`);
  const cputype = i32(4) >>> 0;
  const cpusubtype = i32(8) >>> 0;
  const filetype = u32(12);
  const ncmds = u32(16);
  const sizeofcmds = u32(20);
  if (expectCpu !== undefined && cputype !== expectCpu) {
    throw new MachOError('MACHO_BAD_HEADER', `the slice at offset ${offset} is cputype ${cputype}, its fat_arch says ${expectCpu}`);
  }
  if (ncmds > MAX_LOAD_COMMANDS) throw new MachOError('MACHO_LIMIT', `${ncmds} load commands (at most ${MAX_LOAD_COMMANDS})`);
  if (headerSize + sizeofcmds > img.length) throw new MachOError('MACHO_TRUNCATED', `sizeofcmds ${sizeofcmds} runs past the end of the image`);
  // Each command is at least 8 bytes: a count that cannot fit is refused before walking.
  if (ncmds * 8 > sizeofcmds) throw new MachOError('MACHO_BAD_HEADER', `${ncmds} load commands do not fit sizeofcmds ${sizeofcmds}`);
  let uuid: string | undefined;
  let at = headerSize;
  const end = headerSize + sizeofcmds;
  for (let i = 0; i < ncmds; i++) {
    if (at + 8 > end) throw new MachOError('MACHO_TRUNCATED', `load command ${i} runs past sizeofcmds`);
    const cmd = u32(at);
    const cmdsize = u32(at + 4);
    if (cmdsize < 8 || at + cmdsize > end) throw new MachOError('MACHO_BAD_HEADER', `load command ${i} has size ${cmdsize} (at least 8, within sizeofcmds)`);
    if (cmd === LC_UUID) {
      if (cmdsize !== 24) throw new MachOError('MACHO_BAD_HEADER', `LC_UUID has cmdsize ${cmdsize}, not 24`);
      const u = img.subarray(at + 8, at + 24).toString('hex');
      if (uuid !== undefined && uuid !== u) throw new MachOError('MACHO_UUID_CONFLICT', 'two different LC_UUID commands in one image');
      uuid = u;
    }
    at += cmdsize;
  }
  return { cputype, cpusubtype, arch: archName(cputype, cpusubtype), filetype, is64, bigEndian, offset, size: img.length, uuid };
}

/** Reads the slices (and each one's LC_UUID) of a thin or universal Mach-O file. */
export function parseMachO(input: Uint8Array): MachOFile {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length < 4) throw new MachOError('MACHO_NOT_MACHO', 'shorter than a magic number');
  const be = buf.readUInt32BE(0);
  if (be !== FAT_MAGIC && be !== FAT_MAGIC_64) return { fat: false, slices: [readSlice(buf, 0, buf.length)] };
  if (buf.length < 8) throw new MachOError('MACHO_TRUNCATED', 'the fat header is cut short');
  const nfat = buf.readUInt32BE(4);
  if (nfat === 0) throw new MachOError('MACHO_BAD_HEADER', 'a universal file with no slices');
  if (nfat > MAX_FAT_ARCHS) throw new MachOError('MACHO_LIMIT', `${nfat} slices (at most ${MAX_FAT_ARCHS})`);
  const entry = be === FAT_MAGIC_64 ? 32 : 20;
  if (8 + nfat * entry > buf.length) throw new MachOError('MACHO_TRUNCATED', 'the fat_arch table runs past the end of the file');
  const slices: MachOSlice[] = [];
  const spans: [number, number][] = [];
  for (let i = 0; i < nfat; i++) {
    const e = 8 + i * entry;
    const cputype = buf.readUInt32BE(e);
    const offset = entry === 32 ? Number(buf.readBigUInt64BE(e + 8)) : buf.readUInt32BE(e + 8);
    const size = entry === 32 ? Number(buf.readBigUInt64BE(e + 16)) : buf.readUInt32BE(e + 12);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || offset + size > buf.length) {
      throw new MachOError('MACHO_TRUNCATED', `slice ${i} (offset ${offset}, size ${size}) runs past the end of the file`);
    }
    if (offset < 8 + nfat * entry) throw new MachOError('MACHO_BAD_HEADER', `slice ${i} starts inside the fat header`);
    for (const [o, s] of spans) if (offset < o + s && o < offset + size) throw new MachOError('MACHO_BAD_HEADER', `slice ${i} overlaps another slice`);
    spans.push([offset, size]);
    slices.push(readSlice(buf, offset, size, cputype));
  }
  return { fat: true, slices };
}
