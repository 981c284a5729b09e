// The byte-level fast path of forEachRuntimeFact (processors/intake/runtime-facts.ts) must decide
// exactly as the general path (JSON.parse + checkRecord): same verdict, reason, message, line and
// field, and the same facts, for valid bodies and for thousands of hostile mutations of them.
import { describe, expect, it } from 'vitest';
import { forEachRuntimeFact, type RuntimeFact } from '../../processors/intake/runtime-facts.ts';

const limits = { maxLineBytes: 600 };
const both = (b: Buffer) => {
  const fast: RuntimeFact[] = [], general: RuntimeFact[] = [];
  const f = forEachRuntimeFact(b, limits, (x) => fast.push(x), true);
  const g = forEachRuntimeFact(b, limits, (x) => general.push(x), false);
  return { f, g, fast, general };
};

let seed = 12345;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

const base = () => ({ symbol_id: `libfoo.so!fn_${Math.floor(rand() * 1000)}+0x1f`, purl: pick(['pkg:npm/express@4.18.2', 'pkg:deb/debian/openssl@3.0.11-1?arch=amd64', 'pkg:a/b']),
  timestamp: pick(['2026-12-03T12:00:00Z', '2026-12-03T12:00:00.5Z', '2026-12-03T12:59:59.123456789Z', '2024-02-29T23:00:00.000001Z']),
  pid: pick([0, 7, 4294967295]), container: pick(['', 'c0ffee', 'x'.repeat(256)]), count: pick([1, 2, 999999999999999]) });

