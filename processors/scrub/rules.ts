// The default scrub rules: what is a secret or personal datum, as regular-expression fragments that
// the scanner joins into ONE alternation, so that each string is scanned once for all rules.
//
// Safety contract for every fragment (checked by a static test, the pathological-input tests and
// the idempotence property):
//   - every quantifier is bounded ({m,n}); no nested quantifiers over overlapping classes, so a
//     failed attempt at one start position costs at most the fragment's bounded length;
//   - fragments start with a literal, a rare character, or a cheap look-behind, so most start
//     positions are rejected on the first character (the scanner also gates word starts);
//   - value classes never contain '[' or ']', values never start with a separator or a pseudonym's
//     hex tail, and negative end conditions also refuse a following placeholder (OUTPUT_HEAD), so
//     no rule matches what the scrubber writes and a second pass changes nothing.
// Shapes follow the public secret-scanner rule sets (gitleaks, trufflehog, GitHub secret scanning):
// vendor prefixes plus the documented alphabet and length of each token family.
import { isIPv6 } from 'node:net';

/** Families group rules for reporting, configuration and deep-debug grants. */
export const FAMILIES = ['email', 'auth', 'jwt', 'private_key', 'token', 'url_secret', 'kv_secret', 'card', 'ip', 'path', 'sensitive_key'] as const;
export type Family = (typeof FAMILIES)[number];

export interface RuleDef {
  id: string;
  family: Family;
  /** Regex source matched before the secret and kept verbatim (e.g. `Bearer `, `password=`). */
  keep?: string;
  /** Regex source of the redacted part. Only non-capturing groups inside. */
  value: string;
  /**
   * Rejects candidates the regex cannot (Luhn, base64 shape, IP validity, ...): false rejects, a
   * number accepts only that many leading characters (e.g. an IPv6 address without its `:port`).
   */
  validate?: (value: string) => boolean | number;
  /** Off unless a tenant turns it on. */
  defaultOff?: boolean;
  /**
   * Keyword rules (`password=...`, `Authorization: ...`): when the value itself is exactly a more
   * specific finding (a GitHub token, a JWT), report that rule instead, for attribution and pseudonyms.
   */
  refine?: boolean;
  /** Scrub output is `<user>`-style instead of `[REDACTED:id]` (paths stay readable as paths). */
  angle?: string;
}

/** Case-insensitive literal as a character-class sequence (the combined regex has no `i` flag). */
export function ci(word: string): string {
  return [...word].map((c) => (/[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c === '-' || c === '.' ? `\\${c}` : c)).join('');
}

// Values of `key=value` style secrets end at whitespace, quotes, separators and brackets. A value
// never starts with a separator (`a:: b` must not yield the value `:`) nor with a pseudonym's hex
// tail (`[gitlab_token:0123456789ab]` is output, not `token: 0123...`).
const VALUE_HEAD = `(?![0-9a-f]{12}\\])`;
const KV_VALUE = `${VALUE_HEAD}[^\\s"'&,;<>{}\\[\\]\\\\:=][^\\s"'&,;<>{}\\[\\]\\\\]{0,511}`;
const KV_SEP = `["']?\\s{0,3}[:=]{1,2}\\s{0,3}["']?`;
const KV_KEYS = ['password', 'passwd', 'passphrase', 'pwd', 'secret', 'token', 'apikey', 'api_key', 'api-key',
  'access_key', 'access-key', 'accesskey', 'secret_key', 'private_key', 'client_secret', 'session_id', 'sessionid',
  'credential', 'credentials', 'accountkey', 'account_key'];
const KV_KEYWORDS = `(?:${KV_KEYS.sort((a, b) => b.length - a.length).map(ci).join('|')})`;

function luhn(digits: string): boolean {
  let sum = 0;
  let dbl = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (dbl) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
    dbl = !dbl;
  }
  return sum % 10 === 0;
}

