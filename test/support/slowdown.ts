// "Does this pathological input stall the code?" without a wall-clock bound: a fixed number of
// milliseconds fails whenever the machine is busy (a whole suite on 2 shared cores), so the hostile
// input is timed against a benign input of the same size, run by the same code in the same test.
// A linear scanner keeps the ratio near its constant factor however loaded the box is; a quadratic
// one on a 1 MB input is hundreds of times slower than the benign run, so a bound of a few x still
// catches it.

export interface Slowdown {
  /** Cheapest hostile run / cheapest benign run (CPU time). */
  ratio: number;
  hostileMs: number;
  benignMs: number;
  /** For the assertion message. */
  text: string;
}

/** The default bound on `ratio` for the linear-time tests. */
export const MAX_SLOWDOWN = 8;

/** CPU time (user + system of this process, GC helper threads included) that `f` takes, in ms. */
function cpuMs(f: () => unknown): number {
  const start = process.cpuUsage();
  f();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

/**
 * Runs `hostile()` and `benign()` interleaved `rounds` times (so a change of load hits both) and
 * compares the cheapest run of each, in CPU time: wall time also counts the time the process waits
 * for a core, which on a loaded box varied the ratio of one linear input 4x-12x; CPU time kept it
 * within 3.9x-4.4x at load 25. Noise only ever adds cost, and the first round also pays JIT and regex
 * compilation, so the cheapest run is the closest to what the input itself costs.
 */
export function slowdown(hostile: () => unknown, benign: () => unknown, rounds = 3): Slowdown {
  let hostileMs = Infinity;
  let benignMs = Infinity;
  for (let i = 0; i < rounds; i++) {
    benignMs = Math.min(benignMs, cpuMs(benign));
    hostileMs = Math.min(hostileMs, cpuMs(hostile));
  }
  // A benign run of under a few ms would make the ratio mostly clock granularity: callers size
  // inputs so it is not (the assertion message shows both).
  const ratio = hostileMs / Math.max(benignMs, 0.001);
  return { ratio, hostileMs, benignMs, text: `hostile ${hostileMs.toFixed(1)} ms vs benign ${benignMs.toFixed(1)} ms CPU (${ratio.toFixed(1)}x)` };
}
