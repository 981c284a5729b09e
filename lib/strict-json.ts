// A strict JSON reader for signed intake bodies (RFC 8259 text, I-JSON values, RFC 7493). JSON.parse
// keeps the last of two equal keys and says nothing, so `{"status":"failed","status":"succeeded"}`
// would mean one thing to us and another to a verifier that keeps the first; intake must refuse it.
// This parser refuses duplicate keys (compared after escapes are decoded: "a" and "\u0061" are the
// same key), lone surrogates, a byte-order mark, nesting deeper than `maxDepth` and numbers that are
// not finite; objects are built without a prototype, so a `__proto__` key is a plain key.

export class StrictJsonError extends Error {
  override readonly name = 'StrictJsonError';
  constructor(readonly kind: 'syntax' | 'duplicate_key' | 'lone_surrogate' | 'too_deep' | 'number_range', message: string, readonly offset: number) {
    super(message);
  }
}

export interface StrictJsonOptions { maxDepth?: number }

/** Parse `text`; throws StrictJsonError naming the rule and the character offset. */
export function parseStrictJson(text: string, opts: StrictJsonOptions = {}): unknown {
  const p = new Parser(text, opts.maxDepth ?? 32);
  p.ws();
  const v = p.value(0);
  p.ws();
  if (p.i !== text.length) p.fail('syntax', 'unexpected text after the JSON value');
  return v;
}

const HEX4 = /^[0-9a-fA-F]{4}$/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

class Parser {
  i = 0;
  constructor(readonly s: string, readonly maxDepth: number) {}

  fail(kind: StrictJsonError['kind'], msg: string): never {
    throw new StrictJsonError(kind, `${msg} at offset ${this.i}`, this.i);
  }

  ws(): void {
    const s = this.s;
    for (;;) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.i++;
      else return;
    }
  }

  value(depth: number): unknown {
    const c = this.s[this.i];
    switch (c) {
      case '{': return this.object(depth + 1);
      case '[': return this.array(depth + 1);
      case '"': return this.string();
      case 't': return this.literal('true', true);
      case 'f': return this.literal('false', false);
      case 'n': return this.literal('null', null);
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        return this.fail('syntax', c === undefined ? 'unexpected end of JSON' : 'unexpected character');
    }
  }

  literal<T>(word: string, v: T): T {
    if (!this.s.startsWith(word, this.i)) this.fail('syntax', 'unexpected character');
    this.i += word.length;
    return v;
  }

  number(): number {
    NUMBER.lastIndex = this.i;
    const m = NUMBER.exec(this.s);
    if (!m) return this.fail('syntax', 'malformed number');
    const n = Number(m[0]);
    if (!Number.isFinite(n)) this.fail('number_range', 'number is out of range');
    this.i += m[0].length;
    return n;
  }

  string(): string {
    const s = this.s;
    let i = this.i + 1;
    let out = '';
    let start = i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (Number.isNaN(c)) { this.i = i; this.fail('syntax', 'unterminated string'); }
      if (c === 0x22) break;
      if (c < 0x20) { this.i = i; this.fail('syntax', 'control character in string'); }
      if (c === 0x5c) {
        out += s.slice(start, i);
        const e = s[i + 1];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            const h = s.slice(i + 2, i + 6);
            if (!HEX4.test(h)) { this.i = i; this.fail('syntax', 'malformed \\u escape'); }
            out += String.fromCharCode(parseInt(h, 16));
            i += 4;
            break;
          }
          default: this.i = i; this.fail('syntax', 'malformed escape');
        }
        i += 2;
        start = i;
        continue;
      }
      i++;
    }
    out += s.slice(start, i);
    this.i = i + 1;
    // I-JSON: strings are sequences of Unicode scalar values. A lone surrogate (only reachable via
    // \u escapes once the bytes were decoded as UTF-8) cannot be hashed or canonicalized stably.
    if (LONE_SURROGATE.test(out)) this.fail('lone_surrogate', 'string holds a lone surrogate (not I-JSON)');
    return out;
  }

  array(depth: number): unknown[] {
    if (depth > this.maxDepth) this.fail('too_deep', `JSON nested deeper than ${this.maxDepth}`);
    this.i++;
    const out: unknown[] = [];
    this.ws();
    if (this.s[this.i] === ']') { this.i++; return out; }
    for (;;) {
      this.ws();
      out.push(this.value(depth));
      this.ws();
      const c = this.s[this.i++];
      if (c === ']') return out;
      if (c !== ',') { this.i--; this.fail('syntax', "expected ',' or ']'"); }
    }
  }

  object(depth: number): Record<string, unknown> {
    if (depth > this.maxDepth) this.fail('too_deep', `JSON nested deeper than ${this.maxDepth}`);
    this.i++;
    const out = Object.create(null) as Record<string, unknown>;
    this.ws();
    if (this.s[this.i] === '}') { this.i++; return out; }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail('syntax', 'expected a string key');
      const keyAt = this.i;
      const key = this.string();
      if (Object.prototype.hasOwnProperty.call(out, key)) { this.i = keyAt; this.fail('duplicate_key', 'duplicate object key'); }
      this.ws();
      if (this.s[this.i] !== ':') this.fail('syntax', "expected ':'");
      this.i++;
      this.ws();
      out[key] = this.value(depth);
      this.ws();
      const c = this.s[this.i++];
      if (c === '}') return out;
      if (c !== ',') { this.i--; this.fail('syntax', "expected ',' or '}'"); }
    }
  }
}
