#!/usr/bin/env -S npx tsx
// The `stella` command line: one entry point for running the pipeline and reading what it knows.
import { ConfigError, loadConfig } from '../lib/config.ts';
import { PARTS, runPipeline, type Part } from './run.ts';

export class UsageError extends Error {}

const HELP = `stella — the stella-telemetry pipeline and its tools

Usage: stella <command> [options]

Commands:
  run [--only <part>]     run the pipeline (parts: ${PARTS.join(', ')}); default: all parts
  help                    show this help

Configuration: STELLA_CONFIG (YAML/JSON file), KAFKA_BROKERS, CLICKHOUSE_URL, STELLA_DATA_DIR, ...
(see README.md, "Configuration"). Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
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

export async function main(argv: string[]): Promise<number> {
  const { positional, flags } = parseFlags(argv);
  const [cmd] = positional;
  if (!cmd || cmd === 'help' || flags.has('help')) { process.stdout.write(HELP); return cmd || flags.has('help') ? 0 : 2; }
  if (cmd === 'run') return cmdRun(flags);
  throw new UsageError(`unknown command "${cmd}"; run "stella help"`);
}

const isEntry = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntry) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err: unknown) => {
    if (err instanceof UsageError || err instanceof ConfigError) { process.stderr.write(`stella: ${err.message}\n`); process.exit(2); }
    process.stderr.write(`stella: ${(err as Error).message ?? String(err)}\n`);
    process.exit(1);
  });
}
