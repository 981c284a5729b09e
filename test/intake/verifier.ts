// Tenant trust for tests as the foundation builds it (lib/intake/trust.ts IntakeTrust): keys per
// tenant (SPKI PEM Ed25519), fail closed on no keys / unknown keyid / bad signature.
import { IntakeTrust, type IntakeEnvelopeVerifier } from '../../lib/intake/trust.ts';

export function testVerifier(trust: Record<string, { keyid: string; publicKey: string }[]>): IntakeEnvelopeVerifier {
  return new IntakeTrust(Object.fromEntries(Object.entries(trust).map(([t, keys]) => [t, { keys }]))).verifyIntakeEnvelope;
}
