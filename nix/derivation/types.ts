/**
 * The derivation model (Nix 2.8 `BasicDerivation` + `inputDrvs`). All strings are byte
 * strings in the form of `byte-string.ts`: text for text, lone surrogates U+DC80…U+DCFF
 * for bytes that are not UTF-8. Reference: protocol/README.md §12.
 */
import { ErrorCode, NixFormatError } from '../errors.js';
import type { Hash, HashAlgo } from '../hash.js';

/** How a content-addressed output is hashed: `sha256` flat, `r:sha256` NAR, `text:sha256`. */
export type OutputHashMethod = 'flat' | 'recursive' | 'text';

export type DerivationOutput =
  /** `(name, path, "", "")` */
  | { readonly kind: 'inputAddressed'; readonly path: string }
  /** `(name, path, "<r:|text:>algo", hex)`; `path` is kept as written (see `checkDerivation`). */
  | { readonly kind: 'fixed'; readonly method: OutputHashMethod; readonly hash: Hash; readonly path: string }
  /** `(name, "", "<r:|text:>algo", "")` (ca-derivations) */
  | { readonly kind: 'floating'; readonly method: OutputHashMethod; readonly algo: HashAlgo }
  /** `(name, "", "", "")` (input-addressed, depends on floating CA outputs) */
  | { readonly kind: 'deferred' }
  /** `(name, "", "<r:|text:>algo", "impure")` (impure-derivations) */
  | { readonly kind: 'impure'; readonly method: OutputHashMethod; readonly algo: HashAlgo };

export interface Derivation {
  /**
   * The derivation name (`<name>.drv`, `<name>-<output>`). Not in the ATerm: Nix takes it
   * from the .drv path; `parseDerivation` takes it from its options or `env.name`.
   */
  readonly name: string;
  /** Output name → output. Printed in byte order whatever the Map order. */
  readonly outputs: ReadonlyMap<string, DerivationOutput>;
  /** Input .drv path → names of the outputs used (printed sorted). */
  readonly inputDrvs: ReadonlyMap<string, readonly string[]>;
  readonly inputSrcs: readonly string[];
  /** `system` */
  readonly platform: string;
  readonly builder: string;
  readonly args: readonly string[];
  readonly env: ReadonlyMap<string, string>;
}

/** `r:` / `text:` / `` prefix + algo, as in the ATerm `hashAlgo` field. */
export function printMethodAlgo(method: OutputHashMethod, algo: HashAlgo): string {
  return `${method === 'recursive' ? 'r:' : method === 'text' ? 'text:' : ''}${algo}`;
}

/** `DerivationType` of Nix 2.8 (`BasicDerivation::type`). */
export type DerivationType =
  | { readonly kind: 'inputAddressed'; readonly deferred: boolean }
  | { readonly kind: 'fixed' }
  | { readonly kind: 'floating' }
  | { readonly kind: 'impure' };

/** Classifies a derivation by its outputs, rejecting the mixes Nix rejects. */
export function derivationType(drv: Derivation): DerivationType {
  const kinds = new Set([...drv.outputs.values()].map((o) => o.kind));
  const invalid = (why: string): NixFormatError =>
    new NixFormatError(ErrorCode.DRV_INVALID, `derivation '${drv.name}' ${why}`, { name: drv.name });
  if (kinds.size === 0) throw invalid('must have at least one output');
  if (kinds.size > 1) throw invalid(`can't mix derivation output types (${[...kinds].sort().join(', ')})`);
  const [kind] = kinds;
  switch (kind) {
    case 'inputAddressed':
      return { kind: 'inputAddressed', deferred: false };
    case 'deferred':
      return { kind: 'inputAddressed', deferred: true };
    case 'fixed':
      if (drv.outputs.size > 1) throw invalid('has more than one fixed output');
      if (!drv.outputs.has('out')) throw invalid('has a fixed output that is not named "out"');
      return { kind: 'fixed' };
    case 'floating': {
      const algos = new Set([...drv.outputs.values()].map((o) => (o.kind === 'floating' ? o.algo : '')));
      if (algos.size > 1) throw invalid('has floating outputs with different hash algorithms');
      return { kind: 'floating' };
    }
    default:
      return { kind: 'impure' };
  }
}
