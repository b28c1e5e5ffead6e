/**
 * The resource types the simulated API server serves: built-in kinds (declared here,
 * with the discovery data of a 1.33-era server) and custom resources (made from CRDs
 * at run time). Discovery data: `kubectl api-resources -o wide` on a real cluster and
 * https://kubernetes.io/docs/reference/kubectl/#resource-types.
 */
import type { CrdVersionInfo } from './crd.js';
import { coreToEventsV1, EVENTS_V1_FIELD_LABELS, eventsV1ToCore } from './events.js';
import type { KObject } from './types.js';

export type DeletePropagation = 'Orphan' | 'Background' | 'Foreground';

export interface ResourceType {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly listKind: string;
  readonly plural: string;
  readonly singular: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  readonly categories: readonly string[];
  readonly verbs: readonly string[];
  /** Subresources besides the main resource: status, log, eviction, binding, finalize. */
  readonly subresources: readonly string[];
  /** metadata.generation is kept and bumped on spec changes. */
  readonly generation: boolean;
  /** Writes to the main resource keep the stored status (status subresource semantics). */
  readonly statusSubresource: boolean;
  /** What DELETE without propagationPolicy does to dependents. */
  readonly defaultPropagation: DeletePropagation;
  /** DELETE answers with the object (true) or a Status (false). */
  readonly returnDeletedObject: boolean;
  /** Extra fieldSelector keys besides metadata.name/metadata.namespace. */
  readonly fieldSelectors: readonly string[];
  /** Set for custom resources. */
  readonly crd?: CrdVersionInfo;
  /** Set for a type served from another type's objects (events.k8s.io/v1 Event). */
  readonly storage?: StorageView;
}

/**
 * A second API onto stored objects of another type, as the real server serves one
 * stored object at several group-versions: reads convert from the stored form, writes
 * to it, and watches see the stored type's changes.
 */
export interface StorageView {
  /** typeKey of the type whose objects these are. */
  readonly storedAs: string;
  toStored(o: KObject): KObject;
  fromStored(o: KObject): KObject;
  /** This type's field-selector labels → the stored type's. */
  readonly fieldLabels: Readonly<Record<string, string>>;
}

export function apiVersionOf(t: Pick<ResourceType, 'group' | 'version'>): string {
  return t.group === '' ? t.version : `${t.group}/${t.version}`;
}

export function typeKey(group: string, version: string, plural: string): string {
  return `${group}/${version}/${plural}`;
}

export function keyOf(t: ResourceType): string {
  return typeKey(t.group, t.version, t.plural);
}

/** Where the objects of a type are stored: its own key, or that of the type it is a view of. */
export function storedKeyOf(t: ResourceType): string {
  return t.storage?.storedAs ?? keyOf(t);
}

/** A stored object as the type serves it. */
export function viewOf(t: ResourceType, stored: KObject): KObject {
  return t.storage ? t.storage.fromStored(stored) : stored;
}

/** An object of the type as it is stored. */
export function storedOf(t: ResourceType, o: KObject): KObject {
  return t.storage ? t.storage.toStored(o) : o;
}

const RW = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

interface Decl extends Partial<ResourceType> {
  group: string;
  version: string;
  kind: string;
  plural: string;
}

function decl(d: Decl): ResourceType {
  return {
    listKind: `${d.kind}List`,
    singular: d.kind.toLowerCase(),
    namespaced: true,
    shortNames: [],
    categories: [],
    verbs: RW,
    subresources: [],
    generation: false,
    statusSubresource: false,
    defaultPropagation: 'Background',
    returnDeletedObject: false,
    fieldSelectors: [],
    ...d,
  };
}

const ALL = ['all'];

