// Outside vouching for sealed checkpoints, off the sealing path: each configured witness is asked to
// cosign a tenant's latest checkpoint (tlog-witness), and the TSA stamps every checkpoint
// (RFC 3161). Sealing only calls `sealed()`, which queues and returns: a witness or TSA that is
// down, slow, or answering 409 never delays a seal or an offset commit. Failures are retried with
// exponential backoff; what is not yet vouched for is visible as lag/gap metrics (alerts in
// prometheus/alerts.yaml). Results are stored beside the checkpoint:
//   cosignatures/<witness key id>/<size>   one tlog-cosignature line
//   timestamps/<tsa id>/<size>.tst         the DER TimeStampToken over checkpoints/<size>
// A witness cosigns only forward, so it gets the latest checkpoint (older ones it skipped stay
// without its cosignature; a cosigned later checkpoint covers them by consistency). The TSA fills
// every gap, oldest first.
import { createHash, X509Certificate } from 'node:crypto';
import { logger } from '../../lib/log.ts';
import { counter, gauge } from '../../lib/metrics.ts';
import { sizesFromNames } from './layout.ts';
import { parseNote } from './note.ts';
import { LogReader } from './reader.ts';
import { ImmutableConflictError, type EvidenceStore } from './store.ts';
import { TsaClient, type TsaConfig } from './tsa.ts';
import { WitnessClient, type WitnessConfig } from './witness.ts';

const log = logger('evidence');
const witnessRequests = counter('stella_evidence_witness_requests_total', 'add-checkpoint submissions by outcome (cosigned, superseded, error)', ['witness', 'outcome']);
const cosignatureLag = gauge('stella_evidence_cosignature_lag_seconds', 'Seconds since the oldest checkpoint newer than the witness\'s latest cosignature was sealed (0: cosigned up to the latest)', ['tenant', 'witness']);
const cosignatureLagEntries = gauge('stella_evidence_cosignature_lag_entries', 'Sealed tree size minus the size the witness last cosigned', ['tenant', 'witness']);
const tsaRequests = counter('stella_evidence_tsa_requests_total', 'RFC 3161 time-stamp requests by outcome (stamped, error)', ['outcome']);
const timestampGap = gauge('stella_evidence_timestamp_gap_checkpoints', 'Sealed checkpoints without a time-stamp token yet', ['tenant']);
const timestampGapSeconds = gauge('stella_evidence_timestamp_gap_seconds', 'Seconds since the oldest checkpoint without a time-stamp token was sealed (0: none missing)', ['tenant']);

export const cosignatureDir = (witnessKeyIdHex: string): string => `cosignatures/${witnessKeyIdHex}`;
export const cosignaturePath = (witnessKeyIdHex: string, size: number): string => `cosignatures/${witnessKeyIdHex}/${size}`;
export const timestampDir = (tsaId: string): string => `timestamps/${tsaId}`;
export const timestampPath = (tsaId: string, size: number): string => `timestamps/${tsaId}/${size}.tst`;
/** A TSA's directory name: the first 16 hex digits of SHA-256 over its first pinned certificate. */
export const tsaId = (certificatePem: string): string => createHash('sha256').update(new X509Certificate(certificatePem).raw).digest('hex').slice(0, 16);

export interface AttestorOptions {
  store: EvidenceStore;
  witnesses?: readonly WitnessConfig[];
  tsa?: TsaConfig;
  /** Retry backoff: first delay, doubling up to max (with ±20% jitter). */
  backoff?: { initialMs: number; maxMs: number };
  requestTimeoutMs?: number;
}

interface Worker { busy: boolean; timer: NodeJS.Timeout | undefined; failures: number; lastError: string | undefined }
interface WitnessState extends Worker { client: WitnessClient; cosignedSize: number }
interface TenantState {
  tenant: string;
  origin: string | undefined;
  latest: number;
  /** When each size not yet vouched for by everyone was sealed (ms), for the lag metrics. */
  sealedAt: Map<number, number>;
  witnesses: WitnessState[];
  tsa: (Worker & { missing: number[] }) | undefined;
  ready: Promise<void>;
}

