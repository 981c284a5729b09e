// PDB identity reader (docs/provenance.md "PDB and Mach-O readers"): the GUID and age that key a
// PDB to the image that references it, read from the bytes: MSF 7.00 superblock -> stream
// directory -> PDB info stream (stream 1: version, signature, age, GUID) and the DBI stream
// (stream 3) header's age. Formats: LLVM's docs/PDB/MsfFile.rst, PdbStream.rst, DbiStream.rst.
// Symbol tables (publics, module symbols) are not read. Every read is bounds-checked; a failure is
// a PdbError with a code naming the rule broken.

export type PdbErrorCode =
  | 'PDB_NOT_MSF'         // no "Microsoft C/C++ MSF 7.00" superblock magic
  | 'PDB_BAD_SUPERBLOCK'  // block size, free block map or block counts not as the format allows
  | 'PDB_TRUNCATED'       // a block, the directory or a stream runs past the end of the file
  | 'PDB_BAD_DIRECTORY'   // the stream directory's sizes and block lists do not add up
  | 'PDB_NO_INFO_STREAM'  // stream 1 missing or shorter than its 28-byte header
  | 'PDB_BAD_INFO_STREAM' // an unknown info-stream version
  | 'PDB_BAD_DBI_STREAM'; // stream 3 present but not a DBI header (signature -1)

export class PdbError extends Error {
  constructor(readonly code: PdbErrorCode, message: string) { super(`${code}: ${message}`); this.name = 'PdbError'; }
}

/** "Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0" (32 bytes). */
export const MSF7_MAGIC = Buffer.concat([Buffer.from('Microsoft C/C++ MSF 7.00\r\n\x1aDS', 'latin1'), Buffer.alloc(3)]);
const BLOCK_SIZES = new Set([512, 1024, 2048, 4096]);
/** PdbStreamVersion values (PdbStream.rst); VC70 is what every modern toolchain writes. */
const PDB_VERSIONS = new Set([19941610, 19950623, 19950814, 19960307, 19970604, 19990604, 20000404, 20030901, 20091201, 20140508]);
const NIL_STREAM = 0xffffffff;

export interface PdbIdentity {
  /** PDB info stream version (20000404 = VC70). */
  version: number;
  /** time() when the PDB was written (not an identity: the GUID is). */
  signature: number;
  /** Age in the PDB info stream: how many times the file was written. */
  infoAge: number;
  /** Age in the DBI stream header, undefined when the PDB has no DBI stream. */
  dbiAge: number | undefined;
  /**
   * The age that matches the image's CodeView (RSDS) record: the DBI age when there is a DBI
   * stream, else the info-stream age. (Microsoft's symbol server keys ntdll.pdb by the DBI age
   * while its info stream says a higher one: llvm-project issue 57300.)
   */
  age: number;
  /** The GUID as printed by debuggers: 8-4-4-4-12 uppercase hex (Data1..3 little-endian, Data4 as bytes). */
  guid: string;
  blockSize: number;
  numStreams: number;
}

/** Formats a 16-byte Windows GUID (Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, Data4 8 bytes). */
export function formatGuid(b: Uint8Array): string {
  const v = Buffer.from(b.buffer, b.byteOffset, 16);
  const h = (n: number, w: number) => n.toString(16).toUpperCase().padStart(w, '0');
  const d4 = v.subarray(8, 16).toString('hex').toUpperCase();
  return `${h(v.readUInt32LE(0), 8)}-${h(v.readUInt16LE(4), 4)}-${h(v.readUInt16LE(6), 4)}-${d4.slice(0, 4)}-${d4.slice(4)}`;
}

export const isMsf = (bytes: Uint8Array): boolean => bytes.length >= 32 && Buffer.from(bytes.buffer, bytes.byteOffset, 32).equals(MSF7_MAGIC);

