// A normalised view of a string for matching only: percent-decoding, Unicode NFKC (full-width `＠`
// and digits, compatibility spaces, ligatures) and removal of invisible characters (zero-width
// space/joiners, soft hyphen, bidi controls, variation selectors), so `alice%40example.com`,
// `alice＠example.com` and `ghp_ab\u200bcd…` are seen as what a reader sees. Every character of the
// view knows the range of the original it came from, so a finding in the view redacts exactly the
// original characters it covers and nothing else: a string without findings is returned as it is.
// Built only for strings that have a `%` or a non-ASCII character (the scanner's feature bits say
// so for free), and given up as soon as it would equal the original.

/** The view and, for each of its UTF-16 units, the original range [start, end) it stands for. */
export interface NormalizedView { text: string; start: Int32Array; end: Int32Array }

// Invisible in rendered text, so usable to split a token past a scanner: soft hyphen, Mongolian
// vowel separator, zero-width space/non-joiner/joiner, LRM/RLM, bidi embeddings and isolates, word
// joiner and invisible operators, variation selectors, the BOM (zero-width no-break space).
const INVISIBLE = /[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufe00-\ufe0f\ufeff]/;
const isInvisible = (c: number): boolean =>
  c === 0xad || c === 0x180e || (c >= 0x200b && c <= 0x200f) || (c >= 0x202a && c <= 0x202e) || (c >= 0x2060 && c <= 0x2064)
  || (c >= 0x2066 && c <= 0x206f) || (c >= 0xfe00 && c <= 0xfe0f) || c === 0xfeff;
// Ideographic and half-width full stops separate domain labels like `.` (UTS #46); NFKC keeps them.
const DOTS = /[\u3002\uff61]/g;
const PCT = /%[0-9A-Fa-f]{2}/;
const MAX_MARKS = 16;
const NON_ASCII = /[^\x00-\x7f]/;

const hexVal = (c: number): number => (c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1);

/** Identity view of `s` (start[i] = i, end[i] = i + 1). */
function identity(s: string): NormalizedView {
  const start = new Int32Array(s.length);
  const end = new Int32Array(s.length);
  for (let i = 0; i < s.length; i++) { start[i] = i; end[i] = i + 1; }
  return { text: s, start, end };
}

/** Builds a view from a previous one: runs copied as they are, and replaced pieces. */
class Builder {
  private readonly parts: string[] = [];
  private start: Int32Array;
  private end: Int32Array;
  private n = 0;
  constructor(private readonly v: NormalizedView) {
    this.start = new Int32Array(v.text.length + 16);
    this.end = new Int32Array(v.text.length + 16);
  }
  private room(k: number): void {
    if (this.n + k <= this.start.length) return;
    const cap = Math.max(this.start.length * 2, this.n + k);
    const st = new Int32Array(cap); st.set(this.start.subarray(0, this.n)); this.start = st;
    const en = new Int32Array(cap); en.set(this.end.subarray(0, this.n)); this.end = en;
  }
  // Single replaced characters (the common case: full-width forms, decoded escapes) are gathered
  // as char codes and turned into strings a chunk at a time.
  private readonly codes = new Uint16Array(4096);
  private nc = 0;
  private flushCodes(): void {
    if (this.nc === 0) return;
    this.parts.push(String.fromCharCode.apply(null, this.codes.subarray(0, this.nc) as unknown as number[]));
    this.nc = 0;
  }
  /** Units [a, b) of the previous view, unchanged. */
  run(a: number, b: number): void {
    if (b <= a) return;
    this.flushCodes();
    this.room(b - a);
    this.parts.push(this.v.text.slice(a, b));
    this.start.set(this.v.start.subarray(a, b), this.n);
    this.end.set(this.v.end.subarray(a, b), this.n);
    this.n += b - a;
  }
  /** `piece` in place of units [a, b) of the previous view: each of its units stands for all of them. */
  put(piece: string, a: number, b: number): void {
    this.room(piece.length);
    if (piece.length === 1) {
      this.codes[this.nc++] = piece.charCodeAt(0);
      if (this.nc === this.codes.length) this.flushCodes();
    } else {
      this.flushCodes();
      this.parts.push(piece);
    }
    const st = this.v.start[a]!, en = this.v.end[b - 1]!;
    for (let k = 0; k < piece.length; k++) { this.start[this.n] = st; this.end[this.n++] = en; }
  }
  view(): NormalizedView {
    this.flushCodes();
    return { text: this.parts.join(''), start: this.start.subarray(0, this.n), end: this.end.subarray(0, this.n) };
  }
}

/** The character of the valid UTF-8 sequence of `bytes` at i, or '' if there is none (RFC 3629). */
function utf8Char(bytes: number[], i: number): string {
  const b = bytes[i]!;
  if (b < 0x80) return String.fromCharCode(b);
  const n = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
  if (n === 0 || i + n > bytes.length) return '';
  const b1 = bytes[i + 1]!;
  // second-byte ranges exclude overlong forms, surrogates and code points above U+10FFFF
  const lo = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
  const hi = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf;
  if (b1 < lo || b1 > hi) return '';
  let cp = b & (n === 2 ? 0x1f : n === 3 ? 0x0f : 0x07);
  for (let k = 1; k < n; k++) {
    const x = bytes[i + k]!;
    if ((x & 0xc0) !== 0x80) return '';
    cp = (cp << 6) | (x & 0x3f);
  }
  return String.fromCodePoint(cp);
}

