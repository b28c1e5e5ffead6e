/** Runs `nixyard …` in-process through the real dispatcher, with in-memory stdio. */
import { PassThrough, Readable } from 'node:stream';
import { dispatch } from '../../cli/dispatch.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

function collect(stream: PassThrough): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => stream.on('end', () => resolve(Buffer.concat(chunks))));
}

export async function runCli(
  argv: readonly string[],
  stdin: Uint8Array | AsyncIterable<Uint8Array> = new Uint8Array(),
): Promise<CliResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out = collect(stdout);
  const err = collect(stderr);
  const input = stdin instanceof Uint8Array ? Readable.from([Buffer.from(stdin)]) : Readable.from(stdin);
  const code = await dispatch(argv, { stdin: input, stdout, stderr });
  stdout.end();
  stderr.end();
  return { code, stdout: await out, stderr: await err };
}
