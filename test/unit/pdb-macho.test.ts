// lib/pdb.ts and lib/macho.ts against LLVM (Debian package `llvm`): files written by LLVM's own
// writers (llvm-pdbutil yaml2pdb, yaml2obj) and by the spec-built writers of symbol-fixtures.ts,
// both read back by LLVM's readers (llvm-pdbutil dump/pdb2yaml, llvm-dwarfdump --uuid) as the
// oracle. Hostile input (every truncation, random mutations, hand-broken fields) must end in a
// named PdbError / MachOError, never another exception or a wrong answer.
import { describe, expect, it } from 'vitest';
import { MachOError, parseMachO, MAX_FAT_ARCHS } from '../../lib/macho.ts';
import { PdbError, readPdbIdentity } from '../../lib/pdb.ts';
import {
  llvmPdbFacts, llvmUuids, machOFromLlvm, pdbFromLlvm, saveTmp, writeFat, writeMachO, writeMsf, writePdb, infoStream, yamlFat, yamlThin,
} from '../intake/symbol-fixtures.ts';

const X86_64 = 0x01000007;
const ARM64 = 0x0100000c;
const PPC = 18;

function rng(seed: number) { let s = seed >>> 0; return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32); }

describe('PDB identity (MSF superblock -> stream directory -> info stream, DBI age)', () => {
  it('reads what llvm-pdbutil reads from a PDB written by llvm-pdbutil yaml2pdb (DBI age differs from the info age)', () => {
    const { file, bytes } = pdbFromLlvm({ guid: '0123ABCD-4567-89EF-0123-456789ABCDEF', infoAge: 7, dbiAge: 3, signature: 424242 });
    const id = readPdbIdentity(bytes);
    const llvm = llvmPdbFacts(file);
    expect(llvm).toEqual({ guid: '0123ABCD-4567-89EF-0123-456789ABCDEF', infoAge: 7, signature: 424242, dbiAge: 3 });
    expect(id).toMatchObject({ guid: llvm.guid, infoAge: llvm.infoAge, signature: llvm.signature, dbiAge: llvm.dbiAge, version: 20000404, blockSize: 4096 });
    // The key age is the DBI stream's (what the image's CodeView record carries).
    expect(id.age).toBe(3);
  });

  it('reads spec-built PDBs that llvm-pdbutil accepts: 512..4096-byte blocks, streams over several blocks, with and without DBI', () => {
    const cases = [
      { spec: { guid: 'DEADBEEF-0001-0002-0304-05060708090A', infoAge: 5 }, bs: 512, pad: 1500 },
      { spec: { guid: 'DEADBEEF-0001-0002-0304-05060708090A', infoAge: 9, dbiAge: 2 }, bs: 1024, pad: 3000 },
      { spec: { guid: 'FFFFFFFF-0000-FFFF-0000-00FF00FF00FF', infoAge: 1, dbiAge: 1 }, bs: 2048, pad: 0 },
      { spec: { guid: '00000001-0002-0003-0405-060708090A0B', infoAge: 0xffffffff, dbiAge: 0x7fffffff }, bs: 4096, pad: 9000 },
    ];
    for (const c of cases) {
      const bytes = writePdb(c.spec, c.bs, c.pad);
      const llvm = llvmPdbFacts(saveTmp('spec.pdb', bytes));
      const id = readPdbIdentity(bytes);
      expect(llvm).toEqual({ guid: c.spec.guid, infoAge: c.spec.infoAge, signature: 1234567, dbiAge: c.spec.dbiAge });
      expect([id.guid, id.infoAge, id.dbiAge, id.age, id.blockSize]).toEqual([llvm.guid, llvm.infoAge, llvm.dbiAge, c.spec.dbiAge ?? c.spec.infoAge, c.bs]);
    }
  });

  it('names every broken rule', () => {
    const good = writePdb({ guid: 'DEADBEEF-0001-0002-0304-05060708090A', infoAge: 5, dbiAge: 2 }, 512, 1500);
    const code = (b: Buffer) => { try { readPdbIdentity(b); return 'read'; } catch (e) { if (e instanceof PdbError) return e.code; throw e; } };
    const patch = (at: number, v: number) => { const b = Buffer.from(good); b.writeUInt32LE(v >>> 0, at); return b; };
    expect(code(good)).toBe('read');
    expect(code(Buffer.from('Microsoft C/C++ program database 2.00\r\n\x1aJG\0\0'))).toBe('PDB_NOT_MSF');
    expect(code(patch(32, 1000))).toBe('PDB_BAD_SUPERBLOCK');      // block size
    expect(code(patch(36, 3))).toBe('PDB_BAD_SUPERBLOCK');         // free block map block
    expect(code(patch(40, 1_000_000))).toBe('PDB_TRUNCATED');      // more blocks than bytes
    expect(code(patch(52, 0))).toBe('PDB_BAD_SUPERBLOCK');         // block map in the superblock
    expect(code(patch(44, 0))).toBe('PDB_BAD_DIRECTORY');          // empty directory
    expect(code(patch(3 * 512, 9999))).toBe('PDB_BAD_DIRECTORY');  // directory block outside the file
    // A stream count the directory cannot hold; a stream size that needs more blocks than exist.
    const dirBlock = good.readUInt32LE(3 * 512);
    expect(code(patch(dirBlock * 512, 0x40000000))).toBe('PDB_BAD_DIRECTORY');
    expect(code(patch(dirBlock * 512 + 8, 0x7fffffff))).toBe('PDB_BAD_DIRECTORY');
    // No info stream; a short one; an unknown version; a DBI stream without its -1 signature.
    expect(code(writeMsf([Buffer.alloc(0)]))).toBe('PDB_NO_INFO_STREAM');
    expect(code(writeMsf([Buffer.alloc(0), null]))).toBe('PDB_NO_INFO_STREAM');
    expect(code(writeMsf([Buffer.alloc(0), Buffer.alloc(20)]))).toBe('PDB_NO_INFO_STREAM');
    const info = infoStream({ guid: 'DEADBEEF-0001-0002-0304-05060708090A', infoAge: 1 });
    info.writeUInt32LE(12345, 0);
    expect(code(writeMsf([Buffer.alloc(0), info]))).toBe('PDB_BAD_INFO_STREAM');
    expect(code(writeMsf([Buffer.alloc(0), infoStream({ guid: 'DEADBEEF-0001-0002-0304-05060708090A', infoAge: 1 }), null, Buffer.alloc(64)]))).toBe('PDB_BAD_DBI_STREAM');
  });

  it('every truncation and thousands of mutations end in a PdbError or a consistent read', () => {
    const { bytes } = pdbFromLlvm({ guid: '0123ABCD-4567-89EF-0123-456789ABCDEF', infoAge: 7, dbiAge: 3 });
    const small = writePdb({ guid: 'DEADBEEF-0001-0002-0304-05060708090A', infoAge: 5, dbiAge: 2 }, 512, 1500);
    for (const src of [bytes, small]) {
      for (let n = 0; n < src.length; n += n < 4096 ? 1 : 509) {
        try { readPdbIdentity(src.subarray(0, n)); } catch (e) { expect(e).toBeInstanceOf(PdbError); }
      }
    }
    const r = rng(14);
    for (let i = 0; i < 4000; i++) {
      const b = Buffer.from(small);
      // Aim at the superblock, the block map, the directory and the streams (the first blocks).
      for (let k = 0, n = 1 + Math.floor(r() * 4); k < n; k++) b[Math.floor(r() * Math.min(b.length, 512 * 8))] = Math.floor(r() * 256);
      try {
        const id = readPdbIdentity(b);
        expect(id.guid).toMatch(/^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/);
      } catch (e) { expect(e).toBeInstanceOf(PdbError); }
    }
  });
});