// Text-level mutations of one valid line: each either keeps it valid in a way the fast path must
// handle or send to the general path, or breaks a rule.
const MUTATIONS: ((l: string) => string)[] = [
  (l) => l,
  (l) => ` ${l}\t`,
  (l) => l.replace(/:/g, ' : ').replace(/,/g, ' , '),
  (l) => `${l}\r`,
  (l) => l.replace('"pid":', '"pid":-'),
  (l) => l.replace(/"pid":(\d+)/, '"pid":$1.0'),
  (l) => l.replace(/"count":(\d+)/, '"count":$1e0'),
  (l) => l.replace(/"count":(\d+)/, '"count":0$1'),
  (l) => l.replace(/"count":\d+/, '"count":0'),
  (l) => l.replace(/"count":\d+/, '"count":9007199254740993'),
  (l) => l.replace(/"pid":\d+/, '"pid":4294967296'),
  (l) => l.replace('"symbol_id":"', '"symbol_id":"\\u0041'),
  (l) => l.replace('"symbol_id":"', '"symbol_id":"\\u0007'),
  (l) => l.replace('"symbol_id":"', '"symbol_id":"ü'),
  (l) => l.replace('"symbol_id":"', '"symbol_id":"\u007f'),
  (l) => l.replace('"symbol_id":"', '"symbol_id":"\u0085'),
  (l) => l.replace(/"symbol_id":"[^"]*"/, '"symbol_id":""'),
  (l) => l.replace(/"symbol_id":"[^"]*"/, `"symbol_id":"${'s'.repeat(4097)}"`),
  (l) => l.replace(/"container":"[^"]*"/, `"container":"${'c'.repeat(257)}"`),
  (l) => l.replace('"purl":"pkg:', '"purl":"PKG:'),
  (l) => l.replace('"purl":"pkg:', '"purl":"pkg:1'),
  (l) => l.replace('"purl":"pkg:', '"purl":"pkg:.'),
  (l) => l.replace(/"purl":"pkg:([^/]*)\//, '"purl":"pkg:$1 /'),
  (l) => l.replace(/"purl":"([^"]*)"/, '"purl":"$1 x"'),
  (l) => l.replace(/"purl":"pkg:([^/]*)\/[^"]*"/, '"purl":"pkg:$1/"'),
  (l) => l.replace('"purl":"pkg:', '"purl":"pkg:a/b/c/'),
  (l) => l.replace(/"timestamp":"[^"]*"/, '"timestamp":"2026-02-30T12:00:00Z"'),
  (l) => l.replace(/"timestamp":"[^"]*"/, '"timestamp":"2026-12-03T24:00:00Z"'),
  (l) => l.replace(/"timestamp":"[^"]*"/, '"timestamp":"2026-12-03T12:60:00Z"'),
  (l) => l.replace(/"timestamp":"[^"]*"/, '"timestamp":"2026-12-03T12:00:00.Z"'),
  (l) => l.replace(/"timestamp":"[^"]*"/, '"timestamp":"2026-12-03T12:00:00.1234567890Z"'),
  (l) => l.replace(/"timestamp":"[^"]*"/, '"timestamp":"2026-12-03 12:00:00Z"'),
  (l) => l.replace(/"timestamp":"[^"]*"/, '"timestamp":"1969-12-31T23:59:59Z"'),
  (l) => l.replace(/"timestamp":"[^"]*"/, '"timestamp":"2026-12-03T12:00:00+00:00"'),
  (l) => l.replace(/"timestamp":"[^"]*"/, '"timestamp":1796299200'),
  (l) => l.replace(/"pid":\d+/, '"pid":"7"'),
  (l) => l.replace(/"pid":\d+/, '"pid":null'),
  (l) => l.replace(/"pid":\d+/, '"pid":true'),
  (l) => l.replace(/"pid":\d+/, '"pid":[1]'),
  (l) => l.replace(/"container":"[^"]*"/, '"container":{}'),
  (l) => l.replace(/,"count":\d+/, ''),
  (l) => l.replace('}', ',"extra":1}'),
  (l) => l.replace('}', ',"pid":1}'),
  (l) => l.replace('"pid"', '"p\\u0069d"'),
  (l) => l.replace('"pid"', '"PID"'),
  (l) => l.replace('}', '} x'),
  (l) => l.replace('}', '},{}'),
  (l) => l.slice(0, -1),
  (l) => `[${l}]`,
  (l) => l.replace('{', '{ "__proto__" : 1 ,'),
  (l) => l.replace(/"symbol_id":"[^"]*"/, '"symbol_id":"a:b:c"'),
  (l) => l.replace(/"symbol_id":"[^"]*"/, '"symbol_id":"x\\"y"'),
  (l) => `\ufeff${l}`,
  (l) => l.replace(/"/g, "'"),
];

describe('runtime facts fast path = general path', () => {
  it('valid bodies: same summary and facts', () => {
    for (let n = 0; n < 50; n++) {
      const lines = Array.from({ length: 1 + Math.floor(rand() * 20) }, () => JSON.stringify(base()));
      const body = Buffer.from(lines.join(rand() < 0.5 ? '\n' : '\r\n') + (rand() < 0.5 ? '\n' : ''));
      const { f, g, fast, general } = both(body);
      expect(g.ok).toBe(true);
      expect(f).toEqual(g);
      expect(fast).toEqual(general);
    }
  });

  it('every mutation, alone and in the middle of valid lines: same verdict, reason, message, line, field and facts', () => {
    let refusals = 0;
    for (let n = 0; n < 3000; n++) {
      const m = MUTATIONS[n % MUTATIONS.length]!;
      const bad = m(JSON.stringify(base()));
      const before = Array.from({ length: Math.floor(rand() * 3) }, () => JSON.stringify(base()));
      const body = Buffer.from([...before, bad, JSON.stringify(base())].join('\n') + '\n');
      const { f, g, fast, general } = both(body);
      expect(f, `mutation ${n % MUTATIONS.length}: ${bad}`).toEqual(g);
      expect(fast).toEqual(general);
      if (!g.ok) refusals++;
    }
    // The mutations do exercise refusals (and acceptances).
    expect(refusals).toBeGreaterThan(1500);
    expect(refusals).toBeLessThan(3000);
  });

  it('the fast path is taken for plain records (the whole point): a 1 MiB body is checked without JSON.parse', () => {
    const lines: string[] = [];
    for (let size = 0; size < 1 << 20;) { const l = JSON.stringify(base()); lines.push(l); size += l.length + 1; }
    const body = Buffer.from(lines.join('\n'));
    const parse = JSON.parse;
    let calls = 0;
    JSON.parse = ((...a: Parameters<typeof JSON.parse>) => { calls++; return parse(...a); }) as typeof JSON.parse;
    try { expect(forEachRuntimeFact(body, limits)).toMatchObject({ ok: true, records: lines.length }); } finally { JSON.parse = parse; }
    expect(calls).toBe(0);
  });
});
