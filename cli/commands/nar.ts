/** `nixyard nar pack|unpack|ls`: NAR archives, byte-compatible with `nix-store --dump/--restore`. */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { encodeNixBase32 } from '../../nix/hash.js';
import { dumpPath, narListing, parseNarStream, restoreNar } from '../../nix/nar/index.js';
import { UsageError, type Command, type CommandIO } from '../command.js';

const usage = `Usage: nixyard nar pack PATH
       nixyard nar unpack DEST < FILE.nar
       nixyard nar ls [--short] < FILE.nar

NAR (Nix ARchive) files, byte for byte as Nix makes them:
  pack PATH     write the NAR of PATH (file, directory or symlink) to stdout,
                the same bytes as 'nix-store --dump PATH'
  unpack DEST   read a NAR from stdin, validate it and restore it to DEST, which
                must not exist (like 'nix-store --restore DEST'); prints its
                narHash and narSize. On an invalid NAR nothing is left at DEST.
  ls            list a NAR read from stdin like 'nix nar ls -lR FILE.nar /'

Options:
  --short       (ls) print names only, like 'nix nar ls -R'
  -h, --help    show this help
`;

/** The bytes of a Node readable stream (strings are encoded as UTF-8). */
async function* bytesOf(stream: NodeJS.ReadableStream): AsyncGenerator<Uint8Array, void, undefined> {
  for await (const chunk of stream) yield typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
}

/** Streams `source` to `out`, honouring back-pressure; `out` is left open. */
function send(source: AsyncIterable<Uint8Array>, out: NodeJS.WritableStream): Promise<void> {
  return pipeline(Readable.from(source, { objectMode: false }), out, { end: false });
}

function onePositional(positionals: readonly string[], what: string): string {
  if (positionals.length !== 1) throw new UsageError(`expected exactly one ${what}`);
  return positionals[0]!;
}

async function pack(args: string[], io: CommandIO): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  await send(dumpPath(onePositional(positionals, 'PATH')), io.stdout);
  return 0;
}

async function unpack(args: string[], io: CommandIO): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  const dest = onePositional(positionals, 'DEST');
  const { narHash, narSize } = await restoreNar(bytesOf(io.stdin), dest);
  io.stdout.write(`narHash: sha256:${encodeNixBase32(narHash)}\nnarSize: ${narSize}\n`);
  return 0;
}

async function ls(args: string[], io: CommandIO): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { short: { type: 'boolean', short: 's' } },
  });
  if (positionals.length > 0) throw new UsageError('ls reads the NAR from stdin and takes no arguments');
  await send(narListing(parseNarStream(bytesOf(io.stdin)), { long: values.short !== true }), io.stdout);
  return 0;
}

const subcommands: Record<string, (args: string[], io: CommandIO) => Promise<number>> = { pack, unpack, ls };

export const narCommand: Command = {
  name: 'nar',
  usage,
  run(argv, io) {
    const [sub, ...rest] = argv;
    const handler = sub === undefined ? undefined : subcommands[sub];
    if (handler === undefined) {
      throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand '${sub}'`);
    }
    return handler(rest, io);
  },
};
