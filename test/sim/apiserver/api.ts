/**
 * The semantics of the API server, independent of HTTP: create/get/list/update/patch/
 * delete/watch with resourceVersion, generation, status subresource, validation,
 * finalizers and deletion propagation. The HTTP layer (server.ts) and the in-process
 * controllers (garbage collector, namespace and CRD controllers, Job controller,
 * kubelet) all go through here, so they see the same conflicts and events.
 *
 * Upstream references, per behaviour:
 * - metadata on create, generation: https://kubernetes.io/docs/reference/using-api/api-concepts/ and
 *   https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#metadata
 * - optimistic concurrency (409): https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
 * - status subresource: https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource
 * - finalizers: https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/
 * - propagation: https://kubernetes.io/docs/concepts/architecture/garbage-collection/#cascading-deletion
 * - watch, bookmarks, 410: https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
 */
import { randomUUID } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import {
  applyDefaults,
  checkMicroTimes,
  nameCauses,
  pruneUnknownBuiltin,
  schemaCausesBuiltin,
  validateBuiltin,
} from './builtins.js';
import { SimClock } from './clock.js';
import {
  crdResourceTypes,
  listMapKeys,
  pruneAndDefault,
  validateCrd,
  validateCustomResource,
} from './crd.js';
import { ApiError, Errors, successStatus, type Status, type StatusCause } from './errors.js';
import {
  applyConfiguration,
  applyJsonPatch,
  applyMergePatch,
  applyStrategicMergePatch,
  builtinListKeys,
  duplicateKeys,
  PATCH_TYPES,
  type ListKeyFn,
} from './patch.js';
import {
  apiVersionOf,
  BUILTIN_TYPES,
  keyOf,
  storedKeyOf,
  typeKey,
  viewOf,
  type DeletePropagation,
  type ResourceType,
} from './resources.js';
import { fieldMatcher, matchesLabels, parseLabelSelector } from './selectors.js';
import { Store, type StoredEvent } from './store.js';
import { clone, deepEqual, isDict, rfc3339, type Dict, type KObject, str } from './types.js';

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export interface WriteOptions {
  dryRun?: boolean;
  fieldManager?: string;
  fieldValidation?: FieldValidation;
  subresource?: string;
  force?: boolean;
}

export interface WriteResult {
  object: KObject;
  warnings: string[];
  created: boolean;
}

export interface ListOptions {
  labelSelector?: string | null;
  fieldSelector?: string | null;
  limit?: number;
  continue?: string | null;
  resourceVersion?: string | null;
  resourceVersionMatch?: string | null;
}

export interface DeleteOptions {
  propagationPolicy?: DeletePropagation;
  orphanDependents?: boolean;
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
}

export interface DeleteResult {
  /** The object (if the kind returns it, or it lingers with deletionTimestamp), else a Status. */
  body: KObject | Status;
  warnings: string[];
  deletedNow: boolean;
}

export interface WatchOptions extends ListOptions {
  allowWatchBookmarks?: boolean;
  timeoutSeconds?: number;
  sendInitialEvents?: boolean;
}

export interface WatchSink {
  event(type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR', object: unknown): void;
  close(): void;
}

export interface ApiOptions {
  clock?: SimClock;
  /** Server-side watch timeout when the client sends none (real: 30–60 min, random). */
  watchTimeoutSeconds?: number;
  /** Interval of BOOKMARK events for watches that allow them (real: about a minute). */
  bookmarkIntervalMs?: number;
  /** Events kept for watch replay; older resourceVersions answer 410. */
  historyLimit?: number;
}

const JOB_ORPHAN_WARNING =
  'child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning';

export const FINALIZER_ORPHAN = 'orphan';
export const FINALIZER_FOREGROUND = 'foregroundDeletion';
export const FINALIZER_CRD_CLEANUP = 'customresourcecleanup.apiextensions.k8s.io';

function randomSuffix(n = 5): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return s;
}

