/**
 * Custom resources from CustomResourceDefinitions: the served resource types, the
 * structural-schema behaviours (validation with ajv, pruning of unknown fields,
 * `default:`), and the printer columns.
 *
 * Upstream: https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
 * (#validation, #field-pruning, #defaulting, #additional-printer-columns, #subresources,
 * #short-names, #categories). Not evaluated: CEL rules (`x-kubernetes-validations`),
 * conversion webhooks (only `conversion.strategy: None` semantics: one stored shape).
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { Errors, type StatusCause } from './errors.js';
import type { ResourceType } from './resources.js';
import { clone, isDict, type Dict, type KObject } from './types.js';

export interface PrinterColumn {
  name: string;
  type: string;
  format?: string;
  description?: string;
  priority?: number;
  jsonPath: string;
}

export interface CrdVersionInfo {
  readonly crdName: string;
  readonly schema: Dict | undefined;
  readonly validate: ValidateFunction | undefined;
  readonly printerColumns: readonly PrinterColumn[];
  readonly scale?: Dict;
}

type AddFormats = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ??
  addFormatsModule) as unknown as AddFormats;

const ajv = new Ajv({ strict: false, allErrors: true, logger: false, validateFormats: true });
addFormats(ajv);
for (const f of ['int32', 'int64', 'float', 'double', 'byte', 'binary', 'password', 'quantity']) {
  if (!ajv.formats[f]) ajv.addFormat(f, true);
}

/** OpenAPI v3 (structural) → JSON Schema for ajv: drop metadata, map int-or-string. */
function toJsonSchema(s: unknown, root: boolean): unknown {
  if (Array.isArray(s)) return s.map((x) => toJsonSchema(x, false));
  if (!isDict(s)) return s;
  const out: Dict = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-') || k === 'default' || k === 'example' || k === 'externalDocs') continue;
    if (k === 'properties' && isDict(v)) {
      const props: Dict = {};
      for (const [pk, pv] of Object.entries(v)) {
        if (root && pk === 'metadata') continue;
        props[pk] = toJsonSchema(pv, false);
      }
      out[k] = props;
    } else if (k === 'items' || k === 'additionalProperties' || k === 'not') {
      out[k] = typeof v === 'boolean' ? v : toJsonSchema(v, false);
    } else if (k === 'allOf' || k === 'anyOf' || k === 'oneOf') {
      out[k] = toJsonSchema(v, false);
    } else {
      out[k] = v;
    }
  }
  if (s['x-kubernetes-int-or-string'] === true) {
    delete out.type;
    if (!out.anyOf) out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  }
  return out;
}

function crdVersions(crd: KObject): Dict[] {
  const spec = crd.spec as Dict;
  return ((spec.versions as Dict[] | undefined) ?? []).filter((v) => v.served !== false);
}

