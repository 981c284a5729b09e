// The native fixture build both provenance tests use: a tiny C program compiled with `gcc -g` and a
// build-id note, its debug file split off with objcopy, and the frames its own backtrace prints.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseStacktrace } from '../../processors/timeline/frames.ts';

const C = `#include <execinfo.h>
__attribute__((noinline)) void crash_here(void) { void *b[16]; int n = backtrace(b, 16); backtrace_symbols_fd(b, n, 1); }
__attribute__((noinline)) void middle(void) { crash_here(); }
int main(void) { middle(); return 0; }
`;

const buildIdOf = (file: string): string => /Build ID: ([0-9a-f]+)/.exec(execFileSync('readelf', ['-n', file], { encoding: 'utf8' }))![1]!;

export interface NativeFixture {
  binary: Buffer;
  debug: Buffer;
  buildId: string;
  /** The build-id of the libc the program is linked against (a frame no symbol bundle covers). */
  libcBuildId: string;
  /** The program's own backtrace, parsed. */
  printed: ReturnType<typeof parseStacktrace>;
}

/** Builds and runs the fixture in `dir` (svc.c, svc, svc.debug). */
export function buildNativeFixture(dir: string): NativeFixture {
  writeFileSync(path.join(dir, 'svc.c'), C);
  execFileSync('gcc', ['-g', '-O0', '-Wl,--build-id', '-o', 'svc', 'svc.c'], { cwd: dir });
  execFileSync('objcopy', ['--only-keep-debug', 'svc', 'svc.debug'], { cwd: dir });
  const svc = path.join(dir, 'svc');
  const libc = execFileSync('sh', ['-c', `ldd "${svc}" | awk '/libc.so/{print $3}'`], { encoding: 'utf8' }).trim();
  return {
    binary: readFileSync(svc), debug: readFileSync(path.join(dir, 'svc.debug')), buildId: buildIdOf(svc), libcBuildId: buildIdOf(libc),
    printed: parseStacktrace(execFileSync(svc, [], { encoding: 'utf8', cwd: dir })),
  };
}
