// Where an orchestrator export's uniqueness is decided (docs/intake.md "Orchestrator exports").
//
// One append-only claim journal per tenant, `<root>/<tenant>/claims.journal`, shared by every
// process on the data dir (opened O_APPEND: each entry is one write(2), so entries never interleave).
// A submission appends a *proposal* (the exact Kafka record that will be published); the decision is
// a pure function of the journal's order: replaying the entries in file order, a proposal is a new
// version, a replay of a stored version (same export digest) or a 409, by the same rules as before.
// Every process replays the same bytes and reaches the same decisions, so of concurrent duplicates
// (in one process or several) exactly one wins, and a restart recovers every decision by replaying
// the journal. Group commit: proposals arriving while a cycle runs share the next one; a cycle is one
// write, a read of the journal's new tail, one fdatasync, then the answers. The fdatasync comes after
// the read, so everything a decision depended on (the prefix up to its proposal, whoever wrote it) is
// on disk before anyone is answered.
//
// The claim precedes the publish, so a crash between them leaves a version that was never published
// (and never acknowledged to the client). A published marker is appended after Kafka acked (not
// synced: losing it only means one more publish); a replay of a version without one publishes the
// stored record again: the same bytes, the same event id, which the table (ReplacingMergeTree), the
// timeline and the evidence log de-duplicate.
//
// A submission's raw body (when the caller hands it over) is a B entry just before its proposal, in
// the same write and fdatasync: the body is durable exactly when the decision is, at no extra file or
// fsync (one CAS file per body cost ~500 µs of CPU each, BENCHMARKS.md). It is found by the proposal's
// record `bodyDigest` and verified against it when read back.
//
// Entry: magic `\0SXJ` | type (C claim, P published, B body) | 16-byte proposal id | payload length u32 |
// crc32c(payload) u32 | crc32c(header so far) u32 | payload. C and P payloads are JSON or ASCII, which
// never hold a 0x00 byte, and a B payload is a strict-JSON body (refused if not UTF-8 JSON, which has no
// raw NUL either), so a reader that meets a torn entry (a crash mid-append, a power loss before the
// fdatasync) resumes at the next magic; an incomplete entry at the very end is waited for, not skipped.
// Claim files of the previous format (`<id>.v<N>.json`, `.published`) are read as the oldest versions.
//
// Compaction (docs/intake.md "Claim journal compaction"): the journal is a sequence of generations,
// `claims.journal` (0) then `claims.<n>.journal`. To compact generation n, an M entry naming n+1 is
// appended to it (and fdatasynced): entries after the first M of a file are void. Generation n+1 is a
// pure function of n's bytes before that M: every accepted version's claim entry (and its body entry)
// verbatim, in file order, each followed by a P entry when it was published; replays, conflicts,
// their bodies, repeated P entries and torn bytes are dropped (no later decision depends on them). It
// is written to a temp file, fsynced, hard-linked into place (never replacing a name) and the
// directory fsynced; then lower generations are unlinked. Any process that reads an M (its own
// proposals after it void) completes the next generation if it does not exist yet (the same bytes,
// whoever writes them), moves to the highest generation and appends its undecided proposals again.
// A kill -9 anywhere leaves either no durable M (nothing changed), an M without the next generation
// (the next reader completes it), or both generations (the higher one is read, the lower removed).
import { crc32c } from '@node-rs/crc32';
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, link, mkdir, open, readdir, readFile, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { validateTenantId } from '../tenancy.ts';
import { STATUS_RANK, transitionAllowed, type ExportRecord, type ExportStatus } from '../../processors/intake/exports.ts';

export type ClaimOutcome =
  | { kind: 'accepted'; version: number; record: ExportRecord; bytes: Buffer }
  | { kind: 'replay'; version: number; record: ExportRecord; bytes: Buffer; published: boolean }
  | { kind: 'conflict'; reason: 'DUPLICATE_CONFLICT' | 'INVALID_STATUS_TRANSITION'; message: string; current: ExportRecord };

interface Stored { version: number; record: ExportRecord; bytes: Buffer }

