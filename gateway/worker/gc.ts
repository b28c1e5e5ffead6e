/**
 * CollectGarbage (reference §5.1 op 20) over the store. Roots are the temp roots of every
 * live session — of every replica and build, when they share a Redis (configured roots
 * join them later); live = their closure. One collector runs at a time (the store's GC
 * lock, cluster-wide with Redis). A session may root a path while we collect: the
 * store's `deletePath` checks again under the path's lock, and a path it refuses then is
 * skipped, as Nix's collector skips paths that became roots while it ran.
 * Progress goes to the client as STDERR_NEXT lines, worded as Nix's daemon words them.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GcAction } from '../../nix/protocol/worker.js';
import { isStoreError, StoreErrorCode } from '../../store/errors.js';
import { GatewayError, GatewayErrorCode } from '../errors.js';
import { NixMessages } from '../nix-messages.js';
import type { OpEnv } from './ops.js';

export interface GcResult {
  paths: string[];
  bytesFreed: bigint;
  obsolete: bigint;
}

async function livePaths(env: OpEnv): Promise<Set<string>> {
  await env.log.line('finding garbage collector roots...');
  // Roots may name paths not (yet) valid: uploads in progress, AddTempRoot of anything.
  const roots = [...(await env.store.tempRoots.all())];
  return env.store.queryClosure([...(await env.store.queryValid(roots))]);
}

/** Dead paths ordered so that every path comes before the paths it refers to. */
async function deletionOrder(env: OpEnv, dead: ReadonlySet<string>): Promise<string[]> {
  const order: string[] = [];
  const done = new Set<string>();
  const infos = await env.store.queryPathInfos([...dead]);
  const referrers = new Map<string, string[]>();
  for (const [path, info] of infos) {
    for (const ref of info.references) {
      if (ref !== path && dead.has(ref)) referrers.set(ref, [...(referrers.get(ref) ?? []), path]);
    }
  }
  const visit = (p: string): void => {
    if (done.has(p)) return;
    done.add(p);
    for (const r of referrers.get(p) ?? []) visit(r);
    order.push(p);
  };
  [...dead].sort().forEach(visit);
  return order;
}

/**
 * Deletes `order`; `skipInUse`: a path that became alive meanwhile (rooted, or referred
 * to by a path registered since) is left, not an error.
 */
async function deleteAll(
  env: OpEnv,
  order: readonly string[],
  maxFreed: bigint,
  skipInUse: boolean,
  signal: AbortSignal,
): Promise<GcResult> {
  const paths: string[] = [];
  let bytesFreed = 0n;
  for (const path of order) {
    // The GC lock's lease was lost (Redis gone): another collector may start; stop.
    signal.throwIfAborted();
    if (bytesFreed >= maxFreed) {
      await env.log.line(`deleted more than ${maxFreed} bytes; stopping`);
      break;
    }
    if (!(await env.store.isValid(path))) continue;
    await env.log.line(`deleting '${path}'`);
    const bytes = await diskBytes(env.store.layout.contentPath(path));
    try {
      await env.store.deletePath(path);
    } catch (err) {
      if (!(skipInUse && isStoreError(err, StoreErrorCode.PATH_IN_USE))) throw err;
      continue;
    }
    paths.push(path);
    bytesFreed += bytes;
  }
  // Nix then removes unused hard links and reports what linking saves; we keep none.
  await env.log.line('deleting unused links...');
  await env.log.line(NixMessages.hardLinkSavings(0));
  return { paths, bytesFreed, obsolete: 0n };
}

/** Bytes a deletion frees, counted as Nix does: sizes of files and symlinks not hard-linked elsewhere. */
async function diskBytes(root: string): Promise<bigint> {
  const st = await lstat(root).catch(() => undefined);
  if (st === undefined) return 0n;
  if (!st.isDirectory()) return st.nlink === 1 ? BigInt(st.size) : 0n;
  let total = 0n;
  for (const entry of await readdir(root)) total += await diskBytes(join(root, entry));
  return total;
}

/**
 * The first of `paths` that must stay: a live path, or one that a valid path outside the
 * deletion set (or itself staying) refers to. Nix refuses such a request before deleting
 * anything.
 */
async function firstAlive(
  env: OpEnv,
  paths: readonly string[],
  live: ReadonlySet<string>,
): Promise<string | undefined> {
  const deleting = new Set(paths);
  const alive = new Set<string>();
  for (let changed = true; changed;) {
    changed = false;
    for (const p of deleting) {
      if (alive.has(p)) continue;
      const referrers = (await env.store.queryReferrers(p)).filter((r) => r !== p);
      if (live.has(p) || referrers.some((r) => !deleting.has(r) || alive.has(r))) {
        alive.add(p);
        changed = true;
      }
    }
  }
  return paths.find((p) => alive.has(p));
}

export function collectGarbage(
  env: OpEnv,
  action: number,
  pathsToDelete: readonly string[],
  maxFreed: bigint,
): Promise<GcResult> {
  return env.store.withGcLock((signal) => collect(env, action, pathsToDelete, maxFreed, signal));
}

async function collect(
  env: OpEnv,
  action: number,
  pathsToDelete: readonly string[],
  maxFreed: bigint,
  signal: AbortSignal,
): Promise<GcResult> {
  const live = await livePaths(env);
  switch (action) {
    case GcAction.ReturnLive:
      return { paths: [...live].sort(), bytesFreed: 0n, obsolete: 0n };
    case GcAction.ReturnDead: {
      await env.log.line('determining live/dead paths...');
      const all = await env.store.queryAll();
      return { paths: all.filter((p) => !live.has(p)).sort(), bytesFreed: 0n, obsolete: 0n };
    }
    case GcAction.DeleteDead: {
      await env.log.line('deleting garbage...');
      const dead = new Set((await env.store.queryAll()).filter((p) => !live.has(p)));
      return deleteAll(env, await deletionOrder(env, dead), maxFreed, true, signal);
    }
    case GcAction.DeleteSpecific: {
      const alive = await firstAlive(env, pathsToDelete, live);
      if (alive !== undefined) {
        throw new GatewayError(GatewayErrorCode.PERMISSION_DENIED, NixMessages.stillAlive(alive), {
          path: alive,
        });
      }
      return deleteAll(env, await deletionOrder(env, new Set(pathsToDelete)), maxFreed, false, signal);
    }
    default:
      throw new GatewayError(
        GatewayErrorCode.UNSUPPORTED_OPERATION,
        `unknown garbage collector action ${String(action)}`,
      );
  }
}
