import { ErrorCode, NixFormatError } from '../errors.js';
import { type WireLimits, wireLimits } from './limits.js';

const EMPTY = new Uint8Array(0);
const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Lossy = new TextDecoder('utf-8');

/** Byte source: a Node Readable, an async generator, or a plain array of chunks. */
export type ByteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/**
 * Pull reader of Nix wire primitives (§2 of the protocol reference) over a byte source.
 *
 * It asks the source for the next chunk only when the current one is used up, so it never
 * holds more than one source chunk ahead; a slow consumer therefore pauses the source
 * (Node streams stop reading when their async iterator is not pulled).
 *
 * Returned byte arrays may be views into the source's chunks (no copy); sources must not
 * reuse their buffers (Node streams do not).
 */
export class WireReader {
  readonly limits: WireLimits;
  readonly #it: AsyncIterator<Uint8Array> | Iterator<Uint8Array>;
  #buf: Uint8Array = EMPTY;
  #pos = 0;
  #offset = 0;
  #ended = false;

  constructor(source: ByteSource, limits: Partial<WireLimits> = {}) {
    this.limits = wireLimits(limits);
    this.#it =
      Symbol.asyncIterator in source
        ? source[Symbol.asyncIterator]()
        : (source as Iterable<Uint8Array>)[Symbol.iterator]();
  }

  /** Bytes consumed so far (given-back bytes are subtracted). */
  get offset(): number {
    return this.#offset;
  }

  /** Bytes available without pulling from the source. */
  get buffered(): number {
    return this.#buf.length - this.#pos;
  }

