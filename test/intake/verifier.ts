// A tenant trust verifier for the pure-core tests, until lib/intake/trust.ts lands: keys per
// tenant (SPKI PEM Ed25519), PAE as DSSE defines it, fail closed on no keys / unknown keyid.
import { createPublicKey, verify as edVerify } from 'node:crypto';
import { pae } from '../../processors/evidence/dsse.ts';
import type { IntakeEnvelopeVerifier } from '../../processors/intake/artifacts.ts';

export function testVerifier(trust: Record<string, { keyid: string; publicKey: string }[]>): IntakeEnvelopeVerifier {
  return (e, tenant, expected) => {
    const keys = trust[tenant] ?? [];
    if (keys.length === 0) return { ok: false, reason: 'no intake trust keys configured for the tenant' };
    if (expected !== undefined && e.payloadType !== expected) return { ok: false, reason: 'payloadType' };
    const payload = Buffer.from(e.payload, 'base64');
    for (const s of e.signatures) {
      const k = keys.find((x) => x.keyid === s.keyid);
      if (!k) continue;
      const ok = edVerify(null, pae(e.payloadType, payload), createPublicKey(k.publicKey), Buffer.from(s.sig, 'base64'));
      return ok ? { ok: true, keyid: k.keyid, payload } : { ok: false, reason: 'bad signature' };
    }
    return { ok: false, reason: 'unknown keyid' };
  };
}