export const CLAIM_JOURNAL_FILE = 'claims.journal';
const MAGIC = Buffer.from([0x00, 0x53, 0x58, 0x4a]);
const T_CLAIM = 0x43;
const T_PUBLISHED = 0x50;
const T_BODY = 0x42;
const T_MOVED = 0x4d;
/** Generation 0 keeps the journal's first name; later ones are `claims.<n>.journal`. */
const genFile = (n: number) => (n === 0 ? CLAIM_JOURNAL_FILE : `claims.${n}.journal`);
const GEN_NAME = /^claims\.(?:([1-9][0-9]{0,8})\.)?journal$/;
const PID_BYTES = 16;
// magic 4 | type 1 | proposal id 16 | length 4 | payload crc 4 | header crc 4
const HEADER = 4 + 1 + PID_BYTES + 4 + 4 + 4;
const HCRC_AT = HEADER - 4;
/** No record comes near this (bodies are at most 1 MiB): a larger length is a corrupt header. */
const MAX_PAYLOAD = 16 * 1024 * 1024;
const EXPORT_ID = /^[0-9a-f]{32}$/;

/** A decided version (exported for compactJournal's `previous`). */
export type ClaimVersion = Version;

/** A decided version: what the rules need, and where its record bytes are. */
interface Version {
  version: number;
  exportDigest: string;
  status: ExportStatus;
  jobType: string;
  environment: string;
  published: boolean;
  /** Journal offset and length of the record bytes; or the bytes themselves (previous format). */
  offset: number;
  length: number;
  bytes?: Buffer;
  /** Journal offsets of its body entry (header included), when one was stored with the claim. */
  body?: { start: number; end: number };
}

type Decision =
  | { kind: 'accepted'; version: number }
  | { kind: 'replay'; stored: Version }
  | { kind: 'conflict'; reason: 'DUPLICATE_CONFLICT' | 'INVALID_STATUS_TRANSITION'; message: string; current: Version };

interface Waiter { record: ExportRecord; bytes: Buffer; /** Its journal entries (body + claim), appended again in a new generation. */ entry: Buffer; resolve: (o: ClaimOutcome) => void; reject: (e: unknown) => void }

interface TenantJournal {
  tenant: string;
  dir: string;
  fh: FileHandle;
  /** The generation `fh` is. */
  gen: number;
  /** Set once an M entry was read: the generation to move to, and the journal offset where the M ends. */
  moved: { gen: number; end: number } | undefined;
  /** Bytes a compaction would keep (accepted claims with their bodies, one P per published version). */
  kept: number;
  /** Journal bytes applied so far. */
  applied: number;
  exports: Map<string, Version[]>;
  /** Journal offset and length of each stored body, by its `sha256:<hex>` (the claim's bodyDigest). */
  bodies: Map<string, { offset: number; length: number }>;
  /** The last B entry read, until the claim with the same proposal id follows it. */
  lastBody: { pid: string; offset: number; length: number } | undefined;
  /** Entries to append in the next cycle. */
  queue: Buffer[];
  /** Proposals of this process not decided yet, by proposal id (hex). */
  waiters: Map<string, Waiter>;
  running: Promise<void> | undefined;
  /** Callers waiting to run alone (compaction, reads): the group-commit loop yields to them between cycles. */
  wantExclusive: number;
}

/** The decision rules: a pure function of the versions decided before this proposal. */
function decide(have: Version[] | undefined, r: ExportRecord): Decision {
  const id = r.id;
  if (!have || have.length === 0) return { kind: 'accepted', version: 1 };
  const same = have.find((s) => s.exportDigest === r.exportDigest);
  if (same) return { kind: 'replay', stored: same };
  const latest = have[have.length - 1]!;
  const from = latest.status, to = r.export.status;
  const sameStep = have.find((s) => STATUS_RANK[s.status] === STATUS_RANK[to]);
  if (sameStep) {
    return { kind: 'conflict', reason: 'DUPLICATE_CONFLICT', current: latest,
      message: `export ${id} already has a ${sameStep.status} submission with a different body` };
  }
  if (!transitionAllowed(from, to)) {
    return { kind: 'conflict', reason: 'INVALID_STATUS_TRANSITION', current: latest,
      message: `export ${id} is ${from}; allowed transitions are pending → running → succeeded | failed | canceled` };
  }
  for (const f of ['jobType', 'environment'] as const) {
    if (latest[f] !== r.export[f]) return { kind: 'conflict', reason: 'DUPLICATE_CONFLICT', current: latest, message: `export ${id} was submitted with another ${f}` };
  }
  return { kind: 'accepted', version: have.length + 1 };
}

