/**
 * What each worker op does on Nixyard (reference §5.1). A handler gets the decoded
 * arguments, the session environment and the op's request payload, and returns the
 * reply (for NarFromPath, the NAR to stream after STDERR_LAST). Ops absent from the
 * table are answered with a clear "not supported" error by the session.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { parseHash } from '../../nix/hash.js';
import type { Ctx } from '../../nix/protocol/codec.js';
import { readNarFromWire } from '../../nix/protocol/nar-stream.js';
import { ValidPathInfo116 } from '../../nix/protocol/types.js';
import type { OpName } from '../../nix/protocol/worker.js';
import type { WorkerReply, WorkerRequestArgs } from '../../nix/protocol/worker-ops.js';
import { parseStorePathBase } from '../../nix/store-path.js';
import type { FramedSource } from '../../nix/wire/framed.js';
import { WireReader } from '../../nix/wire/reader.js';
import type { WireWriter } from '../../nix/wire/writer.js';
import type { LocalStore } from '../../store/local-store.js';
import type { PathInfo } from '../../store/path-info.js';
import { countValidSignatures, type PublicKey } from '../../store/signatures.js';
import type { NarClaim } from '../../store/staging.js';
import type { BatchItem } from '../../store/import.js';
import { GatewayError, GatewayErrorCode } from '../errors.js';
import { toClaim, toWireInfo } from '../path-infos.js';
import { NixMessages, VerifyPhases } from '../nix-messages.js';
import type { ClientIdentity } from '../ssh-server.js';
import type { ClientLog } from './client-log.js';
import { collectGarbage } from './gc.js';
import { buildDerivation, buildPaths, buildPathsWithResults } from './build-ops.js';
import type { BuildService } from '../builds/service.js';
import { queryMissing, derivationOutputMap } from './derivations.js';

export interface OpEnv {
  readonly store: LocalStore;
  readonly reader: WireReader;
  readonly writer: WireWriter;
  readonly log: ClientLog;
  readonly ctx: () => Ctx;
  readonly who: ClientIdentity;
  readonly sessionId: string;
  readonly maxNarSize: number;
  readonly trustedPublicKeys: readonly PublicKey[];
  /** SetOptions overrides (unix-socket clients only; ssh-ng never sends them). */
  readonly options: Map<string, string>;
  /** Where builds go; without one, build requests get "cannot build yet". */
  readonly builds?: BuildService | undefined;
  /** Aborted when the client's connection ends (cancels the builds only it wanted). */
  readonly closed: AbortSignal;
  readonly serverLog?: Logger;
}

/** The op's request payload, opened by the session, which also finishes it after the op. */
export type Payload =
  | { readonly kind: 'none' }
  | { readonly kind: 'framed'; readonly source: FramedSource }
  | { readonly kind: 'nar'; consumed?: boolean }
  | { readonly kind: 'stderr-read' };

type Handler<K extends OpName> = (
  args: WorkerRequestArgs<K>,
  env: OpEnv,
  payload: Payload,
) => Promise<K extends 'NarFromPath' ? AsyncIterable<Uint8Array> : WorkerReply<K>>;

type OpTable = { [K in OpName]?: Handler<K> };

/**
 * Nix's rule for uploads: a content-addressed path proves itself (the store checks the
 * address); any other needs a signature by a trusted key, unless a trusted client
 * (admin key) said `--no-check-sigs`.
 */
export function checkUploadSignature(claim: NarClaim, dontCheckSigs: boolean, env: OpEnv): void {
  if (dontCheckSigs && env.who.key.permissions.has('admin')) return;
  if (claim.ca !== undefined) return;
  const narHash = typeof claim.narHash === 'string' ? parseHash(claim.narHash, 'sha256') : claim.narHash;
  const signed = { ...claim, narHash, sigs: claim.sigs ?? [] };
  if (countValidSignatures(signed, env.trustedPublicKeys) > 0) return;
  throw new GatewayError(GatewayErrorCode.PERMISSION_DENIED, NixMessages.lacksSignature(claim.path), {
    path: claim.path,
  });
}

function checkNarSize(size: number, path: string, env: OpEnv): void {
  if (size > env.maxNarSize) {
    throw new GatewayError(
      GatewayErrorCode.UNSUPPORTED_OPERATION,
      `NAR of '${path}' is ${size} bytes, more than this gateway accepts (${env.maxNarSize})`,
      { path, size },
    );
  }
}

