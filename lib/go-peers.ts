// Go-built peers the tests and benchmarks run beside the project (a C2SP witness, the
// OpenTelemetry Collector's tools), built from the Go module proxy into the git-ignored cache,
// the same way the Kafka broker's jars are fetched. Each tool is pinned to one version; a marker
// file records a finished build, so later calls are a no-op.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
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
