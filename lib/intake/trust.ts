// The intake configuration section (`intake:` in the config file, docs/intake.md) and the tenants'
// intake DSSE trust: which Ed25519 keys may sign what a tenant submits (runtime facts, orchestrator
// exports, artifact provenance). Verification fails closed: a tenant with no keys configured, an
// envelope signed only by unknown keyids, or any signature by a trusted keyid that does not verify
// over DSSE's PAE is refused. Keys come only from this config (a pinned trust anchor), never from
// the envelope.
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pae } from '../../processors/evidence/dsse.ts';
import { fromB64Strict } from '../../processors/evidence/hash.ts';
import { validateTenantId } from '../tenancy.ts';

export interface IntakeTrustKey { keyid: string; publicKey: string }
export interface IntakeTenantTrust { keys: IntakeTrustKey[] }

export interface RuntimeFactsConfig {
  /** Largest request body as sent (compressed or not). */
  maxBodyBytes: number;
  /** Largest NDJSON after gunzip: a zip bomb is refused once it inflates past this. */
  maxDecompressedBytes: number;
  /** Longest NDJSON line (one record). */
  maxLineBytes: number;
  /** Facts whose graph is not registered yet (docs/intake.md "Orphans"). */
  orphans: RuntimeOrphansConfig;
  /** Refuse intake while the time anchor is older than its budget (docs/intake.md "Time anchor"); absent: no check. */
  timeAnchor?: TimeAnchorConfig;
}

export interface RuntimeOrphansConfig {
  /** Most orphans held at once; a new orphan past it is dead-lettered (the held ones stay). */
  maxQueued: number;
  /** How long an orphan waits for its graph. */
  ttlSeconds: number;
  /** First retry delay (doubles per attempt up to retryMaxMs). */
  retryInitialMs: number;
  retryMaxMs: number;
}

export interface TimeAnchorConfig {
  /** A file holding the anchor: one RFC 3339 UTC time (e.g. `2026-12-03T16:00:00Z`), rewritten by whoever refreshes it. */
  file: string;
  /** Largest accepted age of the anchor (now - anchor), in seconds. */
  maxStalenessSeconds: number;
}

export interface IntakeConfig {
  /** Per tenant: the keys whose DSSE signatures its intakes may carry. */
  trust: Record<string, IntakeTenantTrust>;
  /** Root of the content-addressed store (default `<dataDir>/cas`). */
  casDir: string;
  runtimeFacts: RuntimeFactsConfig;
}

const MiB = 1024 * 1024;
export const defaultIntakeConfig = (dataDir: string): IntakeConfig => ({
  trust: {}, casDir: path.join(dataDir, 'cas'),
  runtimeFacts: { maxBodyBytes: 32 * MiB, maxDecompressedBytes: 256 * MiB, maxLineBytes: 64 * 1024,
    orphans: { maxQueued: 10_000, ttlSeconds: 86_400, retryInitialMs: 1000, retryMaxMs: 300_000 } },
});

/** An anchor file's time (epoch ms), or a message saying why it is not one. */
export function readTimeAnchorText(text: string): number | string {
  const t = text.trim();
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/.test(t)) return 'must hold one RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SS[.f]Z)';
  const ms = Date.parse(t);
  return Number.isFinite(ms) ? ms : 'holds a time that is not a calendar date';
}

/** DSSE allows standard or URL-safe base64, padded or not; anything else is malformed. */
function b64(s: string): Buffer | undefined {
  const std = fromB64Strict(s);
  if (std) return std;
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return undefined;
  const b = Buffer.from(s, 'base64url');
  return b.toString('base64url') === s ? b : undefined;
}

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const KEYID = /^[\x21-\x7e]{1,256}$/;

/** Parse an Ed25519 SPKI PEM public key; a message when it is not one. */
function ed25519Key(pem: unknown): KeyObject | string {
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN PUBLIC KEY-----')) return 'must be a PEM (SPKI) "-----BEGIN PUBLIC KEY-----" Ed25519 public key';
  let k: KeyObject;
  try { k = createPublicKey({ key: pem, format: 'pem' }); } catch { return 'is not a parsable PEM public key'; }
  if (k.asymmetricKeyType !== 'ed25519') return `must be an Ed25519 key (got ${k.asymmetricKeyType ?? 'unknown'})`;
  return k;
}

/**
 * Validate the `intake` section; problems are appended to `problems` (lib/config.ts reports them
 * all at startup). `dataDir` resolves the default CAS directory.
 */
