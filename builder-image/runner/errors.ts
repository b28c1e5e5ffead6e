/**
 * The one registry of error codes of the builder runner. A `BuildError` carries the
 * BuildResult status it maps to and Nix's own message (with Nix's ANSI highlighting,
 * as a Nix daemon puts it in `BuildResult.errorMsg`); `context` names the derivation,
 * output and paths involved.
 *
 * Add a code in the section of its concept; never reuse or rename one.
 */
import type { BuildStatus } from './result.js';

export const BuildErrorCode = {
  // before the build
  DRV_INVALID: 'ERR_BUILD_DRV_INVALID',
  INPUT_MISSING: 'ERR_BUILD_INPUT_MISSING',
  PLATFORM_MISMATCH: 'ERR_BUILD_PLATFORM_MISMATCH',
  UNSUPPORTED: 'ERR_BUILD_UNSUPPORTED',
  ATTRS_INVALID: 'ERR_BUILD_ATTRS_INVALID',
  SANDBOX_SETUP: 'ERR_BUILD_SANDBOX_SETUP',

  // the builder
  BUILDER_FAILED: 'ERR_BUILD_BUILDER_FAILED',
  TIMED_OUT: 'ERR_BUILD_TIMED_OUT',
  CANCELLED: 'ERR_BUILD_CANCELLED',

  // outputs
  OUTPUT_MISSING: 'ERR_BUILD_OUTPUT_MISSING',
  OUTPUT_BAD_FILE_TYPE: 'ERR_BUILD_OUTPUT_BAD_FILE_TYPE',
  OUTPUT_REFERENCES: 'ERR_BUILD_OUTPUT_REFERENCES',
  OUTPUT_TOO_LARGE: 'ERR_BUILD_OUTPUT_TOO_LARGE',
  OUTPUT_CYCLE: 'ERR_BUILD_OUTPUT_CYCLE',
  HASH_MISMATCH: 'ERR_BUILD_HASH_MISMATCH',
  FIXED_OUTPUT_REFERENCES: 'ERR_BUILD_FIXED_OUTPUT_REFERENCES',
  FIXED_OUTPUT_NOT_FLAT_FILE: 'ERR_BUILD_FIXED_OUTPUT_NOT_FLAT_FILE',
} as const;

export type BuildErrorCode = (typeof BuildErrorCode)[keyof typeof BuildErrorCode];

export type BuildErrorContext = Readonly<Record<string, string | number | boolean | undefined>>;

/** ANSI as Nix 2.8 writes it (`ansicolor.hh`). */
export const ANSI_NORMAL = '\x1b[0m';
export const ANSI_WARNING = '\x1b[35;1m';
export const ANSI_BOLD = '\x1b[1m';

/** `yellowtxt(s)`: how `hintfmt` highlights each argument. */
export function yellow(s: string | number): string {
  return `${ANSI_WARNING}${s}${ANSI_NORMAL}`;
}

/** Removes ANSI escape sequences (what `nix-build` prints when stderr is not a terminal). */
export function stripAnsi(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
}

/**
 * `hintfmt(fmt, args…)`: `%s` replaced by the highlighted arguments, in order. A message
 * built without arguments is `normaltxt(msg)` instead (see `plainMessage`).
 */
export function hintfmt(format: string, ...args: readonly (string | number)[]): string {
  let i = 0;
  return format.replace(/%[sd]/g, () => yellow(args[i++] ?? ''));
}

/** `BuildError(msg)` with an already formatted string: `ANSI_NORMAL + msg`. */
export function plainMessage(msg: string): string {
  return `${ANSI_NORMAL}${msg}`;
}

export class BuildError extends Error {
  override readonly name = 'BuildError';

  constructor(
    readonly code: BuildErrorCode,
    /** The BuildResult status this error ends the build with. */
    readonly status: BuildStatus,
    /** Nix's message, with its ANSI highlighting (`stripAnsi` for plain text). */
    readonly nixMessage: string,
    readonly context: BuildErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super(stripAnsi(nixMessage), options);
  }
}

export function isBuildError(err: unknown, code?: BuildErrorCode): err is BuildError {
  return err instanceof BuildError && (code === undefined || err.code === code);
}
