/**
 * Built-in kinds: defaulting (k8s.io/kubernetes pkg/apis/<group>/v1/defaults.go and the
 * registry strategies' PrepareForCreate), validation that clients hit in practice,
 * the schema check with kubernetes-models, and the strict unknown-field check that
 * `fieldValidation=Strict` asks for (https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation).
 */
import * as k8s from '@kubernetes/client-node';
import { Errors, type StatusCause } from './errors.js';
import { eventCreateCauses, eventsV1ToCore, eventUpdateCauses } from './events.js';
import type { ResourceType } from './resources.js';
import { clone, deepEqual, isDict, type Dict, type KObject, str } from './types.js';

// ---------------------------------------------------------------- unknown fields
interface Attr {
  name: string;
  baseName: string;
  type: string;
}
type Model = { getAttributeTypeMap(): Attr[] };

const MODEL_NAMES: Record<string, string> = {
  '/Event': 'CoreV1Event',
  'events.k8s.io/Event': 'EventsV1Event',
  '/EndpointPort': 'CoreV1EndpointPort',
};

function model(name: string): Model | undefined {
  const m = (k8s as unknown as Record<string, unknown>)[name];
  return typeof m === 'function' && 'getAttributeTypeMap' in m ? (m as unknown as Model) : undefined;
}

/** Drops fields the kind's Go type lacks; returns their dotted paths. */
export function pruneUnknownBuiltin(t: ResourceType, obj: Dict): string[] {
  const root = model(MODEL_NAMES[`${t.group}/${t.kind}`] ?? `V1${t.kind}`);
  if (!root) return [];
  const unknown: string[] = [];
  const walk = (v: unknown, type: string, path: string): void => {
    if (v === null || v === undefined) return;
    const arr = /^Array<(.+)>$/.exec(type);
    if (arr) {
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, arr[1]!, `${path}[${i}]`));
      return;
    }
    const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
    if (map) {
      if (isDict(v)) for (const [k, x] of Object.entries(v)) walk(x, map[1]!, `${path}.${k}`);
      return;
    }
    const m = model(type);
    if (!m || !isDict(v)) return;
    const attrs = m.getAttributeTypeMap();
    for (const k of Object.keys(v)) {
      const a = attrs.find((x) => x.baseName === k);
      const sub = path === '' ? k : `${path}.${k}`;
      if (!a) {
        unknown.push(sub);
        delete v[k];
      } else walk(v[k], a.type, sub);
    }
  };
  walk(obj, MODEL_NAMES[`${t.group}/${t.kind}`] ?? `V1${t.kind}`, '');
  return unknown;
}

// ---------------------------------------------------------------- schema (kubernetes-models)
type Validatable = { validate(): void };
const modelCache = new Map<string, Promise<(new (o: Dict) => Validatable) | undefined>>();

function modelsClass(t: ResourceType): Promise<(new (o: Dict) => Validatable) | undefined> {
  const path = `kubernetes-models/${t.group === '' ? '' : `${t.group}/`}${t.version}/${t.kind}`;
  let p = modelsClass_cache(path);
  if (!p) {
    p = import(path).then(
      (m: Record<string, unknown>) => m[t.kind] as new (o: Dict) => Validatable,
      () => undefined,
    );
    modelCache.set(path, p);
  }
  return p;
}
function modelsClass_cache(path: string): Promise<(new (o: Dict) => Validatable) | undefined> | undefined {
  return modelCache.get(path);
}

interface AjvLikeError {
  instancePath: string;
  message?: string;
  keyword: string;
  params: Dict;
}

/**
 * Known disagreements between kubernetes-models 4.5.1 and the real server (NOTES.md §1c):
 * the server accepts these, so they are not reported.
 */
const FALSE_POSITIVES = [/onPodConditions\/\d+$/, /\/metadata\/creationTimestamp$/];

