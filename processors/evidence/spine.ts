// `stella proof spine --bundle B`: the Merkle/consistency spine of a bundle, read out for a human
// or a script (pure; no I/O): each checkpoint (size, root, who signed it), the consistency proofs
// tying older checkpoints to the newest, each entry's inclusion path, witness cosignatures and
// time-stamp tokens. It only reads: `stella proof verify` is what checks it.
import { toHex } from './hash.ts';
import { parseCheckpoint, parseNote } from './note.ts';
import { parseTlogProof } from './reader.ts';
import { parseConsistencyProof, type Manifest } from './bundle.ts';
import { VerifyFailure } from './causes.ts';
import { gunzip, readTar } from './tar.ts';
import { leafHash } from './hash.ts';

export interface Spine {
  tenant: string;
  origin: string;
  case_id: string;
  tree_size: number;
  root: string;
  checkpoints: { size: number; root: string; signatures: { name: string; key_id: string }[]; cosignatures: { name: string; key_id: string }[]; timestamps: number }[];
  consistency: { from: number; to: number; path: string[] }[];
  inclusion: { index: number; role: string; sealed_in: number; leaf_hash: string; path: string[] }[];
  provenance: { trace_id: string; files: number } | null;
}

export function bundleSpine(bytes: Uint8Array): Spine {
  let files: Map<string, Uint8Array>;
  try { files = new Map(readTar(gunzip(bytes)).map((f) => [f.path, f.bytes])); } catch (e) { throw new VerifyFailure('BUNDLE_CORRUPT', `cannot unpack: ${(e as Error).message}`); }
  const text = (p: string): string => {
    const b = files.get(p);
    if (!b) throw new VerifyFailure('BUNDLE_CORRUPT', `${p} is missing`);
    return Buffer.from(b).toString('utf8');
  };
  let m: Manifest;
  try { m = JSON.parse(text('manifest.json')) as Manifest; } catch (e) {
    if (e instanceof VerifyFailure) throw new VerifyFailure('MANIFEST_MISSING', 'the bundle has no manifest.json');
    throw new VerifyFailure('BUNDLE_CORRUPT', 'manifest.json is not JSON');
  }
  const keyIdOf = (sig: { keyId: Uint8Array }): string => toHex(sig.keyId);
  try {
    const checkpoints = m.checkpoints.map((c) => {
      const note = parseNote(text(`checkpoints/${c.size}`));
      const cp = parseCheckpoint(note.text);
      const cosig = m.cosignatures?.some((x) => x.size === c.size) ? text(`cosignatures/${c.size}`).split('\n').filter((l) => l.startsWith('— '))
        .map((l) => { const [, name = '', sig = ''] = /^— (\S+) (\S+)$/.exec(l) ?? []; return { name, key_id: Buffer.from(sig, 'base64').subarray(0, 4).toString('hex') }; }) : [];
      return { size: c.size, root: toHex(cp.root), signatures: note.signatures.map((s) => ({ name: s.name, key_id: keyIdOf(s) })), cosignatures: cosig,
        timestamps: (m.timestamps ?? []).filter((t) => t.size === c.size).length };
    });
    const consistency = m.consistency.map((c) => {
      const p = parseConsistencyProof(text(`consistency/${c.from}.${c.to}`));
      return { from: p.from, to: p.to, path: p.proof.map((h) => toHex(h)) };
    });
    const inclusion = m.entries.map((e) => {
      const p = parseTlogProof(text(`proofs/${e.index}.tlog-proof`));
      return { index: e.index, role: e.role, sealed_in: e.sealed_in, leaf_hash: toHex(leafHash(files.get(`entries/${e.index}.json`) ?? new Uint8Array())), path: p.proof.map((h) => toHex(h)) };
    });
    const top = checkpoints.find((c) => c.size === m.tree_size);
    return { tenant: m.tenant, origin: m.origin, case_id: m.case_id, tree_size: m.tree_size, root: top?.root ?? '', checkpoints, consistency, inclusion,
      provenance: m.provenance ? { trace_id: m.provenance.trace_id, files: m.provenance.files.length } : null };
  } catch (e) {
    if (e instanceof VerifyFailure) throw e;
    throw new VerifyFailure('BUNDLE_CORRUPT', (e as Error).message);
  }
}

export function formatSpine(s: Spine): string {
  const out: string[] = [`log ${s.origin} (tenant ${s.tenant}, case ${s.case_id})`, `tree size ${s.tree_size}, root ${s.root}`, 'checkpoints:'];
  for (const c of s.checkpoints) {
    out.push(`  ${String(c.size).padStart(8)}  root ${c.root}  signed by ${c.signatures.map((x) => `${x.name}+${x.key_id}`).join(', ') || '(none)'}`
      + `${c.cosignatures.length ? `  cosigned by ${c.cosignatures.map((x) => `${x.name}+${x.key_id}`).join(', ')}` : ''}${c.timestamps ? `  ${c.timestamps} RFC 3161 token(s)` : ''}`);
  }
  out.push('consistency:');
  for (const c of s.consistency) out.push(`  ${c.from} -> ${c.to}: ${c.path.length} hashes`, ...c.path.map((h) => `      ${h}`));
  if (s.consistency.length === 0) out.push('  (none: every entry is proven against the one checkpoint)');
  out.push('inclusion:');
  for (const e of s.inclusion) out.push(`  entry ${e.index} (${e.role}, sealed in ${e.sealed_in}) leaf ${e.leaf_hash}: ${e.path.length} hashes`, ...e.path.map((h) => `      ${h}`));
  if (s.provenance) out.push(`provenance: trace ${s.provenance.trace_id}, ${s.provenance.files} files`);
  out.push('(read only: `stella proof verify --bundle <file> --trust <root>` checks all of it)');
  return `${out.join('\n')}\n`;
}
