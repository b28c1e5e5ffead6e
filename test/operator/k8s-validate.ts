/**
 * Offline checks of Kubernetes manifests, in three layers (kubernetes/NOTES.md §1c):
 * the official schemas (kubernetes-models 4.5.x, compiled AJV validators), a strict
 * unknown-field check (the API server's fieldValidation=Strict, which kubectl uses; the
 * schemas alone let `backofLimit` through), and the NixBuild CRD's own openAPIV3Schema.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import AjvModule from 'ajv';
import addFormatsModule from 'ajv-formats';
import yaml from 'js-yaml';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const CRD_FILE = `${REPO}crds/nixbuilds.nixyard.dev.yaml`;

interface Attribute {
  readonly name: string;
  readonly baseName: string;
  readonly type: string;
}
type ModelClass = { getAttributeTypeMap(): Attribute[] };

function modelClass(type: string): ModelClass | undefined {
  const cls = (k8s as unknown as Record<string, unknown>)[type];
  return typeof cls === 'function' && 'getAttributeTypeMap' in cls
    ? (cls as unknown as ModelClass)
    : undefined;
}

/** Paths of fields that no Kubernetes type declares, walking client-node's generated models. */
export function unknownFields(value: unknown, type: string, path = ''): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) return [`${path}: expected a list`];
    return value.flatMap((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`));
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value !== 'object' || Array.isArray(value)) return [`${path}: expected a map`];
    return Object.entries(value).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`));
  }
  const cls = modelClass(type);
  if (!cls) return [];
  if (typeof value !== 'object' || Array.isArray(value)) return [`${path}: expected an object of ${type}`];
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a]));
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => {
    const attr = attrs.get(k);
    if (!attr) return [`${path}.${k}: unknown field of ${type}`];
    return unknownFields(v, attr.type, `${path}.${k}`);
  });
}

/** Errors of the kubernetes-models validator of the object's kind ([] when valid). */
export async function schemaErrors(obj: object): Promise<string[]> {
  const { apiVersion, kind } = obj as { apiVersion?: unknown; kind?: unknown };
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return ['no apiVersion or kind'];
  let mod: Record<string, unknown>;
  try {
    mod = (await import(`kubernetes-models/${apiVersion}/${kind}`)) as Record<string, unknown>;
  } catch {
    return [`kubernetes-models has no ${apiVersion} ${kind}`];
  }
  const Model = mod[kind] as new (data: unknown) => { validate(): void };
  try {
    new Model(structuredClone(obj)).validate();
    return [];
  } catch (e) {
    const errors = (e as { errors?: { instancePath?: string; message?: string }[] }).errors;
    return errors?.map((x) => `${x.instancePath ?? ''} ${x.message ?? ''}`) ?? [String(e)];
  }
}

/** Both layers for a built-in kind: kubernetes-models' schema and the strict field check. */
export async function builtinErrors(obj: object): Promise<string[]> {
  const kind = (obj as { kind?: unknown }).kind;
  const type = `V1${typeof kind === 'string' ? kind : ''}`;
  if (!modelClass(type)) return [`client-node has no ${type} for the strict field check`];
  return [...(await schemaErrors(obj)), ...unknownFields(obj, type)];
}

export function loadYamlDocs(text: string): Record<string, unknown>[] {
  return yaml.loadAll(text).filter((d): d is Record<string, unknown> => typeof d === 'object' && d !== null);
}

interface SchemaNode {
  type?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  additionalProperties?: SchemaNode | boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

export function crdSchema(crdText = readFileSync(CRD_FILE, 'utf8')): SchemaNode {
  const crd = yaml.load(crdText) as {
    spec: { versions: { name: string; schema: { openAPIV3Schema: SchemaNode } }[] };
  };
  return crd.spec.versions[0]!.schema.openAPIV3Schema;
}

/** Fields the API server would prune (not declared by the structural schema). */
export function prunedFields(value: unknown, schema: SchemaNode, path = ''): string[] {
  if (schema['x-kubernetes-preserve-unknown-fields'] || value === null || typeof value !== 'object')
    return [];
  if (Array.isArray(value))
    return schema.items ? value.flatMap((v, i) => prunedFields(v, schema.items!, `${path}[${i}]`)) : [];
  if (path === '.metadata') return [];
  return Object.entries(value).flatMap(([k, v]) => {
    const sub =
      schema.properties?.[k] ??
      (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
    if (!sub) return [`${path}.${k}`];
    return prunedFields(v, sub, `${path}.${k}`);
  });
}

type AjvValidate = ((data: unknown) => boolean) & {
  errors?: { instancePath: string; message?: string }[] | null;
};

/** A validator of NixBuild objects against the CRD (the server's checks minus CEL), plus pruning. */
export function nixBuildValidator(): (obj: unknown) => string[] {
  const Ajv = ((AjvModule as unknown as { default?: unknown }).default ?? AjvModule) as new (o: object) => {
    compile(s: object): AjvValidate;
    addKeyword(k: string): void;
  };
  const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (
    a: unknown,
  ) => void;
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  const schema = crdSchema();
  const validate = ajv.compile(schema);
  return (obj) => {
    const ok = validate(obj);
    const errors = ok ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`);
    return [...errors, ...prunedFields(obj, schema).map((p) => `${p}: pruned (not in the schema)`)];
  };
}
