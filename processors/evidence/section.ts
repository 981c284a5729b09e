// The `evidence` section of the stella config (cfg.sections.evidence), validated with every problem
// listed:
//
//   evidence:
//     keyDir: /etc/stella/evidence-keys        # per-tenant Ed25519 keys <keyDir>/<tenant>.pem, 0600, created on
//                                             # first use; unset: <dataDir>/evidence-keys (docs/evidence.md "Keys")
//     keyFile: /etc/stella/evidence-key.pem   # the former shared key: logs still on it continue under
//                                             # their tenant's own key with a recorded rotation
//     sealEverySeconds: 60
//     sealEveryEntries: 100000
//     originPrefix: stella-telemetry.example/tenants   # checkpoint origin = <originPrefix>/<tenant>
//     witnesses:                             # C2SP tlog-witness, asked to cosign each tenant's latest checkpoint
//       - name: witness.example/w1           # the witness's key name
//         url: http://127.0.0.1:7380         # submission prefix (POST <url>/add-checkpoint)
//         vkey: witness.example/w1+1a2b3c4d+BB…   # its tlog-cosignature verifier key (type 0x04)
//     tsa:                                   # RFC 3161 TSA, asked to stamp every checkpoint
//       url: http://tsa.example/tsr
//       certificateFile: /etc/stella/tsa.pem # PEM: the TSA's certificate, or the CA that issues it (first cert names the TSA)
//     attestRetry: { initialMs: 1000, maxMs: 60000 }   # backoff for witness/TSA retries
//     witnessK: 1                            # cosignatures a verifier requires (trust root witnesses.k);
//                                            # default 1 with witnesses configured, 0 without
//     tsaK: 1                                # time-stamp tokens a verifier requires (trust root tsa.k);
//                                            # default 1 with a TSA configured, 0 without

import { readFileSync } from 'node:fs';
import type { TrustPolicy } from './trust-root.ts';
import { parseCertificates } from './tsa.ts';
import { parseCosignatureVerifierKey, type WitnessConfig } from './witness.ts';

export class EvidenceSectionError extends Error {}

export interface EvidenceSection {
  keyFile: string | undefined;
  keyDir: string | undefined;
  sealEverySeconds: number;
  sealEveryEntries: number;
  originPrefix: string;
  witnesses: WitnessConfig[];
  tsa: { url: string; certificates: string[] } | undefined;
  attestRetry: { initialMs: number; maxMs: number };
  /**
   * What the exported trust root (`stella forensic trust export`, GET /evidence/:tenant/trust-root,
   * POST /evidence/verify) carries besides the log keys: the configured witnesses' cosignature keys
   * with k of n, and the TSA certificates with k.
   */
  trustPolicy: Required<Pick<TrustPolicy, 'witnesses' | 'tsa'>>;
}

const KNOWN = ['keyFile', 'keyDir', 'sealEverySeconds', 'sealEveryEntries', 'originPrefix', 'witnesses', 'tsa', 'attestRetry', 'witnessK', 'tsaK'];
const HTTP_URL = /^https?:\/\/[^\s/]+(\/\S*)?$/;
const PEM_CERTS = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\r?\n?/g;

