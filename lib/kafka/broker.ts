// A real single-node Apache Kafka broker (KRaft, combined broker+controller) on loopback,
// fetched from Maven Central with `mvn` into a git-ignored cache and run with a bounded heap.
// Used by the test setup and by `npm start` when KAFKA_BROKERS is not configured.
//
// Nobody reaches it unauthenticated: clients speak SASL/SCRAM-SHA-512 (one user per pipeline part,
// ./acls.ts), the StandardAuthorizer denies what no ACL allows, and `admin` is the only super user.
// The users' passwords are generated once into <dataDir>/credentials.json (mode 0600) and their SCRAM
// credentials written into the metadata log when the storage is formatted (KIP-900). The controller
// listener speaks SASL/PLAIN with `admin` only: KRaft cannot check SCRAM there (the credentials live
// in the metadata it serves).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, readdirSync, closeSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { projectRoot } from '../paths.ts';
import { Secret, type KafkaAccess, type KafkaSasl } from './auth.ts';
import { createKafka } from './client.ts';
import { PIPELINE_USERS, SUPER_USER } from './acls.ts';

export const KAFKA_VERSION = process.env.STELLA_KAFKA_VERSION ?? '3.9.1';
export const kafkaCacheDir = (version = KAFKA_VERSION) =>
  path.join(process.env.STELLA_CACHE_DIR ?? path.join(projectRoot, '.cache'), 'kafka', version);

