/**
 * Derivation-aware queries on the store: the outputs of a stored .drv, what a set of
 * derived paths is missing (QueryMissing), and realising paths that need no build.
 */
import { readFile } from 'node:fs/promises';
import { parseDerivation } from '../../nix/derivation/aterm.js';
import type { Derivation } from '../../nix/derivation/types.js';
import { DerivationHasher, drvOutputId } from '../../nix/derivation/hash-modulo.js';
import { parseStorePath } from '../../nix/store-path.js';
import { ErrorCode, NixFormatError } from '../../nix/errors.js';
import type { LocalStore } from '../../store/local-store.js';
import { GatewayError, GatewayErrorCode } from '../errors.js';
import { NixMessages } from '../nix-messages.js';
import { parseDerivedPath } from '../derived-path.js';

/** Reads and parses a valid .drv from the store. */
export async function readStoreDerivation(store: LocalStore, drvPath: string): Promise<Derivation> {
  if (!(await store.isValid(drvPath))) {
    throw new NixFormatError(ErrorCode.DRV_INPUT_MISSING, NixMessages.notValid(drvPath), { path: drvPath });
  }
  const name = parseStorePath(drvPath, store.storeDir).name.replace(/\.drv$/, '');
  return parseDerivation(await readFile(store.layout.contentPath(drvPath)), {
    name,
    storeDir: store.storeDir,
  });
}

/**
 * The derivation of `drvPath`: from the store, or from `file` when it was sent whole
 * (BuildDerivation) or is a check's (its .drv need not be in the store).
 */
export async function readDerivationOf(
  store: LocalStore,
  drvPath: string,
  file?: string,
): Promise<Derivation> {
  if (file === undefined) return readStoreDerivation(store, drvPath);
  const name = parseStorePath(drvPath, store.storeDir).name.replace(/\.drv$/, '');
  return parseDerivation(await readFile(file), { name, storeDir: store.storeDir });
}

/** Output name → path (`""` when not known in advance, e.g. floating content-addressed). */
export async function derivationOutputMap(store: LocalStore, drvPath: string): Promise<Map<string, string>> {
  const drv = await readStoreDerivation(store, drvPath);
  const out = new Map<string, string>();
  for (const [name, o] of [...drv.outputs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    out.set(name, o.kind === 'inputAddressed' || o.kind === 'fixed' ? o.path : '');
  }
  return out;
}

function wanted(drv: Derivation, outputs: 'all' | readonly string[]): string[] {
  return outputs === 'all' ? [...drv.outputs.keys()] : [...outputs];
}

export interface MissingReport {
  willBuild: string[];
  willSubstitute: string[];
  unknown: string[];
  downloadSize: bigint;
  narSize: bigint;
}

/**
 * Nix's queryMissing without substituters: a derivation whose wanted outputs are not
 * all valid will be built, and so (recursively) will its missing inputs; a path that is
 * neither valid nor buildable here (an invalid source, a .drv we do not have) is unknown.
 */
export async function queryMissing(store: LocalStore, targets: readonly string[]): Promise<MissingReport> {
  const willBuild = new Set<string>();
  const unknown = new Set<string>();
  const seen = new Set<string>();

  async function visitDrv(drvPath: string, outputs: 'all' | readonly string[]): Promise<void> {
    const key = `${drvPath}!${outputs === 'all' ? '*' : [...outputs].sort().join(',')}`;
    if (seen.has(key)) return;
    seen.add(key);
    if (!(await store.isValid(drvPath))) {
      unknown.add(drvPath);
      return;
    }
    const drv = await readStoreDerivation(store, drvPath);
    const outPaths = wanted(drv, outputs).map((o) => {
      const out = drv.outputs.get(o);
      return out && (out.kind === 'inputAddressed' || out.kind === 'fixed') ? out.path : '';
    });
    const valid = await store.queryValid(outPaths.filter((p) => p !== ''));
    if (outPaths.every((p) => p !== '' && valid.has(p))) return;
    willBuild.add(drvPath);
    for (const [input, outs] of drv.inputDrvs) await visitDrv(input, outs);
    const validSrcs = await store.queryValid(drv.inputSrcs);
    for (const src of drv.inputSrcs) if (!validSrcs.has(src)) unknown.add(src);
  }

  for (const text of targets) {
    const target = parseDerivedPath(text);
    if (target.kind === 'opaque') {
      if (!(await store.isValid(target.path))) unknown.add(target.path);
    } else {
      await visitDrv(target.drvPath, target.outputs);
    }
  }
  return {
    willBuild: [...willBuild].sort(),
    willSubstitute: [],
    unknown: [...unknown].sort(),
    downloadSize: 0n,
    narSize: 0n,
  };
}

/**
 * Realises a derived path whose outputs are all valid already (BuildPaths /
 * BuildPathsWithResults on such paths: `nix copy --from` does this). Returns the
 * builtOutputs map Nix reports (DrvOutput id → realisation JSON); fails for anything
 * that would need a build, which this gateway cannot do yet.
 */
export async function realiseWithoutBuilding(store: LocalStore, text: string): Promise<Map<string, string>> {
  const target = parseDerivedPath(text);
  if (target.kind === 'opaque') {
    if (!(await store.isValid(target.path))) {
      throw new GatewayError(GatewayErrorCode.UNSUPPORTED_OPERATION, NixMessages.noSubstituter(target.path), {
        path: target.path,
      });
    }
    return new Map();
  }
  const drv = await readStoreDerivation(store, target.drvPath);
  const hasher = new DerivationHasher((p) => readStoreDerivation(store, p), store.storeDir);
  const hashes = (await hasher.hashModulo(drv, true)).hashes;
  const built = new Map<string, string>();
  for (const name of wanted(drv, target.outputs).sort()) {
    const out = drv.outputs.get(name);
    const path = out && (out.kind === 'inputAddressed' || out.kind === 'fixed') ? out.path : '';
    const hash = hashes.get(name);
    if (path === '' || hash === undefined || !(await store.isValid(path))) {
      throw new GatewayError(
        GatewayErrorCode.UNSUPPORTED_OPERATION,
        NixMessages.buildsNotYet(target.drvPath),
        {
          path: target.drvPath,
        },
      );
    }
    const id = drvOutputId(hash, name);
    const baseName = path.slice(store.storeDir.length + 1);
    built.set(id, JSON.stringify({ dependentRealisations: {}, id, outPath: baseName, signatures: [] }));
  }
  return built;
}

/**
 * The closure of `paths` where every .drv also brings in its valid outputs and their
 * closures (`nix-store -qR --include-outputs`, serve QueryClosure with includeOutputs).
 */
export async function closureWithOutputs(store: LocalStore, paths: readonly string[]): Promise<Set<string>> {
  const closure = await store.queryClosure(paths);
  const expanded = new Set<string>();
  for (;;) {
    const outputs: string[] = [];
    for (const p of closure) {
      if (!p.endsWith('.drv') || expanded.has(p)) continue;
      expanded.add(p);
      const outs = [...(await derivationOutputMap(store, p)).values()].filter((o) => o !== '');
      const valid = await store.queryValid(outs);
      outputs.push(...outs.filter((o) => valid.has(o) && !closure.has(o)));
    }
    if (outputs.length === 0) return closure;
    for (const p of await store.queryClosure(outputs)) closure.add(p);
  }
}
