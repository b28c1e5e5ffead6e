/**
 * Request and reply layout of every worker op (reference §5.1), as one table each.
 * Streams that follow a request or reply (framed uploads, in-band NARs) are not part of
 * the layout: `requestPayload` / `replyPayload` say what follows, and the caller reads
 * it with `readFramed` / `readNarFromWire`.
 */
import { ErrorCode, NixFormatError } from '../errors.js';
import { WireBuilder } from '../wire/encode.js';
import type { WireReader } from '../wire/reader.js';
import {
  type Codec,
  type Ctx,
  type Infer,
  bool,
  byVersion,
  flagged,
  int,
  list,
  longStr,
  map,
  none,
  path,
  paths,
  shortStr,
  since,
  strings,
  struct,
  u64,
} from './codec.js';
import {
  BasicDerivation,
  BuildResult,
  KeyedBuildResult,
  SubstitutablePathInfo,
  UnkeyedValidPathInfo,
  ValidPathInfo,
  unkeyedPathInfoFields,
} from './types.js';
import { Since } from './versions.js';
import { Op, type OpName, opName } from './worker.js';

const pathArg = struct({ path });
/** DerivedPath strings (§6.3) or, before 1.30, StorePathWithOutputs strings. */
const derivedPaths = list(longStr);

export const WorkerRequests = {
  IsValidPath: pathArg,
  HasSubstitutes: pathArg,
  QueryPathHash: pathArg,
  QueryReferences: pathArg,
  QueryReferrers: pathArg,
  AddToStore: byVersion(
    Since.addToStoreNewForm,
    struct({ name: shortStr, camStr: shortStr, references: paths, repair: bool }),
    struct({ name: shortStr, fixed: bool, recursive: bool, hashAlgo: shortStr }),
  ),
  AddTextToStore: struct({ name: shortStr, contents: longStr, references: paths }),
  BuildPaths: struct({ paths: derivedPaths, buildMode: since(Since.buildMode, int(), 0) }),
  EnsurePath: pathArg,
  AddTempRoot: pathArg,
  AddIndirectRoot: pathArg,
  SyncWithGC: none,
  FindRoots: none,
  ExportPath: struct({ path, sign: int() }),
  QueryDeriver: pathArg,
  SetOptions: struct({
    keepFailed: bool,
    keepGoing: bool,
    tryFallback: bool,
    verbosity: int(),
    maxBuildJobs: int(),
    maxSilentTime: int(),
    useBuildHook: bool,
    verboseBuild: int(),
    logType: int(),
    printBuildTrace: int(),
    buildCores: int(),
    useSubstitutes: bool,
    overrides: since(Since.setOptionsOverrides, map(shortStr, longStr), new Map<string, string>()),
  }),
  CollectGarbage: struct({
    action: int(),
    pathsToDelete: paths,
    ignoreLiveness: bool,
    maxFreed: u64,
    obsolete1: u64,
    obsolete2: u64,
    obsolete3: u64,
  }),
  QuerySubstitutablePathInfo: pathArg,
  QueryDerivationOutputs: pathArg,
  QueryAllValidPaths: none,
  QueryPathInfo: pathArg,
  ImportPaths: none,
  QueryDerivationOutputNames: pathArg,
  QueryPathFromHashPart: struct({ hashPart: shortStr }),
  QuerySubstitutablePathInfos: byVersion(
    Since.substitutablePathInfosCaMap,
    struct({ pathsWithCa: map(path, shortStr) }),
    struct({ paths }),
  ),
  QueryValidPaths: struct({
    paths,
    substitute: since(Since.queryValidPathsSubstitute, bool, false),
  }),
  QuerySubstitutablePaths: struct({ paths }),
  QueryValidDerivers: pathArg,
  OptimiseStore: none,
  VerifyStore: struct({ checkContents: bool, repair: bool }),
  BuildDerivation: struct({ drvPath: path, drv: BasicDerivation, buildMode: int() }),
  AddSignatures: struct({ path, sigs: strings }),
  NarFromPath: pathArg,
  // The op exists from 1.18, so the ≥1.16 path-info fields are always there.
  AddToStoreNar: struct({ path, ...unkeyedPathInfoFields, repair: bool, dontCheckSigs: bool }),
  QueryMissing: struct({ paths: derivedPaths }),
  QueryDerivationOutputMap: pathArg,
  RegisterDrvOutput: byVersion(
    Since.realisationJson,
    struct({ realisation: longStr }),
    struct({ drvOutputId: shortStr, outPath: path }),
  ),
  QueryRealisation: struct({ drvOutputId: shortStr }),
  AddMultipleToStore: struct({ repair: bool, dontCheckSigs: bool }),
  /** drvPath is the *base name* of the .drv (§5.1 op 45). */
  AddBuildLog: struct({ drvPath: path }),
  BuildPathsWithResults: struct({ paths: derivedPaths, buildMode: int() }),
  AddPermRoot: struct({ path, gcRoot: path }),
} satisfies Record<OpName, Codec<unknown>>;

const one = int();

