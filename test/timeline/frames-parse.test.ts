// processors/timeline/frames.ts on stack traces made here by the real runtimes (python3, node,
// java, go, gcc + glibc backtrace, AddressSanitizer, gdb) and by the OTel Python and JS SDKs'
// record_exception / recordException. Expected functions and lines come from the sources
// (MARK comments), never from the parser; native module offsets are resolved with lib/elf.ts
// against the binary and must land in the functions the program called.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { parseElf, SymbolIndex } from '../../lib/elf.ts';
import type { KeyValue } from '../../lib/otlp/proto.ts';
import { exceptionFrames, FRAME_ATTR, framesFromAttributes, MAX_FRAMES, parseStacktrace, type Frame } from '../../processors/timeline/frames.ts';
import { frameVaddr, lookupAddress } from '../../processors/provenance/resolve.ts';
import { MAX_SLOWDOWN, slowdown } from '../support/slowdown.ts';

let dir: string;
beforeAll(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'stella-frames-')); });
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

/** 1-based line numbers of `MARK:<name>` comments in a source text. */
const marks = (src: string) => Object.fromEntries(src.split('\n').flatMap((l, i) => [...l.matchAll(/MARK:(\w+)/g)].map((m) => [m[1]!, i + 1])));
const write = (name: string, text: string) => { const p = path.join(dir, name); writeFileSync(p, text); return p; };
const pick = (frames: Frame[], n: number) => frames.slice(0, n).map((f) => `${f.function}@${path.basename(f.file)}:${f.line}`);
const str = (key: string, value: string): KeyValue => ({ key, value: { stringValue: value } });
const arr = (key: string, values: string[]): KeyValue => ({ key, value: { arrayValue: { values: values.map((v) => ({ stringValue: v })) } } });

const PY = `import json, sys, traceback
def inner(n):
    raise ValueError("bad value %d" % n)  # MARK:inner
def middle(n):
    try:
        inner(n)  # MARK:middle
    except ValueError as e:
        raise RuntimeError("wrapped") from e  # MARK:raise
def run():
    middle(3)  # MARK:run
if sys.argv[1] == "plain":
    try:
        run()  # MARK:main
    except Exception:
        print(traceback.format_exc(), end="")
else:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exp = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exp))
    with tp.get_tracer("t").start_as_current_span("work") as span:
        try:
            run()  # MARK:otelmain
        except Exception as e:
            span.record_exception(e)
    ev = exp.get_finished_spans()[0].events[0]
    print(json.dumps({"name": ev.name, "attributes": dict(ev.attributes)}))
`;

describe('Python', () => {
  it('parses a real traceback with a chained cause, innermost frame of the raised exception first', () => {
    const file = write('boom.py', PY);
    const text = execFileSync('python3', [file, 'plain'], { encoding: 'utf8' });
    const m = marks(PY);
    const parsed = parseStacktrace(text);
    expect(parsed.runtime).toBe('python');
    expect(pick(parsed.frames, 6)).toEqual([
      `middle@boom.py:${m.raise}`, `run@boom.py:${m.run}`, `<module>@boom.py:${m.main}`,
      `inner@boom.py:${m.inner}`, `middle@boom.py:${m.middle}`,
    ]);
    expect(parsed.frames.map((f) => f.frame_index)).toEqual([0, 1, 2, 3, 4]);
    expect(parsed.frames[0]!.file).toBe(file);
  });

  it('parses the exception event the OTel Python SDK records (record_exception)', () => {
    const file = write('boom_otel.py', PY);
    const out = spawnSync('python3', [file, 'otel'], { encoding: 'utf8' });
    expect(out.stderr, 'pip install opentelemetry-sdk').not.toMatch(/ModuleNotFoundError/);
    const ev = JSON.parse(out.stdout) as { name: string; attributes: Record<string, string> };
    expect(ev.name).toBe('exception');
    const ex = exceptionFrames(Object.entries(ev.attributes).map(([k, v]) => str(k, String(v))), 'python')!;
    const m = marks(PY);
    expect(ex.exception_type).toBe('RuntimeError');
    expect(ex.runtime).toBe('python');
    expect(pick(ex.frames, 3)).toEqual([`middle@boom_otel.py:${m.raise}`, `run@boom_otel.py:${m.run}`, `<module>@boom_otel.py:${m.otelmain}`]);
  });
});

const JS = `function inner(n) { throw new TypeError('bad value ' + n); } // MARK:inner
function middle(n) { return inner(n); } // MARK:middle
class Worker { run() { return middle(3); } } // MARK:run
try { new Worker().run(); } catch (e) { process.stdout.write(e.stack); } // MARK:main
`;

