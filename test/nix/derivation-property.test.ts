/**
 * Property tests with a time budget (printed seed: set DRV_FC_SEED to replay):
 * - arbitrary derivations (all escapable characters, unicode, raw bytes) print→parse→print;
 * - random bytes and mutated .drv files make the parser throw only NixFormatError, and
 *   whatever it accepts prints back byte for byte (it accepts only the canonical form).
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { isNixFormatError } from '../../nix/errors.js';
import { Hash, HASH_ALGOS, HASH_SIZE } from '../../nix/hash.js';
import {
  compareByteStrings,
  decodeByteString,
  parseDerivation,
  printDerivation,
  type Derivation,
  type DerivationOutput,
} from '../../nix/derivation/index.js';
import { loadCorpus } from '../support/drv-corpus.js';

const SEED = Number(process.env['DRV_FC_SEED'] ?? Date.now() % 2 ** 31);
const BUDGET_MS = Number(process.env['DRV_FC_BUDGET_MS'] ?? 4000);
const params = {
  seed: SEED,
  numRuns: 1_000_000,
  interruptAfterTimeLimit: BUDGET_MS,
  markInterruptAsFailure: false,
};

const BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';
const NAME_CHARS = 'abcXYZ019+-._?=';

const byteString = fc.oneof(
  fc.string({
    unit: fc.constantFrom(
      '"',
      '\\',
      '\n',
      '\r',
      '\t',
      '$',
      'a',
      ' ',
      'ü',
      '☃',
      '𝄞',
      '\udcff',
      '\udc80',
      '\x01',
    ),
  }),
  fc.string({ unit: 'grapheme' }),
  fc.uint8Array({ maxLength: 40 }).map((b) => decodeByteString(b)),
);
/** Fields Nix writes unescaped cannot hold `"` or `\`. */
const plainString = byteString.filter((s) => !s.includes('"') && !s.includes('\\'));
const storePath = fc
  .tuple(
    fc.string({ unit: fc.constantFrom(...BASE32), minLength: 32, maxLength: 32 }),
    fc.string({ unit: fc.constantFrom(...NAME_CHARS), minLength: 1, maxLength: 30 }),
  )
  .filter(([, n]) => n !== '.' && n !== '..' && !n.startsWith('.-') && !n.startsWith('..-'))
  .map(([h, n]) => `/nix/store/${h}-${n}`);
const method = fc.constantFrom('flat' as const, 'recursive' as const);
const algo = fc.constantFrom(...HASH_ALGOS);
const output: fc.Arbitrary<DerivationOutput> = fc.oneof(
  storePath.map((path) => ({ kind: 'inputAddressed' as const, path })),
  fc
    .tuple(method, algo, storePath, fc.uint8Array({ minLength: 64, maxLength: 64 }))
    .map(([m, a, path, b]) => ({
      kind: 'fixed' as const,
      method: m,
      path,
      hash: new Hash(a, b.subarray(0, HASH_SIZE[a])),
    })),
  fc.tuple(method, algo).map(([m, a]) => ({ kind: 'floating' as const, method: m, algo: a })),
  fc.constant({ kind: 'deferred' as const }),
  fc.tuple(method, algo).map(([m, a]) => ({ kind: 'impure' as const, method: m, algo: a })),
);
const derivation: fc.Arbitrary<Derivation> = fc.record({
  name: fc.constant('x'),
  outputs: fc.array(fc.tuple(plainString, output), { maxLength: 4 }).map((e) => new Map(e)),
  inputDrvs: fc
    .array(fc.tuple(storePath, fc.array(plainString, { maxLength: 3 })), { maxLength: 3 })
    .map((e) => new Map(e)),
  inputSrcs: fc.uniqueArray(storePath, { maxLength: 3 }),
  platform: plainString,
  builder: byteString,
  args: fc.array(byteString, { maxLength: 5 }),
  env: fc.array(fc.tuple(byteString, byteString), { maxLength: 8 }).map((e) => new Map(e)),
});

const byBytes = <T>(m: ReadonlyMap<string, T>): string[] => [...m.keys()].sort(compareByteStrings);

/** Parses; must either succeed and print back identically, or throw a NixFormatError. */
function parseIsCanonicalOrTypedError(bytes: Uint8Array): void {
  let drv: Derivation;
  try {
    drv = parseDerivation(bytes);
  } catch (err) {
    if (!isNixFormatError(err)) throw err;
    return;
  }
  expect(printDerivation(drv).equals(bytes)).toBe(true);
}

describe(`derivation properties (seed ${SEED}, ${BUDGET_MS} ms each)`, () => {
  test('print → parse → print round-trips arbitrary derivations', () => {
    fc.assert(
      fc.property(derivation, (d) => {
        const bytes = printDerivation(d);
        const back = parseDerivation(bytes, { name: 'x' });
        expect(printDerivation(back).equals(bytes)).toBe(true);
        expect(back.args).toEqual(d.args);
        expect(back.builder).toBe(d.builder);
        expect(back.platform).toBe(d.platform);
        expect([...back.env.keys()]).toEqual(byBytes(d.env));
        for (const [k, v] of d.env) expect(back.env.get(k)).toBe(v);
        expect([...back.outputs.keys()]).toEqual(byBytes(d.outputs));
        for (const [k, o] of d.outputs) expect(back.outputs.get(k)).toEqual(o);
        expect([...back.inputDrvs.keys()]).toEqual(byBytes(d.inputDrvs));
        expect(back.inputSrcs).toEqual([...d.inputSrcs].sort());
      }),
      params,
    );
  });

  test('random bytes: only NixFormatError, and only canonical input accepted', () => {
    const noise = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc
        .string({
          unit: fc.constantFrom('Derive(', '[', ']', '(', ')', ',', '"', '\\', 'out', '/nix/store/', 'a'),
        })
        .map((s) => Buffer.from(s)),
    );
    fc.assert(
      fc.property(noise, (b) => parseIsCanonicalOrTypedError(b)),
      params,
    );
  });

  test('mutated corpus and generated .drv files: only NixFormatError, canonical or rejected', async () => {
    const corpus = (await loadCorpus()).drvs.map((d) => d.bytes).filter((b) => b.length < 20_000);
    const seedDrv = fc.oneof(
      fc.constantFrom(...corpus),
      derivation.map((d) => printDerivation(d)),
    );
    const mutation = fc.tuple(
      seedDrv,
      fc.array(
        fc.tuple(
          fc.constantFrom('flip', 'insert', 'delete', 'truncate', 'duplicate'),
          fc.nat(),
          fc.nat(),
          fc.constantFrom(...Buffer.from('"\\(),[]nrt\n0a/:\xff')),
        ),
        { minLength: 1, maxLength: 4 },
      ),
    );
    fc.assert(
      fc.property(mutation, ([original, edits]) => {
        let b = Buffer.from(original);
        for (const [kind, x, y, byte] of edits) {
          const i = b.length === 0 ? 0 : x % b.length;
          const j = Math.min(b.length, i + (y % 16));
          if (kind === 'flip' && b.length > 0) b[i] = (b[i] ?? 0) ^ (1 << (y % 8));
          else if (kind === 'insert')
            b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
          else if (kind === 'delete') b = Buffer.concat([b.subarray(0, i), b.subarray(j)]);
          else if (kind === 'truncate') b = b.subarray(0, i);
          else b = Buffer.concat([b.subarray(0, j), b.subarray(i, j), b.subarray(j)]);
        }
        parseIsCanonicalOrTypedError(b);
      }),
      params,
    );
  });
});
