/** File system helpers of the store: atomic writes and removal of read-only trees. */
import { constants as fsConstants } from 'node:fs';
import { chmod, lstat, open, readdir, rename, rm, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/** fsync a directory, so that a rename inside it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replace `file` with `data` atomically and durably: write a temp file beside it,
 * fsync it, rename it over `file`, fsync the directory. Readers see the old or the new
 * content, never a torn one; after a crash at most a `.<name>.<random>.tmp` is left.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}

/** Remove `file` durably (unlink, fsync the directory); missing is fine. */
export async function unlinkDurable(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw err;
  }
  await fsyncDir(dirname(file));
}

/**
 * `rm -rf` that also works on canonical (read-only) trees when not running as root:
 * directories are made writable before their entries are removed. Symlinks are never
 * followed. Missing is fine.
 */
export async function removeTree(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw err;
  }
  if (st.isDirectory()) {
    if ((st.mode & 0o700) !== 0o700) await chmod(path, 0o700);
    for (const name of await readdir(path)) await removeTree(join(path, name));
  }
  await rm(path, { recursive: true, force: true });
}

/** Duck-typed: Node's system errors are not `instanceof Error` across vm realms (Jest). */
/**
 * Renames `from` (a file, symlink or directory, possibly canonical and read-only) to
 * `to` in another directory. Moving a directory to a new parent rewrites its `..`,
 * which needs write permission on it unless running as root: it is made writable first.
 */
export async function renameAway(from: string, to: string): Promise<void> {
  const st = await lstat(from);
  if (st.isDirectory() && (st.mode & 0o200) === 0) await chmod(from, 0o755);
  await rename(from, to);
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === code;
}
