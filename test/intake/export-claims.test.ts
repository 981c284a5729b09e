// The durable uniqueness decision for orchestrator exports: concurrent duplicates in one process and
// across processes yield exactly one claim; decisions survive a restart (a new instance on the same
// directory); replays, conflicts and status steps are told apart.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ExportClaims } from '../../lib/intake/export-claims.ts';
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
    expect(readdirSync(path.join(claims.root, TENANT)).filter((f) => f.endsWith('.json'))).toHaveLength(1);
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
    expect(readdirSync(path.join(root, 'claims', TENANT)).filter((f) => f.endsWith('.json'))).toHaveLength(1);
    // Whichever body won, the other one's 20 submissions are all conflicts or all replays.
    const perProc = results.map((r) => JSON.parse(r.stdout) as string[]);
    const conflicted = perProc[2]!.every((k) => k === 'conflict') || perProc.slice(0, 2).every((p) => p.every((k) => k === 'conflict'));
    expect(conflicted).toBe(true);
  });
});
