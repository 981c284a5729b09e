// The intake kinds' ClickHouse writers, registered with the timeline processor's intake hook
// (intake-hook.ts). Each intake owner adds its sink here; `stella run` passes this list to the
// timeline runner, which then also consumes the sinks' topics.
import type { BlobStore } from '../../lib/cas.ts';
import type { IntakeEnvelopeVerifier } from '../../lib/intake/trust.ts';
import { runtimeFactsSink, type RuntimeOrphanDeps } from '../intake/runtime-sink.ts';
import type { IntakeSink } from './intake-hook.ts';
import { writeArtifactIntake } from '../intake/artifact-sink.ts';
import { elfBuildIdReader } from '../intake/artifacts.ts';
import { exportSink } from '../intake/export-sink.ts';
import { graphSink } from '../intake/graph-sink.ts';
import type { GraphRegistry } from '../../lib/intake/graphs.ts';

export interface IntakeSinkDeps {
  /** The tenants' intake DSSE trust (lib/intake/trust.ts): sinks re-verify, they trust nothing the API did. */
  verify: IntakeEnvelopeVerifier;
  cas: BlobStore;
  /** Runtime-facts orphans (graph registry, queue, policy); absent: facts are written whatever their graph. */
  orphans?: RuntimeOrphanDeps;
  /** The graph registry the graph sink completes registrations in (absent: the sink only checks them). */
  graphs?: GraphRegistry;
}

/** artifacts, symbol_bundles, provenance_evidence (docs/intake.md "Artifacts and symbol bundles"). */
export function artifactSink(deps: IntakeSinkDeps): IntakeSink {
  return {
    name: 'artifacts',
    topics: ['intakeArtifacts', 'intakeSymbols'],
    write: async (records, ctx) => (await writeArtifactIntake(ctx.writer, records.intakeArtifacts ?? [], records.intakeSymbols ?? [],
      { verify: deps.verify, casGet: (tenant, digest) => deps.cas.get(tenant, digest), readElfBuildId: elfBuildIdReader }))
      .map((d) => ({ record: d.message, reason: d.reason })),
  };
}

export function intakeSinks(deps: IntakeSinkDeps): IntakeSink[] {
  return [
    runtimeFactsSink(deps),
    artifactSink(deps),
    exportSink(deps.verify),
    graphSink({ cas: deps.cas, ...(deps.graphs ? { graphs: deps.graphs } : {}) }),
  ];
}
