// C2SP tlog-cosignature and tlog-witness: the pure part (keys, lines, k-of-n) and the client
// against a real litewitness (filippo.io/torchwood v0.6.1): cosigning, 409 catch-up, supersession.
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogReader } from '../../processors/evidence/reader.ts';
import { Sealer } from '../../processors/evidence/sealer.ts';
import {
  addCheckpointBody, checkWitnessPolicy, cosign, parseConflictBody, parseCosignatureLine, parseCosignatureVerifierKey, rawEd25519Signer,
  verifyCosignature, makeCosignatureVerifier, WitnessClient,
} from '../../processors/evidence/witness.ts';
import { parseNote } from '../../processors/evidence/note.ts';
import { ORIGIN, TENANT, items, tempStore, testSigner } from './helpers.ts';
import { startLitewitness, type RunningWitness } from './peers.ts';

const text = `${ORIGIN}\n5\nq7oD5Ow8nPAlVQfpZ2lXfbVlTt5JQeo39lIrZ4EBCtc=\n`;
const witnessKey = (label: string, name: string) => {
  const { privateKey } = generateKeyPairSync('ed25519');
  const s = rawEd25519Signer(privateKey);
  return { name, signer: s, vkey: makeCosignatureVerifier(name, s.publicKey).verifierKey, label };
};

