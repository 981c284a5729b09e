// Restart during intake (runtime facts; artifacts and symbol bundles): `stella run` (every part) as a real child process is killed
// with SIGKILL while runtime-facts submissions are in flight, then started again on the same data
// dir and broker. Every submission acked (202) before the kill is stored; every client retry after
// the restart (of acked and of unanswered submissions alike) is answered as the same ingest (a
// replay, same ingest id), and nothing is duplicated visibly: each ingest's facts once in ClickHouse,
// one reach.runtime.ingested event per ingest on the timeline, and one evidence entry per timeline
// event (the sealed log's size equals the number of distinct events).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { GraphRegistry } from '../../lib/intake/graphs.ts';
import { defaultTopicNames } from '../../lib/kafka/topics.ts';
import { sha256Hex } from '../../lib/tenancy.ts';
import { ingestIdFor } from '../../processors/intake/runtime-facts.ts';
import { kafkaEnv, uniq } from '../support/kafka.ts';
import { eventually } from '../timeline/support.ts';
import { buildElfFixture, readBytes } from './elf-fixture.ts';
import { pythonSign, slsaStatement } from './sign.ts';

const root = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'stella-intake-restart-'));
const TOKEN = 'intake-restart-acme-token-0123456789abcdef';
const GRAPH = `sha256:${'3'.repeat(64)}`;
const SUBMISSIONS = 24;
const LINES = 1500;
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

/** A `stella run` config of its own (topics, groups, data dir) for acme with `scopes`; its data dir and file. */
function writeStellaConfig(name: string, scopes: string[], extra: Record<string, unknown> = {}): { dataDir: string; cfgFile: string } {
  const p = uniq(name);
  const dataDir = path.join(tmp, `data-${name}`);
  const cfgFile = path.join(tmp, `stella-${name}.yaml`);
  writeFileSync(cfgFile, YAML.stringify({
    // Ports 0, read from each start's output: a port picked free beforehand could be taken by another
    // test before the child bound it (EADDRINUSE), and again while the killed process is gone.
    dataDir, receiver: { grpcPort: 0, httpPort: 0 }, api: { port: 0 },
    kafka: { partitions: 2, groupIdPrefix: `${p}-`, topics: Object.fromEntries(Object.keys(defaultTopicNames).map((k) => [k, `${p}_${k}`])) },
    tenants: [{ id: 'acme', tokens: [{ sha256: sha256Hex(TOKEN), scopes }] }],
    evidence: { sealEverySeconds: 1 },
    ...extra,
  }));
  return { dataDir, cfgFile };
}

/** Waits until `fn` gives a value (errors count as not yet), naming `what` when it times out. */
const poll = <T>(what: string, fn: () => Promise<T | undefined>, ms = 90_000): Promise<T> =>
  eventually(fn, ms, 250).catch((err: unknown) => { throw new Error(`timed out waiting for ${what}: ${String(err)}`); });

/** `stella run`; `ready` gives the URL of the API it bound. */
function startStella(cfgFile: string): { child: ChildProcess; ready: Promise<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'cli/stella.ts'), 'run'], {
    cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, STELLA_CONFIG: cfgFile, ...kafkaEnv(), STELLA_ADMIN_PORT: '0', STELLA_LOG_LEVEL: 'warn' },
  });
  children.push(child);
  let out = '';
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (!out.includes('Ready.')) return;
      const api = /^API: (http:\/\/\S+) /m.exec(out);
      if (api) resolve(api[1]!); else reject(new Error(`no API address in the output:\n${out.slice(-4000)}`));
    });
    child.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
    child.on('exit', (code, sig) => reject(new Error(`stella run exited (${code ?? sig}) before it was ready:\n${out.slice(-4000)}`)));
  });
  return { child, ready };
}

