/**
 * The one table of protocol version gates. Each entry is the minor version from which a
 * field or behaviour exists ("≥1.NN" in the reference §7, "≥2.N" in §8). Supporting a new
 * Nix release is an edit here plus the codec line that uses the new name.
 */

/** Worker protocol (major 1): the minor version at which each field appears. */
export const Since = {
  reserveSpace: 11, // handshake: client sends reserveSpace
  setOptionsOverrides: 12, // SetOptions carries the overrides map
  cpuAffinity: 14, // handshake: client sends cpu-affinity flag
  buildMode: 15, // BuildPaths carries buildMode
  pathInfoUltimateSigsCa: 16, // ValidPathInfo has ultimate, sigs, ca
  queryPathInfoValidFlag: 17, // QueryPathInfo reply starts with a valid flag
  addToStoreNar: 18, // op 39 instead of ImportPaths
  queryMissing: 19, // op 40
  activities: 20, // START/STOP_ACTIVITY, RESULT stderr messages
  addToStoreNarStderrRead: 21, // AddToStoreNar data pulled with STDERR_READ
  substitutablePathInfosCaMap: 22, // QuerySubstitutablePathInfos takes {path: ca}
  queryDerivationOutputMap: 22, // op 41
  addToStoreNarFramed: 23, // AddToStoreNar data framed
  addToStoreNewForm: 25, // AddToStore(name, camStr, refs, repair, framed)
  structuredError: 26, // STDERR_ERROR carries an Error object
  queryValidPathsSubstitute: 27, // QueryValidPaths has the substitute flag
  realisationOps: 27, // ops 42, 43 (CA derivations)
  buildResultBuiltOutputs: 28, // BuildResult has builtOutputs
  buildResultTimes: 29, // timesBuilt, isNonDeterministic, start/stopTime
  derivedPathStrings: 30, // DerivedPath strings (`drv!outs`)
  realisationJson: 31, // realisations as JSON
  addMultipleToStore: 32, // ops 44, 45
  daemonNixVersion: 33, // handshake: daemon version string
  buildPathsWithResults: 34, // op 46
  trustedFlag: 35, // handshake: trusted flag
  addPermRoot: 36, // op 47
  cpuTimes: 37, // BuildResult cpuUser/cpuSystem
  features: 38, // handshake feature-set exchange
} as const;

/**
 * The first minor version at which a client may send each worker op (ops not listed exist
 * in every version we speak). A server can answer earlier use with "invalid operation".
 */
export const OpSince = {
  QueryMissing: Since.queryMissing,
  AddToStoreNar: Since.addToStoreNar,
  QueryDerivationOutputMap: Since.queryDerivationOutputMap,
  RegisterDrvOutput: Since.realisationOps,
  QueryRealisation: Since.realisationOps,
  AddMultipleToStore: Since.addMultipleToStore,
  AddBuildLog: Since.addMultipleToStore,
  BuildPathsWithResults: Since.buildPathsWithResults,
  AddPermRoot: Since.addPermRoot,
} as const;

/** The first minor version *without* each obsolete op (clients at or above it do not send it). */
export const OpUntil = {
  AddTextToStore: Since.addToStoreNewForm,
} as const;

/** Serve protocol (major 2): the minor version at which each field appears. */
export const ServeSince = {
  maxLogSize: 2, // build options: maxLogSize
  buildRepeat: 3, // build options: buildRepeat, enforceDeterminism; BuildResult times
  pathInfoNarHashCaSigs: 4, // QueryPathInfos: narHash, ca, sigs
  addToStoreNar: 5, // cmd 9
  builtOutputs: 6, // BuildResult builtOutputs
  keepFailed: 7, // build options: keepFailed
} as const;

/** Worker protocol versions we speak. The decoder handles anything ≥ 1.10 that the tables describe. */
export const WORKER_PROTOCOL = { major: 1, minMinor: 21, maxMinor: 38 } as const;
export const SERVE_PROTOCOL = { major: 2, minMinor: 5, maxMinor: 7 } as const;

export function protocolVersion(major: number, minor: number): number {
  return ((major & 0xff) << 8) | (minor & 0xff);
}
export function majorOf(version: number): number {
  return (version >> 8) & 0xff;
}
export function minorOf(version: number): number {
  return version & 0xff;
}