export class Api {
  readonly store: Store;
  readonly clock: SimClock;
  readonly options: Required<Omit<ApiOptions, 'clock'>>;
  private readonly types = new Map<string, ResourceType>();
  /** What each field manager last applied, per object uid (server-side apply). */
  private readonly applied = new Map<string, Map<string, Dict>>();
  /** Deferred work of the in-process controllers. */
  private readonly reactors: ((e: StoredEvent) => void)[] = [];

  constructor(options: ApiOptions = {}) {
    this.clock = options.clock ?? new SimClock();
    this.options = {
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? 1800,
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
      historyLimit: options.historyLimit ?? 10_000,
    };
    this.store = new Store(this.options.historyLimit);
    for (const t of BUILTIN_TYPES) this.types.set(keyOf(t), t);
    this.store.subscribe((e) => this.onStored(e));
  }

  // ------------------------------------------------------------ type registry
  allTypes(): ResourceType[] {
    return [...this.types.values()];
  }

  findType(group: string, version: string, plural: string): ResourceType | undefined {
    return this.types.get(typeKey(group, version, plural));
  }

  typeOf(apiVersion: string, kind: string): ResourceType | undefined {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
    return this.allTypes().find((t) => t.group === group && t.version === version && t.kind === kind);
  }

  mustType(apiVersion: string, kind: string): ResourceType {
    const t = this.typeOf(apiVersion, kind);
    if (!t) throw new Error(`no resource type for ${apiVersion} ${kind}`);
    return t;
  }

  /** Reacts to stored events after the write returns (controllers run "asynchronously"). */
  react(fn: (e: StoredEvent) => void): void {
    this.reactors.push(fn);
  }

  private onStored(e: StoredEvent): void {
    if (e.typeKey === 'apiextensions.k8s.io/v1/customresourcedefinitions') this.syncCrdTypes(e);
    for (const r of this.reactors) setImmediate(() => r(e));
  }

  private syncCrdTypes(e: StoredEvent): void {
    const crd = e.object;
    for (const t of this.allTypes()) if (t.crd?.crdName === crd.metadata.name) this.types.delete(keyOf(t));
    if (e.type === 'DELETED') return;
    try {
      for (const t of crdResourceTypes(crd)) this.types.set(keyOf(t), t);
    } catch {
      // an uncompilable schema: the CRD stays without served types
    }
  }

  // ------------------------------------------------------------ reads
  get(t: ResourceType, namespace: string, name: string): KObject {
    const o = this.store.get(t, t.namespaced ? namespace : '', name);
    if (!o) throw Errors.notFound(t.plural, t.group, name, t.kind);
    return o;
  }

  tryGet(t: ResourceType, namespace: string, name: string): KObject | undefined {
    return this.store.get(t, t.namespaced ? namespace : '', name);
  }

