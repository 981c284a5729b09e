#!/usr/bin/env -S node --max-semi-space-size=4 --import tsx
// The `stella` command line: one entry point for running the pipeline and reading what it knows.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../lib/config.ts';
import { logToStderr } from '../lib/log.ts';
import { signalLocalBroker } from './local-broker.ts';
import { cmdArtifactsAdd, cmdArtifactsShow, cmdSymbolsAdd, cmdSymbolsShow, cmdAttestList, cmdAttestShow, cmdAttestVerify, cmdHold, cmdPrune, cmdDbMigrate, cmdKeysRotate, cmdObsTop, cmdSnapshotCreate, cmdForensicVerify, cmdIncident, cmdObsTrace, cmdObsProvenance, cmdForensicReplayManifest, cmdForensicReplay, cmdScrub, cmdSloList, cmdSloRules, cmdTrustExport, UsageError, type Io } from './commands.ts';
import { cmdExportsList, cmdExportsShow } from './commands.ts';
import { cmdObsHealth, cmdObsLogs, cmdObsMetrics } from './commands.ts';
import { cmdProofSpine, cmdProofVerify } from './commands.ts';
import { PARTS, runPipeline, type Part } from './run.ts';
import { cmdAttestRuntime, cmdIngestGraph, cmdIngestRuntime, cmdIntakeOrphansReplay } from './runtime.ts';
import { cmdTenants, cmdTokens } from './tokens.ts';

export { UsageError };