/** Built-in kinds. `generation` and `statusSubresource` follow each kind's registry strategy. */
export const BUILTIN_TYPES: readonly ResourceType[] = [
  decl({
    group: '',
    version: 'v1',
    kind: 'Namespace',
    plural: 'namespaces',
    namespaced: false,
    shortNames: ['ns'],
    subresources: ['status', 'finalize'],
    statusSubresource: true,
    returnDeletedObject: true,
    fieldSelectors: ['status.phase'],
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
  }),
  decl({
    group: '',
    version: 'v1',
    kind: 'Pod',
    plural: 'pods',
    shortNames: ['po'],
    categories: ALL,
    subresources: ['status', 'log', 'eviction', 'binding'],
    statusSubresource: true,
    returnDeletedObject: true,
    fieldSelectors: [
      'spec.nodeName',
      'spec.restartPolicy',
      'spec.schedulerName',
      'spec.serviceAccountName',
      'spec.hostNetwork',
      'status.phase',
      'status.podIP',
      'status.nominatedNodeName',
    ],
  }),
  decl({ group: '', version: 'v1', kind: 'Secret', plural: 'secrets', fieldSelectors: ['type'] }),
  decl({ group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', shortNames: ['cm'] }),
  decl({
    group: '',
    version: 'v1',
    kind: 'Event',
    plural: 'events',
    shortNames: ['ev'],
    fieldSelectors: [
      'involvedObject.kind',
      'involvedObject.namespace',
      'involvedObject.name',
      'involvedObject.uid',
      'involvedObject.apiVersion',
      'involvedObject.resourceVersion',
      'involvedObject.fieldPath',
      'reason',
      'reportingComponent',
      'source',
      'type',
    ],
  }),
  decl({
    group: '',
    version: 'v1',
    kind: 'Service',
    plural: 'services',
    shortNames: ['svc'],
    categories: ALL,
    subresources: ['status'],
    statusSubresource: true,
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
  }),
  decl({ group: '', version: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', shortNames: ['sa'] }),
  decl({ group: '', version: 'v1', kind: 'Endpoints', plural: 'endpoints', shortNames: ['ep'] }),
  decl({
    group: '',
    version: 'v1',
    kind: 'PersistentVolumeClaim',
    plural: 'persistentvolumeclaims',
    shortNames: ['pvc'],
    subresources: ['status'],
    statusSubresource: true,
  }),
  decl({
    group: '',
    version: 'v1',
    kind: 'PersistentVolume',
    plural: 'persistentvolumes',
    namespaced: false,
    shortNames: ['pv'],
    subresources: ['status'],
    statusSubresource: true,
  }),
  decl({
    group: '',
    version: 'v1',
    kind: 'Node',
    plural: 'nodes',
    namespaced: false,
    shortNames: ['no'],
    subresources: ['status'],
    statusSubresource: true,
    fieldSelectors: ['spec.unschedulable'],
  }),
  decl({
    group: 'apps',
    version: 'v1',
    kind: 'Deployment',
    plural: 'deployments',
    shortNames: ['deploy'],
    categories: ALL,
    subresources: ['status', 'scale'],
    generation: true,
    statusSubresource: true,
  }),
  decl({
    group: 'apps',
    version: 'v1',
    kind: 'ReplicaSet',
    plural: 'replicasets',
    shortNames: ['rs'],
    categories: ALL,
    subresources: ['status', 'scale'],
    generation: true,
    statusSubresource: true,
  }),
  decl({
    group: 'apps',
    version: 'v1',
    kind: 'StatefulSet',
    plural: 'statefulsets',
    shortNames: ['sts'],
    categories: ALL,
    subresources: ['status', 'scale'],
    generation: true,
    statusSubresource: true,
  }),
  decl({
    group: 'apps',
    version: 'v1',
    kind: 'DaemonSet',
    plural: 'daemonsets',
    shortNames: ['ds'],
    categories: ALL,
    subresources: ['status'],
    generation: true,
    statusSubresource: true,
  }),
  decl({
    group: 'batch',
    version: 'v1',
    kind: 'Job',
    plural: 'jobs',
    categories: ALL,
    subresources: ['status'],
    generation: true,
    statusSubresource: true,
    // https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-termination-and-cleanup
    defaultPropagation: 'Orphan',
    fieldSelectors: ['status.successful'],
  }),
  decl({
    group: 'batch',
    version: 'v1',
    kind: 'CronJob',
    plural: 'cronjobs',
    shortNames: ['cj'],
    categories: ALL,
    subresources: ['status'],
    generation: true,
    statusSubresource: true,
  }),
  decl({ group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', plural: 'leases' }),
  // The same objects as core/v1 Events, converted (events.ts).
  decl({
    group: 'events.k8s.io',
    version: 'v1',
    kind: 'Event',
    plural: 'events',
    shortNames: ['ev'],
    fieldSelectors: Object.keys(EVENTS_V1_FIELD_LABELS).filter((l) => !l.startsWith('metadata.')),
    storage: {
      storedAs: typeKey('', 'v1', 'events'),
      toStored: eventsV1ToCore,
      fromStored: coreToEventsV1,
      fieldLabels: EVENTS_V1_FIELD_LABELS,
    },
  }),
  decl({
    group: 'apiextensions.k8s.io',
    version: 'v1',
    kind: 'CustomResourceDefinition',
    plural: 'customresourcedefinitions',
    namespaced: false,
    shortNames: ['crd', 'crds'],
    subresources: ['status'],
    generation: true,
    statusSubresource: true,
    categories: ['api-extensions'],
    returnDeletedObject: true,
  }),
  decl({ group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'Role', plural: 'roles' }),
  decl({ group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'RoleBinding', plural: 'rolebindings' }),
  decl({
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    kind: 'ClusterRole',
    plural: 'clusterroles',
    namespaced: false,
  }),
  decl({
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    kind: 'ClusterRoleBinding',
    plural: 'clusterrolebindings',
    namespaced: false,
  }),
  decl({
    group: 'networking.k8s.io',
    version: 'v1',
    kind: 'NetworkPolicy',
    plural: 'networkpolicies',
    shortNames: ['netpol'],
    generation: true,
  }),
  decl({
    group: 'policy',
    version: 'v1',
    kind: 'PodDisruptionBudget',
    plural: 'poddisruptionbudgets',
    shortNames: ['pdb'],
    subresources: ['status'],
    generation: true,
    statusSubresource: true,
  }),
];

/** Preferred order of groups in /apis, as a real server lists them. */
export const GROUP_ORDER = [
  'apps',
  'events.k8s.io',
  'batch',
  'policy',
  'rbac.authorization.k8s.io',
  'networking.k8s.io',
  'coordination.k8s.io',
  'apiextensions.k8s.io',
];
