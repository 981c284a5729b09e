// A process contending for a lib/file-lock.ts lock (spawned by file-lock.test.ts). Arguments: a JSON
// object. Each round it takes the lock, logs enter/exit around its critical section to `log`
// (O_APPEND lines), and then either releases the lock, or leaves it to a dead holder: it rewrites the
// lock with `deadPid` (a process that is gone), as a crash while holding it would leave it, or it
// really exits holding it (`dieHolding`, last round). Every lock it breaks is logged as `break <holder>`.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { acquireFileLock, acquireFileLockSync, type FileLock } from '../../lib/file-lock.ts';

interface Args { lock: string; log: string; start: string; rounds: number; async: boolean; deadPid: number; crashEvery: number; dieHolding: boolean; holdMs: number }
const a = JSON.parse(process.argv[2]!) as Args;
const say = (line: string) => appendFileSync(a.log, `${line}\n`);
const readOr = (f: string): string => { try { return readFileSync(f, 'utf8'); } catch { return ''; } };
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

say(`ready ${process.pid}`);
while (!existsSync(a.start)) sleepSync(1); // all contenders start together

for (let round = 0; round < a.rounds; round++) {
  const o = { onBreak: (holder: string) => say(`break ${holder}`) };
  const held: FileLock = a.async ? await acquireFileLock(a.lock, o) : acquireFileLockSync(a.lock, o);
  say(`enter ${process.pid}`);
  if (a.async) await new Promise((r) => setTimeout(r, a.holdMs)); else sleepSync(a.holdMs);
  // Nobody removed or replaced our lock while we held it.
  if (!readOr(a.lock).includes(held.holder.id)) say(`lost ${process.pid}`);
  say(`exit ${process.pid}`);
  if (a.dieHolding && round === a.rounds - 1) process.exit(0);
  if ((round + 1) % a.crashEvery === 0) {
    // Crash while holding: the lock stays, naming a process that is gone; the tag tells its breaks apart.
    writeFileSync(a.lock, JSON.stringify({ pid: a.deadPid, host: os.hostname(), startedAt: `crash-${process.pid}-${round}`, id: `crash-${process.pid}-${round}` }));
  } else if (a.async) {
    await held.release();
  } else {
    held.releaseSync();
  }
}