// The broker's runtime classpath: kafka_2.13 and its runtime dependencies, plus reload4j so the
// broker's own log4j configuration works (Kafka 3.x logs through log4j 1.x APIs).
function pomXml(version: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>stella-telemetry</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>${version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>${version}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
    <dependency><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId><version>1.2.25</version></dependency>
  </dependencies>
</project>
`;
}

/** Fetch the broker's jars once; later calls are a no-op (a marker file records completion). */
export function fetchKafka(version = KAFKA_VERSION, log: (m: string) => void = () => {}): string {
  const dir = kafkaCacheDir(version);
  const libs = path.join(dir, 'libs');
  const marker = path.join(dir, '.complete');
  if (existsSync(marker)) return libs;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'pom.xml'), pomXml(version));
  log(`fetching Apache Kafka ${version} from Maven Central into ${dir}`);
  const r = spawnSync('mvn', ['-q', '-B', '-f', path.join(dir, 'pom.xml'), 'dependency:copy-dependencies',
    `-DoutputDirectory=${libs}`, '-DincludeScope=runtime'], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run mvn to fetch Kafka: ${r.error.message} (is Maven installed?)`);
  if (r.status !== 0) throw new Error(`mvn failed to fetch Kafka ${version} (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  if (!readdirSync(libs).some((f) => f.startsWith('kafka_2.13-'))) throw new Error(`mvn ran but ${libs} holds no kafka jar`);
  writeFileSync(marker, new Date().toISOString() + '\n');
  return libs;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface BrokerOptions {
  /** Storage, config and logs live here; reusing it restarts the same broker with its data. */
  dataDir: string;
  heapMb?: number;
  /** Extra server.properties lines (key -> value). */
  overrides?: Record<string, string | number>;
  readyTimeoutMs?: number;
  log?: (m: string) => void;
  /** SCRAM users besides the pipeline's (./acls.ts PIPELINE_USERS), e.g. `collector-acme`. Only
   * users known when the storage is first formatted get credentials. */
  extraUsers?: string[];
  /** Run the broker in a process group of its own (`stella run`: a terminal's Ctrl-C reaches only stella, which stops it last). */
  ownProcessGroup?: boolean;
}

export interface RunningBroker {
  brokers: string;
  port: number;
  dataDir: string;
  pid: number | undefined;
  /** Users and their passwords (from <dataDir>/credentials.json). */
  credentials: BrokerCredentials;
  /** How `user` (default the super user) reaches this broker. */
  access(user?: string): KafkaAccess;
  stop(): Promise<void>;
}

export interface BrokerCredentials { mechanism: 'scram-sha-512'; users: Record<string, string> }

/** A user's SASL settings from the credentials; throws naming the user (never a password) if unknown. */
export function saslFor(creds: BrokerCredentials, user: string): KafkaSasl {
  const password = creds.users[user];
  if (password === undefined) throw new Error(`the local Kafka broker has no user "${user}" (its users: ${Object.keys(creds.users).join(', ')})`);
  return { mechanism: creds.mechanism, username: user, password: new Secret(password) };
}

const credentialsFile = (dataDir: string) => path.join(dataDir, 'credentials.json');

/** How `user` reaches the local broker `stella run` starts under `kafkaDir` (its identity.json and
 * credentials.json), for CLI commands that produce to it while the pipeline runs; undefined when
 * this data dir never had a local broker. Whether it is running shows on connect. */
export function localBrokerAccess(kafkaDir: string, user: string): KafkaAccess | undefined {
  const idFile = path.join(kafkaDir, 'identity.json');
  if (!existsSync(idFile) || !existsSync(credentialsFile(kafkaDir))) return undefined;
  const id = JSON.parse(readFileSync(idFile, 'utf8')) as Partial<BrokerIdentity>;
  if (!Number.isInteger(id.port)) throw new Error(`${idFile} has no port`);
  const creds = JSON.parse(readFileSync(credentialsFile(kafkaDir), 'utf8')) as BrokerCredentials;
  return { brokers: [`127.0.0.1:${id.port}`], sasl: saslFor(creds, user), tls: null };
}

/** Written once, mode 0600. Before the storage is formatted, users not in it yet are added (they go
 * into the format); after, the file is only read. */
function loadOrCreateCredentials(dataDir: string, users: string[], formatted: boolean): BrokerCredentials {
  const file = credentialsFile(dataDir);
  const creds: BrokerCredentials = existsSync(file)
    ? JSON.parse(readFileSync(file, 'utf8')) as BrokerCredentials
    : { mechanism: 'scram-sha-512', users: {} };
  const missing = users.filter((u) => creds.users[u] === undefined);
  if (!formatted && (missing.length || !existsSync(file))) {
    for (const u of missing) creds.users[u] = randomBytes(24).toString('base64url');
    writeFileSync(file, JSON.stringify(creds, null, 2) + '\n', { mode: 0o600 });
  }
  chmodSync(file, 0o600);
  return creds;
}

interface BrokerIdentity { clusterId: string; port: number; controllerPort: number }

/** A KRaft cluster id: 16 random bytes in URL-safe base64 without padding. One that starts with
 * '-' is drawn again: kafka-storage would read it as an option. */
export function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

async function identity(dataDir: string): Promise<BrokerIdentity> {
  const file = path.join(dataDir, 'identity.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as BrokerIdentity;
  const id: BrokerIdentity = {
    clusterId: newClusterId(),
    port: await freePort(),
    controllerPort: await freePort(),
  };
  writeFileSync(file, JSON.stringify(id));
  return id;
}

function serverProperties(dataDir: string, id: BrokerIdentity, adminPassword: string, overrides: Record<string, string | number>): string {
  const props: Record<string, string | number> = {
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@127.0.0.1:${id.controllerPort}`,
    listeners: `CLIENT://127.0.0.1:${id.port},CONTROLLER://127.0.0.1:${id.controllerPort}`,
    'advertised.listeners': `CLIENT://127.0.0.1:${id.port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'CLIENT',
    'listener.security.protocol.map': 'CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT',
    'sasl.enabled.mechanisms': 'SCRAM-SHA-512',
    'listener.name.client.sasl.enabled.mechanisms': 'SCRAM-SHA-512',
    'listener.name.controller.sasl.enabled.mechanisms': 'PLAIN',
    'sasl.mechanism.inter.broker.protocol': 'SCRAM-SHA-512',
    'sasl.mechanism.controller.protocol': 'PLAIN',
    'listener.name.client.scram-sha-512.sasl.jaas.config':
      `org.apache.kafka.common.security.scram.ScramLoginModule required username="${SUPER_USER}" password="${adminPassword}";`,
    'listener.name.controller.plain.sasl.jaas.config':
      `org.apache.kafka.common.security.plain.PlainLoginModule required username="${SUPER_USER}" password="${adminPassword}" user_${SUPER_USER}="${adminPassword}";`,
    'authorizer.class.name': 'org.apache.kafka.metadata.authorizer.StandardAuthorizer',
    'super.users': `User:${SUPER_USER}`,
    'allow.everyone.if.no.acl.found': 'false',
    'log.dirs': path.join(dataDir, 'logs'),
    'num.partitions': 3,
    'offsets.topic.replication.factor': 1,
    'offsets.topic.num.partitions': 10,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'group.initial.rebalance.delay.ms': 0,
    'auto.create.topics.enable': 'false',
    'message.max.bytes': 1048588,
    'log.retention.hours': 168,
    ...overrides,
  };
  return Object.entries(props).map(([k, v]) => `${k}=${v}`).join('\n') + '\n';
}

const log4jProperties = (logFile: string) => `log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${logFile}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
`;

/** Wait until the broker answers a metadata request on its client port (as `sasl`'s user, if given). */
export async function waitForBroker(brokers: string, timeoutMs: number, isAlive: () => boolean = () => true, sasl: KafkaSasl | null = null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (!isAlive()) throw new Error('Kafka broker process exited during startup');
    const admin = createKafka({ clientId: 'stella-broker-probe', brokers: [brokers], sasl, quiet: true,
      retries: 0, connectionTimeoutMs: 1000, requestTimeoutMs: 2000 }).admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      if (cluster.brokers.length > 0 && cluster.controller !== null && cluster.controller >= 0) {
        await admin.disconnect();
        return;
      }
    } catch (err) {
      lastError = err;
    }
    await admin.disconnect().catch(() => {});
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`Kafka at ${brokers} not ready after ${timeoutMs} ms: ${String(lastError)}`);
}

export async function startBroker(opts: BrokerOptions): Promise<RunningBroker> {
  const log = opts.log ?? (() => {});
  const libs = fetchKafka(KAFKA_VERSION, log);
  mkdirSync(opts.dataDir, { recursive: true });
  const id = await identity(opts.dataDir);
  const formatted = existsSync(path.join(opts.dataDir, 'logs', 'meta.properties'));
  if (formatted && !existsSync(credentialsFile(opts.dataDir))) {
    throw new Error(`the Kafka data in ${opts.dataDir} was created before the local broker required authentication, so it has no `
      + `SCRAM users; move ${opts.dataDir} away (it holds only the pipeline's topics) and start again to create a broker with credentials`);
  }
  const users = [...new Set([SUPER_USER, ...PIPELINE_USERS, ...(opts.extraUsers ?? [])])];
  const creds = loadOrCreateCredentials(opts.dataDir, users, formatted);
  // Users asked for after the format (e.g. a new Kafka-direct tenant): added once the broker runs.
  const missing = users.filter((u) => creds.users[u] === undefined);
  if (missing.includes(SUPER_USER)) throw new Error(`${credentialsFile(opts.dataDir)} has no "${SUPER_USER}" user; restore it or move ${opts.dataDir} away`);
  const adminSasl = saslFor(creds, SUPER_USER);
  const propsFile = path.join(opts.dataDir, 'server.properties');
  // Holds the super user's password (the broker's own JAAS login): owner-only.
  writeFileSync(propsFile, serverProperties(opts.dataDir, id, adminSasl.password.reveal(), opts.overrides ?? {}), { mode: 0o600 });
  chmodSync(propsFile, 0o600);
  const log4jFile = path.join(opts.dataDir, 'log4j.properties');
  writeFileSync(log4jFile, log4jProperties(path.join(opts.dataDir, 'server.log')));
  const classpath = path.join(libs, '*');
  const jvm = [`-Xmx${opts.heapMb ?? 512}m`, `-Xms${Math.min(opts.heapMb ?? 512, 256)}m`, '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20', '-Djava.awt.headless=true', `-Dlog4j.configuration=file:${log4jFile}`, '-cp', classpath];
  // Admin tools (kafka-configs) run with a small heap.
  const jvmBase = ['-Xmx128m', '-Djava.awt.headless=true', `-Dlog4j.configuration=file:${log4jFile}`, '-cp', classpath];

  if (!formatted) {
    // The SCRAM users go in with the format. Through a java @argfile (0600, removed after), so the
    // passwords never appear in a command line other users could read from the process list.
    const argFile = path.join(opts.dataDir, 'format.args');
    const scram = Object.entries(creds.users).flatMap(([u, pw]) => ['--add-scram', `SCRAM-SHA-512=[name=${u},password=${pw}]`]);
    writeFileSync(argFile, ['kafka.tools.StorageTool', 'format', '-t', id.clusterId, '-c', `"${propsFile}"`, ...scram].join('\n') + '\n', { mode: 0o600 });
    let r: ReturnType<typeof spawnSync>;
    try {
      r = spawnSync('java', [...jvm, `@${argFile}`], { encoding: 'utf8' });
    } finally {
      rmSync(argFile, { force: true });
    }
    if (r.status !== 0) throw new Error(`kafka storage format failed (exit ${r.status}): ${redact(String(r.stdout), creds)}\n${redact(String(r.stderr), creds)}`);
  }
  const out = openSync(path.join(opts.dataDir, 'stdout.log'), 'a');
  const child: ChildProcess = spawn('java', [...jvm, 'kafka.Kafka', propsFile], { stdio: ['ignore', out, out], detached: opts.ownProcessGroup === true });
  closeSync(out);
  let exited = false;
  child.on('exit', () => { exited = true; });
  const brokers = `127.0.0.1:${id.port}`;
  log(`starting Kafka ${KAFKA_VERSION} (pid ${child.pid}) on ${brokers}, data in ${opts.dataDir}`);
  try {
    await waitForBroker(brokers, opts.readyTimeoutMs ?? 90_000, () => !exited, adminSasl);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  try {
    for (const user of missing) {
      addScramUser(opts.dataDir, jvmBase, brokers, creds, user);
      log(`added SCRAM user ${user} to the local broker`);
    }
  } catch (err) {
    await stopChild(child, () => exited);
    throw err;
  }
  log(`Kafka ready on ${brokers} (SASL/SCRAM-SHA-512; credentials in ${credentialsFile(opts.dataDir)})`);
  return {
    brokers, port: id.port, dataDir: opts.dataDir, pid: child.pid, credentials: creds,
    access: (user = SUPER_USER) => ({ brokers: [brokers], sasl: saslFor(creds, user), tls: null }),
    stop: () => stopChild(child, () => exited),
  };
}

/** Add a SCRAM-SHA-512 user to the running broker as the super user (kafka-configs, KIP-554), then
 * record its password. The password and the admin login travel in 0600 files removed afterwards. */
function addScramUser(dataDir: string, jvm: string[], brokers: string, creds: BrokerCredentials, user: string): void {
  const password = randomBytes(24).toString('base64url');
  const adminProps = path.join(dataDir, 'admin-client.properties');
  const scramProps = path.join(dataDir, 'add-user.properties');
  writeFileSync(adminProps, ['security.protocol=SASL_PLAINTEXT', 'sasl.mechanism=SCRAM-SHA-512',
    `sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${SUPER_USER}" password="${creds.users[SUPER_USER]}";`].join('\n') + '\n', { mode: 0o600 });
  writeFileSync(scramProps, `SCRAM-SHA-512=password=${password}\n`, { mode: 0o600 });
  let r: ReturnType<typeof spawnSync>;
  try {
    r = spawnSync('java', [...jvm, 'kafka.admin.ConfigCommand', '--bootstrap-server', brokers, '--command-config', adminProps,
      '--alter', '--add-config-file', scramProps, '--entity-type', 'users', '--entity-name', user], { encoding: 'utf8' });
  } finally {
    rmSync(adminProps, { force: true });
    rmSync(scramProps, { force: true });
  }
  const all = { ...creds, users: { ...creds.users, [user]: password } };
  if (r.status !== 0) throw new Error(`could not add the SCRAM user ${user} to the local broker (exit ${r.status}): ${redact(`${r.stdout}\n${r.stderr}`, all).slice(-2000)}`);
  creds.users[user] = password;
  writeFileSync(credentialsFile(dataDir), JSON.stringify(creds, null, 2) + '\n', { mode: 0o600 });
}

/** Tool output never carries a password back into an error message or log. */
function redact(text: string, creds: BrokerCredentials): string {
  let out = text;
  for (const pw of Object.values(creds.users)) out = out.split(pw).join('[redacted]');
  return out;
}

// SIGTERM runs Kafka's controlled shutdown (flushes logs, writes a clean-shutdown marker);
// SIGKILL only if it takes too long.
async function stopChild(child: ChildProcess, isExited: () => boolean, graceMs = 20_000): Promise<void> {
  if (isExited()) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(timer);
}
