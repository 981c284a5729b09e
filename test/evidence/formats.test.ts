import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { leafHash } from '../../processors/evidence/hash.ts';
import { pae, signEnvelope, verifyEnvelope, serializeEnvelope } from '../../processors/evidence/dsse.ts';
import { canonicalize, entryBytes } from '../../processors/evidence/jcs.ts';
import { extendEdge, EMPTY_EDGE } from '../../processors/evidence/log-edge.ts';
import { MemoryTree, consistencyProofRanges, inclusionProofRanges, rangeHash } from '../../processors/evidence/merkle.ts';
import {
  formatCheckpoint, keyId, parseCheckpoint, parseVerifierKey, signNote, signerFromKeyObject, signerFromSeed, verifyNote,
} from '../../processors/evidence/note.ts';
import { formatTlogProof, parseTlogProof } from '../../processors/evidence/reader.ts';
import {
  decodeEntryBundle, encodeEntryBundle, encodeTileIndex, entryBundlePath, parseTilePath, tileNodeSource, tilePath, tilesForRanges, tilesForSize, tilesToWrite,
} from '../../processors/evidence/tiles.ts';

describe('tlog-tiles paths and shapes', () => {
  it('encodes N in x-prefixed 3-digit groups', () => {
    expect(encodeTileIndex(0)).toBe('000');
    expect(encodeTileIndex(999)).toBe('999');
    expect(encodeTileIndex(1000)).toBe('x001/000');
    expect(encodeTileIndex(1234067)).toBe('x001/x234/067');
    expect(tilePath({ level: 0, index: 1234067, width: 256 })).toBe('tile/0/x001/x234/067');
    expect(tilePath({ level: 3, index: 5, width: 8 })).toBe('tile/3/005.p/8');
    expect(entryBundlePath(1234067, 256)).toBe('tile/entries/x001/x234/067');
    expect(entryBundlePath(2, 17)).toBe('tile/entries/002.p/17');
    expect(parseTilePath('tile/entries/x001/x234/067.p/12')).toEqual({ entries: true, level: 0, index: 1234067, width: 12 });
    expect(parseTilePath('tile/2/000.p/256')).toBeUndefined();
    expect(parseTilePath('tile/0/x001/x234/067')).toEqual({ entries: false, level: 0, index: 1234067, width: 256 });
    expect(parseTilePath('tile/entries/000')).toEqual({ entries: true, level: 0, index: 0, width: 256 });
    expect(parseTilePath('tile/0/0001')).toBeUndefined();
    expect(() => tilePath({ level: 0, index: 0, width: 0 })).toThrow(/width/);
  });

  it('a tree of 70,000 has the tiles the spec lists', () => {
    const t = tilesForSize(70_000);
    const at = (l: number) => t.filter((x) => x.level === l);
    expect(at(0).filter((x) => x.width === 256)).toHaveLength(273);
    expect(at(0).filter((x) => x.width < 256)).toEqual([{ level: 0, index: 273, width: 112 }]);
    expect(at(1)).toEqual([{ level: 1, index: 0, width: 256 }, { level: 1, index: 1, width: 17 }]);
    expect(at(2)).toEqual([{ level: 2, index: 0, width: 1 }]);
    expect(tilesForSize(256)).toEqual([{ level: 0, index: 0, width: 256 }, { level: 1, index: 0, width: 1 }]);
    expect(tilesToWrite(300, 600).map(tilePath)).toEqual(['tile/0/001', 'tile/0/002.p/88', 'tile/1/000.p/2']);
  });

  it('entry bundles are uint16 length-prefixed', () => {
    const b = encodeEntryBundle([Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(300, 7)]);
    expect(b.subarray(0, 5).toString('hex')).toBe('0001610000');
    expect(b.readUInt16BE(5)).toBe(300);
    expect(decodeEntryBundle(b).map((x) => x.length)).toEqual([1, 0, 300]);
    expect(() => encodeEntryBundle([Buffer.alloc(65_536)])).toThrow(/65535/);
    expect(() => decodeEntryBundle(b.subarray(0, b.length - 1))).toThrow(/truncated/);
  });

  it('proofs computed from tiles equal proofs from the full tree, reading only the needed tiles', () => {
    const n = 256 * 256 + 3 * 256 + 77; // three tile levels, partial tiles at each
    const entries = Array.from({ length: n }, (_, i) => Buffer.from(`e${i}`));
    const ext = extendEdge(EMPTY_EDGE, entries);
    const files = new Map(ext.files.map((f) => [f.path, f.bytes]));
    const tree = new MemoryTree(ext.leafHashes);
    expect(Buffer.from(ext.root).equals(Buffer.from(tree.root()))).toBe(true);
    expect([...files.keys()].filter((p) => !p.startsWith('tile/entries')).sort()).toEqual(tilesForSize(n).map(tilePath).sort());
    const reads: string[] = [];
    const node = tileNodeSource(n, (t) => { reads.push(tilePath(t)); return files.get(tilePath(t)); });
    for (const i of [0, 1, 255, 256, 40_000, 65_535, 65_536, n - 78, n - 1]) {
      const ranges = inclusionProofRanges(i, n);
      const fromTiles = ranges.map(([a, b]) => Buffer.from(rangeHash(a, b, node)).toString('hex'));
      expect(fromTiles).toEqual(tree.inclusionProof(i, n).map((x) => Buffer.from(x).toString('hex')));
      expect(tilesForRanges(ranges, n).length).toBeLessThanOrEqual(6);
    }
    for (const [m, k] of [[1, n], [300, n], [65_536, n], [66_000, n - 5], [12_345, 65_536]] as const) {
      const ranges = consistencyProofRanges(m, k);
      const node2 = tileNodeSource(k, (t) => files.get(tilePath(t)) ?? files.get(tilePath({ ...t, width: 256 })) ?? (() => {
        // a tile partial at size k but full (or wider) in the stored tree: take the wider stored one
        for (const [p, b] of files) { const x = parseTilePath(p); if (x && !x.entries && x.level === t.level && x.index === t.index && x.width >= t.width) return b; }
        return undefined;
      })());
      expect(ranges.map(([a, b]) => Buffer.from(rangeHash(a, b, node2)).toString('hex'))).toEqual(tree.consistencyProof(m, k).map((x) => Buffer.from(x).toString('hex')));
    }
    expect(new Set(reads).size).toBeLessThan(40); // a handful of tiles, not the ~260 the tree has
  });

  it('extending in steps gives the same tiles and root as one big extension', () => {
    const entries = Array.from({ length: 1000 }, (_, i) => Buffer.from(`x${i}`));
    const once = extendEdge(EMPTY_EDGE, entries);
    let edge = EMPTY_EDGE;
    const files = new Map<string, string>();
    for (const [a, b] of [[0, 3], [3, 256], [256, 257], [257, 700], [700, 1000]] as const) {
      const r = extendEdge(edge, entries.slice(a, b));
      for (const f of r.files) files.set(f.path, Buffer.from(f.bytes).toString('hex'));
      edge = r.edge;
    }
    for (const f of once.files) expect(files.get(f.path), f.path).toBe(Buffer.from(f.bytes).toString('hex'));
    expect(Buffer.from(extendEdge(edge, []).root).equals(Buffer.from(once.root))).toBe(true);
  });
});

