/**
 * Where the store lives on its volume. Logically every path is `/nix/store/<hash>-<name>`
 * (clients' derivations name it so); physically everything sits under one data
 * directory, which may be anywhere (a local directory, the PVC mount in the cluster):
 *
 *   <data>/store/<hash>-<name>        the content, canonical (0444/0555, mtime 1)
 *   <data>/meta/<hash>-<name>.json    one record per valid path (see records.ts)
 *   <data>/staging/<random>/          uploads in progress; same file system as store/
 *                                     so that moving content into place is one rename
 *
 * A path is valid exactly when its record exists. The record is written (temp file in
 * meta/, fsync, rename, fsync of meta/) only after the content is complete, verified,
 * canonical and renamed into store/. So:
 * - content without a record is not valid (a crash between the two renames, or junk);
 *   it is ignored, reported by `verify`, and replaced by the next import of that path;
 * - a record without content is corruption, which `verify` reports.
 * Staging directories left over from a crash are removed when the store opens.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { lstat, mkdir, readdir } from 'node:fs/promises';
import { storePathBaseName, STORE_DIR } from '../nix/store-path.js';
import { removeTree } from './fs-util.js';

export const RECORD_SUFFIX = '.json';

export class StoreLayout {
  /** Physical directory holding the content. */
  readonly contentDir: string;
  /** Physical directory holding one record per valid path. */
  readonly metaDir: string;
  /** Physical directory for uploads in progress. */
  readonly stagingDir: string;

  constructor(
    readonly dataDir: string,
    /** The logical store directory (always `/nix/store` for Nix clients). */
    readonly storeDir: string = STORE_DIR,
  ) {
    this.contentDir = join(dataDir, 'store');
    this.metaDir = join(dataDir, 'meta');
    this.stagingDir = join(dataDir, 'staging');
  }

  /** Creates the directories if needed. */
  async create(): Promise<void> {
    for (const dir of [this.contentDir, this.metaDir, this.stagingDir]) await mkdir(dir, { recursive: true });
  }

  /** Physical location of the content of a (logical, already validated) store path. */
  contentPath(storePath: string): string {
    return join(this.contentDir, storePathBaseName(storePath, this.storeDir));
  }

  /** Physical location of a path's record. */
  recordPath(storePath: string): string {
    return join(this.metaDir, storePathBaseName(storePath, this.storeDir) + RECORD_SUFFIX);
  }

  /** The logical store path of a base name `<hash>-<name>`. */
  storePathOf(baseName: string): string {
    return `${this.storeDir}/${baseName}`;
  }

  /** A fresh, empty staging directory. */
  async newStagingDir(): Promise<string> {
    const dir = join(this.stagingDir, randomBytes(12).toString('hex'));
    await mkdir(dir);
    return dir;
  }

  /**
   * Removes leftovers in staging/: everything (call only when no import of this process
   * runs), or with `olderThanMs` only entries untouched for that long, which is what a
   * process may do while others (gateway replicas, build pods) stage on the same volume.
   */
  async cleanStaging(olderThanMs?: number): Promise<number> {
    const names = await readdir(this.stagingDir);
    let removed = 0;
    for (const name of names) {
      const dir = join(this.stagingDir, name);
      if (olderThanMs !== undefined) {
        const st = await lstat(dir).catch(() => undefined);
        if (!st || Date.now() - st.mtimeMs < olderThanMs) continue;
      }
      await removeTree(dir);
      removed++;
    }
    return removed;
  }

  /** Base names of the records in meta/ (temp files of interrupted writes excluded). */
  async recordBaseNames(): Promise<string[]> {
    const names = await readdir(this.metaDir);
    return names
      .filter((n) => n.endsWith(RECORD_SUFFIX) && !n.startsWith('.'))
      .map((n) => n.slice(0, -RECORD_SUFFIX.length));
  }

  /** Base names of the entries in store/. */
  async contentBaseNames(): Promise<string[]> {
    return (await readdir(this.contentDir)).filter((n) => !n.startsWith('.'));
  }
}
