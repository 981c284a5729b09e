// Shared fixtures for the evidence tests: temp stores, fixed keys, entries with Kafka positions.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { afterAll } from 'vitest';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { entryBytes } from '../../processors/evidence/jcs.ts';
import { signerFromSeed, type Signer } from '../../processors/evidence/note.ts';
import type { AppendItem } from '../../processors/evidence/sealer.ts';
import { FsEvidenceStore, type EvidenceStore, type StoreFile } from '../../processors/evidence/store.ts';
import { exportTrustRoot, type TrustRoot } from '../../processors/evidence/trust-root.ts';

export const TENANT = 'acme';
export const ORIGIN = 'stella-telemetry.example/tenants/acme';

/** Seal boundaries for the SIGKILL test: 16 seals of 1,500 entries, fixed sealed_at each. */
export const KILL_PLAN: [number, number, string][] = Array.from({ length: 16 }, (_, k) => [k * 1500, (k + 1) * 1500, new Date(Date.UTC(2026, 10, 23, 10, k)).toISOString()]);

/** A deterministic signer: seed = SHA-256(label). */
export function testSigner(label = 'key-1', name = ORIGIN): Signer {
  return signerFromSeed(name, createHash('sha256').update(label).digest());
}

const tempDirs: string[] = [];
// Registered in each test file that imports these helpers: remove the stores it created.
if (process.env.VITEST) afterAll(() => { for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

export function tempStore(): FsEvidenceStore {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-evidence-'));
  tempDirs.push(dir);
  return new FsEvidenceStore(dir);
}

/** Timeline-event-like entries fed in Kafka offset order on one partition. */
export function items(from: number, to: number, topic = 'stella.timeline', partition = 0): AppendItem[] {
  const out: AppendItem[] = [];
  for (let i = from; i < to; i++) {
    out.push({ entry: entryBytes({ event_id: `ev-${i}`, kind: 'timeline', tenant: TENANT, seq: i, body: { msg: `event ${i}`, n: i * 1.5 } }), kafka: { topic, partition, offset: String(i) } });
  }
  return out;
}

/** Every file under a directory with its bytes (hex), for byte-for-byte comparisons of stores. */
export function snapshotDir(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = path.join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out[path.relative(dir, p)] = readFileSync(p).toString('hex');
    }
  };
  walk(dir);
  return out;
}

export class SimulatedCrash extends Error {}

/** A real store that throws once, before writing the first file whose path matches `at`. */
export class CrashingStore implements EvidenceStore {
  crashed = false;
  constructor(private readonly inner: EvidenceStore, private readonly at: RegExp | undefined) {}
  private maybeCrash(paths: readonly string[]): void {
    if (!this.crashed && this.at && paths.some((p) => this.at!.test(p))) { this.crashed = true; throw new SimulatedCrash(`crash before ${paths.join(',')}`); }
  }
  read(t: string, f: string) { return this.inner.read(t, f); }
  list(t: string, d: string) { return this.inner.list(t, d); }
  async writeImmutable(t: string, f: string, b: Uint8Array) { this.maybeCrash([f]); return this.inner.writeImmutable(t, f, b); }
  async writeImmutableMany(t: string, files: readonly StoreFile[]) { this.maybeCrash(files.map((x) => x.path)); return this.inner.writeImmutableMany(t, files); }
  async writeMutable(t: string, f: string, b: Uint8Array) { this.maybeCrash([f]); return this.inner.writeMutable(t, f, b); }
}

/** The tenant's trust root as the store knows it (what `stella forensic trust export` prints). */
export async function trustRootOf(store: EvidenceStore, tenant = TENANT): Promise<TrustRoot> {
  const r = await exportTrustRoot(store, tenant);
  if (!r) throw new Error(`tenant ${tenant} has no sealed log`);
  return r;
}
