// buildCollector's cache: a finished build of the same manifest is reused without running go; a
// marker of another manifest (an edited builder-config.yaml) or a missing binary triggers a rebuild,
// which here fails fast because no Go toolchain is on PATH: proof that it tried.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildCollector, collectorPath, GoBuildError } from '../../lib/go-peers.ts';

describe('buildCollector cache', () => {
  let dir = '';
  let manifest = '';
  const saved = { cache: process.env.STELLA_CACHE_DIR, path: process.env.PATH };
  const text = 'dist:\n  name: otelcol-test\n  version: 0.0.1\nreceivers: []\n';
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'stella-gopeers-'));
    manifest = path.join(dir, 'builder-config.yaml');
    writeFileSync(manifest, text);
    process.env.STELLA_CACHE_DIR = path.join(dir, 'cache');
    process.env.PATH = path.join(dir, 'no-go-here'); // no `go`: a build attempt fails at once
  });
  afterEach(() => {
    process.env.STELLA_CACHE_DIR = saved.cache;
    process.env.PATH = saved.path;
    rmSync(dir, { recursive: true, force: true });
  });
  const install = (markerSha: string, withBinary = true) => {
    const bin = collectorPath(manifest);
    expect(bin).toBe(path.join(dir, 'cache', 'go', 'otelcol-0.0.1', 'otelcol-test'));
    mkdirSync(path.dirname(bin), { recursive: true });
    if (withBinary) writeFileSync(bin, '#!/bin/sh\n', { mode: 0o755 });
    else rmSync(bin, { force: true });
    writeFileSync(path.join(path.dirname(bin), '.complete'), JSON.stringify({ manifestSha256: markerSha }));
    return bin;
  };

  it('reuses a complete build of the same manifest', () => {
    const bin = install(sha(text));
    expect(buildCollector(() => {}, manifest)).toBe(bin);
  });

  it('rebuilds when the manifest changed since the build, or the binary is gone; leaves no lock behind', () => {
    const bin = install(sha('dist: {name: otelcol-test, version: 0.0.1}\n'));
    expect(() => buildCollector(() => {}, manifest)).toThrow(GoBuildError);
    expect(existsSync(`${path.dirname(bin)}.lock`)).toBe(false);
    expect(readdirSync(path.dirname(path.dirname(bin))).filter((f) => f.startsWith('otelcol-0.0.1.'))).toEqual([]); // no scratch left
    expect(readFileSync(bin, 'utf8')).toBe('#!/bin/sh\n'); // the old build stays until a new one is complete

    install(sha(text), false);
    expect(() => buildCollector(() => {}, manifest)).toThrow(/cannot run go/);
  });

  it('takes over the lock of a build that died (its pid gone, or no pid written 10 s after)', () => {
    const bin = install(sha('another manifest'));
    const lock = `${path.dirname(bin)}.lock`;
    writeFileSync(lock, '2147483646'); // above pid_max: no such process
    expect(() => buildCollector(() => {}, manifest)).toThrow(/cannot run go/);
    expect(existsSync(lock)).toBe(false);
    writeFileSync(lock, '');
    utimesSync(lock, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    expect(() => buildCollector(() => {}, manifest)).toThrow(/cannot run go/);
    expect(existsSync(lock)).toBe(false);
  });

  it('refuses a manifest without dist.name and dist.version', () => {
    writeFileSync(manifest, 'dist:\n  name: x\n');
    expect(() => buildCollector(() => {}, manifest)).toThrow(/dist.name and dist.version are required/);
  });
});
