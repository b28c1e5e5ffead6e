/**
 * Registering the outputs of a local build: each output, a canonical tree somewhere on
 * the data volume (the build's stage directory), is moved into its own staging
 * directory and committed with `commitStaged` (import.ts), as uploads are — same lock,
 * same order (content rename, then the record), same crash behaviour.
 *
 * The outputs of one derivation are committed in an order where every output comes
 * after the outputs it refers to (the caller sorts them), after checking that every
 * other reference is valid, so that a failure part-way is unlikely; if it happens, the
 * outputs committed so far stay valid (each is complete and correct on its own), which
 * differs from Nix's single SQLite transaction only in that window.
 *
 * A builder holds the locks of its outputs from before it checks whether they are valid
 * until they are registered (`CommitOptions.locked`), as Nix holds its output path locks.
 */
import { join } from 'node:path';
import type { Hash } from '../nix/hash.js';
import { parseStorePath } from '../nix/store-path.js';
import { StoreError, StoreErrorCode } from './errors.js';
import { removeTree, renameAway } from './fs-util.js';
import { commitStaged, type CommitOptions, type StoreContext } from './import.js';
import { sortPaths, type PathInfo } from './path-info.js';

export interface BuiltPath {
  /** Logical store path. */
  readonly path: string;
  /** Physical location of the canonical content, on the data volume. */
  readonly physical: string;
  readonly narHash: Hash;
  readonly narSize: number;
  readonly references: readonly string[];
  /** The .drv that produced it. */
  readonly deriver: string;
  /** Printed content address for fixed outputs. */
  readonly ca?: string | undefined;
}

/**
 * Moves `outputs` (in dependency order) into the store and registers them with
 * `ultimate = true`, no signatures. Paths already valid are left as they are (their
 * content here is discarded). Returns the infos in the order given.
 */
export async function registerBuiltPaths(
  ctx: StoreContext,
  outputs: readonly BuiltPath[],
  options: CommitOptions = {},
): Promise<PathInfo[]> {
  const ours = new Set(outputs.map((o) => o.path));
  const others = [...new Set(outputs.flatMap((o) => o.references))].filter((r) => !ours.has(r));
  const valid = await ctx.index.has(others);
  const missing = others.find((r) => !valid.has(r));
  if (missing !== undefined) {
    throw new StoreError(
      StoreErrorCode.REFERENCE_INVALID,
      `cannot register built path because it references path '${missing}', which is not valid`,
      { reference: missing },
    );
  }
  const infos: PathInfo[] = [];
  for (const o of outputs) {
    const dir = await ctx.layout.newStagingDir();
    let root: string;
    try {
      root = join(dir, parseStorePath(o.path, ctx.layout.storeDir).name);
      await renameAway(o.physical, root);
    } catch (err) {
      await removeTree(dir);
      throw err;
    }
    const info: PathInfo = {
      path: o.path,
      deriver: o.deriver,
      narHash: o.narHash,
      narSize: o.narSize,
      references: sortPaths(o.references),
      sigs: [],
      ca: o.ca,
      registrationTime: 0,
      ultimate: true,
    };
    infos.push(await commitStaged(ctx, { info, dir, root }, options));
  }
  return infos;
}
