// Progress bars for long CLI work: on stderr only, and only when stderr is a terminal or the user
// asked with --progress (then every redraw is a carriage-return line, so a log file shows them too).
// stdout (tables, JSON, YAML) is never touched.

export interface ProgressBar {
  /** `done` of `total` units (total unknown: a counter without a bar). */
  update(done: number, total?: number, label?: string): void;
  /** Finish the line (no-op when nothing was drawn). */
  end(): void;
}

const WIDTH = 24;

export function formatUnits(n: number, unit: 'bytes' | 'items'): string {
  if (unit === 'items') return String(n);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** One bar line: `label [########----------------]  33% 1.0/3.0 MiB`. */
export function progressLine(label: string, done: number, total: number | undefined, unit: 'bytes' | 'items'): string {
  if (!total || total <= 0) return `${label} ${formatUnits(done, unit)}`;
  const f = Math.max(0, Math.min(1, done / total));
  const filled = Math.round(f * WIDTH);
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${String(Math.floor(f * 100)).padStart(3)}% ${formatUnits(done, unit)}/${formatUnits(total, unit)}`;
}

export function progressBar(write: (s: string) => void, enabled: boolean, label: string, unit: 'bytes' | 'items' = 'items'): ProgressBar {
  let last = '';
  let width = 0;
  return {
    update(done, total, l) {
      if (!enabled) return;
      const line = progressLine(l ?? label, done, total, unit);
      if (line === last) return;
      // Pad over a longer previous line instead of relying on terminal escape codes.
      write(`\r${line.padEnd(width)}`);
      width = Math.max(width, line.length);
      last = line;
    },
    end() {
      if (enabled && last) write('\n');
      last = '';
    },
  };
}
