// Witness cosignatures and RFC 3161 tokens from the running evidence runner, with real parts: the
// Kafka broker, a litewitness (torchwood v0.6.1) and an `openssl ts` TSA. The witness is killed
// mid-run and the TSA goes down: sealing goes on, the lag/gap metrics show it, and once they are
// back the witness catches up (consistency proof from its last size) and the gaps are stamped.
// The stored cosignatures verify with Go's golang.org/x/mod/sumdb/note; tokens with openssl.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { registry } from '../../lib/metrics.ts';
import { cosignaturePath, storedCosignatures, storedTimestamps, timestampPath, tsaId } from '../../processors/evidence/attest.ts';
import { defaultOrigin } from '../../processors/evidence/layout.ts';
import { parseNote } from '../../processors/evidence/note.ts';
import { LogReader } from '../../processors/evidence/reader.ts';
import { startEvidenceRunner, type RunningEvidence } from '../../processors/evidence/runner.ts';
import { checkTsaPolicy } from '../../processors/evidence/tsa.ts';
import { checkWitnessPolicy, parseCosignatureVerifierKey } from '../../processors/evidence/witness.ts';
import { createTopics, testKafka, uniq } from '../support/kafka.ts';
import { testStore } from '../timeline/support.ts';
import { tempStore } from './helpers.ts';
import { opensslVerifyToken, startLitewitness, startOpensslTsa, type RunningTsa, type RunningWitness } from './peers.ts';
import { produce, sealedSize, tenantSigner, testEvent, waitFor } from './runner-support.ts';

const TENANT = 'acme';
const interop = path.resolve(import.meta.dirname, 'interop');
const out = mkdtempSync(path.join(os.tmpdir(), 'stella-cosig-'));
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => { for (const c of cleanup.reverse()) await c().catch(() => undefined); rmSync(out, { recursive: true, force: true }); });

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getSingleMetric(name)?.get())?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
  return m?.value ?? NaN;
}