describe('Mach-O LC_UUID (thin and universal)', () => {
  it('reads what llvm-dwarfdump --uuid reads from files written by yaml2obj (thin, universal with two slices)', () => {
    const thin = machOFromLlvm(yamlThin(X86_64, '11111111-2222-3333-4444-555555555555'));
    expect(parseMachO(thin.bytes).slices.map((s) => ({ uuid: s.uuid, arch: s.arch }))).toEqual(llvmUuids(thin.file));
    expect(llvmUuids(thin.file)).toEqual([{ uuid: '11111111222233334444555555555555', arch: 'x86_64' }]);
    const fat = machOFromLlvm(yamlFat([{ cputype: X86_64, uuid: '11111111-2222-3333-4444-555555555555' }, { cputype: ARM64, uuid: 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE' }]));
    const parsed = parseMachO(fat.bytes);
    expect(parsed.fat).toBe(true);
    expect(parsed.slices.map((s) => ({ uuid: s.uuid, arch: s.arch }))).toEqual(llvmUuids(fat.file));
    expect(llvmUuids(fat.file).map((s) => s.arch)).toEqual(['x86_64', 'arm64']);
  });

  it('reads spec-built files that llvm-dwarfdump agrees on: fat_arch_64, a big-endian 32-bit slice, several load commands', () => {
    const slices = [
      writeMachO({ cputype: X86_64, uuid: '0102030405060708090a0b0c0d0e0f10', extraCommands: 3 }),
      writeMachO({ cputype: PPC, is64: false, bigEndian: true, uuid: 'f0e0d0c0b0a090807060504030201000', extraCommands: 1 }),
      writeMachO({ cputype: ARM64, cpusubtype: 2, uuid: '00112233445566778899aabbccddeeff' }),
    ];
    for (const fat64 of [false, true]) {
      const bytes = writeFat(slices, fat64);
      const llvm = llvmUuids(saveTmp('fat.bin', bytes));
      expect(llvm.map((s) => s.uuid)).toEqual(['0102030405060708090a0b0c0d0e0f10', 'f0e0d0c0b0a090807060504030201000', '00112233445566778899aabbccddeeff']);
      const ours = parseMachO(bytes).slices;
      expect(ours.map((s) => s.uuid)).toEqual(llvm.map((s) => s.uuid));
      expect(ours.map((s) => [s.arch, s.is64, s.bigEndian])).toEqual([['x86_64', true, false], ['ppc', false, true], ['arm64e', true, false]]);
    }
    // A thin big-endian file; a slice without LC_UUID reads as undefined (llvm-dwarfdump prints nothing for it).
    const be = writeMachO({ cputype: PPC, is64: false, bigEndian: true, uuid: 'aa'.repeat(16) });
    expect(parseMachO(be).slices[0]!.uuid).toBe('aa'.repeat(16));
    expect(llvmUuids(saveTmp('be.bin', be)).map((s) => s.uuid)).toEqual(['aa'.repeat(16)]);
    const none = writeMachO({ cputype: X86_64, extraCommands: 1 });
    expect(parseMachO(none).slices[0]!.uuid).toBeUndefined();
    expect(llvmUuids(saveTmp('none.bin', none))).toEqual([]);
  });

  it('names every broken rule', () => {
    const code = (b: Buffer) => { try { parseMachO(b); return 'read'; } catch (e) { if (e instanceof MachOError) return e.code; throw e; } };
    const thin = writeMachO({ cputype: X86_64, uuid: '11'.repeat(16) });
    const twoUuids = Buffer.concat([thin, thin.subarray(32)]);
    twoUuids.writeUInt32LE(2, 16); twoUuids.writeUInt32LE(48, 20);
    expect(code(twoUuids)).toBe('read'); // the same UUID twice is not a conflict
    twoUuids[twoUuids.length - 1]! ^= 1;
    expect(code(twoUuids)).toBe('MACHO_UUID_CONFLICT');
    expect(code(Buffer.from('\x7fELF\x02\x01\x01'))).toBe('MACHO_NOT_MACHO');
    expect(code(thin.subarray(0, 20))).toBe('MACHO_TRUNCATED');
    const big = Buffer.from(thin); big.writeUInt32LE(1000, 20); expect(code(big)).toBe('MACHO_TRUNCATED');
    const many = Buffer.from(thin); many.writeUInt32LE(100, 16); expect(code(many)).toBe('MACHO_BAD_HEADER');
    const huge = Buffer.from(thin); huge.writeUInt32LE(1 << 20, 16); expect(code(huge)).toBe('MACHO_LIMIT');
    const badSize = Buffer.from(thin); badSize.writeUInt32LE(4, 36); expect(code(badSize)).toBe('MACHO_BAD_HEADER');
    const uuidSize = Buffer.concat([thin, Buffer.alloc(8)]); uuidSize.writeUInt32LE(32, 36); uuidSize.writeUInt32LE(32, 20); expect(code(uuidSize)).toBe('MACHO_BAD_HEADER');
    const fat = writeFat([thin, writeMachO({ cputype: ARM64, uuid: '22'.repeat(16) })]);
    const fatPatch = (at: number, v: number) => { const b = Buffer.from(fat); b.writeUInt32BE(v >>> 0, at); return b; };
    expect(code(fat)).toBe('read');
    expect(code(fatPatch(4, 0))).toBe('MACHO_BAD_HEADER');
    expect(code(fatPatch(4, MAX_FAT_ARCHS + 1))).toBe('MACHO_LIMIT');
    expect(code(fatPatch(8, ARM64))).toBe('MACHO_BAD_HEADER');           // fat_arch cputype differs from the slice's
    expect(code(fatPatch(16, fat.length))).toBe('MACHO_TRUNCATED');      // slice offset past the end
    expect(code(fatPatch(16, 4))).toBe('MACHO_BAD_HEADER');              // slice inside the fat header
    expect(code(fatPatch(28 + 8, fat.readUInt32BE(16)))).toBe('MACHO_BAD_HEADER'); // two slices overlap
    // A universal file nested in a slice.
    expect(code(writeFat([Buffer.concat([Buffer.from([0xca, 0xfe, 0xba, 0xbe]), Buffer.alloc(60)])]))).toBe('MACHO_BAD_HEADER');
    // A Java class file also starts with 0xcafebabe: refused, not misread.
    const javaClass = Buffer.alloc(64); javaClass.writeUInt32BE(0xcafebabe, 0); javaClass.writeUInt16BE(0, 4); javaClass.writeUInt16BE(61, 6);
    expect(['MACHO_TRUNCATED', 'MACHO_LIMIT', 'MACHO_BAD_HEADER', 'MACHO_NOT_MACHO']).toContain(code(javaClass));
  });

  it('every truncation and thousands of mutations end in a MachOError or a read', () => {
    const fat = writeFat([writeMachO({ cputype: X86_64, uuid: '11'.repeat(16), extraCommands: 2 }), writeMachO({ cputype: PPC, is64: false, bigEndian: true, uuid: '22'.repeat(16) })], true);
    for (let n = 0; n < fat.length; n += n < 300 || (n > 4000 && n < 4300) || n > 8100 ? 1 : 97) {
      try { parseMachO(fat.subarray(0, n)); } catch (e) { expect(e).toBeInstanceOf(MachOError); }
    }
    const r = rng(13);
    const hot = [0, 4096, 8192];
    for (let i = 0; i < 4000; i++) {
      const b = Buffer.from(fat);
      for (let k = 0, n = 1 + Math.floor(r() * 3); k < n; k++) b[hot[Math.floor(r() * 3)]! + Math.floor(r() * 160)] = Math.floor(r() * 256);
      try {
        for (const s of parseMachO(b).slices) if (s.uuid !== undefined) expect(s.uuid).toMatch(/^[0-9a-f]{32}$/);
      } catch (e) { expect(e).toBeInstanceOf(MachOError); }
    }
  });
});