const HELP = `stella — the stella-telemetry pipeline and its tools

Usage: stella <command> [options]

Commands:
  run [--only <part>]                 run the pipeline (parts: ${PARTS.join(', ')}); default: all parts
  scrub [--tenant T] [--config F] [--pretty]
                                      OTLP JSON on stdin -> scrubbed OTLP JSON on stdout
  obs top [--interval S] [--once | --count N] [--window MIN]
                                      live golden signals per service and consumer lag per processor,
                                      refreshed every S seconds (default 2; lag needs the admin scope)
  obs trace <trace_id>                a trace's spans and timeline events
  obs provenance <trace_id>           per frame: ip -> symbol -> bundle -> artifact -> DSSE provenance -> evidence;
                                      join completeness vs the tenant policy (exit 5 when below it)
  obs logs [--service S] [--severity trace|debug|info|warn|error|fatal] [--trace-id ID]
           [--from T] [--to T] [--text X] [--limit N] [--cursor C]
                                      log records, newest first (scrubbed values; GET /obs/logs)
  obs metrics <name> [--service S] [--attr k=v,...] [--from T] [--to T] [--step SECONDS]
                                      a metric's points per series and step (GET /obs/metrics)
  obs health [--window MIN]           per service: up, degraded or idle, and why (GET /obs/health)
  forensic snapshot create --case C --scope trace|event|resource|<type> --id I [--out F]
                           [--with-provenance [--with-symbol-bytes]]
                                      bundle a case's sealed evidence and download it; --with-provenance
                                      (scope trace): the audit bundle (frames, join, symbol refs, DSSE
                                      provenance, replay manifest), verified by forensic verify
  forensic verify <bundle> --trust F | --trusted-key K
                                      verify an evidence bundle offline against a pinned trust root
                                      (--trust file or STELLA_TRUST_ROOT; --trusted-key repeatable);
                                      without one it fails (TRUST_ROOT_MISSING); exit code names the cause
  proof verify --bundle B --trust F   the same as forensic verify B
  proof spine --bundle B              the bundle's checkpoints, consistency and inclusion paths, cosignatures
  forensic trust export --tenant T    print the tenant's trust root (from this host's evidence store)
  forensic attest show <bundle>       the bundle's signed statements and who signed them when
  forensic attest list [--type seal|key_rotation] [--limit N] [--cursor C]
                                      the tenant's signed statements (seals, key rotations), newest first
  forensic attest verify <envelope>   verify a DSSE statement envelope against the tenant's trust root
                                      on the server; exit code names the cause, as forensic verify
  forensic hold place <case> [--trace-id ID]... [--entries A-B,...] [--from T --to T] [--reason R]
                                      place a legal hold: retention never prunes what it covers
  forensic hold release <case> [--reason R]   release it (needs the admin scope)
  forensic hold list [--all]          the tenant's holds (--all: released ones too)
  forensic replay-manifest <trace_id> the trace's replay-harness contract (JSON; exit 6 when fields are missing)
  forensic replay --tenant T --from <offset|time> --to <offset|time> [--freeze <time>] [--topic <copy>] [--scratch <dir>]
                                      re-derive the sealed segments covering a clean-topic range from Kafka and compare
                                      with the live log (exit 0 identical, 40 diverged, 41 range not available)
  forensic prune [--tenant T] [--dry-run]
                                      delete entry bundles past retention on this host's evidence store
                                      (tiles and checkpoints stay; held cases stay), then check what
                                      remains verifies; the evidence processor also does this on a timer
  attest runtime --runtime F --graph-hash G --tenant T --key K.pem --keyid ID [--bundle out.dsse.json] [--manifest M]
                                      sign runtime facts (NDJSON or .gz): a DSSE envelope over their sha256
                                      (stdout without --bundle); --manifest also writes the air-gap manifest
  ingest graph --tenant T --graph F [--sha256 H]
                                      register a reachability graph offline (CAS, Kafka record + sealed
                                      timeline event, marker in the data dir, as POST
                                      /api/v1/reachability/graphs): its facts stop being orphans
  intake orphans replay --tenant T [--graph-hash G] [--dry-run]
                                      publish again the tenant's runtime facts dead-lettered for an
                                      unknown graph (orphan expired / queue full) whose graph is known
                                      now; each ingest once (exit 1 when some still wait for their graph)
  ingest runtime --tenant T --graph-hash G --runtime F --manifest M
                                      offline intake of runtime facts: checks every hash against the
                                      manifest and its DSSE envelope against intake.trust, then CAS + Kafka
                                      (KAFKA_BROKERS, else the local broker of the data dir); exit 1
                                      with the named reason when refused
  exports list [--run R] [--artifact sha256:H] [--status S] [--limit N] [--cursor C]
                                      the tenant's orchestrator exports, by run then start time
  exports show <id>                   one orchestrator export with its signature digests and signers
  slo list                            SLOs with current burn rates and budget left
  slo rules [--slo-config <file>]     render the SLOs as Prometheus recording and alerting rules
                                      (without a file: the config's SLOs plus the default catalog)
  incident on|off --tenant T [--ttl S]  switch a tenant's incident mode (keep every trace, ...)
  keys rotate [--tenant T]            rotate the evidence signing key: writes the next key beside the
                                      current one; the evidence processor rotates each tenant's log at
                                      its next seal (or next start); prints the new verifier key(s)
  tenants add <id> | tenants list     tenants of the token store (<dataDir>/tokens.json) and the config
  tokens create --tenant T --scopes s1,s2 [--name N]
                                      a new token, printed once (only its SHA-256 is stored); a running
                                      stella accepts it, and refuses a revoked one, within 2 s
  tokens list [--tenant T]            tokens (name, scopes, hash prefix; never the token)
  tokens revoke <name> --tenant T     revoke a token of the token store
  db migrate                          apply ClickHouse migrations (idempotent)
  artifacts add --artifact F | --sha256 H --provenance <envelope.dsse.json> --commit C --compiler S [--flags "..."] [--oci-digest D]
                                      register a build artifact with its signed SLSA provenance (or --record <record.json>)
  artifacts show <sha256>             an artifact's attestations and symbol bundles
  symbols add <file> --kind elf|pdb|dsym --artifact-sha256 H (--build-id X | --pdb-guid G --pdb-age N | --dsym-uuid U)
                                      upload a symbol bundle of a registered, attested artifact
  symbols show <key> [--kind K]       symbol bundles for a build-id, PDB GUID+age or dSYM UUID
  help                                show this help

Common options:
  --output table|json|yaml            output format (default table; obs top json: one document a line)
  --tenant <id>                       the tenant to act on (default: the token's only tenant)
  --api <url>                         the API (STELLA_API_URL, default http://127.0.0.1:8080)
  --token <token>                     bearer token (STELLA_TOKEN)
  --progress                          progress bars on stderr even when it is not a terminal
  --help                              this help

Commands that call the API print the request's trace id on stderr ("trace_id: <32 hex>"); give it to
"stella obs trace" or search the logs for it. stdout carries only the table, JSON or YAML; log lines
go to stderr (stella run alone logs on stdout).

Configuration: STELLA_CONFIG (YAML/JSON file), KAFKA_BROKERS, CLICKHOUSE_URL, STELLA_DATA_DIR, ...
(see README.md, "Configuration"). Exit codes: 0 ok, 1 not found, nothing to show or failed check,
2 usage or configuration error (unknown command or option, malformed tenant), 3 not authenticated
or not authorized, 4 API unreachable or runtime failure (db migrate: the embedded ClickHouse is open
in another process); forensic verify exits 1 when the bundle file does not exist, otherwise one code
per failure cause (docs/evidence.md).
`;

