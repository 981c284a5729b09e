// `npm start` in a real pseudo-terminal (util-linux `script`), stopped with Ctrl-C as a user does:
// the terminal sends SIGINT to the whole foreground process group and npm forwards it once more.
// Ctrl-C must stop the pipeline in its documented order (intake, processors, then the local broker,
// which runs in its own process group so the terminal's signal does not kill it first), print
// "Stopped." and return the prompt; a second Ctrl-C forces. A clean start and stop log no error or
// warning lines (the coordinator-loading / not-available answers kafkajs retries are not errors).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stopLeftoverBroker } from '../../cli/local-broker.ts';
import { ensureDevSigningKey } from '../../processors/evidence/dev-key.ts';

const root = path.resolve(import.meta.dirname, '../..');
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'stella-tty-'));
const kafkaDir = path.join(dataDir, 'kafka');
afterAll(async () => { await stopLeftoverBroker(kafkaDir, () => {}); }, 60_000);

interface Terminal { child: ChildProcessWithoutNullStreams; lines: { text: string; at: number }[]; output: () => string; exited: Promise<number | null> }

/** `npm start` under `script`: its stdin is the terminal's keyboard. */
function npmStartInTerminal(): Terminal {
  // Ports 0: stella binds free ports itself (nothing here connects to them). Ports picked free here
  // first could be taken by another test before npm start bound them (EADDRINUSE).
  const env: NodeJS.ProcessEnv = { ...process.env, STELLA_DATA_DIR: dataDir, STELLA_LOG_LEVEL: 'info',
    STELLA_GRPC_PORT: '0', STELLA_HTTP_PORT: '0', STELLA_API_PORT: '0', STELLA_ADMIN_PORT: '0' };
  for (const k of Object.keys(env)) if (/^(VITEST|KAFKA_BROKERS$|STELLA_CONFIG$|NODE_OPTIONS$)/.test(k)) delete env[k];
  // `exec`: as from an interactive shell, npm leads the foreground job. Without it a non-interactive
  // $SHELL that does not exec its last command (dash, when CI leaves SHELL unset) stays in the job,
  // dies of the terminal's SIGINT, and `script` reports 130 whatever stella did.
  const child = spawn('script', ['-qfec', 'exec npm start', '/dev/null'], { cwd: root, env, stdio: 'pipe' });
  const lines: Terminal['lines'] = [];
  let partial = '';
  child.stdout.on('data', (c: Buffer) => {
    partial += c.toString('utf8');
    const parts = partial.split(/\r?\n/);
    partial = parts.pop()!;
    for (const text of parts) lines.push({ text, at: Date.now() });
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, lines, output: () => lines.map((l) => l.text).join('\n') + '\n' + partial, exited };
}

async function waitForLine(t: Terminal, re: RegExp, timeoutMs: number): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const hit = t.lines.find((l) => re.test(l.text));
    if (hit) return hit.at;
    if (Date.now() > end) throw new Error(`no ${re} within ${timeoutMs} ms:\n${t.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const problemLines = (out: string) => out.split('\n').filter((l) => /"level":"(error|warn|fatal)"/.test(l));

describe('npm start in a terminal', () => {
  it('Ctrl-C: "Stopped.", exit 0, broker stopped last, no error or warning lines; the next start does not stall; a second Ctrl-C forces', async () => {
    await ensureDevSigningKey(dataDir); // a fresh data dir's "created a development key" warning is not what this test is about
    const first = await npmStartInTerminal();
    await waitForLine(first, /^Ready\./, 150_000);
    const brokerPid = Number(readFileSync(path.join(kafkaDir, 'broker.pid'), 'utf8'));
    expect(alive(brokerPid)).toBe(true);
    expect(problemLines(first.output()), 'a clean start logs no error or warning lines').toEqual([]);

    first.child.stdin.write('\x03'); // Ctrl-C
    const code = await Promise.race([first.exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 120_000))]);
    const out = first.output();
    expect(out).toContain('SIGINT: stopping intake, draining, committing...');
    expect(out).toMatch(/^Stopped\.\r?$/m);
    expect(code, out.slice(-3000)).toBe(0);
    expect(out).not.toContain('forced stop');
    // The broker outlived the terminal's SIGINT and was stopped by stella at the end: no connection
    // errors during the drain, and it is gone once the prompt is back.
    expect(problemLines(out), 'a clean stop logs no error or warning lines').toEqual([]);
    expect(alive(brokerPid)).toBe(false);
    expect(existsSync(path.join(kafkaDir, 'broker.pid'))).toBe(false);

    // The next start: every member left its group, so nothing waits for an expired session
    // (it stalled ~30 s between "Scrub:" and "Timeline:").
    const second = await npmStartInTerminal();
    const scrubAt = await waitForLine(second, /^Scrub:/, 150_000);
    const timelineAt = await waitForLine(second, /^Timeline:/, 60_000);
    await waitForLine(second, /^Ready\./, 60_000);
    process.stderr.write(`[tty] second start: Scrub -> Timeline ${timelineAt - scrubAt} ms\n`);
    expect(timelineAt - scrubAt).toBeLessThan(15_000);
    const brokerPid2 = Number(readFileSync(path.join(kafkaDir, 'broker.pid'), 'utf8'));

    // Ctrl-C, then a second one while it drains: exit at once (130), the broker told to stop.
    second.child.stdin.write('\x03');
    await waitForLine(second, /SIGINT: stopping intake/, 10_000);
    await new Promise((r) => setTimeout(r, 500)); // past the 250 ms in which a repeat counts as the same Ctrl-C
    const forcedAt = Date.now();
    second.child.stdin.write('\x03');
    const code2 = await Promise.race([second.exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 30_000))]);
    const out2 = second.output();
    expect(out2).toContain('SIGINT again: forced stop without draining');
    expect(out2).not.toMatch(/^Stopped\.\r?$/m);
    expect(code2, out2.slice(-3000)).toBe(130);
    expect(Date.now() - forcedAt).toBeLessThan(10_000);
    // The broker finishes its own clean shutdown after stella is gone.
    for (let i = 0; i < 300 && alive(brokerPid2); i++) await new Promise((r) => setTimeout(r, 100));
    expect(alive(brokerPid2)).toBe(false);
  }, 420_000);
});