function entry(type: number, pid: Buffer | undefined, payload: Buffer): Buffer {
  const b = Buffer.allocUnsafe(HEADER + payload.length);
  MAGIC.copy(b, 0);
  b[4] = type;
  if (pid) pid.copy(b, 5); else b.fill(0, 5, 5 + PID_BYTES);
  b.writeUInt32BE(payload.length, 5 + PID_BYTES);
  b.writeUInt32BE(crc32c(payload), 9 + PID_BYTES);
  b.writeUInt32BE(crc32c(b.subarray(0, HCRC_AT)), HCRC_AT);
  payload.copy(b, HEADER);
  return b;
}

/** A well-formed header at `p` (magic and header checksum), with a plausible length. */
function headerAt(buf: Buffer, p: number): boolean {
  return buf.length - p >= HEADER && buf[p] === 0 && buf[p + 1] === 0x53 && buf[p + 2] === 0x58 && buf[p + 3] === 0x4a
    && buf.readUInt32BE(p + HCRC_AT) === crc32c(buf.subarray(p, p + HCRC_AT)) && buf.readUInt32BE(p + 5 + PID_BYTES) <= MAX_PAYLOAD;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}

export interface ExportClaimsOptions {
  /**
   * Compact a tenant's journal on its own once it is at least this large and at least half of it is
   * droppable (default 64 MiB; 0: only when compact() is called).
   */
  compactAtBytes?: number;
  /** Called when an automatic compaction fails (it is retried on a later cycle). */
  onCompactionError?: (tenant: string, err: unknown) => void;
}

/**
 * The bytes of generation n+1 made from generation n's bytes up to (and including) its first M entry
 * (pure). `previous`: the versions read from claim files of the previous format, which come first
 * (so versions are numbered and decided as the journal's readers do); they stay in their files.
 */
export function compactJournal(tenant: string, prefix: Buffer, gen: number, previous: ReadonlyMap<string, readonly ClaimVersion[]> = new Map()): Buffer {
  const t = scratchJournal(tenant);
  t.gen = gen;
  for (const [id, vs] of previous) t.exports.set(id, vs.map((v) => ({ ...v })));
  scanJournal(t, prefix, 0, []);
  const versions = [...t.exports.entries()].flatMap(([id, vs]) => vs.filter((v) => !v.bytes).map((v) => ({ id, v })))
    .sort((a, b) => a.v.offset - b.v.offset);
  const parts: Buffer[] = [];
  // Published marks of previous-format versions that only the journal held stay too (a mark on one already published changes nothing).
  for (const [id, vs] of [...t.exports].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    for (const v of vs) if (v.bytes && v.published) parts.push(entry(T_PUBLISHED, undefined, Buffer.from(`${id}.v${v.version}`)));
  }
  for (const { id, v } of versions) {
    if (v.body) parts.push(prefix.subarray(v.body.start, v.body.end));
    parts.push(prefix.subarray(v.offset - HEADER, v.offset + v.length));
    if (v.published) parts.push(entry(T_PUBLISHED, undefined, Buffer.from(`${id}.v${v.version}`)));
  }
  return Buffer.concat(parts);
}

function scratchJournal(tenant: string): TenantJournal {
  return { tenant, dir: '', fh: undefined as unknown as FileHandle, gen: 0, moved: undefined, kept: 0, applied: 0, exports: new Map(), bodies: new Map(),
    lastBody: undefined, queue: [], waiters: new Map(), running: undefined, wantExclusive: 0 };
}