export async function schemaCausesBuiltin(t: ResourceType, obj: KObject): Promise<StatusCause[]> {
  const C = await modelsClass(t);
  if (!C) return [];
  try {
    new C(clone(obj)).validate();
    return [];
  } catch (e) {
    const errors = ((e as { errors?: AjvLikeError[] }).errors ?? []).filter(
      (x) =>
        x.keyword !== 'anyOf' &&
        x.keyword !== 'oneOf' &&
        !FALSE_POSITIVES.some((re) => re.test(x.instancePath)),
    );
    return errors.map((x) => {
      const field = x.instancePath
        .split('/')
        .slice(1)
        .map((s) => (/^\d+$/.test(s) ? `[${s}]` : `.${s}`))
        .join('')
        .replace(/^\./, '');
      if (x.keyword === 'required') {
        const p = x.params.missingProperty as string;
        return {
          reason: 'FieldValueRequired',
          field: field ? `${field}.${p}` : p,
          message: 'Required value',
        };
      }
      return { reason: 'FieldValueInvalid', field, message: `Invalid value: ${x.message ?? x.keyword}` };
    });
  }
}

// ---------------------------------------------------------------- defaults
function defaultContainer(c: Dict): void {
  const image = str(c.image ?? '');
  const tag = /:([^/:@]+)$/.exec(image)?.[1];
  c.imagePullPolicy ??= tag === undefined || tag === 'latest' ? 'Always' : 'IfNotPresent';
  c.terminationMessagePath ??= '/dev/termination-log';
  c.terminationMessagePolicy ??= 'File';
  c.resources ??= {};
  for (const p of (c.ports as Dict[] | undefined) ?? []) p.protocol ??= 'TCP';
  for (const e of (c.env as Dict[] | undefined) ?? []) {
    const fr = (e.valueFrom as Dict | undefined)?.fieldRef as Dict | undefined;
    if (fr) fr.apiVersion ??= 'v1';
  }
}

export function defaultPodSpec(spec: Dict): void {
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.securityContext ??= {};
  spec.schedulerName ??= 'default-scheduler';
  for (const c of [
    ...((spec.containers as Dict[] | undefined) ?? []),
    ...((spec.initContainers as Dict[] | undefined) ?? []),
  ])
    defaultContainer(c);
  for (const v of (spec.volumes as Dict[] | undefined) ?? []) {
    if (isDict(v.hostPath)) v.hostPath.type ??= '';
    if (isDict(v.configMap)) v.configMap.defaultMode ??= 420;
    if (isDict(v.secret)) v.secret.defaultMode ??= 420;
  }
}

function defaultTemplate(spec: Dict): void {
  const tmpl = spec.template as Dict | undefined;
  if (isDict(tmpl) && isDict(tmpl.spec)) defaultPodSpec(tmpl.spec);
}

let nextClusterIp = 10;

