// `stella <args>` as a user runs it: a child process with the given environment, its exit code,
// stdout and stderr collected (async, so an API or receiver it calls may run in the test process).
import { spawn } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

export interface StellaResult { code: number | null; stdout: string; stderr: string }

/** Runs `cli/stella.ts` with exactly `env`; killed after `timeoutMs`. */
export function runStellaCli(args: string[], env: Record<string, string>, timeoutMs = 90_000): Promise<StellaResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'cli/stella.ts'), ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
    p.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}
