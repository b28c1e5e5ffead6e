/**
 * Derivations sent whole with BuildDerivation (a remote builder's `--builders` hook): their
 * .drv is not in the store, so the builder reads them from a file. The file lies on the
 * store volume, under `<data>/derivations/`, because in cluster mode a build pod (and its
 * retries) read it from there; the NixBuild names it relative to the volume's root.
 *
 * Each gateway writes its own file (a random suffix), so one replica's clean-up never
 * removes a file another replica's NixBuild names. A file is removed when the last request
 * for its derivation here has ended (a pod retried after that, under keep-builds-running,
 * fails to read it, clearly); one left by a crash is removed once untouched for a day
 * (`cleanStale`).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { BasicDerivation } from '../../nix/protocol/types.js';
import { parseStorePath } from '../../nix/store-path.js';
import { basicDerivationText } from './basic-derivation.js';

export const DERIVATIONS_DIR = 'derivations';
const STALE_AFTER_MS = 24 * 60 * 60 * 1000;

export interface DerivationFile {
  /** Absolute path on this process's view of the volume. */
  readonly path: string;
  /** Relative to the volume's root (what a NixBuild's spec.derivationFile holds). */
  readonly relative: string;
}

export class DerivationFiles {
  private readonly dir: string;
  /** The file each .drv path is built from while a request for it runs here. */
  private readonly current = new Map<string, { file: DerivationFile; users: number }>();

  constructor(private readonly dataDir: string) {
    this.dir = join(dataDir, DERIVATIONS_DIR);
  }

  /** Writes `basic` for the duration of `use`, which sees it through `of(drvPath)`. */
  async with<T>(drvPath: string, basic: BasicDerivation, use: () => Promise<T>): Promise<T> {
    let entry = this.current.get(drvPath);
    if (entry) entry.users++;
    else {
      entry = { file: await this.write(drvPath, basic), users: 1 };
      this.current.set(drvPath, entry);
    }
    try {
      return await use();
    } finally {
      if (--entry.users === 0) {
        this.current.delete(drvPath);
        await rm(entry.file.path, { force: true });
      }
    }
  }

  /** The file `drvPath` is built from, when it was sent whole. */
  of(drvPath: string): DerivationFile | undefined {
    return this.current.get(drvPath)?.file;
  }

  /** Removes files untouched for a day (left by a crash); returns how many. */
  async cleanStale(now = Date.now()): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return 0;
    }
    let removed = 0;
    for (const name of names) {
      const file = join(this.dir, name);
      const st = await stat(file).catch(() => undefined);
      if (st && now - st.mtimeMs > STALE_AFTER_MS) {
        await rm(file, { force: true });
        removed++;
      }
    }
    return removed;
  }

  private async write(drvPath: string, basic: BasicDerivation): Promise<DerivationFile> {
    await mkdir(this.dir, { recursive: true });
    const { hashPart, name } = parseStorePath(drvPath);
    const base = `${hashPart}-${name.replace(/\.drv$/, '')}.${randomBytes(6).toString('hex')}.drv`;
    const path = join(this.dir, base);
    // Whole or absent: a pod never reads half a derivation.
    const temp = `${path}.tmp`;
    await writeFile(temp, basicDerivationText(drvPath, basic));
    await rename(temp, path);
    return { path, relative: relative(this.dataDir, path) };
  }
}
