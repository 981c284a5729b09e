// Public surface of the scrub processor (the lead wires config, argv and process startup).
export { parseScrubConfig, policyFor, ScrubConfigError, type ScrubConfig, type TenantScrubPolicy, type DeepDebugGrant, type RedactionStyle, type RuleSetting } from './config.ts';
export { scrubRequest, WireError, type ScrubSummary, type WireScrubResult } from './wire.ts';
export { DEFAULT_RULES, FAMILIES, RULE_IDS } from './rules.ts';
export { GrantTracker, type TimelineEvent } from './grants.ts';
export { startScrub, type ScrubRunnerOptions, type RunningScrub } from './runner.ts';
export { scrubJsonCommand, type ScrubJsonOptions } from './cli.ts';
