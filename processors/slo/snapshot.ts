// Evaluator state ⇄ bytes, so the runner can checkpoint it together with the consumed offsets.
// Deterministic: states in key order, only non-empty slots, fixed little-endian layout; the same
// state always gives the same bytes (checkpoints can be compared and deduplicated).
//
// Layout (v3): "SLOS" u8 version u32 nStates, then per state:
//   str key, str sliFingerprint, f64 watermarkMs, f64 droppedLate, str exemplarTraceId, f64 exemplarTimeMs,
//   u8 nAlerts { u8 firing, f64 startsAtMs }, lastEval, ring(minutes), ring(hours)
//   lastEval = u8 present [f64 atMs, u8 nWindows { f64 good, f64 total }, f64 budgetGood, f64 budgetTotal, str exemplarTraceId]
//   ring = f64 head, u32 nSlots { f64 slot, f64 good, f64 total }   (weighted counts)
// Older versions still restore: v2 = v3 with u32 good/total; v1 = v2 without lastEval (its latest
// evaluation is taken from the restored rings).
import { RULE_WINDOWS_MIN } from './burn.ts';
import type { SloEvaluator } from './evaluator.ts';
import type { Evaluation } from './slo-state.ts';
import type { SlotRing } from './slot-ring.ts';

const MAGIC = 'SLOS';
const VERSION = 3;

class Writer {
  private buf = new Uint8Array(4096);
  private view = new DataView(this.buf.buffer);
  private len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void { this.ensure(1); this.view.setUint8(this.len, v); this.len += 1; }
  u32(v: number): void { this.ensure(4); this.view.setUint32(this.len, v, true); this.len += 4; }
  f64(v: number): void { this.ensure(8); this.view.setFloat64(this.len, v, true); this.len += 8; }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u32(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  bytes(): Uint8Array { return this.buf.slice(0, this.len); }
}

class Reader {
  private off = 0;
  private readonly view: DataView;
  constructor(private readonly buf: Uint8Array) { this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength); }
  private need(n: number): void { if (this.off + n > this.buf.length) throw new Error('SLO snapshot is truncated'); }
  u8(): number { this.need(1); return this.view.getUint8(this.off++); }
  u32(): number { this.need(4); const v = this.view.getUint32(this.off, true); this.off += 4; return v; }
  f64(): number { this.need(8); const v = this.view.getFloat64(this.off, true); this.off += 8; return v; }
  str(): string {
    const n = this.u32();
    this.need(n);
    const s = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.off, n).toString('utf8');
    this.off += n;
    return s;
  }
  done(): boolean { return this.off === this.buf.length; }
}

function writeRing(w: Writer, ring: SlotRing): void {
  w.f64(ring.head);
  const slots: [number, number, number][] = [];
  ring.forEachNonEmpty((slot, good, total) => slots.push([slot, good, total]));
  w.u32(slots.length);
  for (const [slot, good, total] of slots) { w.f64(slot); w.f64(good); w.f64(total); }
}

function readRing(r: Reader, ring: SlotRing | undefined, version: number): void {
  const head = r.f64();
  const n = r.u32();
  if (ring && head !== Number.NEGATIVE_INFINITY) ring.advanceTo(head);
  for (let i = 0; i < n; i++) {
    const slot = r.f64();
    const good = version >= 3 ? r.f64() : r.u32();
    const total = version >= 3 ? r.f64() : r.u32();
    ring?.add(slot, good, total); // re-adding rebuilds the running window sums
  }
}

export function snapshotEvaluator(ev: SloEvaluator): Uint8Array {
  const w = new Writer();
  for (const c of MAGIC) w.u8(c.charCodeAt(0));
  w.u8(VERSION);
  const states = ev.sortedStates();
  w.u32(states.length);
  for (const s of states) {
    w.str(s.key);
    w.str(s.fingerprint);
    w.f64(s.watermarkMs);
    w.f64(s.droppedLate);
    w.str(s.exemplarTraceId);
    w.f64(s.exemplarTimeMs);
    w.u8(s.alerts.length);
    for (const a of s.alerts) { w.u8(a.firing ? 1 : 0); w.f64(a.startsAtMs); }
    const e = s.lastEval;
    w.u8(e ? 1 : 0);
    if (e) {
      w.f64(e.atMs);
      w.u8(e.good.length);
      e.good.forEach((g, i) => { w.f64(g); w.f64(e.total[i]!); });
      w.f64(e.budgetGood);
      w.f64(e.budgetTotal);
      w.str(e.exemplarTraceId);
    }
    writeRing(w, s.minutes);
    writeRing(w, s.hours);
  }
  return w.bytes();
}

export interface RestoreReport {
  restored: string[];
  /** States in the snapshot whose SLO is gone or whose SLI definition changed (their buckets would mean something else). */
  discarded: string[];
}

/** Restores into a freshly constructed evaluator (same or changed config). */
export function restoreEvaluator(ev: SloEvaluator, bytes: Uint8Array): RestoreReport {
  const r = new Reader(bytes);
  for (const c of MAGIC) if (r.u8() !== c.charCodeAt(0)) throw new Error('not an SLO snapshot (bad magic)');
  const version = r.u8();
  if (version < 1 || version > VERSION) throw new Error(`unsupported SLO snapshot version ${version}`);
  const report: RestoreReport = { restored: [], discarded: [] };
  const n = r.u32();
  for (let i = 0; i < n; i++) {
    const key = r.str();
    const fingerprint = r.str();
    const slash = key.indexOf('/');
    const candidate = ev.state(key.slice(0, slash), key.slice(slash + 1));
    const state = candidate && candidate.fingerprint === fingerprint ? candidate : undefined;
    const watermarkMs = r.f64();
    const droppedLate = r.f64();
    const exemplarTraceId = r.str();
    const exemplarTimeMs = r.f64();
    const nAlerts = r.u8();
    const alerts: { firing: boolean; startsAtMs: number }[] = [];
    for (let a = 0; a < nAlerts; a++) alerts.push({ firing: r.u8() === 1, startsAtMs: r.f64() });
    let lastEval: Evaluation | undefined;
    if (version >= 2 && r.u8() === 1) {
      const atMs = r.f64();
      const nWindows = r.u8();
      const good: number[] = [];
      const total: number[] = [];
      for (let k = 0; k < nWindows; k++) { good.push(r.f64()); total.push(r.f64()); }
      lastEval = { atMs, good, total, budgetGood: r.f64(), budgetTotal: r.f64(), exemplarTraceId: r.str() };
    }
    readRing(r, state?.minutes, version);
    readRing(r, state?.hours, version);
    if (!state) { report.discarded.push(key); continue; }
    if (alerts.length !== state.alerts.length) throw new Error(`SLO snapshot for ${key} has ${alerts.length} alert rules, expected ${state.alerts.length}`);
    state.watermarkMs = watermarkMs;
    state.droppedLate = droppedLate;
    state.exemplarTraceId = exemplarTraceId;
    state.exemplarTimeMs = exemplarTimeMs;
    alerts.forEach((a, j) => Object.assign(state.alerts[j]!, a));
    if (lastEval && lastEval.good.length !== RULE_WINDOWS_MIN.length) throw new Error(`SLO snapshot for ${key} has ${lastEval.good.length} windows, expected ${RULE_WINDOWS_MIN.length}`);
    if (lastEval) state.lastEval = lastEval;
    else if (version === 1 && Number.isFinite(watermarkMs)) state.captureEvaluation();
    report.restored.push(key);
  }
  if (!r.done()) throw new Error('SLO snapshot has trailing bytes');
  return report;
}
