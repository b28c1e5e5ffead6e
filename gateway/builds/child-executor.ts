/**
 * The local executor: each derivation is realised by `nixyard build-drv` as a child
 * process (the very command a build pod runs), reporting log lines on stderr and its
 * BuildResult as JSON on fd 3. Cancelling sends SIGTERM (the runner kills its sandbox and
 * registers nothing), then SIGKILL if it lingers.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LocalStore } from '../../store/local-store.js';
import { cancelledOutcome } from './local-scheduler.js';
import type { BuildOutcome, Executor } from './types.js';

/** How to start `nixyard`: this process's node with the built CLI next to us. */
export function nixyardCommand(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  // From dist/gateway/builds → dist/cli/main.js. Under a TypeScript test runner we are in
  // the sources, and the built CLI is in dist/ at the repository root.
  const built = join(here, '..', '..', 'cli', 'main.js');
  const fromSources = join(here, '..', '..', 'dist', 'cli', 'main.js');
  return [process.execPath, existsSync(built) ? built : fromSources];
}

export interface ChildExecutorOptions {
  readonly store: LocalStore;
  /** `NIX_BUILD_CORES` for builders (0 = all). */
  readonly cores: number;
  readonly timeout?: number;
  readonly maxSilentTime?: number;
  /** For BuildDerivation: where the derivation's ATerm was written, by .drv path. */
  readonly derivationFile?: (drvPath: string) => string | undefined;
  readonly command?: readonly string[];
  /** Grace after SIGTERM before SIGKILL, ms. */
  readonly killAfterMs?: number;
}

interface RunnerResult {
  status: number;
  errorMsg: string;
  builtOutputs: { id: string; outputName: string; outPath: string }[];
  startTime: number;
  stopTime: number;
  timesBuilt: number;
}

export function childExecutor(options: ChildExecutorOptions): Executor {
  const [program, ...prefix] = options.command ?? nixyardCommand();
  if (program === undefined) throw new Error('no nixyard command');
  return (drvPath, { signal, log }) =>
    new Promise<BuildOutcome>((resolve) => {
      const args = [
        ...prefix,
        'build-drv',
        drvPath,
        '--data-dir',
        options.store.layout.dataDir,
        '--result-fd',
        '3',
      ];
      args.push('--cores', String(options.cores));
      if (options.timeout) args.push('--timeout', String(options.timeout));
      if (options.maxSilentTime) args.push('--max-silent-time', String(options.maxSilentTime));
      const file = options.derivationFile?.(drvPath);
      if (file !== undefined) args.push('--derivation-file', file);
      const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
      let partial = '';
      child.stderr?.setEncoding('utf8').on('data', (text: string) => {
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) log(line);
      });
      let resultText = '';
      (child.stdio[3] as NodeJS.ReadableStream | null)
        ?.setEncoding('utf8')
        .on('data', (t: string) => (resultText += t));
      const onAbort = (): void => {
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), options.killAfterMs ?? 5000).unref();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      child.on('error', (err) => resolve(cancelledOutcome(`cannot start the builder: ${err.message}`)));
      child.on('close', (code, sig) => {
        signal.removeEventListener('abort', onAbort);
        if (partial !== '') log(partial);
        void settle(code, sig).then(resolve);
      });

      async function settle(code: number | null, sig: NodeJS.Signals | null): Promise<BuildOutcome> {
        if (signal.aborted) return cancelledOutcome(`build of '${drvPath}' was cancelled`);
        let result: RunnerResult;
        try {
          result = JSON.parse(resultText) as RunnerResult;
        } catch {
          return cancelledOutcome(
            `the builder for '${drvPath}' ended without a result (exit ${code ?? sig})`,
          );
        }
        // The child registered the outputs on the volume; our index learns of them here.
        const paths = result.builtOutputs.map((o) => o.outPath);
        await options.store.refresh(paths);
        return {
          status: result.status as BuildOutcome['status'],
          errorMsg: result.errorMsg,
          timesBuilt: result.timesBuilt,
          startTime: result.startTime,
          stopTime: result.stopTime,
          outputs: new Map(result.builtOutputs.map((o) => [o.outputName, o.outPath])),
          drvOutputIds: new Map(result.builtOutputs.map((o) => [o.outputName, o.id])),
        };
      }
    });
}
