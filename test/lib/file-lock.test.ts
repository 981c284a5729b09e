// lib/file-lock.ts, the one lock-file algorithm of the evidence writer lock, the token store and
// the collector build cache: real processes race for a lock whose holders keep dying (one holder at
// a time, each dead holder broken exactly once), a live holder is never broken, and a release
// removes only the releaser's own lock.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireFileLock, acquireFileLockSync, breakStaleLock, FileLockTimeout, parseLockHolder, withFileLockSync } from '../../lib/file-lock.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-flock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A pid that belonged to a process now gone. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}
const holderJson = (pid: number, tag: string, host = os.hostname()) => JSON.stringify({ pid, host, startedAt: tag, id: tag });
const age = (f: string, ms: number) => utimesSync(f, new Date(Date.now() - ms), new Date(Date.now() - ms));

function runContender(args: object): Promise<{ code: number | null; pid: number; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'file-lock-contender.ts'), JSON.stringify(args)], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, pid: child.pid!, stderr })));
}

describe('file lock', () => {
  it('processes racing for a lock whose holders keep dying: one holder at a time, each dead holder broken exactly once', async () => {
    const lock = path.join(dir, 'race.lock');
    const log = path.join(dir, 'race.log');
    const start = path.join(dir, 'race.start');
    const dead = deadPid();
    writeFileSync(lock, holderJson(dead, 'initial')); // left by a crashed holder before anyone came
    writeFileSync(log, '');
    const rounds = 8;
    const contenders = Array.from({ length: 6 }, (_, i) => runContender({
      lock, log, start, rounds, async: i % 2 === 0, deadPid: dead, crashEvery: 2, dieHolding: i < 2, holdMs: 2,
    }));
    // Contenders start together once all are up.
    while (readFileSync(log, 'utf8').split('\n').filter((l) => l.startsWith('ready ')).length < 6) await new Promise((r) => setTimeout(r, 20));
    writeFileSync(start, '');
    const exits = await Promise.all(contenders);
    for (const e of exits) expect(e.code, e.stderr).toBe(0);
    // The last contender may have left a dead holder's lock: taking it breaks it.
    const breaks: string[] = [];
    withFileLockSync(lock, { waitMs: 5000, onBreak: (h) => breaks.push(h) }, () => undefined);
    expect(existsSync(lock)).toBe(false);

    const lines = readFileSync(log, 'utf8').trim().split('\n');
    let inside: string | undefined;
    let entered = 0;
    for (const [i, line] of lines.entries()) {
      const [what, who] = line.split(' ');
      if (what === 'enter') { expect(inside, `line ${i}: ${line} while ${inside} holds the lock`).toBeUndefined(); inside = who; entered++; }
      if (what === 'exit') { expect(who, `line ${i}`).toBe(inside); inside = undefined; }
      expect(what, `line ${i}`).not.toBe('lost');
    }
    expect(entered).toBe(6 * rounds);

    // Dead holders: the initial one, each simulated crash (every 2nd round, tagged), the two that exited holding.
    const broken = [...lines.filter((l) => l.startsWith('break ')).map((l) => l.slice(6)), ...breaks];
    const crashTags = broken.map((b) => /since (\S+)/.exec(b)?.[1] ?? b);
    const expected = ['initial', ...exits.flatMap((e, i) => Array.from({ length: rounds }, (_, r) => r)
      .filter((r) => (r + 1) % 2 === 0 && !(i < 2 && r === rounds - 1)).map((r) => `crash-${e.pid}-${r}`))];
    const diedHolding = exits.slice(0, 2).map((e) => e.pid);
    expect(crashTags.filter((t) => t.startsWith('initial') || t.startsWith('crash-')).sort()).toEqual(expected.sort());
    const realDeaths = broken.filter((b) => !/since (initial|crash-)/.test(b)).map((b) => Number(/^pid (\d+)/.exec(b)?.[1]));
    expect(realDeaths.sort()).toEqual(diedHolding.sort());
  }, 60_000);

  it('a live holder is never broken: waiters time out naming it, then break it exactly once after it is killed', async () => {
    const lock = path.join(dir, 'live.lock');
    const script = `import { acquireFileLockSync } from ${JSON.stringify(path.join(root, 'lib/file-lock.ts'))};
      acquireFileLockSync(${JSON.stringify(lock)}); process.stdout.write('held\\n'); setInterval(() => {}, 1000);`;
    const holder = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (b: Buffer) => { if (b.toString().includes('held')) resolve(); });
        holder.on('exit', (c) => reject(new Error(`holder exited ${c}`)));
      });
      const before = readFileSync(lock, 'utf8');
      expect(parseLockHolder(before)).toMatchObject({ pid: holder.pid, host: os.hostname() });
      age(lock, 3_600_000); // old, but alive: without an expiry policy age alone breaks nothing
      expect(breakStaleLock(lock)).toBeUndefined();
      expect(() => acquireFileLockSync(lock, { waitMs: 200 })).toThrow(FileLockTimeout);
      await expect(acquireFileLock(lock, { waitMs: 200 })).rejects.toThrow(new RegExp(`held by pid ${holder.pid} on `));
      expect(readFileSync(lock, 'utf8')).toBe(before);

      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
      const breaks: string[] = [];
      const held = await acquireFileLock(lock, { waitMs: 2000, onBreak: (h) => breaks.push(h) });
      expect(breaks).toEqual([expect.stringMatching(new RegExp(`^pid ${holder.pid} on `))]);
      expect(parseLockHolder(readFileSync(lock, 'utf8'))?.id).toBe(held.holder.id);
      expect(breakStaleLock(lock)).toBeUndefined(); // ours now, and we are alive
      expect(await held.release()).toBe(true);
      expect(existsSync(lock)).toBe(false);
    } finally {
      holder.kill('SIGKILL');
    }
  }, 30_000);

  it('staleness: a dead pid on this host; another host only by age under an expiry; an unwritten lock after its grace', () => {
    const lock = path.join(dir, 'policy.lock');
    const gone = deadPid();
    writeFileSync(lock, holderJson(gone, 'x', 'another-host')); // its pid cannot be checked from here
    expect(breakStaleLock(lock)).toBeUndefined();
    age(lock, 60_000);
    expect(breakStaleLock(lock)).toBeUndefined();
    expect(breakStaleLock(lock, { maxAgeMs: 30_000 })).toBe(`pid ${gone} on another-host since x`);
    expect(existsSync(lock)).toBe(false);

    writeFileSync(lock, holderJson(process.pid, 'live')); // a live holder under an expiry: broken only once expired
    expect(breakStaleLock(lock, { maxAgeMs: 30_000 })).toBeUndefined();
    age(lock, 31_000);
    expect(breakStaleLock(lock, { maxAgeMs: 30_000 })).toMatch(/since live$/);

    writeFileSync(lock, ''); // created, holder not written yet
    expect(breakStaleLock(lock)).toBeUndefined();
    age(lock, 11_000);
    expect(breakStaleLock(lock)).toBeDefined();

    writeFileSync(lock, String(deadPid())); // the bare-pid format of locks written before this module
    expect(breakStaleLock(lock)).toMatch(/^pid \d+ on /);
    expect(existsSync(lock)).toBe(false);
  });

  it('release removes only our own lock: one taken over after it expired stays', () => {
    const lock = path.join(dir, 'own.lock');
    const held = acquireFileLockSync(lock, { mode: 0o600 });
    expect(JSON.parse(readFileSync(lock, 'utf8'))).toEqual(held.holder);
    expect(held.holder).toMatchObject({ pid: process.pid, host: os.hostname() });
    const other = holderJson(process.pid, 'the next holder');
    writeFileSync(lock, other); // expired, broken and taken by another while we still ran
    expect(held.releaseSync()).toBe(false);
    expect(readFileSync(lock, 'utf8')).toBe(other);
    rmSync(lock);
  });
});