describe('Node.js', () => {
  it('parses a real V8 Error.stack', () => {
    const file = write('boom.cjs', JS);
    const text = execFileSync('node', [file], { encoding: 'utf8' });
    const m = marks(JS);
    const parsed = parseStacktrace(text);
    expect(parsed.runtime).toBe('node');
    expect(pick(parsed.frames, 4)).toEqual([`inner@boom.cjs:${m.inner}`, `middle@boom.cjs:${m.middle}`, `Worker.run@boom.cjs:${m.run}`, `Object.<anonymous>@boom.cjs:${m.main}`]);
    expect(parsed.frames[0]!.column).toBeGreaterThan(0);
    expect(parsed.frames.some((f) => f.file.startsWith('node:internal'))).toBe(true);
  });

  it('parses the exception event the OTel JS SDK records (recordException)', () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const span = provider.getTracer('t').startSpan('work');
    function throwingHelper(): never { throw new RangeError('out of range'); }
    let line = 0;
    // The call to throwingHelper is on the line this Error is made on.
    try { line = Number(new Error().stack!.split('\n')[1]!.match(/:(\d+):\d+\)?$/)![1]); throwingHelper(); } catch (e) { span.recordException(e as Error); }
    span.end();
    const ev = exporter.getFinishedSpans()[0]!.events[0]!;
    expect(ev.name).toBe('exception');
    const attrs = Object.entries(ev.attributes ?? {}).map(([k, v]) => str(k, String(v)));
    const ex = exceptionFrames(attrs, 'nodejs')!;
    expect(ex.exception_type).toBe('RangeError');
    expect(ex.runtime).toBe('node');
    expect(ex.frames[0]).toMatchObject({ function: 'throwingHelper', file: expect.stringMatching(/frames-parse\.test\.ts$/) });
    expect(ex.frames[1]!.line).toBe(line);
  });
});

const JAVA = `public class Boom {
  static void inner(int n) { throw new IllegalStateException("bad " + n); } // MARK:inner
  static void middle(int n) {
    try { inner(n); } // MARK:middle
    catch (IllegalStateException e) { throw new RuntimeException("wrapped", e); } // MARK:wrap
  }
  public static void main(String[] a) {
    try { middle(3); } // MARK:main
    catch (RuntimeException e) { java.io.StringWriter w = new java.io.StringWriter(); e.printStackTrace(new java.io.PrintWriter(w)); System.out.print(w); }
  }
}
`;

describe('Java', () => {
  it('parses a real printStackTrace with Caused by and module-qualified frames', () => {
    const file = write('Boom.java', JAVA);
    const text = execFileSync('java', [file], { encoding: 'utf8', cwd: dir });
    const m = marks(JAVA);
    const parsed = parseStacktrace(text);
    expect(parsed.runtime).toBe('java');
    const names = parsed.frames.map((f) => `${f.function}@${f.file}:${f.line}`);
    expect(names.slice(0, 2)).toEqual([`Boom.middle@Boom.java:${m.wrap}`, `Boom.main@Boom.java:${m.main}`]);
    // The cause's frames follow ("... n more" lines are not frames).
    expect(names).toContain(`Boom.inner@Boom.java:${m.inner}`);
    expect(names).toContain(`Boom.middle@Boom.java:${m.middle}`);
    // The source launcher's frames carry their JPMS module.
    expect(parsed.frames.some((f) => f.module === 'jdk.compiler' || f.module === 'java.base')).toBe(true);
  });
});

const GO = `package main

//go:noinline
func inner(n int) { panic("bad value") } // MARK:inner

//go:noinline
func middle(n int) { inner(n + 1) } // MARK:middle

func main() { middle(3) } // MARK:main
`;

describe('Go', () => {
  it('parses a real panic stack (first goroutine)', () => {
    const file = write('boom.go', GO);
    const out = spawnSync('go', ['run', file], { encoding: 'utf8', cwd: dir, env: { ...process.env, GOFLAGS: '-mod=mod', GO111MODULE: 'off' } });
    expect(out.stderr).toMatch(/panic: bad value/);
    const m = marks(GO);
    const parsed = parseStacktrace(out.stderr);
    expect(parsed.runtime).toBe('go');
    expect(pick(parsed.frames, 3)).toEqual([`main.inner@boom.go:${m.inner}`, `main.middle@boom.go:${m.middle}`, `main.main@boom.go:${m.main}`]);
    expect(parsed.frames[0]!.module).toBe('main');
  }, 120_000);
});

