/**
 * Wraps the NAR (or file) source of an import: counts the bytes consumed, can hash
 * them with a second algorithm on the way through, and can be drained to its end.
 *
 * Draining is how the store keeps the caller's stream in sync: an import that fails
 * (hash mismatch, malformed NAR, missing reference…) first reads the rest of its
 * source, then throws. The protocol layer hands the store a source that ends where
 * the NAR ends (framed, or bounded by narSize), so after the throw the connection is
 * positioned at the next message. Consumers that stop early (`for await … break`,
 * an exception inside restoreNar) do not close the underlying iterator: `return()`
 * is a no-op, so `drain()` can continue where they stopped.
 */
import { Hasher, type Hash, type HashAlgo } from '../nix/hash.js';
import { HashModulo } from './hash-modulo.js';

export class SourceTap implements AsyncIterable<Uint8Array> {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private hasher: Hasher | HashModulo | undefined;
  private bytes = 0;
  private ended = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /**
   * Also hash everything with `algo` (modulo a path's hash part, see hash-modulo.ts, if
   * `modulus` is given); call before the first byte is read.
   */
  hashAlso(algo: HashAlgo, modulus?: string): void {
    if (this.bytes > 0 || this.ended) throw new Error('SourceTap.hashAlso called after reading began');
    this.hasher = modulus === undefined ? new Hasher(algo) : new HashModulo(algo, modulus);
  }

  /** Bytes taken from the source so far. */
  get consumed(): number {
    return this.bytes;
  }

  /** True once the source has ended. */
  get exhausted(): boolean {
    return this.ended;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: () => this.next(),
      return: () => Promise.resolve({ done: true, value: undefined }),
    };
  }

  /** The extra hash of everything consumed (only meaningful once exhausted). */
  extraHash(): Hash | undefined {
    return this.hasher?.digest();
  }

  /** Reads and discards the rest of the source. */
  async drain(): Promise<void> {
    while (!this.ended) await this.next();
  }

  private async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.ended) return { done: true, value: undefined };
    const result = await this.iterator.next();
    if (result.done) {
      this.ended = true;
    } else {
      this.bytes += result.value.length;
      this.hasher?.update(result.value);
    }
    return result;
  }
}
