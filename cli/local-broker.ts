// The local Kafka broker `stella run` starts (no KAFKA_BROKERS) runs in its own process group, so
// the terminal's Ctrl-C reaches only stella, which stops it last, after the processors committed.
// The other side of that: if stella dies without stopping it (SIGKILL, a crash), the broker keeps
// running. Its pid is kept in <dataDir>/kafka/broker.pid; stella signals it when it exits in any way
// it can observe, and the next start stops a broker left over from a run that could not.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const PID_FILE = 'broker.pid';
let current: { pid: number; pidFile: string } | undefined;

const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
};

/** Whether `pid` is the Kafka broker of this data dir (not a recycled pid of something else). */
function isOurBroker(pid: number, kafkaDir: string): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('kafka.Kafka') && cmd.includes(path.join(kafkaDir, 'server.properties'));
  } catch { return false; }
}

/** Stop a broker a previous `stella run` on this data dir left running (SIGTERM: Kafka's clean shutdown). */
export async function stopLeftoverBroker(kafkaDir: string, say: (m: string) => void, graceMs = 30_000): Promise<void> {
  const file = path.join(kafkaDir, PID_FILE);
  if (!existsSync(file)) return;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (Number.isInteger(pid) && pid > 0 && alive(pid) && isOurBroker(pid, kafkaDir)) {
    say(`Kafka: stopping the broker a previous run left running (pid ${pid})`);
    process.kill(pid, 'SIGTERM');
    const end = Date.now() + graceMs;
    while (alive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    while (alive(pid)) await new Promise((r) => setTimeout(r, 100));
  }
  rmSync(file, { force: true });
}

const onExit = (): void => { signalLocalBroker(); };

/** Record the broker this process started; it gets SIGTERM if this process exits before stopping it. */
export function trackLocalBroker(kafkaDir: string, pid: number): void {
  const pidFile = path.join(kafkaDir, PID_FILE);
  writeFileSync(pidFile, `${pid}\n`);
  current = { pid, pidFile };
  process.once('exit', onExit);
}

/** The broker was stopped: forget it. */
export function untrackLocalBroker(): void {
  if (!current) return;
  rmSync(current.pidFile, { force: true });
  current = undefined;
  process.removeListener('exit', onExit);
}

/** SIGTERM to the tracked broker without waiting: it finishes its clean shutdown on its own (forced stop, exit). */
export function signalLocalBroker(): void {
  if (!current) return;
  try { process.kill(current.pid, 'SIGTERM'); } catch { /* already gone */ }
}
