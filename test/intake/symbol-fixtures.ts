// PDB and Mach-O fixtures for the symbol-key tests, made two independent ways:
//  - by LLVM's own writers (Debian package `llvm`): `llvm-pdbutil yaml2pdb` and `yaml2obj`, read
//    back by LLVM's readers (`llvm-pdbutil dump --summary`, `pdb2yaml --dbi-stream`,
//    `llvm-dwarfdump --uuid`) as the oracle;
//  - by small writers here, from the public format descriptions (LLVM docs/PDB/MsfFile.rst and
//    PdbStream.rst, DbiStream.rst; <mach-o/loader.h>, <mach-o/fat.h>), whose output the same LLVM
//    readers must accept: so lib/pdb.ts and lib/macho.ts are not only checked against these writers.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-symfx-'));
let seq = 0;
const tmp = (name: string) => path.join(dir, `${seq++}-${name}`);

// ------------------------------------------------------------------ PDB

export interface PdbSpec { guid: string; infoAge: number; dbiAge?: number; signature?: number }

/** A PDB written by llvm-pdbutil yaml2pdb (block size 4096); without dbiAge it has no DBI stream... unless LLVM adds one (it does not). */
export function pdbFromLlvm(spec: PdbSpec): { file: string; bytes: Buffer } {
  const yaml = [
    '---', 'MSF:', '  SuperBlock:', '    BlockSize: 4096', '    FreeBlockMap: 2', '    NumBlocks: 0', '    NumDirectoryBytes: 0', '    Unknown1: 0',
    '    BlockMapAddr: 0', '  NumDirectoryBlocks: 0', '  DirectoryBlocks: []', '  NumStreams: 0', '  FileSize: 0',
    'PdbStream:', `  Age: ${spec.infoAge}`, `  Guid: '{${spec.guid}}'`, `  Signature: ${spec.signature ?? 1234567}`, '  Features: [ VC140 ]', '  Version: VC70',
    ...(spec.dbiAge === undefined ? [] : ['DbiStream:', '  VerHeader: V70', `  Age: ${spec.dbiAge}`, '  BuildNumber: 36363', '  PdbDllVersion: 0',
      '  PdbDllRbld: 0', '  Flags: 0', '  MachineType: Amd64']),
    '',
  ].join('\n');
  const y = tmp('pdb.yaml');
  const file = tmp('x.pdb');
  writeFileSync(y, yaml);
  execFileSync('llvm-pdbutil', ['yaml2pdb', `--pdb=${file}`, y]);
  return { file, bytes: readFileSync(file) };
}

/** What LLVM reads from a PDB: the info stream's GUID, age, signature, and the DBI stream's age. */
export function llvmPdbFacts(file: string): { guid: string; infoAge: number; signature: number; dbiAge: number | undefined } {
  const summary = execFileSync('llvm-pdbutil', ['dump', '--summary', file], { encoding: 'utf8' });
  const field = (name: string) => new RegExp(`^\\s*${name}: (.*)$`, 'm').exec(summary)?.[1]?.trim();
  const yaml = execFileSync('llvm-pdbutil', ['pdb2yaml', '--dbi-stream', file], { encoding: 'utf8' });
  const dbi = /^DbiStream:\n(?:\s+.*\n)*?\s+Age:\s+(\d+)/m.exec(yaml);
  return { guid: field('GUID')!.replace(/[{}]/g, ''), infoAge: Number(field('Age')), signature: Number(field('Signature')), dbiAge: dbi ? Number(dbi[1]) : undefined };
}

/** The 16 GUID bytes (Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, Data4 as bytes) of "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX". */
export function guidBytes(guid: string): Buffer {
  const h = guid.replace(/-/g, '');
  const b = Buffer.alloc(16);
  b.writeUInt32LE(parseInt(h.slice(0, 8), 16), 0);
  b.writeUInt16LE(parseInt(h.slice(8, 12), 16), 4);
  b.writeUInt16LE(parseInt(h.slice(12, 16), 16), 6);
  Buffer.from(h.slice(16), 'hex').copy(b, 8);
  return b;
}