export function parseIntakeSection(v: unknown, dataDir: string, problems: string[]): IntakeConfig {
  const d = defaultIntakeConfig(dataDir);
  if (v === undefined || v === null) return d;
  if (!isObj(v)) { problems.push('intake must be a mapping (trust, casDir, runtimeFacts)'); return d; }
  for (const k of Object.keys(v)) if (!['trust', 'casDir', 'runtimeFacts'].includes(k)) problems.push(`intake.${k} is not a known key (known: trust, casDir, runtimeFacts)`);
  const out: IntakeConfig = { ...d, trust: {}, runtimeFacts: { ...d.runtimeFacts, orphans: { ...d.runtimeFacts.orphans } } };
  if (v.casDir !== undefined) {
    if (typeof v.casDir !== 'string' || v.casDir === '') problems.push('intake.casDir must be a directory path');
    else out.casDir = path.resolve(v.casDir);
  }
  if (v.trust !== undefined) {
    if (!isObj(v.trust)) problems.push('intake.trust must be a mapping of tenant id -> { keys: [{ keyid, publicKey }] }');
    else for (const [tenant, t] of Object.entries(v.trust)) {
      const at = `intake.trust.${tenant}`;
      const bad = validateTenantId(tenant);
      if (bad) { problems.push(`${at}: ${bad}`); continue; }
      if (!isObj(t) || !Array.isArray(t.keys)) { problems.push(`${at}.keys must be a list of { keyid, publicKey }`); continue; }
      const keys: IntakeTrustKey[] = [];
      t.keys.forEach((k: unknown, i: number) => {
        const kat = `${at}.keys[${i}]`;
        if (!isObj(k)) { problems.push(`${kat} must be a mapping { keyid, publicKey }`); return; }
        if (typeof k.keyid !== 'string' || !KEYID.test(k.keyid)) { problems.push(`${kat}.keyid must be 1-256 printable ASCII characters without spaces`); return; }
        if (keys.some((x) => x.keyid === k.keyid)) { problems.push(`${kat}.keyid "${k.keyid}" is configured twice for tenant ${tenant}`); return; }
        const key = ed25519Key(k.publicKey);
        if (typeof key === 'string') { problems.push(`${kat}.publicKey ${key}`); return; }
        keys.push({ keyid: k.keyid, publicKey: k.publicKey as string });
      });
      out.trust[tenant] = { keys };
    }
  }
  if (v.runtimeFacts !== undefined) {
    const rf = v.runtimeFacts;
    if (!isObj(rf)) problems.push('intake.runtimeFacts must be a mapping');
    else {
      const int = (key: 'maxBodyBytes' | 'maxDecompressedBytes' | 'maxLineBytes', min: number, max: number) => {
        const x = rf[key];
        if (x === undefined) return;
        if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) problems.push(`intake.runtimeFacts.${key} must be an integer from ${min} to ${max} (got ${JSON.stringify(x)})`);
        else out.runtimeFacts[key] = x;
      };
      for (const k of Object.keys(rf)) if (!['maxBodyBytes', 'maxDecompressedBytes', 'maxLineBytes', 'orphans', 'timeAnchor'].includes(k)) problems.push(`intake.runtimeFacts.${k} is not a known key`);
      const intIn = (at: string, x: unknown, min: number, max: number, set: (n: number) => void) => {
        if (x === undefined) return;
        if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) problems.push(`${at} must be an integer from ${min} to ${max} (got ${JSON.stringify(x)})`);
        else set(x);
      };
      if (rf.orphans !== undefined) {
        const o = rf.orphans;
        if (!isObj(o)) problems.push('intake.runtimeFacts.orphans must be a mapping (maxQueued, ttlSeconds, retryInitialMs, retryMaxMs)');
        else {
          for (const k of Object.keys(o)) if (!['maxQueued', 'ttlSeconds', 'retryInitialMs', 'retryMaxMs'].includes(k)) problems.push(`intake.runtimeFacts.orphans.${k} is not a known key`);
          const oc = out.runtimeFacts.orphans;
          intIn('intake.runtimeFacts.orphans.maxQueued', o.maxQueued, 1, 10_000_000, (n) => { oc.maxQueued = n; });
          intIn('intake.runtimeFacts.orphans.ttlSeconds', o.ttlSeconds, 1, 30 * 86_400, (n) => { oc.ttlSeconds = n; });
          intIn('intake.runtimeFacts.orphans.retryInitialMs', o.retryInitialMs, 10, 3_600_000, (n) => { oc.retryInitialMs = n; });
          intIn('intake.runtimeFacts.orphans.retryMaxMs', o.retryMaxMs, 10, 86_400_000, (n) => { oc.retryMaxMs = n; });
          if (oc.retryMaxMs < oc.retryInitialMs) problems.push('intake.runtimeFacts.orphans.retryMaxMs must not be below retryInitialMs');
        }
      }
      if (rf.timeAnchor !== undefined) {
        const a = rf.timeAnchor;
        if (!isObj(a)) problems.push('intake.runtimeFacts.timeAnchor must be a mapping (file, maxStalenessSeconds)');
        else {
          for (const k of Object.keys(a)) if (!['file', 'maxStalenessSeconds'].includes(k)) problems.push(`intake.runtimeFacts.timeAnchor.${k} is not a known key`);
          let budget: number | undefined;
          if (a.maxStalenessSeconds === undefined) problems.push('intake.runtimeFacts.timeAnchor.maxStalenessSeconds is required (the anchor\'s budget, in seconds)');
          else intIn('intake.runtimeFacts.timeAnchor.maxStalenessSeconds', a.maxStalenessSeconds, 1, 366 * 86_400, (n) => { budget = n; });
          if (typeof a.file !== 'string' || a.file === '') problems.push('intake.runtimeFacts.timeAnchor.file must be a file path');
          else {
            const file = path.resolve(a.file);
            let text: string | undefined;
            try { text = readFileSync(file, 'utf8'); } catch (err) { problems.push(`intake.runtimeFacts.timeAnchor.file ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`); }
            if (text !== undefined) {
              const t = readTimeAnchorText(text);
              if (typeof t === 'string') problems.push(`intake.runtimeFacts.timeAnchor.file ${file} ${t}`);
              else if (budget !== undefined) out.runtimeFacts.timeAnchor = { file, maxStalenessSeconds: budget };
            }
          }
        }
      }
      int('maxBodyBytes', 1024, 1024 * MiB);
      int('maxDecompressedBytes', 1024, 16 * 1024 * MiB);
      int('maxLineBytes', 256, 16 * MiB);
      if (out.runtimeFacts.maxBodyBytes > out.runtimeFacts.maxDecompressedBytes) problems.push('intake.runtimeFacts.maxBodyBytes must not exceed intake.runtimeFacts.maxDecompressedBytes');
    }
  }
  return out;
}

