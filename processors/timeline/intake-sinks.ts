// The intake kinds' ClickHouse writers, registered with the timeline processor's intake hook
// (intake-hook.ts). Each intake owner adds its sink here; `stella run` passes this list to the
// timeline runner, which then also consumes the sinks' topics.
import type { BlobStore } from '../../lib/cas.ts';
import type { IntakeEnvelopeVerifier } from '../../lib/intake/trust.ts';
import { runtimeFactsSink } from '../intake/runtime-sink.ts';
import type { IntakeSink } from './intake-hook.ts';

export interface IntakeSinkDeps {
  /** The tenants' intake DSSE trust (lib/intake/trust.ts): sinks re-verify, they trust nothing the API did. */
  verify: IntakeEnvelopeVerifier;
  cas: BlobStore;
}

export function intakeSinks(deps: IntakeSinkDeps): IntakeSink[] {
  return [
    runtimeFactsSink(deps),
  ];
}
