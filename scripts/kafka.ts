// `npm run kafka:fetch` fetches the broker's jars into .cache/; `npm run kafka:start` runs a
// broker in the foreground (data under ./data/kafka) until Ctrl-C.
import path from 'node:path';
import { accessEnv } from '../lib/kafka/auth.ts';
import { fetchKafka, startBroker, KAFKA_VERSION } from '../lib/kafka/broker.ts';

const cmd = process.argv[2];
const say = (m: string) => process.stderr.write(`[kafka] ${m}\n`);
if (cmd === 'fetch') {
  const libs = fetchKafka(KAFKA_VERSION, say);
  say(`Kafka ${KAFKA_VERSION} ready in ${libs}`);
} else if (cmd === 'start') {
  const broker = await startBroker({ dataDir: path.resolve(process.env.STELLA_DATA_DIR ?? 'data', 'kafka'), log: say });
  // The super user's login for tools and tests (KAFKA_BROKERS=... npx vitest ...); the file holds every user's.
  for (const [k, v] of Object.entries(accessEnv(broker.access()))) process.stdout.write(`${k}=${v}\n`);
  say(`users and passwords: ${path.join(broker.dataDir, 'credentials.json')} (mode 0600)`);
  const stop = () => { void broker.stop().then(() => process.exit(0)); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
} else {
  process.stderr.write('usage: tsx scripts/kafka.ts fetch|start\n');
  process.exit(2);
}