async function requireInfo(store: LocalStore, path: string): Promise<PathInfo> {
  const info = await store.queryPathInfo(path);
  if (!info)
    throw new GatewayError(GatewayErrorCode.UNSUPPORTED_OPERATION, NixMessages.notValid(path), { path });
  return info;
}

/** The NAR of an unframed payload; marks the payload consumed once the NAR has ended. */
async function* unframedNar(env: OpEnv, payload: Payload): AsyncGenerator<Uint8Array> {
  yield* readNarFromWire(env.reader);
  if (payload.kind === 'nar') payload.consumed = true;
}

/** AddToStoreNar at 1.21–1.22: the server pulls exactly `narSize` bytes with STDERR_READ. */
async function* pulledNar(env: OpEnv, narSize: number): AsyncGenerator<Uint8Array> {
  let remaining = narSize;
  while (remaining > 0) {
    const want = Math.min(remaining, 64 * 1024);
    await env.log.send({ type: 'read', maxLen: want });
    const chunk = await env.reader.readBytes(want, 'STDERR_READ reply');
    if (chunk.length === 0) {
      throw new GatewayError(GatewayErrorCode.UNSUPPORTED_OPERATION, 'client sent no data for STDERR_READ');
    }
    remaining -= chunk.length;
    yield chunk;
  }
}

function framedSource(payload: Payload): FramedSource {
  if (payload.kind !== 'framed') throw new Error(`expected a framed payload, got ${payload.kind}`);
  return payload.source;
}

/** AddMultipleToStore's framed payload: `u64 count`, then count × (ValidPathInfo@1.16, NAR). */
async function* multipleItems(
  source: FramedSource,
  env: OpEnv,
  dontCheckSigs: boolean,
): AsyncGenerator<BatchItem> {
  const inner = new WireReader(source, env.reader.limits);
  const count = await inner.readInt(env.reader.limits.maxListCount, 'path count');
  for (let i = 0; i < count; i++) {
    const info = await ValidPathInfo116.read(inner, env.ctx());
    const claim = toClaim(info);
    checkNarSize(info.narSize, info.path, env);
    checkUploadSignature(claim, dontCheckSigs, env);
    yield { claim, nar: readNarFromWire(inner, { expectedSize: info.narSize }) };
  }
}

