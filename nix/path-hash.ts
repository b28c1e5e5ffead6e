/**
 * Hashing filesystem objects the way Nix does: a path by its NAR serialisation
 * (`nix hash path`), a file by its contents (`nix hash file`). Both stream.
 */
import { createReadStream } from 'node:fs';
import { Hasher, type Hash, type HashAlgo } from './hash.js';
import { dumpPath } from './nar/writer.js';

export interface PathHash {
  readonly hash: Hash;
  /** Bytes hashed: the NAR size for `hashPath`, the file size for `hashFile`. */
  readonly size: number;
}

async function hashStream(algo: HashAlgo, source: AsyncIterable<Uint8Array | string>): Promise<PathHash> {
  const hasher = new Hasher(algo);
  let size = 0;
  for await (const chunk of source) {
    hasher.update(chunk);
    size += chunk.length;
  }
  return { hash: hasher.digest(), size };
}

/** Hash of the NAR of `fsPath` (what `nix hash path` and recursive ingestion use). */
export function hashPath(fsPath: string, algo: HashAlgo = 'sha256'): Promise<PathHash> {
  return hashStream(algo, dumpPath(fsPath));
}

/** Hash of the contents of the regular file `fsPath` (flat ingestion). */
export function hashFile(fsPath: string, algo: HashAlgo = 'sha256'): Promise<PathHash> {
  return hashStream(algo, createReadStream(fsPath) as AsyncIterable<Buffer>);
}
