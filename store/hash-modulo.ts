/**
 * Nix's `HashModuloSink` (`references.cc`): the hash of a byte stream in which every
 * occurrence of `modulus` (a path's own 32-character hash part) is replaced by NUL
 * bytes, followed by `|<offset>` for each occurrence. Content addresses of paths that
 * refer to themselves are computed this way (the path is not known while hashing);
 * without occurrences it equals the plain hash. Nix checks CA imports with it.
 */
import { Hasher, type Hash, type HashAlgo } from '../nix/hash.js';

export class HashModulo {
  private readonly hasher: Hasher;
  private readonly pattern: Buffer;
  private readonly zeros: Buffer;
  /** Tail not yet hashed: it may hold the start of an occurrence. */
  private prev: Buffer = Buffer.alloc(0);
  /** Bytes hashed so far (offsets of occurrences are absolute). */
  private position = 0;
  private readonly matches: number[] = [];

  constructor(algo: HashAlgo, modulus: string) {
    this.hasher = new Hasher(algo);
    this.pattern = Buffer.from(modulus);
    this.zeros = Buffer.alloc(this.pattern.length);
  }

  update(chunk: Uint8Array): this {
    if (chunk.length === 0) return this;
    const s = Buffer.concat([this.prev, chunk]);
    for (let j = s.indexOf(this.pattern); j >= 0; j = s.indexOf(this.pattern, j + this.pattern.length)) {
      this.matches.push(this.position + j);
      this.zeros.copy(s, j);
    }
    const keep = Math.min(s.length, this.pattern.length - 1);
    const emit = s.length - keep;
    this.hasher.update(s.subarray(0, emit));
    this.position += emit;
    this.prev = Buffer.from(s.subarray(emit));
    return this;
  }

  digest(): Hash {
    this.hasher.update(this.prev);
    this.position += this.prev.length;
    this.prev = Buffer.alloc(0);
    for (const pos of this.matches) this.hasher.update(`|${pos}`);
    return this.hasher.digest();
  }
}
