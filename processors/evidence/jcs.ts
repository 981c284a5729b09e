// RFC 8785 JSON Canonicalization Scheme. ECMAScript's JSON.stringify already serializes numbers
// (Number::toString) and strings the way JCS requires; JCS adds: object keys sorted by UTF-16
// code units, no whitespace, and I-JSON input (no lone surrogates, finite numbers only).
import { MAX_ENTRY_SIZE } from './tiles.ts';

export class CanonicalJsonError extends Error {
  override readonly name = 'CanonicalJsonError';
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function str(s: string, where: string): string {
  if (LONE_SURROGATE.test(s)) throw new CanonicalJsonError(`${where}: string holds a lone surrogate (not I-JSON)`);
  return JSON.stringify(s);
}

function ser(v: unknown, where: string, out: string[]): void {
  if (v === null) { out.push('null'); return; }
  switch (typeof v) {
    case 'boolean': out.push(v ? 'true' : 'false'); return;
    case 'number':
      if (!Number.isFinite(v)) throw new CanonicalJsonError(`${where}: ${v} is not a JSON number`);
      out.push(JSON.stringify(v)); // -0 → "0", ES shortest round-trip form otherwise
      return;
    case 'string': out.push(str(v, where)); return;
    case 'object': {
      if (Array.isArray(v)) {
        out.push('[');
        v.forEach((x, i) => { if (i) out.push(','); ser(x, `${where}[${i}]`, out); });
        out.push(']');
        return;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new CanonicalJsonError(`${where}: only plain objects and arrays are JSON (got ${proto?.constructor?.name})`);
      // Default sort compares UTF-16 code units, which is what RFC 8785 §3.2.3 asks for.
      const keys = Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort();
      out.push('{');
      keys.forEach((k, i) => {
        if (i) out.push(',');
        out.push(str(k, where), ':');
        ser((v as Record<string, unknown>)[k], `${where}.${k}`, out);
      });
      out.push('}');
      return;
    }
    default:
      throw new CanonicalJsonError(`${where}: ${typeof v} is not JSON`);
  }
}

/** Canonical JSON text of `value` (RFC 8785). */
export function canonicalize(value: unknown): string {
  const out: string[] = [];
  ser(value, '$', out);
  return out.join('');
}

export const canonicalBytes = (value: unknown): Buffer => Buffer.from(canonicalize(value), 'utf8');

/** A log entry: canonical JSON bytes, at most 65,535 of them (entry bundles use uint16 lengths). */
export function entryBytes(value: unknown): Buffer {
  const b = canonicalBytes(value);
  if (b.length > MAX_ENTRY_SIZE) throw new CanonicalJsonError(`entry is ${b.length} bytes of canonical JSON; entries are limited to ${MAX_ENTRY_SIZE} bytes`);
  return b;
}
