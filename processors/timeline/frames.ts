// Stack frames from the exceptions services already report (pure; no I/O). docs/provenance.md
// documents the formats and the native-frame attribute convention.
//  * OTel exception events on spans (event name `exception`) and exception attributes on log
//    records: `exception.type`, `exception.stacktrace` (semantic conventions).
//  * The stacktrace text is parsed for Python, Java (and JVM languages), Node.js, Go and native
//    frames (sanitizer `#N 0x… in fn (module+0x…)`, gdb `#N 0x… in fn (…) at file:line`, glibc
//    backtrace_symbols `module(fn+0x…)[0x…]`).
//  * Native frames with exact ip / module offset / build-id come from the `stella.frames.*`
//    parallel-array attributes on the same event (our documented convention); when present they
//    are authoritative for the native frames.
// Frame 0 is the innermost frame (where the exception was raised) for every runtime.
import { createHash } from 'node:crypto';
import { toHex, type ExportLogsServiceRequest, type ExportTraceServiceRequest, type KeyValue } from '../../lib/otlp/proto.ts';
import { dateTime64, type Row } from '../../lib/store/index.ts';
import { anyValueString } from './attributes.ts';
import { logRecordDigest, logTimestamp, resourceDigest, serviceName } from './otel-rows.ts';

export const FRAMES_TABLE = 'frames';

export type Runtime = 'python' | 'java' | 'node' | 'go' | 'native';

export interface Frame {
  frame_index: number;
  runtime: Runtime;
  function: string;
  /** Native: the module (binary / shared object) path; Java: the JPMS module; Go: the package path. */
  module: string;
  file: string;
  /** 0 = unknown. */
  line: number;
  column: number;
  /** Instruction pointer as lowercase 0x-hex, '' when unknown. */
  ip: string;
  /** Offset of ip in its module (module load base + offset = ip), 0x-hex, '' when unknown. */
  module_offset: string;
  /** ELF GNU build-id (lowercase hex), PDB GUID (32 upper hex) + age, or dSYM UUID; '' when unknown. */
  build_id: string;
  pdb_guid: string;
  pdb_age: number;
  dsym_uuid: string;
}

export interface ParsedStack { runtime: Runtime | 'unknown'; frames: Frame[]; truncated: boolean }

/** Attribute names of the native-frame convention (docs/provenance.md). */
export const FRAME_ATTR = {
  ips: 'stella.frames.ip',
  modules: 'stella.frames.module',
  moduleOffsets: 'stella.frames.module_offset',
  buildIds: 'stella.frames.build_id',
  functions: 'stella.frames.function',
  pdbs: 'stella.frames.pdb',
  dsyms: 'stella.frames.dsym_uuid',
} as const;

export const EXCEPTION_EVENT = 'exception';
export const MAX_FRAMES = 512;
/** Longer stacktraces are cut here (bytes of text parsed); the rest is not read. */
export const MAX_STACKTRACE_CHARS = 256 * 1024;
/** Frame lines longer than this are not frames (skipped). */
export const MAX_LINE_CHARS = 4096;

const empty = (runtime: Runtime): Frame => ({
  frame_index: 0, runtime, function: '', module: '', file: '', line: 0, column: 0, ip: '', module_offset: '',
  build_id: '', pdb_guid: '', pdb_age: 0, dsym_uuid: '',
});
const hex = (h: string | undefined): string => (h ? `0x${BigInt(`0x${h}`).toString(16)}` : '');
const int = (s: string | undefined): number => { const n = s ? Number(s) : 0; return Number.isSafeInteger(n) && n >= 0 && n <= 0xffff_ffff ? n : 0; };

// ---- one parser per runtime: each returns frames in the order the runtime printed them --------

const PY_FILE = /^\s*(?:\|\s*)*File "(.*)", line (\d+)(?:, in (.*))?$/;
/** Python: tracebacks print the innermost call last; chained exceptions print the raised one last. */
function parsePython(lines: string[]): Frame[][] {
  const blocks: Frame[][] = [];
  let cur: Frame[] | undefined;
  for (const l of lines) {
    if (/^\s*(?:\|\s*)*Traceback \(most recent call last\):/.test(l)) { cur = []; blocks.push(cur); continue; }
    const m = PY_FILE.exec(l);
    if (!m) continue;
    if (!cur) { cur = []; blocks.push(cur); }
    cur.push({ ...empty('python'), file: m[1]!, line: int(m[2]), function: m[3] ?? '' });
  }
  // Innermost first: the last block (the exception actually raised) first, each block reversed.
  return blocks.reverse().map((b) => b.reverse());
}

