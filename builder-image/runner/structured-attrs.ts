/**
 * Structured attributes (`__structuredAttrs = true`, Nix 2.8 `parsed-derivations.cc`
 * `prepareStructuredAttrs` / `writeStructuredAttrsShell`, and
 * `LocalDerivationGoal::writeStructuredAttrs`): the `__json` object with `outputs`
 * replaced by `{name: path}` and each `exportReferencesGraph` key added as the path
 * infos of the closure, written as `.attrs.json`, and its shell rendering `.attrs.sh`.
 */
import { dumpJson, jsonString, parseJson, sortedEntries, type JsonValue } from './json.js';
import { BuildError, BuildErrorCode, plainMessage } from './errors.js';
import { BuildStatus } from './result.js';

/** What `pathInfoToJSON(…, includeImpureInfo=false, showClosureSize=true)` prints per path. */
export interface GraphEntry {
  readonly path: string;
  /** `sha256:<nix32>` */
  readonly narHash: string;
  readonly narSize: number;
  readonly closureSize: number;
  readonly references: readonly string[];
  readonly ca: string | undefined;
}

export function parseStructuredAttrs(json: string, drvPath: string): Map<string, JsonValue> {
  let v: JsonValue;
  try {
    v = parseJson(json);
  } catch (err) {
    throw new BuildError(
      BuildErrorCode.ATTRS_INVALID,
      BuildStatus.MiscFailure,
      plainMessage(`cannot process __json attribute of '${drvPath}': ${(err as Error).message}`),
      { drvPath },
    );
  }
  if (v.t !== 'object') {
    throw new BuildError(
      BuildErrorCode.ATTRS_INVALID,
      BuildStatus.MiscFailure,
      plainMessage(`__json attribute of '${drvPath}' is not an object`),
      { drvPath },
    );
  }
  return v.v;
}

/** The `exportReferencesGraph` object of structured attrs: file key → store paths. */
export function structuredGraphRequests(attrs: ReadonlyMap<string, JsonValue>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const e = attrs.get('exportReferencesGraph');
  if (e?.t !== 'object') return out;
  for (const [key, value] of e.v) {
    const paths: string[] = [];
    const add = (x: JsonValue): void => {
      if (x.t === 'string') paths.push(x.v);
      else if (x.t === 'array') x.v.forEach(add);
    };
    add(value);
    out.set(key, paths);
  }
  return out;
}

function graphJson(entries: readonly GraphEntry[]): JsonValue {
  return {
    t: 'array',
    v: entries.map((e) => {
      const m = new Map<string, JsonValue>([
        ['path', jsonString(e.path)],
        ['narHash', jsonString(e.narHash)],
        ['narSize', { t: 'int', v: BigInt(e.narSize) }],
        ['references', { t: 'array', v: e.references.map(jsonString) }],
        ['closureSize', { t: 'int', v: BigInt(e.closureSize) }],
      ]);
      if (e.ca !== undefined) m.set('ca', jsonString(e.ca));
      return { t: 'object', v: m };
    }),
  };
}

/** The final `.attrs.json` object. */
export function finalStructuredAttrs(
  attrs: ReadonlyMap<string, JsonValue>,
  outputs: ReadonlyMap<string, string>,
  graphs: ReadonlyMap<string, readonly GraphEntry[]>,
): Map<string, JsonValue> {
  const json = new Map(attrs);
  json.set('outputs', { t: 'object', v: new Map([...outputs].map(([k, p]) => [k, jsonString(p)])) });
  for (const [key, entries] of graphs) json.set(key, graphJson(entries));
  return json;
}

export function attrsJsonText(json: ReadonlyMap<string, JsonValue>): string {
  return dumpJson({ t: 'object', v: new Map(json) });
}

/** `shellEscape`: single quotes, `'` as `'\''`. */
export function shellEscape(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** C++ `static_cast<int>` of an integer (wraps modulo 2^32). */
function toInt32(v: bigint): string {
  return BigInt.asIntN(32, v).toString();
}

function simple(v: JsonValue): string | undefined {
  switch (v.t) {
    case 'string':
      return shellEscape(v.v);
    case 'int': {
      // get<float>() then ceil(f) == f: always true for an integer.
      return toInt32(v.v);
    }
    case 'float': {
      const f = Math.fround(v.v);
      if (Math.ceil(f) !== f || !Number.isFinite(f)) return undefined;
      // get<int>() of an integral double: truncation; out of range gives INT_MIN on x86-64.
      return f >= -(2 ** 31) && f < 2 ** 31 ? String(Math.trunc(v.v)) : '-2147483648';
    }
    case 'null':
      return "''";
    case 'bool':
      return v.v ? '1' : "''";
    default:
      return undefined;
  }
}

const SH_VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `writeStructuredAttrsShell`. */
export function attrsShText(json: ReadonlyMap<string, JsonValue>): string {
  let out = '';
  for (const [key, value] of sortedEntries(json)) {
    if (!SH_VAR_NAME.test(key)) continue;
    const s = simple(value);
    if (s !== undefined) {
      out += `declare ${key}=${s}\n`;
    } else if (value.t === 'array') {
      const parts = value.v.map(simple);
      if (parts.every((p) => p !== undefined))
        out += `declare -a ${key}=(${parts.map((p) => p + ' ').join('')})\n`;
    } else if (value.t === 'object') {
      const parts = sortedEntries(value.v).map(([k, x]) => [k, simple(x)] as const);
      if (parts.every(([, p]) => p !== undefined)) {
        out += `declare -A ${key}=(${parts.map(([k, p]) => `[${shellEscape(k)}]=${p} `).join('')})\n`;
      }
    }
  }
  return out;
}

/** A string-list attribute (`getStringsAttr`) in structured mode; undefined if absent. */
export function structuredStrings(
  attrs: ReadonlyMap<string, JsonValue>,
  name: string,
  drvPath: string,
): string[] | undefined {
  const v = attrs.get(name);
  if (v === undefined) return undefined;
  const bad = (): BuildError =>
    new BuildError(
      BuildErrorCode.ATTRS_INVALID,
      BuildStatus.MiscFailure,
      plainMessage(`attribute '${name}' of derivation '${drvPath}' must be a list of strings`),
      { drvPath, attribute: name },
    );
  if (v.t !== 'array') throw bad();
  return v.v.map((x) => {
    if (x.t !== 'string') throw bad();
    return x.v;
  });
}
