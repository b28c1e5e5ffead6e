/**
 * Hashes as Nix prints and parses them: md5/sha1/sha256/sha512 in base16, Nix's own
 * base32, base64 and SRI; plus the XOR-fold `compressHash` that store paths use.
 * Reference: protocol/README.md §11, upstream `libutil/hash.cc`.
 */
import { createHash, type Hash as NodeHash } from 'node:crypto';
import { ErrorCode, NixFormatError } from './errors.js';

export const HASH_ALGOS = ['md5', 'sha1', 'sha256', 'sha512'] as const;
export type HashAlgo = (typeof HASH_ALGOS)[number];

/** Digest size in bytes of each algorithm. */
export const HASH_SIZE: Readonly<Record<HashAlgo, number>> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

export type HashEncoding = 'base16' | 'base32' | 'base64' | 'sri';

export function isHashAlgo(s: string): s is HashAlgo {
  return (HASH_ALGOS as readonly string[]).includes(s);
}

export function parseHashAlgo(s: string): HashAlgo {
  if (!isHashAlgo(s)) {
    throw new NixFormatError(ErrorCode.HASH_UNKNOWN_ALGO, `unknown hash algorithm '${s}'`, { algo: s });
  }
  return s;
}

// Nix base32: no e, o, u, t, to avoid accidental words.
const BASE32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';
const BASE32_VALUE: ReadonlyMap<string, number> = new Map([...BASE32_ALPHABET].map((c, i) => [c, i]));

export function isNixBase32Char(c: string): boolean {
  return BASE32_VALUE.has(c);
}

/** Length in characters of the Nix base32 form of `size` bytes. */
export function base32Length(size: number): number {
  return Math.ceil((size * 8) / 5);
}

/**
 * The bytes read as one little-endian integer, printed most significant digit first.
 * Digit k (from the right) holds bits 5k..5k+4.
 */
export function encodeNixBase32(bytes: Uint8Array): string {
  const len = base32Length(bytes.length);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const bit = n * 5;
    const i = bit >> 3;
    const j = bit & 7;
    const lo = (bytes[i] ?? 0) >> j;
    const hi = j > 3 && i + 1 < bytes.length ? (bytes[i + 1] ?? 0) << (8 - j) : 0;
    out += BASE32_ALPHABET[(lo | hi) & 0x1f];
  }
  return out;
}

/** Inverse of `encodeNixBase32`; rejects foreign characters and bits beyond `size` bytes. */
export function decodeNixBase32(text: string, size: number): Uint8Array {
  if (text.length !== base32Length(size)) {
    throw new NixFormatError(
      ErrorCode.HASH_BAD_LENGTH,
      `base32 string has ${text.length} characters, expected ${base32Length(size)}`,
      {
        length: text.length,
      },
    );
  }
  const bytes = new Uint8Array(size);
  for (let n = 0; n < text.length; n++) {
    const c = text[text.length - 1 - n] as string;
    const digit = BASE32_VALUE.get(c);
    if (digit === undefined) {
      throw new NixFormatError(ErrorCode.HASH_BAD_ENCODING, `invalid base32 character '${c}'`, {
        offset: text.length - 1 - n,
      });
    }
    const bit = n * 5;
    const i = bit >> 3;
    const j = bit & 7;
    bytes[i] = (bytes[i] ?? 0) | ((digit << j) & 0xff);
    const carry = digit >> (8 - j);
    if (i + 1 < size) {
      bytes[i + 1] = (bytes[i + 1] ?? 0) | carry;
    } else if (carry !== 0) {
      throw new NixFormatError(
        ErrorCode.HASH_BAD_ENCODING,
        `base32 string '${text}' has bits beyond ${size} bytes`,
        {},
      );
    }
  }
  return bytes;
}

/** XOR-fold `bytes` into `size` bytes (store path hashes fold sha256 to 20 bytes). */
export function compressHash(bytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  bytes.forEach((b, i) => {
    out[i % size] = (out[i % size] ?? 0) ^ b;
  });
  return out;
}

export class Hash {
  constructor(
    readonly algo: HashAlgo,
    readonly bytes: Uint8Array,
  ) {
    if (bytes.length !== HASH_SIZE[algo]) {
      throw new NixFormatError(
        ErrorCode.HASH_BAD_LENGTH,
        `${algo} hash must be ${HASH_SIZE[algo]} bytes, got ${bytes.length}`,
        {
          algo,
        },
      );
    }
  }

  toBase16(): string {
    return Buffer.from(this.bytes).toString('hex');
  }

  toBase32(): string {
    return encodeNixBase32(this.bytes);
  }

