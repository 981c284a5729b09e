// The evidence runner: consumes timeline events and clean telemetry batches from Kafka and appends
// them, per tenant, to the tenant's Merkle log (one Sealer per tenant); seals every N seconds or M
// entries; writes each segment's row to ClickHouse `evidence_segments`; commits Kafka offsets only
// once the seal covering them is durable. Protocol and crash behaviour: docs/evidence.md "Runner".
//
// Commit rule, per topic-partition: commit = min(first unsealed offset of every tenant with pending
// entries on it), or last handled offset + 1 when none are pending. A partition carries several
// tenants, so one tenant's seal never commits past another tenant's unsealed records.
import { AssignerProtocol, type Consumer, type EachBatchPayload, type Kafka, type PartitionAssigner } from 'kafkajs';
import { consumerGroupOptions, keepHeartbeating } from '../../lib/kafka/group-timing.ts';
import { restartOnFatalCrash } from '../../lib/kafka/restart.ts';
import { defaultTopicNames, H } from '../../lib/kafka/topics.ts';
import { logger } from '../../lib/log.ts';
import { counter } from '../../lib/metrics.ts';
import { endSpan, inChildSpan, startBatchTrace, startRootSpan, type Span } from '../../lib/tracing.ts';
import { insertEvidenceSegment, type Store } from '../../lib/store/index.ts';
import { validateTenantId } from '../../lib/tenancy.ts';
import { EventIndex, indexFileBytes, indexPath } from './event-index.ts';
import { sha256Hex } from './hash.ts';
import { canonicalize, entryBytes } from './jcs.ts';
import { loadSigningKey, pendingKeyFile, promotePendingKey } from './keys.ts';
import type { TenantKeyProvider } from './tenant-keys.ts';
import { promises as fsp } from 'node:fs';
import { defaultOrigin, keyRecordPath } from './layout.ts';
import type { Signer } from './note.ts';
import { LogReader } from './reader.ts';
import { Sealer, type AppendItem, type SegmentRow } from './sealer.ts';
import type { SegmentStatement } from './statement.ts';
import { FencedError, FsEvidenceStore, type EvidenceStore } from './store.ts';
import { MAX_ENTRY_SIZE } from './tiles.ts';
import { parseEnvelope } from './dsse.ts';
import { Attestor, type AttestorOptions } from './attest.ts';
import { activeHoldCovers } from './holds.ts';
import { canonicalBytes } from './jcs.ts';
import { incidentMarkPath, latestIncident, pruneTenant, type PruneReport } from './prune.ts';
import { incidentFields, incidentOn, retentionMs, type IncidentFields, type IncidentMark, type RetentionConfig } from './retention.ts';
import { CLEAN_BATCH_TYPE, CLEAN_BATCH_V2_TYPE, parseCleanEntry } from './clean-entry.ts';
import { lastTraceIndexSize, traceIdsOfRecord, traceIndexFileBytes, tracesPath, type TracedSignal } from './trace-index.ts';
import { PackedRecords, SealPacks, packIndexPath, type RecordPackStore } from './record-packs.ts';

const log = logger('evidence');
const recordsIn = counter('stella_evidence_records_total', 'Kafka records handled by the evidence runner', ['outcome']);
const rotations = counter('stella_evidence_key_rotations_total', 'Tenant logs rotated to a new signing key (stella keys rotate)', []);
const failures = counter('stella_evidence_failures_total', 'Evidence runner failures (seal = tenant re-opened and records re-delivered; fenced = another process took the tenant over; segment_row = ClickHouse insert retried; prune = retention run failed, retried next time)', ['kind']);

export { CLEAN_BATCH_TYPE, CLEAN_BATCH_V2_TYPE, parseCleanEntry } from './clean-entry.ts';
export const OVERSIZE_EVENT_TYPE = 'stella.evidence.oversize-event/v1';
export const UNPARSABLE_EVENT_TYPE = 'stella.evidence.unparsable-event/v1';
export const COPARTITION_ASSIGNER = 'StellaCoPartition';

export interface EvidenceTopics { timelineEvents: string; clean: string[] }

export interface EvidenceRunnerOptions {
  kafka: Kafka;
  /** Root of the FsEvidenceStore (`<root>/tenants/<tenant>/...`); or pass `evidenceStore`. */
  storeRoot?: string;
  evidenceStore?: EvidenceStore;
  /** ClickHouse store for `evidence_segments` rows. */
  store: Store;
  /** A signer per tenant (its name must be the tenant's origin), or one key file for every tenant. */
  signer?: (tenant: string) => Promise<Signer> | Signer;
  keyFile?: string;
  /**
   * Per-tenant keys (issue 12): each tenant's log signed by its own key from this provider, created
   * on first use; `keys rotate --tenant` requests are applied at the next tick; a log still on the
   * provider's legacy (formerly shared) key is rotated to the tenant's own key.
   */
  keys?: TenantKeyProvider;
  /** How often (ms) to look for `<keyFile>.next` (stella keys rotate); default: every seal tick. */
  keyPollMs?: number;
  /** Checkpoint origin = key name per tenant; default stella-telemetry.example/tenants/<tenant>. */
  origin?: (tenant: string) => string;
  topics?: Partial<EvidenceTopics>;
  groupId?: string;
  sealEverySeconds?: number;
  sealEveryEntries?: number;
  now?: () => Date;
  fromBeginning?: boolean;
  /** Witnesses and TSA asked to vouch for each checkpoint, off the sealing path (attest.ts). */
  attest?: Omit<AttestorOptions, 'store'>;
  /**
   * Retention: every `config.pruneEverySeconds` each tenant this process writes is pruned past its
   * retention (prune.ts), through its fenced writer view, keeping what the holds in `cases` cover.
   */
  retention?: { config: RetentionConfig; cases: EvidenceStore };
  /**
   * Where the clean records' bytes are kept (the content-addressed store, lib/cas.ts) so a trace's
   * bundle can carry them: the records a seal logs are stored as packs (one per entry bundle,
   * record-packs.ts) and the seal's pack index is written before the seal commits; a trace index
   * (`traces/<size>.json`) is written per seal. Without it only the digests are logged.
   */
  records?: RecordPackStore;
  /** Clean topics whose records hold spans or log records (default: the default span and log topics). */
  recordSignals?: Readonly<Record<string, TracedSignal>>;
}

