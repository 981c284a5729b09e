// Lock files shared by processes of one host (the evidence store's tenant writer lock, the token
// store, the collector build cache). A lock is a file created with O_EXCL holding its holder
// {pid, host, startedAt, id}. A lock whose holder is gone (a crash while holding it) is broken,
// and only under the O_EXCL guard `<lock>.break` with the holder read again inside it: two waiters
// that both saw the dead holder would otherwise both remove the lock, the second removing the
// fresh lock the first had just taken, and hold it together. Release goes through the same guard
// and removes the lock only if it is still ours (a lock that expired may have been taken over).
//
// The steps are a few syscalls on a tiny local file each, so they are synchronous; only the wait
// between attempts differs between the sync and async callers. One host's filesystem only: an NFS
// or object-store backend needs conditional writes instead.
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsc, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import os from 'node:os';

export interface LockHolder {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  startedAt: string;
  /** Random per acquisition: tells our lock from a later one of the same process. */
  id: string;
}

export interface StalePolicy {
  /**
   * A lock older than this (by its file's mtime) is taken over whoever holds it: for locks that
   * must expire, whose holder may be on another host. Unset: only a dead holder's lock is broken.
   */
  maxAgeMs?: number;
}

export interface FileLockOptions extends StalePolicy {
  /** Give up (FileLockTimeout) after waiting this long; default: wait for good. */
  waitMs?: number;
  /** Longest pause between attempts (they start at 2 ms and double); default 50 ms. */
  pollMs?: number;
  /** Mode of a created lock file; default 0o644. */
  mode?: number;
  /** Called once, when the first attempt finds the lock held. */
  onWait?: (holder: string) => void;
  /** Called with the holder of each stale lock this caller broke. */
  onBreak?: (holder: string) => void;
}

/** A lock held by someone else for longer than the caller would wait. */
export class FileLockTimeout extends Error {
  override readonly name = 'FileLockTimeout';
  constructor(readonly lock: string, readonly holder: string, waitedMs: number) {
    super(`lock ${lock} is held by ${holder} (waited ${waitedMs} ms)`);
  }
}

/** A break guard older than this is a breaker that died inside its few-syscall critical section. */
export const BREAK_GUARD_STALE_MS = 10_000;
/** A lock file without a readable holder this long after its creation is a holder that died creating it. */
export const INCOMPLETE_LOCK_STALE_MS = 10_000;

const HOST = os.hostname();

/** The holder recorded in a lock file: our JSON, or a bare pid (locks written before this module, same host). */
export function parseLockHolder(text: string): Pick<LockHolder, 'pid' | 'host'> & Partial<LockHolder> | undefined {
  if (/^[1-9][0-9]*$/.test(text.trim())) return { pid: Number(text.trim()), host: HOST };
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (v && Number.isSafeInteger(v.pid) && (v.pid as number) > 0 && typeof v.host === 'string') return v as LockHolder;
  } catch { /* incomplete or foreign */ }
  return undefined;
}

/** Whether a lock with this content and age may be broken (pure but for `alive`). */
export function lockIsStale(text: string, ageMs: number, policy: StalePolicy, alive: (pid: number) => boolean = processAlive): boolean {
  if (policy.maxAgeMs !== undefined && ageMs > policy.maxAgeMs) return true;
  const holder = parseLockHolder(text);
  if (!holder) return ageMs > INCOMPLETE_LOCK_STALE_MS; // its creator died between create and write
  if (holder.host !== HOST) return false; // another host's pid cannot be checked from here
  return !alive(holder.pid);
}

export function processAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

const describeHolder = (text: string): string => {
  const h = parseLockHolder(text);
  if (!h) return text === '' ? 'a holder still writing its pid (or one that died doing so)' : 'an unreadable holder';
  return `pid ${h.pid} on ${h.host}${h.startedAt ? ` since ${h.startedAt}` : ''}`;
};

