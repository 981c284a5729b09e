// Log-path benchmark (npm run bench:log): the cost of the pipeline's log formatter (lib/log.ts:
// errors folded into details.stack, sensitive keys redacted, every string field and the message
// run through the scrubber's default rules) against the same pino logger without it, writing to a
// sink that drops the line (the formatting is what is measured, not the terminal).
// Lines: the audit record of an allowed request (lib/audit.ts, the receiver writes one per export),
// a typical processor line, and a worst case: an error line whose message differs every time
// (nothing cached) with a 30-frame stack. Each round runs both loggers, alternating which goes
// first; figures are CPU time per line, medians over ROUNDS rounds of LINES lines. Options: ROUNDS=7 LINES=100000.
import { createLogger, type Logger } from '../lib/log.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 7);
const LINES = Number(process.env.LINES ?? 100_000);
const sink = { write: (_line: string) => undefined };
const plain = createLogger(sink, { scrub: false }).child({ service: 'receiver', audit: 'authz' });
const scrubbed = createLogger(sink).child({ service: 'receiver', audit: 'authz' });

const stack = Array.from({ length: 30 }, (_, i) => `    at fn${i} (file:///srv/stella/processors/x${i}.ts:${i + 10}:5)`).join('\n');
const kinds: Record<string, (log: Logger, i: number) => void> = {
  'audit (allowed export)': (log) => log.info({ decision: 'allowed', token_name: 'ci-exporter', token_id: '4f9a8b7c6d5e', scope: 'otlp:write', tenant_id: 'acme', route: 'http traces' }, 'authorization allowed'),
  'processor line': (log, i) => log.info({ tenant_id: 'acme', topic: 'otlp_spans_clean', partition: i & 7, offset: String(1_000_000 + i), rows: 512 }, 'timeline batch written'),
  'error, unique message + stack': (log, i) => {
    const e = new Error(`insert into otel_traces failed after ${i} attempts: connection reset by peer (host ch-${i % 97}.internal)`);
    e.stack = `${e.message}\n${stack}`;
    log.error({ tenant_id: 'acme', err: e }, 'write failed; retrying');
  },
};

/** CPU time (user + system) per line in ns: steadier than wall time on a shared, loaded box. */
function time(log: Logger, fn: (log: Logger, i: number) => void): number {
  const t = process.cpuUsage();
  for (let i = 0; i < LINES; i++) fn(log, i);
  const d = process.cpuUsage(t);
  return ((d.user + d.system) * 1000) / LINES;
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`bench:log — ${ROUNDS} rounds × ${LINES} lines, Node ${process.version}`);
console.log('| line | CPU-ns/line plain pino | CPU-ns/line with the formatter | formatter / plain (per round) |');
console.log('|---|---|---|---|');
for (const [name, fn] of Object.entries(kinds)) {
  time(plain, fn); time(scrubbed, fn); // warm up
  const a: number[] = []; const b: number[] = []; const r: number[] = [];
  for (let k = 0; k < ROUNDS; k++) {
    let x: number; let y: number;
    if (k % 2) { y = time(scrubbed, fn); x = time(plain, fn); } else { x = time(plain, fn); y = time(scrubbed, fn); }
    a.push(x); b.push(y); r.push(y / x);
  }
  console.log(`| ${name} | ${median(a).toFixed(0)} | ${median(b).toFixed(0)} | **${median(r).toFixed(2)}×** (${r.map((v) => v.toFixed(2)).join(', ')}) |`);
}
