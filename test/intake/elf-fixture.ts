// Real ELF fixtures for the symbol intake tests: a tiny C program compiled with `gcc -g` (build-id
// note present), the same without a build-id, and the build-id as binutils' readelf prints it (an
// oracle independent of the project's ELF reader).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const SOURCE = `#include <stdio.h>
int crash_here(int depth) { if (depth == 0) { int *p = 0; return *p; } return crash_here(depth - 1) + 1; }
int main(int argc, char **argv) { (void)argv; printf("%d\\n", argc > 5 ? crash_here(argc) : 0); return 0; }
`;

/** The first C compiler found: gcc, else cc, else clang. */
export function compiler(): string {
  for (const c of ['gcc', 'cc', 'clang']) {
    try { execFileSync(c, ['--version'], { stdio: 'ignore' }); return c; } catch { /* next */ }
  }
  throw new Error('no C compiler (gcc, cc or clang) on PATH: apt-get install gcc');
}

export interface ElfFixture { dir: string; withId: string; withoutId: string; buildId: string; cc: string; version: string }

export function buildElfFixture(): ElfFixture {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-elf-'));
  const src = path.join(dir, 'app.c');
  writeFileSync(src, SOURCE);
  const cc = compiler();
  const withId = path.join(dir, 'app');
  const withoutId = path.join(dir, 'app-no-build-id');
  execFileSync(cc, ['-g', '-O0', '-Wl,--build-id=sha1', '-o', withId, src]);
  execFileSync(cc, ['-g', '-O0', '-Wl,--build-id=none', '-o', withoutId, src]);
  const notes = execFileSync('readelf', ['-n', withId], { encoding: 'utf8' });
  const m = /Build ID:\s*([0-9a-f]+)/.exec(notes);
  if (!m) throw new Error('readelf shows no build-id for the fixture');
  const version = execFileSync(cc, ['-dumpfullversion', '-dumpversion'], { encoding: 'utf8' }).trim().split('\n')[0]!;
  return { dir, withId, withoutId, buildId: m[1]!, cc, version };
}

export const readBytes = (p: string): Buffer => readFileSync(p);
