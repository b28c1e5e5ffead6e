/**
 * `nixyard log PATH`: print the stored build log of a derivation (like `nix log`), from
 * `<data dir>/logs/<drv>.gz` — written by every build the runner does and by
 * `nix store copy-log --to` (AddBuildLog). PATH is the .drv, or an output path whose
 * deriver the store knows.
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readBuildLog } from '../../gateway/builds/build-log.js';
import { LocalStore } from '../../store/local-store.js';
import { UsageError, type Command } from '../command.js';

const USAGE = `Usage: nixyard log /nix/store/…(.drv) [--data-dir DIR]

Prints the stored build log of a derivation: PATH is the .drv path, or an output path
whose deriver is recorded in the store. Exits 1 if there is no log.

Options:
  --data-dir DIR  the gateway's data directory (default: $NIXYARD_DATA_DIR, else
                  $XDG_DATA_HOME/nixyard, else ./data — as 'nixyard gateway')
  -h, --help      show this help`;

function defaultDataDir(): string {
  if (process.env.NIXYARD_DATA_DIR) return process.env.NIXYARD_DATA_DIR;
  return process.env.XDG_DATA_HOME ? join(process.env.XDG_DATA_HOME, 'nixyard') : resolve('data');
}

export const logCommand: Command = {
  name: 'log',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: { 'data-dir': { type: 'string' } },
    });
    if (positionals.length !== 1) throw new UsageError('exactly one store path expected');
    const path = positionals[0]!.replace(/\/+$/, '');
    const dataDir = values['data-dir'] ?? defaultDataDir();
    const st = await stat(dataDir).catch(() => undefined);
    if (!st?.isDirectory()) throw new UsageError(`data directory '${dataDir}' does not exist`);

    let drvPath = path;
    if (!path.endsWith('.drv')) {
      // Never clean staging: a gateway may be serving this directory.
      const store = await LocalStore.open({ dataDir, cleanStaging: false, index: 'records' });
      const deriver = (await store.queryPathInfo(path))?.deriver;
      if (deriver === undefined) {
        io.stderr.write(`error: path '${path}' is not valid or has no known deriver\n`);
        return 1;
      }
      drvPath = deriver;
    }
    const log = await readBuildLog(dataDir, drvPath);
    if (log === undefined) {
      io.stderr.write(`error: build log of '${drvPath}' is not available\n`);
      return 1;
    }
    io.stdout.write(log);
    return 0;
  },
};
