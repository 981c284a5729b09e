// KAFKA_* / kafka.* settings for an external cluster (lib/kafka/auth.ts through lib/config.ts):
// SASL and TLS validated at startup with errors that name the setting, and a password that never
// shows in an error, a log line, JSON or util.inspect.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildConfig, ConfigError } from '../../lib/config.ts';
import { aclCommands, pipelineGrants } from '../../lib/kafka/acls.ts';
import { accessEnv, accessFromEnv } from '../../lib/kafka/auth.ts';
import { defaultTopicNames } from '../../lib/kafka/topics.ts';

const PASSWORD = 'hunter2-super-secret';
const dir = mkdtempSync(path.join(os.tmpdir(), 'kafka-config-'));
const file = (name: string, text: string) => { const p = path.join(dir, name); writeFileSync(p, text); return p; };
const problems = (f: () => unknown): string[] => {
  try { f(); } catch (err) { if (err instanceof ConfigError) return err.problems; throw err; }
  return [];
};

describe('SASL settings', () => {
  it('reads mechanism, username and a password from the environment, and never prints the password', () => {
    const cfg = buildConfig({}, { KAFKA_BROKERS: 'k1:9093', KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_SASL_USERNAME: 'stella', KAFKA_SASL_PASSWORD: PASSWORD });
    expect(cfg.kafka.sasl).toMatchObject({ mechanism: 'scram-sha-512', username: 'stella' });
    expect(cfg.kafka.sasl!.password.reveal()).toBe(PASSWORD);
    expect(JSON.stringify(cfg)).not.toContain(PASSWORD);
    expect(inspect(cfg, { depth: 10 })).not.toContain(PASSWORD);
    expect(String(cfg.kafka.sasl!.password)).toBe('[redacted]');
  });

  it('reads the password from a file (config key or env), trailing newline dropped', () => {
    const pw = file('pw', `${PASSWORD}\n`);
    expect(buildConfig({ kafka: { brokers: ['k1:9093'], sasl: { mechanism: 'scram-sha-256', username: 'u', passwordFile: pw } } }, {}).kafka.sasl!.password.reveal()).toBe(PASSWORD);
    expect(buildConfig({}, { KAFKA_BROKERS: 'k1:9093', KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD_FILE: pw }).kafka.sasl!.password.reveal()).toBe(PASSWORD);
  });

  it('refuses incomplete or unsafe settings with errors naming the setting, never the password', () => {
    const env = { KAFKA_BROKERS: 'k1:9093' };
    const all = [
      ...problems(() => buildConfig({}, { ...env, KAFKA_SASL_MECHANISM: 'gssapi', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: PASSWORD })),
      ...problems(() => buildConfig({}, { ...env, KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_PASSWORD: PASSWORD })),
      ...problems(() => buildConfig({}, { ...env, KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: PASSWORD })),
      ...problems(() => buildConfig({}, { ...env, KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: PASSWORD })),
      ...problems(() => buildConfig({ kafka: { brokers: 'k1:9093', sasl: { mechanism: 'scram-sha-512', username: 'u', password: PASSWORD } } }, {})),
      ...problems(() => buildConfig({}, { KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: PASSWORD })),
    ];
    expect(all.join('\n')).not.toContain(PASSWORD);
    expect(all).toEqual(expect.arrayContaining([
      expect.stringMatching(/KAFKA_SASL_MECHANISM \/ kafka\.sasl\.mechanism must be one of scram-sha-512, scram-sha-256, plain/),
      expect.stringMatching(/KAFKA_SASL_USERNAME \/ kafka\.sasl\.username is required/),
      expect.stringMatching(/KAFKA_SASL_MECHANISM \/ kafka\.sasl\.mechanism is required when a SASL username or password is set/),
      expect.stringMatching(/plain sends the password in clear text: enable TLS/),
      expect.stringMatching(/kafka\.sasl\.password: passwords do not go in the config file/),
      expect.stringMatching(/apply to an external cluster \(KAFKA_BROKERS/),
    ]));
    expect(problems(() => buildConfig({}, { ...env, KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'u' }))).toEqual([expect.stringMatching(/a SASL password is required/)]);
    expect(problems(() => buildConfig({}, { ...env, KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD_FILE: path.join(dir, 'missing') })))
      .toEqual([expect.stringMatching(/KAFKA_SASL_PASSWORD_FILE \/ kafka\.sasl\.passwordFile: cannot read .*missing/)]);
  });
});

describe('TLS settings', () => {
  it('takes a CA and a client certificate and key, and plain SASL over it', () => {
    const ca = file('ca.pem', '-----BEGIN CERTIFICATE-----\n');
    const cert = file('c.pem', '-----BEGIN CERTIFICATE-----\n');
    const key = file('k.pem', '-----BEGIN PRIVATE KEY-----\n');
    const cfg = buildConfig({}, { KAFKA_BROKERS: 'k1:9093', KAFKA_TLS_CA_FILE: ca, KAFKA_TLS_CERT_FILE: cert, KAFKA_TLS_KEY_FILE: key,
      KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: PASSWORD });
    expect(cfg.kafka.tls).toEqual({ caFile: ca, certFile: cert, keyFile: key });
    expect(buildConfig({ kafka: { brokers: 'k1:9093', tls: { enabled: true } } }, {}).kafka.tls).toEqual({ caFile: null, certFile: null, keyFile: null });
    expect(buildConfig({}, { KAFKA_BROKERS: 'k1:9093' }).kafka.tls).toBeNull();
  });

  it('refuses a certificate without its key, unreadable files, and a bad switch', () => {
    const cert = file('c2.pem', 'x');
    expect(problems(() => buildConfig({}, { KAFKA_BROKERS: 'k1:9093', KAFKA_TLS_CERT_FILE: cert }))).toEqual([expect.stringMatching(/go together/)]);
    expect(problems(() => buildConfig({}, { KAFKA_BROKERS: 'k1:9093', KAFKA_TLS_CA_FILE: path.join(dir, 'nope.pem') }))).toEqual([expect.stringMatching(/KAFKA_TLS_CA_FILE \/ kafka\.tls\.caFile: cannot read/)]);
    expect(problems(() => buildConfig({}, { KAFKA_BROKERS: 'k1:9093', KAFKA_TLS: 'maybe' }))).toEqual([expect.stringMatching(/KAFKA_TLS \/ kafka\.tls\.enabled must be true or false/)]);
  });
});

describe('Kafka-direct tenants and the ACL plan', () => {
  it('validates kafka.directTenants and grants each collector user only its own direct topics', () => {
    expect(buildConfig({}, { KAFKA_DIRECT_TENANTS: 'acme, globex' }).kafka.directTenants).toEqual(['acme', 'globex']);
    expect(problems(() => buildConfig({ kafka: { directTenants: ['Acme!'] } }, {}))).toEqual([expect.stringMatching(/kafka\.directTenants: "Acme!": tenant id must match/)]);
    const grants = pipelineGrants({ topics: defaultTopicNames, groupIdPrefix: 'stella-', directTenants: ['acme'] });
    expect(grants.filter((g) => g.user === 'collector-acme')).toEqual([
      ...['otlp_spans', 'otlp_metrics', 'otlp_logs'].map((t) => ({ user: 'collector-acme', resource: 'topic', name: `${t}.direct.acme`, operation: 'write' })),
      { user: 'collector-acme', resource: 'cluster', name: 'kafka-cluster', operation: 'idempotent_write' },
    ]);
    // Nobody but the receiver and the collectors writes a raw topic; nobody but scrub writes a clean one.
    const writers = (t: string) => grants.filter((g) => g.name === t && g.operation === 'write').map((g) => g.user);
    expect(writers('otlp_spans')).toEqual(['receiver']);
    expect(writers('otlp_spans_clean')).toEqual(['scrub']);
    expect(aclCommands({ topics: defaultTopicNames, groupIdPrefix: 'stella-', directTenants: [] })).toContain(
      'kafka-acls.sh --bootstrap-server <broker:port> --command-config admin.properties --add --allow-principal User:receiver --operation Write --topic otlp_spans');
  });

  it('round-trips an access through the environment a child process gets', () => {
    const a = accessFromEnv({ KAFKA_BROKERS: 'k1:9093,k2:9093', KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: PASSWORD });
    expect(accessEnv(a)).toEqual({ KAFKA_BROKERS: 'k1:9093,k2:9093', KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: PASSWORD });
    expect(() => accessFromEnv({ KAFKA_BROKERS: 'k1:9093', KAFKA_SASL_USERNAME: 'u' })).toThrow(/KAFKA_SASL_MECHANISM/);
  });
});
