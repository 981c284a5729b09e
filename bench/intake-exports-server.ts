// The API side of bench/intake-exports.ts's route phase, in a process of its own so that the CPU
// it reports is the server's alone (the load generator, its HTTP client and the signing of the
// bodies run in the parent). Wired as `stella run` wires it (api/export-routes.ts exportRouteDeps:
// claims and bodies in the claim journal, the API's acks=all producer, the tenant's intake trust),
// logging at BENCH_SERVER_LOG_LEVEL (default `info`, the level `stella run` logs at: one audit line
// per request, written to stdout, which the parent points at /dev/null).
// Talks to the parent over IPC: sends { type: 'ready', url }, answers { type: 'cpu' } with this
// process's process.cpuUsage(), and { type: 'stop' } by closing and exiting (which writes the
// profile when the parent started it with --cpu-prof).
// Env: KAFKA_* (lib/kafka/auth.ts accessFromEnv), BENCH_DIR, BENCH_TENANT, BENCH_TOKEN, BENCH_KEYID,
// BENCH_PUBLIC_KEY (PEM), BENCH_TOPIC, BENCH_TIMELINE_TOPIC.
process.env.STELLA_LOG_LEVEL = process.env.BENCH_SERVER_LOG_LEVEL ?? 'info';
const { accessFromEnv } = await import('../lib/kafka/auth.ts');
const { createKafka } = await import('../lib/kafka/client.ts');
const { sha256Hex, TokenRegistry } = await import('../lib/tenancy.ts');
const { IntakeTrust } = await import('../lib/intake/trust.ts');
const { startApiServer } = await import('../api/server.ts');
const { registerExportRoutes, exportRouteDeps } = await import('../api/export-routes.ts');
const { openStore } = await import('../lib/store/index.ts');
const path = await import('node:path');

const env = (k: string): string => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const dir = env('BENCH_DIR');
const tenant = env('BENCH_TENANT');
const trust = new IntakeTrust({ [tenant]: { keys: [{ keyid: env('BENCH_KEYID'), publicKey: env('BENCH_PUBLIC_KEY') }] } });
const store = await openStore({ dataPath: path.join(dir, 'chdb') });
const kafka = createKafka({ ...accessFromEnv(), clientId: 'bench-exports-api', quiet: true });
const api = await startApiServer({
  tokens: new TokenRegistry([{ id: tenant, tokens: [{ sha256: sha256Hex(env('BENCH_TOKEN')), scopes: ['orchestrator:exports:write'] }] }]),
  port: 0, kafka,
  register: [(router, ctx) => registerExportRoutes(router, exportRouteDeps({ store, dataDir: dir, verify: trust.verifyIntakeEnvelope, producer: ctx.producer,
    topics: { orchestratorExports: env('BENCH_TOPIC'), timelineEvents: env('BENCH_TIMELINE_TOPIC') } }))],
});

// BENCH_SERVER_PROF=<dir>: a CPU profile of the measured part only ({ type: 'profile', on }), not of the start-up.
const inspector = await import('node:inspector');
const { writeFileSync } = await import('node:fs');
let session: InstanceType<typeof inspector.Session> | undefined;
const post = (method: string): Promise<unknown> => new Promise((resolve, reject) => session!.post(method, (err, r) => (err ? reject(err) : resolve(r))));

process.on('message', (m: { type: string; id?: number; on?: boolean; tag?: string }) => {
  if (m.type === 'cpu') process.send!({ type: 'cpu', id: m.id, usage: process.cpuUsage() });
  if (m.type === 'profile' && process.env.BENCH_SERVER_PROF) {
    void (async () => {
      if (m.on) { session = new inspector.Session(); session.connect(); await post('Profiler.enable'); await post('Profiler.start'); }
      else if (session) {
        const { profile } = await post('Profiler.stop') as { profile: unknown };
        writeFileSync(path.join(process.env.BENCH_SERVER_PROF!, `exports-server-${m.tag ?? 'x'}.cpuprofile`), JSON.stringify(profile));
        session.disconnect();
        session = undefined;
      }
      process.send!({ type: 'profiled', id: m.id });
    })();
  }
  if (m.type === 'stop') {
    void (async () => {
      await api.close();
      await store.close();
      process.exit(0);
    })();
  }
});
process.send!({ type: 'ready', url: api.url });