/** Options that never take a value (so `--progress bundle.tar.gz` keeps the file positional). */
const BOOLEAN_FLAGS = new Set(['help', 'once', 'progress', 'pretty', 'all', 'dry-run', 'with-provenance', 'with-symbol-bytes']);
/** Options that may be given several times: their values are kept newline-joined (see flagList). */
const REPEATABLE_FLAGS = new Set(['trusted-key', 'trace-id']);

export function parseFlags(argv: string[]): { positional: string[]; flags: Map<string, string | true> } {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const [k, v] = a.slice(2).split('=', 2) as [string, string | undefined];
      const prev = flags.get(k);
      const set = (val: string | true): void => { flags.set(k, REPEATABLE_FLAGS.has(k) && typeof prev === 'string' && typeof val === 'string' ? `${prev}\n${val}` : val); };
      if (v !== undefined) set(v);
      else if (BOOLEAN_FLAGS.has(k)) set(true);
      else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) set(argv[++i]!);
      else set(true);
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
  const say = (l: string) => { process.stdout.write(l + '\n'); };
  // Ctrl-C or SIGTERM: stop gracefully (intake, drain and commit, then the local broker last). A
  // second one forces: exit now; the local broker (its own process group) is told to stop and
  // finishes its clean shutdown by itself; what was not committed is processed after a restart.
  // `npm start` passes a Ctrl-C on to stella while the terminal also sends it: signals within
  // REPEAT_MS of the first are that same Ctrl-C.
  const REPEAT_MS = 250;
  let firstSignalAt: number | undefined;
  let requestStop!: (sig: string) => void;
  const stopRequested = new Promise<string>((resolve) => { requestStop = resolve; });
  const onSignal = (sig: NodeJS.Signals) => {
    if (firstSignalAt === undefined) {
      firstSignalAt = Date.now();
      requestStop(sig);
    } else if (Date.now() - firstSignalAt > REPEAT_MS) {
      say(`${sig} again: forced stop without draining; uncommitted input is processed after a restart.`);
      signalLocalBroker();
      void exitAfterFlush(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let started = false;
  void stopRequested.then((sig) => { if (!started) say(`${sig}: stopping once started (Ctrl-C again to force)...`); });
  const pipeline = await runPipeline(cfg, parts, say);
  started = true;
  say('Ready. Ctrl-C (SIGINT) or SIGTERM stops it gracefully; a second Ctrl-C forces.');
  const sig = await stopRequested;
  say(`${sig}: stopping intake, draining, committing... (Ctrl-C again to force)`);
  await pipeline.stop();
  say('Stopped.');
  return 0;
}

/** Options each command accepts (beyond --help); anything else is a usage error. */
const COMMON_API = ['output', 'tenant', 'api', 'token'];
const FLAGS: Record<string, string[]> = {
  'run': ['only'],
  'scrub': ['tenant', 'config', 'pretty'],
  'obs top': [...COMMON_API, 'interval', 'once', 'count', 'window'],
  'obs trace': COMMON_API,
  'obs provenance': COMMON_API,
  'obs logs': [...COMMON_API, 'service', 'severity', 'trace-id', 'from', 'to', 'text', 'limit', 'cursor'],
  'obs metrics': [...COMMON_API, 'name', 'service', 'attr', 'from', 'to', 'step'],
  'obs health': [...COMMON_API, 'window'],
  'forensic snapshot create': [...COMMON_API, 'case', 'scope', 'id', 'out', 'progress', 'with-provenance', 'with-symbol-bytes'],
  'proof verify': ['bundle', 'output', 'progress', 'trust', 'trusted-key'],
  'proof spine': ['bundle', 'output'],
  'forensic verify': ['output', 'progress', 'trust', 'trusted-key'],
  'forensic trust export': ['output', 'tenant'],
  'forensic attest show': ['output'],
  'forensic attest list': [...COMMON_API, 'type', 'limit', 'cursor'],
  'forensic attest verify': COMMON_API,
  'forensic hold': [...COMMON_API, 'trace-id', 'entries', 'from', 'to', 'reason', 'all'],
  'forensic prune': ['output', 'tenant', 'dry-run', 'batch', 'progress'],
  'forensic replay-manifest': COMMON_API,
  'forensic replay': ['output', 'tenant', 'from', 'to', 'freeze', 'range-topic', 'topic', 'topic-base', 'scratch'],
  'attest runtime': ['runtime', 'graph-hash', 'tenant', 'key', 'keyid', 'bundle', 'manifest'],
  'ingest runtime': ['output', 'runtime', 'graph-hash', 'tenant', 'manifest'],
  'ingest graph': ['output', 'graph', 'sha256', 'tenant'],
  'intake orphans replay': ['output', 'tenant', 'graph-hash', 'dry-run'],
  'exports list': [...COMMON_API, 'run', 'artifact', 'status', 'limit', 'cursor'],
  'exports show': COMMON_API,
  'slo list': COMMON_API,
  'slo rules': ['slo-config'],
  'incident': [...COMMON_API, 'ttl'],
  'keys rotate': ['output', 'tenant'],
  'db migrate': ['output'],
  'artifacts add': [...COMMON_API, 'record', 'sha256', 'artifact', 'provenance', 'commit', 'compiler', 'flags', 'oci-digest'],
  'artifacts show': COMMON_API,
  'symbols add': [...COMMON_API, 'kind', 'artifact-sha256', 'build-id', 'pdb-guid', 'pdb-age', 'dsym-uuid'],
  'symbols show': [...COMMON_API, 'kind'],
  'tenants': ['output'],
  'tokens': ['output', 'tenant', 'scopes', 'name'],
};

function checkFlags(command: string, flags: Map<string, string | true>): void {
  const allowed = FLAGS[command] ?? [];
  for (const f of flags.keys()) {
    if (f !== 'help' && !allowed.includes(f)) throw new UsageError(`unknown option --${f} for "stella ${command}"${allowed.length ? ` (options: ${allowed.map((a) => `--${a}`).join(', ')})` : ''}; run "stella help"`);
  }
}

let interrupted: Promise<void> | undefined;
const stdio: Io = {
  isTTY: { stdout: process.stdout.isTTY === true, stderr: process.stderr.isTTY === true },
  get interrupted() {
    return (interrupted ??= new Promise<void>((resolve) => process.once('SIGINT', () => resolve())));
  },
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
  // stdout is the command's output; only `stella run` (a service) logs there.
  if (cmd !== 'run') logToStderr();
  if (!cmd || cmd === 'help' || flags.has('help')) { io.stdout(HELP); return cmd || flags.has('help') ? 0 : 2; }
  const args = [sub2, ...rest].filter((x): x is string => !!x);
  const route = (name: string, run: () => Promise<number>): Promise<number> => { checkFlags(name, flags); return run(); };
  if (cmd === 'run') return route('run', () => cmdRun(flags));
  if (cmd === 'scrub') return route('scrub', () => cmdScrub(flags, io));
  if (cmd === 'obs' && sub === 'top') return route('obs top', () => cmdObsTop(flags, io));
  if (cmd === 'obs' && sub === 'trace') return route('obs trace', () => cmdObsTrace(args, flags, io));
  if (cmd === 'obs' && sub === 'provenance') return route('obs provenance', () => cmdObsProvenance(args, flags, io));
  if (cmd === 'obs' && sub === 'logs') return route('obs logs', () => cmdObsLogs(flags, io));
  if (cmd === 'obs' && sub === 'metrics') return route('obs metrics', () => cmdObsMetrics(args, flags, io));
  if (cmd === 'obs' && sub === 'health') return route('obs health', () => cmdObsHealth(flags, io));
  if (cmd === 'forensic' && sub === 'verify') return route('forensic verify', () => cmdForensicVerify(args, flags, io));
  if (cmd === 'forensic' && sub === 'trust' && sub2 === 'export') return route('forensic trust export', () => cmdTrustExport(flags, io));
  if (cmd === 'forensic' && sub === 'attest' && sub2 === 'show') return route('forensic attest show', () => cmdAttestShow(rest, flags, io));
  if (cmd === 'forensic' && sub === 'attest' && sub2 === 'list') return route('forensic attest list', () => cmdAttestList(flags, io));
  if (cmd === 'forensic' && sub === 'attest' && sub2 === 'verify') return route('forensic attest verify', () => cmdAttestVerify(rest, flags, io));
  if (cmd === 'forensic' && sub === 'hold') return route('forensic hold', () => cmdHold(sub2, rest, flags, io));
  if (cmd === 'forensic' && sub === 'prune') return route('forensic prune', () => cmdPrune(flags, io));
  if (cmd === 'forensic' && sub === 'replay' && !sub2) return route('forensic replay', () => cmdForensicReplay(flags, io));
  if (cmd === 'forensic' && sub === 'replay-manifest') return route('forensic replay-manifest', () => cmdForensicReplayManifest(args, flags, io));
  if (cmd === 'forensic' && sub === 'snapshot' && sub2 === 'create') return route('forensic snapshot create', () => cmdSnapshotCreate(flags, io));
  if (cmd === 'proof' && sub === 'verify') return route('proof verify', () => cmdProofVerify(flags, io));
  if (cmd === 'proof' && sub === 'spine') return route('proof spine', () => cmdProofSpine(flags, io));
  if (cmd === 'attest' && sub === 'runtime') return route('attest runtime', () => cmdAttestRuntime(flags, io));
  if (cmd === 'ingest' && sub === 'runtime') return route('ingest runtime', () => cmdIngestRuntime(flags, io));
  if (cmd === 'ingest' && sub === 'graph') return route('ingest graph', () => cmdIngestGraph(flags, io));
  if (cmd === 'intake' && sub === 'orphans' && sub2 === 'replay') return route('intake orphans replay', () => cmdIntakeOrphansReplay(flags, io));
  if (cmd === 'exports' && sub === 'list') return route('exports list', () => cmdExportsList(flags, io));
  if (cmd === 'exports' && sub === 'show') return route('exports show', () => cmdExportsShow(args, flags, io));
  if (cmd === 'slo' && sub === 'rules') return route('slo rules', () => cmdSloRules(flags, io));
  if (cmd === 'slo' && sub === 'list') return route('slo list', () => cmdSloList(flags, io));
  if (cmd === 'incident') return route('incident', () => cmdIncident(sub, flags, io));
  if (cmd === 'keys' && sub === 'rotate') return route('keys rotate', () => cmdKeysRotate(flags, io));
  if (cmd === 'tenants') return route('tenants', () => cmdTenants(sub, [sub2, ...rest].filter((x): x is string => !!x), flags, io));
  if (cmd === 'tokens') return route('tokens', () => cmdTokens(sub, [sub2, ...rest].filter((x): x is string => !!x), flags, io));
  if (cmd === 'artifacts' && sub === 'add') return route('artifacts add', () => cmdArtifactsAdd(flags, io));
  if (cmd === 'artifacts' && sub === 'show') return route('artifacts show', () => cmdArtifactsShow(args, flags, io));
  if (cmd === 'symbols' && sub === 'add') return route('symbols add', () => cmdSymbolsAdd(args, flags, io));
  if (cmd === 'symbols' && sub === 'show') return route('symbols show', () => cmdSymbolsShow(args, flags, io));
  if (cmd === 'db' && sub === 'migrate') return route('db migrate', () => cmdDbMigrate(flags, io));
  throw new UsageError(`unknown command "${words}"; run "stella help"`);
}

// Run when this file is the program, also through a symlink (npx and npm link run the package bin
// from node_modules/.bin/stella).
const isEntry = (() => {
  try { return !!process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url)); } catch { return false; }
})();
/**
 * Exit once stdout and stderr have handed everything to the OS. process.exit() alone drops what a
 * pipe has not taken yet (`stella scrub < big.jsonl | cat` ended at 64-128 KiB with exit 0): an
 * empty write's callback runs after every earlier write on that stream has been flushed.
 */
export async function exitAfterFlush(code: number): Promise<never> {
  const flushed = (s: NodeJS.WriteStream) => new Promise<void>((resolve) => {
    if (s.destroyed || s.writableEnded) { resolve(); return; }
    s.write('', () => resolve());
  });
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

if (isEntry) {
  // A reader that goes away (`stella scrub ... | head -1`) is not a failure of the command: stop
  // quietly with the code the command would have had (EPIPE would otherwise be an uncaught error).
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0); else throw err; });
  }
  main(process.argv.slice(2)).then((code) => exitAfterFlush(code), (err: unknown) => {
    if (err instanceof UsageError || err instanceof ConfigError) { process.stderr.write(`stella: ${err.message}\n`); return exitAfterFlush(2); }
    process.stderr.write(`stella: ${(err as Error).message ?? String(err)}\n`);
    return exitAfterFlush(4);
  });
}
