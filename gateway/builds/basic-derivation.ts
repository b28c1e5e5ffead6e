/**
 * BuildDerivation sends a BasicDerivation (reference §6.5): a derivation without
 * inputDrvs, every input given as a source. We render it as a .drv text so that the
 * builder runner, which reads derivations, can build it.
 */
import { printDerivation } from '../../nix/derivation/aterm.js';
import type { Derivation, DerivationOutput } from '../../nix/derivation/types.js';
import { ErrorCode, NixFormatError } from '../../nix/errors.js';
import { parseHash } from '../../nix/hash.js';
import type { BasicDerivation } from '../../nix/protocol/types.js';
import { parseStorePath } from '../../nix/store-path.js';

function output(o: BasicDerivation['outputs'][number]): DerivationOutput {
  if (o.hashAlgo === '') return { kind: 'inputAddressed', path: o.path };
  const method = o.hashAlgo.startsWith('r:') ? 'recursive' : o.hashAlgo.startsWith('text:') ? 'text' : 'flat';
  const algo = o.hashAlgo.replace(/^(r:|text:)/, '');
  if (o.hash === '' || o.path === '') {
    throw new NixFormatError(
      ErrorCode.DRV_INVALID,
      `output '${o.name}': only fixed and input-addressed outputs can be built here`,
    );
  }
  return {
    kind: 'fixed',
    method,
    hash: parseHash(o.hash, algo as Parameters<typeof parseHash>[1]),
    path: o.path,
  };
}

export function basicToDerivation(drvPath: string, basic: BasicDerivation): Derivation {
  return {
    name: parseStorePath(drvPath).name.replace(/\.drv$/, ''),
    outputs: new Map(basic.outputs.map((o) => [o.name, output(o)])),
    inputDrvs: new Map(),
    inputSrcs: [...basic.inputSrcs],
    platform: basic.platform,
    builder: basic.builder,
    args: [...basic.args],
    env: new Map(basic.env),
  };
}

export function basicDerivationText(drvPath: string, basic: BasicDerivation): Buffer {
  return printDerivation(basicToDerivation(drvPath, basic));
}
