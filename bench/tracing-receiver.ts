// Child process of bench:ingest's self-tracing phase: a receiver (as `stella run --only receiver`
// wires it, with tracing to itself under the system tenant) whose tracing the parent switches on
// and off over IPC, so "off" and "on" are measured in one process with the same JIT state and
// connections. Messages {tracing: boolean}, {flush: true} (export what is queued), {stop: true};
// each answered with {ok: true}. It sends {ready, grpcPort} first.
import { randomBytes } from 'node:crypto';
import { buildConfig } from '../lib/config.ts';
import { sha256Hex } from '../lib/tenancy.ts';
import { flushTracing, startTracing, stopTracing } from '../lib/tracing.ts';
import { startReceiver } from '../receiver/index.ts';

const [brokers, token, ratio] = process.argv.slice(2) as [string, string, string];
const selfToken = `stella_self_${randomBytes(24).toString('base64url')}`;
const cfg = buildConfig({
  receiver: { grpcPort: 0, httpPort: 0, maxInflightBytes: 64 * 1024 * 1024 },
  tenants: [
    { id: 'acme', tokens: [{ sha256: sha256Hex(token), scopes: ['otlp:write'] }] },
    { id: 'stella-system', tokens: [{ sha256: sha256Hex(selfToken), scopes: ['otlp:write'] }] },
  ],
  tracing: { enabled: true, sampleRatio: Number(ratio) },
}, { ...process.env, KAFKA_BROKERS: brokers, STELLA_LOG_LEVEL: 'warn' }); // KAFKA_SASL_* from the parent's environment
const receiver = await startReceiver(cfg, [brokers]);
// BENCH_TRACING_CONTROL=1: "on" rounds stay off (a check of the method: the ratio should be ~1).
const control = process.env.BENCH_TRACING_CONTROL === '1';
const target = { url: `http://127.0.0.1:${receiver.httpPort}/v1/traces`, headers: { Authorization: `Bearer ${selfToken}` } };

process.on('message', (m: { tracing?: boolean; flush?: boolean; stop?: boolean }) => {
  void (async () => {
    if (m.stop) {
      await stopTracing();
      await receiver.close();
      process.exit(0);
    }
    if (m.flush) await flushTracing();
    else if (m.tracing) { if (!control) await startTracing(cfg.tracing, target); }
    else await stopTracing();
    process.send!({ ok: true });
  })();
});
process.send!({ ready: true, grpcPort: receiver.grpcPort });