export class Attestor {
  private readonly tenants = new Map<string, TenantState>();
  private readonly witnessClients: WitnessClient[];
  private readonly tsaClient: TsaClient | undefined;
  private readonly tsaDir: string | undefined;
  private readonly backoff: { initialMs: number; maxMs: number };
  private stopped = false;
  private readonly metricsTimer: NodeJS.Timeout;

  constructor(private readonly opts: AttestorOptions) {
    this.witnessClients = (opts.witnesses ?? []).map((w) => new WitnessClient(w, opts.requestTimeoutMs));
    this.tsaClient = opts.tsa ? new TsaClient(opts.tsa, opts.requestTimeoutMs) : undefined;
    this.tsaDir = opts.tsa ? tsaId(opts.tsa.certificates[0]!) : undefined;
    this.backoff = opts.backoff ?? { initialMs: 1000, maxMs: 60_000 };
    this.metricsTimer = setInterval(() => this.updateMetrics(), 1000);
    this.metricsTimer.unref();
  }

  get enabled(): boolean { return this.witnessClients.length > 0 || this.tsaClient !== undefined; }

  /** A checkpoint of `size` is durable in the tenant's log. Returns at once; never throws. */
  sealed(tenant: string, size: number): void {
    if (!this.enabled || this.stopped) return;
    const t = this.open(tenant);
    if (size > t.latest) t.latest = size;
    if (!t.sealedAt.has(size)) t.sealedAt.set(size, Date.now());
    void t.ready.then(() => {
      if (t.tsa && !t.tsa.missing.includes(size) && size > 0) {
        // Sizes are sealed in order; a restart may re-announce one already stamped (checked on write).
        t.tsa.missing.push(size);
        t.tsa.missing.sort((a, b) => a - b);
      }
      this.kick(t);
    });
  }

  /** Start tracking a tenant: find what earlier runs left without cosignature or token. */
  open(tenant: string): TenantState {
    let t = this.tenants.get(tenant);
    if (t) return t;
    const state: TenantState = {
      tenant, origin: undefined, latest: 0, sealedAt: new Map(),
      witnesses: this.witnessClients.map((client) => ({ client, cosignedSize: 0, busy: false, timer: undefined, failures: 0, lastError: undefined })),
      tsa: this.tsaClient ? { missing: [], busy: false, timer: undefined, failures: 0, lastError: undefined } : undefined,
      ready: Promise.resolve(),
    };
    t = state;
    this.tenants.set(tenant, t);
    state.ready = this.resume(state).catch((err: unknown) => log.warn({ tenant_id: tenant, error_message: String(err) }, 'evidence attestation: cannot read what is already vouched for; starting from the latest checkpoint'));
    return t;
  }

  private async resume(t: TenantState): Promise<void> {
    const { store } = this.opts;
    const reader = new LogReader(store, t.tenant);
    const sealed = await reader.sealedSizes();
    const latest = sealed[sealed.length - 1] ?? 0;
    if (latest > t.latest) t.latest = latest;
    const now = Date.now();
    for (const w of t.witnesses) {
      const have = sizesFromNames(await store.list(t.tenant, cosignatureDir(w.client.verifier.keyIdHex)));
      w.cosignedSize = have[have.length - 1] ?? 0;
      for (const s of sealed) if (s > w.cosignedSize && !t.sealedAt.has(s)) t.sealedAt.set(s, now);
    }
    if (t.tsa) {
      const have = new Set(sizesFromNames(await store.list(t.tenant, timestampDir(this.tsaDir!)), '.tst'));
      const missing = sealed.filter((s) => s > 0 && !have.has(s));
      for (const s of missing) if (!t.sealedAt.has(s)) t.sealedAt.set(s, now);
      t.tsa.missing = [...new Set([...t.tsa.missing, ...missing])].sort((a, b) => a - b);
    }
    this.kick(t);
  }

