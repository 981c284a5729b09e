// Node/V8 flags the pipeline's process is meant to run with. They can only be set on node's command
// line (or NODE_OPTIONS), never from inside the process, so they are written out where stella is
// started: the `stella` shebang, the npm scripts and the benchmark's receiver (a test keeps those in
// step with this list).
//
// --max-semi-space-size=8: V8's default young generation on a 64-bit machine is 16 MB per semi-space.
// V8 then starts incremental marking (a full mark-compact) whenever the old generation's headroom
// falls below the young generation's capacity, which with a ~17 MB old heap was all the time: at the
// receiver's gRPC peak, a mark-compact every ~100 ms and V8's helper threads at ~36% of the process's
// CPU. With 8 MB semi-spaces the same run does ~2 mark-compacts in all and the receiver spends
// 0.6x the CPU per span (BENCHMARKS.md, ingest).
export const NODE_FLAGS = ['--max-semi-space-size=8'] as const;

/** The NODE_FLAGS this process was started without (from node's own arguments or NODE_OPTIONS). */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].filter(Boolean);
  return NODE_FLAGS.filter((flag) => {
    const name = flag.split('=')[0]!;
    return !given.some((g) => g === flag || g.startsWith(`${name}=`) || g.replaceAll('_', '-').startsWith(`${name}=`));
  });
}
