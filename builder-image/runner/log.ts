/**
 * Builder output → log lines, as Nix 2.8 does in `DerivationGoal::handleChildOutput`:
 * bytes accumulate in the current line; `\r` moves back to its start (later bytes
 * overwrite: `abcdef\rXY` becomes `XYcdef`); `\n` ends it. Lines starting with `@nix `
 * are structured messages, not log lines: they are reported apart and left out of the
 * tail. A last line without a newline still counts (`flush` at the end).
 */
export const STRUCTURED_PREFIX = '@nix ';

export interface LogSink {
  onLine(line: string): void;
  onStructured?(json: string): void;
}

export class LogLineSplitter {
  private line: Buffer = Buffer.alloc(256);
  private length = 0;
  private pos = 0;
  /** The last `tailSize` log lines (Nix's `logTail`, `log-lines`). */
  readonly tail: string[] = [];
  lines = 0;

  constructor(
    private readonly sink: LogSink,
    private readonly tailSize = 10,
  ) {}

  push(chunk: Uint8Array): void {
    for (const c of chunk) {
      if (c === 0x0d) this.pos = 0;
      else if (c === 0x0a) this.flushLine();
      else {
        if (this.pos >= this.line.length) {
          const bigger = Buffer.alloc(this.line.length * 2);
          this.line.copy(bigger);
          this.line = bigger;
        }
        this.line[this.pos++] = c;
        if (this.pos > this.length) this.length = this.pos;
      }
    }
  }

  /** End of output: a pending partial line counts. */
  flush(): void {
    if (this.length > 0) this.flushLine();
  }

  private flushLine(): void {
    const text = this.line.subarray(0, this.length).toString('utf8');
    this.length = 0;
    this.pos = 0;
    if (text.startsWith(STRUCTURED_PREFIX)) {
      this.sink.onStructured?.(text.slice(STRUCTURED_PREFIX.length));
      return;
    }
    this.lines++;
    this.tail.push(text);
    if (this.tail.length > this.tailSize) this.tail.shift();
    this.sink.onLine(text);
  }
}
