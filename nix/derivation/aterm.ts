/**
 * The ATerm text of a .drv: `Derive([outputs],[inputDrvs],[inputSrcs],"system","builder",
 * [args],[env])` (Nix 2.8 `derivations.cc parseDerivation/unparse`; protocol/README.md §12).
 *
 * The parser accepts exactly the canonical form Nix writes, so that for every input it
 * accepts, `printDerivation(parseDerivation(b))` is `b` byte for byte:
 * - no whitespace, no leading/trailing commas, nothing after the closing `)`;
 * - outputs, inputDrvs (and their output names), inputSrcs and env keys strictly ascending
 *   in byte order (this also rejects duplicates); Nix itself would silently re-sort;
 * - only the escapes Nix writes (`\" \\ \n \r \t`), only in builder, args and env; raw
 *   LF/CR/TAB there is rejected (Nix would print it escaped);
 * - fixed-output hashes in lowercase base16 of the right length; store paths valid.
 * Dynamic derivations (`DrvWithVersion(…)`) are rejected with DRV_UNSUPPORTED.
 * The grammar has no recursion, so there is no nesting limit; `maxBytes` bounds the input.
 */
import { ErrorCode, NixFormatError } from '../errors.js';
import { Hash, HASH_SIZE, isHashAlgo } from '../hash.js';
import { parseStorePath, STORE_DIR } from '../store-path.js';
import { compareByteStrings, decodeByteString, encodeByteString } from './byte-string.js';
import { printMethodAlgo, type Derivation, type DerivationOutput, type OutputHashMethod } from './types.js';

export const DEFAULT_MAX_DRV_BYTES = 256 * 1024 * 1024;

export interface ParseDerivationOptions {
  /** Derivation name (Nix: from the .drv path). Default: `env.name`, `name` in `env.__json`, else `''`. */
  readonly name?: string;
  readonly storeDir?: string;
  /** Largest input accepted (default 256 MiB). */
  readonly maxBytes?: number;
}