const iso = (ms: number) => new Date(ms).toISOString();
function body(i: number): Buffer {
  const t = Date.now() - 3_600_000;
  return Buffer.from(Array.from({ length: LINES }, (_, l) => JSON.stringify({ symbol_id: `sub${i}!fn_${l}`, purl: 'pkg:deb/debian/openssl@3.0.11-1',
    timestamp: iso(t + l), pid: 100 + i, container: '', count: l + 1 })).join('\n') + '\n');
}
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('SIGKILL of stella run in the middle of runtime-facts submissions', () => {
  it('loses nothing acked, answers retries as the same ingest, duplicates nothing visible', async () => {
    const { dataDir, cfgFile } = writeStellaConfig('irst', ['runtime:write', 'obs:read', 'timeline:read', 'evidence:read']);
    await GraphRegistry.under(dataDir).register('acme', GRAPH, `cas://acme/${GRAPH.slice(7)}`);
    let api = '';
    const bodies = Array.from({ length: SUBMISSIONS }, (_, i) => body(i));
    const ids = bodies.map((b) => ingestIdFor('acme', GRAPH, sha(b)));
    const post = (i: number) => fetch(`${api}/api/v1/runtime-facts?graph_hash=${GRAPH}`, { method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-ndjson' }, body: bodies[i] });

    const first = startStella(cfgFile);
    api = await first.ready;
    // Four submissions at a time; the process is killed once the third is acked, the rest in flight or not yet sent.
    const acked = new Set<number>();
    const failed = new Set<number>();
    let next = 0;
    let killed = false;
    const worker = async () => {
      while (next < SUBMISSIONS) {
        const i = next++;
        if (killed) { failed.add(i); continue; }
        try {
          const r = await post(i);
          if (r.status === 202) {
            expect(r.headers.get('x-ingest-id')).toBe(ids[i]);
            acked.add(i);
            if (acked.size === 3 && !killed) { killed = true; first.child.kill('SIGKILL'); }
          } else failed.add(i);
        } catch { failed.add(i); }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    expect(killed).toBe(true);
    expect(acked.size).toBeGreaterThanOrEqual(3);
    expect(failed.size).toBeGreaterThanOrEqual(1); // some were cut off: the kill came mid-intake
    await new Promise<void>((r) => { if (first.child.exitCode !== null || first.child.signalCode !== null) r(); else first.child.once('exit', () => r()); });

    const second = startStella(cfgFile);
    api = await second.ready;
    // The client retries everything: acked ones are replays, cut-off ones are stored now; all the same ingest ids.
    for (let i = 0; i < SUBMISSIONS; i++) {
      const r = await post(i);
      expect(r.status, `retry of submission ${i}`).toBe(202);
      expect(r.headers.get('x-ingest-id')).toBe(ids[i]);
    }

    const auth = { authorization: `Bearer ${TOKEN}` };
    const stored = async (id: string) => {
      const r = await fetch(`${api}/api/v1/runtime-facts/${id}`, { headers: auth });
      return r.status === 200 ? ((await r.json()) as { stored_facts: number }).stored_facts : undefined;
    };
    for (const id of ids) await poll(`ingest ${id}`, async () => ((await stored(id)) === LINES ? true : undefined));
    const events = async () => {
      const r = await fetch(`${api}/timeline?limit=1000`, { headers: auth });
      return ((await r.json()) as { events: { event_id: string; kind: string; resource: { id: string } }[] }).events;
    };
    await poll('every receipt on the timeline', async () => ((await events()).filter((e) => e.kind === 'reach.runtime.ingested').length >= SUBMISSIONS ? true : undefined));
    // Let redeliveries of the killed process's uncommitted batches land, then count.
    await new Promise((r) => setTimeout(r, 3000));
    for (const id of ids) expect(await stored(id), `facts of ${id}`).toBe(LINES);
    const all = await events();
    const receipts = all.filter((e) => e.kind === 'reach.runtime.ingested');
    expect(receipts.map((e) => e.resource.id).sort()).toEqual([...ids].sort()); // each ingest once
    const distinct = new Set(all.map((e) => e.event_id)).size;
    expect(all).toHaveLength(distinct);
    // The evidence log: one entry per distinct event (its sealed size catches up to exactly that).
    const size = await poll('the evidence log sealed', async () => {
      const r = await fetch(`${api}/evidence/acme/checkpoint`, { headers: auth });
      if (r.status !== 200) return undefined;
      const n = Number((await r.text()).split('\n')[1]);
      return n >= distinct ? n : undefined;
    });
    expect(size).toBe(distinct);
    second.child.kill('SIGTERM');
  }, 400_000);
});

describe('SIGKILL of stella run in the middle of artifact and symbol-bundle submissions', () => {
  it('loses nothing acked, answers retries as replays with the first event id, duplicates nothing visible', async () => {
    const N = 10;
    const elf = buildElfFixture();
    const bundle = readBytes(elf.withId);
    const COMMIT = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
    const shas = Array.from({ length: N }, (_, i) => createHash('sha256').update(`artifact ${i}`).digest('hex'));
    const signed = pythonSign(['ci'], shas.map((s) => ({ key: 'ci', keyid: 'acme-ci', payload: slsaStatement(s, { gitCommit: COMMIT }) })));
    const { dataDir, cfgFile } = writeStellaConfig('arst', ['artifacts:write', 'symbols:write', 'attest:read', 'timeline:read', 'evidence:read'],
      { intake: { trust: { acme: { keys: [{ keyid: 'acme-ci', publicKey: signed.keys.ci }] } } } });
    let api = '';
    const auth = { authorization: `Bearer ${TOKEN}` };
    const postArtifact = (i: number) => fetch(`${api}/api/v1/artifacts`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ sha256: shas[i], builder_commit: COMMIT, compiler: 'gcc 12.2.0', flags: ['-O2'], provenance: signed.envelopes[i] }) });
    const postSymbols = (i: number) => fetch(`${api}/api/v1/symbols?kind=elf&build_id=${elf.buildId}&artifact_sha256=${shas[i]}`, { method: 'POST',
      headers: { ...auth, 'content-type': 'application/octet-stream' }, body: bundle });

    const first = startStella(cfgFile);
    api = await first.ready;
    // Each step: the artifact, then its symbols; the process is killed once three steps were acked.
    const ackedEvent = new Map<string, string>(); // `a<i>` / `s<i>` -> event id answered before the kill
    let killed = false;
    let cutOff = 0;
    let next = 0;
    const worker = async () => {
      while (next < N) {
        const i = next++;
        for (const [k, send] of [[`a${i}`, postArtifact], [`s${i}`, postSymbols]] as const) {
          if (killed) { cutOff++; continue; }
          try {
            const r = await send(i);
            if (r.status !== 201) { cutOff++; continue; }
            ackedEvent.set(k, ((await r.json()) as { event_id: string }).event_id);
            if (ackedEvent.size === 3 && !killed) { killed = true; first.child.kill('SIGKILL'); }
          } catch { cutOff++; }
        }
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    expect(killed).toBe(true);
    expect(ackedEvent.size).toBeGreaterThanOrEqual(3);
    expect(cutOff).toBeGreaterThanOrEqual(1);
    await new Promise<void>((r) => { if (first.child.exitCode !== null || first.child.signalCode !== null) r(); else first.child.once('exit', () => r()); });

    const second = startStella(cfgFile);
    api = await second.ready;
    // Retries straight after the restart: acked ones are replays (200) with the event id first answered.
    const eventOf = new Map<string, string>();
    for (let i = 0; i < N; i++) {
      for (const [k, send] of [[`a${i}`, postArtifact], [`s${i}`, postSymbols]] as const) {
        const r = await send(i);
        const b = await r.json() as { event_id: string; replay: boolean };
        const before = ackedEvent.get(k);
        if (before !== undefined) {
          expect(r.status, `retry of acked ${k}`).toBe(200);
          expect(b).toMatchObject({ replay: true, event_id: before });
        } else expect([200, 201], `retry of ${k}`).toContain(r.status);
        eventOf.set(k, b.event_id);
      }
    }

    const events = async () => ((await (await fetch(`${api}/timeline?limit=1000`, { headers: auth })).json()) as { events: { event_id: string; kind: string }[] }).events;
    await poll('every registration on the timeline', async () => ((await events()).length >= 2 * N ? true : undefined));
    await new Promise((r) => setTimeout(r, 3000));
    const all = await events();
    expect(all.filter((e) => e.kind === 'artifact.registered')).toHaveLength(N);
    expect(all.filter((e) => e.kind === 'symbols.registered')).toHaveLength(N);
    expect(new Set(all.map((e) => e.event_id)).size).toBe(all.length);
    expect(new Set(all.map((e) => e.event_id))).toEqual(new Set(eventOf.values()));
    for (let i = 0; i < N; i++) {
      const a = await poll(`artifact ${i}`, async () => { const r = await fetch(`${api}/api/v1/artifacts/${shas[i]}`, { headers: auth }); return r.status === 200 ? r.json() as Promise<{ attestations: unknown[]; symbol_bundles: unknown[] }> : undefined; });
      expect(a.attestations, `attestations of artifact ${i}`).toHaveLength(1);
    }
    const sym = await poll('the symbol bundles', async () => {
      const r = await fetch(`${api}/api/v1/symbols/${elf.buildId}`, { headers: auth });
      const b = r.status === 200 ? await r.json() as { bundles: unknown[] } : undefined;
      return b && b.bundles.length >= N ? b : undefined;
    });
    expect(sym.bundles).toHaveLength(N);
    const size = await poll('the evidence log sealed', async () => {
      const r = await fetch(`${api}/evidence/acme/checkpoint`, { headers: auth });
      if (r.status !== 200) return undefined;
      const n = Number((await r.text()).split('\n')[1]);
      return n >= all.length ? n : undefined;
    });
    expect(size).toBe(all.length);
    second.child.kill('SIGTERM');
  }, 400_000);
});
