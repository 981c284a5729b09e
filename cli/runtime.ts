// `stella attest runtime` (sign runtime facts: a DSSE envelope over their digest, and optionally the
// air-gap manifest) and `stella ingest runtime` (offline intake: check the files against the
// manifest and the DSSE envelope against the tenant's trust config, then CAS + Kafka exactly as
// POST /api/v1/runtime-facts does). docs/intake.md "Runtime facts" describes both and the manifest.
import { createHash, createPrivateKey, sign } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { FsBlobStore } from '../lib/cas.ts';
import { loadConfig, type StellaConfig } from '../lib/config.ts';
import { GraphRegistry, registerGraph } from '../lib/intake/graphs.ts';
import { IntakeTrust } from '../lib/intake/trust.ts';
import { createKafka } from '../lib/kafka/client.ts';
import type { KafkaAccess } from '../lib/kafka/auth.ts';
import { BatchingProducer } from '../lib/kafka/producer.ts';
import { validateTenantId } from '../lib/tenancy.ts';
import { pae } from '../processors/evidence/dsse.ts';
import { IN_TOTO_PAYLOAD_TYPE, normalizeSha256, refuse, runtimeFactsStatement, type RuntimeRefusal } from '../processors/intake/runtime-facts.ts';
import { gunzipLimited, ingestRuntimeFacts, publishRuntimeRefusal } from '../processors/intake/runtime-ingest.ts';
import { SUPER_USER } from '../lib/kafka/acls.ts';
import { replayExitCode } from '../processors/intake/orphan-replay.ts';
import { replayOrphans } from '../processors/intake/orphan-replay-cli.ts';
import { cliKafkaAccess, flagString, outputFormat, render, UsageError, type Flags, type Io } from './commands.ts';

export const RUNTIME_MANIFEST_SCHEMA = 'stella.runtime-facts.manifest/v1';

/** The air-gap manifest: what was signed and shipped, with the hash of every file. */
export interface RuntimeManifest {
  schema: typeof RUNTIME_MANIFEST_SCHEMA;
  tenant: string;
  graph_hash: string;
  /** The runtime facts file as shipped (`file` relative to the manifest) and the sha256 of its NDJSON after gunzip. */
  runtime: { file: string; sha256: string; content_sha256: string };
  /** The DSSE envelope, when the facts are signed. */
  dsse?: { file: string; sha256: string };
}

const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const isGzip = (b: Buffer) => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;

function required(flags: Flags, name: string): string {
  const v = flagString(flags, name);
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}
function tenantOf(flags: Flags): string {
  const t = required(flags, 'tenant');
  const bad = validateTenantId(t);
  if (bad) throw new UsageError(`--tenant: ${bad}`);
  return t;
}
function graphOf(flags: Flags): string {
  const g = normalizeSha256(required(flags, 'graph-hash'));
  if (!g) throw new UsageError('--graph-hash must be sha256:<64 hex> (or 64 hex)');
  return g;
}
function readInput(file: string): Buffer {
  if (!existsSync(file)) throw new UsageError(`${file}: no such file`);
  return readFileSync(file);
}

