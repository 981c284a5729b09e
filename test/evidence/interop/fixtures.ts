// Writes an evidence store and a case bundle for the Go interop checks (see README.md here).
// Usage: npx tsx test/evidence/interop/fixtures.ts <out dir>
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildBundle } from '../../../processors/evidence/bundle.ts';
import { Sealer } from '../../../processors/evidence/sealer.ts';
import { FsEvidenceStore } from '../../../processors/evidence/store.ts';
import { TENANT, items, testSigner } from '../helpers.ts';

const out = process.argv[2] ?? 'interop-out';
mkdirSync(out, { recursive: true });
const store = new FsEvidenceStore(path.join(out, 'store'));
const s = await Sealer.recover({ store, tenant: TENANT, signer: testSigner() });
s.append(items(0, 300)); await s.seal('2026-11-23T10:00:00Z');
s.append(items(300, 513)); await s.seal('2026-11-23T10:01:00Z');
s.append(items(513, 70_000)); await s.seal('2026-11-23T10:02:00Z');
writeFileSync(path.join(out, 'case.tar.gz'), await buildBundle(store, TENANT, { caseId: 'interop', indices: [0, 1, 2, 299, 300, 512, 65_536, 69_999] }));
writeFileSync(path.join(out, 'vkey'), `${testSigner().verifierKey}\n`);
console.log(`store: ${store.tenantDir(TENANT)}\nbundle: ${path.join(out, 'case.tar.gz')}\nvkey: ${path.join(out, 'vkey')}`);
