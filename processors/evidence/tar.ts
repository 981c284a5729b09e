// A minimal deterministic ustar writer/reader and gzip wrapper for evidence bundles.
// Determinism: paths sorted by byte order, mtime 0, uid/gid 0, mode 0644, empty user/group names,
// regular files only; gzip with zlib's header mtime 0 and the OS byte forced to 255 ("unknown")
// so the bytes do not depend on the platform that built them.
import { gunzipSync, gzipSync } from 'node:zlib';

const BLOCK = 512;

export class TarError extends Error {
  override readonly name = 'TarError';
}

export interface TarFile { path: string; bytes: Uint8Array }

function octal(n: number, width: number): string {
  // width-1 octal digits then NUL (ustar numeric field).
  const s = n.toString(8);
  if (s.length > width - 1) throw new TarError(`value ${n} does not fit a ${width}-byte tar field`);
  return `${s.padStart(width - 1, '0')}\0`;
}

function splitName(p: string): { name: string; prefix: string } {
  const b = Buffer.byteLength(p);
  if (b <= 100) return { name: p, prefix: '' };
  // ustar: prefix (≤155 bytes) + '/' + name (≤100 bytes).
  for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) {
    const prefix = p.slice(0, i);
    const name = p.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return { name, prefix };
  }
  throw new TarError(`path too long for ustar: ${p}`);
}

function header(path: string, size: number): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  const { name, prefix } = splitName(path);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii'); // checksum computed with this field as spaces
  h.write('0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

const comparePaths = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** A ustar archive of the files, sorted by path. */
export function writeTar(files: readonly TarFile[]): Buffer {
  const sorted = [...files].sort((a, b) => comparePaths(a.path, b.path));
  const parts: Uint8Array[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const f = sorted[i]!;
    if (i > 0 && sorted[i - 1]!.path === f.path) throw new TarError(`duplicate path ${f.path}`);
    parts.push(header(f.path, f.bytes.length), f.bytes);
    const pad = (BLOCK - (f.bytes.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

function readString(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const end = s.indexOf(0);
  return s.subarray(0, end < 0 ? len : end).toString('utf8');
}

function readOctal(b: Buffer, start: number, len: number, what: string): number {
  const s = readString(b, start, len).trim();
  if (!/^[0-7]+$/.test(s)) throw new TarError(`tar ${what} field is not octal`);
  return parseInt(s, 8);
}

/** Parse a ustar archive: regular files only, checksums checked, paths unique and sorted. */
export function readTar(tar: Uint8Array): TarFile[] {
  const b = Buffer.from(tar.buffer, tar.byteOffset, tar.byteLength);
  const out: TarFile[] = [];
  let pos = 0;
  for (;;) {
    if (pos + BLOCK > b.length) throw new TarError('tar archive ends without its end-of-archive blocks');
    const h = b.subarray(pos, pos + BLOCK);
    if (h.every((x) => x === 0)) break;
    const want = readOctal(h, 148, 8, 'checksum');
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    if (sum !== want) throw new TarError(`tar header checksum mismatch at byte ${pos}`);
    if (readString(h, 257, 6) !== 'ustar') throw new TarError('not a ustar archive');
    const type = String.fromCharCode(h[156]!);
    if (type !== '0' && type !== '\0') throw new TarError(`tar entry type "${type}" is not a regular file`);
    const name = readString(h, 0, 100);
    const prefix = readString(h, 345, 155);
    const path = prefix ? `${prefix}/${name}` : name;
    const size = readOctal(h, 124, 12, 'size');
    pos += BLOCK;
    if (pos + size > b.length) throw new TarError(`tar entry ${path} is truncated`);
    if (out.length > 0 && comparePaths(out[out.length - 1]!.path, path) >= 0) throw new TarError(`tar entries are not in sorted unique order at ${path}`);
    out.push({ path, bytes: b.subarray(pos, pos + size) });
    pos += size + ((BLOCK - (size % BLOCK)) % BLOCK);
  }
  return out;
}

const GZIP_OS_UNKNOWN = 255;

export function gzipDeterministic(data: Uint8Array, level = 6): Buffer {
  const gz = gzipSync(data, { level });
  // zlib writes mtime 0 already; pin the OS byte (offset 9) so builds agree across platforms.
  gz.writeUInt32LE(0, 4);
  gz[9] = GZIP_OS_UNKNOWN;
  return gz;
}

export function gunzip(data: Uint8Array): Buffer {
  try {
    return gunzipSync(data);
  } catch (e) {
    throw new TarError(`not a valid gzip stream (${(e as Error).message})`);
  }
}