/** PDB info stream (PdbStream.rst): header, then an empty named-stream map and the VC140 feature code. */
export function infoStream(spec: PdbSpec): Buffer {
  const h = Buffer.alloc(28);
  h.writeUInt32LE(20000404, 0); // VC70
  h.writeUInt32LE(spec.signature ?? 1234567, 4);
  h.writeUInt32LE(spec.infoAge, 8);
  guidBytes(spec.guid).copy(h, 12);
  // Named stream map: string buffer size 0; hash table size 0, capacity 1, present bit vector (1 word: 0), deleted (0 words).
  const map = Buffer.alloc(4 + 4 * 5);
  map.writeUInt32LE(0, 0); map.writeUInt32LE(0, 4); map.writeUInt32LE(1, 8); map.writeUInt32LE(1, 12); map.writeUInt32LE(0, 16); map.writeUInt32LE(0, 20);
  const features = Buffer.alloc(4); features.writeUInt32LE(20140508, 0); // VC140
  return Buffer.concat([h, map, features]);
}

/** A DBI stream (DbiStream.rst): the 64-byte header and an empty file info substream (0 modules, 0 source files). */
export function dbiStream(age: number): Buffer {
  const b = Buffer.alloc(64 + 4);
  b.writeInt32LE(-1, 0);
  b.writeUInt32LE(19990903, 4); // V70
  b.writeUInt32LE(age, 8);
  b.writeUInt16LE(0xffff, 12); b.writeUInt16LE(0xffff, 16); b.writeUInt16LE(0xffff, 20); // no global/public/symrec streams
  b.writeInt32LE(4, 36); // SourceInfoSize (the file info substream)
  b.writeUInt16LE(0x8664, 58); // machine: AMD64
  return b;
}

/**
 * An MSF 7.00 file written from MsfFile.rst: superblock in block 0, free block maps in blocks 1-2,
 * the block map in block 3, then the stream directory and the streams, block by block. `streams[i]`
 * null is a nil stream (size 0xFFFFFFFF). Streams deliberately span several blocks at a small block size.
 */
export function writeMsf(streams: (Buffer | null)[], blockSize = 512): Buffer {
  const blocksOf = (n: number) => Math.ceil(n / blockSize);
  let next = 4;
  const streamBlocks = streams.map((s) => Array.from({ length: s ? blocksOf(s.length) : 0 }, () => next++));
  const dirWords = [streams.length, ...streams.map((s) => (s ? s.length : 0xffffffff)), ...streamBlocks.flat()];
  const dir = Buffer.alloc(dirWords.length * 4);
  dirWords.forEach((w, i) => dir.writeUInt32LE(w, i * 4));
  const dirBlocks = Array.from({ length: blocksOf(dir.length) }, () => next++);
  const numBlocks = next;
  const file = Buffer.alloc(numBlocks * blockSize);
  const sb = file.subarray(0, blockSize);
  Buffer.concat([Buffer.from('Microsoft C/C++ MSF 7.00\r\n\x1aDS', 'latin1'), Buffer.alloc(3)]).copy(sb, 0);
  sb.writeUInt32LE(blockSize, 32); sb.writeUInt32LE(1, 36); sb.writeUInt32LE(numBlocks, 40); sb.writeUInt32LE(dir.length, 44); sb.writeUInt32LE(0, 48); sb.writeUInt32LE(3, 52);
  // Free block map 1: every block in use (bit clear = used); blocks past the file are free.
  const fpm = file.subarray(blockSize, 2 * blockSize);
  fpm.fill(0xff);
  for (let b = 0; b < numBlocks; b++) fpm[b >> 3]! &= ~(1 << (b & 7));
  dirBlocks.forEach((blk, i) => file.writeUInt32LE(blk, 3 * blockSize + i * 4));
  dirBlocks.forEach((blk, i) => dir.subarray(i * blockSize, (i + 1) * blockSize).copy(file, blk * blockSize));
  streams.forEach((s, i) => { if (s) streamBlocks[i]!.forEach((blk, k) => s.subarray(k * blockSize, (k + 1) * blockSize).copy(file, blk * blockSize)); });
  return file;
}