export const WorkerReplies = {
  IsValidPath: bool,
  HasSubstitutes: bool,
  QueryPathHash: shortStr,
  QueryReferences: paths,
  QueryReferrers: paths,
  AddToStore: byVersion(Since.addToStoreNewForm, ValidPathInfo, path),
  AddTextToStore: path,
  BuildPaths: one,
  EnsurePath: one,
  AddTempRoot: one,
  AddIndirectRoot: one,
  SyncWithGC: one,
  /** link → target. */
  FindRoots: map(longStr, path),
  ExportPath: one,
  QueryDeriver: path,
  SetOptions: none,
  CollectGarbage: struct({ paths: list(longStr), bytesFreed: u64, obsolete: u64 }),
  QuerySubstitutablePathInfo: flagged(
    struct({ deriver: path, references: paths, downloadSize: int(), narSize: int() }),
  ),
  QueryDerivationOutputs: paths,
  QueryAllValidPaths: paths,
  /** null = not valid (≥1.17); older versions report invalid paths with STDERR_ERROR. */
  QueryPathInfo: byVersion(Since.queryPathInfoValidFlag, flagged(UnkeyedValidPathInfo), UnkeyedValidPathInfo),
  ImportPaths: paths,
  QueryDerivationOutputNames: strings,
  QueryPathFromHashPart: path,
  QuerySubstitutablePathInfos: list(SubstitutablePathInfo),
  QueryValidPaths: paths,
  QuerySubstitutablePaths: paths,
  QueryValidDerivers: paths,
  OptimiseStore: one,
  VerifyStore: bool,
  BuildDerivation: BuildResult,
  AddSignatures: one,
  /** The raw NAR follows STDERR_LAST (replyPayload = 'nar'). */
  NarFromPath: none,
  AddToStoreNar: none,
  QueryMissing: struct({
    willBuild: paths,
    willSubstitute: paths,
    unknown: paths,
    downloadSize: u64,
    narSize: u64,
  }),
  /** output name → path ("" if unknown). */
  QueryDerivationOutputMap: map(shortStr, path),
  RegisterDrvOutput: none,
  /** <1.31 out paths, ≥1.31 realisation JSON; 0 or 1 entries. */
  QueryRealisation: byVersion(Since.realisationJson, list(longStr), paths),
  AddMultipleToStore: none,
  AddBuildLog: one,
  BuildPathsWithResults: list(KeyedBuildResult),
  AddPermRoot: path,
} satisfies Record<OpName, Codec<unknown>>;

export type WorkerRequestArgs<K extends OpName> = Infer<(typeof WorkerRequests)[K]>;
export type WorkerReply<K extends OpName> = Infer<(typeof WorkerReplies)[K]>;
export type WorkerRequest = { [K in OpName]: { op: K; args: WorkerRequestArgs<K> } }[OpName];

/** What follows a request on the client → server stream. */
export type RequestPayload =
  | 'none'
  | 'framed' // FramedSource until a zero-length frame
  | 'nar' // an unframed NAR, found by parsing it
  | 'stderr-read'; // the server pulls data with STDERR_READ

export function requestPayload(op: OpName, minor: number): RequestPayload {
  switch (op) {
    case 'AddToStore':
      return minor >= Since.addToStoreNewForm ? 'framed' : 'nar';
    case 'AddToStoreNar':
      return minor >= Since.addToStoreNarFramed
        ? 'framed'
        : minor >= Since.addToStoreNarStderrRead
          ? 'stderr-read'
          : 'nar';
    case 'AddMultipleToStore':
    case 'AddBuildLog':
      return 'framed';
    case 'ImportPaths':
      return 'stderr-read';
    default:
      return 'none';
  }
}

/** What follows STDERR_LAST and the reply body on the server → client stream. */
export function replyPayload(op: OpName): 'none' | 'nar' {
  return op === 'NarFromPath' ? 'nar' : 'none';
}

/** Reads `u64 opcode` + arguments. Unknown opcodes are PROTO_UNKNOWN_OP. */
export async function readWorkerRequest(r: WireReader, c: Ctx): Promise<WorkerRequest> {
  const at = r.offset;
  const code = await r.readU64('opcode');
  const name = code <= 0xffffn ? opName(Number(code)) : undefined;
  if (name === undefined) {
    throw new NixFormatError(ErrorCode.PROTO_UNKNOWN_OP, `unknown worker op ${code}`, {
      offset: at,
      value: code,
    });
  }
  const codec = WorkerRequests[name] as Codec<unknown>;
  const args = await codec.read(r, c);
  return { op: name, args } as WorkerRequest;
}

export function writeWorkerRequest(b: WireBuilder, req: WorkerRequest, c: Ctx): void {
  b.u64(Op[req.op]);
  (WorkerRequests[req.op] as Codec<unknown>).write(b, req.args, c);
}

export function encodeWorkerRequest(req: WorkerRequest, c: Ctx): Uint8Array {
  const b = new WireBuilder();
  writeWorkerRequest(b, req, c);
  return b.finish();
}

/** Reads the reply body of `op` (after STDERR_LAST). */
export function readWorkerReply<K extends OpName>(r: WireReader, op: K, c: Ctx): Promise<WorkerReply<K>> {
  return (WorkerReplies[op] as Codec<WorkerReply<K>>).read(r, c);
}

export function encodeWorkerReply<K extends OpName>(op: K, reply: WorkerReply<K>, c: Ctx): Uint8Array {
  const b = new WireBuilder();
  (WorkerReplies[op] as Codec<WorkerReply<K>>).write(b, reply, c);
  return b.finish();
}
