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
export const FAMILIES = ['email', 'auth', 'jwt', 'private_key', 'token', 'url_secret', 'kv_secret', 'card', 'national_id', 'phone', 'iban', 'ip', 'path', 'sensitive_key'] as const;
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
  validate?: (value: string, text: string, start: number) => boolean | number;
  /**
   * Zero-width regex source every match of this rule starts with; consecutive rules with the same
   * lead are tested under one occurrence of it (see scanner.ts).
   */
  lead?: string;
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
  if (!cardGrouping(raw)) return false;
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
 * Dots and mixed separators (`4111.1111.1111.1111`, `4111 1111-1111 1111`) count only in a card's
 * grouping: at least two separators and groups of 3-6 digits, so a decimal such as
 * `41.11111111111111` or a dotted version is never a card.
 */
function cardGrouping(raw: string): boolean {
  const seps = raw.replace(/\d/g, '');
  if (!seps.includes('.') && new Set(seps).size <= 1) return true;
  return seps.length >= 2 && raw.split(/[ .-]/).every((g) => g.length >= 3 && g.length <= 6);
}

/**
 * A card candidate may run into a following number (`5555 5555 5555 4444 36`): accept the longest
 * prefix, cut at a separator, that is a card number.
 */
export function cardLength(raw: string): boolean | number {
  if (isCardNumber(raw)) return true;
  for (let i = raw.length - 1; i > 0; i--) {
    if ((raw[i] === ' ' || raw[i] === '-' || raw[i] === '.') && isCardNumber(raw.slice(0, i))) return i;
  }
  return false;
}

/** The longest prefix of `raw`, cut at a separator, that `ok` accepts (true: all of it). */
function longestPrefix(raw: string, ok: (s: string) => boolean, seps = ' .-'): boolean | number {
  if (ok(raw)) return true;
  for (let i = raw.length - 1; i > 0; i--) if (seps.includes(raw[i]!) && ok(raw.slice(0, i))) return i;
  return false;
}

/**
 * Whether the text right before `start` names what follows: `named` must end exactly there, with
 * only separators (and, where allowed, plain words) in between. Context is never a distance in
 * characters: redaction shortens text, and a keyword pulled within reach by a placeholder on a
 * second pass would break idempotence. Separators and plain words never contain a placeholder.
 */
function namedBefore(text: string, start: number, named: RegExp): boolean {
  return named.test(text.slice(Math.max(0, start - 96), start));
}
const SEP_END = `[\\s:=#"'.()-]{0,8}$`;

// ---- national ids: format rules and, where the id has one, its check digit

const SSN_NAMED = new RegExp(`(?<![A-Za-z])(?:ssns?|social[ _-]?security(?:[ _-]?(?:no|number|num))?)${SEP_END}`, 'i');
const SIN_NAMED = new RegExp(`(?<![A-Za-z])(?:sin|nas|social[ _-]?insurance(?:[ _-]?(?:no|number|num))?)${SEP_END}`, 'i');

/** US SSN `123-45-6789` (`123 45 6789` or 9 bare digits only after "SSN"/"social security"). */
function isUsSsn(v: string, text: string, start: number): boolean {
  const d = v.replace(/\D/g, '');
  if (/^(000|666)/.test(d) || d.slice(3, 5) === '00' || d.slice(5) === '0000') return false;
  return v.includes('-') || namedBefore(text, start, SSN_NAMED);
}

/** Canadian SIN `123-456-782` (spaces only after "SIN"), Luhn. */
function isCaSin(v: string, text: string, start: number): boolean {
  if (!luhn(v.replace(/\D/g, ''))) return false;
  return v.includes('-') || namedBefore(text, start, SIN_NAMED);
}

/** UK National Insurance number: uniform spacing (none, or between every pair). */
const isUkNino = (v: string): boolean => !v.includes(' ') || v.split(' ').length === 5;

