// A tiny RFC 3161 TSA over HTTP for the tests and bench:evidence, run as its own process (so that
// `openssl ts -reply`, run once per request, never blocks the process under test):
//   node --import tsx test/evidence/tsa-server.ts <dir with tsa.cnf>     prints "port <n>" when listening
// POST /tsa: application/timestamp-query → application/timestamp-reply (503 while down).
// POST /control/down, /control/up: simulate an outage.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

const dir = process.argv[2]!;
let down = false;
// One reply at a time: `openssl ts -reply` increments the serial file.
let queue: Promise<unknown> = Promise.resolve();
const reply = (query: Buffer): Promise<Buffer> => new Promise((resolve, reject) => {
  const d = mkdtempSync(path.join(dir, 'q-'));
  writeFileSync(path.join(d, 'q.tsq'), query);
  execFile('openssl', ['ts', '-reply', '-config', path.join(dir, 'tsa.cnf'), '-queryfile', path.join(d, 'q.tsq'), '-out', path.join(d, 'r.tsr')], (err, _o, stderr) => {
    try {
      if (err) reject(new Error(`openssl ts -reply: ${stderr}`));
      else resolve(readFileSync(path.join(d, 'r.tsr')));
    } finally { rmSync(d, { recursive: true, force: true }); }
  });
});

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (req.url === '/control/down' || req.url === '/control/up') { down = req.url === '/control/down'; res.end('ok'); return; }
    if (down) { res.writeHead(503).end('down for the test'); return; }
    queue = queue.then(() => reply(Buffer.concat(chunks)).then(
      (out) => { res.writeHead(200, { 'content-type': 'application/timestamp-reply' }).end(out); },
      (e: unknown) => { res.writeHead(500).end(String(e)); },
    ));
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`port ${(server.address() as AddressInfo).port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
