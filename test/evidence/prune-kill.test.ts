// SIGKILL during `stella forensic prune` (the real CLI, killed mid-run, twice): what is left on disk
// still verifies (every bundle present or recorded as pruned, tiles and checkpoints intact), and a
// new prune resumes and finishes, giving the same store as an uninterrupted prune would.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { entryBytes } from '../../processors/evidence/jcs.ts';
import { checkStoredLog, prunedSet } from '../../processors/evidence/prune.ts';
import { Sealer, type AppendItem } from '../../processors/evidence/sealer.ts';
import { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { entryBundlePath } from '../../processors/evidence/tiles.ts';
import { runStellaCli } from '../support/stella.ts';
import { TENANT, testSigner } from './helpers.ts';

const root = path.resolve(import.meta.dirname, '../..');
const DAY = 86_400_000;
const BUNDLES = 120;
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-prune-kill-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = { ...process.env as Record<string, string>, STELLA_LOG_LEVEL: 'silent', STELLA_DATA_DIR: dir, STELLA_ENV: 'dev' };

function items(from: number, to: number): AppendItem[] {
  const out: AppendItem[] = [];
  for (let i = from; i < to; i++) out.push({ entry: entryBytes({ event_id: i.toString(16).padStart(32, '0'), kind: 'job.finished', seq: i }), kafka: { topic: 't', partition: 0, offset: String(i) } });
  return out;
}

/** Run `stella forensic prune` one bundle per batch and SIGKILL it once it reported `afterBatches` batches. */
function pruneUntilKilled(afterBatches: number): Promise<'killed' | number> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'cli/stella.ts'), 'forensic', 'prune', '--tenant', TENANT, '--batch', '1', '--progress'],
      { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let seen = 0;
    p.stderr.on('data', (c: Buffer) => {
      seen += (c.toString().match(/^prune acme: \d+ bundles$/gm) ?? []).length;
      if (seen >= afterBatches) p.kill('SIGKILL');
    });
    p.on('error', reject);
    p.on('exit', (code, signal) => resolve(signal === 'SIGKILL' ? 'killed' : code ?? -1));
  });
}

describe('SIGKILL during stella forensic prune', () => {
  it('leaves a store that verifies, and the next prune resumes and finishes', async () => {
    const logs = new FsEvidenceStore(path.join(dir, 'evidence', 'logs'));
    const s = await Sealer.recover({ store: logs, tenant: TENANT, signer: testSigner() });
    for (let k = 0; k < 10; k++) {
      s.append(items(k * BUNDLES * 256 / 10, (k + 1) * BUNDLES * 256 / 10));
      await s.seal(new Date(Date.now() - 60 * DAY + k * 1000));
    }
    s.append(items(BUNDLES * 256, BUNDLES * 256 + 10));
    await s.seal(new Date());

    const counts: number[] = [];
    for (const after of [3, 20]) {
      expect(await pruneUntilKilled(after)).toBe('killed');
      const check = await checkStoredLog(logs, TENANT);
      expect(check, JSON.stringify(check)).toMatchObject({ ok: true, size: BUNDLES * 256 + 10 });
      counts.push((await prunedSet(logs, TENANT)).size);
    }
    // Both kills landed mid-prune (some bundles done, not all), the second further on.
    expect(counts[0]).toBeGreaterThanOrEqual(3);
    expect(counts[1]).toBeGreaterThan(counts[0]!);
    expect(counts[1]).toBeLessThan(BUNDLES);

    const done = await runStellaCli(['forensic', 'prune', '--tenant', TENANT, '--output', 'json'], env);
    expect(done.code, done.stderr).toBe(0);
    const [report] = (JSON.parse(done.stdout) as { tenants: { pruned: number[]; resumed: number[]; check: { ok: boolean; bundles_pruned: number } }[] }).tenants;
    expect(report!.pruned.length + counts[1]!).toBe(BUNDLES);
    expect(report!.check).toMatchObject({ ok: true, bundles_pruned: BUNDLES });
    for (let n = 0; n < BUNDLES; n++) expect(await logs.read(TENANT, entryBundlePath(n, 256))).toBeUndefined();
    expect(await logs.read(TENANT, entryBundlePath(BUNDLES, 10))).toBeDefined();
    // Nothing left to do: a further run prunes and resumes nothing.
    const again = await runStellaCli(['forensic', 'prune', '--output', 'json'], env);
    expect(JSON.parse(again.stdout).tenants[0]).toMatchObject({ pruned: [], resumed: [], check: { ok: true } });
  }, 120_000);
});
