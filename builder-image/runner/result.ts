/**
 * The outcome of one build, shaped like Nix's `BuildResult` (protocol/README.md §6):
 * status with Nix's numeric values, `errorMsg` exactly as a Nix 2.8 daemon fills it
 * (ANSI highlighting included), the outputs built, times and `timesBuilt`.
 */

import { BuildStatus } from '../../nix/protocol/worker.js';

/** `BuildResult::Status`: one table (and type), the protocol's. */
export { BuildStatus } from '../../nix/protocol/worker.js';

export function statusName(status: BuildStatus): string {
  return Object.entries(BuildStatus).find(([, v]) => v === status)?.[0] ?? String(status);
}

export function isSuccess(status: BuildStatus): boolean {
  return status === BuildStatus.Built || status === BuildStatus.AlreadyValid;
}

/** One output of the derivation after the build (`Realisation`, 2.8 JSON form). */
export interface BuiltOutput {
  /** `sha256:<hex of hashModulo>!<output>` (DrvOutput id), or `<drvPath>!<output>` if unknown. */
  readonly id: string;
  readonly outputName: string;
  readonly outPath: string;
}

export interface BuildResult {
  readonly status: BuildStatus;
  /** '' on success. */
  readonly errorMsg: string;
  readonly builtOutputs: readonly BuiltOutput[];
  /** Unix seconds; 0 if the builder never ran. */
  readonly startTime: number;
  readonly stopTime: number;
  readonly timesBuilt: number;
  readonly isNonDeterministic: boolean;
}

/**
 * Exit status of `nixyard build-drv`, as `nix-build` 2.8 chooses it locally
 * (`Worker::exitStatus`): 100 for a failed builder, 101 timed out, 102 hash mismatch,
 * 104 not deterministic; 1 for other failures (missing output, rejected references…).
 */
export function exitCodeOf(result: BuildResult, hashMismatch: boolean): number {
  if (isSuccess(result.status)) return 0;
  let mask = 0;
  if (result.status === BuildStatus.TimedOut) mask |= 1;
  if (hashMismatch) mask |= 2;
  if (result.status === BuildStatus.NotDeterministic) mask |= 4;
  if (result.status === BuildStatus.PermanentFailure) mask |= 4;
  return mask !== 0 ? 0x60 | 4 | mask : 1;
}
