// Compaction of the orchestrator exports' claim journal (docs/intake.md "Claim journal compaction"):
// the next generation keeps every accepted version (claim and body) and its published mark, drops
// replays, conflicts, their bodies and torn bytes; every decision reads the same after it, in the
// compacting instance, in another instance sharing the journal while it compacts, and after a
// restart. Crash safety: a move entry without the next generation is completed by the next reader,
// both generations present reads the higher, and a real kill -9 of a process that claims and
// compacts continuously loses no acknowledged claim and decides nothing twice.
import { crc32c } from '@node-rs/crc32';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLAIM_JOURNAL_FILE, compactJournal, ExportClaims } from '../../lib/intake/export-claims.ts';
import { checkExportSubmission, exportRecord, exportRecordBytes, type ExportRecord } from '../../processors/intake/exports.ts';
import { TENANT, testVerifier, validExport } from './exports-support.ts';

const dirs: string[] = [];
const tmp = () => { const d = mkdtempSync(path.join(os.tmpdir(), 'stella-compact-')); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

/** A submission as the route makes it: the raw body, its record (bodyDigest = sha256 of the raw body) and the record's bytes. */
function sub(over: Record<string, unknown>, spaces = 0): { raw: Buffer; record: ExportRecord; bytes: Buffer; digest: string } {
  const raw = Buffer.from(JSON.stringify(validExport(over), null, spaces));
  const v = checkExportSubmission(raw, { tenant: TENANT, verify: testVerifier({}) });
  if (!v.ok) throw new Error(v.message);
  const digest = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
  const record = exportRecord(v, TENANT, 1n, digest);
  return { raw, record, bytes: exportRecordBytes(record), digest };
}
const claimOf = (c: ExportClaims, s: ReturnType<typeof sub>) => c.claim(s.record, s.bytes, s.raw);
const gens = (root: string) => readdirSync(path.join(root, TENANT)).filter((n) => /journal$/.test(n)).sort();
/** A move entry to generation `gen`, as ExportClaims.compact appends it (magic, type M, zero proposal id, length, CRCs, payload). */
function moveEntry(gen: number): Buffer {
  const payload = Buffer.from(String(gen));
  const h = Buffer.alloc(29);
  Buffer.from([0x00, 0x53, 0x58, 0x4a, 0x4d]).copy(h, 0);
  h.writeUInt32BE(payload.length, 21);
  h.writeUInt32BE(crc32c(payload), 25);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32c(h));
  return Buffer.concat([h, crc, payload]);
}

