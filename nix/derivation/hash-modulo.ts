/**
 * hashDerivationModulo (Nix 2.8 `derivations.cc`; protocol/README.md §12): the hash that
 * input-addressed output paths are made from, "modulo" fixed-output inputs so that
 * changing how a source is fetched does not change everything downstream.
 *
 * No I/O here: input derivations are loaded through a `DerivationResolver`.
 */
import { ErrorCode, NixFormatError } from '../errors.js';
import { hashOf, type Hash } from '../hash.js';
import { STORE_DIR } from '../store-path.js';
import { printDerivation } from './aterm.js';
import { fixedOutputPath } from './paths.js';
import { derivationType, printMethodAlgo, type Derivation } from './types.js';

/** Loads the derivation stored at a .drv path (throw DRV_INPUT_MISSING if unknown). */
export type DerivationResolver = (drvPath: string) => Promise<Derivation>;

/** `DrvHash`: one hash per output; `deferred` when output paths cannot be known yet (CA). */
export interface DrvHash {
  readonly hashes: ReadonlyMap<string, Hash>;
  readonly kind: 'regular' | 'deferred';
}

/** `sha256("impure")`, Nix's stand-in for impure derivations' outputs. */
const IMPURE_OUTPUT_HASH = hashOf('sha256', 'impure');

/**
 * Computes hashDerivationModulo, memoising the unmasked hash of every input .drv path it
 * resolves (`pathDerivationModulo`). One instance per store/resolver; safe to share
 * between concurrent calls.
 */
export class DerivationHasher {
  private readonly memo = new Map<string, Promise<DrvHash>>();

  constructor(
    private readonly resolve: DerivationResolver,
    private readonly storeDir: string = STORE_DIR,
  ) {}

  /** hashDerivationModulo(drv, mask). */
  async hashModulo(drv: Derivation, mask: boolean): Promise<DrvHash> {
    return this.compute(drv, mask, []);
  }

  /** The unmasked hash of the derivation stored at `drvPath` (memoised). */
  async pathHashModulo(drvPath: string): Promise<DrvHash> {
    return this.pathHash(drvPath, []);
  }

  private pathHash(drvPath: string, stack: readonly string[]): Promise<DrvHash> {
    if (stack.includes(drvPath)) {
      return Promise.reject(
        new NixFormatError(ErrorCode.DRV_INVALID, `derivation '${drvPath}' depends on itself`, {
          path: drvPath,
          cycle: [...stack, drvPath].join(' -> '),
        }),
      );
    }
    let result = this.memo.get(drvPath);
    if (!result) {
      result = this.resolve(drvPath).then((d) => this.compute(d, false, [...stack, drvPath]));
      this.memo.set(drvPath, result);
      // A failed load may succeed later (e.g. after the input was uploaded).
      result.catch(() => this.memo.delete(drvPath));
    }
    return result;
  }

  private async compute(drv: Derivation, mask: boolean, stack: readonly string[]): Promise<DrvHash> {
    const type = derivationType(drv);
    if (type.kind === 'fixed') {
      const hashes = new Map<string, Hash>();
      for (const [name, out] of drv.outputs) {
        if (out.kind !== 'fixed') continue;
        const path = fixedOutputPath(drv.name, name, out, this.storeDir);
        const algo = printMethodAlgo(out.method, out.hash.algo);
        hashes.set(name, hashOf('sha256', `fixed:out:${algo}:${out.hash.toBase16()}:${path}`));
      }
      return { hashes, kind: 'regular' };
    }
    if (type.kind === 'impure') {
      return {
        hashes: new Map([...drv.outputs.keys()].map((o) => [o, IMPURE_OUTPUT_HASH])),
        kind: 'deferred',
      };
    }
    let kind: DrvHash['kind'] =
      type.kind === 'floating' || (type.kind === 'inputAddressed' && type.deferred) ? 'deferred' : 'regular';
    const inputs = new Map<string, Set<string>>();
    const resolved = await Promise.all(
      [...drv.inputDrvs].map(async ([path, outs]) => [path, outs, await this.pathHash(path, stack)] as const),
    );
    for (const [path, outs, res] of resolved) {
      if (res.kind === 'deferred') kind = 'deferred';
      for (const o of outs) {
        const h = res.hashes.get(o);
        if (!h) {
          throw new NixFormatError(
            ErrorCode.DRV_INVALID,
            `derivation '${drv.name}' uses output '${o}' of '${path}', which has no such output`,
            { path, output: o },
          );
        }
        const hex = h.toBase16();
        const set = inputs.get(hex) ?? new Set<string>();
        set.add(o);
        inputs.set(hex, set);
      }
    }
    const hash = hashOf('sha256', printDerivation(drv, { maskOutputs: mask, inputDrvs: inputs }));
    return { hashes: new Map([...drv.outputs.keys()].map((o) => [o, hash])), kind };
  }
}

/** One-shot hashDerivationModulo (no memo shared between calls). */
export function hashDerivationModulo(
  drv: Derivation,
  mask: boolean,
  resolve: DerivationResolver,
  storeDir: string = STORE_DIR,
): Promise<DrvHash> {
  return new DerivationHasher(resolve, storeDir).hashModulo(drv, mask);
}

/** The DrvOutput id of BuildResult.builtOutputs / Realisation: `sha256:<hex>!<output>`. */
export function drvOutputId(hashModulo: Hash, outputName: string): string {
  return `${hashModulo.algo}:${hashModulo.toBase16()}!${outputName}`;
}

/** Output name → DrvOutput id of each output of `drv` (BuildResult.builtOutputs keys). */
export async function drvOutputIds(
  drv: Derivation,
  resolve: DerivationResolver,
  storeDir: string = STORE_DIR,
): Promise<Map<string, string>> {
  const { hashes } = await hashDerivationModulo(drv, true, resolve, storeDir);
  return new Map([...hashes].map(([name, h]) => [name, drvOutputId(h, name)]));
}
