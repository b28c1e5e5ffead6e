/** A `nixyard` subcommand: `nixyard <name> …` dispatches to `run` with the rest of argv. */
export interface Command {
  readonly name: string;
  /** Full text for `nixyard <name> --help`. */
  readonly usage: string;
  /** Returns the process exit code. Throw `UsageError` for bad arguments. */
  run(argv: readonly string[], io: CommandIO): Promise<number>;
}

export interface CommandIO {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** Bad command-line arguments: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