const JAVA_AT = /^\s*at\s+(\S+?)\((.*)\)\s*(?:~?\[.*\])?$/;
/** Java/JVM: `at [loader/][module[@ver]/]pkg.Class.method(File.java:12)`, innermost first; `Caused by:` blocks follow. */
function parseJava(lines: string[]): Frame[][] {
  const blocks: Frame[][] = [[]];
  for (const l of lines) {
    if (/^\s*(?:Caused by|Suppressed): /.test(l)) { blocks.push([]); continue; }
    const m = JAVA_AT.exec(l);
    if (!m) continue;
    const parts = m[1]!.split('/');
    const qualified = parts.pop()!;
    if (!/^[\w$.<>-]+\.[\w$<>-]+$/.test(qualified)) continue;
    const module = parts.filter((p) => p !== '').slice(-1)[0] ?? '';
    const src = /^(.*?)(?::(\d+))?$/.exec(m[2]!)!;
    const file = src[1] === 'Native Method' || src[1] === 'Unknown Source' ? '' : src[1]!;
    blocks[blocks.length - 1]!.push({ ...empty('java'), function: qualified, module: module.replace(/@.*$/, ''), file, line: int(src[2]) });
  }
  return blocks.filter((b) => b.length > 0);
}

const NODE_AT = /^\s*at (?:async )?(?:(.+?) \((.+)\)|(.+))$/;
/** Node.js / V8: `at fn (file:line:col)` or `at file:line:col`, innermost first. */
function parseNode(lines: string[]): Frame[][] {
  const frames: Frame[] = [];
  for (const l of lines) {
    if (/^\s*at\s+\S+?\(.*\)\s*$/.test(l) && !/\s\(/.test(l.trim())) continue; // Java shape (no space before '(')
    const m = NODE_AT.exec(l);
    if (!m) continue;
    const fn = m[1] ?? '';
    let loc = m[2] ?? m[3]!;
    // eval frames: "eval at <anonymous> (file:1:2), <anonymous>:1:1" -> use the outer location.
    const evalAt = /\((.+?:\d+:\d+)\)/.exec(loc);
    if (evalAt && loc.startsWith('eval at')) loc = evalAt[1]!;
    const pos = /^(.*?):(\d+):(\d+)$/.exec(loc);
    if (pos) frames.push({ ...empty('node'), function: fn, file: pos[1]!, line: int(pos[2]), column: int(pos[3]) });
    else if (m[1] !== undefined || /^(native|<anonymous>|index \d+)$/.test(loc)) frames.push({ ...empty('node'), function: fn || loc, file: m[1] !== undefined && !/^index \d+$/.test(loc) ? loc : '' });
  }
  return [frames];
}

const GO_FUNC = /^(?:created by )?([\w./%~-]+(?:\.[\w.()*%~\[\]-]+)?)(?:\((.*)\))?(?: in goroutine \d+)?$/;
const GO_LOC = /^\t(.+?):(\d+)(?: \+0x([0-9a-f]+))?$/;
/** Go: `goroutine N [...]:` then pairs of `pkg.fn(args)` / `\tfile:line +0xoff`, innermost first. Only the first goroutine is read. */
function parseGo(lines: string[]): Frame[][] {
  const frames: Frame[] = [];
  let goroutines = 0;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (/^goroutine \d+ \[.*\]:$/.test(l)) { if (++goroutines > 1) break; continue; }
    const loc = GO_LOC.exec(lines[i + 1] ?? '');
    const fn = loc ? GO_FUNC.exec(l) : null;
    if (!fn || !loc) continue;
    const name = fn[1]!;
    // Package path = everything before the first '.' after the last '/'.
    const slash = name.lastIndexOf('/');
    const dot = name.indexOf('.', slash + 1);
    frames.push({ ...empty('go'), function: name, module: dot > 0 ? name.slice(0, dot) : '', file: loc[1]!, line: int(loc[2]) });
    i++;
  }
  return [frames];
}

