/**
 * Restore a NAR to the file system, like `nix-store --restore DEST`, computing the
 * narHash (sha256) and narSize of the exact bytes as it goes.
 *
 * Safety: `dest` must not exist. Every file, directory and symlink is created with an
 * exclusive flag (`O_EXCL`/`mkdir`/`symlink` fail on an existing name) and files are
 * opened with `O_NOFOLLOW`, so nothing is ever written through a symlink. The parser
 * guarantees entry names are unique, sorted and free of `/`, `.`, `..` and NUL, so
 * every parent directory on a path was created by this restore as a real directory.
 * (Another process racing to replace those directories is outside this model.)
 *
 * Modes follow `nix-store --restore`: directories 0777, files 0666, executables 0777,
 * all minus the process umask.
 *
 * On any error (invalid NAR, trailing data, I/O error) everything created under
 * `dest` is removed before the error is rethrown: the caller sees all or nothing.
 * If `dest` already existed it is left alone and `NAR_UNSAFE_RESTORE` is thrown.
 */
import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, rm, symlink, type FileHandle } from 'node:fs/promises';
import { ErrorCode, NixFormatError } from '../errors.js';
import { describePath } from './format.js';
import { NarParser, type NarEvent, type NarLimits, type NarPath } from './parser.js';

export interface RestoreOptions {
  readonly limits?: Partial<NarLimits>;
}

export interface RestoreResult {
  /** sha256 of the NAR bytes. */
  readonly narHash: Uint8Array;
  /** Length of the NAR in bytes. */
  readonly narSize: number;
}

const CREATE_FILE = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

export async function restoreNar(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  dest: string,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const restorer = new Restorer(Buffer.from(dest));
  const parser = new NarParser(options.limits);
  const hash = createHash('sha256');
  try {
    for await (const chunk of source) {
      if (chunk.length === 0) continue;
      const { events, consumed } = parser.push(chunk);
      hash.update(consumed === chunk.length ? chunk : chunk.subarray(0, consumed));
      for (const event of events) await restorer.apply(event);
      if (consumed < chunk.length) {
        throw new NixFormatError(
          ErrorCode.NAR_TRAILING_DATA,
          `data after the end of the NAR at offset ${parser.offset}`,
          { offset: parser.offset },
        );
      }
    }
    parser.end();
  } catch (err) {
    await restorer.abort();
    throw err;
  }
  return { narHash: new Uint8Array(hash.digest()), narSize: parser.offset };
}

/**
 * File contents are collected into writes of this size: NAR chunks from the wire are
 * 8–24 KiB, and one awaited write per chunk made uploads syscall-bound (bench/README.md).
 */
const WRITE_BUFFER_SIZE = 1 << 20;

class Restorer {
  private file: FileHandle | undefined;
  private readonly pending = Buffer.allocUnsafe(WRITE_BUFFER_SIZE);
  private pendingLength = 0;
  private createdRoot = false;

  constructor(private readonly dest: Buffer) {}

  private async flush(): Promise<void> {
    if (this.pendingLength === 0) return;
    await writeAll(this.file!, this.pending.subarray(0, this.pendingLength));
    this.pendingLength = 0;
  }

  async apply(event: NarEvent): Promise<void> {
    switch (event.type) {
      case 'directory':
        await this.create(event.path, () => mkdir(this.fsPath(event.path), 0o777));
        return;
      case 'file':
        this.file = await this.create(event.path, () =>
          open(this.fsPath(event.path), CREATE_FILE, event.executable ? 0o777 : 0o666),
        );
        return;
      case 'data': {
        const chunk = event.chunk;
        if (this.pendingLength + chunk.length > WRITE_BUFFER_SIZE) await this.flush();
        if (chunk.length >= WRITE_BUFFER_SIZE) await writeAll(this.file!, chunk);
        else {
          this.pending.set(chunk, this.pendingLength);
          this.pendingLength += chunk.length;
        }
        return;
      }
      case 'fileEnd': {
        await this.flush();
        const file = this.file!;
        this.file = undefined;
        await file.close();
        return;
      }
      case 'symlink':
        if (event.target.length === 0 || event.target.includes(0)) {
          throw new NixFormatError(ErrorCode.NAR_UNSAFE_RESTORE, 'symlink target is empty or contains NUL', {
            path: describePath(event.path),
          });
        }
        await this.create(event.path, () => symlink(Buffer.from(event.target), this.fsPath(event.path)));
        return;
      case 'directoryEnd':
        return;
    }
  }

  /** Remove everything this restore created (only if it created `dest`). */
  async abort(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    await file?.close().catch(() => undefined);
    // rm does not follow symlinks: it removes the links, never their targets.
    if (this.createdRoot) await rm(this.dest, { recursive: true, force: true });
  }

  private async create<T>(path: NarPath, make: () => Promise<T>): Promise<T> {
    try {
      const result = await make();
      if (path.length === 0) this.createdRoot = true;
      return result;
    } catch (err) {
      // Duck-typed: system errors may come from another realm (e.g. Jest's VM modules).
      if (typeof err === 'object' && err !== null && 'code' in err && err.code === 'EEXIST') {
        const where = path.length === 0 ? `destination '${this.dest.toString()}'` : `'${describePath(path)}'`;
        throw new NixFormatError(
          ErrorCode.NAR_UNSAFE_RESTORE,
          `refusing to restore: ${where} already exists`,
          {
            path: describePath(path),
            dest: this.dest.toString(),
          },
        );
      }
      throw err;
    }
  }

  private fsPath(path: NarPath): Buffer {
    const parts: Uint8Array[] = [this.dest];
    for (const name of path) parts.push(SLASH, name);
    return Buffer.concat(parts);
  }
}

const SLASH = Buffer.from('/');

async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await file.write(bytes, written);
    written += bytesWritten;
  }
}