  list(
    t: ResourceType,
    namespace: string | undefined,
    opts: ListOptions = {},
  ): { items: KObject[]; resourceVersion: string; continue?: string; remainingItemCount?: number } {
    const labels = parseLabelSelector(opts.labelSelector);
    const fields = fieldMatcher(t, opts.fieldSelector);
    const rv = this.store.currentRv;
    let start = '';
    if (opts.continue) {
      let token: { rv: number; start: string };
      try {
        token = JSON.parse(Buffer.from(opts.continue, 'base64').toString('utf8')) as {
          rv: number;
          start: string;
        };
      } catch {
        throw Errors.badRequest('continue key is not valid: illegal base64 data');
      }
      if (token.rv < this.store.compactedRv)
        throw Errors.gone(
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
        );
      start = token.start;
    }
    if (opts.resourceVersion && opts.resourceVersion !== '0' && opts.resourceVersionMatch === 'Exact') {
      const want = Number(opts.resourceVersion);
      if (want < this.store.compactedRv)
        throw Errors.gone(`too old resource version: ${want} (${this.store.compactedRv})`);
    }
    const all = this.store
      .list(t, t.namespaced ? namespace : undefined)
      .filter((o) => matchesLabels(o.metadata.labels, labels) && fields(o))
      .filter((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}` > start);
    const limit = opts.limit && opts.limit > 0 ? opts.limit : all.length;
    const items = all.slice(0, limit);
    if (all.length > limit) {
      const last = items[items.length - 1]!;
      const token = Buffer.from(
        JSON.stringify({ rv, start: `${last.metadata.namespace ?? ''}/${last.metadata.name}` }),
      ).toString('base64');
      return { items, resourceVersion: str(rv), continue: token, remainingItemCount: all.length - limit };
    }
    return { items, resourceVersion: str(rv) };
  }

  // ------------------------------------------------------------ writes
  private checkNamespace(t: ResourceType, namespace: string): void {
    if (!t.namespaced) return;
    const nsType = this.findType('', 'v1', 'namespaces')!;
    const ns = this.store.get(nsType, '', namespace);
    if (!ns) throw Errors.notFound('namespaces', '', namespace, 'Namespace');
    if (ns.metadata.deletionTimestamp)
      throw Errors.forbidden(
        t.plural,
        t.group,
        '',
        `unable to create new content in namespace ${namespace} because it is being terminated`,
      );
  }

  private listKeysFor(t: ResourceType): ListKeyFn {
    if (!t.crd) return builtinListKeys;
    const schema = t.crd.schema;
    return (path, field) => {
      const keys = listMapKeys(schema, [...path.filter((p) => !p.startsWith('[')), field]);
      return keys;
    };
  }

  /** Unknown fields → dropped; Strict → 400, Warn → warnings. */
  private pruneUnknown(t: ResourceType, obj: KObject, mode: FieldValidation, warnings: string[]): void {
    const unknown = t.crd?.schema
      ? pruneAndDefault(obj, t.crd.schema)
      : t.crd
        ? []
        : pruneUnknownBuiltin(t, obj);
    if (unknown.length === 0 || mode === 'Ignore') return;
    if (mode === 'Strict')
      throw Errors.badRequest(
        `strict decoding error: ${unknown.map((u) => `unknown field "${u}"`).join(', ')}`,
      );
    for (const u of unknown) warnings.push(`unknown field "${u}"`);
  }

  private async validate(t: ResourceType, obj: KObject, old: KObject | undefined): Promise<void> {
    checkMicroTimes(t, obj);
    const causes: StatusCause[] = [];
    if (!old && obj.metadata.name) causes.push(...nameCauses(t, obj.metadata.name));
    if (t.crd) {
      validateCustomResource(t, obj);
    } else {
      causes.push(...validateBuiltin(t, obj, old));
      if (t.kind === 'CustomResourceDefinition') causes.push(...validateCrd(obj));
      if (causes.length === 0) causes.push(...(await schemaCausesBuiltin(t, obj)));
    }
    if (old) {
      const added = (obj.metadata.finalizers ?? []).filter(
        (f) => !(old.metadata.finalizers ?? []).includes(f),
      );
      if (old.metadata.deletionTimestamp && added.length > 0)
        causes.push({
          reason: 'FieldValueForbidden',
          field: 'metadata.finalizers',
          message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map((a) => `"${a}"`).join(', ')}}`,
        });
    }
    if (causes.length > 0) throw Errors.invalid(t.kind, t.group, obj.metadata.name ?? '', causes);
  }

  private normalize(t: ResourceType, namespace: string, body: unknown, name?: string): KObject {
    if (!isDict(body)) throw Errors.badRequest(`Object 'Kind' is missing in '${JSON.stringify(body)}'`);
    const obj = clone(body) as KObject;
    obj.apiVersion ??= apiVersionOf(t);
    obj.kind ??= t.kind;
    if (obj.apiVersion !== apiVersionOf(t) || obj.kind !== t.kind)
      throw Errors.badRequest(
        `the API version in the data (${obj.apiVersion}) does not match the expected API version (${apiVersionOf(t)})`,
      );
    obj.metadata = isDict(obj.metadata) ? obj.metadata : {};
    if (t.namespaced) {
      if (obj.metadata.namespace && obj.metadata.namespace !== namespace)
        throw Errors.badRequest(
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      obj.metadata.namespace = namespace;
    } else delete obj.metadata.namespace;
    if (name !== undefined && obj.metadata.name !== undefined && obj.metadata.name !== name)
      throw Errors.badRequest(
        'the name of the object (' +
          obj.metadata.name +
          ') does not match the name on the URL (' +
          name +
          ')',
      );
    if (name !== undefined) obj.metadata.name = name;
    return obj;
  }

  private touchManagedFields(
    obj: KObject,
    manager: string | undefined,
    operation: 'Apply' | 'Update',
    subresource?: string,
  ): void {
    const m = manager ?? 'unknown';
    const entries = (obj.metadata.managedFields ?? []).filter(
      (e) => !(e.manager === m && e.operation === operation && (e.subresource ?? '') === (subresource ?? '')),
    );
    entries.push({
      manager: m,
      operation,
      apiVersion: obj.apiVersion,
      time: rfc3339(this.clock.now()),
      fieldsType: 'FieldsV1',
      fieldsV1: {},
      ...(subresource ? { subresource } : {}),
    });
    obj.metadata.managedFields = entries;
  }

  async create(
    t: ResourceType,
    namespace: string,
    body: unknown,
    opts: WriteOptions = {},
  ): Promise<WriteResult> {
    const warnings: string[] = [];
    const obj = this.normalize(t, namespace, body);
    this.checkNamespace(t, namespace);
    const meta = obj.metadata;
    if (!meta.name) {
      if (!meta.generateName)
        throw Errors.invalid(t.kind, t.group, '', [
          {
            reason: 'FieldValueRequired',
            field: 'metadata.name',
            message: 'Required value: name or generateName is required',
          },
        ]);
      meta.name = `${meta.generateName}${randomSuffix()}`;
    }
    if (meta.managedFields && opts.fieldManager === undefined) delete meta.managedFields;
    for (const k of [
      'uid',
      'resourceVersion',
      'deletionTimestamp',
      'deletionGracePeriodSeconds',
      'selfLink',
    ] as const)
      delete meta[k];
    if (this.store.get(t, meta.namespace ?? '', meta.name))
      throw Errors.alreadyExists(t.plural, t.group, meta.name);
    meta.uid = randomUUID();
    meta.creationTimestamp = rfc3339(this.clock.now());
    if (t.generation) meta.generation = 1;
    else delete meta.generation;
    this.pruneUnknown(t, obj, opts.fieldValidation ?? 'Warn', warnings);
    if (t.crd && t.statusSubresource) delete obj.status;
    applyDefaults(t, obj, true);
    if (t.kind === 'CustomResourceDefinition' && t.group === 'apiextensions.k8s.io') {
      meta.finalizers = [...new Set([...(meta.finalizers ?? []), FINALIZER_CRD_CLEANUP])];
      obj.status = { conditions: [], acceptedNames: { kind: '', plural: '' }, storedVersions: [] };
    }
    await this.validate(t, obj, undefined);
    if (this.store.get(t, meta.namespace ?? '', meta.name))
      throw Errors.alreadyExists(t.plural, t.group, meta.name);
    this.touchManagedFields(obj, opts.fieldManager, 'Update');
    if (opts.dryRun) return { object: obj, warnings, created: true };
    return { object: this.store.put(t, obj), warnings, created: true };
  }

  /** PUT (replace) of the object or its status subresource. */
  async update(
    t: ResourceType,
    namespace: string,
    name: string,
    body: unknown,
    opts: WriteOptions = {},
  ): Promise<WriteResult> {
    const obj = this.normalize(t, namespace, body, name);
    const old = this.get(t, namespace, name);
    const rv = obj.metadata.resourceVersion;
    if (rv === undefined || rv === '') {
      if (t.crd)
        throw Errors.invalid(t.kind, t.group, name, [
          {
            reason: 'FieldValueInvalid',
            field: 'metadata.resourceVersion',
            message: 'Invalid value: 0x0: must be specified for an update',
          },
        ]);
    } else if (rv !== old.metadata.resourceVersion) throw Errors.modified(t.plural, t.group, name);
    return this.write(t, old, obj, opts, 'Update');
  }

  private async write(
    t: ResourceType,
    old: KObject,
    incoming: KObject,
    opts: WriteOptions,
    operation: 'Apply' | 'Update',
  ): Promise<WriteResult> {
    const warnings: string[] = [];
    this.pruneUnknown(t, incoming, opts.fieldValidation ?? 'Warn', warnings);
    let obj: KObject;
    const status = opts.subresource === 'status';
    if (status) {
      obj = clone(old);
      obj.status = incoming.status;
      if (obj.status === undefined) delete obj.status;
      if (!t.crd) {
        // Built-in status strategies keep metadata too; a few read-only spec fields aside.
        obj.metadata = {
          ...obj.metadata,
          labels: incoming.metadata.labels ?? obj.metadata.labels,
          annotations: incoming.metadata.annotations ?? obj.metadata.annotations,
        };
      }
    } else {
      obj = incoming;
      if (t.statusSubresource) {
        if (old.status === undefined) delete obj.status;
        else obj.status = old.status;
      }
    }
    const meta = obj.metadata;
    for (const k of [
      'uid',
      'creationTimestamp',
      'deletionTimestamp',
      'deletionGracePeriodSeconds',
      'generation',
    ] as const) {
      if (old.metadata[k] === undefined) delete meta[k];
      else (meta as Dict)[k] = old.metadata[k];
    }
    if (!status && opts.subresource === undefined && meta.managedFields === undefined)
      meta.managedFields = old.metadata.managedFields;
    applyDefaults(t, obj, false);
    await this.validate(t, obj, old);
    if (t.generation && !status) {
      const strip = (o: KObject): Dict => {
        const c: Dict = { ...o };
        delete c.metadata;
        if (t.statusSubresource || !t.crd) delete c.status;
        return c;
      };
      if (!deepEqual(strip(old), strip(obj))) meta.generation = (old.metadata.generation ?? 1) + 1;
    }
    this.touchManagedFields(obj, opts.fieldManager, operation, opts.subresource);
    delete meta.resourceVersion;
    if (opts.dryRun) return { object: obj, warnings, created: false };
    if (
      deepEqual(
        { ...obj, metadata: { ...meta, managedFields: undefined } },
        { ...old, metadata: { ...old.metadata, resourceVersion: undefined, managedFields: undefined } },
      )
    )
      return { object: old, warnings, created: false };
    const stored = this.store.put(t, obj);
    this.finalizeIfReady(t, stored);
    return { object: stored, warnings, created: false };
  }

  async patch(
    t: ResourceType,
    namespace: string,
    name: string,
    contentType: string,
    raw: Buffer,
    opts: WriteOptions = {},
  ): Promise<WriteResult> {
    const accepted = [
      PATCH_TYPES.json,
      PATCH_TYPES.merge,
      PATCH_TYPES.apply,
      ...(t.crd ? [] : [PATCH_TYPES.strategic]),
    ];
    if (!accepted.includes(contentType as never)) throw Errors.unsupportedMediaType(contentType, accepted);
    if (contentType === PATCH_TYPES.apply) return this.apply(t, namespace, name, raw, opts);
    let patch: unknown;
    try {
      patch = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      throw Errors.badRequest(`error decoding patch: ${(e as Error).message}`);
    }
    const old = this.get(t, namespace, name);
    let next: unknown;
    if (contentType === PATCH_TYPES.json) next = applyJsonPatch(old, patch);
    else if (contentType === PATCH_TYPES.merge) next = applyMergePatch(old, patch);
    else next = applyStrategicMergePatch(old, patch);
    const obj = this.normalize(t, namespace, next, name);
    const rv = obj.metadata.resourceVersion;
    if (rv !== undefined && rv !== old.metadata.resourceVersion)
      throw Errors.modified(t.plural, t.group, name);
    return this.write(t, old, obj, opts, 'Update');
  }

  private async apply(
    t: ResourceType,
    namespace: string,
    name: string,
    raw: Buffer,
    opts: WriteOptions,
  ): Promise<WriteResult> {
    if (!opts.fieldManager)
      throw new ApiError(
        422,
        'Invalid',
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
        {
          group: 'meta.k8s.io',
          kind: 'PatchOptions',
          causes: [
            {
              reason: 'FieldValueRequired',
              message: 'Required value: is required for apply patch',
              field: 'fieldManager',
            },
          ],
        },
      );
    let config: unknown;
    try {
      config = parseYaml(raw.toString('utf8'));
    } catch (e) {
      throw Errors.badRequest(`error decoding YAML: ${(e as Error).message}`);
    }
    if (!isDict(config)) throw Errors.badRequest('apply patch must be an object');
    const cfg = this.normalize(t, namespace, config, name);
    if (cfg.metadata.managedFields !== undefined)
      throw Errors.badRequest('metadata.managedFields must be nil');
    const keys = this.listKeysFor(t);
    const dups = duplicateKeys(cfg, keys);
    if (dups.length > 0)
      throw Errors.internal(
        `failed to create typed patch object (${t.namespaced ? `${namespace}/` : ''}${name}; ${apiVersionOf(t)}, Kind=${t.kind}): errors:\n  ${dups.join('\n  ')}`,
      );
    const old = this.tryGet(t, namespace, name);
    if (!old) {
      const res = await this.create(t, namespace, cfg, { ...opts });
      if (!opts.dryRun) this.rememberApplied(res.object, opts.fieldManager, cfg, opts.subresource);
      if (!opts.dryRun && res.object.metadata.managedFields) {
        const stored = res.object;
        stored.metadata.managedFields = stored.metadata.managedFields!.map((e) =>
          e.manager === opts.fieldManager ? { ...e, operation: 'Apply' as const } : e,
        );
      }
      return res;
    }
    const rv = cfg.metadata.resourceVersion;
    if (rv !== undefined && rv !== old.metadata.resourceVersion)
      throw Errors.modified(t.plural, t.group, name);
    const previous = this.applied
      .get(old.metadata.uid!)
      ?.get(`${opts.fieldManager}/${opts.subresource ?? ''}`);
    let merged: KObject;
    if (opts.subresource === 'status') {
      merged = clone(old);
      const m = applyConfiguration(
        { status: old.status },
        { status: cfg.status },
        previous && { status: previous.status },
        (p, f) => keys(p, f),
      );
      merged.status = m.status;
    } else merged = applyConfiguration(old, cfg, previous, keys) as KObject;
    delete merged.metadata.resourceVersion;
    const res = await this.write(t, old, merged, opts, 'Apply');
    if (!opts.dryRun) this.rememberApplied(res.object, opts.fieldManager, cfg, opts.subresource);
    return res;
  }

  private rememberApplied(obj: KObject, manager: string, cfg: Dict, subresource: string | undefined): void {
    const uid = obj.metadata.uid!;
    let m = this.applied.get(uid);
    if (!m) {
      m = new Map();
      this.applied.set(uid, m);
    }
    m.set(`${manager}/${subresource ?? ''}`, clone(cfg));
  }

  // ------------------------------------------------------------ deletion
  // eslint-disable-next-line @typescript-eslint/require-await -- async for symmetry with the other verbs (callers .catch())
  async delete(
    t: ResourceType,
    namespace: string,
    name: string,
    opts: DeleteOptions = {},
  ): Promise<DeleteResult> {
    const obj = this.get(t, namespace, name);
    const warnings: string[] = [];
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== obj.metadata.uid)
      throw Errors.conflict(
        t.plural,
        t.group,
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${obj.metadata.uid}`,
      );
    if (pre?.resourceVersion && pre.resourceVersion !== obj.metadata.resourceVersion)
      throw Errors.conflict(
        t.plural,
        t.group,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${obj.metadata.resourceVersion}`,
      );
    let policy = opts.propagationPolicy;
    if (policy === undefined && opts.orphanDependents !== undefined)
      policy = opts.orphanDependents ? 'Orphan' : 'Background';
    if (policy === undefined) {
      policy = t.defaultPropagation;
      if (t.group === 'batch' && t.kind === 'Job') warnings.push(JOB_ORPHAN_WARNING);
    }
    if (opts.dryRun) return { body: obj, warnings, deletedNow: false };
    const meta = obj.metadata;
    const now = this.clock.now();

    // Graceful deletion of pods bound to a node: the kubelet finishes it.
    if (t.group === '' && t.kind === 'Pod') {
      const spec = obj.spec as Dict;
      const phase = (obj.status as Dict | undefined)?.phase;
      let grace = opts.gracePeriodSeconds ?? (spec.terminationGracePeriodSeconds as number | undefined) ?? 30;
      if (!spec.nodeName || phase === 'Succeeded' || phase === 'Failed') grace = 0;
      if (
        grace > 0 &&
        (meta.deletionGracePeriodSeconds === undefined || grace < meta.deletionGracePeriodSeconds)
      ) {
        meta.deletionTimestamp ??= rfc3339(now + grace * 1000);
        meta.deletionGracePeriodSeconds = grace;
        this.addPropagationFinalizer(meta, policy);
        return { body: this.store.put(t, obj), warnings, deletedNow: false };
      }
      if (grace === 0) meta.deletionGracePeriodSeconds = 0;
    }
    if (t.kind === 'Namespace' && t.group === '') {
      const spec = (obj.spec as Dict | undefined) ?? {};
      if (
        ((spec.finalizers as string[] | undefined) ?? []).length > 0 ||
        (meta.finalizers ?? []).length > 0
      ) {
        if (!meta.deletionTimestamp) {
          meta.deletionTimestamp = rfc3339(now);
          meta.deletionGracePeriodSeconds = 0;
          obj.status = { ...(obj.status as Dict), phase: 'Terminating' };
          return { body: this.store.put(t, obj), warnings, deletedNow: false };
        }
        return { body: obj, warnings, deletedNow: false };
      }
    }
    this.addPropagationFinalizer(meta, policy);
    if ((meta.finalizers ?? []).length > 0) {
      if (!meta.deletionTimestamp) {
        meta.deletionTimestamp = rfc3339(now);
        meta.deletionGracePeriodSeconds = 0;
        if (t.generation && meta.generation !== undefined) meta.generation += 1;
      } else meta.deletionGracePeriodSeconds = 0;
      const stored = this.store.put(t, obj);
      return { body: stored, warnings, deletedNow: false };
    }
    const gone = this.store.remove(t, obj);
    this.applied.delete(meta.uid!);
    const status = successStatus({ name, group: t.group, kind: t.plural, uid: meta.uid! });
    return { body: t.returnDeletedObject ? gone : status, warnings, deletedNow: true };
  }

  private addPropagationFinalizer(meta: KObject['metadata'], policy: DeletePropagation): void {
    const f =
      policy === 'Orphan' ? FINALIZER_ORPHAN : policy === 'Foreground' ? FINALIZER_FOREGROUND : undefined;
    if (f && !(meta.finalizers ?? []).includes(f)) meta.finalizers = [...(meta.finalizers ?? []), f];
  }

  /** Removes an object whose deletion was pending once its last finalizer is gone. */
  finalizeIfReady(t: ResourceType, obj: KObject): void {
    const meta = obj.metadata;
    if (!meta.deletionTimestamp || (meta.finalizers ?? []).length > 0) return;
    if (t.kind === 'Pod' && t.group === '' && (meta.deletionGracePeriodSeconds ?? 0) > 0) return;
    if (
      t.kind === 'Namespace' &&
      t.group === '' &&
      (((obj.spec as Dict | undefined)?.finalizers as string[] | undefined) ?? []).length > 0
    )
      return;
    this.store.remove(t, obj);
    this.applied.delete(meta.uid!);
  }

  async deleteCollection(
    t: ResourceType,
    namespace: string | undefined,
    list: ListOptions,
    opts: DeleteOptions,
  ): Promise<KObject[]> {
    const out: KObject[] = [];
    for (const o of this.list(t, namespace, list).items) {
      try {
        await this.delete(t, o.metadata.namespace ?? '', o.metadata.name!, opts);
        out.push(o);
      } catch (e) {
        if (!(e instanceof ApiError && e.code === 404)) throw e;
      }
    }
    return out;
  }

  // ------------------------------------------------------------ watch
  watch(t: ResourceType, namespace: string | undefined, opts: WatchOptions, sink: WatchSink): () => void {
    const labels = parseLabelSelector(opts.labelSelector);
    const fields = fieldMatcher(t, opts.fieldSelector);
    // A view of another type's objects (events.k8s.io/v1 Events) sees that type's changes.
    const key = storedKeyOf(t);
    const ns = t.namespaced ? namespace : undefined;
    const matches = (o: KObject | undefined): boolean =>
      o !== undefined &&
      (ns === undefined || o.metadata.namespace === ns) &&
      matchesLabels(o.metadata.labels, labels) &&
      fields(o);
    let stopped = false;
    const cleanups: (() => void)[] = [];
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      for (const c of cleanups) c();
    };
    const deliver = (e: StoredEvent): void => {
      if (stopped || e.typeKey !== key) return;
      const object = viewOf(t, e.object);
      const now = matches(object);
      const before = matches(e.previous && viewOf(t, e.previous));
      if (e.type === 'ADDED' && now) sink.event('ADDED', object);
      else if (e.type === 'MODIFIED') {
        if (now && before) sink.event('MODIFIED', object);
        else if (now) sink.event('ADDED', object);
        else if (before) sink.event('DELETED', object);
      } else if (e.type === 'DELETED' && (before || now)) sink.event('DELETED', object);
    };
    const rvParam = opts.resourceVersion ?? '';
    if (rvParam === '' || rvParam === '0' || opts.sendInitialEvents === true) {
      // "Get State and Start at Most Recent" / "Start at Any": synthetic ADDED events first.
      if (opts.sendInitialEvents !== false)
        for (const o of this.list(t, ns, {
          labelSelector: opts.labelSelector,
          fieldSelector: opts.fieldSelector,
        }).items)
          sink.event('ADDED', o);
      if (opts.sendInitialEvents === true && opts.allowWatchBookmarks)
        sink.event('BOOKMARK', this.bookmark(t, { 'k8s.io/initial-events-end': 'true' }));
    } else {
      const since = Number(rvParam);
      const events = Number.isNaN(since) ? undefined : this.store.eventsSince(since);
      if (!events) {
        sink.event(
          'ERROR',
          Errors.gone(`too old resource version: ${rvParam} (${this.store.compactedRv})`).toStatus(),
        );
        sink.close();
        return () => undefined;
      }
      for (const e of events) deliver(e);
    }
    cleanups.push(this.store.subscribe(deliver));
    if (opts.allowWatchBookmarks) {
      const timer = setInterval(
        () => sink.event('BOOKMARK', this.bookmark(t)),
        this.options.bookmarkIntervalMs,
      );
      timer.unref();
      cleanups.push(() => clearInterval(timer));
    }
    const timeout = opts.timeoutSeconds ?? this.options.watchTimeoutSeconds;
    const cancel = this.clock.after(timeout * 1000, () => {
      stop();
      sink.close();
    });
    cleanups.push(cancel);
    return stop;
  }

  private bookmark(t: ResourceType, annotations?: Record<string, string>): Dict {
    return {
      kind: t.kind,
      apiVersion: apiVersionOf(t),
      metadata: { resourceVersion: str(this.store.currentRv), ...(annotations ? { annotations } : {}) },
    };
  }
}
