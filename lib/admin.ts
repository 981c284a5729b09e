// The self-telemetry endpoints of a process: /metrics (Prometheus text), /healthz (alive), /readyz
// (every registered readiness check passes; 503 with the failing checks otherwise).
import http from 'node:http';
import { aggregateMetrics, registry, type MetricsSnapshot } from './metrics.ts';

export type ReadinessCheck = () => { ok: boolean; detail?: string };

export interface AdminServer {
  port: number;
  addCheck(name: string, check: ReadinessCheck): void;
  /** Other processes' metrics (receiver workers) to serve with this one's, aggregated. */
  addMetricsSource(source: () => Promise<MetricsSnapshot[]>): void;
  close(): Promise<void>;
}

export async function startAdminServer(host: string, port: number): Promise<AdminServer> {
  const checks = new Map<string, ReadinessCheck>();
  const sources: (() => Promise<MetricsSnapshot[]>)[] = [];
  const server = http.createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') {
        const text = sources.length === 0 ? await registry.metrics()
          : await aggregateMetrics([await registry.getMetricsAsJSON(), ...(await Promise.all(sources.map((s) => s()))).flat()]);
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
      } else if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"status":"ok"}');
      } else if (path === '/readyz') {
        const results = Object.fromEntries([...checks].map(([name, c]) => [name, c()]));
        const ok = Object.values(results).every((r) => r.ok);
        res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: ok ? 'ready' : 'not ready', checks: results }));
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"error":"not found; try /metrics, /healthz or /readyz"}');
      }
    })();
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, () => resolve()); });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : port,
    addCheck: (name, check) => { checks.set(name, check); },
    addMetricsSource: (source) => { sources.push(source); },
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}
