import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Sealer } from '../../processors/evidence/sealer.ts';
import { KILL_PLAN, TENANT, items, snapshotDir, tempStore, testSigner } from './helpers.ts';

const CHILD = path.join(import.meta.dirname, 'kill-child.ts');

/** Run the plan in a child process and SIGKILL it `afterMs` after it is ready (or let it finish). */
function runChild(root: string, afterMs: number | undefined): Promise<'killed' | 'done'> {
  return new Promise((resolve, reject) => {
    // VITEST cleared: the helpers only register test hooks inside vitest.
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, root], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, VITEST: '' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready') && afterMs !== undefined) setTimeout(() => child.kill('SIGKILL'), afterMs).unref();
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve('killed') : code === 0 ? resolve('done') : reject(new Error(`child exited ${code}`))));
  });
}

/** Restart after the kill: recover, re-feed from offset 0 (nothing committed), finish the plan. */
async function finish(root: ReturnType<typeof tempStore>): Promise<number> {
  const s = await Sealer.recover({ store: root, tenant: TENANT, signer: testSigner() });
  const recoveredAt = s.size;
  for (const [a, b, t] of KILL_PLAN) {
    if (b <= s.size) continue;
    s.append(items(a, b));
    await s.seal(t);
  }
  return recoveredAt;
}

describe('SIGKILL during sealing (a real process, killed at varying points)', () => {
  it('the restarted log is byte-identical to an uninterrupted run', async () => {
    const reference = tempStore();
    expect(await runChild(reference.root, undefined)).toBe('done');
    const want = snapshotDir(reference.root);
    const recoveredSizes: number[] = [];
    for (const afterMs of [15, 60, 150]) {
      const store = tempStore();
      const how = await runChild(store.root, afterMs);
      recoveredSizes.push(how === 'killed' ? await finish(store) : -1);
      if (how === 'done') await finish(store);
      expect(snapshotDir(store.root)).toEqual(want);
    }
    // At least one kill must have landed mid-plan for the test to mean anything.
    expect(recoveredSizes.some((n) => n >= 0 && n < 24_000)).toBe(true);
  }, 120_000);
});
