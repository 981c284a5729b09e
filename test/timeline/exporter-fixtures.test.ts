// The vendored exporter templates are the exporter's own: the Go module at the pinned version,
// fetched through the module proxy (`go mod download`, as CI has Go), holds the same bytes; and
// SOURCE.md lists each file's SHA-256.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { EXPORTER_TABLES, EXPORTER_VERSION, FIXTURES } from './exporter-schema.ts';

const MODULE = 'github.com/open-telemetry/opentelemetry-collector-contrib/exporter/clickhouseexporter';

it(`the fixtures are the templates of ${MODULE}@${EXPORTER_VERSION}, byte for byte`, () => {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.sql')).sort();
  expect(files).toEqual(Object.keys(EXPORTER_TABLES).sort());
  const source = readFileSync(path.join(FIXTURES, 'SOURCE.md'), 'utf8');
  for (const f of files) expect(source).toContain(`| ${f} | ${createHash('sha256').update(readFileSync(path.join(FIXTURES, f))).digest('hex')} |`);

  let out: string;
  try {
    out = execFileSync('go', ['mod', 'download', '-json', `${MODULE}@${EXPORTER_VERSION}`], {
      encoding: 'utf8', timeout: 300_000, env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' }, cwd: FIXTURES });
  } catch (e) {
    throw new Error(`go mod download ${MODULE}@${EXPORTER_VERSION} failed (Go and the module proxy are needed): ${(e as Error).message}`);
  }
  const dl = JSON.parse(out) as { Dir: string; Sum: string };
  expect(dl.Sum).toBe('h1:4xDMIK3lb8ETo4Q+/MHGSZRrxlHAzSj2mRAfc0KAbOk=');
  for (const f of files) {
    expect(readFileSync(path.join(FIXTURES, f)).equals(readFileSync(path.join(dl.Dir, 'internal/sqltemplates', f))), f).toBe(true);
  }
}, 300_000);