/**
 * Apply the whole entries of `buf` (journal bytes from offset `base`) to `t`, up to the first M entry
 * (consumed; nothing after it is applied) or a torn end; returns the bytes consumed.
 */
function scanJournal(t: TenantJournal, buf: Buffer, base: number, decided: [Waiter, Decision][]): number {
  let p = 0;
  while (p < buf.length && t.moved === undefined) {
    const end = headerAt(buf, p) ? p + HEADER + buf.readUInt32BE(p + 5 + PID_BYTES) : -1;
    if (end === -1 || end > buf.length || buf.readUInt32BE(p + 9 + PID_BYTES) !== crc32c(buf.subarray(p + HEADER, end))) {
      // A torn entry if a whole entry follows it (appends after one start only once it is complete),
      // else an append still in progress (or a torn end nobody wrote after yet): wait for it.
      let next = buf.indexOf(MAGIC, p + 1);
      while (next !== -1 && !headerAt(buf, next)) next = buf.indexOf(MAGIC, next + 1);
      if (next === -1) break;
      p = next;
      continue;
    }
    if (buf[p + 4] === T_MOVED) {
      const g = Number(buf.subarray(p + HEADER, end).toString('latin1'));
      // Only the move to the next generation counts (a stray M naming anything else is ignored).
      if (g === t.gen + 1) { t.moved = { gen: g, end: base + end }; p = end; break; }
    } else applyEntry(t, buf[p + 4]!, buf.subarray(p + 5, p + 5 + PID_BYTES), buf.subarray(p + HEADER, end), base + p + HEADER, decided);
    p = end;
  }
  return p;
}

function applyEntry(t: TenantJournal, type: number, pid: Buffer, payload: Buffer, offset: number, decided: [Waiter, Decision][]): void {
  if (type === T_PUBLISHED) {
    const m = /^([0-9a-f]{32})\.v([1-9])$/.exec(payload.toString('latin1'));
    const v = m ? t.exports.get(m[1]!)?.[Number(m[2]) - 1] : undefined;
    if (v && !v.published) t.kept += HEADER + payload.length;
    if (v) v.published = true;
    return;
  }
  if (type === T_BODY) { t.lastBody = { pid: pid.toString('hex'), offset, length: payload.length }; return; }
  if (type !== T_CLAIM) return;
  const key = pid.toString('hex');
  const body = t.lastBody?.pid === key ? t.lastBody : undefined;
  t.lastBody = undefined;
  const w = t.waiters.get(key);
  let r: ExportRecord;
  if (w) {
    r = w.record;
    t.waiters.delete(key);
  } else {
    try { r = JSON.parse(payload.toString('utf8')) as ExportRecord; } catch { return; }
    if (typeof r !== 'object' || r === null || r.tenant !== t.tenant || typeof r.id !== 'string' || !EXPORT_ID.test(r.id) || typeof r.export !== 'object' || r.export === null) return;
  }
  // Indexed by the digest its claim names; checked against it when read (body()).
  if (body && typeof r.bodyDigest === 'string' && !t.bodies.has(r.bodyDigest)) t.bodies.set(r.bodyDigest, { offset: body.offset, length: body.length });
  const have = t.exports.get(r.id);
  const d = decide(have, r);
  if (d.kind === 'accepted') {
    const v: Version = { version: d.version, exportDigest: r.exportDigest, status: r.export.status, jobType: r.export.jobType,
      environment: r.export.environment, published: false, offset, length: payload.length,
      ...(body ? { body: { start: body.offset - HEADER, end: body.offset + body.length } } : {}) };
    t.kept += HEADER + payload.length + (body ? HEADER + body.length : 0);
    if (have) have.push(v); else t.exports.set(r.id, [v]);
  }
  if (w) decided.push([w, d]);
}

/**
 * Opens the highest generation. Never creates one above 0 (they appear only by link, complete), and
 * checks after opening that no higher one appeared meanwhile: a generation is unlinked only once a
 * higher one exists, so the one opened is then the live one (not a name recreated after its unlink).
 */