  private kick(t: TenantState): void {
    if (this.stopped) return;
    for (const w of t.witnesses) if (!w.busy && !w.timer && w.cosignedSize < t.latest) void this.runWitness(t, w);
    if (t.tsa && !t.tsa.busy && !t.tsa.timer && t.tsa.missing.length > 0) void this.runTsa(t, t.tsa);
  }

  private retryLater(t: TenantState, w: Worker, what: string, err: unknown): void {
    w.failures++;
    const base = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.min(30, w.failures - 1));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    const msg = String(err instanceof Error ? err.message : err);
    // Once per distinct problem at warn level; repeats are debug (a witness down for hours is one story).
    if (msg !== w.lastError) log.warn({ tenant_id: t.tenant, error_message: msg, retry_in_ms: delay }, `evidence ${what} failed; sealing continues, retried with backoff`);
    else log.debug({ tenant_id: t.tenant, error_message: msg, retry_in_ms: delay }, `evidence ${what} failed again`);
    w.lastError = msg;
    w.timer = setTimeout(() => { w.timer = undefined; this.kick(t); }, delay);
    w.timer.unref();
  }

  private async runWitness(t: TenantState, w: WitnessState): Promise<void> {
    w.busy = true;
    const reader = new LogReader(this.opts.store, t.tenant);
    try {
      while (!this.stopped && w.cosignedSize < t.latest) {
        const size = t.latest;
        const cp = await reader.checkpointAt(size);
        if (!cp) throw new Error(`checkpoints/${size} is not in the store`);
        t.origin = cp.checkpoint.origin;
        if (w.client.knownSize(cp.checkpoint.origin) === undefined) w.client.setKnownSize(cp.checkpoint.origin, w.cosignedSize);
        const checkpointText = parseNote(cp.note).text;
        let r;
        try {
          r = await w.client.submit({ note: cp.note, checkpointText, size, proof: (from) => reader.consistencyProof(from, size) });
        } catch (err) {
          witnessRequests.inc({ witness: w.client.name, outcome: 'error' });
          throw err;
        }
        if (r.kind === 'superseded') {
          witnessRequests.inc({ witness: w.client.name, outcome: 'superseded' });
          if (r.witnessSize > t.latest) throw new Error(`witness ${w.client.name} has cosigned size ${r.witnessSize} of ${cp.checkpoint.origin}, beyond this log's ${t.latest}: another writer, or a store rolled back`);
          continue; // a newer checkpoint came meanwhile: submit that
        }
        witnessRequests.inc({ witness: w.client.name, outcome: 'cosigned' });
        await this.opts.store.writeImmutable(t.tenant, cosignaturePath(w.client.verifier.keyIdHex, size), Buffer.from(r.line))
          .catch((e: unknown) => { if (!(e instanceof ImmutableConflictError)) throw e; }); // cosigned twice (lost answer): the first line stands
        w.cosignedSize = size;
        w.failures = 0;
        w.lastError = undefined;
      }
    } catch (err) {
      this.retryLater(t, w, `cosignature request to witness ${w.client.name}`, err);
    } finally {
      w.busy = false;
      this.forget(t);
    }
    if (!w.timer && w.cosignedSize < t.latest) this.kick(t);
  }

  private async runTsa(t: TenantState, w: Worker & { missing: number[] }): Promise<void> {
    w.busy = true;
    try {
      while (!this.stopped && w.missing.length > 0) {
        const size = w.missing[0]!;
        const path = timestampPath(this.tsaDir!, size);
        if (!(await this.opts.store.read(t.tenant, path))) {
          const cp = await this.opts.store.read(t.tenant, `checkpoints/${size}`);
          if (!cp) throw new Error(`checkpoints/${size} is not in the store`);
          let token: Buffer;
          try {
            token = (await this.tsaClient!.timestamp(cp)).token;
          } catch (err) {
            tsaRequests.inc({ outcome: 'error' });
            throw err;
          }
          tsaRequests.inc({ outcome: 'stamped' });
          await this.opts.store.writeImmutable(t.tenant, path, token).catch((e: unknown) => { if (!(e instanceof ImmutableConflictError)) throw e; });
        }
        w.missing.shift();
        w.failures = 0;
        w.lastError = undefined;
      }
    } catch (err) {
      this.retryLater(t, w, 'time-stamp request', err);
    } finally {
      w.busy = false;
      this.forget(t);
    }
    if (!w.timer && w.missing.length > 0) this.kick(t);
  }

  /** Drop seal times every worker is past. */
  private forget(t: TenantState): void {
    const floor = Math.min(...t.witnesses.map((w) => w.cosignedSize), t.tsa?.missing[0] !== undefined ? t.tsa.missing[0] - 1 : Infinity);
    for (const s of t.sealedAt.keys()) if (s <= floor) t.sealedAt.delete(s);
    this.updateMetrics();
  }

  private updateMetrics(): void {
    const now = Date.now();
    for (const t of this.tenants.values()) {
      for (const w of t.witnesses) {
        let oldest: number | undefined;
        for (const [s, at] of t.sealedAt) if (s > w.cosignedSize && (oldest === undefined || at < oldest)) oldest = at;
        cosignatureLag.set({ tenant: t.tenant, witness: w.client.name }, oldest === undefined ? 0 : (now - oldest) / 1000);
        cosignatureLagEntries.set({ tenant: t.tenant, witness: w.client.name }, Math.max(0, t.latest - w.cosignedSize));
      }
      if (t.tsa) {
        timestampGap.set({ tenant: t.tenant }, t.tsa.missing.length);
        const first = t.tsa.missing[0];
        const at = first !== undefined ? t.sealedAt.get(first) : undefined;
        timestampGapSeconds.set({ tenant: t.tenant }, at === undefined ? 0 : (now - at) / 1000);
      }
    }
  }

  /** What is vouched for so far (tests, status). */
  status(tenant: string): { latest: number; witnesses: { name: string; cosignedSize: number; failures: number }[]; timestampsMissing: number[] } | undefined {
    const t = this.tenants.get(tenant);
    if (!t) return undefined;
    return { latest: t.latest, witnesses: t.witnesses.map((w) => ({ name: w.client.name, cosignedSize: w.cosignedSize, failures: w.failures })), timestampsMissing: [...(t.tsa?.missing ?? [])] };
  }

  /** Resolve once every tenant is cosigned by every witness and fully stamped (tests, bench). */
  async settled(timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      await Promise.all([...this.tenants.values()].map((t) => t.ready));
      const done = [...this.tenants.values()].every((t) => t.witnesses.every((w) => w.cosignedSize >= t.latest) && (t.tsa?.missing.length ?? 0) === 0);
      if (done) return;
      if (Date.now() > until) throw new Error(`attestation not settled after ${timeoutMs} ms: ${JSON.stringify([...this.tenants.keys()].map((k) => this.status(k)))}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.metricsTimer);
    for (const t of this.tenants.values()) {
      for (const w of [...t.witnesses, ...(t.tsa ? [t.tsa] : [])]) if (w.timer) { clearTimeout(w.timer); w.timer = undefined; }
    }
  }
}

/** Cosignature lines stored for checkpoint `size`, one per witness key, sorted by key id. */
export async function storedCosignatures(store: EvidenceStore, tenant: string, size: number): Promise<string[]> {
  const out: string[] = [];
  for (const kid of (await store.list(tenant, 'cosignatures')).sort()) {
    if (!/^[0-9a-f]{8}$/.test(kid)) continue;
    const b = await store.read(tenant, cosignaturePath(kid, size));
    if (b) out.push(Buffer.from(b).toString('utf8'));
  }
  return out;
}

/** Time-stamp tokens stored for checkpoint `size`, one per TSA, sorted by TSA id. */
export async function storedTimestamps(store: EvidenceStore, tenant: string, size: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const id of (await store.list(tenant, 'timestamps')).sort()) {
    if (!/^[0-9a-f]{16}$/.test(id)) continue;
    const b = await store.read(tenant, timestampPath(id, size));
    if (b) out.push(Buffer.from(b));
  }
  return out;
}
