// Who holds the embedded ClickHouse (chdb) data directory. ClickHouse takes an exclusive lock on
// `<path>/status` for as long as an engine has the directory open, so `stella db migrate` while the
// pipeline runs cannot open it; chdb then fails with "Cannot lock file ... Another server instance".
// Linux lists every lock in /proc/locks as `<n>: FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode> ...`:
// finding the status file's inode there names the holder before chdb is even loaded.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';

export interface LockHolder { pid: number; command: string | undefined }

/** The other process that holds the chdb directory's lock, if this system says (Linux). */
export function chdbLockHolder(dataPath: string): LockHolder | undefined {
  const status = statSync(path.join(dataPath, 'status'), { throwIfNoEntry: false });
  if (!status) return undefined;
  let locks: string;
  try { locks = readFileSync('/proc/locks', 'utf8'); } catch { return undefined; }
  for (const line of locks.split('\n')) {
    const f = line.trim().split(/\s+/);
    // "1: FLOCK ADVISORY WRITE 4242 08:01:1234567 0 EOF" (blocked waiters have "->" after the number).
    const at = f[1] === '->' ? 1 : 0;
    const pid = Number(f[4 + at]);
    const inode = Number(f[5 + at]?.split(':')[2]);
    if (!Number.isInteger(pid) || pid === process.pid || inode !== status.ino) continue;
    let command: string | undefined;
    try { command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, 200); } catch { command = undefined; }
    return { pid, command };
  }
  return undefined;
}

/** What to tell someone whose command needs the chdb directory another process holds. */
export function chdbBusyMessage(dataPath: string, holder: LockHolder | undefined): string {
  const who = holder ? `process ${holder.pid}${holder.command ? ` (${holder.command})` : ''}` : 'another process';
  return `the embedded ClickHouse in ${dataPath} is in use by ${who}; only one process can open it. ` +
    '"stella run" applies the migrations itself when it starts: stop the pipeline and run "stella db migrate" again, ' +
    'or use a ClickHouse server (CLICKHOUSE_URL), which any number of processes can share';
}
