// Child processes for the clean-clone test: run a command in its own process group, collect its
// output, wait for a line or for its exit, and kill the whole group when a test gives up.
import { spawn, type ChildProcess } from 'node:child_process';

export interface Proc {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves with the exit code (or the signal's name) once the process exited. */
  exited: Promise<number | string>;
  /** The first match of `re` in stdout; rejects when the process exits first or `timeoutMs` passes. */
  waitFor(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** SIGKILL to the process group (cleanup; a no-op when it is already gone). */
  killGroup(): void;
}

/** A clean environment for the clone's commands: no pipeline settings of the test run leak in
 *  (KAFKA_BROKERS would point the clone at the test broker), nor npm's or vitest's own variables. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(STELLA_|KAFKA_|CLICKHOUSE_|OTEL_|VITEST|npm_|NODE_OPTIONS$|NODE_ENV$|TEST$)/i.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export function run(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Proc {
  // detached: its own process group, like a service started by a supervisor; signals go to it alone.
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (b: Buffer) => { stdout += b.toString('utf8'); for (const l of listeners) l(); });
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString('utf8'); });
  let done = false;
  const exited = new Promise<number | string>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => { done = true; resolve(code ?? signal ?? 'unknown'); for (const l of listeners) l(); });
  });
  return {
    child,
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    exited,
    waitFor: (re, timeoutMs) => new Promise((resolve, reject) => {
      const check = () => {
        const m = stdout.match(re);
        if (m) { finish(); resolve(m); } else if (done) { finish(); reject(new Error(`${cmd} ${args.join(' ')} exited before printing ${re}:\n${stdout}\n${stderr.slice(-4000)}`)); }
      };
      const timer = setTimeout(() => { finish(); reject(new Error(`no ${re} from ${cmd} ${args.join(' ')} within ${timeoutMs} ms:\n${stdout}\n${stderr.slice(-4000)}`)); }, timeoutMs);
      const finish = () => { clearTimeout(timer); listeners.delete(check); };
      listeners.add(check);
      check();
    }),
    killGroup: () => { if (child.pid !== undefined) groupSignal(child.pid, 'SIGKILL'); },
  };
}

/** Send `signal` to process group `pgid`; false when the group has no process left. */
export function groupSignal(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** Run to completion; the result carries the exit code and output. */
export async function runToEnd(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<{ code: number | string; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  const p = run(cmd, args, opts);
  const timer = setTimeout(() => p.killGroup(), opts.timeoutMs);
  try {
    const code = await p.exited;
    return { code, stdout: p.stdout, stderr: p.stderr, ms: Date.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}
