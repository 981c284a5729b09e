// Real peers for the witness and trusted-time tests (and bench:evidence): a litewitness
// (filippo.io/torchwood, built by lib/go-peers.ts) with its key in a dedicated ssh-agent, and an
// RFC 3161 TSA made of Debian's `openssl ts -reply` behind a tiny HTTP server. Both on 127.0.0.1.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { goEnv, installGoTool } from '../../lib/go-peers.ts';
import { makeCosignatureVerifier } from '../../processors/evidence/witness.ts';

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: Buffer } = {}): Buffer {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, input: opts.input, timeout: 60_000 });
  if (r.error) throw new Error(`cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr?.toString()}`);
  return r.stdout;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const exited = (c: ChildProcess): Promise<void> => new Promise((resolve) => { if (c.exitCode !== null || c.signalCode !== null) resolve(); else c.once('exit', () => resolve()); });

// ---- litewitness --------------------------------------------------------------------------------

export interface RunningWitness {
  name: string;
  url: string;
  /** The witness's cosignature verifier key (type 0x04), computed from its public key. */
  vkey: string;
  /** SIGKILL the witness process (its database stays). */
  kill(): Promise<void>;
  /** Start it again on the same port and database. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A litewitness on 127.0.0.1 that knows the given logs (origin + checkpoint verifier key). */
export async function startLitewitness(name: string, logs: { origin: string; vkey: string }[]): Promise<RunningWitness> {
  const litewitness = installGoTool('litewitness');
  const witnessctl = installGoTool('witnessctl');
  // ssh-agent socket paths must stay short (sun_path is ~108 bytes).
  const dir = mkdtempSync(path.join('/tmp', 'lw-'));
  const db = path.join(dir, 'w.db');
  const sock = path.join(dir, 's');
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path.join(dir, 'key')]);
  const fingerprint = /SHA256:\S+/.exec(sh('ssh-keygen', ['-l', '-E', 'sha256', '-f', path.join(dir, 'key.pub')]).toString())![0];
  const blob = Buffer.from(readFileSync(path.join(dir, 'key.pub'), 'utf8').split(' ')[1]!, 'base64');
  // ssh wire format: string "ssh-ed25519", string key(32).
  const pub = blob.subarray(blob.length - 32);
  const vkey = makeCosignatureVerifier(name, pub).verifierKey;
  const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
  for (let i = 0; i < 100 && spawnSync('test', ['-S', sock]).status !== 0; i++) await new Promise((r) => setTimeout(r, 50));
  sh('ssh-add', [path.join(dir, 'key')], { env: { ...process.env, SSH_AUTH_SOCK: sock } });
  for (const l of logs) {
    sh(witnessctl, ['add-log', '-db', db, '-origin', l.origin], { env: goEnv() });
    sh(witnessctl, ['add-key', '-db', db, '-origin', l.origin, '-key', l.vkey], { env: goEnv() });
  }
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = spawn(litewitness, ['-name', name, '-db', db, '-ssh-agent', sock, '-key', fingerprint, '-listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'], env: goEnv() });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-4000); });
    const c = child;
    await Promise.race([waitForPort(port), exited(c).then(() => { throw new Error(`litewitness exited: ${err}`); })]);
  };
  await start();
  const kill = async (): Promise<void> => { if (child) { child.kill('SIGKILL'); await exited(child); child = undefined; } };
  return {
    name, url: `http://127.0.0.1:${port}`, vkey, kill, start,
    stop: async () => {
      await kill();
      agent.kill('SIGTERM');
      await exited(agent);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- an RFC 3161 TSA from `openssl ts` ---------------------------------------------------------

export interface RunningTsa {
  url: string;
  /** PEM of the TSA's signing certificate and of the CA that issued it. */
  tsaCertPem: string;
  caCertPem: string;
  dir: string;
  /** Simulate an outage (503) or end it. */
  setDown(down: boolean): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A local TSA: its own CA and a TSA certificate with the critical timeStamping EKU, answering over
 * HTTP from a child process (tsa-server.ts) that runs `openssl ts -reply` per request.
 */
export async function startOpensslTsa(label = 'Test TSA'): Promise<RunningTsa> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stella-tsa-'));
  const o = (...args: string[]): Buffer => sh('openssl', args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  o('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', `/CN=${label} CA`,
    '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  o('req', ...ec, '-keyout', 'tsa.key', '-out', 'tsa.csr', '-subj', `/CN=${label}`);
  writeFileSync(path.join(dir, 'tsa.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\nsubjectKeyIdentifier=hash\n');
  o('x509', '-req', '-in', 'tsa.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'tsa.crt', '-days', '365', '-extfile', 'tsa.ext');
  writeFileSync(path.join(dir, 'serial'), '01\n');
  writeFileSync(path.join(dir, 'tsa.cnf'), [
    '[ tsa ]', 'default_tsa = tsa_config', '', '[ tsa_config ]', `dir = ${dir}`, 'serial = $dir/serial', 'crypto_device = builtin',
    'signer_cert = $dir/tsa.crt', 'certs = $dir/tsa.crt', 'signer_key = $dir/tsa.key', 'signer_digest = sha256', 'default_policy = 1.3.6.1.4.1.55555.1',
    'digests = sha256, sha384, sha512', 'accuracy = secs:1', 'ordering = yes', 'tsa_name = yes', 'ess_cert_id_chain = no', 'ess_cert_id_alg = sha256', '',
  ].join('\n'));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST')));
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'tsa-server.ts'), dir], { stdio: ['ignore', 'pipe', 'inherit'], env });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => { buf += d.toString(); const m = /port (\d+)\n/.exec(buf); if (m) resolve(Number(m[1])); });
    child.once('exit', (code) => reject(new Error(`tsa-server exited ${code}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    url: `${base}/tsa`, dir,
    tsaCertPem: readFileSync(path.join(dir, 'tsa.crt'), 'utf8'), caCertPem: readFileSync(path.join(dir, 'ca.crt'), 'utf8'),
    setDown: async (down) => { await (await fetch(`${base}/control/${down ? 'down' : 'up'}`, { method: 'POST' })).text(); },
    stop: async () => { child.kill('SIGTERM'); await exited(child); rmSync(dir, { recursive: true, force: true }); },
  };
}

/** `openssl ts -verify` of a token over data, with the TSA's CA as the trust anchor: [ok, output]. */
export function opensslVerifyToken(tsa: RunningTsa, token: Uint8Array, data: Uint8Array): [boolean, string] {
  const d = mkdtempSync(path.join(os.tmpdir(), 'stella-tsv-'));
  try {
    writeFileSync(path.join(d, 't.tst'), token);
    writeFileSync(path.join(d, 'data'), data);
    writeFileSync(path.join(d, 'ca.crt'), tsa.caCertPem);
    const r = spawnSync('openssl', ['ts', '-verify', '-data', 'data', '-in', 't.tst', '-token_in', '-CAfile', 'ca.crt'], { cwd: d, encoding: 'utf8' });
    return [r.status === 0 && /Verification: OK/.test(r.stdout), `${r.stdout}${r.stderr}`];
  } finally { rmSync(d, { recursive: true, force: true }); }
}
