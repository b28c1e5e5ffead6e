import type { Writable } from 'node:stream';
import { ErrorCode, NixFormatError } from '../errors.js';
import { WireBuilder } from './encode.js';

/**
 * Writes to a Node Writable and respects back-pressure: when `write` returns false it
 * waits for 'drain' before resolving; it rejects with WIRE_CLOSED on 'error' or 'close'.
 */
export class WireWriter {
  readonly #stream: Writable;
  #failure: NixFormatError | undefined;
  /** How many times a write had to wait for 'drain' (observability and tests). */
  drainWaits = 0;
  /** Bytes handed to the stream. */
  bytesWritten = 0;

  constructor(stream: Writable) {
    this.#stream = stream;
    stream.on('error', (err: Error) => {
      this.#failure ??= closed(`stream error: ${err.message}`);
    });
    stream.on('close', () => {
      this.#failure ??= closed('stream closed');
    });
  }

  #check(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#stream.destroyed || this.#stream.writableEnded) throw closed('stream closed');
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.#check();
    if (chunk.length === 0) return;
    this.bytesWritten += chunk.length;
    if (!this.#stream.write(chunk)) {
      this.drainWaits++;
      await this.#drain();
    }
  }

  /** Builds a small message with `build` and writes it in one call. */
  async message(build: (b: WireBuilder) => void): Promise<void> {
    const b = new WireBuilder();
    build(b);
    await this.write(b.finish());
  }

  #drain(): Promise<void> {
    const s = this.#stream;
    return new Promise<void>((resolve, reject) => {
      const done = (err?: NixFormatError): void => {
        s.off('drain', onDrain);
        s.off('error', onError);
        s.off('close', onClose);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onDrain = (): void => done();
      const onError = (e: Error): void => done(closed(`stream error: ${e.message}`));
      const onClose = (): void => done(closed('stream closed while waiting for drain'));
      s.on('drain', onDrain);
      s.on('error', onError);
      s.on('close', onClose);
    });
  }

  /** Ends the stream and waits until all data is flushed. */
  end(): Promise<void> {
    this.#check();
    return new Promise<void>((resolve, reject) => {
      this.#stream.end((err?: Error | null) => {
        if (err) reject(closed(`stream error: ${err.message}`));
        else resolve();
      });
    });
  }
}

function closed(message: string): NixFormatError {
  return new NixFormatError(ErrorCode.WIRE_CLOSED, message);
}