/** Create `lock` if absent; the holder written into it, or undefined when it exists. */
function tryCreate(lock: string, mode: number): LockHolder | undefined {
  const holder: LockHolder = { pid: process.pid, host: HOST, startedAt: new Date().toISOString(), id: randomBytes(8).toString('hex') };
  let fd: number;
  try {
    fd = openSync(lock, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw e;
  }
  try {
    writeSync(fd, JSON.stringify(holder));
  } catch (e) {
    closeSync(fd);
    unlinkSync(lock); // ours: unreadable for INCOMPLETE_LOCK_STALE_MS, nobody else removes it meanwhile
    throw e;
  }
  closeSync(fd);
  return holder;
}

/**
 * Run `fn` holding `<lock>.break`; 'busy' when another process holds it. A guard older than
 * BREAK_GUARD_STALE_MS is removed (its owner died mid-step) and the caller retries; that removal
 * is itself unguarded, which is safe as long as no live owner stays in `fn` (a few syscalls) that long.
 */
function underBreakGuard<T>(lock: string, fn: () => T): T | 'busy' {
  const guard = `${lock}.break`;
  try {
    closeSync(openSync(guard, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o644));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const st = statOrUndefined(guard);
    if (st && Date.now() - st.mtimeMs > BREAK_GUARD_STALE_MS) unlinkQuiet(guard);
    return 'busy';
  }
  try { return fn(); } finally { unlinkQuiet(guard); }
}

/**
 * Remove `lock` if it is stale by `policy`; the broken holder's description, or undefined (held,
 * released meanwhile, or another process is breaking it: retry the lock itself).
 */
export function breakStaleLock(lock: string, policy: StalePolicy = {}): string | undefined {
  const r = underBreakGuard(lock, () => {
    const text = readOrUndefined(lock);
    const st = statOrUndefined(lock);
    if (text === undefined || !st) return undefined; // released meanwhile
    if (!lockIsStale(text, Date.now() - st.mtimeMs, policy)) return undefined;
    unlinkQuiet(lock);
    return describeHolder(text);
  });
  return r === 'busy' ? undefined : r;
}

/** One attempt: our lock, or what holds it. Breaks a stale lock and retries at once. */
function attempt(lock: string, o: FileLockOptions): { held: FileLock } | { holder: string } {
  for (;;) {
    const mine = tryCreate(lock, o.mode ?? 0o644);
    if (mine) return { held: new FileLock(lock, mine) };
    const broken = breakStaleLock(lock, o);
    if (broken !== undefined) { o.onBreak?.(broken); continue; }
    const text = readOrUndefined(lock);
    if (text === undefined) continue; // released meanwhile
    return { holder: describeHolder(text) };
  }
}

/** A held lock. Release it exactly once (releaseSync or release). */
export class FileLock {
  constructor(readonly path: string, readonly holder: LockHolder) {}

  /** One release attempt: 'busy' while another process holds the break guard. */
  private tryRelease(): boolean | 'busy' {
    return underBreakGuard(this.path, () => {
      const text = readOrUndefined(this.path);
      if (text === undefined || parseLockHolder(text)?.id !== this.holder.id) return false; // broken as expired, maybe taken since
      unlinkQuiet(this.path);
      return true;
    });
  }

  /** Remove the lock if it is still ours; false when it was taken over meanwhile. */
  releaseSync(): boolean {
    for (let wait = 1; ; wait = Math.min(20, wait * 2)) {
      const r = this.tryRelease();
      if (r !== 'busy') return r;
      sleepSync(wait);
    }
  }

  async release(): Promise<boolean> {
    for (let wait = 1; ; wait = Math.min(20, wait * 2)) {
      const r = this.tryRelease();
      if (r !== 'busy') return r;
      await sleep(wait);
    }
  }
}

export function acquireFileLockSync(lock: string, o: FileLockOptions = {}): FileLock {
  const started = Date.now();
  for (let wait = 2, first = true; ; wait = Math.min(o.pollMs ?? 50, wait * 2), first = false) {
    const r = attempt(lock, o);
    if ('held' in r) return r.held;
    if (first) o.onWait?.(r.holder);
    if (Date.now() - started > (o.waitMs ?? Infinity)) throw new FileLockTimeout(lock, r.holder, Date.now() - started);
    sleepSync(wait);
  }
}

export async function acquireFileLock(lock: string, o: FileLockOptions = {}): Promise<FileLock> {
  const started = Date.now();
  for (let wait = 2, first = true; ; wait = Math.min(o.pollMs ?? 50, wait * 2), first = false) {
    const r = attempt(lock, o);
    if ('held' in r) return r.held;
    if (first) o.onWait?.(r.holder);
    if (Date.now() - started > (o.waitMs ?? Infinity)) throw new FileLockTimeout(lock, r.holder, Date.now() - started);
    await sleep(wait);
  }
}

export function withFileLockSync<T>(lock: string, o: FileLockOptions, fn: () => T): T {
  const held = acquireFileLockSync(lock, o);
  try { return fn(); } finally { held.releaseSync(); }
}

export async function withFileLock<T>(lock: string, o: FileLockOptions, fn: () => Promise<T>): Promise<T> {
  const held = await acquireFileLock(lock, o);
  try { return await fn(); } finally { await held.release(); }
}

function readOrUndefined(file: string): string | undefined {
  try { return readFileSync(file, 'utf8'); } catch (e) { if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined; throw e; }
}
function statOrUndefined(file: string): { mtimeMs: number } | undefined {
  try { return statSync(file); } catch (e) { if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined; throw e; }
}
function unlinkQuiet(file: string): void {
  try { unlinkSync(file); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sleepSync = (ms: number): void => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); };
