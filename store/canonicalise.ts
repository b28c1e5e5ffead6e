/**
 * Canonical form of store content, as Nix leaves it (`canonicalisePathMetaData`):
 * regular files 0444, or 0555 if any execute bit was set; directories 0555; symlinks
 * untouched except their time; no setuid/setgid/sticky bits; mtime (and atime) 1.
 * Ownership is left as is (the gateway runs as one user). Symlinks are never followed.
 *
 * `skipRootMode` leaves the root directory writable: renaming a directory into
 * another parent needs write permission on it (to update `..`) unless running as
 * root; the caller sets the root's mode and time after the rename (`finishRoot`).
 */
import { constants as fsConstants } from 'node:fs';
import { chmod, lstat, lutimes, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, NixFormatError } from '../nix/errors.js';

export const CANONICAL_MTIME = 1;

export interface CanonicaliseOptions {
  readonly skipRootMode?: boolean;
  /** fsync every file and directory, so that registered content survives a crash. */
  readonly sync?: boolean;
}

export async function canonicalisePath(path: string, options: CanonicaliseOptions = {}): Promise<void> {
  await canonicaliseNode(path, options.skipRootMode === true, options.sync === true);
}

async function canonicaliseNode(path: string, skipMode: boolean, sync: boolean): Promise<void> {
  const st = await lstat(path);
  if (st.isDirectory()) {
    for (const name of await readdir(path)) await canonicaliseNode(join(path, name), false, sync);
    if (sync) await fsyncPath(path, fsConstants.O_DIRECTORY);
    if (!skipMode) await chmod(path, 0o555);
  } else if (st.isFile()) {
    if (sync) await fsyncPath(path, 0);
    await chmod(path, (st.mode & 0o111) !== 0 ? 0o555 : 0o444);
  } else if (!st.isSymbolicLink()) {
    throw new NixFormatError(ErrorCode.NAR_UNSUPPORTED_FILE_TYPE, `file '${path}' has an unsupported type`, {
      path,
    });
  }
  await lutimes(path, CANONICAL_MTIME, CANONICAL_MTIME);
}

async function fsyncPath(path: string, flags: number): Promise<void> {
  const handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Second half of `skipRootMode`: the root's final mode and time, after the rename. */
export async function finishRoot(path: string): Promise<void> {
  const st = await lstat(path);
  if (st.isDirectory()) await chmod(path, 0o555);
  await lutimes(path, CANONICAL_MTIME, CANONICAL_MTIME);
}
