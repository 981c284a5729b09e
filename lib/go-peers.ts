// Go-built peers the tests and benchmarks run beside the project (a C2SP witness, the
// OpenTelemetry Collector's tools), built from the Go module proxy into the git-ignored cache,
// the same way the Kafka broker's jars are fetched. Each tool is pinned to one version; a marker
// file records a finished build, so later calls are a no-op.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { acquireFileLockSync } from './file-lock.ts';
import { projectRoot } from './paths.ts';

export interface GoTool {
  /** Go package path of the main package (`go install <pkg>@<version>`). */
  pkg: string;
  version: string;
}

export const GO_TOOLS = {
  /** C2SP tlog-witness implementation (filippo.io/torchwood). */
  litewitness: { pkg: 'filippo.io/torchwood/cmd/litewitness', version: 'v0.6.1' },
  /** litewitness' admin tool: adds logs and keys to its database. */
  witnessctl: { pkg: 'filippo.io/torchwood/cmd/witnessctl', version: 'v0.6.1' },
  /** The OpenTelemetry load generator (v0.161.0 is the newest the proxy serves). */
  telemetrygen: { pkg: 'github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen', version: 'v0.161.0' },
  /** OpenTelemetry Collector Builder (ocb). */
  builder: { pkg: 'go.opentelemetry.io/collector/cmd/builder', version: 'v0.165.0' },
} as const satisfies Record<string, GoTool>;

export type GoToolName = keyof typeof GO_TOOLS;

export const goCacheDir = (): string => path.join(process.env.STELLA_CACHE_DIR ?? path.join(projectRoot, '.cache'), 'go');

/** Where a tool's binary lives once built. */
export function goToolPath(name: GoToolName): string {
  const t = GO_TOOLS[name];
  return path.join(goCacheDir(), `${name}@${t.version}`, name);
}

/** The environment for `go` children: no vitest variables, modules from the proxy. */
export function goEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST')));
  return { ...env, CGO_ENABLED: env.CGO_ENABLED ?? '0', ...extra };
}

export class GoBuildError extends Error {
  override readonly name = 'GoBuildError';
}

/** Build (once) and return the path of a pinned Go tool. Throws GoBuildError with go's output. */
export function installGoTool(name: GoToolName, log: (m: string) => void = () => {}): string {
  const t = GO_TOOLS[name];
  const bin = goToolPath(name);
  const dir = path.dirname(bin);
  const marker = path.join(dir, '.complete');
  if (existsSync(marker) && existsSync(bin)) return bin;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  log(`building ${t.pkg}@${t.version} from the Go module proxy into ${dir}`);
  const r = spawnSync('go', ['install', `${t.pkg}@${t.version}`], {
    encoding: 'utf8', env: goEnv({ GOBIN: dir }), stdio: ['ignore', 'pipe', 'pipe'], timeout: 15 * 60_000,
  });
  if (r.error) throw new GoBuildError(`cannot run go to build ${name}: ${r.error.message} (the Go toolchain, go 1.24+, is needed)`);
  if (r.status !== 0) throw new GoBuildError(`go install ${t.pkg}@${t.version} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  if (!existsSync(bin)) throw new GoBuildError(`go install ${t.pkg}@${t.version} ran but ${bin} is missing`);
  writeFileSync(marker, new Date().toISOString() + '\n');
  return bin;
}

/** The OpenTelemetry Collector Builder manifest of the collector the configs are tested and raced against. */
export const COLLECTOR_MANIFEST = path.join(projectRoot, 'collector-config', 'builder-config.yaml');

interface CollectorManifest { dist: { name: string; version: string; output_path?: string } & Record<string, unknown> }

function readManifest(file: string): { manifest: CollectorManifest; sha256: string } {
  const text = readFileSync(file, 'utf8');
  const manifest = parse(text) as CollectorManifest;
  if (!manifest?.dist?.name || !manifest.dist.version) throw new GoBuildError(`${file}: dist.name and dist.version are required`);
  return { manifest, sha256: createHash('sha256').update(text).digest('hex') };
}

/** Where the collector built from a manifest lives: .cache/go/otelcol-<dist.version>/<dist.name>. */
export function collectorPath(manifestFile = COLLECTOR_MANIFEST): string {
  const { manifest } = readManifest(manifestFile);
  return path.join(goCacheDir(), `otelcol-${manifest.dist.version}`, manifest.dist.name);
}

/**
 * Build (once per manifest content) the OpenTelemetry Collector described by the ocb manifest and
 * return its binary. The marker keeps the manifest's SHA-256, so an edited manifest rebuilds. The
 * build runs in a scratch directory and is renamed into place when complete, under a lock file, so
 * concurrent callers (test files, benchmarks, other checkouts sharing .cache) build it once.
 */
export function buildCollector(log: (m: string) => void = () => {}, manifestFile = COLLECTOR_MANIFEST): string {
  const { manifest, sha256 } = readManifest(manifestFile);
  const bin = collectorPath(manifestFile);
  const dir = path.dirname(bin);
  const marker = path.join(dir, '.complete');
  const built = (): boolean => existsSync(bin) && existsSync(marker) && (JSON.parse(readFileSync(marker, 'utf8')) as { manifestSha256?: string }).manifestSha256 === sha256;
  if (built()) return bin;
  mkdirSync(goCacheDir(), { recursive: true });
  // The builder's pid in the lock: a build that died (or died before writing it) is taken over.
  const held = acquireFileLockSync(`${dir}.lock`, {
    pollMs: 2000, onWait: (holder) => log(`waiting for ${holder}, which is building the collector into ${dir}`),
  });
  try {
    if (built()) return bin;
    const builder = installGoTool('builder', log);
    const scratch = `${dir}.building-${process.pid}`;
    rmSync(scratch, { recursive: true, force: true });
    mkdirSync(scratch, { recursive: true });
    try {
      const effective = path.join(scratch, 'builder-config.yaml');
      writeFileSync(effective, stringify({ ...manifest, dist: { ...manifest.dist, output_path: scratch } }));
      log(`building the OpenTelemetry Collector ${manifest.dist.version} (${path.relative(projectRoot, manifestFile)}) with ocb into ${dir} (a cold build takes minutes)`);
      const r = spawnSync(builder, ['--config', effective], {
        cwd: scratch, encoding: 'utf8', env: goEnv(), stdio: ['ignore', 'pipe', 'pipe'], timeout: 30 * 60_000, maxBuffer: 64 * 1024 * 1024,
      });
      if (r.error) throw new GoBuildError(`cannot run ocb (${builder}): ${r.error.message}`);
      if (r.status !== 0) throw new GoBuildError(`ocb --config ${manifestFile} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
      if (!existsSync(path.join(scratch, manifest.dist.name))) throw new GoBuildError(`ocb ran but ${path.join(scratch, manifest.dist.name)} is missing`);
      writeFileSync(path.join(scratch, '.complete'), JSON.stringify({ manifestSha256: sha256, builtAt: new Date().toISOString() }) + '\n');
      rmSync(dir, { recursive: true, force: true });
      renameSync(scratch, dir);
    } finally {
      rmSync(scratch, { recursive: true, force: true }); // gone after the rename; a failed build's leftovers otherwise
    }
    return bin;
  } finally {
    held.releaseSync();
  }
}