/** Decodes `%XX` runs (UTF-8 sequences as one character); malformed escapes stay as they are. */
function percentDecode(v: NormalizedView): NormalizedView {
  const s = v.text;
  const out = new Builder(v);
  let decoded = false;
  let copied = 0;
  for (let i = s.indexOf('%'); i >= 0 && i < s.length; i = s.indexOf('%', i)) {
    // a run of %XX escapes
    const bytes: number[] = [];
    const at: number[] = [];
    let j = i;
    while (j + 2 < s.length && s.charCodeAt(j) === 37) {
      const hi = hexVal(s.charCodeAt(j + 1)), lo = hexVal(s.charCodeAt(j + 2));
      if (hi < 0 || lo < 0) break;
      bytes.push(hi * 16 + lo);
      at.push(j);
      j += 3;
    }
    if (bytes.length === 0) { i++; continue; }
    for (let k = 0; k < bytes.length;) {
      const ch = utf8Char(bytes, k);
      if (ch === '') { k++; continue; } // not decodable: stays as it is
      const n = bytes[k]! < 0x80 ? 1 : ch.length === 2 ? 4 : ch.charCodeAt(0) < 0x800 ? 2 : 3;
      out.run(copied, at[k]!);
      out.put(ch, at[k]!, at[k + n - 1]! + 3);
      copied = at[k + n - 1]! + 3;
      decoded = true;
      k += n;
    }
    i = j;
  }
  if (!decoded) return v;
  out.run(copied, s.length);
  return out.view();
}

/** Whether the BMP code unit c is a combining mark (\p{M}); memoised per code unit. */
const markMemo = new Uint8Array(0x10000); // 0 unknown, 1 mark, 2 not
function isMark(c: number): boolean {
  let m = markMemo[c]!;
  if (m === 0) markMemo[c] = m = /\p{M}/u.test(String.fromCharCode(c)) ? 1 : 2;
  return m === 1;
}

/** NFKC of one BMP code unit ('' for invisible ones), memoised: texts use few distinct characters. */
const foldMemo: (string | undefined)[] = new Array(0x10000);
function foldUnit(c: number): string {
  let f = foldMemo[c];
  if (f === undefined) {
    const ch = String.fromCharCode(c);
    foldMemo[c] = f = isInvisible(c) ? '' : c >= 0xd800 && c <= 0xdfff ? ch : ch.normalize('NFKC').replace(DOTS, '.');
  }
  return f;
}

/** NFKC per character cluster (a character and its combining marks), invisible characters dropped. */
function fold(v: NormalizedView): NormalizedView {
  const s = v.text;
  if (!NON_ASCII.test(s)) return v;
  const out = new Builder(v);
  let copied = 0; // units before this are in `out`
  let i = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c < 0x80 && !(i + 1 < s.length && s.charCodeAt(i + 1) >= 0x300)) { i++; continue; }
    const w = c >= 0xd800 && c <= 0xdbff && i + 1 < s.length ? 2 : 1;
    let j = i + w;
    // Combining marks compose with what precedes them (e + U+0301 = é); at most MAX_MARKS of
    // them: a run of thousands of marks is noise, not a character to compose.
    while (j < s.length && j - i <= MAX_MARKS && s.charCodeAt(j) >= 0x300 && isMark(s.charCodeAt(j))) j++;
    let f: string;
    if (j === i + 1) {
      if (c < 0x80) { i = j; continue; }
      f = foldUnit(c);
      if (f.length === 1 && f.charCodeAt(0) === c) { i = j; continue; }
    } else {
      const cluster = s.slice(i, j);
      f = cluster.normalize('NFKC').replace(DOTS, '.');
      if (f === cluster) { i = j; continue; }
    }
    out.run(copied, i);
    if (f.length) out.put(f, i, j);
    copied = i = j;
  }
  if (copied === 0) return v;
  out.run(copied, s.length);
  return out.view();
}

/**
 * The view of `s` a reader would see, or undefined when it equals `s` (nothing to decode, fold or
 * remove). Percent-decoding and folding repeat (at most three rounds) so `%25 40`-style double
 * encoding and full-width `％４０` decode too.
 */
export function normalizedView(s: string): NormalizedView | undefined {
  const hasPct = PCT.test(s);
  if (!hasPct && s.normalize('NFKC') === s && !INVISIBLE.test(s) && !/[\u3002\uff61]/.test(s)) return undefined;
  let v = identity(s);
  // Folding is idempotent; another round is needed only while escapes remain (`%2540`, `％４０`).
  for (let round = 0; round < 3; round++) {
    const before = v;
    if (PCT.test(v.text)) v = percentDecode(v);
    v = fold(v);
    if (v === before || !PCT.test(v.text)) break;
  }
  return v.text === s ? undefined : v;
}
