/** Composite types shared by worker and serve messages (reference §6). */
import { ServeSince, Since } from './versions.js';
import {
  type Codec,
  type Infer,
  bool,
  int,
  list,
  longStr,
  map,
  optional,
  path,
  paths,
  shortStr,
  since,
  strings,
  struct,
  u64,
} from './codec.js';

/** Runs a codec at a fixed minor version (e.g. ValidPathInfo inside AddMultipleToStore is always 1.16). */
export function atMinor<T>(minor: number, of: Codec<T>): Codec<T> {
  return {
    read: (r, c) => of.read(r, { ...c, minor }),
    write: (b, v, c) => of.write(b, v, { ...c, minor }),
    shape: { kind: 'atMinor', minor, of: of.shape },
  };
}

/** §6.1 fields of a path info after the path: narHash is base16 sha256 without prefix; deriver "" = none. */
export const unkeyedPathInfoFields = {
  deriver: path,
  narHash: shortStr,
  references: paths,
  registrationTime: int(),
  narSize: int(),
  ultimate: since(Since.pathInfoUltimateSigsCa, bool, false),
  sigs: since(Since.pathInfoUltimateSigsCa, strings, [] as string[]),
  ca: since(Since.pathInfoUltimateSigsCa, shortStr, ''),
};

export const UnkeyedValidPathInfo = struct(unkeyedPathInfoFields);
export type UnkeyedValidPathInfo = Infer<typeof UnkeyedValidPathInfo>;

export const ValidPathInfo = struct({ path, ...unkeyedPathInfoFields });
export type ValidPathInfo = Infer<typeof ValidPathInfo>;

/** The entry header inside AddMultipleToStore's framed payload: ValidPathInfo at 1.16. */
export const ValidPathInfo116 = atMinor(16, ValidPathInfo);

/** §6.2 BuildResult (worker). builtOutputs: drvOutputId → realisation JSON. */
export const BuildResult = struct({
  status: int(),
  errorMsg: longStr,
  timesBuilt: since(Since.buildResultTimes, int(), 0),
  isNonDeterministic: since(Since.buildResultTimes, bool, false),
  startTime: since(Since.buildResultTimes, int(), 0),
  stopTime: since(Since.buildResultTimes, int(), 0),
  cpuUser: since(Since.cpuTimes, optional(u64), null),
  cpuSystem: since(Since.cpuTimes, optional(u64), null),
  builtOutputs: since(Since.buildResultBuiltOutputs, map(shortStr, longStr), new Map<string, string>()),
});
export type BuildResult = Infer<typeof BuildResult>;

/** BuildPathsWithResults entry: DerivedPath string + BuildResult. */
export const KeyedBuildResult = struct({ path: longStr, result: BuildResult });
export type KeyedBuildResult = Infer<typeof KeyedBuildResult>;

/** §6.5 BasicDerivation (no inputDrvs). */
export const DerivationOutput = struct({ name: shortStr, path, hashAlgo: shortStr, hash: shortStr });
export type DerivationOutput = Infer<typeof DerivationOutput>;

export const BasicDerivation = struct({
  outputs: list(DerivationOutput),
  inputSrcs: paths,
  platform: shortStr,
  builder: longStr,
  args: list(longStr),
  env: map(longStr, longStr),
});
export type BasicDerivation = Infer<typeof BasicDerivation>;

/** §8 serve BuildResult (serve minor versions). */
export const ServeBuildResult = struct({
  status: int(),
  errorMsg: longStr,
  timesBuilt: since(ServeSince.buildRepeat, int(), 0),
  isNonDeterministic: since(ServeSince.buildRepeat, bool, false),
  startTime: since(ServeSince.buildRepeat, int(), 0),
  stopTime: since(ServeSince.buildRepeat, int(), 0),
  builtOutputs: since(ServeSince.builtOutputs, map(shortStr, longStr), new Map<string, string>()),
});
export type ServeBuildResult = Infer<typeof ServeBuildResult>;

/** §8 build options sent after serve BuildPaths/BuildDerivation arguments. */
export const ServeBuildOptions = struct({
  maxSilentTime: int(),
  buildTimeout: int(),
  maxLogSize: since(ServeSince.maxLogSize, int(), 0),
  buildRepeat: since(ServeSince.buildRepeat, int(), 0),
  enforceDeterminism: since(ServeSince.buildRepeat, bool, false),
  keepFailed: since(ServeSince.keepFailed, bool, false),
});
export type ServeBuildOptions = Infer<typeof ServeBuildOptions>;

/** Serve QueryPathInfos entry (after the path). narHash is `sha256:<nix32>`. */
export const ServePathInfo = struct({
  deriver: path,
  references: paths,
  downloadSize: int(),
  narSize: int(),
  narHash: since(ServeSince.pathInfoNarHashCaSigs, shortStr, ''),
  ca: since(ServeSince.pathInfoNarHashCaSigs, shortStr, ''),
  sigs: since(ServeSince.pathInfoNarHashCaSigs, strings, [] as string[]),
});
export type ServePathInfo = Infer<typeof ServePathInfo>;

/** QuerySubstitutablePathInfos reply entry. */
export const SubstitutablePathInfo = struct({
  path,
  deriver: path,
  references: paths,
  downloadSize: int(),
  narSize: int(),
});
