/** `nixyard`: one binary, many subcommands (the toolbox now; gateway and operator later). */
import { commands } from './commands.js';
import { UsageError, type Command, type CommandIO } from './command.js';
import { isNixFormatError } from '../nix/errors.js';

const processIO: CommandIO = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };

function topLevelHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'Usage: nixyard <command> [options]',
    '',
    'Nixyard: a self-hosted remote Nix build service. Commands:',
    ...lines,
    '',
    "Run 'nixyard <command> --help' for a command's options.",
    '',
  ].join('\n');
}

export async function dispatch(argv: readonly string[], io: CommandIO = processIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(topLevelHelp());
    return name === undefined ? 2 : 0;
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) {
    io.stderr.write(`nixyard: unknown command '${name}'\n\n${topLevelHelp()}`);
    return 2;
  }
  const command: Command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(command.usage.endsWith('\n') ? command.usage : `${command.usage}\n`);
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`nixyard ${name}: ${err.message}\n\n${command.usage}\n`);
      return 2;
    }
    if (isNixFormatError(err)) {
      io.stderr.write(`error: ${err.message} [${err.code}]\n`);
      return 1;
    }
    if (isSystemError(err)) {
      // Node's system errors (ENOENT, EACCES, …) are the user's to fix, not our bugs.
      io.stderr.write(`error: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

/** ENOENT and friends. Duck-typed: such errors may come from another realm (vm, jest). */
function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  return (
    typeof err === 'object' &&
    err !== null &&
    typeof (err as NodeJS.ErrnoException).code === 'string' &&
    typeof (err as NodeJS.ErrnoException).syscall === 'string'
  );
}
