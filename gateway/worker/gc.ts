/**
 * CollectGarbage (reference §5.1 op 20) over the store. Roots are the temp roots of every
 * session (configured roots and running builds join them later); live = their closure.
 * Progress goes to the client as STDERR_NEXT lines, worded as Nix's daemon words them.
 */
import { GcAction } from '../../nix/protocol/worker.js';
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
  return env.store.queryClosure([...env.store.tempRoots.all()]);
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

async function deleteAll(env: OpEnv, order: readonly string[], maxFreed: bigint): Promise<GcResult> {
  const paths: string[] = [];
  let bytesFreed = 0n;
  for (const path of order) {
    if (bytesFreed >= maxFreed) {
      await env.log.line(`deleted more than ${maxFreed} bytes; stopping`);
      break;
    }
    const info = await env.store.queryPathInfo(path);
    if (!info) continue;
    await env.log.line(`deleting '${path}'`);
    await env.store.deletePath(path);
    paths.push(path);
    bytesFreed += BigInt(info.narSize);
  }
  return { paths, bytesFreed, obsolete: 0n };
}

export async function collectGarbage(
  env: OpEnv,
  action: number,
  pathsToDelete: readonly string[],
  maxFreed: bigint,
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
      return deleteAll(env, await deletionOrder(env, dead), maxFreed);
    }
    case GcAction.DeleteSpecific: {
      for (const p of pathsToDelete) {
        if (live.has(p))
          throw new GatewayError(GatewayErrorCode.PERMISSION_DENIED, NixMessages.stillAlive(p), { path: p });
      }
      return deleteAll(env, await deletionOrder(env, new Set(pathsToDelete)), maxFreed);
    }
    default:
      throw new GatewayError(
        GatewayErrorCode.UNSUPPORTED_OPERATION,
        `unknown garbage collector action ${String(action)}`,
      );
  }
}
