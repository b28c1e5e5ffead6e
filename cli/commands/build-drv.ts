/**
 * `nixyard build-drv DRV`: realise one derivation in a local data directory, the way
 * `nix-build` with `sandbox = true` would (builder-image/runner). Log lines go to
 * stderr as they happen; the output paths to stdout; the exit status is nix-build's.
 */
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parseDerivation } from '../../nix/derivation/aterm.js';
import { parseStorePath } from '../../nix/store-path.js';
import { LocalStore } from '../../store/local-store.js';
import { isStoreError } from '../../store/errors.js';
import { REDIS_TTL_ENV, redisUrlFrom } from '../../store/redis.js';
import { RedisPathIndex } from '../../store/redis-index.js';
import {
  buildDerivation,
  BuildStatus,
  exitCodeOf,
  stripAnsi,
  unbuiltOutcome,
  type BuildOutcome,
  type BuildSettings,
} from '../../builder-image/runner/index.js';
import type { StoreError } from '../../store/errors.js';
import { UsageError, type Command } from '../command.js';

const USAGE = `Usage: nixyard build-drv /nix/store/…drv [--data-dir DIR] [--cores N] [--timeout S]
                          [--max-silent-time S] [--keep-failed]
                          [--derivation-file FILE] [--result-fd N] [--redis-url URL]
                          [--redis-ttl S]

Builds the derivation in a bubblewrap sandbox. The .drv and its input closure must be
valid in the store at DIR (default $NIXYARD_DATA_DIR or ./data). Prints the output paths.
Exit status as nix-build: 0 ok, 100 builder failed, 101 timed out, 102 hash mismatch,
1 other failures. SIGTERM/SIGINT cancel the build (nothing is registered).

With --redis-url URL (default $NIXYARD_REDIS_URL), the store's index is the cluster's
shared one in Redis: inputs are looked up there, and the outputs are registered in
both the records on the volume and Redis, so every gateway replica sees them at once.
The build holds a Redis lock on its output paths (a lease of --redis-ttl seconds,
default $NIXYARD_REDIS_TTL or 30, renewed while it runs): another builder of the same
derivation, anywhere, waits for it and then reports the outputs as already valid.

For the gateway's executors:
  --derivation-file FILE  build the derivation in FILE (ATerm) under the name of the
                          given .drv path, which need not be in the store
                          (BuildDerivation sends the derivation itself)
  --result-fd N           write the BuildResult as one JSON object to file descriptor N,
                          and only log lines to stderr`;

function int(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} wants a non-negative integer, got '${v}'`);
  return n;
}

export const buildDrvCommand: Command = {
  name: 'build-drv',
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
        'derivation-file': { type: 'string' },
        'result-fd': { type: 'string' },
        'redis-url': { type: 'string' },
        'redis-ttl': { type: 'string' },
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
    const resultFd = int(values['result-fd'], '--result-fd');
    const derivationFile = values['derivation-file'];
    const derivation =
      derivationFile === undefined
        ? undefined
        : parseDerivation(await readFile(derivationFile), {
            name: parseStorePath(drvPath).name.replace(/\.drv$/, ''),
          });
    const redisUrl = redisUrlFrom(values['redis-url']);
    let redisIndex: RedisPathIndex | undefined;
    try {
      redisIndex = redisUrl === undefined ? undefined : await RedisPathIndex.connect(redisUrl);
    } catch (err) {
      if (!isStoreError(err)) throw err;
      io.stderr.write(`error: ${err.message} [${err.code}]\n`);
      return 1;
    }
    const ttl = int(values['redis-ttl'] ?? (process.env[REDIS_TTL_ENV] || undefined), '--redis-ttl');
    const coordination =
      redisIndex && redisUrl !== undefined
        ? (await import('../../store/redis-coordination.js')).redisCoordination(redisIndex.client, {
            url: redisUrl,
            prefix: redisIndex.prefix,
            ...(ttl ? { ttlMs: ttl * 1000 } : {}),
          })
        : undefined;
    const store = await LocalStore.open({
      dataDir: values['data-dir'] ?? process.env.NIXYARD_DATA_DIR ?? 'data',
      cleanStaging: false,
      ...(redisIndex ? { index: redisIndex, reindex: false } : { index: 'records' }),
      ...(coordination ? { coordination } : {}),
    }).catch(async (err: unknown) => {
      await redisIndex?.close();
      throw err;
    });
    const controller = new AbortController();
    const cancel = (): void => controller.abort();
    process.once('SIGTERM', cancel);
    process.once('SIGINT', cancel);
    try {
      if (resultFd === undefined) io.stderr.write(`building '${drvPath}'...\n`);
      const result = await buildDerivation({
        store,
        drvPath,
        ...(derivation ? { derivation } : {}),
        settings,
        signal: controller.signal,
        onLogLine: (line) => io.stderr.write(`${line}\n`),
      }).catch((err: unknown) => {
        // The store failed under the build (Redis unreachable, a lost lock): a result the
        // gateway relays to its client, rather than a builder that ends without one.
        if (!isStoreError(err)) throw err;
        return storeFailure(drvPath, err);
      });
      if (resultFd !== undefined) {
        const { status, errorMsg, builtOutputs, startTime, stopTime, timesBuilt, isNonDeterministic } =
          result;
        const json = { status, errorMsg, builtOutputs, startTime, stopTime, timesBuilt, isNonDeterministic };
        await writeResult(resultFd, JSON.stringify(json));
        return exitCodeOf(result, result.hashMismatch);
      }
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
      await redisIndex?.close();
    }
  },
};

function storeFailure(drvPath: string, err: StoreError): BuildOutcome {
  return unbuiltOutcome(BuildStatus.MiscFailure, `cannot build '${drvPath}': ${err.message} [${err.code}]`);
}

function writeResult(fd: number, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream('', { fd });
    out.on('error', reject);
    out.end(`${text}\n`, () => resolve());
  });
}