export const WORKER_OPS: OpTable = {
  IsValidPath: async ({ path }, env) => env.store.isValid(path),

  QueryValidPaths: async ({ paths }, env) => {
    const valid = await env.store.queryValid(paths);
    return paths.filter((p) => valid.has(p));
  },

  QueryPathInfo: async ({ path }, env) => {
    const info = await env.store.queryPathInfo(path);
    if (!info) return null;
    const { path: _p, ...unkeyed } = toWireInfo(info);
    return unkeyed;
  },

  QueryAllValidPaths: async (_args, env) => env.store.queryAll(),
  QueryReferrers: async ({ path }, env) => env.store.queryReferrers(path),
  QueryValidDerivers: async ({ path }, env) => env.store.queryValidDerivers(path),
  QueryReferences: async ({ path }, env) => [...(await requireInfo(env.store, path)).references],
  QueryPathHash: async ({ path }, env) => (await requireInfo(env.store, path)).narHash.toBase16(),
  QueryDeriver: async ({ path }, env) => (await requireInfo(env.store, path)).deriver ?? '',
  QueryPathFromHashPart: async ({ hashPart }, env) => (await env.store.queryPathFromHashPart(hashPart)) ?? '',
  HasSubstitutes: () => Promise.resolve(false),
  QuerySubstitutablePaths: () => Promise.resolve([]),
  QuerySubstitutablePathInfos: () => Promise.resolve([]),
  QuerySubstitutablePathInfo: () => Promise.resolve(null),
  QueryRealisation: () => Promise.resolve([]),

  QueryDerivationOutputMap: async ({ path }, env) => derivationOutputMap(env.store, path),
  QueryDerivationOutputs: async ({ path }, env) =>
    [...(await derivationOutputMap(env.store, path)).values()].filter((p) => p !== ''),
  QueryDerivationOutputNames: async ({ path }, env) => [
    ...(await derivationOutputMap(env.store, path)).keys(),
  ],
  QueryMissing: async ({ paths }, env) => queryMissing(env.store, paths),

  NarFromPath: async ({ path }, env) => {
    await requireInfo(env.store, path);
    return env.store.narFromPath(path);
  },

  AddToStore: async (args, env, payload) => {
    if ('camStr' in args) {
      const info = await env.store.addToStore(
        { name: args.name, method: args.camStr, references: args.references },
        framedSource(payload),
        { sessionId: env.sessionId },
      );
      return toWireInfo(info);
    }
    // Before 1.25: a NAR follows; `fixed = false` meant recursive sha256.
    const method = !args.fixed ? 'fixed:r:sha256' : `fixed:${args.recursive ? 'r:' : ''}${args.hashAlgo}`;
    const info = await env.store.addToStore(
      { name: args.name, method, references: [], dataIsNar: true },
      unframedNar(env, payload),
      { sessionId: env.sessionId },
    );
    return info.path;
  },

  AddTextToStore: async ({ name, contents, references }, env) =>
    (await env.store.addTextToStore(name, contents, references, { sessionId: env.sessionId })).path,

  AddToStoreNar: async (args, env, payload) => {
    const claim = toClaim(args);
    checkNarSize(args.narSize, args.path, env);
    checkUploadSignature(claim, args.dontCheckSigs, env);
    const nar = payload.kind === 'framed' ? payload.source : pulledNar(env, args.narSize);
    await env.store.importNar(claim, nar, { sessionId: env.sessionId });
    return {};
  },

  AddMultipleToStore: async ({ dontCheckSigs }, env, payload) => {
    await env.store.importBatch(multipleItems(framedSource(payload), env, dontCheckSigs), {
      sessionId: env.sessionId,
    });
    return {};
  },

  AddBuildLog: async ({ drvPath }, env, payload) => {
    parseStorePathBase(drvPath); // a base name, e.g. `…-hello.drv`
    const dir = join(env.store.layout.dataDir, 'logs');
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `.${drvPath}.${process.pid}.${Date.now()}.tmp`);
    await pipeline(Readable.from(framedSource(payload)), createGzip(), createWriteStream(tmp));
    await rename(tmp, join(dir, `${drvPath}.gz`));
    return 1;
  },

  AddSignatures: async ({ path, sigs }, env) => {
    await env.store.addSignatures(path, sigs);
    return 1;
  },

  AddTempRoot: async ({ path }, env) => {
    await env.store.tempRoots.add(env.sessionId, [path]);
    return 1;
  },
  AddIndirectRoot: () => Promise.resolve(1),
  SyncWithGC: () => Promise.resolve(1),
  FindRoots: () => Promise.resolve(new Map<string, string>()),
  OptimiseStore: async (_args, env) => {
    // Our store keeps no hard-link farm, so there is never anything to link.
    await env.log.line(NixMessages.optimised(0, 0));
    return 1;
  },

  VerifyStore: async ({ checkContents, repair }, env) => {
    if (repair) {
      throw new GatewayError(
        GatewayErrorCode.UNSUPPORTED_OPERATION,
        'Nixyard cannot repair the store (verify only)',
      );
    }
    for (const phase of VerifyPhases.start) await env.log.line(phase);
    if (checkContents) for (const phase of VerifyPhases.contents) await env.log.line(phase);
    const report = await env.store.verify({ checkContents });
    // Each message names its path already.
    for (const problem of report.problems) await env.log.line(problem.message);
    return report.problems.length > 0;
  },

  CollectGarbage: async (args, env) => collectGarbage(env, args.action, args.pathsToDelete, args.maxFreed),

  SetOptions: ({ overrides, keepGoing }, env) => {
    env.options.set('keep-going', String(keepGoing));
    for (const [k, v] of overrides) env.options.set(k, v);
    return Promise.resolve({});
  },

  EnsurePath: async ({ path }, env) => {
    await env.store.tempRoots.add(env.sessionId, [path]); // as Nix's ensurePath
    if (!(await env.store.isValid(path))) {
      throw new GatewayError(GatewayErrorCode.UNSUPPORTED_OPERATION, NixMessages.noSubstituter(path), {
        path,
      });
    }
    return 1;
  },

  BuildPathsWithResults: buildPathsWithResults,
  BuildPaths: buildPaths,
  BuildDerivation: buildDerivation,
};
