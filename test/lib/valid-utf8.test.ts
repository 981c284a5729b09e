// validUtf8 checks short strings four bytes at a time through a DataView of the whole buffer and
// falls back to the native validator. Every length, offset and position of a non-ASCII byte must
// give the native answer, or an invalid string slips through (or a valid one is refused).
import { isUtf8 } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { validUtf8 } from '../../lib/otlp/wire.ts';

describe('validUtf8', () => {
  it('agrees with the native validator for every length up to 300, offset and bad-byte position', () => {
    let checked = 0;
    for (let len = 0; len <= 300; len += len < 40 ? 1 : 13) {
      for (const offset of [0, 1, 2, 3, 5]) {
        const buf = Buffer.alloc(offset + len + 7, 0x61);
        for (let bad = -1; bad < len; bad++) {
          for (const b of bad < 0 ? [0x61] : [0x80, 0xff, 0xc3]) {
            if (bad >= 0) buf[offset + bad] = b;
            const want = isUtf8(buf.subarray(offset, offset + len));
            expect(validUtf8(buf, offset, offset + len), `len ${len} offset ${offset} byte ${b.toString(16)} at ${bad}`).toBe(want);
            if (bad >= 0) expect(want).toBe(false);
            checked++;
            if (bad >= 0) buf[offset + bad] = 0x61;
          }
        }
        // The bytes around the range never count: a bad byte just before and just after it.
        buf[offset + len] = 0xff;
        if (offset > 0) buf[offset - 1] = 0xff;
        expect(validUtf8(buf, offset, offset + len)).toBe(true);
        buf[offset + len] = 0x61;
        if (offset > 0) buf[offset - 1] = 0x61;
      }
    }
    expect(checked).toBeGreaterThan(10_000);
  });

  it('accepts multi-byte UTF-8 and refuses a cut sequence, in views at any byte offset', () => {
    const text = Buffer.from('tenant ℓ 🚀 ünï'); // ends in a two-byte character
    const backing = Buffer.alloc(text.length + 16, 0x20);
    const view = backing.subarray(1); // a Buffer whose byteOffset is not 0
    for (let offset = 0; offset < 8; offset++) {
      backing.fill(0x20);
      text.copy(backing, 1 + offset);
      expect(validUtf8(view, offset, offset + text.length)).toBe(true);
      expect(validUtf8(view, offset, offset + text.length - 1)).toBe(false); // the last character cut
      expect(validUtf8(backing, 1 + offset, 1 + offset + text.length)).toBe(true);
    }
  });
});