  /** Pulls the next non-empty chunk; false at the end of the source. */
  async #pull(): Promise<boolean> {
    while (!this.#ended) {
      const r = await this.#it.next();
      if (r.done === true) {
        this.#ended = true;
        break;
      }
      const chunk = r.value;
      if (chunk.length > 0) {
        this.#buf = chunk;
        this.#pos = 0;
        return true;
      }
    }
    return false;
  }

  #eof(n: number, field?: string): NixFormatError {
    return new NixFormatError(
      ErrorCode.WIRE_UNEXPECTED_EOF,
      `unexpected end of stream: needed ${n} more byte(s)${field === undefined ? '' : ` for ${field}`}`,
      { offset: this.#offset, needed: n, field },
    );
  }

  /** True if the source is exhausted and nothing is buffered (a clean end at a message boundary). */
  async atEof(): Promise<boolean> {
    if (this.#pos < this.#buf.length) return false;
    return !(await this.#pull());
  }

  /** Alias of {@link atEof}. */
  peekEof(): Promise<boolean> {
    return this.atEof();
  }

  /** Exactly `n` bytes (n must already have been checked against a limit). */
  async readExact(n: number, field?: string): Promise<Uint8Array> {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new NixFormatError(ErrorCode.WIRE_INTEGER_RANGE, `invalid read length ${n}`, { field });
    }
    const avail = this.#buf.length - this.#pos;
    if (n <= avail) {
      const out = this.#buf.subarray(this.#pos, this.#pos + n);
      this.#pos += n;
      this.#offset += n;
      return out;
    }
    // Spans chunks: collect pieces as they arrive (memory grows only with real data).
    const pieces: Uint8Array[] = [];
    let need = n;
    if (avail > 0) {
      pieces.push(this.#buf.subarray(this.#pos));
      this.#pos = this.#buf.length;
      this.#offset += avail;
      need -= avail;
    }
    while (need > 0) {
      if (!(await this.#pull())) throw this.#eof(need, field);
      const take = Math.min(need, this.#buf.length);
      pieces.push(this.#buf.subarray(0, take));
      this.#pos = take;
      this.#offset += take;
      need -= take;
    }
    return concat(pieces, n);
  }

  /**
   * Whatever is buffered (pulling one chunk if nothing is), up to `max` bytes; for
   * pass-through of data whose end is found by parsing it. Throws at end of stream.
   */
  async readChunk(max: number, field?: string): Promise<Uint8Array> {
    if (this.#pos >= this.#buf.length && !(await this.#pull())) throw this.#eof(1, field);
    const take = Math.min(max, this.#buf.length - this.#pos);
    const out = this.#buf.subarray(this.#pos, this.#pos + take);
    this.#pos += take;
    this.#offset += take;
    return out;
  }

  /** Gives back bytes that were read but not used; they are read again next. */
  unread(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const b = this.#buf;
    const sameTail =
      bytes.buffer === b.buffer &&
      this.#pos >= bytes.length &&
      bytes.byteOffset + bytes.length === b.byteOffset + this.#pos;
    if (sameTail) {
      this.#pos -= bytes.length;
    } else {
      const rest = b.subarray(this.#pos);
      const merged = new Uint8Array(bytes.length + rest.length);
      merged.set(bytes, 0);
      merged.set(rest, bytes.length);
      this.#buf = merged;
      this.#pos = 0;
    }
    this.#offset -= bytes.length;
  }

  async readU64(field?: string): Promise<bigint> {
    let bytes: Uint8Array;
    if (this.#buf.length - this.#pos >= 8) {
      bytes = this.#buf.subarray(this.#pos, this.#pos + 8);
      this.#pos += 8;
      this.#offset += 8;
    } else {
      bytes = await this.readExact(8, field);
    }
    return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  }

  /** A u64 that must be ≤ `max` (a safe integer), as a number. */
  async readInt(max: number = Number.MAX_SAFE_INTEGER, field?: string): Promise<number> {
    const at = this.#offset;
    const v = await this.readU64(field);
    if (v > BigInt(max)) {
      throw new NixFormatError(ErrorCode.WIRE_INTEGER_RANGE, `integer ${v} out of range (max ${max})`, {
        offset: at,
        field,
        value: v,
        limit: max,
      });
    }
    return Number(v);
  }

  /** Nix reads any non-zero value as true. */
  async readBool(field?: string): Promise<boolean> {
    return (await this.readU64(field)) !== 0n;
  }

  /** A length prefix checked against `limit` before anything is read or allocated. */
  async readLength(limit: number, field?: string): Promise<number> {
    const at = this.#offset;
    const len = await this.readU64(field);
    if (len > BigInt(limit)) {
      throw new NixFormatError(ErrorCode.WIRE_LENGTH_LIMIT, `length ${len} exceeds the limit ${limit}`, {
        offset: at,
        field,
        length: len,
        limit,
      });
    }
    return Number(len);
  }

  /** u64 length, bytes, zero padding to a multiple of 8 (non-zero padding is an error). */
  async readBytes(limit: number = this.limits.maxString, field?: string): Promise<Uint8Array> {
    const len = await this.readLength(limit, field);
    const data = await this.readExact(len, field);
    const pad = (8 - (len % 8)) % 8;
    if (pad > 0) {
      const at = this.#offset;
      const padding = await this.readExact(pad, field);
      if (padding.some((x) => x !== 0)) {
        throw new NixFormatError(ErrorCode.WIRE_NONZERO_PADDING, 'non-zero padding after a string', {
          offset: at,
          field,
        });
      }
    }
    return data;
  }

  /** A UTF-8 string; invalid UTF-8 is WIRE_BAD_UTF8 unless `lossy` (log text). */
  async readString(limit: number = this.limits.maxString, field?: string, lossy = false): Promise<string> {
    const at = this.#offset;
    const bytes = await this.readBytes(limit, field);
    if (lossy) return utf8Lossy.decode(bytes);
    try {
      return utf8.decode(bytes);
    } catch {
      throw new NixFormatError(ErrorCode.WIRE_BAD_UTF8, 'string is not valid UTF-8', { offset: at, field });
    }
  }

  /** u64 count (≤ maxCount) then that many strings. */
  async readStringList(
    limit: number = this.limits.maxString,
    maxCount: number = this.limits.maxListCount,
    field?: string,
  ): Promise<string[]> {
    const n = await this.readLength(maxCount, field);
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(await this.readString(limit, field));
    return out;
  }

  /** Like {@link readStringList}; Nix writes sets sorted, but order is not relied upon. */
  async readStringSet(
    limit: number = this.limits.maxString,
    maxCount: number = this.limits.maxListCount,
    field?: string,
  ): Promise<Set<string>> {
    return new Set(await this.readStringList(limit, maxCount, field));
  }

  /** u64 count then key/value string pairs. */
  async readStringMap(
    keyLimit: number = this.limits.maxString,
    valueLimit: number = this.limits.maxString,
    maxCount: number = this.limits.maxListCount,
    field?: string,
  ): Promise<Map<string, string>> {
    const n = await this.readLength(maxCount, field);
    const out = new Map<string, string>();
    for (let i = 0; i < n; i++) {
      const k = await this.readString(keyLimit, field);
      out.set(k, await this.readString(valueLimit, field));
    }
    return out;
  }
}

function concat(pieces: Uint8Array[], total: number): Uint8Array {
  if (pieces.length === 1 && pieces[0] !== undefined) return pieces[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