/** Defaults applied on create (and on update for the spec parts). */
export function applyDefaults(t: ResourceType, o: KObject, creating: boolean): void {
  const spec = isDict(o.spec) ? o.spec : undefined;
  switch (`${t.group}/${t.kind}`) {
    case '/Pod':
      if (spec) {
        defaultPodSpec(spec);
        spec.enableServiceLinks ??= true;
        spec.priority ??= 0;
        spec.preemptionPolicy ??= 'PreemptLowerPriority';
        if (creating) {
          // ServiceAccount and DefaultTolerationSeconds admission plugins.
          spec.serviceAccountName ??= spec.serviceAccount ?? 'default';
          spec.serviceAccount ??= spec.serviceAccountName;
          const tol = ((spec.tolerations as Dict[] | undefined) ??= []);
          for (const key of ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable'])
            if (!tol.some((x) => x.key === key))
              tol.push({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 });
        }
      }
      if (creating) o.status = { phase: 'Pending', qosClass: 'BestEffort' };
      break;
    case 'batch/Job':
      if (spec) {
        spec.parallelism ??= 1;
        spec.completions ??= 1;
        if (spec.backoffLimitPerIndex === undefined) spec.backoffLimit ??= 6;
        spec.completionMode ??= 'NonIndexed';
        spec.suspend ??= false;
        spec.manualSelector ??= undefined;
        spec.podReplacementPolicy ??= spec.podFailurePolicy ? 'Failed' : 'TerminatingOrFailed';
        for (const r of ((spec.podFailurePolicy as Dict | undefined)?.rules as Dict[] | undefined) ?? [])
          for (const c of (r.onPodConditions as Dict[] | undefined) ?? []) c.status ??= 'True';
        defaultTemplate(spec);
        if (creating && spec.manualSelector !== true) {
          // generateSelector in pkg/registry/batch/job/strategy.go
          const uid = o.metadata.uid!;
          const tmpl = ((spec.template as Dict | undefined) ??= {});
          const meta = ((tmpl.metadata as Dict | undefined) ??= {});
          const labels = ((meta.labels as Record<string, string> | undefined) ??= {});
          labels['batch.kubernetes.io/controller-uid'] = uid;
          labels['batch.kubernetes.io/job-name'] = o.metadata.name!;
          labels['controller-uid'] = uid;
          labels['job-name'] = o.metadata.name!;
          spec.selector ??= { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } };
        }
        if (spec.manualSelector === undefined) delete spec.manualSelector;
      }
      if (creating) o.status = {};
      break;
    case 'apps/Deployment':
      if (spec) {
        spec.replicas ??= 1;
        spec.strategy ??= {
          type: 'RollingUpdate',
          rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' },
        };
        spec.revisionHistoryLimit ??= 10;
        spec.progressDeadlineSeconds ??= 600;
        defaultTemplate(spec);
      }
      if (creating) o.status = {};
      break;
    case 'apps/StatefulSet':
    case 'apps/DaemonSet':
    case 'apps/ReplicaSet':
      if (spec) defaultTemplate(spec);
      if (creating) o.status = {};
      break;
    case '/Service':
      if (spec) {
        spec.type ??= 'ClusterIP';
        spec.sessionAffinity ??= 'None';
        for (const p of (spec.ports as Dict[] | undefined) ?? []) {
          p.protocol ??= 'TCP';
          p.targetPort ??= p.port;
        }
        if (creating && spec.clusterIP !== 'None') {
          spec.clusterIP ??= `10.96.${Math.floor(nextClusterIp / 250)}.${(nextClusterIp++ % 250) + 1}`;
          spec.clusterIPs ??= [spec.clusterIP];
        }
        spec.ipFamilies ??= ['IPv4'];
        spec.ipFamilyPolicy ??= 'SingleStack';
        spec.internalTrafficPolicy ??= 'Cluster';
      }
      if (creating) o.status = { loadBalancer: {} };
      break;
    case '/Secret': {
      o.type ??= 'Opaque';
      const sd = o.stringData as Record<string, string> | undefined;
      if (sd) {
        const data = ((o.data as Record<string, string> | undefined) ??= {});
        for (const [k, v] of Object.entries(sd)) data[k] = Buffer.from(v).toString('base64');
        delete o.stringData;
      }
      break;
    }
    case '/Namespace':
      o.metadata.labels = { ...o.metadata.labels, 'kubernetes.io/metadata.name': o.metadata.name! };
      if (creating) {
        o.spec = { finalizers: ['kubernetes'] };
        o.status = { phase: 'Active' };
      }
      break;
    case '/PersistentVolumeClaim':
      if (creating) o.status = { phase: 'Pending' };
      if (spec) spec.volumeMode ??= 'Filesystem';
      break;
    case 'apiextensions.k8s.io/CustomResourceDefinition':
      if (spec) spec.conversion ??= { strategy: 'None' };
      break;
  }
}

// ---------------------------------------------------------------- validation
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;

/**
 * metav1.MicroTime must carry exactly six fractional digits (client-node's `Date`
 * gives three: kubernetes-client/javascript#828). The real server fails to decode it: 400.
 */
export function checkMicroTimes(t: ResourceType, o: KObject): void {
  const fields: [string, unknown][] = [];
  if (t.group === 'coordination.k8s.io' && isDict(o.spec)) {
    fields.push(['spec.acquireTime', o.spec.acquireTime], ['spec.renewTime', o.spec.renewTime]);
  }
  if (t.group === 'events.k8s.io') fields.push(['eventTime', o.eventTime]);
  if (t.group === '' && t.kind === 'Event' && o.eventTime !== undefined && o.eventTime !== null)
    fields.push(['eventTime', o.eventTime]);
  for (const [, v] of fields) {
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string' || !MICRO_TIME.test(v))
      throw Errors.badRequest(
        `${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: parsing time "${str(v)}" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "${str(v).slice(20)}" as "000000"`,
      );
  }
}

