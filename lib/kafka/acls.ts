// Who may do what on the pipeline's Kafka topics: one principal per pipeline part, deny by default
// (the broker's StandardAuthorizer; `admin` is the super user and does setup only). Tenancy on the
// raw topics rests on this: only the receiver (which checked a token) writes them, and a Kafka-direct
// collector writes only its own tenant's direct topics, whose tenant the scrubber takes from the
// topic name, never from the record (docs/operations.md, "Kafka principals and ACLs").
import kafkajs, { type AclEntry, type Kafka } from 'kafkajs';
import { intakeTopics, type TopicNames } from './topics.ts';

export const SUPER_USER = 'admin';
export const PIPELINE_USERS = ['receiver', 'scrub', 'timeline', 'evidence', 'slo', 'api'] as const;
export type PipelineUser = (typeof PIPELINE_USERS)[number];

/** The user of the Kafka-direct collector that writes for `tenant`. */
export const collectorUser = (tenant: string): string => `collector-${tenant}`;

export type DirectTopics = Pick<TopicNames, 'spans' | 'metrics' | 'logs'>;

/** A Kafka-direct collector's raw topics: `<raw topic>.direct.<tenant>`. The scrubber pins every record
 * read from them to `tenant` (a record claiming another tenant is dead-lettered). */
export function directTopics(topics: Pick<TopicNames, 'spans' | 'metrics' | 'logs'>, tenant: string): DirectTopics {
  return { spans: `${topics.spans}.direct.${tenant}`, metrics: `${topics.metrics}.direct.${tenant}`, logs: `${topics.logs}.direct.${tenant}` };
}

export interface AclPlanInput { topics: TopicNames; groupIdPrefix: string; directTenants: readonly string[] }

export interface Grant { user: string; resource: 'topic' | 'group' | 'cluster'; name: string; operation: 'read' | 'write' | 'describe' | 'idempotent_write' }

/** Every ACL the pipeline needs (all ALLOW, literal names, any host). */
export function pipelineGrants(c: AclPlanInput): Grant[] {
  const t = c.topics;
  const raw = [t.spans, t.metrics, t.logs];
  const clean = [t.spansClean, t.metricsClean, t.logsClean];
  const direct = c.directTenants.flatMap((tenant) => Object.values(directTopics(t, tenant)));
  const intake = intakeTopics(t);
  const group = (name: string) => `${c.groupIdPrefix}${name}`;
  const g: Grant[] = [];
  const add = (user: string, resource: Grant['resource'], names: string[], operation: Grant['operation']) => {
    for (const name of names) g.push({ user, resource, name, operation });
  };
  add('receiver', 'topic', raw, 'write');
  add('scrub', 'topic', [...raw, ...direct], 'read');
  add('scrub', 'topic', [...clean, t.dlq, t.timelineEvents], 'write');
  add('scrub', 'group', [group('scrub')], 'read');
  add('timeline', 'topic', [...clean, t.timelineEvents, ...intake], 'read');
  add('timeline', 'topic', [t.timelineEvents, t.dlq], 'write');
  add('timeline', 'group', [group('timeline')], 'read');
  add('evidence', 'topic', [...clean, t.timelineEvents], 'read');
  add('evidence', 'group', [group('evidence')], 'read');
  add('slo', 'topic', [t.spansClean, t.metricsClean, t.sloEvents], 'read');
  add('slo', 'topic', [t.sloEvents, t.timelineEvents], 'write');
  add('slo', 'group', [group('slo')], 'read');
  // Signed intake: the API checks the token, stores the payload in the CAS, then publishes the intake
  // record and its timeline event (lib/intake/publish.ts); legal hold placements and releases
  // (POST/DELETE /evidence/hold) are timeline events too, sealed by the evidence processor.
  add('api', 'topic', [...intake, t.timelineEvents], 'write');
  // GET /obs/top: committed offsets of the processors' groups against the topics' watermarks.
  add('api', 'group', ['scrub', 'timeline', 'evidence', 'slo'].map(group), 'describe');
  add('api', 'topic', [...raw, ...direct, ...clean, t.timelineEvents, t.sloEvents, t.dlq, ...intake], 'describe');
  for (const tenant of c.directTenants) add(`collector-${tenant}`, 'topic', Object.values(directTopics(t, tenant)), 'write');
  // Idempotent producers (ours, and the collector's with acks=all) first ask for a producer id, which
  // the broker grants to kafkajs' InitProducerId v0 only with IdempotentWrite on the cluster.
  for (const user of [...new Set(g.filter((x) => x.operation === 'write').map((x) => x.user))]) add(user, 'cluster', ['kafka-cluster'], 'idempotent_write');
  return g;
}

// kafkajs is CommonJS and these enums are not among the names Node can import from it by name.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;
const OPS = { read: AclOperationTypes.READ, write: AclOperationTypes.WRITE, describe: AclOperationTypes.DESCRIBE, idempotent_write: AclOperationTypes.IDEMPOTENT_WRITE };
const RESOURCES = { topic: AclResourceTypes.TOPIC, group: AclResourceTypes.GROUP, cluster: AclResourceTypes.CLUSTER };

export function aclEntries(grants: readonly Grant[]): AclEntry[] {
  return grants.map((x) => ({
    resourceType: RESOURCES[x.resource],
    resourceName: x.name, resourcePatternType: ResourcePatternTypes.LITERAL,
    principal: `User:${x.user}`, host: '*', operation: OPS[x.operation], permissionType: AclPermissionTypes.ALLOW,
  }));
}

/** Create the pipeline's ACLs (idempotent: the broker keeps one copy of an identical binding).
 * `kafka` must authenticate as a user allowed to alter ACLs (the super user). */
export async function ensurePipelineAcls(kafka: Kafka, plan: AclPlanInput): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const entries = aclEntries(pipelineGrants(plan));
    await admin.createAcls({ acl: entries });
    // The controller has them; the broker's authorizer applies them when it replays the metadata log.
    // Its DescribeAcls answers from that view: wait until every binding shows, so the parts started
    // next are not refused meanwhile.
    const key = (principal: string, type: number, name: string, op: number) => `${principal}\u0000${type}\u0000${name}\u0000${op}`;
    const wanted = new Set(entries.map((e) => key(e.principal, e.resourceType, e.resourceName, e.operation)));
    for (const until = Date.now() + 30_000; ;) {
      const d = await admin.describeAcls({ resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.LITERAL,
        operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ALLOW });
      const have = new Set(d.resources.flatMap((r) => r.acls.map((x) => key(x.principal, r.resourceType, r.resourceName, x.operation))));
      if ([...wanted].every((w) => have.has(w))) return;
      if (Date.now() > until) throw new Error('the broker did not apply the pipeline\'s ACLs within 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.disconnect();
  }
}

const OP_NAMES = { read: 'Read', write: 'Write', describe: 'Describe', idempotent_write: 'IdempotentWrite' };

/** The same ACLs as kafka-acls commands, for an operator setting up an external cluster. */
export function aclCommands(plan: AclPlanInput, bootstrap = '<broker:port>', commandConfig = 'admin.properties'): string[] {
  return pipelineGrants(plan).map((x) => `kafka-acls.sh --bootstrap-server ${bootstrap} --command-config ${commandConfig} --add `
    + `--allow-principal User:${x.user} --operation ${OP_NAMES[x.operation]} ${x.resource === 'cluster' ? '--cluster' : `--${x.resource} ${x.name}`}`);
}
