/**
 * Reference scanning (`references.cc`, protocol reference §11): which of a set of
 * 32-character store path hash parts occur anywhere in a byte stream (a NAR: file
 * contents, symlink targets and names alike).
 *
 * Like Nix, the scan looks at 32-byte windows made only of Nix base32 characters and
 * looks each one up in a set; a window with a non-base32 byte at position j lets the
 * scan skip j + 1 bytes. The last 31 bytes of each chunk are kept so that a hash split
 * across chunks is found too.
 */
import { ErrorCode, NixFormatError } from './errors.js';

const HASH_LENGTH = 32;
const BASE32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

/** For each byte: 1 + its base32 digit value, or 0 if it is not a base32 character. */
const DIGIT = new Uint8Array(256);
for (let i = 0; i < BASE32_ALPHABET.length; i++) DIGIT[BASE32_ALPHABET.charCodeAt(i)] = i + 1;

/** Index of a window's first four digits (20 bits) in the prefix filter. */
function prefixKey(bytes: Uint8Array, i: number): number {
  return (
    ((DIGIT[bytes[i]!]! - 1) << 15) |
    ((DIGIT[bytes[i + 1]!]! - 1) << 10) |
    ((DIGIT[bytes[i + 2]!]! - 1) << 5) |
    (DIGIT[bytes[i + 3]!]! - 1)
  );
}

export class ReferenceScanner {
  /** Hash parts not seen yet; a found one moves to `seen` and is no longer looked up. */
  private readonly pending = new Set<string>();
  private readonly seen = new Set<string>();
  /** One bit per 4-digit prefix of a pending hash: most windows are rejected without a string. */
  private readonly prefixes = new Uint32Array(1 << 15);
  /** The last up to 31 bytes of the stream so far. */
  private tail = new Uint8Array(0);

  constructor(hashParts: Iterable<string>) {
    for (const part of hashParts) {
      if (part.length !== HASH_LENGTH || ![...part].every((c) => BASE32_ALPHABET.includes(c))) {
        throw new NixFormatError(ErrorCode.STORE_PATH_INVALID, `'${part}' is not a store path hash part`, {
          hashPart: part,
        });
      }
      this.pending.add(part);
      const key = prefixKey(Buffer.from(part, 'latin1'), 0);
      this.prefixes[key >>> 5]! |= 1 << (key & 31);
    }
  }

  update(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.pending.size > 0) {
      if (this.tail.length > 0) {
        // Windows that start in the tail and end in this chunk.
        const head = chunk.subarray(0, HASH_LENGTH - 1);
        const joined = new Uint8Array(this.tail.length + head.length);
        joined.set(this.tail);
        joined.set(head, this.tail.length);
        this.search(joined);
      }
      this.search(chunk);
    }
    this.keepTail(chunk);
  }

  /** The hash parts found so far. */
  found(): Set<string> {
    return new Set(this.seen);
  }

  private search(bytes: Uint8Array): void {
    let i = 0;
    outer: while (i + HASH_LENGTH <= bytes.length && this.pending.size > 0) {
      for (let j = HASH_LENGTH - 1; j >= 0; j--) {
        if (DIGIT[bytes[i + j]!] === 0) {
          i += j + 1;
          continue outer;
        }
      }
      const key = prefixKey(bytes, i);
      if ((this.prefixes[key >>> 5]! & (1 << (key & 31))) !== 0) {
        const window = latin1(bytes, i);
        if (this.pending.delete(window)) this.seen.add(window);
      }
      i++;
    }
  }

  private keepTail(chunk: Uint8Array): void {
    const keep = HASH_LENGTH - 1;
    if (chunk.length >= keep) {
      this.tail = chunk.slice(chunk.length - keep);
      return;
    }
    const joined = new Uint8Array(Math.min(keep, this.tail.length + chunk.length));
    const fromTail = joined.length - chunk.length;
    joined.set(this.tail.subarray(this.tail.length - fromTail));
    joined.set(chunk, fromTail);
    this.tail = joined;
  }
}

function latin1(bytes: Uint8Array, start: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, HASH_LENGTH).toString('latin1');
}