function podSpecCauses(spec: Dict | undefined, prefix: string): StatusCause[] {
  const out: StatusCause[] = [];
  const cs = (spec?.containers as Dict[] | undefined) ?? [];
  if (cs.length === 0)
    out.push({ reason: 'FieldValueRequired', field: `${prefix}.containers`, message: 'Required value' });
  const names = new Set<string>();
  cs.forEach((c, i) => {
    if (!c.image)
      out.push({
        reason: 'FieldValueRequired',
        field: `${prefix}.containers[${i}].image`,
        message: 'Required value',
      });
    if (names.has(str(c.name)))
      out.push({
        reason: 'FieldValueDuplicate',
        field: `${prefix}.containers[${i}].name`,
        message: `Duplicate value: "${str(c.name)}"`,
      });
    names.add(str(c.name));
  });
  return out;
}

const POD_MUTABLE = [
  'activeDeadlineSeconds',
  'tolerations',
  'terminationGracePeriodSeconds',
  'schedulingGates',
];

/** Kind-specific checks (422) on create and update. */
export function validateBuiltin(t: ResourceType, o: KObject, old: KObject | undefined): StatusCause[] {
  const out: StatusCause[] = [];
  const spec = o.spec as Dict | undefined;
  switch (`${t.group}/${t.kind}`) {
    case '/Pod':
      out.push(...podSpecCauses(spec, 'spec'));
      if (old) {
        const a = clone(old.spec as Dict);
        const b = clone(spec ?? {});
        for (const k of POD_MUTABLE) {
          delete a[k];
          delete b[k];
        }
        if (a.nodeName === undefined) delete b.nodeName;
        for (const c of [
          ...((a.containers as Dict[] | undefined) ?? []),
          ...((b.containers as Dict[] | undefined) ?? []),
        ])
          delete c.image;
        if (!deepEqual(a, b))
          out.push({
            reason: 'FieldValueForbidden',
            field: 'spec',
            message:
              'Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
          });
      }
      break;
    case '/Event':
      out.push(...(old ? eventUpdateCauses(o, old, 'core/v1') : eventCreateCauses(o, 'core/v1')));
      break;
    case 'events.k8s.io/Event': {
      const e = eventsV1ToCore(o);
      out.push(
        ...(old
          ? eventUpdateCauses(e, eventsV1ToCore(old), 'events.k8s.io/v1')
          : eventCreateCauses(e, 'events.k8s.io/v1')),
      );
      break;
    }
    case 'batch/Job': {
      const tmpl = (spec?.template as Dict | undefined)?.spec as Dict | undefined;
      out.push(...podSpecCauses(tmpl, 'spec.template.spec'));
      const rp = tmpl?.restartPolicy;
      if (rp !== 'Never' && rp !== 'OnFailure')
        out.push({
          reason: 'FieldValueNotSupported',
          field: 'spec.template.spec.restartPolicy',
          message: `Unsupported value: "${str(rp)}": supported values: "OnFailure", "Never"`,
        });
      if (spec?.podFailurePolicy && rp !== 'Never')
        out.push({
          reason: 'FieldValueInvalid',
          field: 'spec.podFailurePolicy',
          message: 'Invalid value: only "Never" is supported when podFailurePolicy is specified',
        });
      if (old) {
        const os = old.spec as Dict;
        for (const f of ['selector', 'completionMode', 'podFailurePolicy', 'backoffLimitPerIndex'])
          if (!deepEqual(os[f], spec?.[f]))
            out.push({
              reason: 'FieldValueInvalid',
              field: `spec.${f}`,
              message: 'Invalid value: field is immutable',
            });
        if (!deepEqual(os.template, spec?.template) && os.suspend !== true)
          out.push({
            reason: 'FieldValueInvalid',
            field: 'spec.template',
            message: 'Invalid value: field is immutable',
          });
      }
      break;
    }
  }
  return out;
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function nameCauses(t: ResourceType, name: string): StatusCause[] {
  if (t.group === 'rbac.authorization.k8s.io' && t.kind.includes('Role')) return [];
  const label = t.kind === 'Namespace' || t.kind === 'Service';
  const ok = label
    ? DNS1123_LABEL.test(name) && name.length <= 63
    : DNS1123_SUBDOMAIN.test(name) && name.length <= 253;
  if (ok) return [];
  return [
    {
      reason: 'FieldValueInvalid',
      field: 'metadata.name',
      message: `Invalid value: "${name}": a lowercase RFC 1123 ${label ? 'label' : 'subdomain'} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
    },
  ];
}
