// How the project's Kafka clients authenticate: SASL (SCRAM-SHA-512/256, or PLAIN over TLS) and
// TLS (CA, client certificate). Parsed once at startup from KAFKA_* / kafka.* (lib/config.ts);
// createKafka (./client.ts) turns a KafkaAccess into kafkajs options. Passwords are held in a
// Secret, which prints as [redacted] in logs, JSON and util.inspect.
import { accessSync, constants, readFileSync } from 'node:fs';
import { inspect } from 'node:util';

export class Secret {
  readonly #value: string;
  constructor(value: string) { this.#value = value; }
  reveal(): string { return this.#value; }
  toString(): string { return '[redacted]'; }
  toJSON(): string { return '[redacted]'; }
  [inspect.custom](): string { return 'Secret([redacted])'; }
}

export const SASL_MECHANISMS = ['scram-sha-512', 'scram-sha-256', 'plain'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

export interface KafkaSasl { mechanism: SaslMechanism; username: string; password: Secret }
/** TLS to the brokers. No files: the system's CAs, no client certificate. */
export interface KafkaTls { caFile: string | null; certFile: string | null; keyFile: string | null }

/** Where Kafka is and who we are to it: what every project client is built from. */
export interface KafkaAccess { brokers: string[]; sasl: KafkaSasl | null; tls: KafkaTls | null }

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);
const TRUE = ['true', '1', 'yes', 'on'];
const FALSE = ['false', '0', 'no', 'off'];

function readable(file: string, what: string, problems: string[]): void {
  try { accessSync(file, constants.R_OK); } catch { problems.push(`${what}: cannot read ${file}`); }
}

/** KAFKA_SASL_* / kafka.sasl.* and KAFKA_TLS* / kafka.tls.*; the environment wins. A password comes from
 * KAFKA_SASL_PASSWORD or a file (KAFKA_SASL_PASSWORD_FILE / kafka.sasl.passwordFile), never from the config
 * file itself. Problems name the setting, never a password. */
export function parseKafkaSecurity(k: Obj, env: NodeJS.ProcessEnv, external: boolean): { sasl: KafkaSasl | null; tls: KafkaTls | null; problems: string[] } {
  const problems: string[] = [];
  const s = isObj(k.sasl) ? k.sasl : {};
  if (k.sasl !== undefined && !isObj(k.sasl)) problems.push('kafka.sasl must be a mapping (mechanism, username, passwordFile)');
  if (s.password !== undefined) problems.push('kafka.sasl.password: passwords do not go in the config file; set KAFKA_SASL_PASSWORD or kafka.sasl.passwordFile');
  const t = isObj(k.tls) ? k.tls : {};
  if (k.tls !== undefined && !isObj(k.tls) && typeof k.tls !== 'boolean') problems.push('kafka.tls must be a mapping (enabled, caFile, certFile, keyFile)');
  const str = (envKey: string, v: unknown, name: string): string | null => {
    const raw = env[envKey] ?? v;
    if (raw === undefined || raw === '') return null;
    if (typeof raw !== 'string') { problems.push(`${envKey} / ${name} must be a string`); return null; }
    return raw;
  };

  let sasl: KafkaSasl | null = null;
  const mechRaw = str('KAFKA_SASL_MECHANISM', s.mechanism, 'kafka.sasl.mechanism');
  const username = str('KAFKA_SASL_USERNAME', s.username, 'kafka.sasl.username');
  const passwordFile = str('KAFKA_SASL_PASSWORD_FILE', s.passwordFile, 'kafka.sasl.passwordFile');
  const passwordEnv = env.KAFKA_SASL_PASSWORD;
  if (mechRaw !== null) {
    const mechanism = mechRaw.toLowerCase() as SaslMechanism;
    if (!SASL_MECHANISMS.includes(mechanism)) problems.push(`KAFKA_SASL_MECHANISM / kafka.sasl.mechanism must be one of ${SASL_MECHANISMS.join(', ')} (got ${JSON.stringify(mechRaw)})`);
    if (!username) problems.push('KAFKA_SASL_USERNAME / kafka.sasl.username is required with a SASL mechanism');
    let password: string | null = null;
    if (passwordEnv !== undefined && passwordEnv !== '' && passwordFile) problems.push('set KAFKA_SASL_PASSWORD or a password file (KAFKA_SASL_PASSWORD_FILE / kafka.sasl.passwordFile), not both');
    else if (passwordEnv !== undefined && passwordEnv !== '') password = passwordEnv;
    else if (passwordFile) {
      try { password = readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, ''); } catch { problems.push(`KAFKA_SASL_PASSWORD_FILE / kafka.sasl.passwordFile: cannot read ${passwordFile}`); }
      if (password === '') { problems.push(`KAFKA_SASL_PASSWORD_FILE / kafka.sasl.passwordFile: ${passwordFile} is empty`); password = null; }
    } else problems.push('a SASL password is required: KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE / kafka.sasl.passwordFile');
    if (SASL_MECHANISMS.includes(mechanism) && username && password !== null) sasl = { mechanism, username, password: new Secret(password) };
  } else if (username || passwordFile || (passwordEnv !== undefined && passwordEnv !== '')) {
    problems.push('KAFKA_SASL_MECHANISM / kafka.sasl.mechanism is required when a SASL username or password is set (scram-sha-512, scram-sha-256 or plain)');
  }

  const caFile = str('KAFKA_TLS_CA_FILE', t.caFile, 'kafka.tls.caFile');
  const certFile = str('KAFKA_TLS_CERT_FILE', t.certFile, 'kafka.tls.certFile');
  const keyFile = str('KAFKA_TLS_KEY_FILE', t.keyFile, 'kafka.tls.keyFile');
  const enabledRaw = env.KAFKA_TLS ?? (typeof k.tls === 'boolean' ? k.tls : t.enabled);
  let enabled: boolean | undefined;
  if (enabledRaw !== undefined && enabledRaw !== '') {
    const v = String(enabledRaw).toLowerCase();
    if (TRUE.includes(v)) enabled = true;
    else if (FALSE.includes(v)) enabled = false;
    else problems.push(`KAFKA_TLS / kafka.tls.enabled must be true or false (got ${JSON.stringify(enabledRaw)})`);
  }
  const anyFile = !!(caFile || certFile || keyFile);
  if (enabled === false && anyFile) problems.push('KAFKA_TLS / kafka.tls.enabled is false but TLS files are set');
  if (!!certFile !== !!keyFile) problems.push('KAFKA_TLS_CERT_FILE / kafka.tls.certFile and KAFKA_TLS_KEY_FILE / kafka.tls.keyFile go together (a client certificate and its key)');
  if (caFile) readable(caFile, 'KAFKA_TLS_CA_FILE / kafka.tls.caFile', problems);
  if (certFile) readable(certFile, 'KAFKA_TLS_CERT_FILE / kafka.tls.certFile', problems);
  if (keyFile) readable(keyFile, 'KAFKA_TLS_KEY_FILE / kafka.tls.keyFile', problems);
  const tls: KafkaTls | null = enabled === true || (enabled === undefined && anyFile) ? { caFile, certFile, keyFile } : null;

  if (sasl?.mechanism === 'plain' && !tls) problems.push('KAFKA_SASL_MECHANISM plain sends the password in clear text: enable TLS (KAFKA_TLS=true / kafka.tls) or use scram-sha-512');
  if ((sasl || tls || mechRaw !== null) && !external) {
    problems.push('KAFKA_SASL_* / KAFKA_TLS* apply to an external cluster (KAFKA_BROKERS / kafka.brokers); the local broker generates its own credentials under dataDir/kafka');
  }
  return { sasl, tls, problems };
}

/** An external cluster from KAFKA_BROKERS and KAFKA_SASL_* / KAFKA_TLS* alone (benchmarks, scripts). */
export function accessFromEnv(env: NodeJS.ProcessEnv = process.env): KafkaAccess {
  const brokers = (env.KAFKA_BROKERS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (brokers.length === 0) throw new Error('KAFKA_BROKERS is not set');
  const { sasl, tls, problems } = parseKafkaSecurity({}, env, true);
  if (problems.length) throw new Error(`invalid Kafka settings:\n  - ${problems.join('\n  - ')}`);
  return { brokers, sasl, tls };
}

/** The environment that makes a child process (e.g. `stella run --only receiver`) reach Kafka as `a`. */
export function accessEnv(a: KafkaAccess): Record<string, string> {
  return {
    KAFKA_BROKERS: a.brokers.join(','),
    ...(a.sasl ? { KAFKA_SASL_MECHANISM: a.sasl.mechanism, KAFKA_SASL_USERNAME: a.sasl.username, KAFKA_SASL_PASSWORD: a.sasl.password.reveal() } : {}),
    ...(a.tls ? { KAFKA_TLS: 'true', ...(a.tls.caFile ? { KAFKA_TLS_CA_FILE: a.tls.caFile } : {}),
      ...(a.tls.certFile ? { KAFKA_TLS_CERT_FILE: a.tls.certFile } : {}), ...(a.tls.keyFile ? { KAFKA_TLS_KEY_FILE: a.tls.keyFile } : {}) } : {}),
  };
}