// Sanitizers: "#3 0x7f.. in fn file:12:3", "#3 0x7f.. in fn (/lib/x.so+0x2724a) (BuildId: ab..)", "#3 0x7f..  (/bin/a+0x11af)".
const SAN = /^\s*#(\d+)\s+0x([0-9a-fA-F]+)\s+(?:in\s+(.+?))?\s*(?:\((.+?)\+0x([0-9a-fA-F]+)\)|\s(\S+?):(\d+)(?::(\d+))?)?(?:\s+\(BuildId: ([0-9a-fA-F]+)\))?\s*$/;
// gdb: "#1  0x0000555555555147 in main () at segv.c:3", "#0  crash_here (p=0x0) at segv.c:2", "#2 0x7f.. in __libc_start_main () from /lib/libc.so.6".
const GDB = /^\s*#(\d+)\s+(?:0x([0-9a-fA-F]+) in )?(\S+) \(.*?\)(?: at (.+):(\d+)| from (\S+))?\s*$/;
// glibc backtrace_symbols: "./prog(+0x1168)[0x55f6f0618168]", "/lib/libc.so.6(__libc_start_main+0x85)[0x7fe3ec079305]".
// Module offsets (here and in sanitizer reports) are ip - load bias, i.e. the ELF virtual address.
// A non-PIE executable's frames have no parentheses at all: "./prog[0x401155]".
const BTS = /^\s*([^\s(\[]+)(?:\(([^+()]*)(?:\+0x([0-9a-fA-F]+))?\))?\s*\[0x([0-9a-fA-F]+)\]\s*$/;
/** Native frames. For `#N` formats only the first stack is read (a second `#0` starts another report section). */
function parseNative(lines: string[]): Frame[][] {
  const frames: Frame[] = [];
  let seenHash = false;
  for (const l of lines) {
    let m = GDB.exec(l);
    if (m && !(m[3] ?? '').startsWith('(')) {
      if (m[1] === '0' && seenHash) break;
      seenHash = true;
      frames.push({ ...empty('native'), ip: hex(m[2]), function: m[3]!, file: m[4] ?? '', line: int(m[5]), module: m[6] ?? '' });
      continue;
    }
    m = SAN.exec(l);
    if (m) {
      if (m[1] === '0' && seenHash) break;
      seenHash = true;
      frames.push({ ...empty('native'), ip: hex(m[2]), function: m[3] ?? '', module: m[4] ?? '', module_offset: hex(m[5]),
        file: m[6] ?? '', line: int(m[7]), column: int(m[8]), build_id: (m[9] ?? '').toLowerCase() });
      continue;
    }
    m = BTS.exec(l);
    if (m) {
      // "fn+0x1f" is an offset from the symbol, "+0x1168" (no symbol) one from the module base.
      const sym = m[2] ?? '';
      frames.push({ ...empty('native'), module: m[1]!, function: sym, module_offset: sym ? '' : hex(m[3]), ip: hex(m[4]) });
    }
  }
  return [frames];
}

const PARSERS: Record<Runtime, (lines: string[]) => Frame[][]> = { python: parsePython, java: parseJava, node: parseNode, go: parseGo, native: parseNative };

/** Maps `telemetry.sdk.language` / `process.runtime.name` values to the parser tried first. */
const LANGUAGE_HINT: Record<string, Runtime> = { python: 'python', java: 'java', jvm: 'java', kotlin: 'java', scala: 'java', nodejs: 'node', js: 'node',
  webjs: 'node', go: 'go', cpp: 'native', c: 'native', rust: 'native', swift: 'native' };

/**
 * Parses a stacktrace text: every runtime's parser is tried and the one that recognises the most
 * frames wins (the language hint breaks ties). Frames are numbered innermost first.
 */
export function parseStacktrace(text: string, languageHint?: string): ParsedStack {
  const cut = text.length > MAX_STACKTRACE_CHARS;
  // No runtime prints a frame longer than this; skipping longer lines keeps every regex linear-time.
  const lines = (cut ? text.slice(0, MAX_STACKTRACE_CHARS) : text).split(/\r?\n/).filter((l) => l.length <= MAX_LINE_CHARS);
  const hint = languageHint ? LANGUAGE_HINT[languageHint.toLowerCase()] : undefined;
  let best: { runtime: Runtime; frames: Frame[] } | undefined;
  for (const runtime of Object.keys(PARSERS) as Runtime[]) {
    const frames = PARSERS[runtime](lines).flat();
    if (frames.length === 0) continue;
    if (!best || frames.length > best.frames.length || (frames.length === best.frames.length && runtime === hint)) best = { runtime, frames };
  }
  if (!best) return { runtime: 'unknown', frames: [], truncated: cut };
  const truncated = cut || best.frames.length > MAX_FRAMES;
  const frames = best.frames.slice(0, MAX_FRAMES).map((f, i) => ({ ...f, frame_index: i }));
  return { runtime: best.runtime, frames, truncated };
}

// ---- the native-frame attribute convention ---------------------------------------------------

function stringArray(attrs: readonly KeyValue[] | null | undefined, key: string): string[] | undefined {
  for (const kv of attrs ?? []) {
    if (kv.key !== key) continue;
    const values = kv.value?.arrayValue?.values;
    if (!values) return undefined;
    return values.map((v) => anyValueString(v));
  }
  return undefined;
}

export interface FrameProblem { rule: string; detail: string }

const HEX = /^(?:0x)?([0-9a-fA-F]{1,16})$/;

/** Native frames from the `stella.frames.*` arrays; problems name the rule a malformed list broke. */
export function framesFromAttributes(attrs: readonly KeyValue[] | null | undefined): { frames: Frame[]; problems: FrameProblem[] } {
  const ips = stringArray(attrs, FRAME_ATTR.ips);
  if (!ips) return { frames: [], problems: [] };
  const problems: FrameProblem[] = [];
  const column = (key: string): string[] => {
    const v = stringArray(attrs, key);
    if (v && v.length !== ips.length) { problems.push({ rule: 'FRAME_ARRAYS_LENGTH', detail: `${key} has ${v.length} values, ${FRAME_ATTR.ips} has ${ips.length}` }); return []; }
    return v ?? [];
  };
  const modules = column(FRAME_ATTR.modules);
  const offsets = column(FRAME_ATTR.moduleOffsets);
  const buildIds = column(FRAME_ATTR.buildIds);
  const functions = column(FRAME_ATTR.functions);
  const pdbs = column(FRAME_ATTR.pdbs);
  const dsyms = column(FRAME_ATTR.dsyms);
  const frames: Frame[] = [];
  for (let i = 0; i < Math.min(ips.length, MAX_FRAMES); i++) {
    const ip = HEX.exec(ips[i]!);
    if (ips[i] !== '' && !ip) problems.push({ rule: 'FRAME_IP_NOT_HEX', detail: `frame ${i}: ip is not a 64-bit hex number` });
    const off = HEX.exec(offsets[i] ?? '');
    if (offsets[i] && !off) problems.push({ rule: 'FRAME_OFFSET_NOT_HEX', detail: `frame ${i}: module_offset is not a 64-bit hex number` });
    const bid = (buildIds[i] ?? '').toLowerCase();
    if (bid && !/^[0-9a-f]{2,128}$/.test(bid)) problems.push({ rule: 'FRAME_BUILD_ID_NOT_HEX', detail: `frame ${i}: build_id is not hex` });
    const pdb = /^\{?([0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12})\}?[+:/]?([0-9a-fA-F]{1,8})$/.exec(pdbs[i] ?? '');
    const dsym = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/.test(dsyms[i] ?? '') ? dsyms[i]!.replace(/-/g, '').toUpperCase() : '';
    frames.push({
      ...empty('native'), frame_index: i, ip: ip ? hex(ip[1]) : '', module: modules[i] ?? '', module_offset: off ? hex(off[1]) : '',
      build_id: /^[0-9a-f]{2,128}$/.test(bid) ? bid : '', function: functions[i] ?? '',
      pdb_guid: pdb ? pdb[1]!.replace(/-/g, '').toUpperCase() : '', pdb_age: pdb ? parseInt(pdb[2]!, 16) : 0, dsym_uuid: dsym,
    });
  }
  if (ips.length > MAX_FRAMES) problems.push({ rule: 'FRAME_LIMIT', detail: `${ips.length} frames, only the first ${MAX_FRAMES} kept` });
  return { frames, problems };
}

// ---- exceptions on spans and logs -> frame rows -----------------------------------------------

export interface ExceptionFrames {
  exception_type: string;
  runtime: Runtime | 'unknown';
  frames: Frame[];
  truncated: boolean;
  problems: FrameProblem[];
}

/** The frames of one exception (event or log attributes): the convention's native frames when present, else the parsed text. */
export function exceptionFrames(attrs: readonly KeyValue[] | null | undefined, languageHint?: string): ExceptionFrames | undefined {
  let type = '';
  let stack = '';
  let hasException = false;
  for (const kv of attrs ?? []) {
    if (kv.key === 'exception.type') { type = anyValueString(kv.value); hasException = true; }
    else if (kv.key === 'exception.stacktrace') { stack = anyValueString(kv.value); hasException = true; }
    else if (kv.key === FRAME_ATTR.ips) hasException = true;
  }
  if (!hasException) return undefined;
  const native = framesFromAttributes(attrs);
  if (native.frames.length > 0) return { exception_type: type, runtime: 'native', frames: native.frames, truncated: native.problems.some((p) => p.rule === 'FRAME_LIMIT'), problems: native.problems };
  const parsed = parseStacktrace(stack, languageHint);
  return { exception_type: type, runtime: parsed.runtime, frames: parsed.frames, truncated: parsed.truncated, problems: native.problems };
}

const attr = (list: readonly KeyValue[] | null | undefined, key: string): string => {
  for (const kv of list ?? []) if (kv.key === key) return anyValueString(kv.value);
  return '';
};

/** Identity of the exception a frame row belongs to (span event or log record), stable under redelivery. */
export const exceptionId = (...parts: string[]): string => createHash('sha256').update(`stella-exception/v1\n${parts.join('\n')}`).digest('hex').slice(0, 32);

function frameRow(tenant: string, ts: string, traceId: string, spanId: string, source: 'span_event' | 'log', exception_id: string,
  service: string, ex: ExceptionFrames, f: Frame): Row {
  return {
    tenant_id: tenant, ts: dateTime64(ts), trace_id: traceId, span_id: spanId, source, exception_id, service_name: service,
    exception_type: ex.exception_type, runtime: f.runtime, frame_index: f.frame_index, function: f.function, module: f.module,
    file: f.file, line: f.line, column: f.column,
    // UInt64 as decimal strings (JSONEachRow), null when unknown.
    ip: f.ip ? BigInt(f.ip).toString() : null, module_offset: f.module_offset ? BigInt(f.module_offset).toString() : null,
    build_id: f.build_id, pdb_guid: f.pdb_guid, pdb_age: f.pdb_age, dsym_uuid: f.dsym_uuid, resolved_symbol: '',
  };
}

const languageOf = (res: readonly KeyValue[] | null | undefined): string => attr(res, 'telemetry.sdk.language') || attr(res, 'process.runtime.name');

/** Frame rows of the exception events on spans. */
export function frameRowsFromSpans(req: ExportTraceServiceRequest, tenant: string): Row[] {
  const rows: Row[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const lang = languageOf(rs.resource?.attributes);
    const svc = serviceName(rs.resource);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        const traceId = toHex(s.traceId);
        const spanId = toHex(s.spanId);
        (s.events ?? []).forEach((e, i) => {
          if (e.name !== EXCEPTION_EVENT) return;
          const ex = exceptionFrames(e.attributes, lang);
          if (!ex || ex.frames.length === 0) return;
          const ts = String(e.timeUnixNano ?? '0');
          const id = exceptionId(tenant, 'span_event', traceId, spanId, String(i), ts);
          for (const f of ex.frames) rows.push(frameRow(tenant, ts, traceId, spanId, 'span_event', id, svc, ex, f));
        });
      }
    }
  }
  return rows;
}

/** Frame rows of log records carrying exception attributes. */
export function frameRowsFromLogs(req: ExportLogsServiceRequest, tenant: string): Row[] {
  const rows: Row[] = [];
  for (const rl of req.resourceLogs ?? []) {
    const lang = languageOf(rl.resource?.attributes);
    const svc = serviceName(rl.resource);
    let resDigest: string | undefined;
    for (const sl of rl.scopeLogs ?? []) {
      for (const rec of sl.logRecords ?? []) {
        const ex = exceptionFrames(rec.attributes, lang);
        if (!ex || ex.frames.length === 0) continue;
        resDigest ??= resourceDigest(rl.resource);
        const id = exceptionId(tenant, 'log', resDigest, logRecordDigest(rec));
        const ts = logTimestamp(rec);
        for (const f of ex.frames) rows.push(frameRow(tenant, ts, toHex(rec.traceId), toHex(rec.spanId), 'log', id, svc, ex, f));
      }
    }
  }
  return rows;
}