/** A PDB from writeMsf: streams 0 (old directory, empty), 1 (info), 2 (TPI: nil), 3 (DBI, when dbiAge is set). */
export function writePdb(spec: PdbSpec, blockSize = 512, padInfoTo = 0): Buffer {
  let info = infoStream(spec);
  if (padInfoTo > info.length) info = Buffer.concat([info, Buffer.alloc(padInfoTo - info.length)]);
  const streams: (Buffer | null)[] = [Buffer.alloc(0), info, null];
  if (spec.dbiAge !== undefined) streams.push(dbiStream(spec.dbiAge));
  return writeMsf(streams, blockSize);
}

export function saveTmp(name: string, bytes: Uint8Array): string {
  const f = tmp(name);
  writeFileSync(f, bytes);
  return f;
}

// ------------------------------------------------------------------ Mach-O

/** CPU_SUBTYPE_*_ALL of a cputype (<mach/machine.h>): 3 for x86, 0 for ARM and PowerPC. */
export const cpuSubtypeAll = (cputype: number): number => ((cputype & 0xffffff) === 7 ? 3 : 0);

export interface SliceSpec { cputype: number; cpusubtype?: number; uuid?: string; is64?: boolean; bigEndian?: boolean; filetype?: number; extraCommands?: number }

/** A Mach-O image (<mach-o/loader.h>): header, an LC_SEGMENT-free command list with LC_UUID (cmd 0x1b, 24 bytes) and optional filler commands. */
export function writeMachO(s: SliceSpec): Buffer {
  const is64 = s.is64 ?? true;
  const cmds: Buffer[] = [];
  for (let i = 0; i < (s.extraCommands ?? 0); i++) {
    // LC_NOTE (0x31): cmd, cmdsize 40, data_owner[16], offset u64, size u64 (several are allowed).
    const c = Buffer.alloc(40); c.writeUInt32LE(0x31, 0); c.writeUInt32LE(40, 4); c.write(`note${i}`, 8, 'latin1'); cmds.push(c);
  }
  if (s.uuid) {
    const c = Buffer.alloc(24); c.writeUInt32LE(0x1b, 0); c.writeUInt32LE(24, 4); Buffer.from(s.uuid.replace(/-/g, ''), 'hex').copy(c, 8); cmds.push(c);
  }
  const body = Buffer.concat(cmds);
  const h = Buffer.alloc(is64 ? 32 : 28);
  h.writeUInt32LE(is64 ? 0xfeedfacf : 0xfeedface, 0);
  h.writeUInt32LE(s.cputype >>> 0, 4); h.writeUInt32LE((s.cpusubtype ?? cpuSubtypeAll(s.cputype)) >>> 0, 8); h.writeUInt32LE(s.filetype ?? 0xa, 12);
  h.writeUInt32LE(cmds.length, 16); h.writeUInt32LE(body.length, 20);
  const img = Buffer.concat([h, body]);
  if (s.bigEndian) {
    // Every header and command field is a u32 here (the UUID bytes are not): swap those words.
    const swap = (b: Buffer, at: number) => b.writeUInt32BE(b.readUInt32LE(at), at);
    for (let o = 0; o < h.length; o += 4) swap(img, o);
    let at = h.length;
    for (const c of cmds) {
      swap(img, at); swap(img, at + 4);
      if (c.readUInt32LE(0) === 0x31) { img.writeBigUInt64BE(0n, at + 24); img.writeBigUInt64BE(0n, at + 32); }
      at += c.length;
    }
  }
  return img;
}

