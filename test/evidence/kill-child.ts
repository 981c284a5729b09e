// Child process for kill.test.ts: seals the fixed plan into the store at argv[2] until killed.
import { Sealer } from '../../processors/evidence/sealer.ts';
import { FsEvidenceStore } from '../../processors/evidence/store.ts';
import { KILL_PLAN, TENANT, items, testSigner } from './helpers.ts';

const store = new FsEvidenceStore(process.argv[2]!);
const s = await Sealer.recover({ store, tenant: TENANT, signer: testSigner() });
process.stdout.write('ready\n');
for (const [a, b, t] of KILL_PLAN) {
  s.append(items(a, b));
  await s.seal(t);
}
process.stdout.write('done\n');