export function parseEvidenceSection(section: unknown): EvidenceSection {
  const out: EvidenceSection = { keyFile: undefined, keyDir: undefined, sealEverySeconds: 60, sealEveryEntries: 100_000, originPrefix: 'stella-telemetry.example/tenants',
    witnesses: [], tsa: undefined, attestRetry: { initialMs: 1000, maxMs: 60_000 }, trustPolicy: { witnesses: { k: 0, keys: [] }, tsa: { k: 0, certificates: [] } } };
  if (section === undefined || section === null) return out;
  if (typeof section !== 'object' || Array.isArray(section)) throw new EvidenceSectionError('evidence must be a mapping');
  const s = section as Record<string, unknown>;
  const problems: string[] = [];
  for (const k of Object.keys(s)) if (!KNOWN.includes(k)) problems.push(`evidence.${k} is not a known field (allowed: ${KNOWN.join(', ')})`);
  const int = (k: 'sealEverySeconds' | 'sealEveryEntries', min: number, max: number) => {
    const v = s[k];
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) problems.push(`evidence.${k} must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
    else out[k] = v;
  };
  int('sealEverySeconds', 1, 86_400);
  int('sealEveryEntries', 1, 10_000_000);
  if (s.keyDir !== undefined) {
    if (typeof s.keyDir !== 'string' || s.keyDir === '') problems.push('evidence.keyDir must be a directory path');
    else out.keyDir = s.keyDir;
  }
  if (s.keyFile !== undefined) {
    if (typeof s.keyFile !== 'string' || s.keyFile === '') problems.push('evidence.keyFile must be a file path');
    else out.keyFile = s.keyFile;
  }
  if (s.originPrefix !== undefined) {
    // C2SP checkpoint origins: no spaces, no '+'.
    if (typeof s.originPrefix !== 'string' || !/^[^\s+]+$/.test(s.originPrefix)) problems.push('evidence.originPrefix must be a string without spaces or "+"');
    else out.originPrefix = s.originPrefix.replace(/\/+$/, '');
  }
  parseAttestation(s, out, problems);
  parsePolicy(s, out, problems);
  if (problems.length) throw new EvidenceSectionError(problems.join('; '));
  return out;
}

/** evidence.witnessK / evidence.tsaK: the k-of-n policies the exported trust root carries. */
function parsePolicy(s: Record<string, unknown>, out: EvidenceSection, problems: string[]): void {
  const k = (key: 'witnessK' | 'tsaK', n: number, what: string): number => {
    const v = s[key];
    if (v === undefined) return Math.min(1, n); // fail closed: a configured witness/TSA is required by default
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > n) {
      problems.push(`evidence.${key} must be an integer from 0 to ${n} (the number of ${what} configured; got ${JSON.stringify(v)})`);
      return 0;
    }
    return v;
  };
  const witnessK = k('witnessK', out.witnesses.length, 'witnesses');
  const tsaK = k('tsaK', out.tsa ? 1 : 0, 'TSAs');
  out.trustPolicy = {
    witnesses: { k: witnessK, keys: out.witnesses.map((w) => ({ name: w.name, vkey: w.vkey })) },
    tsa: { k: tsaK, certificates: out.tsa?.certificates ?? [] },
  };
}

/** evidence.witnesses, evidence.tsa and evidence.attestRetry (docs/evidence.md "Witnesses and trusted time"). */
function parseAttestation(s: Record<string, unknown>, out: EvidenceSection, problems: string[]): void {
  if (s.witnesses !== undefined) {
    if (!Array.isArray(s.witnesses)) problems.push('evidence.witnesses must be a list of {name, url, vkey}');
    else {
      s.witnesses.forEach((w: unknown, i) => {
        const at = `evidence.witnesses[${i}]`;
        if (!w || typeof w !== 'object' || Array.isArray(w)) { problems.push(`${at} must be a mapping {name, url, vkey}`); return; }
        const o = w as Record<string, unknown>;
        for (const k of Object.keys(o)) if (!['name', 'url', 'vkey'].includes(k)) problems.push(`${at}.${k} is not a known field (allowed: name, url, vkey)`);
        if (typeof o.url !== 'string' || !HTTP_URL.test(o.url)) { problems.push(`${at}.url must be an http(s) URL (the witness's submission prefix)`); return; }
        if (typeof o.name !== 'string' || typeof o.vkey !== 'string') { problems.push(`${at}.name and .vkey must be strings`); return; }
        try {
          const v = parseCosignatureVerifierKey(o.vkey);
          if (v.name !== o.name) { problems.push(`${at}.vkey is named ${v.name}, not ${o.name}`); return; }
        } catch (e) { problems.push(`${at}.vkey: ${(e as Error).message}`); return; }
        out.witnesses.push({ name: o.name, url: o.url, vkey: o.vkey });
      });
      if (new Set(out.witnesses.map((w) => w.name)).size !== out.witnesses.length) problems.push('evidence.witnesses names a witness twice');
    }
  }
  if (s.tsa !== undefined) {
    const t = s.tsa as Record<string, unknown>;
    if (!t || typeof t !== 'object' || Array.isArray(t)) problems.push('evidence.tsa must be a mapping {url, certificateFile}');
    else {
      for (const k of Object.keys(t)) if (!['url', 'certificateFile'].includes(k)) problems.push(`evidence.tsa.${k} is not a known field (allowed: url, certificateFile)`);
      const url = typeof t.url === 'string' && HTTP_URL.test(t.url) ? t.url : undefined;
      if (!url) problems.push('evidence.tsa.url must be an http(s) URL (RFC 3161 over HTTP)');
      let certificates: string[] = [];
      if (typeof t.certificateFile !== 'string' || t.certificateFile === '') problems.push('evidence.tsa.certificateFile must be the path of the TSA\'s PEM certificate (or its issuing CA)');
      else {
        try {
          certificates = readFileSync(t.certificateFile, 'utf8').match(PEM_CERTS) ?? [];
          if (certificates.length === 0) problems.push(`evidence.tsa.certificateFile ${t.certificateFile} holds no PEM certificate`);
          else parseCertificates(certificates);
        } catch (e) { problems.push(`evidence.tsa.certificateFile: ${(e as Error).message}`); certificates = []; }
      }
      if (url && certificates.length > 0) out.tsa = { url, certificates };
    }
  }
  if (s.attestRetry !== undefined) {
    const r = s.attestRetry as Record<string, unknown>;
    const ok = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 10 && v <= 3_600_000;
    if (!r || typeof r !== 'object' || !ok(r.initialMs) || !ok(r.maxMs) || r.maxMs < r.initialMs) problems.push('evidence.attestRetry must be {initialMs, maxMs}: integers from 10 to 3600000 ms, maxMs ≥ initialMs');
    else out.attestRetry = { initialMs: r.initialMs, maxMs: r.maxMs };
  }
}
