/**
 * In-band NARs (NarFromPath and serve DumpStorePath replies, serve AddToStoreNar,
 * AddMultipleToStore entries, AddToStore `fixed:r:` payloads): nothing marks their end
 * except the NAR grammar, so the bytes are fed to a NarParser until it is done and the
 * bytes after the NAR are given back to the reader.
 */
import { ErrorCode, NixFormatError } from '../errors.js';
import { type NarEvent, type NarLimits, NarParser } from '../nar/parser.js';
import type { WireReader } from '../wire/reader.js';

export interface NarFromWireOptions {
  readonly narLimits?: Partial<NarLimits>;
  /** Largest chunk yielded (default 64 KiB). */
  readonly maxChunk?: number;
  /** If given, the NAR must be exactly this long (serve AddToStoreNar's narSize). */
  readonly expectedSize?: number;
  /** Receives the parser's events (listing, file data views). */
  readonly onEvents?: (events: readonly NarEvent[]) => void;
}

export interface NarFromWireResult {
  readonly size: number;
}

/**
 * Yields the raw bytes of the NAR at the reader's position, in order, as they arrive
 * (views into the reader's chunks: copy or consume them before pulling the next one if
 * the source reuses buffers). Returns the NAR size. Stopping the iteration early leaves
 * the connection in the middle of a NAR: the session must then be closed.
 */
export async function* readNarFromWire(
  reader: WireReader,
  options: NarFromWireOptions = {},
): AsyncGenerator<Uint8Array, NarFromWireResult, undefined> {
  const parser = new NarParser(options.narLimits);
  const maxChunk = options.maxChunk ?? 64 * 1024;
  const expected = options.expectedSize;
  const start = reader.offset;
  let size = 0;
  while (!parser.done) {
    const want = expected === undefined ? maxChunk : Math.min(maxChunk, Math.max(1, expected - size));
    const chunk = await reader.readChunk(want, 'NAR');
    const { events, consumed } = parser.push(chunk);
    if (consumed < chunk.length) reader.unread(chunk.subarray(consumed));
    size += consumed;
    if (expected !== undefined && size > expected) throw sizeMismatch(expected, start, size);
    options.onEvents?.(events);
    if (consumed > 0) yield chunk.subarray(0, consumed);
  }
  if (expected !== undefined && size !== expected) throw sizeMismatch(expected, start, size);
  return { size };
}

function sizeMismatch(expected: number, offset: number, size: number): NixFormatError {
  return new NixFormatError(
    ErrorCode.PROTO_MALFORMED,
    `NAR size differs from the declared narSize ${expected}`,
    {
      offset,
      field: 'narSize',
      limit: expected,
      value: size,
    },
  );
}

/** Reads the NAR at the reader's position to its end, discarding the bytes; returns its size. */
export async function skipNarFromWire(reader: WireReader, options: NarFromWireOptions = {}): Promise<number> {
  const it = readNarFromWire(reader, options);
  for (;;) {
    const r = await it.next();
    if (r.done === true) return r.value.size;
  }
}
