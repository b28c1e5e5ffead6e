/**
 * Check mode (`nix-store --realise --check`, `nix build --rebuild`; BuildMode 2): build a
 * derivation whose outputs are valid once more and compare, without touching them. The
 * builder runner returns AlreadyValid for valid outputs and registers what it builds, so
 * the rebuild runs against a scratch data directory (in the store's staging, so hard
 * links work) holding only the input closure: its files hard-linked, its records copied.
 * The derivation is given as a file with its inputs as sources (like the build hook's
 * BasicDerivation), so the scratch store needs no .drv files. Nix 2.8 compares NAR
 * hashes (`LocalDerivationGoal::registerOutputs` under bmCheck), and so do we.
 */
import { execFile } from 'node:child_process';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { printDerivation } from '../../nix/derivation/aterm.js';
import type { Derivation } from '../../nix/derivation/types.js';
import { BuildStatus } from '../../nix/protocol/worker.js';
import { removeTree } from '../../store/fs-util.js';
import { StoreLayout } from '../../store/layout.js';
import { LocalStore } from '../../store/local-store.js';
import { magenta } from '../nix-messages.js';
import { readDerivationOf, readStoreDerivation } from '../worker/derivations.js';
import { knownOutputPaths } from './realise.js';
import type { BuildOutcome } from './types.js';

const run = promisify(execFile);

/** A scratch data dir for re-building `drvPath`, and how to build and judge it there. */
export interface CheckSandbox {
  readonly dataDir: string;
  readonly derivationFile: string;
  /** Compares what the runner built in the scratch store with the valid outputs. */
  judge(outcome: BuildOutcome): Promise<BuildOutcome>;
  dispose(): Promise<void>;
}

/** `derivation '…' may not be deterministic: output '…' differs` (Nix's NotDeterministic). */
export function notDeterministicMessage(drvPath: string, outPath: string): string {
  return `derivation '${magenta(drvPath)}' may not be deterministic: output '${magenta(outPath)}' differs`;
}

/** The derivation with its input derivations' outputs turned into sources, as the hook sends it. */
async function asBasic(store: LocalStore, drv: Derivation): Promise<{ drv: Derivation; roots: string[] }> {
  const roots = [...drv.inputSrcs];
  for (const [input, wanted] of drv.inputDrvs) {
    const outs = knownOutputPaths(await readStoreDerivation(store, input));
    for (const o of wanted) {
      const p = outs.get(o);
      if (p !== undefined) roots.push(p);
    }
  }
  const closure = [...(await store.queryClosure(roots))].sort();
  return { drv: { ...drv, inputDrvs: new Map(), inputSrcs: closure }, roots: closure };
}

export async function prepareCheck(
  store: LocalStore,
  drvPath: string,
  derivationFile: string | undefined,
): Promise<CheckSandbox> {
  const drv = await readDerivationOf(store, drvPath, derivationFile);
  const basic = await asBasic(store, drv);
  const dir = await store.layout.newStagingDir();
  const dataDir = join(dir, 'data');
  const scratch = new StoreLayout(dataDir, store.storeDir);
  await scratch.create();
  try {
    const contents = basic.roots.map((p) => store.layout.contentPath(p));
    if (contents.length > 0) await run('cp', ['-a', '--link', ...contents, scratch.contentDir]);
    for (const p of basic.roots) await copyFile(store.layout.recordPath(p), scratch.recordPath(p));
    const file = join(dir, 'derivation.drv');
    await writeFile(file, printDerivation(basic.drv));
    return {
      dataDir,
      derivationFile: file,
      judge: (outcome) => judge(store, dataDir, drvPath, drv, outcome),
      dispose: () => removeTree(dir),
    };
  } catch (err) {
    await removeTree(dir);
    throw err;
  }
}

async function judge(
  store: LocalStore,
  dataDir: string,
  drvPath: string,
  drv: Derivation,
  outcome: BuildOutcome,
): Promise<BuildOutcome> {
  if (outcome.status !== BuildStatus.Built) return outcome;
  const rebuilt = await LocalStore.open({ dataDir, cleanStaging: false });
  const outputs = knownOutputPaths(drv);
  for (const [, path] of [...outputs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const [mine, theirs] = await Promise.all([store.requirePathInfo(path), rebuilt.requirePathInfo(path)]);
    if (mine.narHash.toBase16() !== theirs.narHash.toBase16()) {
      return {
        ...outcome,
        status: BuildStatus.NotDeterministic,
        errorMsg: notDeterministicMessage(drvPath, path),
        outputs: new Map(),
        drvOutputIds: undefined,
      };
    }
  }
  // The outputs are the valid ones; their DrvOutput ids come from the stored .drv.
  return { ...outcome, outputs, drvOutputIds: undefined };
}