/** Spanish DNI (8 digits + letter) and NIE (X/Y/Z + 7 digits + letter): the letter is the number mod 23. */
function isEsDni(v: string): boolean {
  const c = v.replace(/-/g, '');
  const n = Number(c.slice(0, -1).replace(/^[XYZ]/, (x) => String('XYZ'.indexOf(x))));
  return 'TRWAGMYFPDXBNJZSQVHLCKE'[n % 23] === c.slice(-1);
}

/** Brazilian CPF `123.456.789-09`: two mod-11 check digits. */
function isBrCpf(v: string): boolean {
  const d = v.replace(/\D/g, '');
  if (/^(\d)\1+$/.test(d)) return false;
  for (const n of [9, 10]) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Number(d[i]) * (n + 1 - i);
    const check = (sum * 10) % 11 % 10;
    if (check !== Number(d[n])) return false;
  }
  return true;
}

// Verhoeff (Indian Aadhaar's check digit): dihedral group D5 tables.
const VD = ['0123456789', '1234067895', '2340178956', '3401289567', '4012395678', '5987604321', '6598710432', '7659821043', '8765932104', '9876543210'];
const VP = ['0123456789', '1576283094', '5803796142', '8916043527', '9453126870', '4286573901', '2793806415', '7046913258'];
function isAadhaar(v: string): boolean {
  const d = v.replace(/\D/g, '');
  let c = 0;
  for (let i = 0; i < d.length; i++) c = Number(VD[c]![Number(VP[i % 8]![Number(d[d.length - 1 - i])])]);
  return c === 0;
}

// ---- phone numbers (no checksum: numbering-plan shape, and context for national formats)

const PHONE_NAMED = new RegExp(`(?<![A-Za-z])(?:phone|tel|telephone|mobile|mob|cell|fax|telefon|t[eé]l[eé]phone|handy|whatsapp|sms)(?:[ _-]?(?:no|number|num|nr))?${SEP_END}`, 'i');
const nanp = (d: string): boolean => /^[2-9]\d\d[2-9]\d{6}$/.test(d);

function isPhone(v: string, text: string, start: number): boolean {
  const d = v.replace(/\D/g, '');
  if (v.startsWith('+')) {
    // E.164: at most 15 digits; +1 is the North American plan (area and exchange codes start 2-9).
    if (d.startsWith('1')) return d.length === 11 && nanp(d.slice(1));
    return d.length >= 8 && d.length <= 15;
  }
  if (/^(?:1-)?\d{3}-\d{3}-\d{4}$|^\d{3}\.\d{3}\.\d{4}$|^\(\d{3}\) ?\d{3}[ .-]\d{4}$/.test(v)) return nanp(d.slice(-10));
  // National formats (`020 7946 0958`, `06 12 34 56 78`, bare digits): only named as a phone number.
  return d.length >= 9 && d.length <= 12 && namedBefore(text, start, PHONE_NAMED);
}
const phoneLength = (v: string, text: string, start: number): boolean | number => longestPrefix(v, (x) => isPhone(x, text, start));

// ---- IBAN: country, its fixed length, and the ISO 7064 mod-97 check

const IBAN_LENGTH: Record<string, number> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BI: 27, BR: 29, BY: 28, CH: 21, CR: 22, CY: 28, CZ: 24,
  DE: 22, DJ: 27, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FK: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27,
  GT: 28, HN: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20,
  LU: 20, LV: 21, LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MN: 20, MR: 27, MT: 31, MU: 30, NI: 28, NL: 18, NO: 15, OM: 23, PK: 24,
  PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, RU: 33, SA: 24, SC: 31, SD: 18, SE: 24, SI: 19, SK: 24, SM: 27, SO: 23, ST: 25,
  SV: 28, TL: 23, TN: 24, TR: 26, UA: 29, VA: 22, VG: 24, XK: 20, YE: 30,
};

