// Runtime facts (reachability runtime ingestion), the pure core: NDJSON in, a verdict out. Each line
// is one record `{symbol_id, purl, timestamp, pid, container, count}`; a refusal names its rule and
// the 1-based line number. Also: the ingest id, the optional DSSE envelope's statement check, the
// intake record published on intake_runtime_facts, and the rows the timeline's sink writes from it.
// No I/O here: the API route, `stella ingest runtime` and the sink share it (docs/intake.md).
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { IntakeEnvelopeVerifier } from '../../lib/intake/trust.ts';
import { validateTenantId } from '../../lib/tenancy.ts';

export const RUNTIME_FACTS_STATEMENT_PREDICATE = 'https://stella-telemetry.example/runtime-facts/v1';
export const IN_TOTO_STATEMENT_V1 = 'https://in-toto.io/Statement/v1';
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

/** HTTP status of each refusal (the route answers it; the CLI maps it to exit code 2). */
export const RUNTIME_REFUSALS = {
  GRAPH_HASH_INVALID: 400,
  TENANT_MISMATCH: 403,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNSUPPORTED_ENCODING: 415,
  BODY_TOO_LARGE: 413,
  DECOMPRESSED_TOO_LARGE: 413,
  GZIP_INVALID: 400,
  EMPTY_BODY: 400,
  LINE_TOO_LONG: 400,
  LINE_NOT_JSON: 400,
  RECORD_INVALID: 400,
  DUPLICATE_KEY: 400,
  CONTENT_SHA256_INVALID: 400,
  CONTENT_SHA256_MISMATCH: 400,
  ENVELOPE_MALFORMED: 400,
  SIGNATURE_UNTRUSTED: 403,
  SIGNATURE_INVALID: 403,
  ENVELOPE_SUBJECT_MISMATCH: 400,
  // stella ingest runtime (air gap): the manifest and the files it lists.
  MANIFEST_INVALID: 400,
  MANIFEST_MISMATCH: 400,
  MANIFEST_HASH_MISMATCH: 400,
  // The configured time anchor (intake.runtimeFacts.timeAnchor): the server cannot vouch for time.
  TIME_ANCHOR_STALE: 503,
  TIME_ANCHOR_UNAVAILABLE: 503,
} as const;
export type RuntimeRefusalReason = keyof typeof RUNTIME_REFUSALS;

export interface RuntimeRefusal {
  ok: false; reason: RuntimeRefusalReason; status: number; message: string;
  /** 1-based NDJSON line of a record refusal. */
  line?: number;
  field?: string;
  /** Time-anchor refusals: the anchor's age (now - anchor) and its budget, seconds. */
  staleness_seconds?: number;
  budget_seconds?: number;
}

export const refuse = (reason: RuntimeRefusalReason, message: string, extra: { line?: number; field?: string; staleness_seconds?: number; budget_seconds?: number } = {}): RuntimeRefusal =>
  ({ ok: false, reason, status: RUNTIME_REFUSALS[reason], message, ...extra });

export interface RuntimeLimits { maxLineBytes: number }

export interface RuntimeFactsSummary {
  ok: true;
  records: number;
  /** Earliest and latest record timestamps, epoch nanoseconds. */
  firstTsNs: bigint;
  lastTsNs: bigint;
}

export interface RuntimeFact {
  symbol_id: string; purl: string; timestamp: string; pid: number; container: string; count: number;
  /** `timestamp` as epoch milliseconds and the nanoseconds within that millisecond (no BigInt per record: hot path). */
  tsMs: number;
  tsSubMsNs: number;
  /** 1-based line. */
  line: number;
}

const FIELDS = ['symbol_id', 'purl', 'timestamp', 'pid', 'container', 'count'] as const;
const FIELD_SET = new Set<string>(FIELDS);
const HEX64 = /^[0-9a-f]{64}$/;
// Any C0/C1 control character or DEL: ids are shown in tables and logs.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// package-url: pkg:<type>/<namespace/name>[@version][?qualifiers][#subpath]; type per the purl spec.
const PURL = /^pkg:[A-Za-z.+-][A-Za-z0-9.+-]*\/[^\s]+$/;
const MAX_SYMBOL = 4096;
const MAX_PURL = 2048;
const MAX_CONTAINER = 256;
const MAX_PID = 4_294_967_295;