const C = `#include <execinfo.h>
#include <stdlib.h>
#include <stddef.h>
__attribute__((noinline)) void crash_here(int mode) {
  if (mode == 0) { void *b[16]; int n = backtrace(b, 16); backtrace_symbols_fd(b, n, 1); return; }
  int *p = malloc(4); volatile int v = p[mode]; (void)v; free(p); // MARK:overflow
}
__attribute__((noinline)) void middle(int mode) { crash_here(mode); }
int main(int argc, char **argv) { (void)argv; middle(argc > 1 ? 10 : 0); return 0; }
`;

describe('native', () => {
  let elfIndex: SymbolIndex;
  let prog: string;
  let asan: string;
  beforeAll(() => {
    write('boom.c', C);
    prog = path.join(dir, 'boom');
    asan = path.join(dir, 'boom-asan');
    execFileSync('gcc', ['-g', '-O0', '-Wl,--build-id', '-o', prog, 'boom.c'], { cwd: dir });
    execFileSync('gcc', ['-g', '-O0', '-fsanitize=address', '-Wl,--build-id', '-o', asan, 'boom.c'], { cwd: dir });
    elfIndex = SymbolIndex.fromElf(parseElf(readFileSync(prog)));
  });

  const resolve = (bin: string, index: SymbolIndex, f: Frame) => {
    const vaddr = frameVaddr(parseElf(readFileSync(bin)).type, f);
    if (vaddr === undefined) return undefined;
    // Return addresses of outer frames point after the call: look up ip - 1.
    return index.lookup(lookupAddress(vaddr, f.frame_index))?.name;
  };

  it('parses glibc backtrace_symbols output and its module offsets resolve to the called functions', () => {
    const text = execFileSync(prog, [], { encoding: 'utf8', cwd: dir });
    const parsed = parseStacktrace(text);
    expect(parsed.runtime).toBe('native');
    const ours = parsed.frames.filter((f) => f.module.endsWith('boom'));
    expect(ours.every((f) => f.module_offset !== '' && f.ip !== '')).toBe(true);
    expect(ours.slice(0, 3).map((f) => resolve(prog, elfIndex, f))).toEqual(['crash_here', 'middle', 'main']);
    expect(parsed.frames.some((f) => f.module.includes('libc.so'))).toBe(true);
  });

  it('parses backtrace_symbols of a non-PIE executable (ip only) and resolves its ips as addresses', () => {
    const nopie = path.join(dir, 'boom-nopie');
    execFileSync('gcc', ['-g', '-O0', '-no-pie', '-Wl,--build-id', '-o', nopie, 'boom.c'], { cwd: dir });
    const parsed = parseStacktrace(execFileSync(nopie, [], { encoding: 'utf8', cwd: dir }));
    const ours = parsed.frames.filter((f) => f.module.endsWith('boom-nopie'));
    expect(ours.every((f) => f.module_offset === '' && f.ip !== '')).toBe(true);
    const index = SymbolIndex.fromElf(parseElf(readFileSync(nopie)));
    expect(ours.slice(0, 3).map((f) => resolve(nopie, index, f))).toEqual(['crash_here', 'middle', 'main']);
  });

  it('parses AddressSanitizer reports, symbolized and not, reading only the crash stack', () => {
    const sym = spawnSync(asan, ['x'], { encoding: 'utf8', cwd: dir, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' } });
    const parsed = parseStacktrace(sym.stderr);
    expect(parsed.runtime).toBe('native');
    const m = marks(C);
    expect(parsed.frames.slice(0, 3).map((f) => `${f.function}@${path.basename(f.file)}`)).toEqual(['crash_here@boom.c', 'middle@boom.c', 'main@boom.c']);
    expect(parsed.frames[0]!.line).toBe(m.overflow);
    // The "allocated by thread T0 here" stack is not part of the crash stack.
    expect(parsed.frames.filter((f) => f.function.includes('malloc'))).toEqual([]);

    const raw = spawnSync(asan, ['x'], { encoding: 'utf8', cwd: dir, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0:symbolize=0' } });
    const unsym = parseStacktrace(raw.stderr);
    expect(unsym.runtime).toBe('native');
    const asanIndex = SymbolIndex.fromElf(parseElf(readFileSync(asan)));
    const ours = unsym.frames.filter((f) => f.module === asan);
    expect(ours.length).toBeGreaterThanOrEqual(3);
    expect(ours.slice(0, 3).map((f) => resolve(asan, asanIndex, f))).toEqual(['crash_here', 'middle', 'main']);
    expect(ours[0]!.ip).toMatch(/^0x[0-9a-f]+$/);
  });

  it('parses a gdb backtrace', () => {
    const out = spawnSync('gdb', ['-q', '-batch', '-ex', 'break crash_here', '-ex', 'run', '-ex', 'bt', prog], { encoding: 'utf8', cwd: dir, timeout: 30_000 });
    const bt = out.stdout.split('\n').filter((l) => l.startsWith('#')).join('\n');
    const parsed = parseStacktrace(bt);
    expect(parsed.runtime).toBe('native');
    expect(parsed.frames.map((f) => f.function)).toEqual(['crash_here', 'middle', 'main']);
    expect(parsed.frames[1]!.ip).toMatch(/^0x[0-9a-f]+$/);
    expect(parsed.frames[2]!.file).toBe('boom.c');
  });
});

describe('the stella.frames.* convention and hostile input', () => {
  it('takes native frames with ip, module offset and build-id from the event attributes', () => {
    const ex = exceptionFrames([
      str('exception.type', 'SIGSEGV'), str('exception.stacktrace', 'Traceback (most recent call last):\n  File "x.py", line 1, in f\n'),
      arr(FRAME_ATTR.ips, ['0x55d1c7a0b149', '7f0cf0045249']),
      arr(FRAME_ATTR.modules, ['/srv/app', '/lib/libc.so.6']),
      arr(FRAME_ATTR.moduleOffsets, ['0x1149', '0x27249']),
      arr(FRAME_ATTR.buildIds, ['17106CF3FA0BD432F386CA0E86E77E6C5B301665', '']),
    ])!;
    expect(ex.runtime).toBe('native');
    expect(ex.problems).toEqual([]);
    expect(ex.frames.map((f) => [f.frame_index, f.ip, f.module, f.module_offset, f.build_id])).toEqual([
      [0, '0x55d1c7a0b149', '/srv/app', '0x1149', '17106cf3fa0bd432f386ca0e86e77e6c5b301665'],
      [1, '0x7f0cf0045249', '/lib/libc.so.6', '0x27249', ''],
    ]);
  });

  it('names malformed convention arrays instead of guessing', () => {
    const r = framesFromAttributes([arr(FRAME_ATTR.ips, ['0x1', 'zz']), arr(FRAME_ATTR.modules, ['/a']), arr(FRAME_ATTR.buildIds, ['0xnothex', 'ab'])]);
    expect(r.problems.map((p) => p.rule).sort()).toEqual(['FRAME_ARRAYS_LENGTH', 'FRAME_BUILD_ID_NOT_HEX', 'FRAME_IP_NOT_HEX']);
    expect(r.frames.map((f) => f.ip)).toEqual(['0x1', '']);
    expect(r.frames.map((f) => f.build_id)).toEqual(['', 'ab']);
    expect(r.frames[0]!.module).toBe('');
  });

  it('caps frames per exception and stays linear on pathological lines', () => {
    const many = Array.from({ length: 5000 }, (_, i) => `    at f${i} (/x.js:${i + 1}:1)`).join('\n');
    const p = parseStacktrace(`Error: x\n${many}`);
    expect(p.frames).toHaveLength(MAX_FRAMES);
    expect(p.truncated).toBe(true);
    const hostile = ['#1 0x1 in ' + 'a('.repeat(50_000), '    at ' + 'a ('.repeat(50_000), 'x'.repeat(300_000) + '(+0x1)[0x2]', 'File "' + '"'.repeat(100_000)];
    // Ordinary prose of the same lengths: a super-linear frame regex costs hundreds of times more.
    // Repeated so each measurement is tens of ms of CPU, not clock granularity.
    const benign = hostile.map((line) => 'the quick brown fox jumps over the lazy dog '.repeat(Math.ceil(line.length / 44)).slice(0, line.length));
    const REPEAT = 100;
    const s = slowdown(() => { for (let i = 0; i < REPEAT; i++) for (const line of hostile) parseStacktrace(line); },
      () => { for (let i = 0; i < REPEAT; i++) for (const line of benign) parseStacktrace(line); });
    expect(s.ratio, s.text).toBeLessThan(MAX_SLOWDOWN);
  });

  it('is not an exception without exception attributes', () => {
    expect(exceptionFrames([str('http.method', 'GET')])).toBeUndefined();
  });
});