describe('C2SP signed-note and checkpoint', () => {
  // golang.org/x/mod/sumdb/note test vector (key, text and signature published there).
  const VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
  const SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
  const TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
  const SIG = '— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';

  it('reproduces the Go reference note byte for byte', () => {
    const seed = Buffer.from(SKEY.split('+').slice(4).join('+'), 'base64').subarray(1);
    const signer = signerFromSeed('PeterNeumann', seed);
    expect(signer.verifierKey).toBe(VKEY);
    expect(signNote(TEXT, [signer])).toBe(`${TEXT}\n${SIG}`);
    const v = verifyNote(`${TEXT}\n${SIG}`, [parseVerifierKey(VKEY)]);
    expect(v.ok).toBe(true);
    expect(verifyNote(`${TEXT.replace('cryptography', 'cryptographY')}\n${SIG}`, [parseVerifierKey(VKEY)])).toMatchObject({ ok: false, reason: 'bad-signature' });
  });

  it('key id computed independently', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    const name = 'stella-telemetry.example/tenants/acme';
    const want = createHash('sha256').update(name).update(Buffer.from([0x0a, 0x01])).update(raw).digest().subarray(0, 4).toString('hex');
    const s = signerFromKeyObject(name, privateKey);
    expect(s.keyIdHex).toBe(want);
    expect(keyId(name, raw).toString('hex')).toBe(want);
    expect(s.verifierKey).toBe(`${name}+${want}+${Buffer.concat([Buffer.from([1]), raw]).toString('base64')}`);
    expect(parseVerifierKey(s.verifierKey).keyIdHex).toBe(want);
    expect(() => parseVerifierKey(s.verifierKey.replace(want, '00000000'))).toThrow(/does not match/);
    expect(JSON.stringify({ s })).not.toContain('PRIVATE');
    expect(JSON.stringify({ s })).toContain('[Ed25519 signer');
  });

  it('checkpoint roundtrip; tampered text, signature, and unknown keys refused', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const origin = 'stella-telemetry.example/tenants/acme';
    const s = signerFromKeyObject(origin, privateKey);
    const root = leafHash(Buffer.from('x'));
    const body = formatCheckpoint({ origin, size: 42, root, extensions: [] });
    expect(body).toBe(`${origin}\n42\n${root.toString('base64')}\n`);
    const note = signNote(body, [s]);
    expect(note.startsWith(`${body}\n\u2014 ${origin} `)).toBe(true);
    const ok = verifyNote(note, [s]);
    expect(ok.ok).toBe(true);
    expect(parseCheckpoint(ok.ok ? ok.text : '')).toMatchObject({ origin, size: 42 });
    expect(verifyNote(note.replace('\n42\n', '\n43\n'), [s])).toMatchObject({ ok: false, reason: 'bad-signature' });
    const sigLine = note.split('\n')[4]!;
    const blob = Buffer.from(sigLine.split(' ')[2]!, 'base64');
    blob[10]! ^= 1;
    expect(verifyNote(note.replace(sigLine, `\u2014 ${origin} ${blob.toString('base64')}`), [s])).toMatchObject({ ok: false, reason: 'bad-signature' });
    const other = signerFromKeyObject(origin, generateKeyPairSync('ed25519').privateKey);
    expect(verifyNote(note, [other])).toMatchObject({ ok: false, reason: 'unknown-key' });
    expect(() => parseCheckpoint(`${origin}\n042\n${root.toString('base64')}\n`)).toThrow(/leading zeroes/);
  });

  it('tlog-proof text layout', () => {
    const note = 'example.com/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— example.com/log AAAAAA==\n';
    const h = Buffer.alloc(32, 1);
    const text = formatTlogProof(7, [h, h], note);
    expect(text).toBe(`c2sp.org/tlog-proof@v1\nindex 7\n${h.toString('base64')}\n${h.toString('base64')}\n\n${note}`);
    expect(parseTlogProof(text)).toMatchObject({ index: 7, checkpointNote: note });
    expect(parseTlogProof(formatTlogProof(0, [], note)).proof).toEqual([]);
    expect(() => parseTlogProof(text.replace('index 7', 'index 07'))).toThrow(/index/);
  });
});

