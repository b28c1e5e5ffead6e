/** `nixyard store verify|reindex`: operator checks of a store's data directory. */
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { LocalStore } from '../../store/local-store.js';
import { isStoreError } from '../../store/errors.js';
import { redisUrlFrom } from '../../store/redis.js';
import { RedisPathIndex } from '../../store/redis-index.js';
import { UsageError, type Command, type CommandIO } from '../command.js';

const DEFAULT_DATA_DIR = '/var/lib/nixyard';

const usage = `Usage: nixyard store verify [--check-contents] [--data-dir DIR] [--redis-url URL]
       nixyard store reindex [--data-dir DIR] [--redis-url URL]

Operator checks of the store in a data directory (DIR/store, DIR/meta, DIR/staging):
  verify     compare the records (the truth), the content and the index; prints one
             line per problem and exits 1 if there is any. Changes nothing.
  reindex    rebuild the index from the records; prints the counts and any corrupt
             records. With --redis-url it rebuilds the cluster's shared index in
             Redis (after a FLUSHALL or a lost Redis), safely while gateways and build
             pods use it: entries are replaced in place, never emptied first. Without
             it, this only proves the records load.

Options:
  --check-contents  (verify) recompute the NAR hash of every path, like
                    'nix-store --verify --check-contents'
  --data-dir DIR    the data directory (default: $NIXYARD_DATA_DIR or ${DEFAULT_DATA_DIR})
  --redis-url URL   the cluster's Redis (default: $NIXYARD_REDIS_URL; keys under
                    $NIXYARD_REDIS_PREFIX, default 'nixyard:'); verify compares it too
  -h, --help        show this help
`;

/** Runs `fn` on the store in `dataDir`, its index in Redis if `redisUrl` is set. */
async function withStore<T>(
  dataDir: string,
  redisUrl: string | undefined,
  fn: (store: LocalStore) => Promise<T>,
): Promise<T> {
  const st = await stat(dataDir).catch(() => undefined);
  if (!st?.isDirectory()) throw new UsageError(`data directory '${dataDir}' does not exist`);
  const index = redisUrl === undefined ? undefined : await RedisPathIndex.connect(redisUrl);
  // Never clean staging here: a gateway may be serving this directory. Never reindex
  // on open: verify must see the shared index as it is, reindex does it itself.
  try {
    const store = await LocalStore.open({
      dataDir,
      cleanStaging: false,
      ...(index ? { index, reindex: false } : {}),
    });
    return await fn(store);
  } finally {
    await index?.close();
  }
}

async function verify(store: LocalStore, checkContents: boolean, io: CommandIO): Promise<number> {
  const report = await store.verify({ checkContents });
  for (const p of report.problems) io.stdout.write(`${p.kind}: ${p.message}\n`);
  const contents = checkContents ? ', contents checked' : '';
  io.stdout.write(`checked ${report.checked} paths${contents}: ${report.problems.length} problem(s)\n`);
  return report.problems.length === 0 ? 0 : 1;
}

async function reindex(store: LocalStore, io: CommandIO): Promise<number> {
  const report = await store.reindex();
  for (const p of report.problems) io.stdout.write(`${p.kind}: ${p.message}\n`);
  io.stdout.write(`indexed ${report.indexed} paths, dropped ${report.dropped} stale entries\n`);
  return report.problems.length === 0 ? 0 : 1;
}

export const storeCommand: Command = {
  name: 'store',
  usage,
  async run(argv, io) {
    const { positionals, values } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        'check-contents': { type: 'boolean' },
        'data-dir': { type: 'string' },
        'redis-url': { type: 'string' },
      },
    });
    const [action, ...extra] = positionals;
    if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
    const dataDir = values['data-dir'] ?? process.env['NIXYARD_DATA_DIR'] ?? DEFAULT_DATA_DIR;
    const redisUrl = redisUrlFrom(values['redis-url']);
    try {
      return await dispatchAction(action, dataDir, redisUrl, values['check-contents'] === true, io);
    } catch (err) {
      // Redis down or misnamed, corrupt records: the operator's to fix; say so plainly.
      if (!isStoreError(err)) throw err;
      io.stderr.write(`error: ${err.message} [${err.code}]\n`);
      return 1;
    }
  },
};

function dispatchAction(
  action: string | undefined,
  dataDir: string,
  redisUrl: string | undefined,
  checkContents: boolean,
  io: CommandIO,
): Promise<number> {
  switch (action) {
    case 'verify':
      return withStore(dataDir, redisUrl, (store) => verify(store, checkContents, io));
    case 'reindex':
      if (checkContents) throw new UsageError('--check-contents applies to verify only');
      return withStore(dataDir, redisUrl, (store) => reindex(store, io));
    default:
      throw new UsageError("expected 'verify' or 'reindex'");
  }
}
