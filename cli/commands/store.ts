/** `nixyard store verify|reindex`: operator checks of a store's data directory. */
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { LocalStore } from '../../store/local-store.js';
import { UsageError, type Command, type CommandIO } from '../command.js';

const DEFAULT_DATA_DIR = '/var/lib/nixyard';

const usage = `Usage: nixyard store verify [--check-contents] [--data-dir DIR]
       nixyard store reindex [--data-dir DIR]

Operator checks of the store in a data directory (DIR/store, DIR/meta, DIR/staging):
  verify     compare the records (the truth), the content and the index; prints one
             line per problem and exits 1 if there is any. Changes nothing.
  reindex    rebuild the index from the records; prints the counts and any corrupt
             records. (With the in-process index this only proves the records load;
             it will rebuild the shared index once one is configured.)

Options:
  --check-contents  (verify) recompute the NAR hash of every path, like
                    'nix-store --verify --check-contents'
  --data-dir DIR    the data directory (default: $NIXYARD_DATA_DIR or ${DEFAULT_DATA_DIR})
  -h, --help        show this help
`;

async function openStore(dataDir: string): Promise<LocalStore> {
  const st = await stat(dataDir).catch(() => undefined);
  if (!st?.isDirectory()) throw new UsageError(`data directory '${dataDir}' does not exist`);
  // Never clean staging here: a gateway may be serving this directory.
  return LocalStore.open({ dataDir, cleanStaging: false });
}

async function verify(dataDir: string, checkContents: boolean, io: CommandIO): Promise<number> {
  const store = await openStore(dataDir);
  const report = await store.verify({ checkContents });
  for (const p of report.problems) io.stdout.write(`${p.kind}: ${p.message}\n`);
  const contents = checkContents ? ', contents checked' : '';
  io.stdout.write(`checked ${report.checked} paths${contents}: ${report.problems.length} problem(s)\n`);
  return report.problems.length === 0 ? 0 : 1;
}

async function reindex(dataDir: string, io: CommandIO): Promise<number> {
  const store = await openStore(dataDir);
  const report = await store.reindex();
  for (const p of report.problems) io.stdout.write(`${p.kind}: ${p.message}\n`);
  io.stdout.write(`indexed ${report.indexed} paths, dropped ${report.dropped} stale entries\n`);
  return report.problems.length === 0 ? 0 : 1;
}

export const storeCommand: Command = {
  name: 'store',
  summary: 'verify a store data directory or rebuild its index',
  usage,
  async run(argv, io) {
    const { positionals, values } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        'check-contents': { type: 'boolean' },
        'data-dir': { type: 'string' },
      },
    });
    const [action, ...extra] = positionals;
    if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
    const dataDir = values['data-dir'] ?? process.env['NIXYARD_DATA_DIR'] ?? DEFAULT_DATA_DIR;
    switch (action) {
      case 'verify':
        return verify(dataDir, values['check-contents'] === true, io);
      case 'reindex':
        if (values['check-contents']) throw new UsageError('--check-contents applies to verify only');
        return reindex(dataDir, io);
      default:
        throw new UsageError("expected 'verify' or 'reindex'");
    }
  },
};
