// Inclusive CPU-profile time per function and phase, in µs per request, from a bench/receiver-phases.ts PROF_DIR
// (samples are wall-clock: on a loaded box a descheduled thread's samples are inflated; compare within a phase).
import { readFileSync, readdirSync } from 'node:fs';
const dir = process.argv[2]; const top = Number(process.argv[3] ?? 50);
const f = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()[0];
const prof = JSON.parse(readFileSync(`${dir}/${f}`, 'utf8'));
const phases = JSON.parse(readFileSync(`${dir}/phases.json`, 'utf8'));
const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map(); for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n) => { const f = n.callFrame; const u = f.url.replace(/.*\/work\/wt\/[^/]+\//, '').replace(/.*node_modules\//, 'nm/'); return `${f.functionName || '(anon)'} ${u}:${f.lineNumber + 1}`; };
const stackKeys = new Map();
const keysOf = (id) => { let s = stackKeys.get(id); if (s) return s; s = new Set(); for (let x = id; x !== undefined; x = parent.get(x)) s.add(label(nodes.get(x))); stackKeys.set(id, s); return s; };
let t = prof.startTime; const per = phases.map(() => new Map()); const busy = phases.map(() => 0);
for (let i = 0; i < prof.samples.length; i++) {
  t += prof.timeDeltas[i]; const dt = prof.timeDeltas[i + 1] ?? 0;
  const pi = phases.findIndex((p) => t >= p.t0 && t < p.t1); if (pi < 0) continue;
  const n = nodes.get(prof.samples[i]); if (n.callFrame.functionName === '(idle)') continue;
  busy[pi] += dt;
  for (const k of keysOf(n.id)) per[pi].set(k, (per[pi].get(k) ?? 0) + dt);
}
console.log(phases.map((p, i) => `${p.name}: ${p.ok} req, busy ${(busy[i] / p.ok).toFixed(0)} µs/req`).join('; '));
const all = new Set(); per.forEach((m) => m.forEach((v, k) => all.add(k)));
const filt = process.argv[4] ? new RegExp(process.argv[4]) : null;
const rows = [...all].filter((k) => !filt || filt.test(k)).map((k) => [k, ...phases.map((p, i) => (per[i].get(k) ?? 0) / p.ok)]);
const sortCol = Number(process.argv[5] ?? 2);
rows.sort((a, b) => b[sortCol] - a[sortCol]);
for (const r of rows.slice(0, top)) console.log(`${r[0].slice(0, 85).padEnd(85)} ${r.slice(1).map((x) => x.toFixed(0).padStart(7)).join(' ')}`);
