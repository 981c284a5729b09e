// lib/elf.ts against real binaries built here (gcc -g, x86-64 and i386; GNU as/ld for big-endian
// PowerPC) with binutils' readelf / nm / addr2line as the independent oracle, plus truncated,
// mutated and hand-broken inputs that must fail with a named ElfError and nothing else.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ElfError, isElf, parseElf, readBuildId, SHT, SymbolIndex, type ElfFile } from '../../lib/elf.ts';
import { MAX_SLOWDOWN, slowdown } from '../support/slowdown.ts';

const run = (cmd: string, args: string[], cwd?: string) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const has = (cmd: string) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`]); return true; } catch { return false; } };

const C_SOURCE = `
#include <stdio.h>
int counter = 7;
__attribute__((noinline)) static int hidden_helper(int x) { return x * 3 + counter; }
int add(int a, int b) { return hidden_helper(a) + b; }
__attribute__((noinline)) void crash_here(int *p) { *p = add(1, 2); }
int main(int argc, char **argv) { (void)argv; printf("%d\\n", add(argc, 2)); return 0; }
`;
// A freestanding i386 program: no 32-bit libc needed, the linker still writes the build-id note.
const C32_SOURCE = `
int counter32;
int add32(int a, int b) { return a + b + counter32; }
void _start(void) { for (;;) { counter32 = add32(counter32, 1); } }
`;
const PPC_ASM = `
	.text
	.globl _start
	.type _start,@function
_start:
	nop
	nop
	blr
	.size _start, .-_start
	.globl helper
	.type helper,@function
helper:
	nop
	blr
	.size helper, .-helper
	.data
	.globl value
	.type value,@object
value:
	.long 42
	.size value, 4
