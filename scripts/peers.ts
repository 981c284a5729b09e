// `npm run peers:fetch [-- name ...]` builds the pinned Go peers (lib/go-peers.ts) into .cache/go/;
// with no names, all of them.
import { GO_TOOLS, installGoTool, type GoToolName } from '../lib/go-peers.ts';

const say = (m: string) => process.stderr.write(`[peers] ${m}\n`);
const [cmd, ...names] = process.argv.slice(2);
if (cmd !== 'fetch') {
  process.stderr.write(`usage: tsx scripts/peers.ts fetch [${Object.keys(GO_TOOLS).join('|')} ...]\n`);
  process.exit(2);
}
const wanted = (names.length ? names : Object.keys(GO_TOOLS)) as GoToolName[];
for (const n of wanted) {
  if (!(n in GO_TOOLS)) { say(`unknown peer '${n}'; known: ${Object.keys(GO_TOOLS).join(', ')}`); process.exit(2); }
}
for (const n of wanted) say(`${n} ready: ${installGoTool(n, say)}`);