describe('RFC 8785 canonical JSON', () => {
  it('sorts keys by UTF-16 code units (RFC 8785 §3.2.3 example)', () => {
    const v = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One', '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis' };
    expect(canonicalize(v)).toBe('{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}');
  });
  it('serializes numbers like ECMAScript (RFC 8785 §3.2.2.3 examples)', () => {
    expect(canonicalize([333333333.33333329, 1e30, 4.5, 2e-3, 0.000000000000000000000000001, -0, 1e21, 1e-7])).toBe('[333333333.3333333,1e+30,4.5,0.002,1e-27,0,1e+21,1e-7]');
    expect(canonicalize({ b: [true, null, 'x\u0001"\\'], a: { d: 1, c: 2 } })).toBe('{"a":{"c":2,"d":1},"b":[true,null,"x\\u0001\\"\\\\"]}');
  });
  it('refuses non-JSON and oversized entries', () => {
    expect(() => canonicalize({ x: NaN })).toThrow(/not a JSON number/);
    expect(() => canonicalize({ x: '\ud800' })).toThrow(/lone surrogate/);
    expect(() => canonicalize(new Date())).toThrow(/plain objects/);
    expect(() => entryBytes({ big: 'x'.repeat(70_000) })).toThrow(/limited to 65535 bytes/);
    expect(entryBytes({ ok: 'x'.repeat(65_000) }).length).toBeLessThanOrEqual(65_535);
  });
});

describe('DSSE', () => {
  it('PAE exact bytes (DSSE spec example)', () => {
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
    expect(pae('application/vnd.in-toto+json', Buffer.from('{}')).toString()).toBe('DSSEv1 28 application/vnd.in-toto+json 2 {}');
    expect(pae('t', Buffer.from('\u00e9')).toString()).toBe('DSSEv1 1 t 2 \u00e9'); // lengths are bytes, not characters
  });
  it('sign, verify, refuse tampering', () => {
    const s = signerFromKeyObject('stella-telemetry.example/tenants/acme', generateKeyPairSync('ed25519').privateKey);
    const e = signEnvelope('application/vnd.in-toto+json', Buffer.from('{"a":1}'), s);
    const bytes = serializeEnvelope(e);
    expect(verifyEnvelope(bytes, [s])).toMatchObject({ ok: true });
    expect(e.signatures[0]!.keyid).toBe(`${s.name}+${s.keyIdHex}`);
    const tampered = serializeEnvelope({ ...e, payload: Buffer.from('{"a":2}').toString('base64') });
    expect(verifyEnvelope(tampered, [s])).toMatchObject({ ok: false, reason: 'bad-signature' });
    const other = signerFromKeyObject('stella-telemetry.example/tenants/other', generateKeyPairSync('ed25519').privateKey);
    expect(verifyEnvelope(bytes, [other])).toMatchObject({ ok: false, reason: 'unknown-key' });
  });
});