describe('claim journal compaction', () => {
  it('keeps every decision (versions, published marks, bodies of accepted steps), drops replays and conflicts; compacting again is byte-identical', async () => {
    const root = tmp();
    const claims = new ExportClaims(root, { compactAtBytes: 0 });
    const subs = Array.from({ length: 20 }, (_, i) => sub({ runId: `run-c${i}` }));
    for (const s of subs) expect((await claimOf(claims, s)).kind).toBe('accepted');
    // Retries with the same body and with a reformatted one (same export, other raw bytes), and conflicts.
    const reformatted = subs.map((s, i) => sub({ runId: `run-c${i}` }, 2));
    for (let r = 0; r < 3; r++) for (const s of subs) expect((await claimOf(claims, s)).kind).toBe('replay');
    for (const s of reformatted) expect((await claimOf(claims, s)).kind).toBe('replay');
    for (let i = 0; i < 20; i++) expect((await claimOf(claims, sub({ runId: `run-c${i}`, environment: 'staging' }))).kind).toBe('conflict');
    const pending = sub({ runId: 'run-steps', status: 'pending', completedAt: null });
    const running = sub({ runId: 'run-steps', status: 'running', completedAt: null });
    expect(await claimOf(claims, pending)).toMatchObject({ kind: 'accepted', version: 1 });
    expect(await claimOf(claims, running)).toMatchObject({ kind: 'accepted', version: 2 });
    for (let i = 0; i < 10; i++) await claims.markPublished(TENANT, subs[i]!.record.id, 1);
    await claims.markPublished(TENANT, running.record.id, 2);
    await claims.markPublished(TENANT, running.record.id, 2); // a repeated mark
    await claims.versions(TENANT, subs[0]!.record.id); // lets the marks' cycle finish

    const r = await claims.compact(TENANT);
    expect(r.gen).toBe(1);
    expect(r.bytesAfter).toBeLessThan(r.bytesBefore / 4);
    expect(gens(root)).toEqual(['claims.1.journal']); // generation 0 is gone

    const check = async (c: ExportClaims) => {
      for (let i = 0; i < 20; i++) {
        expect(await claimOf(c, subs[i]!)).toMatchObject({ kind: 'replay', version: 1, published: i < 10 });
        expect(await c.claim(sub({ runId: `run-c${i}`, environment: 'staging' }).record, subs[i]!.bytes)).toMatchObject({ kind: 'conflict', reason: 'DUPLICATE_CONFLICT' });
        expect((await c.body(TENANT, subs[i]!.digest))?.equals(subs[i]!.raw)).toBe(true);
        expect(await c.versions(TENANT, subs[i]!.record.id)).toHaveLength(1);
      }
      expect(await claimOf(c, pending)).toMatchObject({ kind: 'replay', version: 1, published: false });
      expect(await claimOf(c, running)).toMatchObject({ kind: 'replay', version: 2, published: true });
      expect(await claimOf(c, sub({ runId: 'run-steps', status: 'pending', completedAt: null, environment: 'qa' }))).toMatchObject({ kind: 'conflict' });
    };
    // The bytes a compaction keeps, before the checks append their replays and conflicts.
    const gen1 = readFileSync(path.join(root, TENANT, 'claims.1.journal'));
    // A reformatted retry's body was never the stored record's: it is not kept.
    expect(gen1.includes(reformatted[0]!.raw)).toBe(false);
    await check(claims);
    const restarted = new ExportClaims(root, { compactAtBytes: 0 });
    await check(restarted);
    await restarted.close();
    // Compacting generation 1 + what the checks appended gives generation 1's bytes again (a pure function; nothing new was accepted).
    expect((await claims.compact(TENANT)).gen).toBe(2);
    expect(readFileSync(path.join(root, TENANT, 'claims.2.journal')).equals(gen1)).toBe(true);
    await claims.close();
  });

  it('another instance sharing the journal keeps deciding correctly while one compacts over and over', async () => {
    const root = tmp();
    const a = new ExportClaims(root, { compactAtBytes: 0 });
    const b = new ExportClaims(root, { compactAtBytes: 0 });
    const N = 150;
    const subs = Array.from({ length: N }, (_, i) => sub({ runId: `run-s${i}` }));
    const kinds = new Map<string, string[]>();
    const note = (id: string, k: string) => kinds.set(id, [...(kinds.get(id) ?? []), k]);
    let compactions = 0;
    let done = false;
    const compactor = (async () => { while (!done) { await a.compact(TENANT); compactions++; await new Promise((r) => setTimeout(r, 2)); } })();
    // Each submission through both instances at once (the duplicate crosses the compactions).
    await Promise.all(Array.from({ length: 8 }, async (_, w) => {
      for (let i = w; i < N; i += 8) {
        const s = subs[i]!;
        const outs = await Promise.all([claimOf(a, s), claimOf(b, s), claimOf(b, s)]);
        for (const o of outs) note(s.record.id, o.kind);
      }
    }));
    done = true;
    await compactor;
    expect(compactions).toBeGreaterThanOrEqual(5);
    for (const s of subs) expect((kinds.get(s.record.id) ?? []).sort()).toEqual(['accepted', 'replay', 'replay']);
    await a.close(); await b.close();
    const fresh = new ExportClaims(root);
    for (const s of subs) {
      expect(await claimOf(fresh, s)).toMatchObject({ kind: 'replay', version: 1 });
      expect(await fresh.versions(TENANT, s.record.id)).toHaveLength(1);
    }
    await fresh.close();
    expect(gens(root)).toHaveLength(1);
  }, 60_000);

  it('a move entry without the next generation (crash mid-compaction) is completed by the next reader; with both generations the higher one is read', async () => {
    const root = tmp();
    const first = new ExportClaims(root, { compactAtBytes: 0 });
    const s1 = sub({ runId: 'run-m1' });
    const s2 = sub({ runId: 'run-m2' });
    expect((await claimOf(first, s1)).kind).toBe('accepted');
    expect((await claimOf(first, s1)).kind).toBe('replay');
    await first.close();
    const g0 = path.join(root, TENANT, CLAIM_JOURNAL_FILE);
    // Crash after the M was made durable, before generation 1 was linked (a stale temp file left too);
    // an append of another process after the M is void.
    appendFileSync(g0, moveEntry(1));
    const voidStart = statSync(g0).size;
    // s2's claim as another process appended it after the M: void (s2 stays unclaimed).
    const other = tmp();
    const scratch = new ExportClaims(other);
    await claimOf(scratch, s2);
    await scratch.close();
    appendFileSync(g0, readFileSync(path.join(other, TENANT, CLAIM_JOURNAL_FILE)));
    writeFileSync(path.join(root, TENANT, '.compact-1-999-abc.tmp'), 'partial');
    const expected = compactJournal(TENANT, readFileSync(g0).subarray(0, voidStart), 0);
    const second = new ExportClaims(root, { compactAtBytes: 0 });
    expect(await claimOf(second, s1)).toMatchObject({ kind: 'replay', version: 1 });
    expect(gens(root)).toEqual(['claims.1.journal']);
    expect(readFileSync(path.join(root, TENANT, 'claims.1.journal')).subarray(0, expected.length).equals(expected)).toBe(true);
    expect((await claimOf(second, s2)).kind).toBe('accepted');
    await second.close();

    // Both generations on disk (crash after the link, before the unlink): generation 2 is read, 1 removed.
    const g1 = path.join(root, TENANT, 'claims.1.journal');
    const kept = readFileSync(g1);
    appendFileSync(g1, moveEntry(2));
    writeFileSync(path.join(root, TENANT, 'claims.2.journal'), compactJournal(TENANT, readFileSync(g1), 1));
    const third = new ExportClaims(root, { compactAtBytes: 0 });
    expect(await claimOf(third, s1)).toMatchObject({ kind: 'replay', version: 1 });
    expect(await claimOf(third, s2)).toMatchObject({ kind: 'replay', version: 1 });
    expect(gens(root)).toEqual(['claims.2.journal']);
    expect(existsSync(g1)).toBe(false);
    expect(kept.length).toBeGreaterThan(0);
    await third.close();
  });

  it('claim files of the previous format stay the oldest versions, their published marks kept through compaction', async () => {
    const root = tmp();
    const pending = sub({ runId: 'run-prev', status: 'pending', completedAt: null });
    mkdirSync(path.join(root, TENANT), { recursive: true });
    writeFileSync(path.join(root, TENANT, `${pending.record.id}.v1.json`), pending.bytes);
    const claims = new ExportClaims(root, { compactAtBytes: 0 });
    const running = sub({ runId: 'run-prev', status: 'running', completedAt: null });
    expect(await claimOf(claims, running)).toMatchObject({ kind: 'accepted', version: 2 });
    await claims.markPublished(TENANT, pending.record.id, 1); // only the journal says v1 was published
    await claims.markPublished(TENANT, running.record.id, 2);
    await claims.versions(TENANT, pending.record.id);
    await claims.compact(TENANT);
    await claims.close();
    const again = new ExportClaims(root, { compactAtBytes: 0 });
    expect(await claimOf(again, pending)).toMatchObject({ kind: 'replay', version: 1, published: true });
    expect(await claimOf(again, running)).toMatchObject({ kind: 'replay', version: 2, published: true });
    expect(await again.versions(TENANT, pending.record.id)).toHaveLength(2);
    await again.close();
  });

  it('compacts on its own once the journal is over compactAtBytes and mostly droppable', async () => {
    const root = tmp();
    const claims = new ExportClaims(root, { compactAtBytes: 32 * 1024 });
    const s = sub({ runId: 'run-auto' });
    expect((await claimOf(claims, s)).kind).toBe('accepted');
    for (let i = 0; i < 60; i++) expect((await claimOf(claims, s)).kind).toBe('replay');
    for (let i = 0; i < 50 && gens(root)[0] === CLAIM_JOURNAL_FILE; i++) await new Promise((r) => setTimeout(r, 20));
    expect(gens(root)[0]).not.toBe(CLAIM_JOURNAL_FILE);
    expect(await claimOf(claims, s)).toMatchObject({ kind: 'replay', version: 1 });
    await claims.close();
  });
});

