// The durable uniqueness decision for orchestrator exports (the group-committed claim journal):
// concurrent duplicates in one process and across processes yield exactly one claim; decisions
// survive a restart (a new instance on the same directory) and a kill -9 in the middle of batches;
// torn appends are skipped; claim files of the previous format still count; replays, conflicts and
// status steps are told apart.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CLAIM_JOURNAL_FILE, ExportClaims } from '../../lib/intake/export-claims.ts';
import { checkExportSubmission, exportRecord, exportRecordBytes, type ExportRecord } from '../../processors/intake/exports.ts';
import { TENANT, testVerifier, validExport } from './exports-support.ts';

const dirs: string[] = [];
const tmp = () => { const d = mkdtempSync(path.join(os.tmpdir(), 'stella-claims-')); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

function rec(over: Record<string, unknown>, receivedNs = 1n): { record: ExportRecord; bytes: Buffer } {
  const v = checkExportSubmission(Buffer.from(JSON.stringify(validExport(over))), { tenant: TENANT, verify: testVerifier({}) });
  if (!v.ok) throw new Error(v.message);
  const record = exportRecord(v, TENANT, receivedNs, null);
  return { record, bytes: exportRecordBytes(record) };
}

describe('export claims', () => {
  it('concurrent identical submissions: one accepted, the rest replays of it', async () => {
    const claims = new ExportClaims(tmp());
    const outs = await Promise.all(Array.from({ length: 25 }, (_, i) => { const r = rec({}, BigInt(i + 1)); return claims.claim(r.record, r.bytes); }));
    expect(outs.filter((o) => o.kind === 'accepted')).toHaveLength(1);
    expect(outs.filter((o) => o.kind === 'replay')).toHaveLength(24);
    const winner = outs.find((o) => o.kind === 'accepted')!;
    // Every replay answers with the stored record (its receivedAt), not its own.
    for (const o of outs) if (o.kind !== 'conflict') expect(o.record.receivedAtNs).toBe(winner.record.receivedAtNs);
    expect(await new ExportClaims(claims.root).versions(TENANT, winner.record.id)).toHaveLength(1);
  });

  it('concurrent conflicting submissions for one step: exactly one wins, the others are 409s', async () => {
    const claims = new ExportClaims(tmp());
    const outs = await Promise.all(Array.from({ length: 10 }, (_, i) => {
      const r = rec({ completedAt: `2026-12-01T10:0${i}:00Z` });
      return claims.claim(r.record, r.bytes);
    }));
    expect(outs.filter((o) => o.kind === 'accepted')).toHaveLength(1);
    expect(outs.filter((o) => o.kind === 'conflict' && o.reason === 'DUPLICATE_CONFLICT')).toHaveLength(9);
  });

  it('status steps: pending → running → failed; backwards, skipping and a second terminal status are refused', async () => {
    const claims = new ExportClaims(tmp());
    const pending = rec({ status: 'pending', completedAt: null });
    const running = rec({ status: 'running', completedAt: null });
    const failed = rec({ status: 'failed' });
    const succeeded = rec({ status: 'succeeded' });
    expect((await claims.claim(pending.record, pending.bytes)).kind).toBe('accepted');
    expect(await claims.claim(succeeded.record, succeeded.bytes)).toMatchObject({ kind: 'conflict', reason: 'INVALID_STATUS_TRANSITION' });
    expect(await claims.claim(running.record, running.bytes)).toMatchObject({ kind: 'accepted', version: 2 });
    expect(await claims.claim(pending.record, pending.bytes)).toMatchObject({ kind: 'replay', version: 1 });
    expect(await claims.claim(rec({ status: 'pending', completedAt: null, jobType: 'deploy' }).record, pending.bytes))
      .toMatchObject({ kind: 'conflict', reason: 'DUPLICATE_CONFLICT' });
    expect(await claims.claim(rec({ status: 'failed', jobType: 'deploy' }).record, failed.bytes)).toMatchObject({ kind: 'conflict', reason: 'DUPLICATE_CONFLICT' });
    expect(await claims.claim(failed.record, failed.bytes)).toMatchObject({ kind: 'accepted', version: 3 });
    expect(await claims.claim(succeeded.record, succeeded.bytes)).toMatchObject({ kind: 'conflict', reason: 'DUPLICATE_CONFLICT' });
    expect(await claims.claim(running.record, running.bytes)).toMatchObject({ kind: 'replay', version: 2 });
    // A terminal status straight away is a first submission, and fine.
    const other = rec({ runId: 'run-direct' });
    expect((await claims.claim(other.record, other.bytes)).kind).toBe('accepted');
  });

  it('decisions and the published marker hold across a restart (a new instance on the same directory)', async () => {
    const root = tmp();
    const a = rec({});
    const first = new ExportClaims(root);
    const acc = await first.claim(a.record, a.bytes);
    expect(acc.kind).toBe('accepted');
    const second = new ExportClaims(root);
    expect(await second.claim(rec({}, 99n).record, rec({}, 99n).bytes)).toMatchObject({ kind: 'replay', published: false });
    await second.markPublished(TENANT, a.record.id, 1);
    expect(await new ExportClaims(root).claim(a.record, a.bytes)).toMatchObject({ kind: 'replay', published: true });
    expect(await new ExportClaims(root).claim(rec({ environment: 'staging' }).record, a.bytes)).toMatchObject({ kind: 'conflict', reason: 'DUPLICATE_CONFLICT' });
  });

  it('concurrent submissions from separate processes: exactly one claim', async () => {
    const root = tmp();
    const script = path.join(root, 'claim.mts');
    const mod = path.resolve('lib/intake/export-claims.ts');
    writeFileSync(script, `import { ExportClaims } from ${JSON.stringify(mod)};
import { readFileSync } from 'node:fs';
const bytes = readFileSync(process.argv[2]!);
const claims = new ExportClaims(process.argv[3]!);
const outs = await Promise.all(Array.from({ length: 20 }, () => claims.claim(JSON.parse(bytes.toString()), bytes)));
process.stdout.write(JSON.stringify(outs.map((o) => o.kind)));\n`);
    const recFiles = [0, 1, 2].map((i) => {
      // Process 2 submits a conflicting body for the same step.
      const r = i === 2 ? rec({ environment: 'staging' }, 7n) : rec({}, BigInt(i + 1));
      const f = path.join(root, `rec${i}.json`);
      writeFileSync(f, r.bytes);
      return f;
    });
    const run = promisify(execFile);
    const results = await Promise.all(recFiles.map((f) => run(process.execPath, ['--import', 'tsx', script, f, path.join(root, 'claims')], { cwd: process.cwd() })));
    const kinds = results.flatMap((r) => JSON.parse(r.stdout) as string[]);
    expect(kinds.filter((k) => k === 'accepted')).toHaveLength(1);
    expect(kinds).toHaveLength(60);
    const stored = await new ExportClaims(path.join(root, 'claims')).versions(TENANT, rec({}).record.id);
    expect(stored).toHaveLength(1);
    // Whichever body won, the other one's 20 submissions are all conflicts or all replays.
    const perProc = results.map((r) => JSON.parse(r.stdout) as string[]);
    const conflicted = perProc[2]!.every((k) => k === 'conflict') || perProc.slice(0, 2).every((p) => p.every((k) => k === 'conflict'));
    expect(conflicted).toBe(true);
  });
});

describe('export claim journal: crashes', () => {
  const mod = path.resolve('lib/intake/export-claims.ts');
  const body = (i: number, env = 'prod') => rec({ runId: `run-k${i}`, environment: env }, BigInt(i + 1));

  it('kill -9 in the middle of batches: every acknowledged claim is a replay after restart, a different body a 409, nothing decided twice', async () => {
    const root = tmp();
    const N = 400;
    const recFile = path.join(root, 'recs.json');
    writeFileSync(recFile, JSON.stringify(Array.from({ length: N }, (_, i) => body(i).bytes.toString('utf8'))));
    const script = path.join(root, 'claim-many.mts');
    // 64 submissions in flight (each also submitted twice: concurrent duplicates); each decision is
    // printed once the claim resolved, i.e. once it would have been answered.
    writeFileSync(script, `import { ExportClaims } from ${JSON.stringify(mod)};
import { readFileSync } from 'node:fs';
const recs = (JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as string[]).map((s) => Buffer.from(s));
const claims = new ExportClaims(process.argv[3]!);
let next = 0;
await Promise.all(Array.from({ length: 64 }, async () => {
  while (next < recs.length) {
    const b = recs[next++]!;
    const outs = await Promise.all([claims.claim(JSON.parse(b.toString()), b), claims.claim(JSON.parse(b.toString()), b)]);
    for (const o of outs) process.stdout.write(JSON.stringify({ id: o.kind === 'conflict' ? '' : o.record.id, kind: o.kind, version: o.kind === 'conflict' ? 0 : o.version }) + '\\n');
  }
}));
process.stdout.write('done\\n');\n`);
    const child = spawn(process.execPath, ['--import', 'tsx', script, recFile, path.join(root, 'claims')], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
    const acked: { id: string; kind: string; version: number }[] = [];
    let buf = '';
    let finished = false;
    await new Promise<void>((resolve) => {
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl;
        while ((nl = buf.indexOf('\n')) !== -1) {
          const line = buf.slice(0, nl); buf = buf.slice(nl + 1);
          if (line === 'done') { finished = true; continue; }
          acked.push(JSON.parse(line));
          if (acked.length === 120 && !finished) child.kill('SIGKILL');
        }
      });
      child.on('exit', () => resolve());
    });
    expect(finished).toBe(false); // killed mid-run, with claims in flight
    expect(acked.length).toBeGreaterThanOrEqual(120);
    expect(acked.length).toBeLessThan(2 * N);
    // Of each pair of concurrent duplicates answered before the kill: one accepted, the other a replay of it.
    for (const a of acked) expect(a.kind === 'accepted' || a.kind === 'replay').toBe(true);
    const byId = new Map<string, string[]>();
    for (const a of acked) byId.set(a.id, [...(byId.get(a.id) ?? []), a.kind]);
    for (const kinds of byId.values()) expect(kinds.filter((k) => k === 'accepted').length).toBeLessThanOrEqual(1);

    const after = new ExportClaims(path.join(root, 'claims'));
    const ackedIds = new Set(acked.map((a) => a.id));
    let replays = 0;
    for (let i = 0; i < N; i++) {
      const r = body(i);
      const o = await after.claim(r.record, r.bytes);
      // Acknowledged before the kill: stored, so a replay of version 1. Not acknowledged: stored or not, never a conflict.
      if (ackedIds.has(r.record.id)) { expect(o).toMatchObject({ kind: 'replay', version: 1 }); replays++; }
      else expect(['accepted', 'replay']).toContain(o.kind);
      const other = body(i, 'staging');
      expect(await after.claim(other.record, other.bytes)).toMatchObject({ kind: 'conflict', reason: 'DUPLICATE_CONFLICT' });
      expect(await after.versions(TENANT, r.record.id)).toHaveLength(1);
    }
    expect(replays).toBe(ackedIds.size);
    await after.close();
  }, 60_000);

  it('a body handed to claim is stored with it: read back (verified) by a restarted instance, a tampered one refused, none for claims without', async () => {
    const root = tmp();
    const raw = Buffer.from(JSON.stringify(validExport({ runId: 'run-body' })));
    const v = checkExportSubmission(raw, { tenant: TENANT, verify: testVerifier({}) });
    if (!v.ok) throw new Error(v.message);
    const digest = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
    const record = exportRecord(v, TENANT, 1n, digest);
    const first = new ExportClaims(root);
    expect((await first.claim(record, exportRecordBytes(record), raw)).kind).toBe('accepted');
    const plain = rec({ runId: 'run-no-body' });
    expect((await first.claim(plain.record, plain.bytes)).kind).toBe('accepted');
    await first.close();
    // A fresh instance (a restart) finds the body through the claim's bodyDigest, byte for byte.
    const second = new ExportClaims(root);
    expect((await second.body(TENANT, digest))?.equals(raw)).toBe(true);
    expect(await second.body(TENANT, `sha256:${'0'.repeat(64)}`)).toBeUndefined();
    expect(await second.claim(record, exportRecordBytes(record), raw)).toMatchObject({ kind: 'replay', version: 1 });
    await second.close();
    // One byte of each stored copy of the body (the replay appended one too) altered on disk: never served.
    const journal = path.join(root, TENANT, CLAIM_JOURNAL_FILE);
    const bytes = readFileSync(journal);
    let copies = 0;
    for (let at = bytes.indexOf(raw); at !== -1; at = bytes.indexOf(raw, at + 1), copies++) bytes[at + raw.indexOf('run-body')] = 0x52; // 'r' -> 'R'
    expect(copies).toBe(2);
    writeFileSync(journal, bytes);
    const third = new ExportClaims(root);
    // The entry's CRC no longer matches: the body is skipped as torn, so it is absent, not served altered.
    expect(await third.body(TENANT, digest)).toBeUndefined();
    expect(await third.claim(plain.record, plain.bytes)).toMatchObject({ kind: 'replay', version: 1 });
    await third.close();
  });

  it('a torn append (crash mid-write) is skipped; an append still in progress is waited for; both answer as if it never happened', async () => {
    const root = tmp();
    const a = rec({ runId: 'run-torn-a' });
    const first = new ExportClaims(root);
    expect((await first.claim(a.record, a.bytes)).kind).toBe('accepted');
    await first.close();
    const journal = path.join(root, TENANT, CLAIM_JOURNAL_FILE);
    const whole = readFileSync(journal);
    // Half of a copy of the first entry at the end: what a crash in the middle of an append leaves.
    const torn = whole.subarray(0, Math.floor(whole.length / 2));
    appendFileSync(journal, torn);
    const second = new ExportClaims(root);
    const b = rec({ runId: 'run-torn-b' });
    // The torn bytes end the file: a new instance waits at them, then its own append follows and it resumes there.
    expect((await second.claim(b.record, b.bytes)).kind).toBe('accepted');
    expect(await second.claim(rec({ runId: 'run-torn-b', environment: 'staging' }).record, b.bytes)).toMatchObject({ kind: 'conflict' });
    await second.close();
    expect(statSync(journal).size).toBeGreaterThan(whole.length + torn.length);
    const third = new ExportClaims(root);
    expect(await third.claim(a.record, a.bytes)).toMatchObject({ kind: 'replay', version: 1 });
    expect(await third.claim(b.record, b.bytes)).toMatchObject({ kind: 'replay', version: 1 });
    expect(await third.versions(TENANT, a.record.id)).toHaveLength(1);
    await third.close();
  });

  it('claim files of the previous format are the oldest versions', async () => {
    const root = tmp();
    const pending = rec({ status: 'pending', completedAt: null });
    mkdirSync(path.join(root, TENANT), { recursive: true });
    writeFileSync(path.join(root, TENANT, `${pending.record.id}.v1.json`), pending.bytes);
    writeFileSync(path.join(root, TENANT, `${pending.record.id}.v1.published`), '');
    const claims = new ExportClaims(root);
    expect(await claims.claim(pending.record, pending.bytes)).toMatchObject({ kind: 'replay', version: 1, published: true });
    const running = rec({ status: 'running', completedAt: null });
    expect(await claims.claim(running.record, running.bytes)).toMatchObject({ kind: 'accepted', version: 2 });
    expect(await claims.claim(rec({ status: 'pending', completedAt: null, environment: 'staging' }).record, pending.bytes)).toMatchObject({ kind: 'conflict' });
    await claims.close();
  });
});
