/**
 * The NixBuild name rule, shared by the gateway (which creates or joins NixBuilds) and the
 * operator (which validates them): every session asking for the same .drv computes the
 * same name, so a create that answers 409 AlreadyExists means "join it".
 *
 * `<hash part>-<name without .drv>`, lowercased, every run of characters outside [a-z0-9]
 * turned into one '-', cut to 52 characters (the limit Kubernetes uses for CronJob names,
 * so that Job and Pod names derived from it stay within 63) without a trailing '-'. The
 * hash part alone is unique; the rest is for humans.
 *
 * Pure, and importing nothing of the gateway or the operator (they must not import each
 * other).
 */
import { parseStorePath } from '../nix/store-path.js';

export const MAX_NAME_LENGTH = 52;

/** The name from an already parsed .drv path (hash part, derivation name without `.drv`). */
export function nixBuildNameOf(hashPart: string, name: string): string {
  const readable = name.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return `${hashPart}-${readable}`.slice(0, MAX_NAME_LENGTH).replace(/-+$/, '');
}

/** The NixBuild name of a .drv path; throws an Error when it is not a derivation's store path. */
export function nixBuildName(drvPath: string): string {
  const parsed = parseStorePath(drvPath);
  if (!parsed.name.endsWith('.drv') || parsed.name.length === 4)
    throw new Error(`'${drvPath}' is not a derivation (.drv)`);
  return nixBuildNameOf(parsed.hashPart, parsed.name.slice(0, -'.drv'.length));
}

/**
 * The name of a check-mode NixBuild (`--check`/`--rebuild`): its own object per request,
 * never joined, `<hash part>-check-<token>` (token: 8 lowercase hex digits).
 */
export function checkBuildName(drvPath: string, token: string): string {
  if (!/^[0-9a-f]{8}$/.test(token)) throw new Error(`bad check token '${token}'`);
  nixBuildName(drvPath);
  return `${parseStorePath(drvPath).hashPart}-check-${token}`;
}
