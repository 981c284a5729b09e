// Test HTTP server for the evidence routes: api/server.ts's router and auth guard, plus the two
// transport features the evidence routes need and api/server.ts does not have yet (docs/evidence.md
// "Server"): the raw request body (`rawBody`) on POST, and non-JSON responses written as-is.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { TokenRegistry } from '../../lib/tenancy.ts';
import { createRouter } from '../../api/server.ts';
import { apiError, type ApiResponse, type Router } from '../../api/router.ts';

export async function startHarness(tokens: TokenRegistry, register: ((r: Router) => void)[], maxBody = 64 * 1024 * 1024): Promise<{ url: string; close(): Promise<void> }> {
  const router = createRouter(tokens);
  for (const r of register) r(router);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const send = (r: ApiResponse) => {
      const ct = r.headers?.['content-type'];
      const raw = Buffer.isBuffer(r.body) || (typeof r.body === 'string' && ct !== undefined && !ct.startsWith('application/json'));
      res.writeHead(r.status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...r.headers });
      res.end(req.method === 'HEAD' ? undefined : raw ? (r.body as Buffer | string) : JSON.stringify(r.body));
    };
    const m = router.match(req.method ?? 'GET', url.pathname);
    if (!m) { req.resume(); return send(apiError(404, 'not_found', 'no such route')); }
    if (!('route' in m)) { req.resume(); return send(apiError(405, 'method_not_allowed', 'method not allowed')); }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => { size += c.length; if (size <= maxBody) chunks.push(c); });
    req.on('end', () => {
      if (size > maxBody) return send(apiError(413, 'too_large', 'request body too large'));
      Promise.resolve()
        .then(() => m.route.handler({ method: req.method ?? 'GET', path: url.pathname, params: m.params, query: url.searchParams,
          headers: req.headers, requestId: randomUUID(), rawBody: Buffer.concat(chunks) } as Parameters<typeof m.route.handler>[0]))
        .then(send, (err: unknown) => { console.error(err); send(apiError(500, 'internal', 'internal error')); });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
