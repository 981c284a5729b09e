// Independent verification: our checkpoints, signed notes, tlog-proofs, consistency proofs and
// tiles are checked by Go's golang.org/x/mod/sumdb/note and sumdb/tlog (the implementation the
// C2SP signed-note and tlog-tiles specs derive from). Needs the Go toolchain (installed on CI).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';

const here = path.resolve(import.meta.dirname, 'interop');
const root = path.resolve(import.meta.dirname, '../..');
const out = mkdtempSync(path.join(os.tmpdir(), 'stella-interop-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

// The children are plain programs, not vitest workers: drop vitest's variables from their environment.
const childEnv = Object.fromEntries(Object.entries({ ...process.env, GOFLAGS: '-mod=mod' }).filter(([k]) => !k.startsWith('VITEST')));

function run(cmd: string, args: string[], cwd: string) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 240_000, env: childEnv });
  if (r.error) throw new Error(`cannot run ${cmd}: ${r.error.message} (the Go toolchain is needed for this check)`);
  return r;
}

it('Go sumdb/note and sumdb/tlog accept our checkpoints, proofs and tiles', () => {
  const fx = run(process.execPath, ['--import', 'tsx', path.join(here, 'fixtures.ts'), out], root);
  expect(fx.status, fx.stderr).toBe(0);
  mkdirSync(path.join(out, 'x'));
  expect(run('tar', ['xzf', path.join(out, 'case.tar.gz'), '-C', path.join(out, 'x')], out).status).toBe(0);

  const bundle = run('go', ['run', './bundle', path.join(out, 'x'), path.join(out, 'vkey'), '70000'], here);
  expect(bundle.status, bundle.stderr).toBe(0);
  expect(bundle.stdout).toContain('checkpoint 70000 verified by Go sumdb/note');
  expect(bundle.stdout.match(/^inclusion of entry \d+ in \d+ verified by Go sumdb\/tlog$/gm)?.length).toBe(8);
  expect(bundle.stdout).toMatch(/^consistency \d+ -> \d+ verified by Go sumdb\/tlog$/m);

  const tiles = run('go', ['run', './tiles', path.join(out, 'store', 'tenants', 'acme'), path.join(out, 'vkey')], here);
  expect(tiles.status, tiles.stderr).toBe(0);
  expect(tiles.stdout).toContain('Go sumdb/tlog: tree hash of 70000 from our tiles matches the signed checkpoint; proofs from our tiles verify');
}, 300_000);