async function openHighest(dir: string): Promise<{ fh: FileHandle; gen: number }> {
  for (;;) {
    const gen = Math.max(0, await highestGen(dir));
    let fh: FileHandle;
    try { fh = await open(path.join(dir, genFile(gen)), gen === 0 ? 'a+' : constants.O_RDWR | constants.O_APPEND, 0o600); } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (Math.max(0, await highestGen(dir)) === gen) return { fh, gen };
    await fh.close();
  }
}

async function highestGen(dir: string): Promise<number> {
  let top = -1;
  for (const n of await readdir(dir)) {
    const m = GEN_NAME.exec(n);
    if (m) top = Math.max(top, m[1] ? Number(m[1]) : 0);
  }
  return top;
}

export class ExportClaims {
  private readonly tenants = new Map<string, Promise<TenantJournal>>();
  /** Proposal ids: a random prefix per instance and a counter. */
  private readonly pidPrefix = randomBytes(8);
  private pidCounter = 0n;
  private readonly compactAtBytes: number;
  private readonly compacting = new Set<string>();

  constructor(readonly root: string, private readonly opts: ExportClaimsOptions = {}) {
    this.compactAtBytes = opts.compactAtBytes ?? 64 * 1024 * 1024;
  }

  private dir(tenant: string): string {
    const bad = validateTenantId(tenant);
    if (bad) throw new Error(`invalid tenant id: ${bad}`);
    return path.join(this.root, tenant);
  }

  /**
   * Decide a submission: a replay of a stored version (same export digest), a conflict, or a new
   * version, durable (journal fdatasynced) before this resolves.
   */
  async claim(record: ExportRecord, bytes: Buffer, body?: Buffer): Promise<ClaimOutcome> {
    if (!EXPORT_ID.test(record.id)) throw new Error('export id must be 32 hex characters');
    if (body !== undefined && record.bodyDigest === null) throw new Error('a body handed to claim needs the record\'s bodyDigest');
    const t = await this.journal(record.tenant);
    const pid = Buffer.allocUnsafe(PID_BYTES);
    this.pidPrefix.copy(pid, 0);
    pid.writeBigUInt64BE(this.pidCounter++, 8);
    // Both in one buffer: they are appended by the same write(2), the body first.
    const e = body !== undefined ? Buffer.concat([entry(T_BODY, pid, body), entry(T_CLAIM, pid, bytes)]) : entry(T_CLAIM, pid, bytes);
    return new Promise<ClaimOutcome>((resolve, reject) => {
      t.waiters.set(pid.toString('hex'), { record, bytes, entry: e, resolve, reject });
      t.queue.push(e);
      this.kick(t);
    });
  }

  /** After Kafka acked the publish of a version. */
  async markPublished(tenant: string, exportId: string, version: number): Promise<void> {
    if (!EXPORT_ID.test(exportId)) throw new Error('export id must be 32 hex characters');
    const t = await this.journal(tenant);
    const v = t.exports.get(exportId)?.[version - 1];
    if (v?.published) return;
    if (v) v.published = true;
    // Appended with the next cycle; not waited for (a lost marker costs one idempotent publish).
    t.queue.push(entry(T_PUBLISHED, undefined, Buffer.from(`${exportId}.v${version}`)));
    this.kick(t);
  }

  /** The stored versions of an export, in order (as the journal has them now). */
  async versions(tenant: string, exportId: string): Promise<Stored[]> {
    const t = await this.journal(tenant);
    await this.exclusive(t, () => this.catchUp(t));
    return Promise.all((t.exports.get(exportId) ?? []).map(async (v) => ({ version: v.version, ...(await this.load(t, v)) })));
  }

  /**
   * A submission body stored with its claim, by `sha256:<hex>`; undefined when the journal holds none.
   * Throws when the stored bytes do not hash to `digest` (never served altered).
   */
  async body(tenant: string, digest: string): Promise<Buffer | undefined> {
    const t = await this.journal(tenant);
    await this.exclusive(t, () => this.catchUp(t));
    const at = t.bodies.get(digest);
    if (!at) return undefined;
    const b = Buffer.allocUnsafe(at.length);
    const { bytesRead } = await t.fh.read(b, 0, at.length, at.offset);
    const actual = `sha256:${createHash('sha256').update(b.subarray(0, bytesRead)).digest('hex')}`;
    if (bytesRead !== at.length || actual !== digest) throw new Error(`claim journal: the body stored for ${digest} is corrupt (it hashes to ${actual})`);
    return b;
  }