export function isIban(raw: string): boolean {
  const v = raw.replace(/ /g, '');
  if (IBAN_LENGTH[v.slice(0, 2)] !== v.length) return false;
  let rem = 0;
  for (const ch of v.slice(4) + v.slice(0, 4)) {
    const c = ch.charCodeAt(0);
    rem = c <= 57 ? (rem * 10 + c - 48) % 97 : (rem * 100 + c - 55) % 97;
  }
  return rem === 1;
}
/** The IBAN at the start of `raw` (which may run into a following group): its country fixes the length. */
function ibanLength(raw: string): boolean | number {
  const want = IBAN_LENGTH[raw.slice(0, 2)];
  if (want === undefined) return false;
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === ' ') continue;
    if (++n === want) return (i + 1 === raw.length || raw[i + 1] === ' ') && isIban(raw.slice(0, i + 1)) ? (i + 1 === raw.length ? true : i + 1) : false;
  }
  return false;
}

// ---- a bare AWS secret access key: 40 base64 characters, mixed case and a digit or symbol,
// named by its context (an access key id or the words aws / secret access key nearby); 40 hex
// characters (SHA-1) never qualify.
// The name may be followed by a few plain words ("AWS secret access key for prod: ...").
const AWS_NAMED = /(?:(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}|(?<![A-Za-z])(?:aws|amazon)|secret[ _-]?access[ _-]?key|secret[ _-]?key)(?:[\s,;:=|"'()]{1,4}[A-Za-z]{0,12}){0,4}[\s,;:=|"'()]{1,4}$/i;
function isAwsSecret(v: string, text: string, start: number): boolean {
  if (!/[A-Z]/.test(v) || !/[a-z]/.test(v) || !/[0-9/+]/.test(v) || /^[0-9a-fA-F]+$/.test(v)) return false;
  return namedBefore(text, start, AWS_NAMED);
}

// ---- secrets in prose: "my password is hunter2", "the API key was sk-…", "password set to X".
// The value must not be an ordinary word of such a sentence ("the password is incorrect").
const PROSE_KEYS = ['password', 'passwd', 'passphrase', 'pwd', 'passcode', 'secret', 'api key', 'api_key', 'apikey', 'token',
  'access key', 'secret key', 'pin code', 'pin'];
/** Each word as `word`, `Word` or `WORD` (prose is written so; cheaper than per-letter classes). */
function cased(phrase: string): string {
  return phrase.split(' ').map((w) => `(?:[${w[0]}${w[0]!.toUpperCase()}]${w.slice(1)}|${w.toUpperCase()})`).join(' ');
}
const PROSE_KEYWORDS = `(?:${PROSE_KEYS.sort((a, b) => b.length - a.length).map(cased).join('|')})`;
const PROSE_VERB = `(?: {1,3}(?:${cased('for')}|${cased('of')}) {1,3}[^\\s"'\\[\\]]{1,64})? {1,3}(?:(?:${cased('is')}|${cased('was')})(?: {1,3}(?:${cased('now')}|${cased('still')}|${cased('set to')}|${cased('changed to')}))?|(?:${cased('set')}|${cased('changed')}|${cased('reset')}|${cased('updated')}) {1,3}${cased('to')}):? {1,3}["'\u201c\u2018]?`;
const PROSE_STOP = new Set(('a an the not no none null nil too very also never always only still now just being been be set unset '
  + 'incorrect correct invalid valid wrong right required missing empty blank expired weak strong short long reset changed '
  + 'updated case sensitive same different ok fine good bad present absent undefined hidden masked redacted configured unknown '
  + 'locked due about going at in of for to on by from with used accepted rejected ignored stale sent generated created deleted '
  + 'removed provided given saved verified checked matched mismatched active inactive disabled enabled available unavailable '
  + 'supplied specified defined known secure insecure safe unsafe compromised leaked exposed visible true false yes expected '
  + 'needed mandatory optional stored hashed encrypted rotated revoked this that it there here what which who your my our their '
  + 'his her its new old default temporary').split(' '));
function proseSecretLength(v: string): boolean | number {
  const trimmed = v.replace(/["'\u201d\u2019.,!?;:)]{1,8}$/, '');
  if (trimmed.length < 4) return false;
  const w = trimmed.toLowerCase();
  if (/^[a-z-]+$/.test(w) && (PROSE_STOP.has(w) || /(?:ed|ing|ly|ble|ful|ous|ive|less|ion|ent|ant)$/.test(w))) return false;
  return trimmed.length === v.length ? true : trimmed.length;
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

/**
 * Letters of other scripts (Latin-1 and Latin Extended, Greek, Cyrillic, Armenian, Hebrew, Arabic,
 * Indic and South-East Asian scripts, Hangul, kana, CJK), as class ranges: the combined regex runs
 * without the `u` flag.
 */
const UL = '\\u00c0-\\u00d6\\u00d8-\\u00f6\\u00f8-\\u02af\\u0370-\\u03ff\\u0400-\\u052f\\u0531-\\u0587\\u05d0-\\u05ea\\u0620-\\u064a\\u0660-\\u06d3\\u0900-\\u0e7f\\u1100-\\u11ff\\u1e00-\\u1fff\\u3040-\\u30ff\\u3400-\\u4dbf\\u4e00-\\u9fff\\uac00-\\ud7a3\\uf900-\\ufaff';
/** Digit-led ids start after a separator (not inside a number, version, path or id) and end before one. */
/** The shared lead of the rules that start with two digits (cards and most national ids). */
const TWO_DIGITS = '(?=\\d\\d)(?<![\\w.+/-])';
const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
/**
 * The start of a placeholder or pseudonym the scrubber writes. Rules that end with "not followed by
 * a word character" also refuse to end right before one: the secret that stood there before the
 * first pass kept them from matching, and the second pass must agree (idempotence).
 */
export const OUTPUT_HEAD = '\\[(?:REDACTED:|[a-z0-9_]{1,40}:[0-9a-f]{12}\\])|<[a-z]{1,8}[:>]';
const DIGITS_END = `(?![\\w-]|\\.\\d|${OUTPUT_HEAD})`;
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
  { id: 'prose_secret', refine: true, family: 'kv_secret', keep: `${PROSE_KEYWORDS}${PROSE_VERB}`, value: KV_VALUE, validate: proseSecretLength },
  // `curl -u user:password` / `--user user:password` in logged command lines.
  { id: 'cli_password', refine: true, family: 'kv_secret', keep: `(?:-u|--user)(?: {1,3}|=)[^\\s:'"\\[\\]/\\\\]{1,64}:`, value: KV_VALUE },
  // Azure SAS / presigned URL signatures: `sig=` only as a query parameter.
  { id: 'url_signature', refine: true, family: 'url_secret', keep: `(?<=[?&])(?:sig|signature|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|X-Goog-Signature|X-Goog-Credential)=`, value: `[^\\s&#"'\\[\\]]{8,1024}` },

  { id: 'email', family: 'email',
    // Internationalised addresses (RFC 6531: letters of any script in the local part and the
    // domain), quoted local parts (`"john doe"@example.com`) and IDN/punycode top-level domains.
    value: `(?<![A-Za-z0-9._%+${UL}-])(?:[A-Za-z0-9._%+${UL}-]{1,64}|"[^"\\\\\\r\\n\\[\\]]{1,64}")@[A-Za-z0-9${UL}](?:[A-Za-z0-9${UL}-]{0,62}[A-Za-z0-9${UL}])?(?:\\.[A-Za-z0-9${UL}-]{1,63}){0,8}\\.(?:[A-Za-z]{2,24}|[${UL}]{2,24}|xn--[a-z0-9]{2,59})(?![A-Za-z0-9${UL}-]|${OUTPUT_HEAD})`,
    // ssh-style git remotes (git@github.com:org/repo) name a service account, not a person.
    validate: (v) => !/^git@/.test(v) },
  { id: 'card', family: 'card', lead: TWO_DIGITS, value: `[2-6]\\d(?:[ .-]?\\d){11,17}(?![\\w-]|\\.\\d|${OUTPUT_HEAD})`, validate: cardLength },
  // National ids: the document's format, its check digit where it has one, context where the bare shape is ambiguous.
  { id: 'us_ssn', family: 'national_id', lead: TWO_DIGITS, value: `\\d{3}(?:-\\d{2}-| \\d{2} |\\d{2})\\d{4}${DIGITS_END}`, validate: isUsSsn },
  { id: 'ca_sin', family: 'national_id', lead: TWO_DIGITS, value: `[0-79]\\d{2}(?:-\\d{3}-| \\d{3} )\\d{3}${DIGITS_END}`, validate: isCaSin },
  { id: 'br_cpf', family: 'national_id', lead: TWO_DIGITS, value: `\\d{3}\\.\\d{3}\\.\\d{3}-\\d{2}${DIGITS_END}`, validate: isBrCpf },
  { id: 'in_aadhaar', family: 'national_id', lead: TWO_DIGITS, value: `[2-9]\\d{3}(?: \\d{4} |-\\d{4}-)\\d{4}${DIGITS_END}`, validate: isAadhaar },
  { id: 'iban', family: 'iban', value: `[A-Z]{2}\\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)(?![A-Za-z0-9]|${OUTPUT_HEAD})`, validate: ibanLength },
  { id: 'es_dni', family: 'national_id', value: `(?=[\\dXYZ])(?<![\\w.+/-])(?:\\d{8}|[XYZ]-?\\d{7})-?[A-HJ-NP-TV-Z](?![A-Za-z0-9]|${OUTPUT_HEAD})`, validate: isEsDni },
  { id: 'uk_nino', family: 'national_id', value: `[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z](?<!BG|GB|KN|NK|NT|TN|ZZ)(?: ?\\d{2}){3} ?[A-D](?![A-Za-z0-9]|${OUTPUT_HEAD})`, validate: isUkNino },
  // Phone numbers: +E.164 (grouped or not), North American formats, national formats after "phone"/"tel"/....
  { id: 'phone', family: 'phone',
    value: `(?:(?<![\\w+])\\+[1-9](?:\\d{6,14}|\\d{0,3}(?:[ .-]?\\(\\d{1,5}\\)\\d{0,5}|[ .-]\\d{1,8}){1,7})|(?=[\\d(])(?<![\\w.+/(-])(?:\\(\\d{3}\\) ?\\d{3}[ .-]\\d{4}|(?:1-)?\\d{3}-\\d{3}-\\d{4}|\\d{3}\\.\\d{3}\\.\\d{4}|0\\d{1,4}(?:[ .-]\\d{2,4}){1,4}|0\\d{8,11}|[2-9]\\d{9}))${DIGITS_END}`,
    validate: phoneLength },
  { id: 'aws_secret_key', family: 'token', value: `(?=[A-Za-z0-9/+])(?<![A-Za-z0-9/+=_-])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=_-]|${OUTPUT_HEAD})`, validate: isAwsSecret },
  { id: 'ipv4', family: 'ip', value: `(?<![\\w.])${OCTET}(?:\\.${OCTET}){3}(?![\\w-]|\\.[\\w-]|${OUTPUT_HEAD})`, validate: (v) => !NOT_A_HOST_V4.test(v) },
  { id: 'ipv6', family: 'ip', value: `(?<![\\w:.])[0-9A-Fa-f]{0,4}::?[0-9A-Fa-f:.]{1,44}(?:%[0-9A-Za-z]{1,16})?(?![\\w:]|${OUTPUT_HEAD})`, validate: ipv6Length },

  // Home directories lose the user name: /home/alice/x -> /home/<user>/x (repo roots are per tenant).
  { id: 'home_path', family: 'path', angle: 'user', keep: `(?<![\\w.~-])(?:/home/|/Users/|[A-Za-z]:\\\\Users\\\\|~(?=[A-Za-z_][A-Za-z0-9._-]{0,63}[/\\\\]))`, value: `[A-Za-z0-9._-]{1,64}(?=[/\\\\\\s"':]|$)` },
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
