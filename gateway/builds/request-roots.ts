/**
 * What both protocols' build requests share: the temp roots a request gives its session
 * (Nix's goals addTempRoot the same), and the realisations of a derivation sent whole.
 */
import type { BasicDerivation } from '../../nix/protocol/types.js';
import type { LocalStore } from '../../store/local-store.js';
import { readStoreDerivation } from '../worker/derivations.js';
import { knownOutputPaths } from './realise.js';
import type { BuildOutcome } from './types.js';

/** Makes the requested .drvs, their known output paths and `opaque` temp roots of the session. */
export async function rootBuildTargets(
  store: LocalStore,
  sessionId: string,
  drvPaths: readonly string[],
  opaque: readonly string[] = [],
): Promise<void> {
  const roots = [...drvPaths, ...opaque];
  const validDrvs = await store.queryValid(drvPaths);
  for (const drvPath of validDrvs) {
    // A .drv that does not parse is the realisation's to report.
    const drv = await readStoreDerivation(store, drvPath).catch(() => undefined);
    if (drv) roots.push(...knownOutputPaths(drv).values());
  }
  await store.tempRoots.add(sessionId, roots);
}

/** A derivation sent whole (BuildDerivation): its inputs and named outputs, as temp roots. */
export async function rootBasicDerivation(
  store: LocalStore,
  sessionId: string,
  drv: BasicDerivation,
): Promise<void> {
  await store.tempRoots.add(sessionId, [
    ...drv.inputSrcs,
    ...drv.outputs.flatMap((o) => (o.path === '' ? [] : [o.path])),
  ]);
}

/** builtOutputs of a BasicDerivation's result: it has no .drv here to hash, the ids come from the builder. */
export function realisationsOfBasic(store: LocalStore, outcome: BuildOutcome): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, path] of outcome.outputs) {
    const id = outcome.drvOutputIds?.get(name) ?? name;
    const outPath = path.slice(store.storeDir.length + 1);
    out.set(id, JSON.stringify({ dependentRealisations: {}, id, outPath, signatures: [] }));
  }
  return out;
}
