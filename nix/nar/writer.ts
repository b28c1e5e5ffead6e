/**
 * NAR writer: the exact bytes of `nix-store --dump PATH` (`archive.cc dump`).
 *
 * `dumpPath` is an async generator, so it is pull-driven: nothing is read from disk
 * until the consumer asks for the next chunk, and a slow consumer (a socket, stdout)
 * slows the reading down. File contents are read in chunks of `CHUNK_SIZE`; small
 * tokens are batched into chunks of up to the same size.
 */
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { ErrorCode, NixFormatError } from '../errors.js';
import { Token, encodeLength, encodeToken, paddingFor } from './format.js';

/** Size of the chunks read from files and yielded to the consumer. */
export const CHUNK_SIZE = 64 * 1024;

const S_IXUSR = 0o100;

/** Collects small tokens and hands them out in chunks of up to `CHUNK_SIZE`. */
class TokenBatch {
  private parts: Uint8Array[] = [];
  private size = 0;

  add(bytes: Uint8Array): void {
    this.parts.push(bytes);
    this.size += bytes.length;
  }

  token(bytes: Uint8Array): void {
    this.add(encodeToken(bytes));
  }

  get full(): boolean {
    return this.size >= CHUNK_SIZE;
  }

  /** Everything batched so far as one chunk (or undefined if nothing), and reset. */
  take(): Uint8Array | undefined {
    if (this.size === 0) return undefined;
    const out = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    return out;
  }
}

/**
 * Serialise a file system object as NAR. Directory entries are sorted by their raw
 * name bytes (non-UTF-8 names work), a file is executable iff its owner-execute bit is
 * set, symlinks (also dangling ones) are stored by their target. Sockets, devices and
 * FIFOs throw `NAR_UNSUPPORTED_FILE_TYPE`; a file whose size changes while it is read
 * throws `NAR_FILE_CHANGED`. File system errors (ENOENT, EACCES…) propagate as is.
 */
export async function* dumpPath(fsPath: string | Buffer): AsyncGenerator<Uint8Array, void, undefined> {
  const batch = new TokenBatch();
  batch.token(Token.MAGIC);
  yield* dumpNode(toBuffer(fsPath), batch);
  const last = batch.take();
  if (last) yield last;
}

/** The NAR of a single regular file with the given contents (how flat files travel). */
export function narOfBytes(contents: Uint8Array, executable = false): Uint8Array {
  const parts = [Token.MAGIC, Token.OPEN, Token.TYPE, Token.REGULAR];
  if (executable) parts.push(Token.EXECUTABLE, Token.EMPTY);
  parts.push(Token.CONTENTS, contents, Token.CLOSE);
  return Buffer.concat(parts.map(encodeToken));
}

function toBuffer(p: string | Buffer): Buffer {
  return typeof p === 'string' ? Buffer.from(p) : p;
}

function joinPath(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, Buffer.from('/'), name]);
}

async function* dumpNode(path: Buffer, batch: TokenBatch): AsyncGenerator<Uint8Array, void, undefined> {
  const st = await lstat(path, { bigint: true });
  batch.token(Token.OPEN);
  batch.token(Token.TYPE);
  if (st.isFile()) {
    batch.token(Token.REGULAR);
    if ((Number(st.mode) & S_IXUSR) !== 0) {
      batch.token(Token.EXECUTABLE);
      batch.token(Token.EMPTY);
    }
    batch.token(Token.CONTENTS);
    batch.add(encodeLength(st.size));
    yield* dumpContents(path, st.size, batch);
    batch.add(new Uint8Array(paddingFor(st.size)));
  } else if (st.isSymbolicLink()) {
    batch.token(Token.SYMLINK);
    batch.token(Token.TARGET);
    batch.token(await readlink(path, { encoding: 'buffer' }));
  } else if (st.isDirectory()) {
    batch.token(Token.DIRECTORY);
    const names = await readdir(path, { encoding: 'buffer' });
    names.sort((a, b) => Buffer.compare(a, b));
    for (const name of names) {
      batch.token(Token.ENTRY);
      batch.token(Token.OPEN);
      batch.token(Token.NAME);
      batch.token(name);
      batch.token(Token.NODE);
      yield* dumpNode(joinPath(path, name), batch);
      batch.token(Token.CLOSE);
      if (batch.full) yield batch.take()!;
    }
  } else {
    throw new NixFormatError(
      ErrorCode.NAR_UNSUPPORTED_FILE_TYPE,
      `cannot archive '${path.toString()}': only regular files, directories and symlinks can be archived`,
      { path: path.toString() },
    );
  }
  batch.token(Token.CLOSE);
}

async function* dumpContents(
  path: Buffer,
  size: bigint,
  batch: TokenBatch,
): AsyncGenerator<Uint8Array, void, undefined> {
  const handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  try {
    let remaining = size;
    // The first file bytes share a chunk with the tokens before them when they fit.
    while (remaining > 0n) {
      const want = remaining < BigInt(CHUNK_SIZE) ? Number(remaining) : CHUNK_SIZE;
      // A fresh buffer per chunk: the consumer may keep the ones it was given.
      const buf = Buffer.allocUnsafe(want);
      let filled = 0;
      while (filled < want) {
        const { bytesRead } = await handle.read(buf, filled, want - filled, null);
        if (bytesRead === 0) throw fileChanged(path, size);
        filled += bytesRead;
      }
      remaining -= BigInt(want);
      batch.add(buf);
      yield batch.take()!;
    }
    const probe = Buffer.allocUnsafe(1);
    if ((await handle.read(probe, 0, 1, null)).bytesRead !== 0) throw fileChanged(path, size);
  } finally {
    await handle.close();
  }
}

function fileChanged(path: Buffer, size: bigint): NixFormatError {
  return new NixFormatError(
    ErrorCode.NAR_FILE_CHANGED,
    `file '${path.toString()}' changed size while it was being archived`,
    { path: path.toString(), expectedSize: size },
  );
}
