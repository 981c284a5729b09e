// The tenant writer lock (FsEvidenceStore.withWriterLock) under contention: a lock left by a dead
// process is broken by exactly one contender, and a contender that read the dead pid before
// another broke the lock and took it never removes the live holder's lock (the double break).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { breakDeadLock, FsEvidenceStore } from '../../processors/evidence/store.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-wlock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A pid that belonged to a process now gone. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

it('many contenders on a lock left by a dead process: one holder at a time, every one gets its turn', async () => {
  for (let round = 0; round < 10; round++) {
    const root = path.join(dir, `r${round}`);
    const tenantDir = path.join(root, 'tenants', 'acme');
    mkdirSync(tenantDir, { recursive: true });
    writeFileSync(path.join(tenantDir, '.writer-lock'), String(deadPid()));
    let inside = 0;
    let maxInside = 0;
    let done = 0;
    await Promise.all(Array.from({ length: 12 }, async () => {
      const store = new FsEvidenceStore(root);
      await store.withWriterLock('acme', async () => {
        inside++; maxInside = Math.max(maxInside, inside);
        await new Promise((r) => setTimeout(r, 1));
        inside--; done++;
      });
    }));
    expect(maxInside, `round ${round}`).toBe(1);
    expect(done).toBe(12);
  }
}, 120_000);

it('breakDeadLock: removes a dead holder\'s lock and an empty one past its grace; keeps a live holder\'s, a fresh empty one, and backs off while another breaks', async () => {
  const lock = path.join(dir, 'unit.lock');
  const old = (f: string) => utimesSync(f, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  writeFileSync(lock, String(deadPid()));
  expect(await breakDeadLock(lock)).toBe(true);
  expect(existsSync(lock)).toBe(false);
  writeFileSync(lock, String(process.pid));
  expect(await breakDeadLock(lock)).toBe(false);
  expect(readFileSync(lock, 'utf8')).toBe(String(process.pid));
  writeFileSync(lock, ''); // created, pid not written yet
  expect(await breakDeadLock(lock)).toBe(false);
  old(lock); // its creator died before writing the pid
  expect(await breakDeadLock(lock)).toBe(true);
  writeFileSync(lock, String(deadPid()));
  writeFileSync(`${lock}.break`, ''); // another contender is breaking it
  expect(await breakDeadLock(lock)).toBe(false);
  expect(existsSync(lock)).toBe(true);
  old(`${lock}.break`); // that contender died mid-break: its guard is cleared, the next try breaks
  expect(await breakDeadLock(lock)).toBe(false);
  expect(await breakDeadLock(lock)).toBe(true);
  expect(existsSync(`${lock}.break`)).toBe(false);
});

it('recovery leaves the lock\'s break guard alone: a contender holds it for a few syscalls while checking the lock', async () => {
  const root = path.join(dir, 'guard');
  const tenantDir = path.join(root, 'tenants', 'acme');
  mkdirSync(tenantDir, { recursive: true });
  writeFileSync(path.join(tenantDir, '.writer-lock.break'), '');
  writeFileSync(path.join(tenantDir, '.tmp-leftover'), 'x');
  const store = new FsEvidenceStore(root);
  expect(await store.removeIncompleteWrites('acme', () => false)).toEqual(['.tmp-leftover']);
  expect(existsSync(path.join(tenantDir, '.writer-lock.break'))).toBe(true);
});
