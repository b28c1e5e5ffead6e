import { ErrorCode, NixFormatError } from '../errors.js';
import { encodeU64 } from './encode.js';
import type { WireLimits } from './limits.js';
import type { WireReader } from './reader.js';
import type { WireWriter } from './writer.js';

/**
 * Reader side of a framed stream (`FramedSource`, §2): `u64 len` + `len` raw bytes (no
 * padding), repeated, terminated by `len == 0`.
 *
 * Iterating yields the payload in pieces as they arrive (a frame is never buffered as a
 * whole). The state lives in this object, not in a generator, so after a consumer stops
 * early (`break`, an exception) {@link drain} can still skip to the terminator and keep
 * the connection in sync.
 */
export class FramedSource implements AsyncIterableIterator<Uint8Array> {
  readonly #reader: WireReader;
  readonly #maxFrame: number;
  #remaining = 0;
  #done = false;
  /** The error that broke the stream: the next frame's position is unknown after it. */
  #failure: Error | undefined;
  /** Payload bytes yielded or drained so far. */
  payloadBytes = 0;
  /** Frames read so far (not counting the terminator). */
  frames = 0;

  constructor(reader: WireReader, limits: Pick<WireLimits, 'maxFrame'> = reader.limits) {
    this.#reader = reader;
    this.#maxFrame = limits.maxFrame;
  }

  /** True once the zero-length terminator has been read. */
  get done(): boolean {
    return this.#done;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array, undefined>> {
    if (this.#failure !== undefined) throw this.#failure;
    try {
      return await this.#next();
    } catch (err) {
      this.#failure = err instanceof Error ? err : new Error(String(err));
      throw this.#failure;
    }
  }

  async #next(): Promise<IteratorResult<Uint8Array, undefined>> {
    if (this.#done) return { done: true, value: undefined };
    if (this.#remaining === 0) {
      const len = await this.#reader.readLength(this.#maxFrame, 'frame length');
      if (len === 0) {
        this.#done = true;
        return { done: true, value: undefined };
      }
      this.frames++;
      this.#remaining = len;
    }
    const chunk = await this.#reader.readChunk(this.#remaining, 'frame');
    this.#remaining -= chunk.length;
    this.payloadBytes += chunk.length;
    return { done: false, value: chunk };
  }

  /** Stopping early does not end the stream: call {@link drain} to resynchronise. */
  return(): Promise<IteratorResult<Uint8Array, undefined>> {
    return Promise.resolve({ done: true, value: undefined });
  }

  /** Reads and discards the rest of the stream, terminator included; returns the bytes skipped. */
  async drain(): Promise<number> {
    let skipped = 0;
    for (;;) {
      const r = await this.next();
      if (r.done === true) return skipped;
      skipped += r.value.length;
    }
  }
}

export function readFramed(reader: WireReader, limits?: Pick<WireLimits, 'maxFrame'>): FramedSource {
  return new FramedSource(reader, limits);
}

export function drainFramed(source: FramedSource): Promise<number> {
  return source.drain();
}

/** Checks that a framed payload was consumed completely (for parsers of structured payloads). */
export function assertFramedDone(source: FramedSource, what: string): void {
  if (!source.done) {
    throw new NixFormatError(ErrorCode.WIRE_FRAMING, `${what}: data left in the framed stream`, {
      field: what,
    });
  }
}

/** Default frame size, as Nix's FramedSink (32 KiB). */
export const DEFAULT_FRAME_SIZE = 32 * 1024;

/** Writer side: each chunk becomes ≥1 frame of at most `frameSize` bytes; {@link end} writes the terminator. */
export class FramedSink {
  readonly #writer: WireWriter;
  readonly #frameSize: number;
  #ended = false;

  constructor(writer: WireWriter, frameSize: number = DEFAULT_FRAME_SIZE) {
    this.#writer = writer;
    this.#frameSize = frameSize;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#ended) throw new NixFormatError(ErrorCode.WIRE_CLOSED, 'framed sink already ended');
    for (let at = 0; at < chunk.length; at += this.#frameSize) {
      const piece = chunk.subarray(at, at + this.#frameSize);
      await this.#writer.write(encodeU64(piece.length));
      await this.#writer.write(piece);
    }
  }

  async end(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    await this.#writer.write(encodeU64(0));
  }
}

/** Pure helper: the framed encoding of `chunks` including the terminator. */
export function encodeFramed(chunks: Iterable<Uint8Array>): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 8;
  for (const c of chunks) {
    if (c.length === 0) continue;
    parts.push(encodeU64(c.length), c);
    total += 8 + c.length;
  }
  parts.push(encodeU64(0));
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
