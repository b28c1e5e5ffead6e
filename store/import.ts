/**
 * Imports: the commit half (move verified content into place, then register it) and
 * the three ways in — one NAR with a claim (AddToStoreNar), a batch of them
 * (AddMultipleToStore, ImportPaths), and data to be content-addressed (AddToStore,
 * AddTextToStore).
 *
 * First, the importing session makes the path and its references temp roots
 * (`ImportOptions`), so no garbage collector, on any replica, removes them meanwhile.
 * Order of a commit, under the per-path lock (a Redis lease when replicas share the
 * volume: then two replicas never commit one path at once, and the second finds it valid):
 *   1. a record already exists → another import won: discard our staging, return its info;
 *   2. every reference (except a self-reference) must be valid;
 *   3. stray content at the target (no record, so not valid) is moved aside;
 *   4. rename staging → store/, set the root's final mode and mtime, fsync store/;
 *   5. write the record atomically — from here on the path is valid;
 *   6. update the index.
 * A crash before 5 leaves content without a record: not valid, replaced by the next
 * import. A crash between 5 and 6 leaves the index behind, which `reindex` (and the
 * next import of that path) repairs.
 *
 * Stream contract: every import reads its source to the end, also when it fails; a
 * failing import first drains the source, then throws. Its StoreError carries
 * `consumed` (bytes read) and `drained` (false only if the source itself failed) in
 * its context. The caller gives a source that ends where the NAR/data ends (framed,
 * or bounded by narSize), so the connection stays in sync; a malformed NAR on an
 * unframed stream has no knowable end, and the session must be closed.
 */
