/**
 * `Table` responses (Accept: application/json;as=Table;v=v1;g=meta.k8s.io), which
 * kubectl asks for to print `get` output. Custom resources use their
 * `additionalPrinterColumns` (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#additional-printer-columns);
 * built-in kinds use the columns of k8s.io/kubernetes pkg/printers/internalversion.
 * https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables
 */
import type { PrinterColumn } from './crd.js';
import type { ResourceType } from './resources.js';
import { isDict, type Dict, type KObject, str } from './types.js';

/** k8s.io/apimachinery/pkg/util/duration.HumanDuration */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${hours / 24}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 365 * 8)
    return days % 365 === 0 ? `${days / 365}y` : `${Math.floor(days / 365)}y${days % 365}d`;
  return `${Math.floor(days / 365)}y`;
}

type Step =
  | { kind: 'field'; name: string }
  | { kind: 'index'; index: number }
  | { kind: 'all' }
  | { kind: 'filter'; path: string[]; op: '==' | '!='; value: unknown };

/** The JSONPath subset CRD printer columns use (kubectl JSONPath, no ranges or unions). */
export function parseJsonPath(expr: string): Step[] {
  let s = expr.trim().replace(/^\{|\}$/g, '');
  if (s.startsWith('$')) s = s.slice(1);
  const steps: Step[] = [];
  let i = 0;
  while (i < s.length) {
    if (s[i] === '.') {
      const m = /^\.([^.[\]]*)/.exec(s.slice(i))!;
      if (m[1] !== '') steps.push({ kind: 'field', name: m[1]! });
      i += m[0].length;
    } else if (s[i] === '[') {
      const end = s.indexOf(']', s.startsWith('[?(', i) ? s.indexOf(')]', i) : i);
      const inner = s.slice(i + 1, end);
      i = end + 1;
      if (inner === '*') steps.push({ kind: 'all' });
      else if (/^-?\d+$/.test(inner)) steps.push({ kind: 'index', index: Number(inner) });
      else if (/^'.*'$|^".*"$/.test(inner))
        steps.push({ kind: 'field', name: inner.slice(1, -1).replace(/\\\./g, '.') });
      else {
        const m = /^\?\(@\.([\w.]+)\s*(==|!=)\s*(.+)\)$/.exec(inner);
        if (!m) throw new Error(`unsupported JSONPath filter ${inner}`);
        const raw = m[3]!.trim();
        const value: unknown = /^["'].*["']$/.test(raw) ? raw.slice(1, -1) : JSON.parse(raw);
        steps.push({ kind: 'filter', path: m[1]!.split('.'), op: m[2] as '==' | '!=', value });
      }
    } else throw new Error(`unexpected ${s[i]} in JSONPath ${expr}`);
  }
  return steps;
}

export function evalJsonPath(obj: unknown, expr: string): unknown[] {
  let cur: unknown[] = [obj];
  for (const st of parseJsonPath(expr)) {
    const next: unknown[] = [];
    for (const v of cur) {
      if (st.kind === 'field') {
        if (isDict(v) && v[st.name] !== undefined) next.push(v[st.name]);
      } else if (st.kind === 'index') {
        if (Array.isArray(v)) {
          const x: unknown = (v as unknown[])[st.index < 0 ? v.length + st.index : st.index];
          if (x !== undefined) next.push(x);
        }
      } else if (st.kind === 'all') {
        if (Array.isArray(v)) next.push(...(v as unknown[]));
        else if (isDict(v)) next.push(...Object.values(v));
      } else if (Array.isArray(v)) {
        for (const item of v) {
          let x: unknown = item;
          for (const p of st.path) x = isDict(x) ? x[p] : undefined;
          if ((x === st.value) === (st.op === '==')) next.push(item);
        }
      }
    }
    cur = next;
  }
  return cur;
}

export interface ColumnDefinition {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

interface TableSpec {
  columns: ColumnDefinition[];
  cells: (o: KObject, now: number) => unknown[];
}

const col = (
  name: string,
  type = 'string',
  priority = 0,
  format = '',
  description = '',
): ColumnDefinition => ({
  name,
  type,
  format,
  description,
  priority,
});

function age(o: KObject, now: number): string {
  const ts = o.metadata.creationTimestamp;
  return ts ? humanDuration(now - Date.parse(ts)) : '<unknown>';
}

const d = (o: KObject, p: string): Dict => (isDict(o[p]) ? o[p] : {});

function podStatus(o: KObject): string {
  const status = d(o, 'status');
  let reason = (status.reason as string | undefined) ?? (status.phase as string | undefined) ?? 'Pending';
  for (const cs of (status.containerStatuses as Dict[] | undefined) ?? []) {
    const st = (cs.state as Dict | undefined) ?? {};
    const w = st.waiting as Dict | undefined;
    const t = st.terminated as Dict | undefined;
    if (w?.reason) reason = w.reason as string;
    else if (t?.reason) reason = t.reason as string;
    else if (t) reason = t.signal ? `Signal:${str(t.signal)}` : `ExitCode:${str(t.exitCode)}`;
  }
  if (o.metadata.deletionTimestamp) reason = status.reason === 'NodeLost' ? 'Unknown' : 'Terminating';
  return reason;
}

function jobStatus(o: KObject): string {
  const conds = (d(o, 'status').conditions as Dict[] | undefined) ?? [];
  const has = (t: string): boolean => conds.some((c) => c.type === t && c.status === 'True');
  if (has('Complete')) return 'Complete';
  if (has('Failed')) return 'Failed';
  if (o.metadata.deletionTimestamp) return 'Terminating';
  if (has('FailureTarget')) return 'FailureTarget';
  if (has('SuccessCriteriaMet')) return 'SuccessCriteriaMet';
  if (has('Suspended')) return 'Suspended';
  return 'Running';
}

function containersOf(spec: Dict | undefined): Dict[] {
  return (spec?.containers as Dict[] | undefined) ?? [];
}

function selectorString(sel: Dict | undefined): string {
  const ml = (sel?.matchLabels as Record<string, string> | undefined) ?? {};
  const parts = Object.entries(ml).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(',') : '<none>';
}

const BUILTIN: Record<string, TableSpec> = {
  '/pods': {
    columns: [
      col('Name', 'string', 0, 'name'),
      col('Ready'),
      col('Status'),
      col('Restarts'),
      col('Age'),
      col('IP', 'string', 1),
      col('Node', 'string', 1),
      col('Nominated Node', 'string', 1),
      col('Readiness Gates', 'string', 1),
    ],
    cells: (o, now) => {
      const spec = d(o, 'spec');
      const status = d(o, 'status');
      const cs = (status.containerStatuses as Dict[] | undefined) ?? [];
      const ready = cs.filter((c) => c.ready === true).length;
      const restarts = cs.reduce((n, c) => n + Number(c.restartCount ?? 0), 0);
      return [
        o.metadata.name,
        `${ready}/${containersOf(spec).length}`,
        podStatus(o),
        str(restarts),
        age(o, now),
        status.podIP ?? '<none>',
        spec.nodeName ?? '<none>',
        status.nominatedNodeName ?? '<none>',
        '<none>',
      ];
    },
  },
  'batch/jobs': {
    columns: [
      col('Name', 'string', 0, 'name'),
      col('Status'),
      col('Completions'),
      col('Duration'),
      col('Age'),
      col('Containers', 'string', 1),
      col('Images', 'string', 1),
      col('Selector', 'string', 1),
    ],
    cells: (o, now) => {
      const spec = d(o, 'spec');
      const status = d(o, 'status');
      const tmpl = ((spec.template as Dict | undefined)?.spec as Dict | undefined) ?? {};
      const start = status.startTime as string | undefined;
      const end = status.completionTime as string | undefined;
      return [
        o.metadata.name,
        jobStatus(o),
        `${Number(status.succeeded ?? 0)}/${Number(spec.completions ?? 1)}`,
        start ? humanDuration((end ? Date.parse(end) : now) - Date.parse(start)) : '',
        age(o, now),
        containersOf(tmpl)
          .map((c) => c.name)
          .join(','),
        containersOf(tmpl)
          .map((c) => c.image)
          .join(','),
        selectorString(spec.selector as Dict | undefined),
      ];
    },
  },
  '/nodes': {
    columns: [
      col('Name', 'string', 0, 'name'),
      col('Status'),
      col('Roles'),
      col('Age'),
      col('Version'),
      col('Internal-IP', 'string', 1),
      col('External-IP', 'string', 1),
      col('OS-Image', 'string', 1),
      col('Kernel-Version', 'string', 1),
      col('Container-Runtime', 'string', 1),
    ],
    cells: (o, now) => {
      const status = d(o, 'status');
      const ready = ((status.conditions as Dict[] | undefined) ?? []).find((c) => c.type === 'Ready');
      let s = ready?.status === 'True' ? 'Ready' : ready?.status === 'False' ? 'NotReady' : 'Unknown';
      if (d(o, 'spec').unschedulable === true) s += ',SchedulingDisabled';
      const info = (status.nodeInfo as Dict | undefined) ?? {};
      const addr = (t: string): string =>
        (((status.addresses as Dict[] | undefined) ?? []).find((a) => a.type === t)?.address as
          string | undefined) ?? '<none>';
      const roles = Object.keys(o.metadata.labels ?? {})
        .filter((k) => k.startsWith('node-role.kubernetes.io/'))
        .map((k) => k.slice('node-role.kubernetes.io/'.length));
      return [
        o.metadata.name,
        s,
        roles.length ? roles.join(',') : '<none>',
        age(o, now),
        info.kubeletVersion ?? '',
        addr('InternalIP'),
        addr('ExternalIP'),
        info.osImage ?? '',
        info.kernelVersion ?? '',
        info.containerRuntimeVersion ?? '',
      ];
    },
  },
  '/namespaces': {
    columns: [col('Name', 'string', 0, 'name'), col('Status'), col('Age')],
    cells: (o, now) => [o.metadata.name, d(o, 'status').phase ?? 'Active', age(o, now)],
  },
  '/configmaps': {
    columns: [col('Name', 'string', 0, 'name'), col('Data', 'integer'), col('Age')],
    cells: (o, now) => [
      o.metadata.name,
      Object.keys(d(o, 'data')).length + Object.keys(d(o, 'binaryData')).length,
      age(o, now),
    ],
  },
  '/secrets': {
    columns: [col('Name', 'string', 0, 'name'), col('Type'), col('Data', 'integer'), col('Age')],
    cells: (o, now) => [o.metadata.name, o.type ?? 'Opaque', Object.keys(d(o, 'data')).length, age(o, now)],
  },
  'apps/deployments': {
    columns: [
      col('Name', 'string', 0, 'name'),
      col('Ready'),
      col('Up-to-date', 'integer'),
      col('Available', 'integer'),
      col('Age'),
      col('Containers', 'string', 1),
      col('Images', 'string', 1),
      col('Selector', 'string', 1),
    ],
    cells: (o, now) => {
      const spec = d(o, 'spec');
      const st = d(o, 'status');
      const tmpl = ((spec.template as Dict | undefined)?.spec as Dict | undefined) ?? {};
      return [
        o.metadata.name,
        `${Number(st.readyReplicas ?? 0)}/${Number(spec.replicas ?? 1)}`,
        Number(st.updatedReplicas ?? 0),
        Number(st.availableReplicas ?? 0),
        age(o, now),
        containersOf(tmpl)
          .map((c) => c.name)
          .join(','),
        containersOf(tmpl)
          .map((c) => c.image)
          .join(','),
        selectorString(spec.selector as Dict | undefined),
      ];
    },
  },
  '/services': {
    columns: [
      col('Name', 'string', 0, 'name'),
      col('Type'),
      col('Cluster-IP'),
      col('External-IP'),
      col('Port(s)'),
      col('Age'),
      col('Selector', 'string', 1),
    ],
    cells: (o, now) => {
      const spec = d(o, 'spec');
      const ports = ((spec.ports as Dict[] | undefined) ?? [])
        .map((p) => `${str(p.port)}/${str(p.protocol ?? 'TCP')}`)
        .join(',');
      const sel = Object.entries((spec.selector as Record<string, string> | undefined) ?? {}).map(
        ([k, v]) => `${k}=${v}`,
      );
      return [
        o.metadata.name,
        spec.type ?? 'ClusterIP',
        spec.clusterIP ?? '<none>',
        '<none>',
        ports || '<none>',
        age(o, now),
        sel.length ? sel.join(',') : '<none>',
      ];
    },
  },
  '/events': {
    columns: [col('Last Seen'), col('Type'), col('Reason'), col('Object'), col('Message')],
    cells: (o, now) => {
      const last = (o.lastTimestamp as string | undefined) ?? (o.eventTime as string | undefined);
      const io = (o.involvedObject as Dict | undefined) ?? {};
      return [
        last ? humanDuration(now - Date.parse(last)) : '<unknown>',
        o.type ?? '',
        o.reason ?? '',
        `${str(io.kind ?? '').toLowerCase()}/${str(io.name ?? '')}`,
        o.message ?? '',
      ];
    },
  },
};

function cellFor(type: string, value: unknown, now: number): unknown {
  if (value === undefined) return null;
  switch (type) {
    case 'date':
      if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) return '<invalid>';
      return humanDuration(now - Date.parse(value));
    case 'integer':
    case 'number':
      return typeof value === 'number' ? value : null;
    case 'boolean':
      return typeof value === 'boolean' ? value : null;
    default:
      return typeof value === 'string'
        ? value
        : isDict(value) || Array.isArray(value)
          ? JSON.stringify(value)
          : str(value);
  }
}

function crdSpec(cols: readonly PrinterColumn[]): TableSpec {
  return {
    columns: [
      col('Name', 'string', 0, 'name', 'Name must be unique within a namespace.'),
      ...cols.map((c) =>
        col(
          c.name,
          c.type,
          c.priority ?? 0,
          c.format ?? '',
          c.description ?? `Custom resource definition column (in JSONPath format): ${c.jsonPath}`,
        ),
      ),
    ],
    cells: (o, now) => [
      o.metadata.name,
      ...cols.map((c) => {
        const r = evalJsonPath(o, c.jsonPath);
        return cellFor(c.type, r[0], now);
      }),
    ],
  };
}

const DEFAULT_SPEC: TableSpec = {
  columns: [col('Name', 'string', 0, 'name'), col('Age', 'date', 0, '', 'CreationTimestamp')],
  cells: (o, now) => [o.metadata.name, age(o, now)],
};

function specFor(t: ResourceType): TableSpec {
  if (t.crd) return crdSpec(t.crd.printerColumns);
  // A view of another type's objects prints as that type: the real server's printers
  // work on the stored (internal) form, so events.k8s.io/v1 Events print as core/v1 ones.
  const storage = t.storage;
  if (storage) {
    const [group, , plural] = storage.storedAs.split('/');
    const base = BUILTIN[`${group}/${plural}`] ?? DEFAULT_SPEC;
    return { columns: base.columns, cells: (o, now) => base.cells(storage.toStored(o), now) };
  }
  return BUILTIN[`${t.group}/${t.plural}`] ?? DEFAULT_SPEC;
}

export type IncludeObject = 'None' | 'Object' | 'PartialObjectMetadata';

export function toTable(
  t: ResourceType,
  items: readonly KObject[],
  listMeta: Dict,
  includeObject: IncludeObject,
  now: number,
  withColumns = true,
): Dict {
  const spec = specFor(t);
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: withColumns ? spec.columns : null,
    rows: items.map((o) => ({
      cells: spec.cells(o, now),
      object:
        includeObject === 'None'
          ? null
          : includeObject === 'Object'
            ? o
            : { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
}

/** Parses the Accept header: does the client want a Table, PartialObjectMetadata(List), protobuf? */
export function wantsTable(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some((part) => /as=Table/.test(part) && /g=meta\.k8s\.io/.test(part));
}
