/**
 * Worker protocol constants (`worker-protocol.hh` in Nix 2.8, `WorkerProto::Op` in master),
 * named as upstream with the upstream value in a comment. Layouts: `worker-ops.ts`.
 */

export const WORKER_MAGIC_1 = 0x6e697863; // "cxin", client → server
export const WORKER_MAGIC_2 = 0x6478696f; // "oixd", server → client

export const Op = {
  IsValidPath: 1, // wopIsValidPath
  HasSubstitutes: 3, // wopHasSubstitutes (obsolete)
  QueryPathHash: 4, // wopQueryPathHash (obsolete)
  QueryReferences: 5, // wopQueryReferences (obsolete)
  QueryReferrers: 6, // wopQueryReferrers
  AddToStore: 7, // wopAddToStore
  AddTextToStore: 8, // wopAddTextToStore (obsolete since 1.25)
  BuildPaths: 9, // wopBuildPaths
  EnsurePath: 10, // wopEnsurePath
  AddTempRoot: 11, // wopAddTempRoot
  AddIndirectRoot: 12, // wopAddIndirectRoot
  SyncWithGC: 13, // wopSyncWithGC (obsolete)
  FindRoots: 14, // wopFindRoots
  ExportPath: 16, // wopExportPath (obsolete)
  QueryDeriver: 18, // wopQueryDeriver (obsolete)
  SetOptions: 19, // wopSetOptions
  CollectGarbage: 20, // wopCollectGarbage
  QuerySubstitutablePathInfo: 21, // wopQuerySubstitutablePathInfo (obsolete)
  QueryDerivationOutputs: 22, // wopQueryDerivationOutputs (obsolete)
  QueryAllValidPaths: 23, // wopQueryAllValidPaths
  QueryPathInfo: 26, // wopQueryPathInfo
  ImportPaths: 27, // wopImportPaths (obsolete)
  QueryDerivationOutputNames: 28, // wopQueryDerivationOutputNames (obsolete)
  QueryPathFromHashPart: 29, // wopQueryPathFromHashPart
  QuerySubstitutablePathInfos: 30, // wopQuerySubstitutablePathInfos
  QueryValidPaths: 31, // wopQueryValidPaths
  QuerySubstitutablePaths: 32, // wopQuerySubstitutablePaths
  QueryValidDerivers: 33, // wopQueryValidDerivers
  OptimiseStore: 34, // wopOptimiseStore
  VerifyStore: 35, // wopVerifyStore
  BuildDerivation: 36, // wopBuildDerivation
  AddSignatures: 37, // wopAddSignatures
  NarFromPath: 38, // wopNarFromPath
  AddToStoreNar: 39, // wopAddToStoreNar
  QueryMissing: 40, // wopQueryMissing
  QueryDerivationOutputMap: 41, // wopQueryDerivationOutputMap
  RegisterDrvOutput: 42, // wopRegisterDrvOutput
  QueryRealisation: 43, // wopQueryRealisation
  AddMultipleToStore: 44, // wopAddMultipleToStore
  AddBuildLog: 45, // wopAddBuildLog
  BuildPathsWithResults: 46, // wopBuildPathsWithResults
  AddPermRoot: 47, // WorkerProto::Op::AddPermRoot
} as const;

export type OpName = keyof typeof Op;
export type OpCode = (typeof Op)[OpName];

const opNames = new Map<number, OpName>(Object.entries(Op).map(([k, v]) => [v, k as OpName]));

/** The name of an op code, or undefined if unknown. */
export function opName(code: number): OpName | undefined {
  return opNames.get(code);
}

export const Stderr = {
  NEXT: 0x6f6c6d67, // STDERR_NEXT "gmlo"
  READ: 0x64617461, // STDERR_READ
  WRITE: 0x64617416, // STDERR_WRITE
  LAST: 0x616c7473, // STDERR_LAST "stla"
  ERROR: 0x63787470, // STDERR_ERROR "ptxc"
  START_ACTIVITY: 0x53545254, // STDERR_START_ACTIVITY
  STOP_ACTIVITY: 0x53544f50, // STDERR_STOP_ACTIVITY
  RESULT: 0x52534c54, // STDERR_RESULT
} as const;

export type StderrName = keyof typeof Stderr;

/** `Verbosity` (error.hh). */
export const Verbosity = {
  Error: 0, // lvlError
  Warn: 1, // lvlWarn
  Notice: 2, // lvlNotice
  Info: 3, // lvlInfo
  Talkative: 4, // lvlTalkative
  Chatty: 5, // lvlChatty
  Debug: 6, // lvlDebug
  Vomit: 7, // lvlVomit
} as const;

/** `ActivityType` (logging.hh). */
export const ActivityType = {
  Unknown: 0, // actUnknown
  CopyPath: 100, // actCopyPath
  FileTransfer: 101, // actFileTransfer
  Realise: 102, // actRealise
  CopyPaths: 103, // actCopyPaths
  Builds: 104, // actBuilds
  Build: 105, // actBuild
  OptimiseStore: 106, // actOptimiseStore
  VerifyPaths: 107, // actVerifyPaths
  Substitute: 108, // actSubstitute
  QueryPathInfo: 109, // actQueryPathInfo
  PostBuildHook: 110, // actPostBuildHook
  BuildWaiting: 111, // actBuildWaiting
  FetchTree: 112, // actFetchTree
  FetchToStore: 113, // actFetchToStore
} as const;

/** `ResultType` (logging.hh). */
export const ResultType = {
  FileLinked: 100, // resFileLinked
  BuildLogLine: 101, // resBuildLogLine
  UntrustedPath: 102, // resUntrustedPath
  CorruptedPath: 103, // resCorruptedPath
  SetPhase: 104, // resSetPhase
  Progress: 105, // resProgress
  SetExpected: 106, // resSetExpected
  PostBuildLogLine: 107, // resPostBuildLogLine
  FetchStatus: 108, // resFetchStatus
  FetchToStore: 109, // resFetchToStore
} as const;

/** `BuildMode` (§6.4). */
export const BuildMode = {
  Normal: 0, // bmNormal
  Repair: 1, // bmRepair
  Check: 2, // bmCheck
} as const;

/** `GCOptions::GCAction` (op 20). */
export const GcAction = {
  ReturnLive: 0, // gcReturnLive
  ReturnDead: 1, // gcReturnDead
  DeleteDead: 2, // gcDeleteDead
  DeleteSpecific: 3, // gcDeleteSpecific
} as const;

/** `BuildResult::Status` (append-only). */
export const BuildStatus = {
  Built: 0,
  Substituted: 1,
  AlreadyValid: 2,
  PermanentFailure: 3,
  InputRejected: 4,
  OutputRejected: 5,
  TransientFailure: 6,
  CachedFailure: 7,
  TimedOut: 8,
  MiscFailure: 9,
  DependencyFailed: 10,
  LogLimitExceeded: 11,
  NotDeterministic: 12,
  ResolvesToAlreadyValid: 13,
  NoSubstituters: 14,
} as const;
export type BuildStatus = (typeof BuildStatus)[keyof typeof BuildStatus];

/** Handshake trusted flag (≥1.35): `Serialise<std::optional<TrustedFlag>>`. */
export const TrustedFlag = {
  Unknown: 0,
  Trusted: 1,
  NotTrusted: 2,
} as const;
