export {
  buildDerivation,
  defaultSettings,
  builderFailedMessage,
  unbuiltOutcome,
} from './build-derivation.js';
export type { BuildDerivationOptions, BuildOutcome, BuildSettings } from './build-derivation.js';
export { BuildError, BuildErrorCode, isBuildError, stripAnsi } from './errors.js';
export { BuildStatus, exitCodeOf, isSuccess, statusName } from './result.js';
export type { BuildResult, BuiltOutput } from './result.js';
export { buildEnvironment, passAsFileName } from './env.js';
export { attrsJsonText, attrsShText } from './structured-attrs.js';
export { bwrapArgv, ptyArgv } from './sandbox.js';
export { LogLineSplitter } from './log.js';
export { runBuilder } from './run-builder.js';
export { seccompFilter } from './seccomp.js';
