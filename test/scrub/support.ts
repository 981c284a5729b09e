// Test support for the scrub suite: a seeded PRNG, synthetic secrets of the right shapes (the corpus
// stores `{{slot}}` templates for vendor tokens so the repository itself holds no string that a
// secret scanner or push protection would flag), and corpus loading.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export const UPPER_NUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
export const HEX = '0123456789abcdef';
export const B64URL = ALNUM + '-_';

export function gen(rand: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const str = (alphabet: string, n: number): string => { let s = ''; for (let i = 0; i < n; i++) s += alphabet[Math.floor(rand() * alphabet.length)]; return s; };
  const b64url = (s: string) => Buffer.from(s).toString('base64url');
  const luhnComplete = (prefix: string, len: number): string => {
    let body = prefix + str('0123456789', len - prefix.length - 1);
    for (let d = 0; d < 10; d++) {
      const cand = body + d;
      let sum = 0;
      for (let i = 0; i < cand.length; i++) {
        let x = Number(cand[cand.length - 1 - i]);
        if (i % 2 === 1) { x *= 2; if (x > 9) x -= 9; }
        sum += x;
      }
      if (sum % 10 === 0) return cand;
    }
    return body;
  };
  const pem = (kind: string) => {
    const label = kind ? `${kind} PRIVATE KEY` : 'PRIVATE KEY';
    const lines = Array.from({ length: 3 + Math.floor(rand() * 5) }, () => str(ALNUM + '+/', 64));
    const extra = kind === 'ENCRYPTED' ? '' : kind === 'RSA' && rand() < 0.5 ? 'Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,8F3C2E1A\n\n' : '';
    const full = kind === 'PGP' ? 'PGP PRIVATE KEY BLOCK' : label;
    return `-----BEGIN ${full}-----\n${extra}${lines.join('\n')}\n${str(ALNUM, 20)}==\n-----END ${full}-----`;
  };
  const slots: Record<string, () => string> = {
    aws_access_key: () => pick(['AKIA', 'ASIA']) + str(UPPER_NUM, 16),
    // 40 base64 characters with both cases and a digit (what AWS issues), never all hex.
    aws_secret: () => 'Q' + str(ALNUM + '/+', 37) + 'a7',
    github_token: () => `gh${pick(['p', 'o', 'u', 's', 'r'])}_` + str(ALNUM, 36),
    github_pat: () => 'github_pat_' + str(ALNUM, 22) + '_' + str(ALNUM, 59),
    gitlab_token: () => 'glpat-' + str(ALNUM + '_-', 20),
    slack_token: () => `xox${pick(['b', 'p', 'a'])}-${str('0123456789', 12)}-${str('0123456789', 12)}-${str(ALNUM, 24)}`,
    slack_webhook: () => `https://hooks.slack.com/services/T${str(UPPER_NUM, 8)}/B${str(UPPER_NUM, 8)}/${str(ALNUM, 24)}`,
    stripe_key: () => `${pick(['sk', 'rk'])}_live_` + str(ALNUM, 24),
    gcp_api_key: () => 'AIza' + str(ALNUM + '_-', 35),
    google_oauth_token: () => 'ya29.' + str(B64URL, 60),
    npm_token: () => 'npm_' + str(ALNUM, 36),
    sendgrid_key: () => `SG.${str(B64URL, 22)}.${str(B64URL, 43)}`,
    openai_key: () => 'sk-proj-' + str(B64URL, 80),
    huggingface_token: () => 'hf_' + str(ALNUM, 34),
    docker_pat: () => 'dckr_pat_' + str(B64URL, 27),
    vault_token: () => 'hvs.' + str(B64URL, 90),
    shopify_token: () => 'shpat_' + str(HEX, 32),
    digitalocean_token: () => 'dop_v1_' + str(HEX, 64),
    databricks_token: () => 'dapi' + str(HEX, 32),
    pypi_token: () => 'pypi-AgEIcHlwaS5vcmc' + str(B64URL, 70),
    age_secret_key: () => 'AGE-SECRET-KEY-1' + str('QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L', 58),
    jwt: () => `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: str(ALNUM, 8) }))}.${b64url(JSON.stringify({ sub: str(ALNUM, 10), iat: 1700000000 + Math.floor(rand() * 1e6) }))}.${str(B64URL, 43)}`,
    opaque: () => str(ALNUM, 8) + pick(['.', '-', '_', '']) + str(ALNUM + '._-', 24),
    basic: () => Buffer.from(`${pick(['svc', 'admin', 'deploy', 'bob'])}:${str(ALNUM + '!#%', 12)}`).toString('base64'),
    password: () => str(ALNUM, 6) + pick(['!', '#', '%25', '_', '$', '']) + str(ALNUM, 6),
    b64sig: () => str(ALNUM + '%', 40) + '%3D',
    card: () => { const c = rand() < 0.5 ? luhnComplete('4', 16) : luhnComplete(pick(['51', '55']), 16); return rand() < 0.5 ? c.replace(/(\d{4})(?=\d)/g, '$1 ') : c; },
    traceid: () => str(HEX, 32),
    spanid: () => str(HEX, 16),
    uuid: () => { const h = str(HEX, 32); return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${pick(['8', '9', 'a', 'b'])}${h.slice(17, 20)}-${h.slice(20)}`; },
    sha256: () => str(HEX, 64),
    sha1: () => str(HEX, 40),
    ts_iso: () => new Date(1.7e12 + Math.floor(rand() * 1e11)).toISOString(),
    ts_ns: () => String(1.7e12 + Math.floor(rand() * 1e11)) + str('0123456789', 6),
    ts_ms: () => String(1.7e12 + Math.floor(rand() * 1e11)),
    ts_http: () => new Date(1.7e12 + Math.floor(rand() * 1e11)).toUTCString(),
    b64id: () => Buffer.from(str(ALNUM, 18 + Math.floor(rand() * 12)).split('').map((c) => c.charCodeAt(0) ^ Math.floor(rand() * 256))).toString(rand() < 0.5 ? 'base64' : 'base64url'),
  };
  return { pick, str, slots, pem };
}

/** Replace `{{slot}}` and `{{pem:KIND}}` markers with synthetic values (deterministic per seed). */
export function expand(template: string, seed: number): string {
  return expandCase(template, seed).text;
}

/**
 * Disguises a generated secret the way a determined leak would: an invisible character in the
 * middle (zw, zwj, wj, bom, shy), full-width forms (fw), or every character percent-encoded (pct).
 */
export const DISGUISE: Record<string, (v: string) => string> = {
  zw: (v) => mid(v, '\u200b'), zwj: (v) => mid(v, '\u200d'), wj: (v) => mid(v, '\u2060'), bom: (v) => mid(v, '\ufeff'), shy: (v) => mid(v, '\u00ad'),
  fw: (v) => v.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)),
  pct: (v) => [...Buffer.from(v)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
};
const mid = (v: string, c: string): string => v.slice(0, v.length >> 1) + c + v.slice(v.length >> 1);

/**
 * `expand`, also returning the generated values before any disguise (`{{slot|zw}}`), so a test can
 * check that none of them survives scrubbing.
 */
export function expandCase(template: string, seed: number): { text: string; values: string[] } {
  const g = gen(prng(seed));
  const values: string[] = [];
  const text = template.replace(/\{\{(\w+)(?::(\w*))?(?:\|(\w+))?\}\}/g, (_m, slot: string, arg: string | undefined, disguise: string | undefined) => {
    if (slot === 'pem') return g.pem(arg ?? '');
    const f = g.slots[slot];
    if (!f) throw new Error(`corpus: unknown slot {{${slot}}}`);
    const v = f();
    values.push(v);
    if (disguise === undefined) return v;
    const d = DISGUISE[disguise];
    if (!d) throw new Error(`corpus: unknown disguise |${disguise}`);
    return d(v);
  });
  return { text, values };
}

export interface CorpusEntry { kind: 'attr' | 'log'; key?: string; text: string; expect: string[]; neg?: string; line: number }

export function loadCorpus(): CorpusEntry[] {
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), 'corpus', 'corpus.jsonl');
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l, i) => {
    const e = JSON.parse(l) as Omit<CorpusEntry, 'line'>;
    return { ...e, text: expand(e.text, 1000 + i), line: i + 1 };
  });
}