  /**
   * Compact the tenant's journal now (see the header comment); resolves once the new generation is
   * durable and this instance reads it. Sizes are of the journal file before and after.
   */
  async compact(tenant: string): Promise<{ gen: number; bytesBefore: number; bytesAfter: number }> {
    const t = await this.journal(tenant);
    let out = { gen: 0, bytesBefore: 0, bytesAfter: 0 };
    await this.exclusive(t, async () => {
      await this.catchUp(t);
      const m = entry(T_MOVED, undefined, Buffer.from(String(t.gen + 1)));
      const { bytesWritten } = await t.fh.write(m, 0, m.length);
      if (bytesWritten !== m.length) throw new Error('claim journal: short write of a move entry');
      // Up to the first M (ours, or another process's that came first); durable before the next generation exists.
      await this.answer(t, await this.readTail(t));
      const bytesBefore = (await t.fh.stat()).size;
      await this.moveOn(t);
      out = { gen: t.gen, bytesBefore, bytesAfter: (await t.fh.stat()).size };
    });
    return out;
  }

  /** Apply the journal's tail, answer this instance's proposals decided there (after an fdatasync), follow a move. */
  private async catchUp(t: TenantJournal): Promise<void> {
    await this.answer(t, await this.readTail(t));
    if (t.moved) await this.moveOn(t);
  }

  /** fdatasync, then resolve the decided proposals (everything a decision depended on is on disk first). */
  private async answer(t: TenantJournal, decided: [Waiter, Decision][]): Promise<void> {
    await t.fh.datasync();
    for (const [w, d] of decided) {
      try { w.resolve(await this.outcome(t, w, d)); } catch (err) { w.reject(err); }
    }
  }

  /** Close the journal files (tests, shutdown); a later call reopens them. */
  async close(): Promise<void> {
    const all = [...this.tenants.values()];
    this.tenants.clear();
    for (const p of all) {
      const t = await p.catch(() => undefined);
      if (!t) continue;
      await this.whenIdle(t);
      await t.fh.close();
    }
  }

  private async whenIdle(t: TenantJournal): Promise<void> {
    while (t.running) await t.running.catch(() => undefined);
  }

  /** Run `f` with no cycle running (reads of the journal never overlap: each entry is applied once). */
  private async exclusive(t: TenantJournal, f: () => Promise<void>): Promise<void> {
    // A cycle may start between whenIdle's last check and this resuming: check again, synchronously with taking it.
    t.wantExclusive++;
    try { do await this.whenIdle(t); while (t.running); } finally { t.wantExclusive--; }
    const p = f();
    t.running = p;
    try { await p; } finally {
      t.running = undefined;
      if (t.queue.length > 0 || t.waiters.size > 0) this.kick(t);
    }
  }

  private journal(tenant: string): Promise<TenantJournal> {
    let p = this.tenants.get(tenant);
    if (!p) {
      p = this.openJournal(tenant);
      this.tenants.set(tenant, p);
      p.catch(() => this.tenants.delete(tenant));
    }
    return p;
  }

  private async openJournal(tenant: string): Promise<TenantJournal> {
    const dir = this.dir(tenant);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const { fh, gen } = await openHighest(dir);
    // The journal's name (and the tenant directory's) must survive a crash before its first entry is answered.
    await syncDir(dir);
    await syncDir(this.root);
    const t: TenantJournal = { tenant, dir, fh, gen, moved: undefined, kept: 0, applied: 0, exports: new Map(), bodies: new Map(), lastBody: undefined,
      queue: [], waiters: new Map(), running: undefined, wantExclusive: 0 };
    await this.loadPreviousFormat(t, dir);
    await this.readTail(t);
    if (t.moved) await this.moveOn(t);
    else if (gen > 0) await this.removeLowerGens(t);
    return t;
  }