import { lstat, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { finishRoot } from './canonicalise.js';
import { StoreError, StoreErrorCode } from './errors.js';
import { fsyncDir, isErrno, removeTree, renameAway } from './fs-util.js';
import type { StoreLayout } from './layout.js';
import type { PathLocks } from './coordination.js';
import type { TempRootRegistry } from './redis-registry.js';
import type { PathIndex } from './path-index.js';
import type { PathInfo } from './path-info.js';
import { readRecord, writeRecord } from './records.js';
import { SourceTap } from './source-tap.js';
import {
  claimToInfo,
  stageAddToStore,
  stageNar,
  type AddToStoreRequest,
  type NarClaim,
  type Staged,
} from './staging.js';

export interface StoreContext {
  readonly layout: StoreLayout;
  readonly index: PathIndex;
  readonly locks: PathLocks;
  readonly tempRoots: TempRootRegistry;
  /** Unix seconds, for registrationTime. */
  readonly now: () => number;
}

/** Who imports: the session whose temp roots protect the path and its references. */
export interface ImportOptions {
  /**
   * The importing session. Before a path's references are checked, the path and its
   * references become temp roots of this session (as Nix's daemon does), so a GC
   * anywhere keeps them, and `deletePath` notices if it raced with the check.
   */
  readonly sessionId?: string | undefined;
}

/** Makes `info.path` and its references temp roots of the importing session. */
async function rootPaths(ctx: StoreContext, options: ImportOptions, info: PathInfo): Promise<void> {
  if (options.sessionId === undefined) return;
  await ctx.tempRoots.add(options.sessionId, [info.path, ...info.references]);
}

/** One item of a batch: the claim, then its NAR (read before the next item is asked for). */
export interface BatchItem {
  readonly claim: NarClaim;
  readonly nar: AsyncIterable<Uint8Array>;
}

/** Drains `tap`, then returns `err` with `consumed`/`drained` added if it is a StoreError. */
async function afterDrain(err: unknown, tap: SourceTap): Promise<unknown> {
  let drained = true;
  try {
    await tap.drain();
  } catch {
    drained = false;
  }
  if (!(err instanceof StoreError)) return err;
  const out = new StoreError(
    err.code,
    err.message,
    { ...err.context, consumed: tap.consumed, drained },
    {
      cause: err.cause,
    },
  );
  out.stack = err.stack;
  return out;
}

/** References of `info` (other than itself) that are not valid. */
async function missingReferences(ctx: StoreContext, info: PathInfo): Promise<string[]> {
  const others = info.references.filter((r) => r !== info.path);
  if (others.length === 0) return [];
  const valid = await ctx.index.has(others);
  return others.filter((r) => !valid.has(r));
}

function referenceError(path: string, missing: string): StoreError {
  return new StoreError(
    StoreErrorCode.REFERENCE_INVALID,
    `cannot add path '${path}' because it references path '${missing}', which is not valid`,
    { path, reference: missing },
  );
}

export interface CommitOptions {
  /**
   * The caller holds the lock on the path already (a build holds its outputs' locks
   * from before it checks them until they are registered); `signal` is that hold's.
   */
  readonly locked?: { readonly signal: AbortSignal };
}

/** Moves verified staged content into the store and registers it (see the header). */
export async function commitStaged(
  ctx: StoreContext,
  staged: Staged,
  options: CommitOptions = {},
): Promise<PathInfo> {
  const path = staged.info.path;
  try {
    if (options.locked) return await commitLocked(ctx, staged, options.locked.signal);
    return await ctx.locks.with(path, (signal) => commitLocked(ctx, staged, signal));
  } finally {
    await removeTree(staged.dir);
  }
}

/** The commit proper, under the path's lock; stops before each change if the lock was lost. */
async function commitLocked(ctx: StoreContext, staged: Staged, signal: AbortSignal): Promise<PathInfo> {
  const { layout, index } = ctx;
  const path = staged.info.path;
  const existing = await readRecord(layout, path);
  if (existing) {
    if (!(await index.get(path))) await index.put(existing);
    return existing;
  }
  const missing = await missingReferences(ctx, staged.info);
  if (missing.length > 0) throw referenceError(path, missing[0]!);
  const target = layout.contentPath(path);
  signal.throwIfAborted();
  await moveAsideIfPresent(target, join(staged.dir, 'stale'));
  await rename(staged.root, target);
  await finishRoot(target);
  await fsyncDir(layout.contentDir);
  const info: PathInfo = { ...staged.info, registrationTime: ctx.now() };
  signal.throwIfAborted();
  await writeRecord(layout, info);
  await index.put(info);
  return info;
}

async function moveAsideIfPresent(target: string, aside: string): Promise<void> {
  try {
    await lstat(target);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw err;
  }
  await renameAway(target, aside);
}

/**
 * Imports one NAR as `claim.path` (AddToStoreNar). Already valid: the NAR is read and
 * discarded and the existing info returned. References must be valid already.
 */
export async function importNar(
  ctx: StoreContext,
  claim: NarClaim,
  nar: AsyncIterable<Uint8Array>,
  options: ImportOptions = {},
): Promise<PathInfo> {
  const tap = new SourceTap(nar);
  try {
    const info = claimToInfo(claim, ctx.layout.storeDir);
    await rootPaths(ctx, options, info);
    const existing = await ctx.index.get(info.path);
    if (existing) {
      await tap.drain();
      return existing;
    }
    const missing = await missingReferences(ctx, info);
    if (missing.length > 0) throw referenceError(info.path, missing[0]!);
    return await commitStaged(ctx, await stageNar(ctx.layout, info, tap));
  } catch (err) {
    throw await afterDrain(err, tap);
  }
}

/**
 * Imports a sequence of NARs (AddMultipleToStore). A path may reference paths that come
 * later in the same batch: it is verified and staged at once, and committed as soon as
 * all its references are valid, so nothing is ever registered before its references.
 * Returns the infos in the order of the items.
 *
 * The first failing item ends the batch: its NAR is drained, paths committed before it
 * stay valid, paths still waiting for references are discarded, and later items are
 * not read (the caller skips the rest of its frame). A reference that neither is valid
 * nor comes in the batch fails the batch at its end.
 */
export async function importBatch(
  ctx: StoreContext,
  items: AsyncIterable<BatchItem>,
  options: ImportOptions = {},
): Promise<PathInfo[]> {
  /** The path of each item, in order, and the info of each path once known. */
  const order: string[] = [];
  const infos = new Map<string, PathInfo>();
  const waiting = new Map<string, Staged>();
  const commitReady = async (): Promise<void> => {
    for (let progress = true; progress;) {
      progress = false;
      for (const [path, staged] of waiting) {
        if ((await missingReferences(ctx, staged.info)).length > 0) continue;
        waiting.delete(path);
        infos.set(path, await commitStaged(ctx, staged));
        progress = true;
      }
    }
  };
  try {
    for await (const { claim, nar } of items) {
      const tap = new SourceTap(nar);
      try {
        const info = claimToInfo(claim, ctx.layout.storeDir);
        order.push(info.path);
        if (infos.has(info.path) || waiting.has(info.path)) {
          await tap.drain(); // sent twice in one batch
          continue;
        }
        await rootPaths(ctx, options, info);
        const existing = await ctx.index.get(info.path);
        if (existing) {
          await tap.drain();
          infos.set(info.path, existing);
          continue;
        }
        waiting.set(info.path, await stageNar(ctx.layout, info, tap));
      } catch (err) {
        throw await afterDrain(err, tap);
      }
      await commitReady();
    }
    const [first] = waiting.values();
    if (first) {
      const missing = await missingReferences(ctx, first.info);
      throw referenceError(first.info.path, missing[0] ?? '?');
    }
  } finally {
    for (const staged of waiting.values()) await removeTree(staged.dir);
  }
  return order.map((path) => infos.get(path)!);
}

/**
 * AddToStore: stores `data` (a NAR for recursive methods, else raw contents; see
 * `AddToStoreRequest.dataIsNar`) under the content-addressed path it determines.
 * References must be valid. Already valid: returns the existing info.
 */
export async function addToStore(
  ctx: StoreContext,
  req: AddToStoreRequest,
  data: AsyncIterable<Uint8Array>,
  options: ImportOptions = {},
): Promise<PathInfo> {
  const tap = new SourceTap(data);
  try {
    const staged = await stageAddToStore(ctx.layout, req, tap);
    try {
      await rootPaths(ctx, options, staged.info);
    } catch (err) {
      await removeTree(staged.dir);
      throw err;
    }
    return await commitStaged(ctx, staged);
  } catch (err) {
    throw await afterDrain(err, tap);
  }
}
