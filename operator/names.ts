/**
 * Names derived from the derivation: every session asking for the same .drv computes the
 * same NixBuild name, so a create that answers 409 AlreadyExists means "join it".
 *
 * The rule (k8s/names.ts, shared with the gateway): `<hash part>-<name without .drv>`, lowercased,
 * every run of characters outside [a-z0-9] turned into one '-', cut to 52 characters (the
 * limit Kubernetes uses for CronJob names, so that Job and Pod names derived from it stay
 * within 63) without a trailing '-'. The hash part alone is unique; the rest is for humans.
 */
import { MAX_NAME_LENGTH, nixBuildNameOf } from '../k8s/names.js';
import { parseStorePath } from '../nix/store-path.js';
import { OperatorError, OperatorErrorCode } from './errors.js';

export { MAX_NAME_LENGTH };

export interface ParsedDrvPath {
  readonly hashPart: string;
  /** The derivation name, without `.drv`. */
  readonly name: string;
}

export function parseDrvPath(drvPath: string): ParsedDrvPath {
  let parsed;
  try {
    parsed = parseStorePath(drvPath);
  } catch (e) {
    throw new OperatorError(
      OperatorErrorCode.DRV_PATH_INVALID,
      `'${drvPath}' is not a store path: ${String(e)}`,
      {
        drvPath,
      },
    );
  }
  if (!parsed.name.endsWith('.drv') || parsed.name.length === 4) {
    throw new OperatorError(OperatorErrorCode.DRV_PATH_INVALID, `'${drvPath}' is not a derivation (.drv)`, {
      drvPath,
    });
  }
  return { hashPart: parsed.hashPart, name: parsed.name.slice(0, -'.drv'.length) };
}

export function nixBuildName(drvPath: string): string {
  const { hashPart, name } = parseDrvPath(drvPath);
  return nixBuildNameOf(hashPart, name);
}

/** The Job of one attempt: the NixBuild's own name first, `-retryN` for the retries. */
export function jobName(nixBuildName: string, attempt: number): string {
  return attempt <= 1 ? nixBuildName : `${nixBuildName}-retry${attempt - 1}`;
}