`;

let dir: string;
const bins: Record<string, string> = {};

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stella-elf-'));
  writeFileSync(path.join(dir, 'prog.c'), C_SOURCE);
  writeFileSync(path.join(dir, 'p32.c'), C32_SOURCE);
  writeFileSync(path.join(dir, 'ppc.s'), PPC_ASM);
  run('gcc', ['-g', '-O0', '-Wl,--build-id', '-o', 'prog', 'prog.c'], dir);
  run('gcc', ['-g', '-O1', '-shared', '-fPIC', '-Wl,--build-id', '-o', 'libprog.so', 'prog.c'], dir);
  run('objcopy', ['--only-keep-debug', 'prog', 'prog.debug'], dir);
  run('cp', ['prog', 'prog.stripped'], dir);
  run('strip', ['--strip-all', 'prog.stripped'], dir);
  run('cp', ['libprog.so', 'libprog.stripped.so'], dir);
  run('strip', ['--strip-all', 'libprog.stripped.so'], dir);
  run('gcc', ['-m32', '-g', '-nostdlib', '-nostartfiles', '-static', '-Wl,--build-id', '-o', 'p32', 'p32.c'], dir);
  Object.assign(bins, {
    prog: path.join(dir, 'prog'), so: path.join(dir, 'libprog.so'), debug: path.join(dir, 'prog.debug'),
    stripped: path.join(dir, 'prog.stripped'), soStripped: path.join(dir, 'libprog.stripped.so'), p32: path.join(dir, 'p32'),
  });
  // Big-endian ELF64 and ELF32 from the real GNU toolchain for PowerPC (apt: binutils-powerpc64-linux-gnu, binutils-powerpc-linux-gnu).
  if (has('powerpc64-linux-gnu-as') && has('powerpc-linux-gnu-as')) {
    run('powerpc64-linux-gnu-as', ['-o', 'ppc64.o', 'ppc.s'], dir);
    run('powerpc64-linux-gnu-ld', ['--build-id', '-o', 'ppc64', 'ppc64.o'], dir);
    run('powerpc-linux-gnu-as', ['-o', 'ppc32.o', 'ppc.s'], dir);
    run('powerpc-linux-gnu-ld', ['--build-id=md5', '-o', 'ppc32', 'ppc32.o'], dir);
    bins.ppc64 = path.join(dir, 'ppc64');
    bins.ppc32 = path.join(dir, 'ppc32');
  }
});
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

function readelfBuildId(file: string): string | undefined {
  return /Build ID: ([0-9a-f]+)/.exec(run('readelf', ['-n', file]))?.[1];
}

/** nm's defined symbols as "value name" lines (version suffixes of dynamic symbols dropped). */
function nmSymbols(file: string, dynamic: boolean): string[] {
  const out = run('nm', [...(dynamic ? ['-D'] : []), '--defined-only', '-S', file]);
  const lines: string[] = [];
  for (const line of out.split('\n')) {
    const m = /^([0-9a-f]+)(?: ([0-9a-f]+))? (\w) (.+)$/.exec(line.trim());
    if (!m) continue;
    lines.push(`${BigInt(`0x${m[1]}`).toString(16)} ${BigInt(`0x${m[2] ?? '0'}`).toString(16)} ${m[4]!.replace(/@.*$/, '')}`);
  }
  return lines.sort();
}

function ourSymbols(elf: ElfFile, table: 'symtab' | 'dynsym'): string[] {
  // nm lists defined symbols except section and file symbols.
  return elf.symbols
    .filter((s) => s.table === table && s.shndx !== 0 && s.type !== 'SECTION' && s.type !== 'FILE')
    .map((s) => `${s.value.toString(16)} ${s.size.toString(16)} ${s.name}`)
    .sort();
}

describe('parseElf against binutils', () => {
  it('reads the GNU build-id note exactly as readelf -n does, for every kind of file', () => {
    const seen = new Set<string>();
    for (const [kind, file] of Object.entries(bins)) {
      const want = readelfBuildId(file);
      expect(want, `${kind} has a build-id`).toMatch(/^[0-9a-f]{32,40}$/);
      const bytes = readFileSync(file);
      expect(parseElf(bytes).buildId, kind).toBe(want);
      expect(readBuildId(bytes), kind).toBe(want);
      seen.add(want!);
    }
    // The debug file and the stripped binary carry the build-id of the binary they came from.
    expect(readBuildId(readFileSync(bins.debug!))).toBe(readBuildId(readFileSync(bins.prog!)));
    expect(readBuildId(readFileSync(bins.stripped!))).toBe(readBuildId(readFileSync(bins.prog!)));
    expect(seen.size).toBeGreaterThanOrEqual(4);
  });

  it('covers ELF32/ELF64 in both byte orders', () => {
    const shape = (f: string) => { const e = parseElf(readFileSync(f)); return `${e.class}/${e.endian}`; };
    expect(shape(bins.prog!)).toBe('64/little');
    expect(shape(bins.p32!)).toBe('32/little');
    expect(bins.ppc64, 'binutils-powerpc64-linux-gnu installed').toBeDefined();
    expect(shape(bins.ppc64!)).toBe('64/big');
    expect(shape(bins.ppc32!)).toBe('32/big');
  });

  it('reads .symtab exactly as nm --defined-only lists it (value, size, name)', () => {
    for (const kind of ['prog', 'so', 'debug', 'p32', 'ppc64', 'ppc32']) {
      const elf = parseElf(readFileSync(bins[kind]!));
      const want = nmSymbols(bins[kind]!, false);
      expect(want.length, kind).toBeGreaterThan(2);
      expect(ourSymbols(elf, 'symtab'), kind).toEqual(want);
    }
  });

  it('reads .dynsym exactly as nm -D --defined-only lists it, also when .symtab is stripped', () => {
    for (const kind of ['so', 'soStripped', 'prog']) {
      const elf = parseElf(readFileSync(bins[kind]!));
      expect(ourSymbols(elf, 'dynsym'), kind).toEqual(nmSymbols(bins[kind]!, true));
    }
    const stripped = parseElf(readFileSync(bins.soStripped!));
    expect(stripped.symbols.some((s) => s.table === 'symtab')).toBe(false);
    expect(ourSymbols(stripped, 'dynsym')).toContain(nmSymbols(bins.so!, true).find((l) => l.endsWith(' add')));
  });

  it('lists section headers with the names, types, offsets and sizes readelf -S shows', () => {
    for (const kind of ['prog', 'ppc32']) {
      const out = run('readelf', ['-SW', bins[kind]!]);
      const want = [...out.matchAll(/^\s*\[\s*(\d+)\]\s+(?:(\S+)\s+)?([A-Z_0-9+]+)\s+([0-9a-f]{8,16})\s+([0-9a-f]{6,})\s+([0-9a-f]{6,})/gm)]
        .map((m) => `${m[1]} ${m[2] ?? ''} ${BigInt(`0x${m[4]}`)} ${parseInt(m[5]!, 16)} ${parseInt(m[6]!, 16)}`);
      const elf = parseElf(readFileSync(bins[kind]!));
      expect(elf.sections.map((s) => `${s.index} ${s.name} ${s.addr} ${s.offset} ${s.size}`), kind).toEqual(want);
      expect(want.length, kind).toBeGreaterThan(5);
    }
  });

  it('sniffs ELF magic', () => {
    expect(isElf(readFileSync(bins.prog!))).toBe(true);
    expect(isElf(Buffer.from('#!/bin/sh\n'))).toBe(false);
  });
});

describe('SymbolIndex', () => {
  it('resolves addresses to the function addr2line names (DWARF, an independent source)', () => {
    const elf = parseElf(readFileSync(bins.prog!));
    const index = SymbolIndex.fromElf(elf, { types: ['FUNC'] });
    const funcs = elf.symbols.filter((s) => s.table === 'symtab' && s.type === 'FUNC' && s.shndx !== 0 && s.size > 0n && ['add', 'main', 'crash_here', 'hidden_helper'].includes(s.name));
    expect(funcs.map((f) => f.name).sort()).toEqual(['add', 'crash_here', 'hidden_helper', 'main']);
    const addrs = funcs.flatMap((f) => [f.value, f.value + f.size / 2n, f.value + f.size - 1n]);
    const lines = run('addr2line', ['-f', '-e', bins.prog!, ...addrs.map((a) => `0x${a.toString(16)}`)]).trim().split('\n');
    const fromAddr2line = lines.filter((_, i) => i % 2 === 0);
    expect(addrs.map((a) => index.lookup(a)?.name)).toEqual(fromAddr2line);
    for (const f of funcs) {
      const r = index.lookup(f.value + 3n)!;
      expect(r).toMatchObject({ name: f.name, start: f.value, offset: 3n });
      // One past the end belongs to someone else (or no one).
      expect(index.lookup(f.value + f.size)?.name).not.toBe(f.name);
    }
    expect(index.lookup(0n)).toBeUndefined();
    expect(index.lookup(0xffff_ffff_ffff_ffffn)).toBeUndefined();
  });

  it('resolves big-endian PowerPC symbols the way nm sizes them', () => {
    const index = SymbolIndex.fromElf(parseElf(readFileSync(bins.ppc64!)));
    for (const line of nmSymbols(bins.ppc64!, false)) {
      const [v, sz, name] = line.split(' ');
      const start = BigInt(`0x${v}`);
      const size = BigInt(`0x${sz}`);
      if (size === 0n) continue;
      expect(index.lookup(start + size - 1n)?.name).toBe(name);
    }
  });

  it('gives nested symbols to the innermost, aliases to the global function, and size-0 symbols only their own address', () => {
    const sym = (name: string, value: bigint, size: bigint, type: 'FUNC' | 'NOTYPE' | 'OBJECT' = 'FUNC', bind: 'GLOBAL' | 'LOCAL' | 'WEAK' = 'GLOBAL') =>
      ({ name, value, size, type, bind, shndx: 1, table: 'symtab' as const });
    const index = SymbolIndex.fromSymbols([
      sym('outer', 0x1000n, 0x100n),
      sym('inner', 0x1040n, 0x10n),
      sym('alias_local', 0x2000n, 0x20n, 'FUNC', 'LOCAL'),
      sym('alias_global', 0x2000n, 0x20n),
      sym('label', 0x3000n, 0n, 'NOTYPE'),
      sym('undefined', 0x4000n, 0x10n),
      { ...sym('undef', 0x5000n, 0x10n), shndx: 0 },
      sym('partial_a', 0x6000n, 0x20n),
      sym('partial_b', 0x6010n, 0x20n),
    ]);
    expect(index.lookup(0x1000n)?.name).toBe('outer');
    expect(index.lookup(0x103fn)?.name).toBe('outer');
    expect(index.lookup(0x1040n)?.name).toBe('inner');
    expect(index.lookup(0x104fn)?.name).toBe('inner');
    expect(index.lookup(0x1050n)).toMatchObject({ name: 'outer', offset: 0x50n });
    expect(index.lookup(0x10ffn)?.name).toBe('outer');
    expect(index.lookup(0x1100n)).toBeUndefined();
    expect(index.lookup(0x2010n)?.name).toBe('alias_global');
    expect(index.lookup(0x3000n)?.name).toBe('label');
    expect(index.lookup(0x3001n)).toBeUndefined();
    expect(index.lookup(0x5005n)).toBeUndefined();
    expect(index.lookup(0x6015n)?.name).toBe('partial_b');
    expect(index.lookup(0x6025n)?.name).toBe('partial_b');
    expect(index.lookup(0x6005n)?.name).toBe('partial_a');
  });
});

// ---- hostile input -------------------------------------------------------------------------

/** Parse, returning the ElfError code, 'ok', or rethrowing anything that is not an ElfError. */
function outcome(bytes: Uint8Array): string {
  try { parseElf(bytes); return 'ok'; } catch (e) {
    if (e instanceof ElfError) return e.code;
    throw e;
  }
}

/** Field writers for an ELF64 little-endian file (the x86-64 fixtures). */
function patch(bytes: Buffer, f: (b: Buffer) => void): Buffer { const c = Buffer.from(bytes); f(c); return c; }
const E64 = { shoff: 0x28, phoff: 0x20, shentsize: 0x3a, shnum: 0x3c, shstrndx: 0x3e, phnum: 0x38 };
function sectionAt(elf: ElfFile, name: string) { const s = elf.sections.find((x) => x.name === name); if (!s) throw new Error(`no ${name}`); return s; }
const shdr = (bytes: Buffer, index: number) => Number(bytes.readBigUInt64LE(E64.shoff)) + index * 64;

describe('hostile input', () => {
  it('every truncation of a real binary either parses or fails with ElfError (never reads out of bounds)', () => {
    const full = readFileSync(bins.p32!);
    const prog = readFileSync(bins.prog!);
    const codes = new Map<string, number>();
    for (const bytes of [full, prog]) {
      for (let n = 0; n < bytes.length; n += bytes === full ? 1 : 7) {
        const code = outcome(bytes.subarray(0, n));
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
    // Section headers sit at the end of a linked file: any truncation loses them.
    expect(codes.get('ok') ?? 0).toBe(0);
    expect(codes.get('ELF_NOT_ELF')).toBeGreaterThan(0);
    expect(codes.get('ELF_TRUNCATED')).toBeGreaterThan(100);
  });

  it('random byte mutations never escape as anything but ElfError', () => {
    let seed = 12345;
    const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
    const codes = new Set<string>();
    for (const file of [bins.prog!, bins.ppc32!, bins.p32!]) {
      const base = readFileSync(file);
      const elf = parseElf(base);
      // Mutate where the structure lives: the ELF header, section headers, program headers, notes, symbol tables.
      const hot: [number, number][] = [[0, 64]];
      for (const s of elf.sections) if (s.type === SHT.NOTE || s.type === SHT.SYMTAB || s.type === SHT.DYNSYM || s.type === SHT.STRTAB) hot.push([s.offset, Math.min(s.size, 512)]);
      const shStart = elf.class === 64 ? Number(elf.endian === 'little' ? base.readBigUInt64LE(0x28) : base.readBigUInt64BE(0x28)) : (elf.endian === 'little' ? base.readUInt32LE(0x20) : base.readUInt32BE(0x20));
      hot.push([shStart, base.length - shStart]);
      for (let i = 0; i < 1500; i++) {
        const m = Buffer.from(base);
        const flips = 1 + (rnd() % 4);
        for (let k = 0; k < flips; k++) {
          const [start, len] = hot[rnd() % hot.length]!;
          if (len <= 0) continue;
          const at = start + (rnd() % len);
          m[at] = rnd() % 4 === 0 ? 0xff : rnd() & 0xff;
        }
        codes.add(outcome(m));
      }
    }
    expect(codes.has('ok')).toBe(true);
    expect(codes.size).toBeGreaterThan(3);
  });

  it('huge or lying counts and offsets fail fast with the rule they broke', () => {
    const base = readFileSync(bins.prog!);
    const elf = parseElf(base);
    const lies: [string, Buffer][] = [
      // e_shnum claims 65,535 headers: the table would run past the end.
      ['ELF_TRUNCATED', patch(base, (b) => b.writeUInt16LE(0xffff, E64.shnum))],
      // Extended numbering: e_shnum 0, section 0's sh_size says 2^40 sections.
      ['ELF_LIMIT', patch(base, (b) => { b.writeUInt16LE(0, E64.shnum); b.writeBigUInt64LE(1n << 40n, shdr(b, 0) + 32); })],
      // Offsets beyond 2^53 and beyond the file.
      ['ELF_TRUNCATED', patch(base, (b) => b.writeBigUInt64LE(0xffff_ffff_ffff_fff0n, E64.shoff))],
      ['ELF_TRUNCATED', patch(base, (b) => b.writeBigUInt64LE(0xffff_ffff_ffff_fff0n, E64.phoff))],
      ['ELF_TRUNCATED', patch(base, (b) => b.writeBigUInt64LE(BigInt(b.length + 1), shdr(b, sectionAt(elf, '.symtab').index) + 24))],
      ['ELF_TRUNCATED', patch(base, (b) => b.writeBigUInt64LE(1n << 62n, shdr(b, sectionAt(elf, '.symtab').index) + 32))],
      // e_shentsize smaller than a header; e_shstrndx past the table.
      ['ELF_BAD_HEADER', patch(base, (b) => b.writeUInt16LE(10, E64.shentsize))],
      ['ELF_BAD_HEADER', patch(base, (b) => b.writeUInt16LE(elf.sections.length + 3, E64.shstrndx))],
      // Program header count huge.
      ['ELF_TRUNCATED', patch(base, (b) => b.writeUInt16LE(0xfff0, E64.phnum))],
    ];
    for (const [code, bytes] of lies) expect(outcome(bytes)).toBe(code);
    // Fast = no dearer than parsing the honest file of the same size the same number of times (a
    // parser that believed a count would loop 2^40 times or allocate for it); repeated so each
    // measurement is tens of ms of CPU, not clock granularity.
    const REPEAT = 100;
    const s = slowdown(() => { for (let i = 0; i < REPEAT; i++) for (const [, bytes] of lies) outcome(bytes); },
      () => { for (let i = 0; i < REPEAT; i++) for (let j = 0; j < lies.length; j++) outcome(base); });
    expect(s.ratio, s.text).toBeLessThan(MAX_SLOWDOWN);
  });

  it('overlapping sections are refused', () => {
    const base = readFileSync(bins.prog!);
    const elf = parseElf(base);
    const text = sectionAt(elf, '.text');
    const symtab = sectionAt(elf, '.symtab');
    // Point .symtab into the middle of .text.
    expect(outcome(patch(base, (b) => b.writeBigUInt64LE(BigInt(text.offset + 8), shdr(b, symtab.index) + 24)))).toBe('ELF_SECTION_OVERLAP');
    // A section covering the section header table.
    expect(outcome(patch(base, (b) => {
      const comment = sectionAt(elf, '.comment');
      b.writeBigUInt64LE(BigInt(b.length - 64), shdr(b, comment.index) + 24);
      b.writeBigUInt64LE(16n, shdr(b, comment.index) + 32);
    }))).toBe('ELF_SECTION_OVERLAP');
  });

  it('broken notes, string tables and symbol tables are named', () => {
    const base = readFileSync(bins.prog!);
    const elf = parseElf(base);
    const note = sectionAt(elf, '.note.gnu.build-id');
    // descsz 0xffffffff: must not wrap or read past the note.
    expect(outcome(patch(base, (b) => b.writeUInt32LE(0xffff_ffff, note.offset + 4)))).toBe('ELF_BAD_NOTE');
    expect(outcome(patch(base, (b) => b.writeUInt32LE(0xffff_fff0, note.offset)))).toBe('ELF_BAD_NOTE');
    // A symbol name offset past its string table.
    const symtab = sectionAt(elf, '.symtab');
    expect(outcome(patch(base, (b) => b.writeUInt32LE(0x7fff_ffff, symtab.offset + 24)))).toBe('ELF_BAD_STRING');
    // A string table without its final NUL.
    const strtab = sectionAt(elf, '.strtab');
    expect(outcome(patch(base, (b) => { b[strtab.offset + strtab.size - 1] = 0x41; }))).toBe('ELF_BAD_STRING');
    // Wrong symbol entry size; symbol table linked to a non-string-table.
    expect(outcome(patch(base, (b) => b.writeBigUInt64LE(23n, shdr(b, symtab.index) + 56)))).toBe('ELF_BAD_SYMTAB');
    expect(outcome(patch(base, (b) => b.writeUInt32LE(symtab.index, shdr(b, symtab.index) + 40)))).toBe('ELF_BAD_SYMTAB');
    // A second, different build-id (the ABI-tag note turned into a build-id note).
    const abi = sectionAt(elf, '.note.ABI-tag');
    expect(outcome(patch(base, (b) => b.writeUInt32LE(3, abi.offset + 8)))).toBe('ELF_BUILD_ID_CONFLICT');
    // Not ELF at all; unsupported class.
    expect(outcome(Buffer.from('MZ\x90\x00 not an elf file'))).toBe('ELF_NOT_ELF');
    expect(outcome(patch(base, (b) => { b[4] = 3; }))).toBe('ELF_UNSUPPORTED');
    expect(outcome(patch(base, (b) => { b[5] = 0; }))).toBe('ELF_UNSUPPORTED');
  });

  it('a string table built to make name decoding quadratic hits the name byte limit', () => {
    const base = readFileSync(bins.prog!);
    const elf = parseElf(base);
    const symtab = sectionAt(elf, '.symtab');
    const strtab = sectionAt(elf, '.strtab');
    // Every symbol names offset 1 of .strtab: cached, cheap. Limit at a few bytes proves the budget is enforced.
    const m = patch(base, (b) => { for (let at = symtab.offset + 24; at < symtab.offset + symtab.size; at += 24) b.writeUInt32LE(1 + ((at / 24) % 5), at); });
    expect(() => parseElf(m, { maxNameBytes: 8 })).toThrow(ElfError);
    expect(parseElf(m).symbols.length).toBe(elf.symbols.length);
    expect(strtab.size).toBeGreaterThan(10);
  });
});
