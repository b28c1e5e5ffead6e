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
import { REDIS_TTL_ENV, REDIS_URL_ENV } from '../../store/redis-env.js';
import { prepareCheck, type CheckSandbox } from './check-build.js';
import { NoticeDetector } from './build-output.js';
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
  return async (drvPath, { signal, log, check }) => {
    const file = options.derivationFile?.(drvPath);
    let sandbox: CheckSandbox | undefined;
    try {
      if (check) sandbox = await prepareCheck(options.store, drvPath, file);
    } catch (err) {
      return cancelledOutcome(`cannot check '${drvPath}': ${(err as Error).message}`);
    }
    try {
      const args = [
        ...prefix,
        'build-drv',
        drvPath,
        '--data-dir',
        sandbox?.dataDir ?? options.store.layout.dataDir,
        '--result-fd',
        '3',
        '--cores',
        String(options.cores),
      ];
      if (options.timeout) args.push('--timeout', String(options.timeout));
      if (options.maxSilentTime) args.push('--max-silent-time', String(options.maxSilentTime));
      const derivationFile = sandbox?.derivationFile ?? file;
      if (derivationFile !== undefined) args.push('--derivation-file', derivationFile);
      // A check registers in its scratch store only: never the gateway's Redis, even when
      // the gateway's own environment names it.
      const env = { ...withoutRedis(process.env), ...(sandbox ? {} : options.store.coordination.builderEnv) };
      const ran = await runChild(program, args, drvPath, {
        signal,
        log,
        env,
        killAfterMs: options.killAfterMs,
      });
      if (ran.kind === 'outcome') return ran.outcome;
      const result = ran.result;
      if (sandbox) {
        // Nothing was registered in our store: the rebuild is judged against it.
        return await sandbox.judge(fromRunner(result));
      }
      // The child registered the outputs on the volume; our index learns of them here.
      await options.store.refresh(result.builtOutputs.map((o) => o.outPath));
      return fromRunner(result);
    } finally {
      await sandbox?.dispose();
    }
  };
}

function withoutRedis(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const rest = { ...env };
  delete rest[REDIS_URL_ENV];
  delete rest[REDIS_TTL_ENV];
  return rest;
}

function fromRunner(result: RunnerResult): BuildOutcome {
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

type ChildEnd = { kind: 'result'; result: RunnerResult } | { kind: 'outcome'; outcome: BuildOutcome };

/**
 * Runs `nixyard build-drv` to its end: log lines from stderr, the result from fd 3. On
 * abort: SIGTERM (the runner kills its sandbox and registers nothing), SIGKILL later.
 */
function runChild(
  program: string,
  args: readonly string[],
  drvPath: string,
  context: {
    signal: AbortSignal;
    log: (line: string, notice?: boolean) => void;
    env: NodeJS.ProcessEnv;
    killAfterMs: number | undefined;
  },
): Promise<ChildEnd> {
  const { signal, log } = context;
  return new Promise<ChildEnd>((resolve) => {
    if (signal.aborted) {
      resolve({ kind: 'outcome', outcome: cancelledOutcome(`build of '${drvPath}' was cancelled`) });
      return;
    }
    const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe'], env: context.env });
    let partial = '';
    const notices = new NoticeDetector();
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) log(line, notices.isNotice(line));
    });
    let resultText = '';
    (child.stdio[3] as NodeJS.ReadableStream | null)
      ?.setEncoding('utf8')
      .on('data', (t: string) => (resultText += t));
    const onAbort = (): void => {
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), context.killAfterMs ?? 5000).unref();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err) =>
      resolve({ kind: 'outcome', outcome: cancelledOutcome(`cannot start the builder: ${err.message}`) }),
    );
    child.on('close', (code, sig) => {
      signal.removeEventListener('abort', onAbort);
      if (partial !== '') log(partial, notices.isNotice(partial));
      if (signal.aborted) {
        resolve({ kind: 'outcome', outcome: cancelledOutcome(`build of '${drvPath}' was cancelled`) });
        return;
      }
      try {
        resolve({ kind: 'result', result: JSON.parse(resultText) as RunnerResult });
      } catch {
        resolve({
          kind: 'outcome',
          outcome: cancelledOutcome(
            `the builder for '${drvPath}' ended without a result (exit ${code ?? sig})`,
          ),
        });
      }
    });
  });
}