/** The resource types one CRD serves (one per served version). */
export function crdResourceTypes(crd: KObject): ResourceType[] {
  const spec = crd.spec as Dict;
  const names = spec.names as Dict;
  const group = spec.group as string;
  return crdVersions(crd).map((v) => {
    const schema = (v.schema as Dict | undefined)?.openAPIV3Schema as Dict | undefined;
    const sub = (v.subresources as Dict | undefined) ?? {};
    const info: CrdVersionInfo = {
      crdName: crd.metadata.name ?? '',
      schema,
      validate: schema ? ajv.compile(toJsonSchema(schema, true) as object) : undefined,
      printerColumns: (v.additionalPrinterColumns as PrinterColumn[] | undefined) ?? [
        { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
      ...(isDict(sub.scale) ? { scale: sub.scale } : {}),
    };
    const subresources = [...(isDict(sub.status) ? ['status'] : []), ...(isDict(sub.scale) ? ['scale'] : [])];
    return {
      group,
      version: v.name as string,
      kind: names.kind as string,
      listKind: (names.listKind as string | undefined) ?? `${names.kind as string}List`,
      plural: names.plural as string,
      singular: (names.singular as string | undefined) ?? (names.kind as string).toLowerCase(),
      namespaced: spec.scope !== 'Cluster',
      shortNames: (names.shortNames as string[] | undefined) ?? [],
      categories: (names.categories as string[] | undefined) ?? [],
      verbs: ['delete', 'deletecollection', 'get', 'list', 'patch', 'create', 'update', 'watch'],
      subresources,
      generation: true,
      statusSubresource: isDict(sub.status),
      defaultPropagation: 'Background',
      returnDeletedObject: true,
      fieldSelectors: ((v.selectableFields as { jsonPath: string }[] | undefined) ?? []).map((f) =>
        f.jsonPath.replace(/^\./, ''),
      ),
      crd: info,
    } satisfies ResourceType;
  });
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Checks of apiextensions' CRD strategy that clients trip over. */
export function validateCrd(crd: KObject): StatusCause[] {
  const causes: StatusCause[] = [];
  const spec = crd.spec as Dict | undefined;
  if (!isDict(spec)) return [{ reason: 'FieldValueRequired', field: 'spec', message: 'Required value' }];
  const names = spec.names as Dict | undefined;
  const plural = names?.plural as string | undefined;
  const group = spec.group as string | undefined;
  if (!plural || !DNS1123_SUBDOMAIN.test(plural))
    causes.push({
      reason: 'FieldValueInvalid',
      field: 'spec.names.plural',
      message: `Invalid value: "${plural}"`,
    });
  if (!names?.kind)
    causes.push({ reason: 'FieldValueRequired', field: 'spec.names.kind', message: 'Required value' });
  if (!group || !group.includes('.'))
    causes.push({
      reason: 'FieldValueInvalid',
      field: 'spec.group',
      message: `Invalid value: "${group}": should be a domain with at least one dot`,
    });
  if (crd.metadata.name !== `${plural}.${group}`)
    causes.push({
      reason: 'FieldValueInvalid',
      field: 'metadata.name',
      message: `Invalid value: "${crd.metadata.name}": must be spec.names.plural+"."+spec.group`,
    });
  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster')
    causes.push({
      reason: 'FieldValueNotSupported',
      field: 'spec.scope',
      message: `Unsupported value: "${String(spec.scope)}": supported values: "Cluster", "Namespaced"`,
    });
  const versions = (spec.versions as Dict[] | undefined) ?? [];
  if (versions.filter((v) => v.storage === true).length !== 1)
    causes.push({
      reason: 'FieldValueInvalid',
      field: 'spec.versions',
      message: 'Invalid value: must have exactly one version marked as storage version',
    });
  for (const [i, v] of versions.entries()) {
    const s = (v.schema as Dict | undefined)?.openAPIV3Schema;
    if (!isDict(s))
      causes.push({
        reason: 'FieldValueRequired',
        field: `spec.versions[${i}].schema.openAPIV3Schema`,
        message: 'Required value: schemas are required',
      });
    else if (s.type !== 'object')
      causes.push({
        reason: 'FieldValueRequired',
        field: `spec.versions[${i}].schema.openAPIV3Schema.type`,
        message: 'Required value: must not be empty at the root',
      });
  }
  return causes;
}

function jsonPointerToField(p: string): string {
  return p
    .split('/')
    .slice(1)
    .map((s) => (/^\d+$/.test(s) ? `[${s}]` : `.${s.replace(/~1/g, '/').replace(/~0/g, '~')}`))
    .join('')
    .replace(/^\./, '');
}

function lookup(obj: unknown, pointer: string): unknown {
  let cur = obj;
  for (const s of pointer.split('/').slice(1)) {
    if (Array.isArray(cur)) cur = cur[Number(s)];
    else if (isDict(cur)) cur = cur[s];
    else return undefined;
  }
  return cur;
}

/** ajv errors → apiextensions-style field errors (wording of k8s.io/kube-openapi validate). */
export function schemaCauses(errors: readonly ErrorObject[], obj: unknown): StatusCause[] {
  const out: StatusCause[] = [];
  for (const e of errors) {
    if (e.keyword === 'anyOf' || e.keyword === 'if') continue;
    let field = jsonPointerToField(e.instancePath);
    const value = lookup(obj, e.instancePath);
    const v = JSON.stringify(value);
    switch (e.keyword) {
      case 'required': {
        const p = (e.params as { missingProperty: string }).missingProperty;
        field = field ? `${field}.${p}` : p;
        out.push({ reason: 'FieldValueRequired', field, message: 'Required value' });
        break;
      }
      case 'enum': {
        const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map((a) =>
          JSON.stringify(a),
        );
        out.push({
          reason: 'FieldValueNotSupported',
          field,
          message: `Unsupported value: ${v}: supported values: ${allowed.join(', ')}`,
        });
        break;
      }
      case 'pattern':
        out.push({
          reason: 'FieldValueInvalid',
          field,
          message: `Invalid value: ${v}: ${field} in body should match '${(e.params as { pattern: string }).pattern}'`,
        });
        break;
      case 'type':
        out.push({
          reason: 'FieldValueTypeInvalid',
          field,
          message: `Invalid value: "${Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value}": ${field} in body must be of type ${(e.params as { type: string }).type}: ${v}`,
        });
        break;
      default:
        out.push({
          reason: 'FieldValueInvalid',
          field,
          message: `Invalid value: ${v}: ${field} in body ${e.message}`,
        });
    }
  }
  return out;
}

/**
 * Prunes unknown fields (those not in the structural schema, outside
 * `x-kubernetes-preserve-unknown-fields`) and applies `default:` values, in place.
 * Returns the dotted paths of pruned fields, for fieldValidation Warn/Strict.
 */
export function pruneAndDefault(obj: Dict, schema: Dict): string[] {
  const pruned: string[] = [];
  const walk = (value: unknown, s: Dict | undefined, path: string, root: boolean): void => {
    if (!s) return;
    if (Array.isArray(value)) {
      const items = s.items as Dict | undefined;
      value.forEach((x, i) => walk(x, items, `${path}[${i}]`, false));
      return;
    }
    if (!isDict(value)) return;
    const props = s.properties as Dict | undefined;
    const additional = s.additionalProperties;
    if (props) {
      for (const [k, ps] of Object.entries(props)) {
        if (root && k === 'metadata') continue;
        if (value[k] === undefined && isDict(ps) && ps.default !== undefined) value[k] = clone(ps.default);
      }
    }
    for (const k of Object.keys(value)) {
      const sub = `${path === '' ? '' : `${path}.`}${k}`;
      if (root && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) continue;
      const ps = props?.[k];
      if (isDict(ps)) walk(value[k], ps, sub, false);
      else if (isDict(additional)) walk(value[k], additional, sub, false);
      else if (additional === true || s['x-kubernetes-preserve-unknown-fields'] === true) continue;
      else if (props !== undefined || additional === false || s.type === 'object') {
        pruned.push(sub);
        delete value[k];
      }
    }
  };
  walk(obj, schema, '', true);
  return pruned;
}

/** `x-kubernetes-list-type: map` keys for the list at a dotted path (numeric steps skipped). */
export function listMapKeys(schema: Dict | undefined, path: readonly string[]): string[] | undefined {
  let s: unknown = schema;
  for (const p of path) {
    if (!isDict(s)) return undefined;
    if (/^\d+$/.test(p)) s = s.items;
    else
      s =
        (s.properties as Dict | undefined)?.[p] ??
        (isDict(s.additionalProperties) ? s.additionalProperties : undefined);
  }
  if (!isDict(s) || s['x-kubernetes-list-type'] !== 'map') return undefined;
  return (s['x-kubernetes-list-map-keys'] as string[] | undefined) ?? [];
}

/** Duplicate entries in `x-kubernetes-list-type: map|set` lists (the server rejects them). */
export function duplicateListEntries(obj: unknown, schema: Dict | undefined): StatusCause[] {
  const out: StatusCause[] = [];
  const walk = (value: unknown, s: unknown, path: string): void => {
    if (!isDict(s)) return;
    if (Array.isArray(value)) {
      const type = s['x-kubernetes-list-type'];
      if (type === 'map' || type === 'set') {
        const keys = (s['x-kubernetes-list-map-keys'] as string[] | undefined) ?? [];
        const seen = new Set<string>();
        value.forEach((item, i) => {
          const k =
            type === 'map' && isDict(item)
              ? JSON.stringify(keys.map((key) => item[key]))
              : JSON.stringify(item);
          if (seen.has(k))
            out.push({
              reason: 'FieldValueDuplicate',
              field: `${path}[${i}]`,
              message: `Duplicate value: ${k}`,
            });
          seen.add(k);
        });
      }
      value.forEach((x, i) => walk(x, s.items, `${path}[${i}]`));
      return;
    }
    if (!isDict(value)) return;
    const props = s.properties as Dict | undefined;
    for (const [k, v] of Object.entries(value)) {
      walk(v, props?.[k] ?? s.additionalProperties, path === '' ? k : `${path}.${k}`);
    }
  };
  walk(obj, schema, '');
  return out;
}

/** Validates a custom resource against its version's schema; throws 422 Invalid. */
export function validateCustomResource(t: ResourceType, obj: KObject): void {
  const info = t.crd;
  if (!info?.validate) return;
  const body: Dict = { ...obj };
  delete body.metadata;
  const causes: StatusCause[] = [];
  if (!info.validate(body)) causes.push(...schemaCauses(info.validate.errors ?? [], body));
  causes.push(...duplicateListEntries(body, info.schema));
  if (causes.length > 0) throw Errors.invalid(t.kind, t.group, obj.metadata.name ?? '', causes);
}
