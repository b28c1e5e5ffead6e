/**
 * The four patch types: JSON Patch (RFC 6902), JSON Merge Patch (RFC 7386), strategic
 * merge patch (built-in kinds only) and server-side apply (a minimal merge, see below).
 * https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
 * https://kubernetes.io/docs/reference/using-api/server-side-apply/
 *
 * Server-side apply here: the applied configuration is merged into the live object
 * with list-map keys (built-in merge keys, or the CRD's `x-kubernetes-list-map-keys`);
 * fields the same manager applied before and no longer applies are removed. Not
 * modelled: per-field ownership across managers and the 409 conflicts it produces.
 */
import { ApiError, Errors } from './errors.js';
import { clone, deepEqual, isDict, type Dict, str } from './types.js';

export const PATCH_TYPES = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
  applyCbor: 'application/apply-patch+cbor',
} as const;

// ---------------------------------------------------------------- JSON Patch
/** A JSON Patch that does not apply: 422, as the server answers (apiserver patch.go). */
function patchError(message: string): ApiError {
  return new ApiError(
    422,
    'Invalid',
    `the server rejected our request due to an error in our request: ${message}`,
  );
}

function unescape(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

function parent(doc: unknown, pointer: string): { container: unknown; key: string } {
  if (!pointer.startsWith('/')) throw Errors.badRequest(`invalid JSON pointer "${pointer}"`);
  const parts = pointer.split('/').slice(1).map(unescape);
  const key = parts.pop()!;
  let cur = doc;
  for (const p of parts) {
    if (Array.isArray(cur)) cur = cur[Number(p)];
    else if (isDict(cur)) cur = cur[p];
    else cur = undefined;
    if (cur === undefined) throw patchError(`doc is missing path: "${pointer}": missing value`);
  }
  return { container: cur, key };
}

function getAt(doc: unknown, pointer: string): unknown {
  if (pointer === '') return doc;
  const { container, key } = parent(doc, pointer);
  const v: unknown = Array.isArray(container)
    ? container[Number(key)]
    : isDict(container)
      ? container[key]
      : undefined;
  if (v === undefined) throw patchError(`doc is missing path: "${pointer}": missing value`);
  return v;
}

function removeAt(doc: unknown, pointer: string): unknown {
  const { container, key } = parent(doc, pointer);
  if (Array.isArray(container)) {
    const i = Number(key);
    if (!(i >= 0 && i < container.length))
      throw patchError(`unable to remove nonexistent key: ${key}: missing value`);
    return container.splice(i, 1)[0];
  }
  if (isDict(container) && key in container) {
    const v = container[key];
    delete container[key];
    return v;
  }
  throw patchError(`unable to remove nonexistent key: ${key}: missing value`);
}

function addAt(doc: unknown, pointer: string, value: unknown, replace: boolean): unknown {
  if (pointer === '') return value;
  const { container, key } = parent(doc, pointer);
  if (Array.isArray(container)) {
    const i = key === '-' ? container.length : Number(key);
    if (!(i >= 0 && i <= container.length)) throw patchError(`add operation index out of bounds: ${key}`);
    if (replace) container[i] = value;
    else container.splice(i, 0, value);
  } else if (isDict(container)) {
    if (replace && !(key in container))
      throw patchError(`replace operation does not apply: doc is missing key: ${pointer}: missing value`);
    container[key] = value;
  } else throw patchError(`doc is missing path: "${pointer}": missing value`);
  return doc;
}

export function applyJsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops))
    throw Errors.badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let out = clone(doc);
  for (const raw of ops) {
    if (!isDict(raw)) throw Errors.badRequest('invalid JSON Patch operation');
    const op = raw.op as string;
    const path = raw.path as string;
    switch (op) {
      case 'add':
        out = addAt(out, path, clone(raw.value), false);
        break;
      case 'replace':
        out = path === '' ? clone(raw.value) : addAt(out, path, clone(raw.value), true);
        break;
      case 'remove':
        removeAt(out, path);
        break;
      case 'move': {
        const v = removeAt(out, raw.from as string);
        out = addAt(out, path, v, false);
        break;
      }
      case 'copy':
        out = addAt(out, path, clone(getAt(out, raw.from as string)), false);
        break;
      case 'test':
        if (!deepEqual(getAt(out, path), raw.value))
          throw patchError(`testing value ${path} failed: test failed`);
        break;
      default:
        throw Errors.badRequest(`Unexpected kind: ${str(op)}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------- Merge Patch
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isDict(patch)) return clone(patch);
  const out: Dict = isDict(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

// ---------------------------------------------------------------- Strategic merge
/**
 * patchMergeKey / patchStrategy of the built-in fields that carry them (from the Go
 * struct tags in k8s.io/api). `ports` depends on context: container ports merge on
 * containerPort, service ports on port. Lists absent here are replaced whole.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  imagePullSecrets: 'name',
  conditions: 'type',
  ownerReferences: 'uid',
  hostAliases: 'ip',
  resourceClaims: 'name',
  addresses: 'type',
  containerStatuses: 'name',
  initContainerStatuses: 'name',
  topologySpreadConstraints: 'topologyKey',
};
/** Primitive lists with patchStrategy:merge (set union). */
const MERGE_PRIMITIVE = new Set(['finalizers']);

export type ListKeyFn = (path: readonly string[], field: string) => string[] | 'set' | undefined;

/** List keys of built-in kinds for SMP and SSA. */
export const builtinListKeys: ListKeyFn = (path, field) => {
  if (MERGE_PRIMITIVE.has(field)) return 'set';
  if (field === 'ports')
    return path.includes('containers') || path.includes('initContainers') ? ['containerPort'] : ['port'];
  const k = MERGE_KEYS[field];
  return k === undefined ? undefined : [k];
};

function itemKey(item: unknown, keys: readonly string[]): string | undefined {
  if (!isDict(item)) return undefined;
  return JSON.stringify(keys.map((k) => item[k] ?? null));
}

function strategicMerge(original: unknown, patch: unknown, path: string[], keysOf: ListKeyFn): unknown {
  if (!isDict(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const p = clone(patch);
    delete p.$patch;
    return p;
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Dict = isDict(original) ? clone(original) : {};
  const retain = patch.$retainKeys as string[] | undefined;
  if (retain) for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const cur = out[field];
      if (Array.isArray(cur) && Array.isArray(v))
        out[field] = cur.filter((x) => !v.some((d) => deepEqual(d, x)));
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const keys = keysOf(path, k);
    if (Array.isArray(v) && keys !== undefined) {
      const cur = Array.isArray(out[k]) ? (clone(out[k]) as unknown[]) : [];
      if (keys === 'set') {
        for (const x of v) if (!cur.some((c) => deepEqual(c, x))) cur.push(clone(x));
        out[k] = cur;
        continue;
      }
      if (v.some((x) => isDict(x) && x.$patch === 'replace')) {
        out[k] = (v as unknown[]).filter((x) => !(isDict(x) && x.$patch === 'replace')).map((x) => clone(x));
        continue;
      }
      for (const item of v) {
        const key = itemKey(item, keys);
        const i = cur.findIndex((c) => itemKey(c, keys) === key);
        if (isDict(item) && item.$patch === 'delete') {
          if (i >= 0) cur.splice(i, 1);
        } else if (i >= 0) cur[i] = strategicMerge(cur[i], item, [...path, k], keysOf);
        else cur.push(strategicMerge(undefined, item, [...path, k], keysOf));
      }
      out[k] = cur;
    } else if (isDict(v)) {
      const merged = strategicMerge(out[k], v, [...path, k], keysOf);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else out[k] = clone(v);
  }
  return out;
}

export function applyStrategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isDict(patch)) throw Errors.badRequest('strategic merge patch must be a JSON object');
  return strategicMerge(target, patch, [], builtinListKeys);
}

// ---------------------------------------------------------------- Server-side apply
/** Leaf field paths of an applied configuration, list items named by their keys. */
export function appliedPaths(
  config: unknown,
  keysOf: ListKeyFn,
  path: string[] = [],
  out = new Set<string>(),
): Set<string> {
  if (isDict(config)) {
    for (const [k, v] of Object.entries(config)) {
      const p = [...path, k];
      const keys = keysOf(path, k);
      if (Array.isArray(v) && Array.isArray(keys)) {
        for (const item of v) {
          const ik = itemKey(item, keys);
          appliedPaths(item, keysOf, [...p, `[${ik}]`], out);
        }
        out.add(JSON.stringify(p));
      } else if (isDict(v) && Object.keys(v).length > 0) appliedPaths(v, keysOf, p, out);
      else out.add(JSON.stringify(p));
    }
  }
  return out;
}

function removePath(obj: unknown, path: readonly string[], keysOf: ListKeyFn, prefix: string[] = []): void {
  if (!isDict(obj) || path.length === 0) return;
  const [head, ...rest] = path as [string, ...string[]];
  if (rest.length === 0) {
    delete obj[head];
    return;
  }
  const v = obj[head];
  const keys = keysOf(prefix, head);
  if (Array.isArray(v) && Array.isArray(keys) && rest[0]!.startsWith('[')) {
    const ik = rest[0]!.slice(1, -1);
    const i = v.findIndex((x) => itemKey(x, keys) === ik);
    if (i < 0) return;
    if (rest.length === 1) v.splice(i, 1);
    else removePath(v[i], rest.slice(1), keysOf, [...prefix, head]);
    return;
  }
  removePath(v, rest, keysOf, [...prefix, head]);
}

/** Duplicate keys in list-maps of an applied configuration (SSA refuses them). */
export function duplicateKeys(config: unknown, keysOf: ListKeyFn, path: string[] = []): string[] {
  const out: string[] = [];
  if (!isDict(config)) return out;
  for (const [k, v] of Object.entries(config)) {
    const keys = keysOf(path, k);
    if (Array.isArray(v)) {
      if (Array.isArray(keys)) {
        const seen = new Set<string>();
        for (const item of v) {
          const ik = itemKey(item, keys);
          if (ik !== undefined && seen.has(ik)) {
            const vals = JSON.parse(ik) as unknown[];
            out.push(
              `.${[...path, k].join('.')}: duplicate entries for key [${keys.map((kk, i) => `${kk}=${JSON.stringify(vals[i])}`).join(',')}]`,
            );
          }
          if (ik !== undefined) seen.add(ik);
          out.push(...duplicateKeys(item, keysOf, [...path, k]));
        }
      }
    } else if (isDict(v)) out.push(...duplicateKeys(v, keysOf, [...path, k]));
  }
  return out;
}

/**
 * Merges an applied configuration into the live object. `previous` is what the same
 * field manager applied last time (its no-longer-applied fields are removed).
 */
export function applyConfiguration(
  live: unknown,
  config: Dict,
  previous: Dict | undefined,
  keysOf: ListKeyFn,
): Dict {
  let out = strategicMerge(live, stripDirectives(config), [], keysOf) as Dict;
  if (previous) {
    const now = appliedPaths(config, keysOf);
    for (const p of appliedPaths(previous, keysOf)) {
      if (!now.has(p)) {
        const parts = JSON.parse(p) as string[];
        if (
          parts[0] === 'apiVersion' ||
          parts[0] === 'kind' ||
          (parts[0] === 'metadata' && parts[1] === 'name')
        )
          continue;
        removePath(out, parts, keysOf);
      }
    }
    out = clone(out);
  }
  return out;
}

function stripDirectives(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (!isDict(v)) return v;
  const out: Dict = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripDirectives(x);
  return out;
}
