/**
 * Store paths of a derivation: its own .drv path (a text path of its ATerm) and the paths
 * of its outputs (protocol/README.md §11, §12), and a check of both against a .drv file.
 */
import { ErrorCode, NixFormatError } from '../errors.js';
import { encodeNixBase32, hashOf } from '../hash.js';
import {
  makeFixedOutputPath,
  makeOutputPath,
  makeTextPath,
  outputPathName,
  STORE_DIR,
} from '../store-path.js';
import { printDerivation } from './aterm.js';
import type { DerivationHasher } from './hash-modulo.js';
import type { Derivation, DerivationOutput } from './types.js';

/** The path a fixed output must have (`DerivationOutputCAFixed::path`). */
export function fixedOutputPath(
  drvName: string,
  outputName: string,
  output: Extract<DerivationOutput, { kind: 'fixed' }>,
  storeDir: string = STORE_DIR,
): string {
  const name = outputPathName(drvName, outputName);
  if (output.method === 'text') return makeTextPath(name, output.hash, [], storeDir);
  return makeFixedOutputPath(name, { method: output.method, hash: output.hash }, storeDir);
}

/**
 * `hashPlaceholder(o)`: what the evaluator puts in env for a floating CA output `o`
 * (replaced by the real path at build time): `/` + nix32(sha256("nix-output:<o>")).
 */
export function hashPlaceholder(outputName: string): string {
  return `/${encodeNixBase32(hashOf('sha256', `nix-output:${outputName}`).bytes)}`;
}

/**
 * The .drv's own store path: text path named `<name>.drv` of the ATerm bytes, with
 * references inputSrcs ∪ inputDrv paths. Pass `bytes` when you have the file, so that the
 * path is that of the file even if it were not canonical.
 */
export function derivationStorePath(
  drv: Derivation,
  bytes?: Uint8Array,
  storeDir: string = STORE_DIR,
): string {
  const content = bytes ?? printDerivation(drv);
  return makeTextPath(
    `${drv.name}.drv`,
    hashOf('sha256', content),
    [...drv.inputSrcs, ...drv.inputDrvs.keys()],
    storeDir,
  );
}

/**
 * Output name → the path the output must have, or `undefined` when it cannot be known
 * before building (floating CA, deferred, impure).
 */
export async function derivationOutputPaths(
  drv: Derivation,
  hasher: DerivationHasher,
  storeDir: string = STORE_DIR,
): Promise<Map<string, string | undefined>> {
  const result = new Map<string, string | undefined>();
  const needsHash = [...drv.outputs.values()].some((o) => o.kind === 'inputAddressed');
  const masked = needsHash ? await hasher.hashModulo(drv, true) : undefined;
  for (const [name, out] of drv.outputs) {
    if (out.kind === 'fixed') {
      result.set(name, fixedOutputPath(drv.name, name, out, storeDir));
    } else if (out.kind === 'inputAddressed' && masked?.kind === 'regular') {
      const h = masked.hashes.get(name);
      result.set(name, h && makeOutputPath(name, h, drv.name, storeDir));
    } else if (out.kind === 'inputAddressed') {
      throw new NixFormatError(
        ErrorCode.DRV_INVALID,
        `derivation '${drv.name}' has an input-addressed output '${name}' but depends on content-addressed outputs`,
        { output: name },
      );
    } else {
      result.set(name, undefined);
    }
  }
  return result;
}

export interface PathCheck {
  /** `drv` for the .drv path itself, `out:<output>` for an output, `env:<output>` for its env entry */
  readonly what: string;
  readonly actual: string | undefined;
  readonly expected: string | undefined;
  readonly ok: boolean;
}

/**
 * Recomputes the .drv path (when `drvPath` is given: its base name must match; pass the
 * path the file has in a store) and every output path, and compares them with the file.
 * Does not throw on a mismatch: see `ok` of each entry.
 */
export async function checkDerivation(
  drv: Derivation,
  hasher: DerivationHasher,
  options: { readonly bytes?: Uint8Array; readonly drvPath?: string; readonly storeDir?: string } = {},
): Promise<PathCheck[]> {
  const storeDir = options.storeDir ?? STORE_DIR;
  const checks: PathCheck[] = [];
  const expectedDrv = derivationStorePath(drv, options.bytes, storeDir);
  checks.push({
    what: 'drv',
    actual: options.drvPath,
    expected: expectedDrv,
    ok: options.drvPath === undefined || options.drvPath === expectedDrv,
  });
  const expected = await derivationOutputPaths(drv, hasher, storeDir);
  for (const [name, out] of drv.outputs) {
    const actual = out.kind === 'inputAddressed' || out.kind === 'fixed' ? out.path : undefined;
    const want = expected.get(name);
    checks.push({ what: `out:${name}`, actual, expected: want, ok: actual === want });
    // The evaluator puts each output path in env under the output's name.
    const envValue = drv.env.get(name);
    if (want !== undefined && envValue !== undefined) {
      checks.push({ what: `env:${name}`, actual: envValue, expected: want, ok: envValue === want });
    }
  }
  return checks;
}
