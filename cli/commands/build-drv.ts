/**
 * `nixyard build-drv DRV`: realise one derivation in a local data directory, the way
 * `nix-build` with `sandbox = true` would (builder-image/runner). Log lines go to
 * stderr as they happen; the output paths to stdout; the exit status is nix-build's.
 */
import { parseArgs } from 'node:util';
import { LocalStore } from '../../store/local-store.js';
import {
  buildDerivation,
  exitCodeOf,
  stripAnsi,
  type BuildSettings,
} from '../../builder-image/runner/index.js';
import { UsageError, type Command } from '../command.js';

const USAGE = `Usage: nixyard build-drv /nix/store/…drv [--data-dir DIR] [--cores N] [--timeout S]
                          [--max-silent-time S] [--keep-failed]

Builds the derivation in a bubblewrap sandbox. The .drv and its input closure must be
valid in the store at DIR (default $NIXYARD_DATA_DIR or ./data). Prints the output paths.
Exit status as nix-build: 0 ok, 100 builder failed, 101 timed out, 102 hash mismatch,
1 other failures. SIGTERM/SIGINT cancel the build (nothing is registered).`;

function int(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} wants a non-negative integer, got '${v}'`);
  return n;
}

export const buildDrvCommand: Command = {
  name: 'build-drv',
  summary: 'Build one derivation in the sandbox, like nix-build',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        'data-dir': { type: 'string' },
        cores: { type: 'string' },
        timeout: { type: 'string' },
        'max-silent-time': { type: 'string' },
        'keep-failed': { type: 'boolean', short: 'K' },
      },
    });
    if (positionals.length !== 1) throw new UsageError('exactly one .drv path expected');
    const drvPath = positionals[0]!;
    const settings: Partial<BuildSettings> = {};
    const cores = int(values.cores, '--cores');
    const timeout = int(values.timeout, '--timeout');
    const silent = int(values['max-silent-time'], '--max-silent-time');
    Object.assign(
      settings,
      cores !== undefined ? { cores } : {},
      timeout !== undefined ? { timeout } : {},
      silent !== undefined ? { maxSilentTime: silent } : {},
      values['keep-failed'] ? { keepFailed: true } : {},
    );
    const store = await LocalStore.open({
      dataDir: values['data-dir'] ?? process.env.NIXYARD_DATA_DIR ?? 'data',
      cleanStaging: false,
    });
    const controller = new AbortController();
    const cancel = (): void => controller.abort();
    process.once('SIGTERM', cancel);
    process.once('SIGINT', cancel);
    try {
      io.stderr.write(`building '${drvPath}'...\n`);
      const result = await buildDerivation({
        store,
        drvPath,
        settings,
        signal: controller.signal,
        onLogLine: (line) => io.stderr.write(`${line}\n`),
      });
      if (result.errorMsg !== '') {
        io.stderr.write(`error: ${stripAnsi(result.errorMsg).replaceAll('\n', '\n       ')}\n`);
      }
      if (result.keptDir !== undefined)
        io.stderr.write(`note: keeping build directory '${result.keptDir}'\n`);
      for (const o of result.builtOutputs) io.stdout.write(`${o.outPath}\n`);
      return exitCodeOf(result, result.hashMismatch);
    } finally {
      process.off('SIGTERM', cancel);
      process.off('SIGINT', cancel);
    }
  },
};
