// Paths inside a tenant's evidence directory (tlog-tiles layout plus our sealed history).
export const CHECKPOINT_FILE = 'checkpoint';
export const checkpointHistoryPath = (size: number): string => `checkpoints/${size}`;
export const envelopePath = (size: number): string => `envelopes/${size}.dsse.json`;
/** Written before entry bundle N is deleted by retention (docs/evidence.md "Retention and legal hold"). */
export const prunedMarkerPath = (bundle: number): string => `pruned/${bundle}.json`;
export const keyRecordPath = (keyIdHex: string): string => `keys/${keyIdHex}.json`;
export const defaultOrigin = (tenant: string): string => `stella-telemetry.example/tenants/${tenant}`;

/** Sizes of the files named `<size><suffix>` in a listing, ascending. */
export function sizesFromNames(names: readonly string[], suffix = ''): number[] {
  const out: number[] = [];
  for (const n of names) {
    if (!n.endsWith(suffix)) continue;
    const s = n.slice(0, n.length - suffix.length);
    if (/^(0|[1-9]\d*)$/.test(s)) out.push(Number(s));
  }
  return out.sort((a, b) => a - b);
}

/** What the store keeps about each signing key (keys/<key id>.json). */
export interface KeyRecord { verifier_key: string; valid_from_size: number; rotation_index: number | null }