/** What ends a run of literal bytes in an escaped string. */
const SPECIAL = /["\\\n\r\t]/g;

class Parser {
  pos = 0;
  constructor(
    readonly s: string,
    readonly storeDir: string,
  ) {}

  fail(message: string, field: string, at = this.pos): never {
    const offset = encodeByteString(this.s.slice(0, at)).length;
    throw new NixFormatError(ErrorCode.DRV_PARSE, `invalid derivation: ${message} at byte ${offset}`, {
      offset,
      field,
    });
  }

  expect(lit: string, field: string): void {
    if (!this.s.startsWith(lit, this.pos)) {
      const got =
        this.pos >= this.s.length ? 'end of input' : JSON.stringify(this.s.slice(this.pos, this.pos + 12));
      this.fail(`expected '${lit}' but found ${got}`, field);
    }
    this.pos += lit.length;
  }

  /** A string Nix writes without escaping (paths, names, hash fields, system). */
  plain(field: string): string {
    this.expect('"', field);
    const end = this.s.indexOf('"', this.pos);
    if (end < 0) this.fail('unterminated string', field);
    const value = this.s.slice(this.pos, end);
    const bs = value.indexOf('\\');
    if (bs >= 0) this.fail('escape sequence in a field that Nix writes unescaped', field, this.pos + bs);
    this.pos = end + 1;
    return value;
  }

  /** A string Nix writes escaped (builder, args, env). */
  escaped(field: string): string {
    this.expect('"', field);
    const parts: string[] = [];
    const open = this.pos - 1;
    for (;;) {
      // One regex step per special character keeps long, escape-heavy strings linear.
      SPECIAL.lastIndex = this.pos;
      const m = SPECIAL.exec(this.s);
      if (m === null) this.fail('unterminated string', field, open);
      parts.push(this.s.slice(this.pos, m.index));
      if (m[0] === '"') {
        this.pos = m.index + 1;
        return parts.join('');
      }
      if (m[0] !== '\\')
        this.fail('raw control character in a string (Nix writes it escaped)', field, m.index);
      const c = this.s[m.index + 1];
      const unescaped =
        c === 'n' ? '\n' : c === 'r' ? '\r' : c === 't' ? '\t' : c === '"' || c === '\\' ? c : null;
      if (unescaped === null) this.fail('escape sequence that Nix never writes', field, m.index);
      parts.push(unescaped);
      this.pos = m.index + 2;
    }
  }

  storePath(field: string): string {
    const at = this.pos;
    const path = this.plain(field);
    try {
      parseStorePath(path, this.storeDir);
    } catch (err) {
      if (err instanceof NixFormatError) this.fail(`${err.message} (${field})`, field, at);
      throw err;
    }
    return path;
  }

  list<T>(field: string, item: () => T): T[] {
    this.expect('[', field);
    const out: T[] = [];
    if (this.s[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(item());
      if (this.s[this.pos] === ',') {
        this.pos++;
        continue;
      }
      this.expect(']', field);
      return out;
    }
  }

  /** Fails unless `keys` is strictly ascending; `starts` are their offsets for the error. */
  sorted(keys: readonly string[], starts: readonly number[], field: string): void {
    for (let i = 1; i < keys.length; i++) {
      const cmp = compareByteStrings(keys[i - 1] ?? '', keys[i] ?? '');
      if (cmp >= 0) {
        this.fail(
          cmp === 0
            ? `duplicate ${field} entry ${JSON.stringify(keys[i])}`
            : `${field} not sorted at ${JSON.stringify(keys[i])}`,
          field,
          starts[i],
        );
      }
    }
  }

  output(): [string, DerivationOutput] {
    this.expect('(', 'outputs');
    const name = this.plain('outputs.name');
    this.expect(',', 'outputs');
    const pathAt = this.pos;
    const path = this.plain('outputs.path');
    this.expect(',', 'outputs');
    const algoAt = this.pos;
    const hashAlgo = this.plain('outputs.hashAlgo');
    this.expect(',', 'outputs');
    const hashAt = this.pos;
    const hash = this.plain('outputs.hash');
    this.expect(')', 'outputs');
    const checkPath = (): void => {
      const save = this.pos;
      this.pos = pathAt;
      this.storePath('outputs.path');
      this.pos = save;
    };
    if (hashAlgo === '') {
      if (hash !== '') this.fail('output has a hash but no hash algorithm', 'outputs.hash', hashAt);
      if (path === '') return [name, { kind: 'deferred' }];
      checkPath();
      return [name, { kind: 'inputAddressed', path }];
    }
    let method: OutputHashMethod = 'flat';
    let algo = hashAlgo;
    if (algo.startsWith('r:')) {
      method = 'recursive';
      algo = algo.slice(2);
    } else if (algo.startsWith('text:')) {
      method = 'text';
      algo = algo.slice(5);
    }
    if (!isHashAlgo(algo) || (method === 'text' && algo !== 'sha256')) {
      this.fail(`unknown output hash algorithm '${hashAlgo}'`, 'outputs.hashAlgo', algoAt);
    }
    if (hash === '' || hash === 'impure') {
      if (path !== '')
        this.fail(
          `${hash === '' ? 'floating' : 'impure'} output must have an empty path`,
          'outputs.path',
          pathAt,
        );
      return [name, hash === '' ? { kind: 'floating', method, algo } : { kind: 'impure', method, algo }];
    }
    if (hash.length !== HASH_SIZE[algo] * 2 || !/^[0-9a-f]*$/.test(hash)) {
      this.fail(
        `output hash must be ${HASH_SIZE[algo] * 2} lowercase base16 digits for ${algo}`,
        'outputs.hash',
        hashAt,
      );
    }
    checkPath();
    return [name, { kind: 'fixed', method, hash: new Hash(algo, Buffer.from(hash, 'hex')), path }];
  }

  derivation(options: ParseDerivationOptions): Derivation {
    if (this.s.startsWith('DrvWithVersion(')) {
      throw new NixFormatError(
        ErrorCode.DRV_UNSUPPORTED,
        'dynamic derivations (DrvWithVersion, Nix 2.20+ experimental) are not supported',
        { offset: 0, field: 'header' },
      );
    }
    this.expect('Derive(', 'header');
    const starts: number[] = [];
    const mark =
      <T>(f: () => T) =>
      (): T => {
        starts.push(this.pos);
        return f();
      };
    const outputs = this.list(
      'outputs',
      mark(() => this.output()),
    );
    this.sorted(
      outputs.map(([k]) => k),
      starts.splice(0),
      'outputs',
    );
    this.expect(',', 'header');
    const inputDrvs = this.list(
      'inputDrvs',
      mark((): [string, string[]] => {
        this.expect('(', 'inputDrvs');
        const path = this.storePath('inputDrvs.path');
        this.expect(',', 'inputDrvs');
        const outStarts: number[] = [];
        const outs = this.list('inputDrvs.outputs', () => {
          outStarts.push(this.pos);
          return this.plain('inputDrvs.outputs');
        });
        this.sorted(outs, outStarts, 'inputDrvs.outputs');
        this.expect(')', 'inputDrvs');
        return [path, outs];
      }),
    );
    this.sorted(
      inputDrvs.map(([k]) => k),
      starts.splice(0),
      'inputDrvs',
    );
    this.expect(',', 'header');
    const inputSrcs = this.list(
      'inputSrcs',
      mark(() => this.storePath('inputSrcs')),
    );
    this.sorted(inputSrcs, starts.splice(0), 'inputSrcs');
    this.expect(',', 'header');
    const platform = this.plain('system');
    this.expect(',', 'header');
    const builder = this.escaped('builder');
    this.expect(',', 'header');
    const args = this.list('args', () => this.escaped('args'));
    this.expect(',', 'header');
    const env = this.list(
      'env',
      mark((): [string, string] => {
        this.expect('(', 'env');
        const key = this.escaped('env.key');
        this.expect(',', 'env');
        const value = this.escaped('env.value');
        this.expect(')', 'env');
        return [key, value];
      }),
    );
    this.sorted(
      env.map(([k]) => k),
      starts.splice(0),
      'env',
    );
    this.expect(')', 'trailer');
    if (this.pos !== this.s.length) this.fail('trailing data after the derivation', 'trailer');
    const envMap = new Map(env);
    return {
      name: options.name ?? defaultName(envMap),
      outputs: new Map(outputs),
      inputDrvs: new Map(inputDrvs),
      inputSrcs,
      platform,
      builder,
      args,
      env: envMap,
    };
  }
}

/** `env.name`, or `name` in `env.__json` (`__structuredAttrs`), or `''`. */
function defaultName(env: ReadonlyMap<string, string>): string {
  const name = env.get('name');
  if (name !== undefined) return name;
  const json = env.get('__json');
  if (json === undefined) return '';
  try {
    const attrs: unknown = JSON.parse(json);
    if (typeof attrs === 'object' && attrs !== null && 'name' in attrs && typeof attrs.name === 'string') {
      return attrs.name;
    }
  } catch {
    // not JSON: no name
  }
  return '';
}

/** Parses the bytes of a .drv file (a `string` is taken as a byte string). */
export function parseDerivation(
  input: Uint8Array | string,
  options: ParseDerivationOptions = {},
): Derivation {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_DRV_BYTES;
  const size = typeof input === 'string' ? input.length : input.byteLength;
  if (size > maxBytes) {
    throw new NixFormatError(
      ErrorCode.DRV_PARSE,
      `derivation is ${size} bytes, more than the limit of ${maxBytes}`,
      {
        limit: maxBytes,
        size,
      },
    );
  }
  const text = typeof input === 'string' ? input : decodeByteString(input);
  return new Parser(text, options.storeDir ?? STORE_DIR).derivation(options);
}

export interface PrintDerivationOptions {
  /** hashDerivationModulo's mask: output paths and env entries named after outputs become "". */
  readonly maskOutputs?: boolean;
  /** Replaces the inputDrvs (hashDerivationModulo puts hashes in place of the paths). */
  readonly inputDrvs?: ReadonlyMap<string, Iterable<string>>;
}

function plain(s: string, field: string): string {
  if (s.includes('"') || s.includes('\\')) {
    throw new NixFormatError(
      ErrorCode.DRV_INVALID,
      `${field} ${JSON.stringify(s)} cannot contain '"' or '\\'`,
      {
        field,
      },
    );
  }
  return `"${s}"`;
}

const ESCAPES: Readonly<Record<string, string>> = {
  '"': '\\"',
  '\\': '\\\\',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

function escaped(s: string): string {
  return `"${s.replace(/["\\\n\r\t]/g, (c) => ESCAPES[c] ?? c)}"`;
}

function sortedKeys(keys: Iterable<string>): string[] {
  return [...new Set(keys)].sort(compareByteStrings);
}

function printOutput(name: string, o: DerivationOutput, mask: boolean): string {
  const fields = ((): [string, string, string] => {
    switch (o.kind) {
      case 'inputAddressed':
        return [mask ? '' : o.path, '', ''];
      case 'fixed':
        return [mask ? '' : o.path, printMethodAlgo(o.method, o.hash.algo), o.hash.toBase16()];
      case 'floating':
        return ['', printMethodAlgo(o.method, o.algo), ''];
      case 'deferred':
        return ['', '', ''];
      case 'impure':
        return ['', printMethodAlgo(o.method, o.algo), 'impure'];
    }
  })();
  return `(${plain(name, 'output name')},${fields.map((f) => plain(f, `output ${name}`)).join(',')})`;
}

/** The ATerm as a byte string (see byte-string.ts). */
export function printDerivationText(drv: Derivation, options: PrintDerivationOptions = {}): string {
  const mask = options.maskOutputs ?? false;
  const outputs = sortedKeys(drv.outputs.keys()).map((k) => printOutput(k, drv.outputs.get(k)!, mask));
  const inputs = options.inputDrvs ?? drv.inputDrvs;
  const inputDrvs = sortedKeys(inputs.keys()).map(
    (k) =>
      `(${plain(k, 'inputDrv')},[${sortedKeys(inputs.get(k)!)
        .map((o) => plain(o, 'inputDrv output'))
        .join(',')}])`,
  );
  const inputSrcs = sortedKeys(drv.inputSrcs).map((p) => plain(p, 'inputSrc'));
  const env = sortedKeys(drv.env.keys()).map(
    (k) => `(${escaped(k)},${escaped(mask && drv.outputs.has(k) ? '' : drv.env.get(k)!)})`,
  );
  return (
    `Derive([${outputs.join(',')}],[${inputDrvs.join(',')}],[${inputSrcs.join(',')}],` +
    `${plain(drv.platform, 'system')},${escaped(drv.builder)},[${drv.args.map(escaped).join(',')}],[${env.join(',')}])`
  );
}

/** The .drv file's bytes. */
export function printDerivation(drv: Derivation, options: PrintDerivationOptions = {}): Buffer {
  return encodeByteString(printDerivationText(drv, options), 'derivation');
}