/** A universal file (<mach-o/fat.h>, big-endian): fat_header, fat_arch[_64] entries, slices aligned to 2^12. */
export function writeFat(slices: Buffer[], fat64 = false): Buffer {
  const entry = fat64 ? 32 : 20;
  const head = Buffer.alloc(8 + slices.length * entry);
  head.writeUInt32BE(fat64 ? 0xcafebabf : 0xcafebabe, 0);
  head.writeUInt32BE(slices.length, 4);
  const parts: Buffer[] = [head];
  let at = head.length;
  slices.forEach((img, i) => {
    const off = Math.ceil(at / 4096) * 4096;
    parts.push(Buffer.alloc(off - at), img);
    const e = 8 + i * entry;
    head.writeUInt32BE(img.readUInt32LE(0) === 0xfeedfacf || img.readUInt32LE(0) === 0xfeedface ? img.readUInt32LE(4) : img.readUInt32BE(4), e);
    head.writeUInt32BE(img.readUInt32LE(0) === 0xfeedfacf || img.readUInt32LE(0) === 0xfeedface ? img.readUInt32LE(8) : img.readUInt32BE(8), e + 4);
    if (fat64) { head.writeBigUInt64BE(BigInt(off), e + 8); head.writeBigUInt64BE(BigInt(img.length), e + 16); head.writeUInt32BE(12, e + 24); }
    else { head.writeUInt32BE(off, e + 8); head.writeUInt32BE(img.length, e + 12); head.writeUInt32BE(12, e + 16); }
    at = off + img.length;
  });
  return Buffer.concat(parts);
}

/** A thin or universal Mach-O written by LLVM's yaml2obj. */
export function machOFromLlvm(yaml: string): { file: string; bytes: Buffer } {
  const y = tmp('macho.yaml');
  const file = tmp('macho.bin');
  writeFileSync(y, yaml);
  execFileSync('yaml2obj', [y, '-o', file]);
  return { file, bytes: readFileSync(file) };
}

export const yamlThin = (cputype: number, uuid: string, magic = '0xFEEDFACF') => `--- !mach-o
FileHeader:
  magic: ${magic}
  cputype: ${cputype}
  cpusubtype: ${cpuSubtypeAll(cputype)}
  filetype: 0x0000000A
  ncmds: 1
  sizeofcmds: 24
  flags: 0x00000000
${magic === '0xFEEDFACF' ? '  reserved: 0x00000000\n' : ''}LoadCommands:
  - cmd: LC_UUID
    cmdsize: 24
    uuid: ${uuid}
...
`;

export const yamlFat = (slices: { cputype: number; uuid: string }[]) => `--- !fat-mach-o
FatHeader:
  magic: 0xCAFEBABE
  nfat_arch: ${slices.length}
FatArchs:
${slices.map((s, i) => `  - cputype: ${s.cputype}\n    cpusubtype: ${cpuSubtypeAll(s.cputype)}\n    offset: ${(i + 1) * 4096}\n    size: 56\n    align: 12`).join('\n')}
Slices:
${slices.map((s) => yamlThin(s.cputype, s.uuid).replace('--- !mach-o\n', '  - !mach-o\n').replace(/\n\.\.\.\n$/, '\n').split('\n').map((l, i) => (i === 0 || l === '' ? l : `    ${l}`)).join('\n')).join('')}...
`;

/** llvm-dwarfdump --uuid: [{uuid (32 lowercase hex), arch}] per slice. */
export function llvmUuids(file: string): { uuid: string; arch: string }[] {
  const out = execFileSync('llvm-dwarfdump', ['--uuid', file], { encoding: 'utf8' });
  return [...out.matchAll(/^UUID: ([0-9A-F-]{36}) \(([^)]*)\)/gm)].map((m) => ({ uuid: m[1]!.replace(/-/g, '').toLowerCase(), arch: m[2]! }));
}