export interface RunningEvidence {
  consumer: Consumer;
  /** Graceful: seal what is pending, commit, disconnect. */
  stop(): Promise<void>;
  /** Crash simulation: stop sealing and committing at once, drop pending entries, disconnect. */
  abandon(): Promise<void>;
  /** Seal every tenant now (tests, shutdown). */
  sealAll(): Promise<void>;
  readonly tenants: ReadonlyMap<string, { size: number; pending: number }>;
  /** Witness cosignatures and time-stamps in progress (undefined when none is configured). */
  readonly attestor: Attestor | undefined;
  /** Prune every open tenant now (needs `retention`); the timer does this every pruneEverySeconds. */
  pruneAll(): Promise<PruneReport[]>;
}

interface TenantState {
  tenant: string;
  partition: number;
  sealer: Sealer;
  /** This process's fenced view of the tenant's store (its writer epoch), the only way it writes the log. */
  store: EvidenceStore;
  index: EventIndex;
  lock: Promise<unknown>;
  lastSealMs: number;
  unsealedRows: SegmentRow[];
  /** Events appended since the last seal (what the next index file lists). */
  newEvents: [string, number][];
  /** incident.mode.* events appended since the last seal (recorded for retention after it). */
  newIncidents: IncidentMark[];
  /** Trace ids of the clean records appended since the last seal (the next trace index file). */
  newTraces: [string, number][];
  /** The records appended since the last seal, packed per entry bundle: the seal waits for their writes. */
  packs: SealPacks | undefined;
  dropped: boolean;
}

interface TpState { topic: string; partition: number; rewinds: number; base: bigint | undefined; lastHandled: bigint | undefined; firstPending: Map<string, bigint>; committed: bigint | undefined }

/** Same partition number of every topic to the same member: a tenant's records (same key, same
 *  partition number when the topics have equal partition counts) all reach one sealer. */
export const coPartitionAssigner: PartitionAssigner = ({ cluster }) => ({
  name: COPARTITION_ASSIGNER,
  version: 1,
  async assign({ members, topics }) {
    const ids = members.map((m) => m.memberId).sort();
    const plan = new Map<string, Record<string, number[]>>(ids.map((id) => [id, {}]));
    for (const topic of topics) {
      const parts = cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId).sort((a, b) => a - b);
      for (const p of parts) {
        const a = plan.get(ids[p % ids.length]!)!;
        (a[topic] ??= []).push(p);
      }
    }
    return ids.map((memberId) => ({ memberId, memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: plan.get(memberId)!, userData: Buffer.alloc(0) }) }));
  },
  protocol({ topics }) {
    return { name: COPARTITION_ASSIGNER, metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }) };
  },
});

/** The entry for a timeline event record: its canonical JSON, or a digest summary when too large or unparsable. */
export function timelineEntry(value: Buffer, pos: { topic: string; partition: number; offset: string }): { entry: Buffer; eventId: string | undefined; incident?: IncidentFields } {
  let obj: Record<string, unknown> | undefined;
  try {
    const v = JSON.parse(value.toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) obj = v as Record<string, unknown>;
  } catch { /* summarized below */ }
  const eventId = typeof obj?.event_id === 'string' ? obj.event_id : undefined;
  if (obj) {
    const text = canonicalize(obj);
    // Incident-mode events are remembered for retention (from the parse already done: no extra cost).
    const incident = incidentFields(obj);
    if (Buffer.byteLength(text) <= MAX_ENTRY_SIZE) return { entry: Buffer.from(text, 'utf8'), eventId, ...(incident ? { incident } : {}) };
  }
  return {
    entry: entryBytes({ type: obj ? OVERSIZE_EVENT_TYPE : UNPARSABLE_EVENT_TYPE, ...(eventId ? { event_id: eventId } : {}), topic: pos.topic,
      partition: pos.partition, offset: pos.offset, sha256: sha256Hex(value), size: value.length }),
    eventId,
  };
}

/** What the scrubber says about a clean record's origin (headers raw-content-sha256 and scrub-policy). */
export interface Custody { rawSha256: string; scrubPolicy: string }

const HEX64 = /^[0-9a-f]{64}$/;
const POLICY_VERSION = /^sha256:[0-9a-f]{64}$/;

/** The custody headers of a clean record, when both are present and well-formed (else undefined: a v1 entry). */
export function custodyOf(headers: Record<string, unknown> | undefined): Custody | undefined {
  const one = (v: unknown): string | undefined => {
    const x = Array.isArray(v) ? v[0] : v;
    return x === undefined || x === null ? undefined : String(x);
  };
  const raw = one(headers?.[H.rawContentSha256]);
  const policy = one(headers?.[H.scrubPolicy]);
  return raw !== undefined && policy !== undefined && HEX64.test(raw) && POLICY_VERSION.test(policy) ? { rawSha256: raw, scrubPolicy: policy } : undefined;
}

