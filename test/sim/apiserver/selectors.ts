/**
 * Label and field selectors, as the list/watch query parameters carry them.
 * https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors
 * https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/
 */
import { Errors } from './errors.js';
import type { ResourceType } from './resources.js';
import { getPath, type KObject, str } from './types.js';

export type Requirement =
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | '!' };

function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim() !== '') out.push(cur);
  return out;
}

export function parseLabelSelector(s: string | null | undefined): Requirement[] {
  if (!s) return [];
  return splitTop(s).map((raw) => {
    const part = raw.trim();
    let m = /^([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part);
    if (m) {
      return {
        key: m[1]!,
        op: m[2] as 'in' | 'notin',
        values: m[3]!
          .split(',')
          .map((v) => v.trim())
          .filter((v) => v !== ''),
      };
    }
    m = /^([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)$/.exec(part);
    if (m) return { key: m[1]!, op: m[2] === '!=' ? '!=' : '=', value: m[3]! };
    m = /^!\s*([^\s]+)$/.exec(part);
    if (m) return { key: m[1]!, op: '!' };
    if (/^[A-Za-z0-9._/-]+$/.test(part)) return { key: part, op: 'exists' };
    throw Errors.badRequest(
      `unable to parse requirement: found '${part}', expected: in, notin, =, ==, !=, gt, lt`,
    );
  });
}

export function matchesLabels(
  labels: Record<string, string> | undefined,
  reqs: readonly Requirement[],
): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case '=':
        return has && v === r.value;
      case '!=':
        return !has || v !== r.value;
      case 'in':
        return has && r.values.includes(v!);
      case 'notin':
        return !has || !r.values.includes(v!);
      case 'exists':
        return has;
      case '!':
        return !has;
    }
  });
}

export interface FieldRequirement {
  field: string;
  op: '=' | '!=';
  value: string;
}

export function parseFieldSelector(
  s: string | null | undefined,
  allowed: readonly string[],
): FieldRequirement[] {
  if (!s) return [];
  return s.split(',').map((part) => {
    const m = /^([^!=]+)(==|=|!=)(.*)$/.exec(part.trim());
    if (!m) throw Errors.badRequest(`invalid selector: '${s}'; can't understand '${part}'`);
    const field = m[1]!;
    if (field !== 'metadata.name' && field !== 'metadata.namespace' && !allowed.includes(field))
      throw Errors.badRequest(`field label not supported: ${field}`);
    return { field, op: m[2] === '!=' ? '!=' : '=', value: m[3]! };
  });
}

function fieldValue(obj: KObject, field: string): string {
  // core/v1 Events (pkg/registry/core/event/strategy.go ToSelectableFields).
  if (field === 'source') return str(getPath(obj, 'source.component') || obj.reportingComponent || '');
  const v = getPath(obj, field);
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export function matchesFields(obj: KObject, reqs: readonly FieldRequirement[]): boolean {
  return reqs.every((r) => (fieldValue(obj, r.field) === r.value) === (r.op === '='));
}

/**
 * A list's or watch's fieldSelector as a test of objects of type `t`. For a type that is
 * a view of another's objects the labels are converted to the stored type's and tested
 * on the stored form, as the real server's field label conversion does.
 */
export function fieldMatcher(t: ResourceType, selector: string | null | undefined): (o: KObject) => boolean {
  const reqs = parseFieldSelector(selector, t.fieldSelectors);
  const storage = t.storage;
  if (!storage) return (o) => matchesFields(o, reqs);
  const stored = reqs.map((r) => ({ ...r, field: storage.fieldLabels[r.field] ?? r.field }));
  return (o) => matchesFields(storage.toStored(o), stored);
}

/** A metav1.LabelSelector object (matchLabels + matchExpressions). */
export interface LabelSelectorObject {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export function matchesSelectorObject(
  labels: Record<string, string> | undefined,
  sel: LabelSelectorObject | undefined,
): boolean {
  if (!sel) return false;
  const l = labels ?? {};
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, e.key);
    const val = l[e.key];
    const vals = e.values ?? [];
    const ok =
      e.operator === 'In'
        ? has && vals.includes(val!)
        : e.operator === 'NotIn'
          ? !has || !vals.includes(val!)
          : e.operator === 'Exists'
            ? has
            : e.operator === 'DoesNotExist'
              ? !has
              : e.operator === 'Gt'
                ? has && Number(val) > Number(vals[0])
                : e.operator === 'Lt'
                  ? has && Number(val) < Number(vals[0])
                  : false;
    if (!ok) return false;
  }
  return true;
}