describe('tlog-cosignature (pure)', () => {
  const w1 = witnessKey('w1', 'witness.example/w1');
  const w2 = witnessKey('w2', 'witness.example/w2');

  it('verifier keys carry type 0x04 and a key id over name ‖ 0x0A ‖ 0x04 ‖ key; a checkpoint (0x01) key is refused', () => {
    const v = parseCosignatureVerifierKey(w1.vkey);
    expect(v.name).toBe('witness.example/w1');
    expect(Buffer.from(w1.vkey.split('+').slice(2).join('+'), 'base64')[0]).toBe(0x04);
    expect(() => parseCosignatureVerifierKey(testSigner().verifierKey)).toThrow(/signature type 0x01, expected 0x04/);
    const wrongId = w1.vkey.replace(/\+[0-9a-f]{8}\+/, '+00000000+');
    expect(() => parseCosignatureVerifierKey(wrongId)).toThrow(/does not match/);
  });

  it('a cosignature signs "cosignature/v1\\ntime <t>\\n" ‖ checkpoint text and carries the timestamp', () => {
    const line = cosign(text, w1.name, w1.signer, 1_700_000_000n);
    const c = parseCosignatureLine(line);
    expect(c.timestamp).toBe(1_700_000_000n);
    const v = parseCosignatureVerifierKey(w1.vkey);
    expect(verifyCosignature(text, line, v)).toEqual({ ok: true, timestamp: 1_700_000_000n });
    expect(verifyCosignature(text.replace('\n5\n', '\n6\n'), line, v).ok).toBe(false);
    expect(verifyCosignature(text, cosign(text, w1.name, w1.signer, 0n), v)).toMatchObject({ ok: false, detail: expect.stringContaining('timestamp 0') });
    // Re-stamping a line with another time breaks it: the time is signed.
    const blob = Buffer.from(line.slice(line.lastIndexOf(' ') + 1), 'base64');
    blob.writeBigUInt64BE(1_700_000_001n, 4);
    expect(verifyCosignature(text, `— ${w1.name} ${blob.toString('base64')}\n`, v).ok).toBe(false);
  });

  it('k-of-n: counts each trusted key once, ignores unknown keys, fails closed on a bad line from a trusted key', () => {
    const policy = { k: 2, keys: [{ name: w1.name, vkey: w1.vkey }, { name: w2.name, vkey: w2.vkey }] };
    const a = cosign(text, w1.name, w1.signer, 1_700_000_000n);
    const b = cosign(text, w2.name, w2.signer, 1_700_000_005n);
    const stranger = witnessKey('x', 'witness.example/x');
    const s = cosign(text, stranger.name, stranger.signer, 1_700_000_000n);
    expect(checkWitnessPolicy(text, [a, b], policy)).toMatchObject({ ok: true, cosignedBy: [{ name: w1.name }, { name: w2.name }] });
    expect(checkWitnessPolicy(text, [a, a, s], policy)).toMatchObject({ ok: false, reason: 'unmet' });
    expect(checkWitnessPolicy(text, [], { k: 1, keys: policy.keys })).toMatchObject({ ok: false, reason: 'unmet' });
    const forged = cosign(text, w2.name, stranger.signer, 1_700_000_000n).replace(/ \S+\n$/, (m) => {
      // a line that claims w2's key id but is signed by another key
      const blob = Buffer.from(m.trim(), 'base64');
      parseCosignatureVerifierKey(w2.vkey).keyId.copy(blob, 0);
      return ` ${blob.toString('base64')}\n`;
    });
    expect(checkWitnessPolicy(text, [a, forged], policy)).toMatchObject({ ok: false, reason: 'invalid' });
    expect(checkWitnessPolicy(text, [a], { k: 3, keys: policy.keys })).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('add-checkpoint bodies and 409 bodies', () => {
    const note = `${text}\n— ${ORIGIN} AAAAAAAA\n`;
    expect(addCheckpointBody(3, [Buffer.alloc(32, 1)], note)).toBe(`old 3\n${Buffer.alloc(32, 1).toString('base64')}\n\n${note}`);
    expect(() => addCheckpointBody(0, [Buffer.alloc(32)], note)).toThrow(/must be empty/);
    expect(() => addCheckpointBody(1, new Array(64).fill(Buffer.alloc(32)), note)).toThrow(/at most 63/);
    expect(parseConflictBody('17\n')).toBe(17);
    expect(() => parseConflictBody('017\n')).toThrow();
  });
});

describe('WitnessClient against a real litewitness', () => {
  const signer = testSigner('witness-test-key');
  let lw: RunningWitness;
  beforeAll(async () => { lw = await startLitewitness('witness.test/lw1', [{ origin: ORIGIN, vkey: signer.verifierKey }]); }, 120_000);
  afterAll(async () => { await lw?.stop(); });

  it('cosigns with proofs from its last size, catches up after a 409, and reports a superseded checkpoint', async () => {
    const store = tempStore();
    const sealer = await Sealer.recover({ store, tenant: TENANT, signer });
    const reader = new LogReader(store, TENANT);
    const sizes: number[] = [];
    for (const [a, b] of [[0, 3], [3, 10], [10, 300], [300, 301]] as const) { sealer.append(items(a, b)); await sealer.seal(new Date(Date.UTC(2026, 0, 1, 0, b))); sizes.push(b); }
    const req = async (size: number) => {
      const cp = (await reader.checkpointAt(size))!;
      return { note: cp.note, checkpointText: parseNote(cp.note).text, size, proof: (from: number) => reader.consistencyProof(from, size) };
    };
    const client = new WitnessClient({ name: lw.name, url: lw.url, vkey: lw.vkey });
    const v = parseCosignatureVerifierKey(lw.vkey);

    const r1 = await client.submit(await req(3));
    expect(r1.kind).toBe('cosigned');
    if (r1.kind !== 'cosigned') return;
    expect(verifyCosignature((await req(3)).checkpointText, r1.line, v).ok).toBe(true);
    expect(Number(r1.timestamp)).toBeGreaterThan(Date.now() / 1000 - 60);

    // Pretend we lost track: the client believes 0, the witness knows 3 → 409, then a proof 3 → 300.
    client.setKnownSize(ORIGIN, 0);
    const r2 = await client.submit(await req(300));
    expect(r2).toMatchObject({ kind: 'cosigned', witnessSize: 300 });
    expect(client.knownSize(ORIGIN)).toBe(300);

    // An older checkpoint can no longer be cosigned: the witness is ahead of it.
    expect(await client.submit(await req(10))).toEqual({ kind: 'superseded', witnessSize: 300 });

    // Same size again (an answer lost in transit): the witness re-cosigns the same tree.
    expect((await client.submit(await req(300))).kind).toBe('cosigned');
    expect((await client.submit(await req(301))).kind).toBe('cosigned');
  }, 60_000);

  it('a witness that is down is a WitnessError (retryable), not a hang', async () => {
    const client = new WitnessClient({ name: lw.name, url: 'http://127.0.0.1:9', vkey: lw.vkey }, 2000);
    const cp = `${ORIGIN}\n1\nq7oD5Ow8nPAlVQfpZ2lXfbVlTt5JQeo39lIrZ4EBCtc=\n`;
    await expect(client.submit({ note: `${cp}\n— ${ORIGIN} AAAAAAAA\n`, checkpointText: cp, size: 1, proof: async () => [] })).rejects.toThrow(/unreachable/);
  });
});