/** A DSSE envelope as JSON: `{ payload (base64), payloadType, signatures: [{ keyid, sig (base64) }] }`. */
export interface IntakeEnvelope { payload: string; payloadType: string; signatures: { keyid: string; sig: string }[] }

export type IntakeEnvelopeVerdict = { ok: true; keyid: string; payload: Buffer } | { ok: false; reason: string };
export type IntakeEnvelopeVerifier = (envelope: unknown, tenant: string, expectedPayloadType?: string) => IntakeEnvelopeVerdict;

/** The loaded trust config: verifyIntakeEnvelope is a bound function, hand it to the pure cores. */
export class IntakeTrust {
  private readonly keys = new Map<string, Map<string, KeyObject>>();

  constructor(trust: Record<string, IntakeTenantTrust>) {
    for (const [tenant, t] of Object.entries(trust)) {
      const m = new Map<string, KeyObject>();
      for (const k of t.keys) {
        const key = ed25519Key(k.publicKey);
        if (typeof key === 'string') throw new Error(`intake.trust.${tenant}: key ${k.keyid} ${key}`);
        m.set(k.keyid, key);
      }
      this.keys.set(tenant, m);
    }
  }

  hasKeys(tenant: string): boolean { return (this.keys.get(tenant)?.size ?? 0) > 0; }

  /**
   * Verify `envelope` for `tenant` (and, when given, its payloadType). Accepted when at least one
   * signature by a keyid in the tenant's trust config verifies and none by a trusted keyid fails.
   * Signatures by keyids the tenant does not trust are ignored (they prove nothing either way).
   */
  readonly verifyIntakeEnvelope: IntakeEnvelopeVerifier = (envelope, tenant, expectedPayloadType) => {
    const keys = this.keys.get(tenant);
    if (!keys || keys.size === 0) return { ok: false, reason: `no intake trust keys configured for tenant ${tenant}` };
    if (!isObj(envelope)) return { ok: false, reason: 'malformed envelope: not a JSON object' };
    const { payload, payloadType, signatures } = envelope;
    if (typeof payload !== 'string' || typeof payloadType !== 'string') return { ok: false, reason: 'malformed envelope: payload and payloadType must be strings' };
    if (!Array.isArray(signatures) || signatures.length === 0) return { ok: false, reason: 'malformed envelope: no signatures' };
    if (expectedPayloadType !== undefined && payloadType !== expectedPayloadType) return { ok: false, reason: `malformed envelope: payloadType must be ${expectedPayloadType}` };
    const body = b64(payload);
    if (!body) return { ok: false, reason: 'malformed envelope: payload is not base64' };
    const msg = pae(payloadType, body);
    let good: string | undefined;
    for (const s of signatures as unknown[]) {
      if (!isObj(s) || typeof s.keyid !== 'string' || typeof s.sig !== 'string') return { ok: false, reason: 'malformed envelope: each signature needs keyid and sig strings' };
      const key = keys.get(s.keyid);
      if (!key) continue;
      const sig = b64(s.sig);
      if (!sig || sig.length !== 64 || !cryptoVerify(null, msg, key, sig)) return { ok: false, reason: `signature by ${s.keyid} does not verify` };
      good ??= s.keyid;
    }
    if (good === undefined) return { ok: false, reason: `unknown keyid: no signature by a key in tenant ${tenant}'s intake trust config` };
    return { ok: true, keyid: good, payload: body };
  };
}