/** Card numbers: 13-19 digits, a known brand prefix, one separator style, and the Luhn check. */
export function isCardNumber(raw: string): boolean {
  const seps = new Set(raw.replace(/\d/g, ''));
  if (seps.size > 1) return false;
  const d = raw.replace(/\D/g, '');
  if (d.length < 13 || d.length > 19) return false;
  if (/^(\d)\1+$/.test(d)) return false; // 4444444444444448-style fillers aside, all-same digits are placeholders
  const brand = /^4/.test(d) ? [13, 16, 19]
    : /^(5[1-5]|2(2[2-9]|[3-6]\d|7[01]|720))/.test(d) ? [16]
    : /^3[47]/.test(d) ? [15]
    : /^3(0[0-5]|[689])/.test(d) ? [14, 16, 19]
    : /^(6011|65|64[4-9]|622)/.test(d) ? [16, 19]
    : /^35(2[89]|[3-8]\d)/.test(d) ? [16, 19]
    : /^62/.test(d) ? [16, 17, 18, 19]
    : /^(5018|5020|5038|6304|6759|676[1-3])/.test(d) ? [12, 13, 14, 15, 16, 17, 18, 19]
    : undefined;
  return !!brand && brand.includes(d.length) && luhn(d);
}

/**
 * A card candidate may run into a following number (`5555 5555 5555 4444 36`): accept the longest
 * prefix, cut at a separator, that is a card number.
 */
export function cardLength(raw: string): boolean | number {
  if (isCardNumber(raw)) return true;
  for (let i = raw.length - 1; i > 0; i--) {
    if ((raw[i] === ' ' || raw[i] === '-') && isCardNumber(raw.slice(0, i))) return i;
  }
  return false;
}

const isBasicCredential = (v: string): boolean => {
  if (v.length % 4 !== 0) return false;
  const s = Buffer.from(v, 'base64').toString('latin1');
  return s.includes(':') && /^[\x20-\x7e]+$/.test(s);
};

// Bearer values are opaque; require a digit or symbol (or length) so prose like "bearer authentication" passes.
const isBearerValue = (v: string): boolean => v.length >= 20 || /[0-9._~+/=-]/.test(v);

// Loopback, and network addresses (last octet 0: also what `Chrome/120.0.0.0`-style versions look like).
const NOT_A_HOST_V4 = /^127\.0\.0\.1$|\.0$/;
const isHostV6 = (v: string): boolean => {
  const bare = v.replace(/%.*$/, '');
  return isIPv6(bare) && bare !== '::' && bare !== '::1' && (bare.match(/:/g)?.length ?? 0) >= 2;
};
/** An IPv6 address, or one followed by an unbracketed `:port` (then only the address is redacted). */
const ipv6Length = (v: string): boolean | number => {
  if (isHostV6(v)) return true;
  const port = /:\d{1,5}$/.exec(v);
  return port !== null && isHostV6(v.slice(0, port.index)) ? port.index : false;
};

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
/**
 * The start of a placeholder or pseudonym the scrubber writes. Rules that end with "not followed by
 * a word character" also refuse to end right before one: the secret that stood there before the
 * first pass kept them from matching, and the second pass must agree (idempotence).
 */
export const OUTPUT_HEAD = '\\[(?:REDACTED:|[a-z0-9_]{1,40}:[0-9a-f]{12}\\])|<[a-z]{1,8}[:>]';
const TOKEN_END = `(?![0-9A-Za-z_-]|${OUTPUT_HEAD})`;

/**
 * Default rules in priority order: when two rules could start at the same position, the earlier
 * one wins (so specific vendor tokens beat generic key=value and e-mail shapes).
 */
