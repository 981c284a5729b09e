// RFC 8785 JSON Canonicalization Scheme. ECMAScript's JSON.stringify already serializes numbers
// (Number::toString) and strings the way JCS requires; JCS adds: object keys sorted by UTF-16
// code units, no whitespace, and I-JSON input (no lone surrogates, finite numbers only).
import { MAX_ENTRY_SIZE } from './tiles.ts';

export class CanonicalJsonError extends Error {
  override readonly name = 'CanonicalJsonError';
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const ANY_SURROGATE = /[\ud800-\udfff]/;

// Hot (every evidence entry, every intake record): the path of a value (`$.a[0].b`) is only built
// when an error names it, from the stack of keys walked; the text is built by concatenation.
type PathStack = (string | number)[];
const whereOf = (path: PathStack): string => path.reduce<string>((w, k) => (typeof k === 'number' ? `${w}[${k}]` : `${w}.${k}`), '$');

function str(s: string, path: PathStack): string {
  // The plain test first: the lookaround test is only needed when there is a surrogate at all.
  if (ANY_SURROGATE.test(s) && LONE_SURROGATE.test(s)) throw new CanonicalJsonError(`${whereOf(path)}: string holds a lone surrogate (not I-JSON)`);
  return JSON.stringify(s);
}

function ser(v: unknown, path: PathStack): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean': return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) throw new CanonicalJsonError(`${whereOf(path)}: ${v} is not a JSON number`);
      return JSON.stringify(v); // -0 → "0", ES shortest round-trip form otherwise
    case 'string': return str(v, path);
    case 'object': {
      if (Array.isArray(v)) {
        let out = '[';
        for (let i = 0; i < v.length; i++) {
          if (i) out += ',';
          path.push(i);
          out += ser(v[i], path);
          path.pop();
        }
        return out + ']';
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new CanonicalJsonError(`${whereOf(path)}: only plain objects and arrays are JSON (got ${proto?.constructor?.name})`);
      // Default sort compares UTF-16 code units, which is what RFC 8785 §3.2.3 asks for.
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o).sort();
      let out = '{';
      let first = true;
      for (const k of keys) {
        const x = o[k];
        if (x === undefined) continue;
        if (!first) out += ',';
        first = false;
        out += str(k, path);
        out += ':';
        path.push(k);
        out += ser(x, path);
        path.pop();
      }
      return out + '}';
    }
    default:
      throw new CanonicalJsonError(`${whereOf(path)}: ${typeof v} is not JSON`);
  }
}

/** Canonical JSON text of `value` (RFC 8785). */
export function canonicalize(value: unknown): string {
  return ser(value, []);
}

export const canonicalBytes = (value: unknown): Buffer => Buffer.from(canonicalize(value), 'utf8');

/** A log entry: canonical JSON bytes, at most 65,535 of them (entry bundles use uint16 lengths). */
export function entryBytes(value: unknown): Buffer {
  const b = canonicalBytes(value);
  if (b.length > MAX_ENTRY_SIZE) throw new CanonicalJsonError(`entry is ${b.length} bytes of canonical JSON; entries are limited to ${MAX_ENTRY_SIZE} bytes`);
  return b;
}