  /**
   * After an M entry was read: make sure the next generation exists (write it from this file's bytes
   * before the M when no process did), then read the highest generation from its start and append
   * this instance's undecided proposals there again (their entries after the M are void).
   */
  private async moveOn(t: TenantJournal): Promise<void> {
    while (t.moved) {
      const target = t.moved.gen;
      if (await highestGen(t.dir) < target) {
        const prefix = Buffer.allocUnsafe(t.moved.end);
        for (let got = 0; got < prefix.length;) {
          const { bytesRead } = await t.fh.read(prefix, got, prefix.length - got, got);
          if (bytesRead === 0) throw new Error('claim journal: the generation being compacted is shorter than its move entry');
          got += bytesRead;
        }
        const previous = new Map([...t.exports].map(([id, vs]) => [id, vs.filter((v) => v.bytes)] as const).filter(([, vs]) => vs.length > 0));
        const next = compactJournal(t.tenant, prefix, t.gen, previous);
        const tmp = path.join(t.dir, `.compact-${target}-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
        const h = await open(tmp, 'wx', 0o600);
        try { await h.writeFile(next); await h.sync(); } finally { await h.close(); }
        try { await link(tmp, path.join(t.dir, genFile(target))); } catch (err) {
          // Another process wrote it first: the same bytes (a pure function of the same prefix).
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        } finally { await rm(tmp, { force: true }); }
        await syncDir(t.dir);
      }
      const { fh, gen } = await openHighest(t.dir);
      await t.fh.close().catch(() => undefined);
      const unwritten = new Set(t.queue);
      Object.assign(t, { fh, gen, moved: undefined, kept: 0, applied: 0, exports: new Map(), bodies: new Map(), lastBody: undefined });
      await this.loadPreviousFormat(t, t.dir);
      await this.readTail(t);
      // Proposals of ours not decided before the M: appended again here (the next cycle writes them).
      for (const w of t.waiters.values()) if (!unwritten.has(w.entry)) t.queue.push(w.entry);
    }
    await this.removeLowerGens(t);
  }

  /** Generations below the one read are superseded (it exists only once complete): unlinked. */
  private async removeLowerGens(t: TenantJournal): Promise<void> {
    let removed = false;
    for (const n of await readdir(t.dir)) {
      const m = GEN_NAME.exec(n);
      if (m && (m[1] ? Number(m[1]) : 0) < t.gen) { await rm(path.join(t.dir, n), { force: true }); removed = true; }
    }
    if (removed) await syncDir(t.dir);
  }

  /** Claim files of the previous format (one write-once file per version): the oldest versions. */
  private async loadPreviousFormat(t: TenantJournal, dir: string): Promise<void> {
    const names = (await readdir(dir)).filter((n) => /^[0-9a-f]{32}\.v[1-3]\.json$/.test(n)).sort();
    for (const n of names) {
      const id = n.slice(0, 32);
      const version = Number(n[34]);
      const have = t.exports.get(id) ?? [];
      if (have.length !== version - 1) continue; // versions are dense; a gap cannot come from that format
      const bytes = await readFile(path.join(dir, n));
      const r = JSON.parse(bytes.toString('utf8')) as ExportRecord;
      const published = await access(path.join(dir, `${id}.v${version}.published`)).then(() => true, () => false);
      have.push({ version, exportDigest: r.exportDigest, status: r.export.status, jobType: r.export.jobType, environment: r.export.environment,
        published, offset: 0, length: bytes.length, bytes });
      t.exports.set(id, have);
    }
  }

  private kick(t: TenantJournal): void {
    // While a caller waits to run alone, it goes next (its finally kicks again): no new run overtakes it.
    if (t.running || t.wantExclusive > 0) return;
    const run = (async () => {
      // Let the submissions of this tick join the first batch.
      await new Promise<void>((r) => setImmediate(r));
      // At least one cycle per run (so a caller taking turns alone cannot starve submissions), then more while nobody waits to.
      if (t.queue.length > 0 || t.waiters.size > 0) await this.cycle(t);
      while ((t.queue.length > 0 || t.waiters.size > 0) && t.wantExclusive === 0) await this.cycle(t);
    })();
    t.running = run;
    run.then(() => { t.running = undefined; }, (err) => {
      t.running = undefined;
      // The journal's state here is unknown: fail what waits, reopen from disk on the next claim.
      for (const w of t.waiters.values()) w.reject(err);
      t.waiters.clear();
      t.queue.length = 0;
      this.tenants.delete(t.tenant);
      void t.fh.close().catch(() => undefined);
    });
  }

  /** One group commit: append the queued entries, apply the journal's new tail, fdatasync, answer. */
  private async cycle(t: TenantJournal): Promise<void> {
    const batch = t.queue.splice(0);
    if (batch.length > 0) {
      const buf = batch.length === 1 ? batch[0]! : Buffer.concat(batch);
      const { bytesWritten } = await t.fh.write(buf, 0, buf.length);
      if (bytesWritten !== buf.length) throw new Error(`claim journal: short write (${bytesWritten} of ${buf.length} bytes)`);
    }
    const decided = await this.readTail(t);
    // The sync precedes every answer; a cycle that answers nobody (published markers only, or our
    // proposals still behind another process's append) leaves it to the cycle that will.
    if (decided.length > 0) await t.fh.datasync();
    for (const [w, d] of decided) {
      try { w.resolve(await this.outcome(t, w, d)); } catch (err) { w.reject(err); }
    }
    if (t.moved) { await this.moveOn(t); return; }
    // Our entries sit behind another process's append still in progress: read again shortly.
    if (t.queue.length === 0 && t.waiters.size > 0 && decided.length === 0) await new Promise((r) => setTimeout(r, 1));
    if (this.compactAtBytes > 0 && t.applied >= this.compactAtBytes && t.applied - t.kept >= t.applied / 2 && !this.compacting.has(t.tenant)) {
      this.compacting.add(t.tenant);
      // Not after close() (which forgets the journal first): that would reopen it.
      void (this.tenants.has(t.tenant) ? this.compact(t.tenant) : Promise.resolve()).catch((err: unknown) => this.opts.onCompactionError?.(t.tenant, err))
        .finally(() => this.compacting.delete(t.tenant));
    }
  }

  /** Read and apply everything appended since the last read (up to an M entry); returns this process's proposals decided. */
  private async readTail(t: TenantJournal): Promise<[Waiter, Decision][]> {
    const decided: [Waiter, Decision][] = [];
    if (t.moved) return decided;
    const { size } = await t.fh.stat();
    if (size <= t.applied) return decided;
    const buf = Buffer.allocUnsafe(size - t.applied);
    for (let got = 0; got < buf.length;) {
      const { bytesRead } = await t.fh.read(buf, got, buf.length - got, t.applied + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    t.applied += scanJournal(t, buf, t.applied, decided);
    return decided;
  }

  private async outcome(t: TenantJournal, w: Waiter, d: Decision): Promise<ClaimOutcome> {
    if (d.kind === 'accepted') return { kind: 'accepted', version: d.version, record: w.record, bytes: w.bytes };
    if (d.kind === 'replay') return { kind: 'replay', version: d.stored.version, ...(await this.load(t, d.stored)), published: d.stored.published };
    return { kind: 'conflict', reason: d.reason, message: d.message, current: (await this.load(t, d.current)).record };
  }

  /** A stored version's record bytes (and record), from the journal. */
  private async load(t: TenantJournal, v: Version): Promise<{ record: ExportRecord; bytes: Buffer }> {
    let bytes = v.bytes;
    if (!bytes) {
      bytes = Buffer.allocUnsafe(v.length);
      const { bytesRead } = await t.fh.read(bytes, 0, v.length, v.offset);
      if (bytesRead !== v.length) throw new Error('claim journal: a stored version could not be read back');
    }
    return { record: JSON.parse(bytes.toString('utf8')) as ExportRecord, bytes };
  }
}
