/**
 * The build ops (reference §5.1): BuildPathsWithResults and BuildDerivation answer with
 * BuildResults, failures included; BuildPaths turns a failure into an error, as Nix does.
 * While building, the client sees Nix's own log protocol: an actBuild activity per
 * derivation with its log lines as resBuildLogLine results.
 *
 * Before building, the session roots what it asked for (the .drvs and their known
 * outputs, opaque paths), as Nix's goals do with addTempRoot: a GC on any replica then
 * keeps the outputs between their registration and the client fetching them.
 */
import { ActivityType, BuildMode, BuildStatus, ResultType, Verbosity } from '../../nix/protocol/worker.js';
import type { BuildResult, KeyedBuildResult } from '../../nix/protocol/types.js';
import type { WorkerReply, WorkerRequestArgs } from '../../nix/protocol/worker-ops.js';
import { DerivationHasher, drvOutputId } from '../../nix/derivation/hash-modulo.js';
import type { LocalStore } from '../../store/local-store.js';
import { parseDerivedPath } from '../derived-path.js';
import { GatewayError, GatewayErrorCode } from '../errors.js';
import { NixMessages } from '../nix-messages.js';
import type { RealiseEvents, Realisation } from '../builds/realise.js';
import { realisationsOfBasic, rootBasicDerivation, rootBuildTargets } from '../builds/request-roots.js';
import type { BuildOutcome } from '../builds/types.js';
import { readStoreDerivation, realiseWithoutBuilding } from './derivations.js';
import type { ClientLog } from './client-log.js';
import type { OpEnv } from './ops.js';

/** RealiseEvents sent to the client in order; `flush` waits until all are written. */
function clientActivities(log: ClientLog): RealiseEvents & { flush(): Promise<void> } {
  const ids = new Map<string, Promise<bigint>>();
  let chain: Promise<unknown> = Promise.resolve();
  const then = <T>(f: () => Promise<T>): Promise<T> => {
    const next = chain.then(f);
    chain = next.catch(() => undefined);
    return next;
  };
  return {
    buildStarted: (drvPath, check) => {
      ids.set(
        drvPath,
        then(() =>
          log.startActivity(
            ActivityType.Build,
            check ? `checking outputs of '${drvPath}'` : `building '${drvPath}'`,
            [drvPath, '', 1n, 1n],
            Verbosity.Info,
          ),
        ),
      );
    },
    logLine: (drvPath, line) => {
      const id = ids.get(drvPath);
      if (id) void then(async () => log.result(await id, ResultType.BuildLogLine, [line]));
    },
    // Nix prints it as a message of its own (an actBuildWaiting activity's text).
    notice: (_drvPath, text) => void then(() => log.line(text)),
    buildStopped: (drvPath) => {
      const id = ids.get(drvPath);
      ids.delete(drvPath);
      if (id) void then(async () => log.stopActivity(await id));
    },
    flush: () => chain.then(() => undefined),
  };
}

function succeeded(o: BuildOutcome): boolean {
  return o.status === BuildStatus.Built || o.status === BuildStatus.AlreadyValid;
}

/** builtOutputs of a BuildResult: DrvOutput id → realisation JSON, for the wanted outputs. */
async function builtOutputs(
  store: LocalStore,
  drvPath: string,
  wanted: 'all' | readonly string[],
  outcome: BuildOutcome,
): Promise<Map<string, string>> {
  const names = wanted === 'all' ? [...outcome.outputs.keys()] : wanted;
  let hashes: ReadonlyMap<string, { toBase16(): string; algo: string }> | undefined;
  const out = new Map<string, string>();
  for (const name of [...names].sort()) {
    const path = outcome.outputs.get(name);
    if (path === undefined) continue;
    let id = outcome.drvOutputIds?.get(name);
    if (id === undefined) {
      if (!hashes) {
        const hasher = new DerivationHasher((p) => readStoreDerivation(store, p), store.storeDir);
        hashes = (await hasher.hashModulo(await readStoreDerivation(store, drvPath), true)).hashes;
      }
      const h = hashes.get(name);
      id = h ? drvOutputId(h as Parameters<typeof drvOutputId>[0], name) : `${drvPath}!${name}`;
    }
    const outPath = path.slice(store.storeDir.length + 1);
    out.set(id, JSON.stringify({ dependentRealisations: {}, id, outPath, signatures: [] }));
  }
  return out;
}

function toWireResult(o: BuildOutcome, outputs: Map<string, string>): BuildResult {
  return {
    status: o.status,
    errorMsg: o.errorMsg,
    timesBuilt: o.timesBuilt,
    isNonDeterministic: false,
    startTime: o.startTime,
    stopTime: o.stopTime,
    cpuUser: o.cpuUser ?? null,
    cpuSystem: o.cpuSystem ?? null,
    builtOutputs: outputs,
  };
}