describe('evidence runner with a real witness and TSA', () => {
  it('cosigns and stamps every checkpoint without ever blocking sealing; a killed witness catches up; Go verifies the cosignatures', async () => {
    const signer = tenantSigner(TENANT);
    const lw: RunningWitness = await startLitewitness('witness.test/runner', [{ origin: defaultOrigin(TENANT), vkey: signer.verifierKey }]);
    cleanup.push(() => lw.stop());
    const tsa: RunningTsa = await startOpensslTsa('Runner TSA');
    cleanup.push(() => tsa.stop());
    const timeline = uniq('wit_timeline');
    const clean = uniq('wit_spans');
    await createTopics([timeline, clean], 1);
    const store = tempStore();
    const r: RunningEvidence = await startEvidenceRunner({
      kafka: testKafka('evidence-witness'), evidenceStore: store, store: await testStore(), signer: tenantSigner,
      topics: { timelineEvents: timeline, clean: [clean] }, groupId: uniq('evidence-wit'), sealEverySeconds: 0.3, sealEveryEntries: 1000,
      attest: { witnesses: [{ name: lw.name, url: lw.url, vkey: lw.vkey }], tsa: { url: tsa.url, certificates: [tsa.tsaCertPem] }, backoff: { initialMs: 100, maxMs: 800 }, requestTimeoutMs: 3000 },
    });
    cleanup.push(() => r.abandon());
    const wkid = parseCosignatureVerifierKey(lw.vkey).keyIdHex;
    const tid = tsaId(tsa.tsaCertPem);
    let seq = 0;
    const send = (n: number) => produce(timeline, Array.from({ length: n }, () => ({ tenant: TENANT, value: JSON.stringify(testEvent(TENANT, seq++)) })));

    // 1. Everything up: the first checkpoints are cosigned and stamped.
    await send(5);
    await waitFor('sealed 5', async () => (await sealedSize(store, TENANT)) === 5);
    await waitFor('cosigned 5', async () => (await store.read(TENANT, cosignaturePath(wkid, 5))) !== undefined);
    await waitFor('stamped 5', async () => (await store.read(TENANT, timestampPath(tid, 5))) !== undefined);

    // 2. The witness is killed and the TSA goes down: seals keep coming.
    await lw.kill();
    await tsa.setDown(true);
    for (const n of [3, 4]) {
      const before = await sealedSize(store, TENANT);
      await send(n);
      await waitFor(`sealed ${before + n} while the witness is down`, async () => (await sealedSize(store, TENANT)) === before + n);
    }
    expect(await sealedSize(store, TENANT)).toBe(12);
    await waitFor('the witness failure is retried', () => (r.attestor!.status(TENANT)!.witnesses[0]!.failures >= 2));
    await waitFor('cosignature lag visible', async () => (await metric('stella_evidence_cosignature_lag_seconds', { tenant: TENANT, witness: lw.name })) > 0);
    // The seal's checkpoint file is visible a moment before the runner hands the size to the attestor.
    await waitFor('cosignature lag of 7 entries (12 sealed, 5 cosigned)', async () => (await metric('stella_evidence_cosignature_lag_entries', { tenant: TENANT, witness: lw.name })) === 7);
    await waitFor('timestamp gap visible', async () => (await metric('stella_evidence_timestamp_gap_checkpoints', { tenant: TENANT })) === 2);
    expect(await store.read(TENANT, cosignaturePath(wkid, 12))).toBeUndefined();

    // 3. Back up: the witness catches up from 5 to 12 in one request, the TSA fills both gaps.
    await lw.start();
    await tsa.setDown(false);
    await r.attestor!.settled(30_000);
    expect(await store.read(TENANT, cosignaturePath(wkid, 12))).toBeDefined();
    expect(await store.read(TENANT, cosignaturePath(wkid, 8))).toBeUndefined(); // skipped while down: 12 covers it
    for (const s of [5, 8, 12]) expect(await store.read(TENANT, timestampPath(tid, s)), `token for ${s}`).toBeDefined();
    expect(await metric('stella_evidence_cosignature_lag_entries', { tenant: TENANT, witness: lw.name })).toBe(0);
    await waitFor('gap closed', async () => (await metric('stella_evidence_timestamp_gap_checkpoints', { tenant: TENANT })) === 0);

    // 4. One more seal with everything up.
    await send(2);
    await waitFor('sealed 14', async () => (await sealedSize(store, TENANT)) === 14);
    await r.attestor!.settled(30_000);

    // 5. Verify what is stored: our policy checks, openssl for tokens, Go sumdb/note for cosignatures.
    const reader = new LogReader(store, TENANT);
    const notes = path.join(out, 'notes');
    mkdirSync(notes);
    for (const size of [5, 12, 14]) {
      const cp = (await reader.checkpointAt(size))!;
      const lines = await storedCosignatures(store, TENANT, size);
      expect(lines).toHaveLength(1);
      expect(checkWitnessPolicy(parseNote(cp.note).text, lines, { k: 1, keys: [{ name: lw.name, vkey: lw.vkey }] }).ok).toBe(true);
      const tokens = await storedTimestamps(store, TENANT, size);
      expect(checkTsaPolicy(cp.bytes, tokens, { k: 1, certificates: [tsa.caCertPem] }).ok).toBe(true);
      const [ok, why] = opensslVerifyToken(tsa, tokens[0]!, cp.bytes);
      expect(ok, why).toBe(true);
      writeFileSync(path.join(notes, `${String(size).padStart(6, '0')}.note`), cp.note + lines.join(''));
    }
    writeFileSync(path.join(out, 'vkey'), `${signer.verifierKey}\n`);
    const env = Object.fromEntries(Object.entries({ ...process.env, GOFLAGS: '-mod=mod' }).filter(([k]) => !k.startsWith('VITEST')));
    const go = spawnSync('go', ['run', './cosig', notes, path.join(out, 'vkey'), lw.vkey], { cwd: interop, encoding: 'utf8', env, timeout: 240_000 });
    expect(go.status, go.stderr).toBe(0);
    expect(go.stdout.match(/^cosignature by witness\.test\/runner on \S+ size \d+ at \S+ verified by Go sumdb\/note$/gm)).toHaveLength(3);

    // A tampered cosignature (other size in the note) is refused by Go too.
    const bad = path.join(out, 'bad');
    mkdirSync(bad);
    const cp12 = (await reader.checkpointAt(12))!;
    writeFileSync(path.join(bad, 'x.note'), cp12.note + (await storedCosignatures(store, TENANT, 14)).join(''));
    const goBad = spawnSync('go', ['run', './cosig', bad, path.join(out, 'vkey'), lw.vkey], { cwd: interop, encoding: 'utf8', env, timeout: 240_000 });
    expect(goBad.status).not.toBe(0);
  }, 240_000);
});