export const DEFAULT_RULES: readonly RuleDef[] = [
  // PEM private keys: the header, the base64 body (and encrypted-key headers), and the footer when present.
  { id: 'private_key', family: 'private_key',
    value: `-----BEGIN(?: [A-Z0-9]{1,12}){0,3} PRIVATE KEY(?: BLOCK)?-----(?:[A-Za-z0-9+/=\\s\\\\:,.]|-(?!----)){0,16384}(?:-----END(?: [A-Z0-9]{1,12}){0,3} PRIVATE KEY(?: BLOCK)?-----)?` },
  { id: 'jwt', family: 'jwt', value: `\\beyJ[A-Za-z0-9_-]{8,2048}\\.eyJ[A-Za-z0-9_-]{2,8192}\\.[A-Za-z0-9_-]{0,2048}` },

  // Vendor token families (prefix + documented alphabet/length).
  { id: 'aws_access_key', family: 'token', value: `\\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|A3T[A-Z0-9])[A-Z0-9]{16}${TOKEN_END}` },
  { id: 'github_token', family: 'token', value: `\\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})${TOKEN_END}` },
  { id: 'gitlab_token', family: 'token', value: `\\bgl(?:pat|ptt|rt|dt|soat|cbt|ft|imt|oas)-[0-9A-Za-z_-]{20,300}(?:\\.[0-9a-z]{2,20})?${TOKEN_END}` },
  { id: 'slack_webhook', family: 'token', value: `https?://hooks\\.slack\\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,300}` },
  { id: 'slack_token', family: 'token', value: `\\b(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,250}` },
  { id: 'stripe_key', family: 'token', value: `\\b(?:(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,255}|whsec_[A-Za-z0-9]{24,255})${TOKEN_END}` },
  { id: 'gcp_api_key', family: 'token', value: `\\bAIza[0-9A-Za-z_-]{35}${TOKEN_END}` },
  { id: 'google_oauth_token', family: 'token', value: `\\bya29\\.[0-9A-Za-z_-]{20,2048}` },
  { id: 'openai_key', family: 'token', value: `\\bsk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,300}|ant-[a-z]{3,8}\\d{2}-[A-Za-z0-9_-]{80,200}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})${TOKEN_END}` },
  { id: 'npm_token', family: 'token', value: `\\bnpm_[A-Za-z0-9]{36}${TOKEN_END}` },
  { id: 'pypi_token', family: 'token', value: `\\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,1000}` },
  { id: 'sendgrid_key', family: 'token', value: `\\bSG\\.[A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]{43}${TOKEN_END}` },
  { id: 'twilio_key', family: 'token', value: `\\bSK[0-9a-fA-F]{32}${TOKEN_END}` },
  { id: 'docker_pat', family: 'token', value: `\\bdckr_pat_[A-Za-z0-9_-]{27,100}` },
  { id: 'vault_token', family: 'token', value: `\\bhv[sbr]\\.[A-Za-z0-9_-]{24,255}` },
  { id: 'shopify_token', family: 'token', value: `\\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}${TOKEN_END}` },
  { id: 'digitalocean_token', family: 'token', value: `\\bdo[opr]_v1_[a-f0-9]{64}${TOKEN_END}` },
  { id: 'databricks_token', family: 'token', value: `\\bdapi[a-f0-9]{32}(?:-\\d)?${TOKEN_END}` },
  { id: 'huggingface_token', family: 'token', value: `\\bhf_[A-Za-z0-9]{34,40}${TOKEN_END}` },
  { id: 'age_secret_key', family: 'token', value: `AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}` },

  // Credentials in URLs: scheme://user:<password>@host (the user name stays).
  // Unencoded `#`/`?` in passwords are common in hand-written connection strings, so they count.
  { id: 'url_password', refine: true, family: 'url_secret', keep: `\\b[A-Za-z][A-Za-z0-9+.-]{1,16}://[^\\s/?#@:\\[\\]]{0,128}:`, value: `[^\\s/@\\[\\]]{1,256}(?=@)` },
  // Authorization values: `Bearer <token>`, `Basic <base64 user:pass>`, and `Authorization: <anything>`.
  { id: 'authorization', refine: true, family: 'auth', keep: `${ci('authorization')}${KV_SEP}`, value: `${VALUE_HEAD}(?![A-Za-z][A-Za-z0-9-]{1,16} {1,3}\\[)(?:[A-Za-z][A-Za-z0-9-]{1,16} {1,3})?[^\\s"'\\[\\]:=][^\\s"'\\[\\]]{0,4095}` },
  { id: 'bearer', family: 'auth', keep: `\\b(?:[Bb]earer|BEARER)\\s{1,4}`, value: `[A-Za-z0-9._~+/=-]{8,4096}`, validate: isBearerValue },
  { id: 'basic_auth', family: 'auth', keep: `\\b(?:[Bb]asic|BASIC)\\s{1,4}`, value: `[A-Za-z0-9+/]{4,2048}={0,2}(?![A-Za-z0-9+/=]|${OUTPUT_HEAD})`, validate: isBasicCredential },
  // Cookies run to the end of the line or quote; other secrets-by-keyword end at a separator.
  { id: 'cookie', refine: true, family: 'kv_secret', keep: `(?:${ci('set-cookie')}|${ci('cookie')})${KV_SEP}`, value: `${VALUE_HEAD}[^\\s"'\\[\\]:=][^\\r\\n"\\[\\]]{0,4095}` },
  { id: 'kv_secret', refine: true, family: 'kv_secret', keep: `${KV_KEYWORDS}${KV_SEP}`, value: KV_VALUE },
  // `curl -u user:password` / `--user user:password` in logged command lines.
  { id: 'cli_password', refine: true, family: 'kv_secret', keep: `(?:-u|--user)(?: {1,3}|=)[^\\s:'"\\[\\]/\\\\]{1,64}:`, value: KV_VALUE },
  // Azure SAS / presigned URL signatures: `sig=` only as a query parameter.
  { id: 'url_signature', refine: true, family: 'url_secret', keep: `(?<=[?&])(?:sig|signature|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|X-Goog-Signature|X-Goog-Credential)=`, value: `[^\\s&#"'\\[\\]]{8,1024}` },

  { id: 'email', family: 'email',
    value: `(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\\.[A-Za-z0-9-]{1,63}){0,8}\\.[A-Za-z]{2,24}(?![A-Za-z0-9-]|${OUTPUT_HEAD})`,
    // ssh-style git remotes (git@github.com:org/repo) name a service account, not a person.
    validate: (v) => !/^git@/.test(v) },
  { id: 'card', family: 'card', value: `(?<![\\w.+/-])[2-6]\\d(?:[ -]?\\d){11,17}(?![\\w-]|${OUTPUT_HEAD})`, validate: cardLength },
  { id: 'ipv4', family: 'ip', value: `(?<![\\w.])${OCTET}(?:\\.${OCTET}){3}(?![\\w-]|\\.[\\w-]|${OUTPUT_HEAD})`, validate: (v) => !NOT_A_HOST_V4.test(v) },
  { id: 'ipv6', family: 'ip', value: `(?<![\\w:.])[0-9A-Fa-f]{0,4}::?[0-9A-Fa-f:.]{1,44}(?:%[0-9A-Za-z]{1,16})?(?![\\w:]|${OUTPUT_HEAD})`, validate: ipv6Length },

  // Home directories lose the user name: /home/alice/x -> /home/<user>/x (repo roots are per tenant).
  { id: 'home_path', family: 'path', angle: 'user', keep: `(?<![\\w.~-])(?:/home/|/Users/|[A-Za-z]:\\\\Users\\\\)`, value: `[A-Za-z0-9._-]{1,64}(?=[/\\\\\\s"':]|$)` },
];

export const RULE_IDS: readonly string[] = [...DEFAULT_RULES.map((r) => r.id), 'repo_path', 'sensitive_key'];

export function familyOf(ruleId: string): Family | undefined {
  if (ruleId === 'repo_path') return 'path';
  if (ruleId === 'sensitive_key') return 'sensitive_key';
  return DEFAULT_RULES.find((r) => r.id === ruleId)?.family;
}

/**
 * Attribute keys whose values are secret whatever they look like (matched on key segments, so
 * `http.request.header.authorization` and `db.password` match but `gen_ai.usage.input_tokens` does not).
 */
export const SENSITIVE_KEY = /(?:^|[._\-\s/])(?:password|passwd|passphrase|pwd|secret|secrets|token|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|authorization|proxy-authorization|cookie|set-cookie|api[_-]?key|apikey|x-api-key|private[_-]?key|secret[_-]?key|access[_-]?key|client[_-]?secret|credentials?|session[_-]?(?:id|token|key)|jwt|csrf[_-]?token|xsrf[_-]?token)$/i;