/** Runs `work` with a Realisation that is released when the request ends or the client leaves. */
async function withRealisation<T>(
  env: OpEnv,
  buildMode: number,
  work: (r: Realisation) => Promise<T>,
): Promise<T> {
  if (!env.builds)
    throw new GatewayError(GatewayErrorCode.UNSUPPORTED_OPERATION, 'this gateway has no builders');
  const events = clientActivities(env.log);
  const keepGoing = env.options.get('keep-going') === 'true';
  // Repair (1) is treated as Normal: our outputs are verified when registered.
  const check = buildMode === BuildMode.Check;
  const realisation = env.builds.realisation({
    requester: env.sessionId,
    keepGoing,
    check,
    keepRunning: env.who.key.keepBuildsRunning ?? false,
    events,
  });
  const onClose = (): void => realisation.release();
  env.closed.addEventListener('abort', onClose, { once: true });
  try {
    return await work(realisation);
  } finally {
    env.closed.removeEventListener('abort', onClose);
    await events.flush();
  }
}

async function keyedResult(env: OpEnv, r: Realisation, text: string): Promise<KeyedBuildResult> {
  const target = parseDerivedPath(text);
  if (target.kind === 'opaque') {
    const valid = await env.store.isValid(target.path);
    const status = valid ? BuildStatus.AlreadyValid : BuildStatus.MiscFailure;
    const errorMsg = valid ? '' : NixMessages.noSubstituter(target.path);
    const o: BuildOutcome = {
      status,
      errorMsg,
      timesBuilt: 0,
      startTime: 0,
      stopTime: 0,
      outputs: new Map(),
    };
    return { path: text, result: toWireResult(o, new Map()) };
  }
  const outcome = await r.derivation(target.drvPath, target.outputs);
  const outputs = succeeded(outcome)
    ? await builtOutputs(env.store, target.drvPath, target.outputs, outcome)
    : new Map<string, string>();
  return { path: text, result: toWireResult(outcome, outputs) };
}

export async function buildPathsWithResults(
  { paths, buildMode }: WorkerRequestArgs<'BuildPathsWithResults'>,
  env: OpEnv,
): Promise<WorkerReply<'BuildPathsWithResults'>> {
  if (!env.builds) {
    return Promise.all(
      paths.map(async (text) => ({
        path: text,
        result: toWireResult(
          {
            status: BuildStatus.AlreadyValid,
            errorMsg: '',
            timesBuilt: 0,
            startTime: 0,
            stopTime: 0,
            outputs: new Map(),
          },
          await realiseWithoutBuilding(env.store, text),
        ),
      })),
    );
  }
  return withRealisation(env, buildMode, async (r) => {
    const parsed = paths.map(parseDerivedPath);
    const targets = parsed.flatMap((t) => (t.kind === 'built' ? [t.drvPath] : []));
    await rootBuildTargets(
      env.store,
      env.sessionId,
      targets,
      parsed.flatMap((t) => (t.kind === 'opaque' ? [t.path] : [])),
    );
    await r.plan(targets);
    return Promise.all(paths.map((text) => keyedResult(env, r, text)));
  });
}

export async function buildPaths(
  { paths, buildMode }: WorkerRequestArgs<'BuildPaths'>,
  env: OpEnv,
): Promise<number> {
  const results = await buildPathsWithResults({ paths, buildMode }, env);
  const failed = results.filter(
    (k) => k.result.status !== BuildStatus.AlreadyValid && k.result.status !== BuildStatus.Built,
  );
  const first = failed[0];
  if (first && failed.length === 1)
    throw new GatewayError(GatewayErrorCode.BUILD_FAILED, first.result.errorMsg);
  if (failed.length > 1) {
    const names = failed.map((k) => `'${k.path.replace(/!.*$/, '')}'`).join(', ');
    throw new GatewayError(GatewayErrorCode.BUILD_FAILED, `build of ${names} failed`);
  }
  return 1;
}

export async function buildDerivation(
  { drvPath, drv, buildMode }: WorkerRequestArgs<'BuildDerivation'>,
  env: OpEnv,
): Promise<WorkerReply<'BuildDerivation'>> {
  const fixedOnly = drv.outputs.every((o) => o.hash !== '');
  if (!fixedOnly && !env.who.key.permissions.has('admin')) {
    // Nix's rule: an untrusted client could name any output paths for any builder.
    throw new GatewayError(
      GatewayErrorCode.PERMISSION_DENIED,
      `Nixyard: BuildDerivation of the input-addressed '${drvPath}' needs the 'admin' permission; use BuildPaths (upload the .drv) instead`,
      { drvPath },
    );
  }
  await rootBasicDerivation(env.store, env.sessionId, drv);
  const outcome = await withRealisation(env, buildMode, (r) => env.builds!.buildBasic(drvPath, drv, r));
  return toWireResult(
    outcome,
    succeeded(outcome) ? realisationsOfBasic(env.store, outcome) : new Map<string, string>(),
  );
}