/** `sha256:<hex>` or `<hex>` (64 hex, any case) -> `sha256:<lowercase hex>`; undefined otherwise. */
export function normalizeSha256(v: string | null | undefined): `sha256:${string}` | undefined {
  if (typeof v !== 'string') return undefined;
  const hex = (v.startsWith('sha256:') ? v.slice(7) : v).toLowerCase();
  return HEX64.test(hex) ? `sha256:${hex}` : undefined;
}

/** Epoch ns of an RFC 3339 UTC timestamp (`Z`), or undefined. Years 1970..2261 (DateTime64(9)). */
export function rfc3339UtcNs(s: string): bigint | undefined {
  const t = rfc3339UtcParts(s);
  return t && BigInt(t[0]) * 1_000_000n + BigInt(t[1]);
}

// Lines of one body share their hour almost always: Date.UTC and the calendar checks run once per hour.
let hourKey = '';
let hourMs = 0;

/** The decimal value of s[from, to) when all digits, else -1. */
function digits(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/**
 * [epoch ms, ns within the ms] of an RFC 3339 UTC timestamp `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, or
 * undefined. Read by position (the hot path: one per record), i.e. ^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$.
 */
function rfc3339UtcParts(s: string): [number, number] | undefined {
  const len = s.length;
  if (len < 20 || len > 30 || s.charCodeAt(len - 1) !== 90 /* Z */ || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== 84 /* T */
    || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return undefined;
  let frac = 0;
  if (len > 20) {
    // `.` and 1..9 digits
    if (s.charCodeAt(19) !== 46 || len === 21) return undefined;
    frac = digits(s, 20, len - 1);
    if (frac < 0) return undefined;
    for (let i = len; i < 30; i++) frac *= 10;
  }
  const key = s.slice(0, 13);
  if (key !== hourKey) {
    const y = digits(s, 0, 4), mo = digits(s, 5, 7), d = digits(s, 8, 10), h = digits(s, 11, 13);
    if (y < 1970 || y > 2261 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23) return undefined;
    const ms = Date.UTC(y, mo - 1, d, h);
    if (new Date(ms).getUTCDate() !== d) return undefined; // 2026-02-30
    hourKey = key;
    hourMs = ms;
  }
  const mi = digits(s, 14, 16);
  const sec = digits(s, 17, 19);
  if (mi < 0 || mi > 59 || sec < 0 || sec > 59) return undefined;
  return [hourMs + mi * 60_000 + sec * 1000 + Math.floor(frac / 1_000_000), frac % 1_000_000];
}

/**
 * Colons outside strings in a JSON text. For an object whose values are all strings and numbers
 * this is its number of keys as written, so a duplicated key (which JSON.parse silently collapses)
 * shows as more colons than keys. Far cheaper than a second, strict parse (the hot path).
 */
function colonsOutsideStrings(s: string): number {
  let n = 0;
  let i = 0;
  const len = s.length;
  while (i < len) {
    const c = s.charCodeAt(i);
    if (c === 34 /* " */) {
      i++;
      while (i < len) {
        const q = s.charCodeAt(i);
        if (q === 92 /* \ */) i += 2;
        else if (q === 34) break;
        else i++;
      }
    } else if (c === 58 /* : */) n++;
    i++;
  }
  return n;
}

function isNonNegInt(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

const countColons = (s: string): number => {
  let n = 0;
  for (let i = s.indexOf(':'); i !== -1; i = s.indexOf(':', i + 1)) n++;
  return n;
};

/** Why a record's keys are not exactly the six fields, each once (the refusal path only). */
function keysProblem(r: Record<string, unknown>, line: number): RuntimeRefusal {
  // The unknown key is not echoed: it is client text nobody checked (it could hold anything).
  for (const k of Object.keys(r)) if (!FIELD_SET.has(k)) return refuse('RECORD_INVALID', `line ${line}: unknown field (the fields are ${FIELDS.join(', ')})`, { line });
  for (const f of FIELDS) if (!Object.hasOwn(r, f)) return refuse('RECORD_INVALID', `line ${line}: ${f} is required`, { line, field: f });
  return refuse('DUPLICATE_KEY', `line ${line}: a field appears more than once`, { line });
}

/** [epoch ms, ns within the ms] of the last record checkRecord accepted (no object per record: hot path). */
let checkedMs = 0;
let checkedSub = 0;

/** Validate one parsed line: undefined when it is a valid record, else the refusal naming the rule. */
function checkRecord(o: unknown, text: string, line: number): RuntimeRefusal | undefined {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return refuse('RECORD_INVALID', `line ${line}: a record must be a JSON object`, { line });
  const r = o as Record<string, unknown>;
  const { symbol_id, purl, timestamp, pid, container, count } = r;
  if (symbol_id === undefined || purl === undefined || timestamp === undefined || pid === undefined || container === undefined || count === undefined) return keysProblem(r, line);
  if (typeof symbol_id !== 'string' || symbol_id.length === 0 || symbol_id.length > MAX_SYMBOL || CONTROL.test(symbol_id)) {
    return refuse('RECORD_INVALID', `line ${line}: symbol_id must be a non-empty string of at most ${MAX_SYMBOL} characters without control characters`, { line, field: 'symbol_id' });
  }
  if (typeof purl !== 'string' || purl.length > MAX_PURL || !PURL.test(purl)) {
    return refuse('RECORD_INVALID', `line ${line}: purl must be a package URL (pkg:<type>/<name>...), at most ${MAX_PURL} characters`, { line, field: 'purl' });
  }
  const ts = typeof timestamp === 'string' ? rfc3339UtcParts(timestamp) : undefined;
  if (ts === undefined) return refuse('RECORD_INVALID', `line ${line}: timestamp must be an RFC 3339 UTC time (e.g. 2026-12-03T12:00:00.123Z)`, { line, field: 'timestamp' });
  if (!isNonNegInt(pid, MAX_PID)) return refuse('RECORD_INVALID', `line ${line}: pid must be an integer from 0 to ${MAX_PID}`, { line, field: 'pid' });
  if (typeof container !== 'string' || container.length > MAX_CONTAINER || CONTROL.test(container)) {
    return refuse('RECORD_INVALID', `line ${line}: container must be a string of at most ${MAX_CONTAINER} characters ("" for a host process)`, { line, field: 'container' });
  }
  if (!isNonNegInt(count, Number.MAX_SAFE_INTEGER) || count < 1) return refuse('RECORD_INVALID', `line ${line}: count must be an integer from 1 to ${Number.MAX_SAFE_INTEGER}`, { line, field: 'count' });
  // Exactly six keys as written (JSON.parse silently keeps the last of duplicates). Without escapes,
  // every ':' in the text is structural or inside one of the four string values (the field names
  // hold none; anything else there makes the count larger): so the structural count is the text's
  // colons minus the values'. With escapes, scan the text.
  const keysWritten = text.indexOf('\\') === -1
    ? countColons(text) - countColons(symbol_id) - countColons(purl) - countColons(timestamp as string) - countColons(container)
    : colonsOutsideStrings(text);
  if (keysWritten !== FIELDS.length) return keysProblem(r, line);
  checkedMs = ts[0];
  checkedSub = ts[1];
  return undefined;
}

// ---- The byte-level fast path -------------------------------------------------------------------
// Most lines are plain ASCII records without escapes: they are checked on the bytes, creating no
// string and no object per line (JSON.parse and its garbage were most of the cost). The fast path
// only ever accepts: any line it is not sure of (an escape, a non-ASCII or control byte, a number
// that is not plain digits, a duplicate or unknown key, any refusal) goes through the general path
// (JSON.parse + checkRecord), so verdicts and messages are exactly that path's.

// The six field names as bytes, and their bit in the seen-mask.
const F_SYMBOL = 1, F_PURL = 2, F_TS = 4, F_PID = 8, F_CONTAINER = 16, F_COUNT = 32, F_ALL = 63;
const KEY_BYTES: [Buffer, number][] = [['symbol_id', F_SYMBOL], ['purl', F_PURL], ['timestamp', F_TS], ['pid', F_PID], ['container', F_CONTAINER], ['count', F_COUNT]]
  .map(([k, f]) => [Buffer.from(k as string, 'latin1'), f as number]);

/** Value spans of the last line fastLine accepted (offsets into the buffer). */
let fSymS = 0, fSymE = 0, fPurlS = 0, fPurlE = 0, fTsS = 0, fTsE = 0, fConS = 0, fConE = 0, fPid = 0, fCount = 0;

function isWs(c: number): boolean { return c === 0x20 || c === 0x09 || c === 0x0d; }

/** The bit of the key b[s, e), 0 when it is none of the six. */
function keyBit(b: Buffer, s: number, e: number): number {
  const len = e - s;
  for (let j = 0; j < KEY_BYTES.length; j++) {
    const k = KEY_BYTES[j]![0];
    if (k.length !== len) continue;
    let i = 0;
    while (i < len && b[s + i] === k[i]) i++;
    if (i === len) return KEY_BYTES[j]![1];
  }
  return 0;
}

/** b[s, e) as a plain non-negative integer (no sign, fraction, exponent or leading zero), at most 15 digits; -1 otherwise. */
function plainInt(b: Buffer, s: number, e: number): number {
  const len = e - s;
  if (len < 1 || len > 15 || (b[s] === 0x30 && len > 1)) return -1;
  let n = 0;
  for (let i = s; i < e; i++) n = n * 10 + (b[i]! - 0x30);
  return n;
}

/** PURL on ASCII bytes: `pkg:`, a type ([A-Za-z.+-][A-Za-z0-9.+-]*), `/`, then at least one non-space byte. */
function isAlpha(c: number): boolean { return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a); }
function isSym(c: number): boolean { return c === 0x2e || c === 0x2b || c === 0x2d; }
// (Module-level functions, not closures: none may be created per line on this path.)
function purlOk(b: Buffer, s: number, e: number): boolean {
  if (e - s < 7 || b[s] !== 0x70 || b[s + 1] !== 0x6b || b[s + 2] !== 0x67 || b[s + 3] !== 0x3a) return false;
  let i = s + 4;
  if (!(isAlpha(b[i]!) || isSym(b[i]!))) return false;
  for (i++; i < e && (isAlpha(b[i]!) || isSym(b[i]!) || (b[i]! >= 0x30 && b[i]! <= 0x39)); i++);
  if (i >= e || b[i] !== 0x2f || i + 1 >= e) return false;
  for (i++; i < e; i++) if (b[i] === 0x20) return false; // other whitespace bytes never reach here (control bytes take the general path)
  return true;
}

let hourKeyBytes = Buffer.alloc(13);
let hourKeyBytesMs = -1;

/** The decimal value of b[from, to) when all digits, else -1. */
function digitsB(b: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = b[i]! - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** rfc3339UtcParts on the bytes b[s, e) (ASCII); sets checkedMs/checkedSub; false when invalid. */
function timestampB(b: Buffer, s: number, e: number): boolean {
  const len = e - s;
  if (len < 20 || len > 30 || b[e - 1] !== 90 || b[s + 4] !== 45 || b[s + 7] !== 45 || b[s + 10] !== 84 || b[s + 13] !== 58 || b[s + 16] !== 58) return false;
  let frac = 0;
  if (len > 20) {
    if (b[s + 19] !== 46 || len === 21) return false;
    frac = digitsB(b, s + 20, e - 1);
    if (frac < 0) return false;
    for (let i = len; i < 30; i++) frac *= 10;
  }
  let sameHour = hourKeyBytesMs >= 0;
  for (let i = 0; sameHour && i < 13; i++) sameHour = b[s + i] === hourKeyBytes[i];
  if (!sameHour) {
    const y = digitsB(b, s, s + 4), mo = digitsB(b, s + 5, s + 7), d = digitsB(b, s + 8, s + 10), h = digitsB(b, s + 11, s + 13);
    if (y < 1970 || y > 2261 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23) return false;
    const ms = Date.UTC(y, mo - 1, d, h);
    if (new Date(ms).getUTCDate() !== d) return false;
    hourKeyBytes = Buffer.from(b.subarray(s, s + 13));
    hourKeyBytesMs = ms;
  }
  const mi = digitsB(b, s + 14, s + 16);
  const sec = digitsB(b, s + 17, s + 19);
  if (mi < 0 || mi > 59 || sec < 0 || sec > 59) return false;
  checkedMs = hourKeyBytesMs + mi * 60_000 + sec * 1000 + Math.floor(frac / 1_000_000);
  checkedSub = frac % 1_000_000;
  return true;
}

/**
 * True when b[s, e) is certainly a valid record (then checkedMs/checkedSub and the f* spans are
 * set); false when the general path must decide.
 */
function fastLine(b: Buffer, s: number, e: number): boolean {
  let i = s;
  while (i < e && isWs(b[i]!)) i++;
  if (b[i] !== 0x7b /* { */) return false;
  i++;
  let seen = 0;
  for (;;) {
    while (i < e && isWs(b[i]!)) i++;
    if (b[i] !== 0x22) return false;
    const ks = ++i;
    while (i < e && b[i] !== 0x22) { const c = b[i]!; if (c === 0x5c || c < 0x20 || c >= 0x7f) return false; i++; }
    if (i >= e) return false;
    const bit = keyBit(b, ks, i);
    if (bit === 0 || (seen & bit) !== 0) return false;
    seen |= bit;
    i++;
    while (i < e && isWs(b[i]!)) i++;
    if (b[i] !== 0x3a /* : */) return false;
    i++;
    while (i < e && isWs(b[i]!)) i++;
    if (bit === F_PID || bit === F_COUNT) {
      const vs = i;
      while (i < e && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
      const n = plainInt(b, vs, i);
      if (n < 0) return false;
      if (bit === F_PID) fPid = n; else fCount = n;
    } else {
      if (b[i] !== 0x22) return false;
      const vs = ++i;
      while (i < e && b[i] !== 0x22) { const c = b[i]!; if (c === 0x5c || c < 0x20 || c >= 0x7f) return false; i++; }
      if (i >= e) return false;
      if (bit === F_SYMBOL) { fSymS = vs; fSymE = i; } else if (bit === F_PURL) { fPurlS = vs; fPurlE = i; } else if (bit === F_TS) { fTsS = vs; fTsE = i; } else { fConS = vs; fConE = i; }
      i++;
    }
    while (i < e && isWs(b[i]!)) i++;
    if (b[i] === 0x2c /* , */) { i++; continue; }
    if (b[i] === 0x7d /* } */) { i++; break; }
    return false;
  }
  while (i < e && isWs(b[i]!)) i++;
  if (i !== e || seen !== F_ALL) return false;
  const symLen = fSymE - fSymS;
  return symLen > 0 && symLen <= MAX_SYMBOL && fPurlE - fPurlS <= MAX_PURL && purlOk(b, fPurlS, fPurlE) && fConE - fConS <= MAX_CONTAINER
    && fPid <= MAX_PID && fCount >= 1 && timestampB(b, fTsS, fTsE);
}

/**
 * Walk the NDJSON (UTF-8, one object per `\n`-terminated line, a CR before it allowed as NDJSON
 * does; the last newline optional; no blank lines) calling `each` per fact. Stops at the first bad line with its refusal.
 * `fast` false: every line through the general path (the reference the tests compare the fast path with).
 */
export function forEachRuntimeFact(ndjson: Buffer, limits: RuntimeLimits, each?: (f: RuntimeFact) => void, fast = true): RuntimeFactsSummary | RuntimeRefusal {
  if (ndjson.length === 0) return refuse('EMPTY_BODY', 'the body holds no records');
  // Invalid UTF-8 would decode to U+FFFD: the stored bytes must be what every reader decodes alike.
  if (!isUtf8(ndjson)) return refuse('LINE_NOT_JSON', `line ${firstBadUtf8Line(ndjson)}: not valid UTF-8`, { line: firstBadUtf8Line(ndjson) });
  let records = 0;
  let firstMs = 0;
  let firstSub = 0;
  let lastMs = 0;
  let lastSub = 0;
  let start = 0;
  let line = 0;
  // Byte offsets: a 0x0A byte is always a newline in UTF-8 (never inside a multi-byte sequence).
  const end = ndjson[ndjson.length - 1] === 10 ? ndjson.length - 1 : ndjson.length;
  const max = limits.maxLineBytes;
  while (start <= end) {
    line++;
    let nl = ndjson.indexOf(10, start);
    if (nl === -1 || nl > end) nl = end;
    const len = nl - start;
    if (len === 0) return refuse('RECORD_INVALID', `line ${line}: blank line (one JSON object per line)`, { line });
    if (len > max) return refuse('LINE_TOO_LONG', `line ${line}: longer than ${max} bytes`, { line });
    let r: RuntimeFact | undefined;
    if (fast && fastLine(ndjson, start, nl)) {
      if (each) {
        r = { symbol_id: ndjson.toString('latin1', fSymS, fSymE), purl: ndjson.toString('latin1', fPurlS, fPurlE), timestamp: ndjson.toString('latin1', fTsS, fTsE),
          pid: fPid, container: ndjson.toString('latin1', fConS, fConE), count: fCount, tsMs: checkedMs, tsSubMsNs: checkedSub, line };
      }
    } else {
      const l = ndjson.toString('utf8', start, nl);
      let parsed: unknown;
      try { parsed = JSON.parse(l); } catch { return refuse('LINE_NOT_JSON', `line ${line}: not a JSON value`, { line }); }
      const bad = checkRecord(parsed, l, line);
      if (bad) return bad;
      if (each) {
        const p = parsed as RuntimeFact;
        r = { symbol_id: p.symbol_id, purl: p.purl, timestamp: p.timestamp, pid: p.pid, container: p.container, count: p.count, tsMs: checkedMs, tsSubMsNs: checkedSub, line };
      }
    }
    const ms = checkedMs;
    const sub = checkedSub;
    if (records === 0 || ms < firstMs || (ms === firstMs && sub < firstSub)) { firstMs = ms; firstSub = sub; }
    if (records === 0 || ms > lastMs || (ms === lastMs && sub > lastSub)) { lastMs = ms; lastSub = sub; }
    records++;
    if (r) each!(r);
    start = nl + 1;
  }
  const ns = (ms: number, sub: number) => BigInt(ms) * 1_000_000n + BigInt(sub);
  return { ok: true, records, firstTsNs: ns(firstMs, firstSub), lastTsNs: ns(lastMs, lastSub) };
}

/** The 1-based line holding the first invalid UTF-8 sequence (the refusal path only). */
function firstBadUtf8Line(b: Buffer): number {
  let line = 1;
  let start = 0;
  for (;;) {
    const nl = b.indexOf(0x0a, start);
    const end = nl === -1 ? b.length : nl;
    if (!isUtf8(b.subarray(start, end))) return line;
    if (nl === -1) return line;
    line++;
    start = nl + 1;
  }
}

/** Epoch nanoseconds of a fact's timestamp. */
export const factTsNs = (f: RuntimeFact): bigint => BigInt(f.tsMs) * 1_000_000n + BigInt(f.tsSubMsNs);

/** The ingest id: deterministic in (tenant, graph, content), so the same body twice is one ingest. */
export function ingestIdFor(tenant: string, graphHash: string, contentDigest: string): string {
  return createHash('sha256').update(`stella-runtime-ingest/v1\0${tenant}\0${graphHash}\0${contentDigest}`).digest('hex').slice(0, 32);
}

/** The in-toto statement a runtime-facts DSSE envelope carries (what `stella attest runtime` signs). */
export function runtimeFactsStatement(tenant: string, graphHash: string, contentDigest: string): Record<string, unknown> {
  return {
    _type: IN_TOTO_STATEMENT_V1,
    subject: [{ name: 'runtime-facts.ndjson', digest: { sha256: contentDigest.slice(7) } }],
    predicateType: RUNTIME_FACTS_STATEMENT_PREDICATE,
    predicate: { tenant, graph_hash: graphHash },
  };
}

/**
 * Verify the envelope (fail closed, the tenant's trust keys) and that its statement is about THIS
 * content, graph and tenant: a valid signature over other facts, or another tenant's, proves nothing.
 */
export function checkRuntimeEnvelope(envelope: unknown, verify: IntakeEnvelopeVerifier, tenant: string, graphHash: string, contentDigest: string):
  { ok: true; keyid: string } | RuntimeRefusal {
  if (typeof envelope !== 'object' || envelope === null || Array.isArray(envelope)) return refuse('ENVELOPE_MALFORMED', 'the DSSE envelope must be a JSON object');
  const v = verify(envelope, tenant, IN_TOTO_PAYLOAD_TYPE);
  if (!v.ok) {
    if (/^malformed/.test(v.reason)) return refuse('ENVELOPE_MALFORMED', `DSSE envelope: ${v.reason}`);
    if (/no intake trust keys|unknown keyid/.test(v.reason)) return refuse('SIGNATURE_UNTRUSTED', `DSSE envelope not signed by a key in the tenant's intake trust config: ${v.reason}`);
    return refuse('SIGNATURE_INVALID', `DSSE signature does not verify: ${v.reason}`);
  }
  let st: Record<string, unknown>;
  try { st = JSON.parse(v.payload.toString('utf8')) as Record<string, unknown>; } catch { return refuse('ENVELOPE_MALFORMED', 'DSSE payload is not a JSON statement'); }
  if (typeof st !== 'object' || st === null || st._type !== IN_TOTO_STATEMENT_V1 || st.predicateType !== RUNTIME_FACTS_STATEMENT_PREDICATE) {
    return refuse('ENVELOPE_MALFORMED', `DSSE payload must be an in-toto ${IN_TOTO_STATEMENT_V1} statement with predicateType ${RUNTIME_FACTS_STATEMENT_PREDICATE}`);
  }
  const hex = contentDigest.slice(7);
  const subjects = Array.isArray(st.subject) ? st.subject as { digest?: Record<string, unknown> }[] : [];
  if (!subjects.some((s) => s && typeof s === 'object' && s.digest?.sha256 === hex)) {
    return refuse('ENVELOPE_SUBJECT_MISMATCH', 'the statement\'s subject digest is not the sha256 of these runtime facts');
  }
  const p = st.predicate as Record<string, unknown> | undefined;
  if (!p || p.graph_hash !== graphHash) return refuse('ENVELOPE_SUBJECT_MISMATCH', 'the statement is for another graph_hash');
  if (p.tenant !== tenant) return refuse('ENVELOPE_SUBJECT_MISMATCH', 'the statement is for another tenant');
  return { ok: true, keyid: v.keyid };
}

/** The record published on intake_runtime_facts (JSON), pointing at the CAS blob. */
export interface RuntimeIntakeRecord {
  v: 1;
  ingest_id: string;
  tenant: string;
  graph_hash: string;
  /** sha256:<hex> of the NDJSON (the CAS digest). */
  content_sha256: string;
  cas_uri: string;
  size: number;
  records: number;
  first_ts_unix_nano: string;
  last_ts_unix_nano: string;
  /** keyid of the trust key whose DSSE signature verified; '' when unsigned. */
  signed_by: string;
  /** cas:// URI of the DSSE envelope; '' when unsigned. */
  envelope_cas_uri: string;
  received_at_unix_nano: string;
  /** `api` or `cli` (stella ingest runtime). */
  via: 'api' | 'cli';
}

export class BadRuntimeRecord extends Error {}

/** Parse and check an intake record (the sink trusts nothing it did not check). */
export function parseRuntimeIntakeRecord(value: Buffer, key: string | null): RuntimeIntakeRecord {
  let r: RuntimeIntakeRecord;
  try { r = JSON.parse(value.toString('utf8')) as RuntimeIntakeRecord; } catch { throw new BadRuntimeRecord('runtime facts intake record is not JSON'); }
  if (typeof r !== 'object' || r === null || r.v !== 1) throw new BadRuntimeRecord('runtime facts intake record must be version 1');
  if (typeof r.tenant !== 'string' || validateTenantId(r.tenant) || r.tenant !== key) throw new BadRuntimeRecord('runtime facts intake record tenant must be the record key');
  if (normalizeSha256(r.graph_hash) !== r.graph_hash) throw new BadRuntimeRecord('graph_hash must be sha256:<hex>');
  if (normalizeSha256(r.content_sha256) !== r.content_sha256) throw new BadRuntimeRecord('content_sha256 must be sha256:<hex>');
  if (r.cas_uri !== `cas://${r.tenant}/${r.content_sha256.slice(7)}`) throw new BadRuntimeRecord('cas_uri must be cas://<tenant>/<content sha256>');
  if (r.ingest_id !== ingestIdFor(r.tenant, r.graph_hash, r.content_sha256)) throw new BadRuntimeRecord('ingest_id does not match tenant, graph and content');
  if (!Number.isInteger(r.records) || r.records < 1 || !Number.isInteger(r.size) || r.size < 1) throw new BadRuntimeRecord('records and size must be positive integers');
  for (const f of ['first_ts_unix_nano', 'last_ts_unix_nano', 'received_at_unix_nano'] as const) {
    if (typeof r[f] !== 'string' || !/^\d{1,20}$/.test(r[f])) throw new BadRuntimeRecord(`${f} must be decimal nanoseconds`);
  }
  if (typeof r.signed_by !== 'string' || typeof r.envelope_cas_uri !== 'string') throw new BadRuntimeRecord('signed_by and envelope_cas_uri must be strings');
  if (r.envelope_cas_uri !== '' && !new RegExp(`^cas://${r.tenant}/[0-9a-f]{64}$`).test(r.envelope_cas_uri)) throw new BadRuntimeRecord('envelope_cas_uri must be in the tenant\'s namespace');
  return r;
}

/**
 * The time-anchor rule: intake is refused while the anchor is older than its budget (the clock has
 * run on without a fresh trusted time for too long), and while it lies further in the future than
 * the budget (the local clock is behind trusted time). staleness = now - anchor, whole seconds.
 */
export function timeAnchorVerdict(anchorMs: number, nowMs: number, budgetSeconds: number): { ok: true; stalenessSeconds: number } | RuntimeRefusal {
  const stalenessSeconds = Math.floor((nowMs - anchorMs) / 1000);
  const extra = { staleness_seconds: stalenessSeconds, budget_seconds: budgetSeconds };
  if (stalenessSeconds > budgetSeconds) {
    return refuse('TIME_ANCHOR_STALE', `the time anchor is ${stalenessSeconds} s old, over its budget of ${budgetSeconds} s (intake.runtimeFacts.timeAnchor): refresh it`, extra);
  }
  if (-stalenessSeconds > budgetSeconds) {
    return refuse('TIME_ANCHOR_STALE', `the time anchor is ${-stalenessSeconds} s ahead of this clock, over the budget of ${budgetSeconds} s (intake.runtimeFacts.timeAnchor): the clock is behind`, extra);
  }
  return { ok: true, stalenessSeconds };
}
