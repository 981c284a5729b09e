// The `evidence` section of the stella config (cfg.sections.evidence), validated with every problem
// listed:
//
//   evidence:
//     keyFile: /etc/stella/evidence-key.pem   # Ed25519, mode 0600 (docs/evidence.md "Keys");
//                                             # unset: a development key under dataDir, created once
//     sealEverySeconds: 60
//     sealEveryEntries: 100000
//     originPrefix: stella-telemetry.example/tenants   # checkpoint origin = <originPrefix>/<tenant>

export class EvidenceSectionError extends Error {}

export interface EvidenceSection {
  keyFile: string | undefined;
  sealEverySeconds: number;
  sealEveryEntries: number;
  originPrefix: string;
}

const KNOWN = ['keyFile', 'sealEverySeconds', 'sealEveryEntries', 'originPrefix'];

export function parseEvidenceSection(section: unknown): EvidenceSection {
  const out: EvidenceSection = { keyFile: undefined, sealEverySeconds: 60, sealEveryEntries: 100_000, originPrefix: 'stella-telemetry.example/tenants' };
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
  if (s.keyFile !== undefined) {
    if (typeof s.keyFile !== 'string' || s.keyFile === '') problems.push('evidence.keyFile must be a file path');
    else out.keyFile = s.keyFile;
  }
  if (s.originPrefix !== undefined) {
    // C2SP checkpoint origins: no spaces, no '+'.
    if (typeof s.originPrefix !== 'string' || !/^[^\s+]+$/.test(s.originPrefix)) problems.push('evidence.originPrefix must be a string without spaces or "+"');
    else out.originPrefix = s.originPrefix.replace(/\/+$/, '');
  }
  if (problems.length) throw new EvidenceSectionError(problems.join('; '));
  return out;
}