/**
 * The entry for a clean telemetry record (one OTLP export batch): where it is and its digest, and
 * with custody (a scrubber that sets the headers) the raw record's digest as received and the scrub
 * policy version (v2). Records of an older scrubber keep the v1 entry.
 */
export function cleanBatchEntry(value: Buffer, pos: { topic: string; partition: number; offset: string }, custody?: Custody, sha256 = sha256Hex(value)): Buffer {
  const base = { topic: pos.topic, partition: pos.partition, offset: pos.offset, sha256, size: value.length };
  if (!custody) return entryBytes({ type: CLEAN_BATCH_TYPE, ...base });
  return entryBytes({ type: CLEAN_BATCH_V2_TYPE, ...base, raw_sha256: custody.rawSha256, scrub_policy: custody.scrubPolicy });
}

/** The tenant a record belongs to: its `tenant` header, else its key; undefined when neither is a valid tenant id. */
export function recordTenant(headers: Record<string, unknown> | undefined, key: Buffer | null | undefined): string | undefined {
  const h = headers?.[H.tenant];
  const tenant = (h !== undefined ? String(Array.isArray(h) ? h[0] : h) : undefined) ?? key?.toString();
  return tenant && !validateTenantId(tenant) ? tenant : undefined;
}

/** The entry the runner appends for one Kafka record (replay.ts re-derives entries with this same function). */
export function recordEntry(isTimeline: boolean, value: Buffer, pos: { topic: string; partition: number; offset: string }, headers: Record<string, unknown> | undefined,
  sha256?: string): { entry: Buffer; eventId: string | undefined; incident?: IncidentFields } {
  return isTimeline ? timelineEntry(value, pos) : { entry: cleanBatchEntry(value, pos, custodyOf(headers), sha256), eventId: undefined };
}

/** The `evidence_segments` row of the latest seal, read back from its envelope (restart upsert). */
export async function latestSegmentRow(store: EvidenceStore, tenant: string): Promise<SegmentRow | undefined> {
  const reader = new LogReader(store, tenant);
  const sizes = await reader.sealedSizes();
  const size = sizes[sizes.length - 1];
  if (size === undefined) return undefined;
  const env = parseEnvelope((await reader.envelopeAt(size))!);
  const payload = Buffer.from(env.payload, 'base64');
  const p = (JSON.parse(payload.toString('utf8')) as SegmentStatement).predicate;
  return { tenant, from_size: p.previous.size, to_size: p.new.size, root_hex: p.new.root, statement_sha256: sha256Hex(payload), sealed_at: p.sealed_at };
}

const isoToNanos = (iso: string): string => (BigInt(Date.parse(iso)) * 1_000_000n).toString();

