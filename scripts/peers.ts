// `npm run peers:fetch [-- name ...]` builds the pinned Go peers (lib/go-peers.ts) into .cache/go/;
// with no names, all of them. `otelcol` is the OpenTelemetry Collector built with ocb from
// collector-config/builder-config.yaml.
import { buildCollector, GO_TOOLS, installGoTool, type GoToolName } from '../lib/go-peers.ts';

const say = (m: string) => process.stderr.write(`[peers] ${m}\n`);
const known = [...Object.keys(GO_TOOLS), 'otelcol'];
const [cmd, ...names] = process.argv.slice(2);
if (cmd !== 'fetch') {
  process.stderr.write(`usage: tsx scripts/peers.ts fetch [${known.join('|')} ...]\n`);
  process.exit(2);
}
const wanted = names.length ? names : known;
for (const n of wanted) {
  if (!known.includes(n)) { say(`unknown peer '${n}'; known: ${known.join(', ')}`); process.exit(2); }
}
for (const n of wanted) {
  say(`${n} ready: ${n === 'otelcol' ? buildCollector(say) : installGoTool(n as GoToolName, say)}`);
}