/** stella attest runtime --runtime F --graph-hash G --tenant T --key K.pem --keyid ID [--bundle out.dsse.json] [--manifest out.json] */
export async function cmdAttestRuntime(flags: Flags, io: Io): Promise<number> {
  const tenant = tenantOf(flags);
  const graphHash = graphOf(flags);
  const runtimeFile = required(flags, 'runtime');
  const keyFile = required(flags, 'key');
  const keyid = required(flags, 'keyid');
  const shipped = readInput(runtimeFile);
  const ndjson = isGzip(shipped) ? zlib.gunzipSync(shipped) : shipped;
  let key;
  try { key = createPrivateKey(readInput(keyFile)); } catch { throw new UsageError(`--key ${keyFile}: not a PEM private key`); }
  if (key.asymmetricKeyType !== 'ed25519') throw new UsageError(`--key ${keyFile}: must be an Ed25519 private key`);
  const contentSha256 = `sha256:${hex(ndjson)}`;
  const payload = Buffer.from(JSON.stringify(runtimeFactsStatement(tenant, graphHash, contentSha256)));
  const envelope = { payload: payload.toString('base64'), payloadType: IN_TOTO_PAYLOAD_TYPE,
    signatures: [{ keyid, sig: sign(null, pae(IN_TOTO_PAYLOAD_TYPE, payload), key).toString('base64') }] };
  const envBytes = Buffer.from(JSON.stringify(envelope) + '\n');
  const bundle = flagString(flags, 'bundle');
  if (bundle) writeFileSync(bundle, envBytes);
  else io.stdout(envBytes.toString('utf8'));
  const manifestFile = flagString(flags, 'manifest');
  if (manifestFile) {
    const rel = (f: string) => path.relative(path.dirname(path.resolve(manifestFile)), path.resolve(f));
    const manifest: RuntimeManifest = { schema: RUNTIME_MANIFEST_SCHEMA, tenant, graph_hash: graphHash,
      runtime: { file: rel(runtimeFile), sha256: hex(shipped), content_sha256: hex(ndjson) },
      ...(bundle ? { dsse: { file: rel(bundle), sha256: hex(envBytes) } } : {}) };
    writeFileSync(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
  }
  io.stderr(`signed runtime facts ${contentSha256} for graph ${graphHash} (tenant ${tenant}) with key ${keyid}${bundle ? ` -> ${bundle}` : ''}${manifestFile ? `; manifest ${manifestFile}` : ''}\n`);
  return 0;
}

/** Check the manifest against the flags and the files; the refusal, or what to ingest. */
export function checkManifest(manifestFile: string, tenant: string, graphHash: string, runtimeFile: string):
  { ok: true; shipped: Buffer; contentSha256: string; envelope: Buffer | undefined } | RuntimeRefusal {
  let m: RuntimeManifest;
  try { m = JSON.parse(readInput(manifestFile).toString('utf8')) as RuntimeManifest; } catch (err) {
    if (err instanceof UsageError) throw err;
    return refuse('MANIFEST_INVALID', `${manifestFile} is not JSON`);
  }
  if (typeof m !== 'object' || m === null || m.schema !== RUNTIME_MANIFEST_SCHEMA) return refuse('MANIFEST_INVALID', `the manifest's schema must be ${RUNTIME_MANIFEST_SCHEMA}`);
  if (m.tenant !== tenant) return refuse('MANIFEST_MISMATCH', 'the manifest is for another tenant than --tenant');
  if (normalizeSha256(m.graph_hash) !== graphHash) return refuse('MANIFEST_MISMATCH', 'the manifest is for another graph than --graph-hash');
  const r = m.runtime;
  if (!r || typeof r.file !== 'string' || !normalizeSha256(r.sha256) || !normalizeSha256(r.content_sha256)) {
    return refuse('MANIFEST_INVALID', 'the manifest needs runtime.file, runtime.sha256 and runtime.content_sha256 (64 hex)');
  }
  if (path.basename(r.file) !== path.basename(runtimeFile)) return refuse('MANIFEST_MISMATCH', `--runtime is not the manifest's runtime file (${path.basename(r.file)})`);
  const shipped = readInput(runtimeFile);
  if (`sha256:${hex(shipped)}` !== normalizeSha256(r.sha256)) return refuse('MANIFEST_HASH_MISMATCH', `${path.basename(runtimeFile)}: its sha256 is not the manifest's`);
  let envelope: Buffer | undefined;
  if (m.dsse !== undefined) {
    if (typeof m.dsse.file !== 'string' || !normalizeSha256(m.dsse.sha256)) return refuse('MANIFEST_INVALID', 'the manifest\'s dsse needs file and sha256');
    // Resolved beside the manifest, and only there: a manifest cannot point outside its own directory.
    const dir = path.dirname(path.resolve(manifestFile));
    const envFile = path.resolve(dir, m.dsse.file);
    if (path.dirname(envFile) !== dir) return refuse('MANIFEST_INVALID', 'the manifest\'s dsse.file must be a file beside the manifest');
    envelope = readInput(envFile);
    if (`sha256:${hex(envelope)}` !== normalizeSha256(m.dsse.sha256)) return refuse('MANIFEST_HASH_MISMATCH', `${m.dsse.file}: its sha256 is not the manifest's`);
  }
  return { ok: true, shipped, contentSha256: normalizeSha256(r.content_sha256)!, envelope };
}

/** Connects a CLI producer; when Kafka cannot be reached, says which brokers were tried (and that a
 * local broker needs `stella run`) and returns false: the caller exits 4. */
async function connectOrExplain(producer: BatchingProducer, cfg: StellaConfig, access: KafkaAccess, io: Io): Promise<boolean> {
  try {
    await producer.connect();
    return true;
  } catch (err) {
    io.stderr(`cannot reach Kafka (${access.brokers.join(',')}${cfg.kafka.brokers ? '' : `, the local broker of ${cfg.dataDir}: is \`stella run\` running?`}): ${(err as Error).message}\n`);
    return false;
  }
}

/** stella ingest runtime --tenant T --graph-hash G --runtime F --manifest M [--output table|json|yaml] */
export async function cmdIngestRuntime(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const tenant = tenantOf(flags);
  const graphHash = graphOf(flags);
  const runtimeFile = required(flags, 'runtime');
  const manifestFile = required(flags, 'manifest');
  const cfg = loadConfig();
  // Without KAFKA_BROKERS: the local broker, as the API's Kafka user (it may write the intake topics).
  const access = cliKafkaAccess(cfg, 'api', 'stella ingest runtime publishes to Kafka');
  const limits = cfg.intake.runtimeFacts;
  const producer = new BatchingProducer(createKafka({ ...access, clientId: `${cfg.kafka.clientId}-ingest-runtime` }));
  const topics = { intakeRuntimeFacts: cfg.kafka.topics.intakeRuntimeFacts, timelineEvents: cfg.kafka.topics.timelineEvents };
  if (!(await connectOrExplain(producer, cfg, access, io))) return 4;
  try {
    const checked = checkManifest(manifestFile, tenant, graphHash, runtimeFile);
    let result;
    let body: Buffer = Buffer.alloc(0);
    if (!checked.ok) result = checked;
    else {
      body = checked.shipped;
      let ndjson: Buffer | RuntimeRefusal = checked.shipped;
      if (isGzip(checked.shipped)) ndjson = await gunzipLimited(checked.shipped, limits.maxDecompressedBytes);
      result = !Buffer.isBuffer(ndjson) ? ndjson : await ingestRuntimeFacts({ cas: new FsBlobStore(cfg.intake.casDir), producer,
        verify: new IntakeTrust(cfg.intake.trust).verifyIntakeEnvelope, topics, limits },
      { tenant, graphHash, ndjson, declaredSha256: checked.contentSha256, envelope: checked.envelope, actor: 'stella-cli', via: 'cli' });
    }
    if (!result.ok) {
      await publishRuntimeRefusal({ producer, topics }, tenant, result, { body, graphHash, actor: 'stella-cli', via: 'cli' })
        .catch((err: unknown) => io.stderr(`(the runtime.ingest.failed event could not be published: ${(err as Error).message})\n`));
      io.stderr(`refused: ${result.reason}: ${result.message}\n`);
      return 1;
    }
    const out = { ingest_id: result.ingestId, tenant, graph_hash: result.graphHash, content_sha256: result.contentSha256, cas_uri: result.casUri,
      records: result.records, size: result.size, signed_by: result.signedBy || null };
    io.stdout(render(out, format, () => Object.entries(out).map(([k, v]) => `${k.padEnd(15)} ${v ?? '-'}`).join('\n') + '\n'));
    return 0;
  } finally {
    await producer.disconnect();
  }
}

/**
 * stella ingest graph --tenant T --graph F [--sha256 H] [--output table|json|yaml]: registers a
 * reachability graph on the pipeline's side of an air gap, exactly as POST /api/v1/reachability/graphs
 * does (CAS, then the write-once marker under the data dir): facts naming it stop being orphans.
 */
export async function cmdIngestGraph(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const tenant = tenantOf(flags);
  const bytes = readInput(required(flags, 'graph'));
  const declared = flagString(flags, 'sha256');
  if (declared !== undefined && !normalizeSha256(declared)) throw new UsageError('--sha256 must be sha256:<64 hex> (or 64 hex)');
  const cfg = loadConfig();
  // Published like the API's registrations (intake_graphs + reach.graph.registered), as the API's Kafka user.
  const access = cliKafkaAccess(cfg, 'api', 'stella ingest graph publishes to Kafka');
  const producer = new BatchingProducer(createKafka({ ...access, clientId: `${cfg.kafka.clientId}-ingest-graph` }));
  if (!(await connectOrExplain(producer, cfg, access, io))) return 4;
  try {
    const r = await registerGraph({ cas: new FsBlobStore(cfg.intake.casDir), graphs: GraphRegistry.under(cfg.dataDir), producer,
      topics: { intakeGraphs: cfg.kafka.topics.intakeGraphs, timelineEvents: cfg.kafka.topics.timelineEvents } }, tenant, bytes, declared, { actor: 'stella-cli', via: 'cli' });
    if (!r.ok) {
      io.stderr(`refused: ${r.reason}: ${r.message}\n`);
      return 1;
    }
    const out = { tenant, graph_hash: r.graphHash, cas_uri: r.casUri, size: r.size, replay: r.replay, event_id: r.eventId };
    io.stdout(render(out, format, () => Object.entries(out).map(([k, v]) => `${k.padEnd(11)} ${v}`).join('\n') + '\n'));
    return 0;
  } finally {
    await producer.disconnect();
  }
}

/**
 * stella intake orphans replay --tenant T [--graph-hash G] [--dry-run] [--output table|json|yaml]:
 * runtime facts dead-lettered for an unknown graph are published again once their graph is known
 * (processors/intake/orphan-replay-cli.ts). Exit 0 nothing left waiting, 1 some orphans still wait
 * for their graph (left in the DLQ, counted), 2 usage or configuration, 4 Kafka unreachable.
 */
export async function cmdIntakeOrphansReplay(flags: Flags, io: Io): Promise<number> {
  const format = outputFormat(flags);
  const tenant = tenantOf(flags);
  const g = flagString(flags, 'graph-hash');
  const graphHash = g === undefined ? undefined : normalizeSha256(g);
  if (g !== undefined && !graphHash) throw new UsageError('--graph-hash must be sha256:<64 hex> (or 64 hex)');
  const dryRun = flags.has('dry-run');
  const cfg = loadConfig();
  // Reads the DLQ (a consumer group of its own) and writes the intake topic and timeline_events: on
  // the local broker as its super user, like forensic replay; elsewhere the operator's KAFKA_SASL_* login.
  const access = cliKafkaAccess(cfg, SUPER_USER, 'stella intake orphans replay reads the DLQ and publishes to Kafka');
  const kafka = createKafka({ ...access, clientId: `${cfg.kafka.clientId}-orphan-replay`, quiet: true });
  const producer = new BatchingProducer(kafka);
  if (!(await connectOrExplain(producer, cfg, access, io))) return 4;
  let report;
  try {
    report = await replayOrphans({ kafka, producer, dataDir: cfg.dataDir,
      topics: { dlq: cfg.kafka.topics.dlq, intakeRuntimeFacts: cfg.kafka.topics.intakeRuntimeFacts, timelineEvents: cfg.kafka.topics.timelineEvents } },
    { tenant, ...(graphHash ? { graphHash } : {}), dryRun });
  } catch (err) {
    io.stderr(`stella intake orphans replay: Kafka failed (${(err as Error).message}); orphans already marked replayed stay so, run it again\n`);
    return 4;
  } finally {
    await producer.disconnect();
  }
  io.stdout(render(report, format, () => [
    `tenant ${report.tenant}${report.graph_hash ? ` graph ${report.graph_hash}` : ''}${report.dry_run ? ' (dry run: nothing published)' : ''}`,
    `found ${report.found}  ${report.dry_run ? 'would replay' : 'replayed'} ${report.replayed}  already replayed ${report.already_replayed}  graph unknown ${report.graph_unknown}`,
    ...report.orphans.map((o) => `${o.ingest_id}  ${o.graph_hash}  ${o.reason.padEnd(10)}  dlq ${o.dlq.padEnd(10)}  ${o.outcome}`),
  ].join('\n') + '\n'));
  if (report.graph_unknown > 0) {
    io.stderr(`${report.graph_unknown} orphan(s) still wait for their graph and were left in the DLQ: register it (POST /api/v1/reachability/graphs or stella ingest graph) and run this again\n`);
  }
  return replayExitCode(report);
}