export async function startEvidenceRunner(opts: EvidenceRunnerOptions): Promise<RunningEvidence> {
  const evidence = opts.evidenceStore ?? new FsEvidenceStore(opts.storeRoot ?? (() => { throw new Error('storeRoot or evidenceStore is required'); })());
  const topics: EvidenceTopics = {
    timelineEvents: opts.topics?.timelineEvents ?? defaultTopicNames.timelineEvents,
    clean: opts.topics?.clean ?? [defaultTopicNames.spansClean, defaultTopicNames.logsClean, defaultTopicNames.metricsClean],
  };
  const allTopics = [topics.timelineEvents, ...topics.clean];
  const sealEveryMs = (opts.sealEverySeconds ?? 60) * 1000;
  const sealEveryEntries = opts.sealEveryEntries ?? 100_000;
  const now = opts.now ?? (() => new Date());
  const originOf = opts.origin ?? defaultOrigin;
  const keyCache = new Map<string, Promise<Signer>>();
  const signerFor = (tenant: string): Promise<Signer> => {
    let p = keyCache.get(tenant);
    if (!p) {
      if (opts.signer) p = Promise.resolve(opts.signer(tenant));
      else if (opts.keys) p = opts.keys.current(tenant, originOf(tenant));
      else if (opts.keyFile) p = loadSigningKey(opts.keyFile, originOf(tenant));
      else throw new Error('signer, keys or keyFile is required');
      keyCache.set(tenant, p);
    }
    return p;
  };

  // Live key rotation (keys.ts "Live rotation"): the pending key file, loaded per tenant name.
  const nextFile = opts.keyFile && !opts.signer && !opts.keys ? pendingKeyFile(opts.keyFile) : undefined;
  let pending: { stamp: string; signers: Map<string, Promise<Signer>> } | undefined;
  let lastKeyPoll = 0;
  const pollPendingKey = async (): Promise<typeof pending> => {
    if (!nextFile) return undefined;
    const st = await fsp.stat(nextFile).catch(() => undefined);
    if (!st) return (pending = undefined);
    const stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    if (pending?.stamp !== stamp) {
      pending = { stamp, signers: new Map() };
      log.info({ file: nextFile }, 'evidence signing key rotation pending; each tenant log rotates at its next seal tick');
    }
    return pending;
  };
  const nextSignerFor = (p: NonNullable<typeof pending>, tenant: string): Promise<Signer> => {
    let s = p.signers.get(tenant);
    if (!s) { s = loadSigningKey(nextFile!, originOf(tenant)); p.signers.set(tenant, s); s.catch(() => p.signers.delete(tenant)); }
    return s;
  };
  /** The key a tenant's log must be opened with: the pending key when the log is empty or already rotated to it. */
  const openingSigner = async (tenant: string): Promise<Signer> => {
    if (opts.keys) return openingTenantSigner(opts.keys, tenant);
    const p = await pollPendingKey();
    // A pending key that does not load (mode, format) must not stop intake: open with the current key.
    const next = p ? await nextSignerFor(p, tenant).catch(() => undefined) : undefined;
    if (next) {
      const reader = new LogReader(evidence, tenant);
      const size = (await reader.latest())?.checkpoint.size ?? 0;
      if (size === 0) return next;
      const schedule = await reader.keySchedule(size);
      if (schedule[schedule.length - 1]!.verifier.verifierKey === next.verifierKey) return next;
    }
    return signerFor(tenant);
  };

  /**
   * Per-tenant keys: open a log with the key it is on (the tenant's pending, current or legacy key);
   * the rotation tick then moves it to the tenant's target key. A log already on the pending key
   * (a crash between its rotation and the promotion) finishes the promotion here.
   */
  const openingTenantSigner = async (keys: TenantKeyProvider, tenant: string): Promise<Signer> => {
    const name = originOf(tenant);
    const current = await keys.current(tenant, name);
    // A pending key that does not load (mode, format) must not stop intake.
    const pendingKey = await keys.pending(tenant, name).catch(() => undefined);
    const reader = new LogReader(evidence, tenant);
    const size = (await reader.latest())?.checkpoint.size ?? 0;
    if (size === 0) return current;
    const schedule = await reader.keySchedule(size);
    const onKey = schedule[schedule.length - 1]!.verifier.verifierKey;
    if (pendingKey?.verifierKey === onKey) { await keys.promote(tenant); return keys.current(tenant, name); }
    if (current.verifierKey === onKey) return current;
    const legacy = await keys.legacy(tenant, name);
    if (legacy?.verifierKey === onKey) return legacy;
    return current; // Sealer.recover names the log's key and the configured one
  };

  // Equal partition counts are what makes "same key → same partition number" hold across topics.
  const admin = opts.kafka.admin();
  await admin.connect();
  try {
    const md = await admin.fetchTopicMetadata({ topics: allTopics });
    const counts = new Set(md.topics.map((t) => t.partitions.length));
    if (counts.size !== 1) throw new Error(`evidence input topics must have equal partition counts (${md.topics.map((t) => `${t.name}:${t.partitions.length}`).join(', ')})`);
  } finally { await admin.disconnect(); }

  const recordSignals: Readonly<Record<string, TracedSignal>> = opts.recordSignals ?? { [defaultTopicNames.spansClean]: 'traces', [defaultTopicNames.logsClean]: 'logs' };
  const recordSource = opts.records ? new PackedRecords(evidence, opts.records) : undefined;
  const newPacks = (tenant: string): SealPacks | undefined => (opts.records ? new SealPacks(tenant, opts.records) : undefined);
  const attestor = opts.attest && ((opts.attest.witnesses?.length ?? 0) > 0 || opts.attest.tsa) ? new Attestor({ ...opts.attest, store: evidence }) : undefined;
  const tenants = new Map<string, TenantState>();
  const opening = new Map<string, Promise<TenantState>>();
  // Sealers being retired after a rebalance: a new sealer for the tenant waits for the old one's
  // last operation (one writer per tenant log, also inside this process).
  const retiring = new Map<string, Promise<unknown>>();
  const tps = new Map<string, TpState>();
  const tpKey = (t: string, p: number): string => `${t}\u0000${p}`;
  let dead = false;
  let rebalancing = false;

  const consumer = opts.kafka.consumer({
    groupId: opts.groupId ?? 'stella-evidence',
    partitionAssigners: [coPartitionAssigner],
    maxWaitTimeInMs: 200,
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 200, maxRetryTime: 5000 },
    ...consumerGroupOptions(),
  });

  const withLock = <T>(s: TenantState, fn: () => Promise<T>): Promise<T> => {
    const run = s.lock.then(fn, fn);
    s.lock = run.catch(() => undefined);
    return run;
  };

  const openTenant = (tenant: string, partition: number): Promise<TenantState> => {
    const have = tenants.get(tenant);
    if (have) return Promise.resolve(have);
    let p = opening.get(tenant);
    if (!p) {
      p = (async () => {
        await retiring.get(tenant);
        // Claim the tenant's writer epoch before recovering: a member fenced out by a rebalance and
        // still finishing a seal now fails with FencedError instead of forking the log.
        const store = evidence.claimWriter ? await evidence.claimWriter(tenant) : evidence;
        const sealer = await Sealer.recover({ store, tenant, signer: await openingSigner(tenant), origin: originOf(tenant) });
        const index = new EventIndex(evidence, tenant);
        await index.refresh(sealer.size);
        const s: TenantState = { tenant, partition, sealer, store, index, lock: Promise.resolve(), lastSealMs: Date.now(), unsealedRows: [], newEvents: [], newIncidents: [], newTraces: [], packs: newPacks(tenant), dropped: false };
        // A crash after a seal and before its index file / segment row: write them now (idempotent).
        await writeIndexTail(s);
        await writeTraceIndexTail(s);
        const row = await latestSegmentRow(evidence, tenant);
        if (row) s.unsealedRows.push(row);
        // ClickHouse down at startup: keep the row queued (offsets wait for it) rather than fail the batch.
        await flushRows(s).catch((err: unknown) => log.warn({ tenant_id: tenant, error_message: String(err) }, 'evidence_segments insert failed; queued'));
        tenants.set(tenant, s);
        attestor?.open(tenant);
        log.info({ tenant_id: tenant, size: sealer.size }, 'evidence tenant opened');
        return s;
      })().finally(() => opening.delete(tenant));
      opening.set(tenant, p);
    }
    return p;
  };

  async function writeIndexTail(s: TenantState): Promise<void> {
    const names = await evidence.list(s.tenant, 'index');
    const last = names.map((n) => Number(n.replace(/\.json$/, ''))).filter(Number.isSafeInteger).sort((a, b) => a - b).pop() ?? 0;
    if (last < s.sealer.size) await s.store.writeImmutable(s.tenant, indexPath(s.sealer.size), indexFileBytes(last, s.sealer.size, s.index.events));
  }

  /**
   * Trace index files for sealed entries no file covers (a crash between a seal and its file): rebuilt
   * from the stored records. A log without any trace index file (records storage just turned on)
   * starts indexing at its current size: an empty `traces/<size>.json` marks where, and older entries
   * have no stored records to index.
   */
  async function writeTraceIndexTail(s: TenantState): Promise<void> {
    if (!opts.records) return;
    const last = await lastTraceIndexSize(evidence, s.tenant);
    const size = s.sealer.size;
    if (last === undefined) { await s.store.writeImmutable(s.tenant, tracesPath(size), traceIndexFileBytes(size, size, [])); return; }
    if (last >= size) return;
    const reader = new LogReader(evidence, s.tenant);
    const pairs: [string, number][] = [];
    let unavailable = 0;
    for (let i = last; i < size; i++) {
      // An entry pruned by retention or a record not in the store: left out (counted, logged once).
      const e = parseCleanEntry(await reader.entry(i, size).catch(() => new Uint8Array()));
      const signal = e && recordSignals[e.topic];
      if (!e || !signal) continue;
      const bytes = await recordSource!.record(s.tenant, i, e.sha256).catch(() => undefined);
      if (!bytes) { unavailable++; continue; }
      for (const id of traceIdsOfRecord(signal, bytes)) pairs.push([id, i]);
    }
    if (unavailable) log.warn({ tenant_id: s.tenant, from: last, to: size, records: unavailable }, 'clean records not in the record store; left out of the rebuilt trace index');
    await s.store.writeImmutable(s.tenant, tracesPath(size), traceIndexFileBytes(last, size, pairs));
  }

  async function flushRows(s: TenantState): Promise<void> {
    while (s.unsealedRows.length) {
      const r = s.unsealedRows[0]!;
      await insertEvidenceSegment(opts.store, { tenant_id: r.tenant, from_size: r.from_size, to_size: r.to_size, root_hex: r.root_hex,
        statement_sha256: r.statement_sha256, sealed_at: isoToNanos(r.sealed_at) });
      s.unsealedRows.shift();
    }
  }

  /**
   * Seal one tenant (caller holds its lock), record the segment, then commit what is now covered.
   * With `rotateTo`, the seal carries the key-rotation entry last (signed by the current key).
   */
  async function sealLocked(s: TenantState, rotateTo?: Signer): Promise<void> {
    if (dead || s.dropped) return;
    const from = s.sealer.size;
    if (s.sealer.pendingCount > 0 || rotateTo) {
      let row: SegmentRow | undefined;
      const previous = s.sealer.currentKey;
      let sealSpan: Span | undefined;
      try {
        // Custody: every record the seal logs is durable in the record store, and findable through
        // the seal's pack index, before the commit record (recovery removes an uncommitted index).
        const packs = s.packs;
        s.packs = newPacks(s.tenant);
        const packIndex = packs && !packs.empty ? await packs.finish(from) : undefined;
        if (packIndex) await s.store.writeImmutable(s.tenant, packIndexPath(from), packIndex);
        sealSpan = startRootSpan(rotateTo ? 'evidence rotate' : 'evidence seal', s.tenant, { 'stella.entries.pending': s.sealer.pendingCount });
        row = rotateTo ? await s.sealer.rotateKey(rotateTo, now()) : await s.sealer.seal(now());
        endSpan(sealSpan);
      } catch (err) {
        endSpan(sealSpan, err);
        failTenant(s, err);
        throw err;
      }
      s.lastSealMs = Date.now();
      if (rotateTo && row) {
        rotations.inc();
        log.warn({ tenant_id: s.tenant, previous_key_id: previous.keyIdHex, key_name: rotateTo.name, key_id: rotateTo.keyIdHex, valid_from_size: row.to_size + 1 },
          'evidence signing key rotated: checkpoints from valid_from_size on are signed by the new key');
      }
      if (row) {
        s.index.indexedSize = row.to_size;
        s.unsealedRows.push(row);
        attestor?.sealed(s.tenant, row.to_size); // queued: witnesses and the TSA never hold up a seal
        // The index file is derived data: when its write fails, readers scan the entries instead.
        await s.store.writeImmutable(s.tenant, indexPath(row.to_size), indexFileBytes(from, row.to_size, s.newEvents))
          .catch((err: unknown) => log.warn({ tenant_id: s.tenant, error_message: String(err) }, 'evidence index file not written'));
        s.newEvents = [];
        // Incident marks are derived data too: retention reads the latest (a lost one only means
        // the extension is not applied until the next incident event).
        const marks = s.newIncidents.filter((m) => m.index < row!.to_size);
        s.newIncidents = s.newIncidents.filter((m) => m.index >= row!.to_size);
        if (marks.length) await s.store.writeImmutableMany(s.tenant, marks.map((m) => ({ path: incidentMarkPath(m.index), bytes: canonicalBytes(m) })))
          .catch((err: unknown) => log.warn({ tenant_id: s.tenant, error_message: String(err) }, 'evidence incident mark not written'));
        if (opts.records) {
          await s.store.writeImmutable(s.tenant, tracesPath(row.to_size), traceIndexFileBytes(from, row.to_size, s.newTraces))
            .catch((err: unknown) => log.warn({ tenant_id: s.tenant, error_message: String(err) }, 'evidence trace index file not written; rebuilt when the tenant is next opened'));
          s.newTraces = [];
        }
      }
    }
    for (const tp of tps.values()) tp.firstPending.delete(s.tenant); // sealed: durable in the log
    try {
      await flushRows(s);
    } catch (err) {
      // Offsets wait for the row (commitCovered skips while any row is queued); retried every tick.
      log.warn({ tenant_id: s.tenant, error_message: String(err) }, 'evidence_segments insert failed; offsets not committed until it succeeds');
      failures.inc({ kind: 'segment_row' });
      return;
    }
    await commitCovered();
  }
  const sealTenant = (s: TenantState): Promise<void> => withLock(s, () => sealLocked(s));

  /**
   * A failed seal may have left files the in-memory sealer cannot account for: retire it (the next
   * record re-opens the tenant with Sealer.recover) and rewind the tenant's partitions to the last
   * committed offset so its unsealed records are delivered again. Other tenants' records on those
   * partitions come again too and are skipped (at or below their high water, or known event ids).
   */
  function failTenant(s: TenantState, err: unknown): void {
    if (err instanceof FencedError) {
      // Another evidence process took the tenant over (rebalance): it recovers from the store and
      // re-reads from the committed offsets; nothing of this sealer's pending entries is committed.
      log.warn({ tenant_id: s.tenant, epoch: err.epoch, current_epoch: err.current }, 'evidence writer fenced out; tenant state dropped, offsets not committed');
      failures.inc({ kind: 'fenced' });
    } else {
      log.error({ tenant_id: s.tenant, error_message: String(err) }, 'evidence seal failed; tenant re-opened from the store, records re-delivered');
      failures.inc({ kind: 'seal' });
    }
    s.dropped = true;
    if (tenants.get(s.tenant) === s) tenants.delete(s.tenant);
    retiring.set(s.tenant, s.lock);
    for (const tp of tps.values()) {
      if (!tp.firstPending.has(s.tenant)) continue;
      const to = tp.committed ?? tp.base ?? tp.firstPending.get(s.tenant)!;
      tp.firstPending.delete(s.tenant);
      tp.lastHandled = to - 1n; // nothing past the rewind point may be committed before it is handled again
      tp.rewinds++; // a batch in flight on this partition must not mark itself handled
      consumer.seek({ topic: tp.topic, partition: tp.partition, offset: to.toString() });
    }
  }

  async function commitCovered(): Promise<void> {
    if (dead) return;
    // A sealed segment's row goes to ClickHouse before the offsets that it covers are committed
    // (a restart re-inserts only the latest segment's row).
    for (const t of tenants.values()) if (t.unsealedRows.length) return;
    const out: { topic: string; partition: number; offset: string }[] = [];
    for (const tp of tps.values()) {
      if (tp.lastHandled === undefined) continue;
      let c = tp.lastHandled + 1n;
      for (const o of tp.firstPending.values()) if (o < c) c = o;
      if (tp.committed === undefined || c > tp.committed) out.push({ topic: tp.topic, partition: tp.partition, offset: c.toString() });
    }
    if (out.length === 0) return;
    try {
      await consumer.commitOffsets(out);
      for (const o of out) tps.get(tpKey(o.topic, o.partition))!.committed = BigInt(o.offset);
    } catch (err) {
      // A rebalance in progress: the offsets stay uncommitted and the records are re-delivered
      // (and skipped as at or below the sealed high water).
      log.warn({ error_message: String(err) }, 'offset commit failed; records will be re-delivered');
    }
  }

  // Self-tracing: a `process <topic>` span per batch (lib/tracing.ts) with the append as its child.
  const handleBatch = async (p: EachBatchPayload): Promise<void> => {
    const bt = startBatchTrace('evidence', opts.groupId ?? 'stella-evidence', p.batch.topic, p.batch.partition, p.batch.messages);
    if (!bt) return appendBatch(p);
    try {
      await inChildSpan(bt.ctx, 'evidence append', {}, () => appendBatch(p));
      bt.end();
    } catch (err) {
      bt.end(err);
      throw err;
    }
  };
  const appendBatch = async ({ batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload): Promise<void> => {
    if (batch.messages.length === 0 || dead) return;
    const { topic, partition } = batch;
    const isTimeline = topic === topics.timelineEvents;
    // Group by tenant, keeping offset order within each tenant.
    const byTenant = new Map<string, { item: AppendItem; eventId: string | undefined; incident?: IncidentFields; record?: Buffer; sha256?: string }[]>();
    const signal = recordSignals[topic];
    for (const m of batch.messages) {
      const tenant = recordTenant(m.headers, m.key);
      if (!tenant) {
        recordsIn.inc({ outcome: 'no_tenant' });
        log.warn({ topic, partition, offset: m.offset, error_code: 'NO_TENANT' }, 'record without a valid tenant; not logged');
        continue;
      }
      const value = m.value ?? Buffer.alloc(0);
      const pos = { topic, partition, offset: m.offset };
      const digest = isTimeline ? undefined : sha256Hex(value); // the entry's sha256, and the record's address in its pack
      const built = recordEntry(isTimeline, value, pos, m.headers, digest);
      let list = byTenant.get(tenant);
      if (!list) byTenant.set(tenant, (list = []));
      list.push({ item: { entry: built.entry, kafka: pos }, eventId: built.eventId, ...('incident' in built && built.incident ? { incident: built.incident } : {}),
        ...(!isTimeline && opts.records ? { record: value, sha256: digest } : {}) });
    }
    const k = tpKey(topic, partition);
    let tp = tps.get(k);
    if (!tp) tps.set(k, (tp = { topic, partition, rewinds: 0, base: BigInt(batch.messages[0]!.offset), lastHandled: undefined, firstPending: new Map(), committed: undefined }));
    const rewinds = tp.rewinds;
    for (const [tenant, list] of [...byTenant].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!isRunning() || isStale() || dead || tp.rewinds !== rewinds) return;
      const s = await openTenant(tenant, partition);
      if (s.partition !== partition) log.warn({ tenant_id: tenant, topic, partition, expected: s.partition }, 'tenant seen on another partition number; topics must be co-partitioned');
      await withLock(s, async () => {
        if (dead || s.dropped) return;
        // At-least-once timeline delivery: a republished event (same event_id) is logged once.
        const seen = new Set<string>();
        const fresh = list.filter((x) => {
          if (x.eventId === undefined) return true;
          if (s.index.events.has(x.eventId) || seen.has(x.eventId)) { recordsIn.inc({ outcome: 'duplicate_event' }); return false; }
          seen.add(x.eventId);
          return true;
        });
        // Seal boundaries fall every `sealEveryEntries` entries, also inside a batch, so a replay
        // after a crash cuts the same segments.
        for (let i = 0; i < fresh.length;) {
          const room = Math.max(1, sealEveryEntries - s.sealer.pendingCount);
          const chunk = fresh.slice(i, i + room);
          i += chunk.length;
          const res = s.sealer.append(chunk.map((x) => x.item));
          let first: bigint | undefined;
          res.indices.forEach((idx, n) => {
            if (idx < 0) return;
            const x = chunk[n]!;
            if (x.eventId !== undefined) { s.index.events.set(x.eventId, idx); s.newEvents.push([x.eventId, idx]); }
            if (x.incident) s.newIncidents.push({ ...x.incident, index: idx });
            if (x.record && s.packs) {
              s.packs.add(idx, x.sha256!, x.record);
              if (signal) for (const id of traceIdsOfRecord(signal, x.record)) s.newTraces.push([id, idx]);
            }
            first ??= BigInt(x.item.kafka!.offset);
          });
          recordsIn.inc({ outcome: 'appended' }, res.accepted);
          recordsIn.inc({ outcome: 'redelivered' }, res.skipped);
          if (first !== undefined && !tp.firstPending.has(tenant)) tp.firstPending.set(tenant, first);
          if (s.sealer.pendingCount >= sealEveryEntries) {
            try {
              await sealLocked(s);
            } catch (err) {
              if (!s.dropped) failTenant(s, err); // rewinds the partition: this batch comes again
              return;
            }
          }
        }
      });
    }
    if (dead || isStale() || tp.rewinds !== rewinds) return; // a failed seal rewound this partition (seek): the batch comes again
    const last = batch.messages[batch.messages.length - 1]!.offset;
    tp.lastHandled = BigInt(last);
    resolveOffset(last);
    await commitCovered(); // batches with nothing new (re-deliveries, no tenant) still move on
    await heartbeat();
  };

  consumer.on(consumer.events.REBALANCING, () => { rebalancing = true; });
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    rebalancing = false;
    const assigned = e.payload.memberAssignment as Record<string, number[]>;
    const owned = new Set(Object.values(assigned).flat());
    for (const [key, tp] of tps) {
      if (!(assigned[tp.topic] ?? []).includes(tp.partition)) tps.delete(key);
      else { tp.committed = undefined; tp.firstPending.clear(); tp.lastHandled = undefined; tp.rewinds++; }
    }
    // Partitions we keep restart from their committed offsets; drop every sealer's unsealed entries
    // (they will be re-delivered) and the sealers of tenants we no longer own.
    for (const [tenant, s] of tenants) {
      tenants.delete(tenant);
      const done = withLock(s, async () => { s.dropped = true; });
      retiring.set(tenant, done);
      void done.finally(() => { if (retiring.get(tenant) === done) retiring.delete(tenant); });
      if (!owned.has(s.partition)) log.info({ tenant_id: tenant, partition: s.partition }, 'evidence tenant released (partition revoked)');
    }
  });

  // stop() seals and commits while still a group member (a consumer that left cannot commit): from
  // then on batches are not handled (they are re-delivered after a restart) and the one in flight ends first.
  let closing = false;
  let inFlight: Promise<unknown> = Promise.resolve();
  const start = async (): Promise<void> => {
    await consumer.connect();
    await consumer.subscribe({ topics: allTopics, fromBeginning: opts.fromBeginning ?? true });
    await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: 1,
      eachBatch: (p) => {
        if (closing) return Promise.resolve();
        const run = keepHeartbeating(p.heartbeat, () => handleBatch(p)); // a seal may hold the tenant's lock
        inFlight = run.catch(() => undefined);
        return run;
      } });
  };
  restartOnFatalCrash(consumer, start, { log, stopping: () => closing || dead });
  await start();

  /** While a key is pending: rotate each open tenant still on the old key; promote once every log holds the new one. */
  let rotating = false;
  let lastRotationError: string | undefined;
  const rotationTick = async (): Promise<void> => {
    const p = await pollPendingKey();
    if (!p || dead) return;
    for (const s of [...tenants.values()]) {
      const next = await nextSignerFor(p, s.tenant);
      if (s.sealer.currentKey.verifierKey === next.verifierKey) continue;
      await withLock(s, async () => {
        if (s.dropped || s.sealer.currentKey.verifierKey === next.verifierKey) return;
        try { await sealLocked(s, next); } catch (err) { if (!s.dropped) failTenant(s, err); }
      });
    }
    // Promote when no log in the store still needs the previous key (a tenant never opened here
    // keeps the pending file around until it is opened and rotated).
    if (!evidence.listTenants) return;
    for (const t of await evidence.listTenants()) {
      const next = await nextSignerFor(p, t);
      if ((await evidence.read(t, keyRecordPath(next.keyIdHex))) === undefined && ((await new LogReader(evidence, t).latest())?.checkpoint.size ?? 0) > 0) return;
    }
    if (dead || (await pollPendingKey()) !== p) return;
    await promotePendingKey(opts.keyFile!);
    keyCache.clear();
    pending = undefined;
  };

  /** Per-tenant keys: move each open tenant to its target key (pending request, else its own key). */
  const tenantRotationTick = async (keys: TenantKeyProvider): Promise<void> => {
    for (const s of [...tenants.values()]) {
      if (dead) return;
      const name = originOf(s.tenant);
      const pendingKey = await keys.pending(s.tenant, name);
      const target = pendingKey ?? await keys.current(s.tenant, name);
      if (s.sealer.currentKey.verifierKey === target.verifierKey) continue;
      await withLock(s, async () => {
        if (s.dropped || s.sealer.currentKey.verifierKey === target.verifierKey) return;
        try { await sealLocked(s, target); } catch (err) { if (!s.dropped) failTenant(s, err); }
      });
      if (pendingKey && !s.dropped && s.sealer.currentKey.verifierKey === pendingKey.verifierKey) await keys.promote(s.tenant);
    }
  };

  const timer = setInterval(() => {
    if (dead || rebalancing) return;
    if (opts.keys && !rotating && Date.now() - lastKeyPoll >= (opts.keyPollMs ?? 0)) {
      lastKeyPoll = Date.now();
      rotating = true;
      tenantRotationTick(opts.keys).then(() => { lastRotationError = undefined; }, (err: unknown) => {
        if (String(err) !== lastRotationError) log.error({ error_message: String(err) }, 'evidence key rotation failed; retried at every tick');
        lastRotationError = String(err);
      }).finally(() => { rotating = false; });
    }
    const keyPollMs = opts.keyPollMs ?? 0;
    if (nextFile && !rotating && Date.now() - lastKeyPoll >= keyPollMs) {
      lastKeyPoll = Date.now();
      rotating = true;
      rotationTick().then(() => { lastRotationError = undefined; }, (err: unknown) => {
        // Once per distinct problem (e.g. a pending key file with the wrong mode), not every tick.
        if (String(err) !== lastRotationError) log.error({ error_message: String(err) }, 'evidence key rotation failed; retried at every tick');
        lastRotationError = String(err);
      })
        .finally(() => { rotating = false; });
    }
    for (const s of tenants.values()) {
      if (s.sealer.pendingCount > 0 && Date.now() - s.lastSealMs >= sealEveryMs) {
        sealTenant(s).catch((err: unknown) => log.error({ tenant_id: s.tenant, error_message: String(err) }, 'evidence seal failed; offsets not committed'));
      } else if (s.unsealedRows.length) {
        withLock(s, () => flushRows(s)).then(() => commitCovered()).catch(() => undefined);
      }
    }
  }, Math.max(50, Math.min(1000, sealEveryMs / 4)));
  timer.unref();

  const sealAll = async (): Promise<void> => { await Promise.all([...tenants.values()].map((s) => sealTenant(s))); };

  /** Prune each open tenant under its lock, through its fenced view (one at a time: a background chore). */
  const pruneAll = async (): Promise<PruneReport[]> => {
    const r = opts.retention;
    if (!r) throw new Error('retention is not configured for this evidence runner');
    const out: PruneReport[] = [];
    for (const s of [...tenants.values()]) {
      if (dead) break;
      const report = await withLock(s, async () => {
        if (s.dropped) return undefined;
        const nowMs = now().getTime();
        try {
          const holds = await activeHoldCovers(r.cases, s.tenant);
          const incident = incidentOn(await latestIncident(evidence, s.tenant), nowMs);
          return await pruneTenant({ store: s.store, tenant: s.tenant, holds, nowMs, retentionMs: retentionMs(r.config, s.tenant, incident), ...(opts.records ? { records: opts.records } : {}) });
        } catch (err) {
          if (err instanceof FencedError) { if (!s.dropped) failTenant(s, err); return undefined; }
          failures.inc({ kind: 'prune' });
          log.error({ tenant_id: s.tenant, error_message: String(err) }, 'evidence prune failed; retried at the next run');
          return undefined;
        }
      });
      if (report) out.push(report);
    }
    return out;
  };
  let pruning = false;
  const pruneEveryMs = (opts.retention?.config.pruneEverySeconds ?? 0) * 1000;
  const pruneTimer = pruneEveryMs > 0 ? setInterval(() => {
    if (dead || rebalancing || pruning) return;
    pruning = true;
    pruneAll().catch(() => undefined).finally(() => { pruning = false; });
  }, pruneEveryMs) : undefined;
  pruneTimer?.unref();

  return {
    consumer,
    get tenants() { return new Map([...tenants].map(([t, s]) => [t, { size: s.sealer.size, pending: s.sealer.pendingCount }])); },
    sealAll,
    pruneAll,
    attestor,
    stop: async () => {
      closing = true;
      await inFlight;
      await sealAll();
      dead = true;
      clearInterval(timer);
      clearInterval(pruneTimer);
      attestor?.stop();
      await consumer.disconnect();
    },
    abandon: async () => {
      dead = true;
      clearInterval(timer);
      clearInterval(pruneTimer);
      attestor?.stop();
      await consumer.disconnect();
    },
  };
}
