#!/usr/bin/env -S npx tsx
// The `stella` command line: one entry point for running the pipeline and reading what it knows.
import { ConfigError, loadConfig } from '../lib/config.ts';
import { cmdAttestShow, cmdDbMigrate, cmdSnapshotCreate, cmdForensicVerify, cmdIncident, cmdObsTrace, cmdScrub, cmdSloList, cmdSloRules, UsageError, type Io } from './commands.ts';
import { PARTS, runPipeline, type Part } from './run.ts';

export { UsageError };

const HELP = `stella — the stella-telemetry pipeline and its tools

Usage: stella <command> [options]

Commands:
  run [--only <part>]                 run the pipeline (parts: ${PARTS.join(', ')}); default: all parts
  scrub [--tenant T] [--config F]     OTLP JSON on stdin -> scrubbed OTLP JSON on stdout
  obs trace <trace_id>                a trace's timeline events and spans (from the API)
  forensic snapshot create --case C --scope K --id I [--out F]   bundle a case's evidence (from the API)
  forensic verify <bundle>            verify an evidence bundle offline; exit code names the cause
  forensic attest show <bundle>       print the bundle's signed statements and who signed them when
  slo list                            SLOs with current burn rates and budget left (from the API)
  slo rules --slo-config <file>       render the SLOs as Prometheus recording and alerting rules
  incident on|off --tenant T [--ttl S]  switch a tenant's incident mode (keep every trace, ...)
  db migrate                          apply ClickHouse migrations (idempotent)
  help                                show this help

Common options: --output table|json|yaml, --tenant <id>, --api <url> (STELLA_API_URL, default
http://127.0.0.1:8080), --token <token> (STELLA_TOKEN), --help.

Configuration: STELLA_CONFIG (YAML/JSON file), KAFKA_BROKERS, CLICKHOUSE_URL, STELLA_DATA_DIR, ...
(see README.md, "Configuration"). Exit codes: 0 ok, 1 not found or failed check, 2 usage or
configuration error, 3 not authorized, 4 unreachable or runtime failure; forensic verify uses one
code per failure cause (docs/evidence.md).
`;

export function parseFlags(argv: string[]): { positional: string[]; flags: Map<string, string | true> } {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const [k, v] = a.slice(2).split('=', 2) as [string, string | undefined];
      if (v !== undefined) flags.set(k, v);
      else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) flags.set(k, argv[++i]!);
      else flags.set(k, true);
    } else positional.push(a);
  }
  return { positional, flags };
}

async function cmdRun(flags: Map<string, string | true>): Promise<number> {
  const cfg = loadConfig();
  const only = flags.get('only');
  let parts: Set<Part>;
  if (only === undefined) parts = new Set(PARTS);
  else if (typeof only === 'string' && (PARTS as readonly string[]).includes(only)) parts = new Set([only as Part]);
  else throw new UsageError(`--only takes one of: ${PARTS.join(', ')}`);
  const pipeline = await runPipeline(cfg, parts, (l) => process.stdout.write(l + '\n'));
  process.stdout.write('Ready. Ctrl-C (SIGINT) or SIGTERM stops it gracefully.\n');
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      process.stdout.write(`${sig}: stopping intake, draining, committing...\n`);
      void pipeline.stop().then(resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  process.stdout.write('Stopped.\n');
  return 0;
}

const stdio: Io = {
  stdout: (s) => { process.stdout.write(s); },
  stderr: (s) => { process.stderr.write(s); },
  stdin: async () => {
    if (process.stdin.isTTY) return '';
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};

export async function main(argv: string[], io: Io = stdio): Promise<number> {
  const { positional, flags } = parseFlags(argv);
  const [cmd, sub, sub2, ...rest] = positional;
  const words = positional.join(' ');
  if (!cmd || cmd === 'help' || flags.has('help')) { io.stdout(HELP); return cmd || flags.has('help') ? 0 : 2; }
  if (cmd === 'run') return cmdRun(flags);
  if (cmd === 'scrub') return cmdScrub(flags, io);
  if (cmd === 'obs' && sub === 'trace') return cmdObsTrace([sub2, ...rest].filter((x): x is string => !!x), flags, io);
  if (cmd === 'forensic' && sub === 'verify') return cmdForensicVerify([sub2, ...rest].filter((x): x is string => !!x), flags, io);
  if (cmd === 'forensic' && sub === 'attest' && sub2 === 'show') return cmdAttestShow(rest, flags, io);
  if (cmd === 'forensic' && sub === 'snapshot' && sub2 === 'create') return cmdSnapshotCreate(flags, io);
  if (cmd === 'slo' && sub === 'rules') return cmdSloRules(flags, io);
  if (cmd === 'slo' && sub === 'list') return cmdSloList(flags, io);
  if (cmd === 'incident') return cmdIncident(sub, flags, io);
  if (cmd === 'db' && sub === 'migrate') return cmdDbMigrate(io);
  throw new UsageError(`unknown command "${words}"; run "stella help"`);
}

const isEntry = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntry) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err: unknown) => {
    if (err instanceof UsageError || err instanceof ConfigError) { process.stderr.write(`stella: ${err.message}\n`); process.exit(2); }
    process.stderr.write(`stella: ${(err as Error).message ?? String(err)}\n`);
    process.exit(1);
  });
}