  toBase64(): string {
    return Buffer.from(this.bytes).toString('base64');
  }

  toSri(): string {
    return `${this.algo}-${this.toBase64()}`;
  }

  /** Bare digest in the given encoding (SRI always carries the algorithm). */
  encode(encoding: HashEncoding): string {
    switch (encoding) {
      case 'base16':
        return this.toBase16();
      case 'base32':
        return this.toBase32();
      case 'base64':
        return this.toBase64();
      case 'sri':
        return this.toSri();
    }
  }

  /** `<algo>:<digest>` as Nix prints typed hashes (base32 by default, as in `sha256:0h2c…`). */
  toTyped(encoding: Exclude<HashEncoding, 'sri'> = 'base32'): string {
    return `${this.algo}:${this.encode(encoding)}`;
  }

  equals(other: Hash): boolean {
    return this.algo === other.algo && Buffer.from(this.bytes).equals(other.bytes);
  }

  toString(): string {
    return this.toTyped();
  }
}

/** Incremental hashing for streams: `update` chunks, then `digest` once. */
export class Hasher {
  private readonly inner: NodeHash;
  constructor(readonly algo: HashAlgo) {
    this.inner = createHash(algo);
  }
  update(chunk: Uint8Array | string): this {
    this.inner.update(chunk);
    return this;
  }
  digest(): Hash {
    return new Hash(this.algo, this.inner.digest());
  }
}

export function hashOf(algo: HashAlgo, data: Uint8Array | string): Hash {
  return new Hasher(algo).update(data).digest();
}

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeDigest(algo: HashAlgo, digest: string, original: string): Hash {
  const size = HASH_SIZE[algo];
  if (digest.length === size * 2) {
    if (!/^[0-9a-fA-F]*$/.test(digest)) {
      throw new NixFormatError(ErrorCode.HASH_BAD_ENCODING, `invalid base16 hash '${original}'`, {
        hash: original,
      });
    }
    return new Hash(algo, Buffer.from(digest, 'hex'));
  }
  if (digest.length === base32Length(size)) {
    try {
      return new Hash(algo, decodeNixBase32(digest, size));
    } catch (err) {
      if (err instanceof NixFormatError) {
        throw new NixFormatError(err.code, `invalid base32 hash '${original}': ${err.message}`, {
          hash: original,
        });
      }
      throw err;
    }
  }
  if (digest.length === Math.ceil(size / 3) * 4 && BASE64_RE.test(digest)) {
    const bytes = Buffer.from(digest, 'base64');
    if (bytes.length === size && bytes.toString('base64') === digest) return new Hash(algo, bytes);
  }
  throw new NixFormatError(
    ErrorCode.HASH_BAD_LENGTH,
    `hash '${original}' has wrong length or encoding for ${algo}`,
    {
      hash: original,
      algo,
    },
  );
}

/**
 * Parses every form Nix accepts: SRI `sha256-<base64>`, typed `sha256:<digest>`, or a bare
 * digest (base16, Nix base32 or base64, told apart by length) when `algo` is given.
 */
export function parseHash(text: string, algo?: HashAlgo): Hash {
  const colon = text.indexOf(':');
  const dash = text.indexOf('-');
  if (colon >= 0) {
    const parsedAlgo = parseHashAlgo(text.slice(0, colon));
    if (algo !== undefined && algo !== parsedAlgo) {
      throw new NixFormatError(ErrorCode.HASH_UNKNOWN_ALGO, `hash '${text}' should have type '${algo}'`, {
        hash: text,
      });
    }
    return decodeDigest(parsedAlgo, text.slice(colon + 1), text);
  }
  if (dash >= 0 && isHashAlgo(text.slice(0, dash))) {
    const parsedAlgo = text.slice(0, dash) as HashAlgo;
    if (algo !== undefined && algo !== parsedAlgo) {
      throw new NixFormatError(ErrorCode.HASH_UNKNOWN_ALGO, `hash '${text}' should have type '${algo}'`, {
        hash: text,
      });
    }
    const digest = text.slice(dash + 1);
    const bytes = Buffer.from(digest, 'base64');
    if (!BASE64_RE.test(digest) || bytes.length !== HASH_SIZE[parsedAlgo]) {
      throw new NixFormatError(ErrorCode.HASH_BAD_ENCODING, `invalid SRI hash '${text}'`, { hash: text });
    }
    return new Hash(parsedAlgo, bytes);
  }
  if (algo === undefined) {
    throw new NixFormatError(ErrorCode.HASH_UNKNOWN_ALGO, `hash '${text}' does not include a type`, {
      hash: text,
    });
  }
  return decodeDigest(algo, text, text);
}
