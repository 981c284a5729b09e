// Node/V8 flags the pipeline's process is meant to run with. They can only be set on node's command
// line (or NODE_OPTIONS), never from inside the process, so they are written out where stella is
// started: the `stella` shebang, the npm scripts and the benchmark's receiver (a test keeps those in
// step with this list).
//
// --max-semi-space-size=4: V8's default young generation on a 64-bit machine is 16 MB per semi-space.
// V8 starts incremental marking (ending in a full mark-compact) as soon as the old generation's
// headroom (its limit minus its size) is no larger than the young generation's capacity (two
// semi-spaces). On the receiver's ~17 MB old heap the headroom is ~24 MB, so with 32 MB of young
// generation it marked all the time: at the gRPC peak, a mark-compact every ~100 ms and V8's helper
// threads at ~36% of the process's CPU. 8 MB semi-spaces (16 MB young) fixed most runs, but the
// headroom sits right at 16 MB there and about one peak run in ten still fell into back-to-back
// mark-compacts; with 4 MB none did in 12 runs. The receiver then spends ~0.55x (gRPC) and ~0.7x
// (HTTP) the CPU per span (BENCHMARKS.md, ingest).
export const NODE_FLAGS = ['--max-semi-space-size=4'] as const;

/** The NODE_FLAGS this process was started without (from node's own arguments or NODE_OPTIONS). */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].filter(Boolean);
  return NODE_FLAGS.filter((flag) => {
    const name = flag.split('=')[0]!;
    // Any value counts (an operator's own choice); V8 also accepts '_' for '-' in flag names.
    return !given.some((g) => g.replaceAll('_', '-').startsWith(`${name}=`));
  });
}