/** Reads the identity of a PDB (MSF 7.00) file. */
export function readPdbIdentity(input: Uint8Array): PdbIdentity {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (!isMsf(buf)) throw new PdbError('PDB_NOT_MSF', 'not an MSF 7.00 (PDB) file: the superblock magic is missing');
  if (buf.length < 56) throw new PdbError('PDB_TRUNCATED', 'the superblock is cut short');
  const blockSize = buf.readUInt32LE(32);
  const freeBlockMap = buf.readUInt32LE(36);
  const numBlocks = buf.readUInt32LE(40);
  const numDirectoryBytes = buf.readUInt32LE(44);
  const blockMapAddr = buf.readUInt32LE(52);
  if (!BLOCK_SIZES.has(blockSize)) throw new PdbError('PDB_BAD_SUPERBLOCK', `block size ${blockSize} is not 512, 1024, 2048 or 4096`);
  if (freeBlockMap !== 1 && freeBlockMap !== 2) throw new PdbError('PDB_BAD_SUPERBLOCK', `free block map block ${freeBlockMap} is not 1 or 2`);
  if (numBlocks < 3) throw new PdbError('PDB_BAD_SUPERBLOCK', `${numBlocks} blocks cannot hold a superblock, free block map and directory`);
  if (numBlocks * blockSize > buf.length) throw new PdbError('PDB_TRUNCATED', `the superblock declares ${numBlocks} blocks of ${blockSize} bytes; the file has ${buf.length} bytes`);
  if (blockMapAddr === 0 || blockMapAddr >= numBlocks) throw new PdbError('PDB_BAD_SUPERBLOCK', `block map address ${blockMapAddr} is outside the file's blocks`);
  if (numDirectoryBytes < 4) throw new PdbError('PDB_BAD_DIRECTORY', 'the stream directory is empty');
  const numDirBlocks = Math.ceil(numDirectoryBytes / blockSize);
  if (numDirBlocks * 4 > blockSize) throw new PdbError('PDB_BAD_DIRECTORY', `the directory's ${numDirBlocks} blocks do not fit one block map block`);

  const blockAt = (i: number, what: string): Buffer => {
    if (i === 0 || i >= numBlocks) throw new PdbError('PDB_BAD_DIRECTORY', `${what} points at block ${i}, outside 1..${numBlocks - 1}`);
    return buf.subarray(i * blockSize, (i + 1) * blockSize);
  };
  const blockMap = blockAt(blockMapAddr, 'the block map');
  const dir = Buffer.allocUnsafe(numDirBlocks * blockSize);
  for (let i = 0; i < numDirBlocks; i++) blockAt(blockMap.readUInt32LE(i * 4), 'the stream directory').copy(dir, i * blockSize);
  const directory = dir.subarray(0, numDirectoryBytes);

  const numStreams = directory.readUInt32LE(0);
  // Every stream takes at least its 4-byte size in the directory: a count beyond that is a lie.
  if (numStreams > (numDirectoryBytes - 4) / 4) throw new PdbError('PDB_BAD_DIRECTORY', `${numStreams} streams do not fit a ${numDirectoryBytes}-byte directory`);
  const sizes: number[] = [];
  for (let i = 0; i < numStreams; i++) sizes.push(directory.readUInt32LE(4 + i * 4));
  // Block lists follow the sizes, in stream order; locate those of streams 1 and 3 only.
  const listStart: number[] = [];
  let at = 4 + numStreams * 4;
  for (let i = 0; i < numStreams; i++) {
    listStart.push(at);
    const n = sizes[i] === NIL_STREAM ? 0 : Math.ceil(sizes[i]! / blockSize);
    if (n > numBlocks) throw new PdbError('PDB_BAD_DIRECTORY', `stream ${i} (${sizes[i]} bytes) needs more blocks than the file has`);
    at += n * 4;
    if (at > numDirectoryBytes) throw new PdbError('PDB_BAD_DIRECTORY', `the block lists run past the ${numDirectoryBytes}-byte directory (stream ${i})`);
  }
  /** The first `want` bytes of stream `s` (fewer when the stream is shorter), undefined when absent. */
  const readStream = (s: number, want: number): Buffer | undefined => {
    if (s >= numStreams || sizes[s] === NIL_STREAM || sizes[s] === 0) return undefined;
    const len = Math.min(want, sizes[s]!);
    const out = Buffer.allocUnsafe(len);
    for (let off = 0, k = 0; off < len; off += blockSize, k++) {
      const blk = blockAt(directory.readUInt32LE(listStart[s]! + k * 4), `stream ${s}`);
      blk.copy(out, off, 0, Math.min(blockSize, len - off));
    }
    return out;
  };

  const info = readStream(1, 28);
  if (!info || info.length < 28) throw new PdbError('PDB_NO_INFO_STREAM', 'stream 1 (the PDB info stream) is missing or shorter than its 28-byte header');
  const version = info.readUInt32LE(0);
  if (!PDB_VERSIONS.has(version)) throw new PdbError('PDB_BAD_INFO_STREAM', `unknown PDB info stream version ${version}`);
  const signature = info.readUInt32LE(4);
  const infoAge = info.readUInt32LE(8);
  const guid = formatGuid(info.subarray(12, 28));

  let dbiAge: number | undefined;
  const dbi = readStream(3, 12);
  if (dbi) {
    if (dbi.length < 12 || dbi.readInt32LE(0) !== -1) throw new PdbError('PDB_BAD_DBI_STREAM', 'stream 3 is not a DBI stream (its header must start with signature -1)');
    dbiAge = dbi.readUInt32LE(8);
  }
  return { version, signature, infoAge, dbiAge, age: dbiAge ?? infoAge, guid, blockSize, numStreams };
}
