/**
 * JSON as nlohmann::json (Nix 2.8) reads and writes it, for `__json`, `.attrs.json` and
 * `.attrs.sh`: numbers keep the distinction between integers and floats, objects are
 * sorted by key (bytewise) when dumped, strings are escaped like `json::dump()` (only
 * `"`, `\`, and control characters; no `\/`, UTF-8 verbatim), floats are printed in the
 * shortest round-trip form with nlohmann's layout (`2.0`, `1e-07`, `0.0001`).
 */
import { compareByteStrings } from '../../nix/derivation/byte-string.js';

export type JsonValue =
  | { readonly t: 'null' }
  | { readonly t: 'bool'; readonly v: boolean }
  | { readonly t: 'int'; readonly v: bigint }
  | { readonly t: 'float'; readonly v: number }
  | { readonly t: 'string'; readonly v: string }
  | { readonly t: 'array'; readonly v: JsonValue[] }
  | { readonly t: 'object'; readonly v: Map<string, JsonValue> };

export const jsonString = (v: string): JsonValue => ({ t: 'string', v });

/** Parses strict JSON; throws SyntaxError on bad input. */
export function parseJson(text: string): JsonValue {
  let pos = 0;
  const fail = (why: string): never => {
    throw new SyntaxError(`${why} at offset ${pos}`);
  };
  const ws = (): void => {
    while (pos < text.length && ' \t\n\r'.includes(text[pos]!)) pos++;
  };
  const value = (): JsonValue => {
    ws();
    const c = text[pos];
    if (c === '{') {
      pos++;
      const v = new Map<string, JsonValue>();
      ws();
      if (text[pos] === '}') {
        pos++;
        return { t: 'object', v };
      }
      for (;;) {
        ws();
        if (text[pos] !== '"') fail('expected a key');
        const key = str();
        ws();
        if (text[pos++] !== ':') fail('expected :');
        v.set(key, value());
        ws();
        const d = text[pos++];
        if (d === '}') return { t: 'object', v };
        if (d !== ',') fail('expected , or }');
      }
    }
    if (c === '[') {
      pos++;
      const v: JsonValue[] = [];
      ws();
      if (text[pos] === ']') {
        pos++;
        return { t: 'array', v };
      }
      for (;;) {
        v.push(value());
        ws();
        const d = text[pos++];
        if (d === ']') return { t: 'array', v };
        if (d !== ',') fail('expected , or ]');
      }
    }
    if (c === '"') return { t: 'string', v: str() };
    for (const [word, val] of [
      ['null', { t: 'null' }],
      ['true', { t: 'bool', v: true }],
      ['false', { t: 'bool', v: false }],
    ] as const) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return val;
      }
    }
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(pos, pos + 400));
    if (!m) return fail('unexpected character');
    pos += m[0].length;
    if (m[2] === undefined && m[3] === undefined) {
      const n = BigInt(m[0]);
      if (n >= -(2n ** 63n) && n < 2n ** 64n) return { t: 'int', v: n };
    }
    return { t: 'float', v: Number(m[0]) };
  };
  const str = (): string => {
    pos++; // opening quote
    let out = '';
    for (;;) {
      const c = text[pos++];
      if (c === undefined) return fail('unterminated string');
      if (c === '"') return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = text[pos++];
      const simple: Record<string, string> = {
        '"': '"',
        '\\': '\\',
        '/': '/',
        b: '\b',
        f: '\f',
        n: '\n',
        r: '\r',
        t: '\t',
      };
      if (e !== undefined && e in simple) out += simple[e];
      else if (e === 'u') {
        const hex = text.slice(pos, pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
        out += String.fromCharCode(parseInt(hex, 16));
        pos += 4;
      } else fail('bad escape');
    }
  };
  const v = value();
  ws();
  if (pos !== text.length) fail('trailing data');
  return v;
}

/** `json::dump()` string escaping. */
export function dumpString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (c < 0x20) {
      const named: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };
      out += named[c] ?? `\\u${c.toString(16).padStart(4, '0')}`;
    } else out += ch;
  }
  return out + '"';
}

/** nlohmann's float layout (`to_chars` / `format_buffer`, min_exp -4, max_exp 15). */
export function dumpFloat(x: number): string {
  if (!Number.isFinite(x)) return 'null';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const neg = x < 0;
  const [mant, expText] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const k = digits.length;
  const n = Number(expText) + 1; // decimal point position
  let s: string;
  if (k <= n && n <= 15) s = digits + '0'.repeat(n - k) + '.0';
  else if (0 < n && n <= 15) s = `${digits.slice(0, n)}.${digits.slice(n)}`;
  else if (-4 < n && n <= 0) s = `0.${'0'.repeat(-n)}${digits}`;
  else {
    const e = n - 1;
    const exp = `${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
    s = `${digits[0]}${k > 1 ? '.' + digits.slice(1) : ''}e${exp}`;
  }
  return neg ? '-' + s : s;
}

/** `json::dump()` (compact), objects sorted by key. */
export function dumpJson(v: JsonValue): string {
  switch (v.t) {
    case 'null':
      return 'null';
    case 'bool':
      return v.v ? 'true' : 'false';
    case 'int':
      return v.v.toString();
    case 'float':
      return dumpFloat(v.v);
    case 'string':
      return dumpString(v.v);
    case 'array':
      return `[${v.v.map(dumpJson).join(',')}]`;
    case 'object':
      return `{${sortedEntries(v.v)
        .map(([k, x]) => `${dumpString(k)}:${dumpJson(x)}`)
        .join(',')}}`;
  }
}

export function sortedEntries(m: ReadonlyMap<string, JsonValue>): [string, JsonValue][] {
  return [...m.entries()].sort(([a], [b]) => compareByteStrings(a, b));
}