describe('claim journal compaction: kill -9', () => {
  const mod = path.resolve('lib/intake/export-claims.ts');

  it('a process claiming and compacting continuously, killed -9 three times: every acknowledged claim stays a replay, nothing is decided twice', async () => {
    const root = tmp();
    const N = 300;
    const subs = Array.from({ length: N }, (_, i) => sub({ runId: `run-k${i}` }));
    const recFile = path.join(root, 'subs.json');
    writeFileSync(recFile, JSON.stringify(subs.map((s) => ({ raw: s.raw.toString('utf8'), bytes: s.bytes.toString('utf8') }))));
    const script = path.join(root, 'claim-compact.mts');
    // 32 submissions in flight, each twice (concurrent duplicates), a compaction after another all the
    // while; a decision is printed once its claim resolved (when the route would answer).
    writeFileSync(script, `import { ExportClaims } from ${JSON.stringify(mod)};
import { readFileSync } from 'node:fs';
const subs = (JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { raw: string; bytes: string }[]);
const claims = new ExportClaims(process.argv[3]!, { compactAtBytes: 0 });
const start = Number(process.argv[4]);
let next = start;
let done = false;
const compactor = (async () => { while (!done) { await claims.compact(${JSON.stringify(TENANT)}); process.stdout.write('compacted\\n'); } })();
await Promise.all(Array.from({ length: 32 }, async () => {
  while (next < subs.length + start) {
    const s = subs[next++ % subs.length]!;
    const b = Buffer.from(s.bytes);
    const outs = await Promise.all([claims.claim(JSON.parse(s.bytes), b, Buffer.from(s.raw)), claims.claim(JSON.parse(s.bytes), b, Buffer.from(s.raw))]);
    for (const o of outs) process.stdout.write(JSON.stringify({ id: o.kind === 'conflict' ? '' : o.record.id, kind: o.kind, version: o.kind === 'conflict' ? 0 : o.version }) + '\\n');
  }
}));
done = true;
await compactor;
process.stdout.write('done\\n');\n`);
    const acked = new Map<string, string[]>();
    let compactions = 0;
    for (const [round, killAt] of [[0, 90], [1, 140], [2, 200]] as const) {
      const child = spawn(process.execPath, ['--import', 'tsx', script, recFile, path.join(root, 'claims'), String(round * 100)], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
      let buf = '';
      let lines = 0;
      let finished = false;
      await new Promise<void>((resolve) => {
        child.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          let nl;
          while ((nl = buf.indexOf('\n')) !== -1) {
            const line = buf.slice(0, nl); buf = buf.slice(nl + 1);
            if (line === 'done') { finished = true; continue; }
            if (line === 'compacted') { compactions++; continue; }
            const a = JSON.parse(line) as { id: string; kind: string; version: number };
            acked.set(a.id, [...(acked.get(a.id) ?? []), a.kind]);
            if (++lines === killAt && !finished) child.kill('SIGKILL');
          }
        });
        child.on('exit', () => resolve());
      });
      expect(finished, `round ${round} was killed mid-run`).toBe(false);
    }
    expect(compactions).toBeGreaterThanOrEqual(3);
    // Whatever was answered before a kill: at most one acceptance per export, over all rounds.
    for (const [id, kinds] of acked) {
      expect(kinds.every((k) => k === 'accepted' || k === 'replay'), id).toBe(true);
      expect(kinds.filter((k) => k === 'accepted').length, id).toBeLessThanOrEqual(1);
    }
    const after = new ExportClaims(path.join(root, 'claims'));
    for (const s of subs) {
      const o = await claimOf(after, s);
      if (acked.has(s.record.id)) expect(o, s.record.id).toMatchObject({ kind: 'replay', version: 1 });
      else expect(['accepted', 'replay']).toContain(o.kind);
      expect(await after.claim(sub({ runId: s.record.export.runId, environment: 'staging' }).record, s.bytes)).toMatchObject({ kind: 'conflict', reason: 'DUPLICATE_CONFLICT' });
      expect(await after.versions(TENANT, s.record.id)).toHaveLength(1);
      if (acked.has(s.record.id)) expect((await after.body(TENANT, s.digest))?.equals(s.raw)).toBe(true);
    }
    await after.close();
    expect(gens(path.join(root, 'claims'))).toHaveLength(1);
  }, 120_000);
});
