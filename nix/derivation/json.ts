/**
 * The JSON of `nix show-derivation` as Nix 2.8 prints it, byte for byte: Nix's own
 * JSONWriter (`json.cc`, not nlohmann), keys in insertion order, two-space indent, and
 * strings escaped only for `"` `\` LF CR TAB (as `\n` …) and other bytes < 0x20 (as
 * `\u00xx`); every other byte, even invalid UTF-8, verbatim.
 */
import { STORE_DIR } from '../store-path.js';
import { compareByteStrings, encodeByteString } from './byte-string.js';
import { fixedOutputPath } from './paths.js';
import { printMethodAlgo, type Derivation } from './types.js';

/** A JSON value whose objects keep their key order (Nix's writer does not sort). */
export type OrderedJson =
  | string
  | boolean
  | readonly OrderedJson[]
  | { readonly entries: readonly (readonly [string, OrderedJson])[] };

const obj = (entries: (readonly [string, OrderedJson])[]): OrderedJson => ({ entries });

/** One derivation's object (the value under its .drv path). */
export function derivationJson(drv: Derivation, storeDir: string = STORE_DIR): OrderedJson {
  const outputs = [...drv.outputs.entries()].map(([name, out]): readonly [string, OrderedJson] => {
    switch (out.kind) {
      case 'inputAddressed':
        return [name, obj([['path', out.path]])];
      case 'fixed':
        // Nix prints the path it computes, not the one in the file.
        return [
          name,
          obj([
            ['path', fixedOutputPath(drv.name, name, out, storeDir)],
            ['hashAlgo', printMethodAlgo(out.method, out.hash.algo)],
            ['hash', out.hash.toBase16()],
          ]),
        ];
      case 'floating':
        return [name, obj([['hashAlgo', printMethodAlgo(out.method, out.algo)]])];
      case 'deferred':
        return [name, obj([])];
      case 'impure':
        return [
          name,
          obj([
            ['hashAlgo', printMethodAlgo(out.method, out.algo)],
            ['impure', true],
          ]),
        ];
    }
  });
  const sorted = <T>(m: ReadonlyMap<string, T>): [string, T][] =>
    [...m.entries()].sort(([a], [b]) => compareByteStrings(a, b));
  return obj([
    ['outputs', obj(outputs.sort(([a], [b]) => compareByteStrings(a, b)))],
    ['inputSrcs', [...new Set(drv.inputSrcs)].sort(compareByteStrings)],
    [
      'inputDrvs',
      obj(sorted(drv.inputDrvs).map(([p, outs]) => [p, [...new Set(outs)].sort(compareByteStrings)])),
    ],
    ['system', drv.platform],
    ['builder', drv.builder],
    ['args', [...drv.args]],
    ['env', obj(sorted(drv.env))],
  ]);
}

/** The whole `nix show-derivation` document for (drvPath, derivation) pairs, in order. */
export function showDerivationJson(
  entries: Iterable<readonly [string, Derivation]>,
  storeDir?: string,
): OrderedJson {
  return obj([...entries].map(([path, drv]) => [path, derivationJson(drv, storeDir)]));
}

function jsonString(s: string): string {
  // eslint-disable-next-line no-control-regex
  return `"${s.replace(/["\\\x00-\x1f]/g, (c) => {
    switch (c) {
      case '"':
        return '\\"';
      case '\\':
        return '\\\\';
      case '\n':
        return '\\n';
      case '\r':
        return '\\r';
      case '\t':
        return '\\t';
      default:
        return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
    }
  })}"`;
}

/** Pretty-prints like Nix 2.8's JSONWriter with indentation (as a byte string). */
export function printOrderedJson(value: OrderedJson, indent = 0): string {
  if (typeof value === 'string') return jsonString(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  const pad = '  '.repeat(indent + 1);
  const close = '  '.repeat(indent);
  if (Array.isArray(value)) {
    const items = value as readonly OrderedJson[];
    if (items.length === 0) return '[]';
    return `[\n${items.map((v) => pad + printOrderedJson(v, indent + 1)).join(',\n')}\n${close}]`;
  }
  const { entries } = value as { entries: readonly (readonly [string, OrderedJson])[] };
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, v]) => `${pad}${jsonString(k)}: ${printOrderedJson(v, indent + 1)}`).join(',\n')}\n${close}}`;
}

/** Plain JS value (for deep-equal comparisons with `JSON.parse` of Nix's output). */
export function toPlainJson(value: OrderedJson): unknown {
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (Array.isArray(value)) return (value as readonly OrderedJson[]).map(toPlainJson);
  const { entries } = value as { entries: readonly (readonly [string, OrderedJson])[] };
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries)
    Object.defineProperty(out, k, {
      value: toPlainJson(v),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return out;
}

/** `nix show-derivation` output bytes, including the final newline. */
export function printShowDerivation(
  entries: Iterable<readonly [string, Derivation]>,
  storeDir?: string,
): Buffer {
  return encodeByteString(`${printOrderedJson(showDerivationJson(entries, storeDir))}\n`, 'json');
}
