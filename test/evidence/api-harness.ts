// The real API server (api/server.ts) on a free port with the given route registrations: the
// evidence API and e2e tests run against exactly what `stella run` serves.
import type { TokenRegistry } from '../../lib/tenancy.ts';
import { startApiServer } from '../../api/server.ts';
import type { Router } from '../../api/router.ts';

export async function startHarness(tokens: TokenRegistry, register: ((r: Router) => void)[]): Promise<{ url: string; close(): Promise<void> }> {
  const api = await startApiServer({ tokens, port: 0, register });
  return { url: api.url, close: () => api.close() };
}
